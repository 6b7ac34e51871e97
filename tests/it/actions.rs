//! Decisions and webhook actions end to end: the exact request a sink
//! receives (method, path, content type, idempotency key, HMAC signature,
//! headers, body template), idempotent decisions, retries on 5xx, dead
//! letters on 4xx, dry runs, an analysis failure turning into an abort,
//! and `kill -9` while an action is in flight: after the restart it is
//! delivered again with the same idempotency key, so it takes effect once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{config_for, eventually, simulated, Arm, Daemon, TestTarget};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A webhook receiver that answers from a script and acts once per
/// Idempotency-Key, as a careful receiver does.
#[derive(Clone)]
struct Receiver {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    effects: Arc<Mutex<HashSet<String>>>,
}

impl Receiver {
    async fn start(script: Vec<(u16, u64)>) -> Receiver {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script = Arc::new(Mutex::new(script));
        let effects: Arc<Mutex<HashSet<String>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (s, sc, ef) = (seen.clone(), script.clone(), effects.clone());
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                let (s, sc, ef) = (s.clone(), sc.clone(), ef.clone());
                async move {
                    s.lock().unwrap().push(Seen {
                        method,
                        path: uri.path().to_string(),
                        headers: headers.clone(),
                        body,
                    });
                    let (status, delay) = {
                        let mut q = sc.lock().unwrap();
                        if q.is_empty() {
                            (200, 0)
                        } else {
                            q.remove(0)
                        }
                    };
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    if status == 200 {
                        if let Some(k) = headers.get("idempotency-key") {
                            ef.lock().unwrap().insert(k.to_str().unwrap().to_string());
                        }
                    }
                    StatusCode::from_u16(status).unwrap()
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            seen,
            effects,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn actions_config(r: &Receiver, dir: &std::path::Path, extra: &str) -> String {
    std::fs::write(dir.join("hook-secret"), "k3y\n").unwrap();
    format!(
        r#"[actions]
max_backoff = "200ms"
max_attempts = 4
{extra}
[[actions.webhook]]
name = "deployer"
url = "http://{}/deploy/hook"
headers = {{ "X-Team" = "payments" }}
hmac_secret_file = "{}"
body = '{{"action": "{{{{ decision }}}}", "target": "{{{{ namespace }}}}/{{{{ name }}}}", "why": "{{{{ reason }}}}"}}'
timeout = "2s"
"#,
        r.addr,
        dir.join("hook-secret").display()
    )
}

async fn decide(d: &Daemon, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(d.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn decisions(d: &Daemon) -> Vec<Value> {
    d.get_json("/api/v1/decisions").await["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_actions_are_exact_idempotent_and_retried() {
    // 1st decision: 500, 503, then 200. 2nd: 404 (dead at once).
    let r = Receiver::start(vec![(500, 0), (503, 0), (200, 0), (404, 0)]).await;
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(crate::common::Reply::text("up 1\n")).await;
    let cfg = format!(
        "{}{}",
        actions_config(&r, dir.path(), ""),
        config_for(&[("x", "", &[t.addr], "")])
    );
    let d = Daemon::start(dir.path(), &cfg);

    let (code, v) = decide(
        &d,
        "/api/v1/rollouts/shop/web/abort",
        json!({"revision": "abc123", "reason": "p99 \"doubled\""}),
    )
    .await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["data"]["key"], "shop/web/abc123/abort");
    // The same decision again sends nothing more.
    let (code, v) = decide(
        &d,
        "/api/v1/rollouts/shop/web/abort",
        json!({"revision": "abc123"}),
    )
    .await;
    assert_eq!((code, v["data"]["new"].as_bool()), (200, Some(false)));

    let ds = eventually(20, "the action to be delivered", || async {
        let ds = decisions(&d).await;
        (ds[0]["actions"][0]["status"] == "done").then_some(ds)
    })
    .await;
    let a = &ds[0]["actions"][0];
    assert_eq!(a["attempts"], 3);
    assert_eq!(a["response"]["status"], 200);
    assert!(a["request"]["headers"].to_string().contains("X-Team"));
    assert!(
        !a["request"].to_string().contains("payments"),
        "header values are not exposed"
    );
    let seen = r.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.path, "/deploy/hook");
        assert_eq!(s.headers["content-type"], "application/json");
        assert_eq!(
            s.headers["idempotency-key"],
            "shop/web/abc123/abort/deployer"
        );
        assert_eq!(s.headers["x-team"], "payments");
        // Signed over time, method, path and body.
        let ts: i64 = s.headers["x-augur-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let sig = augur::signing::signature(b"k3y", ts, "POST", "/deploy/hook", s.body.as_bytes());
        assert_eq!(s.headers["x-augur-signature"], sig.as_str());
        let body: Value = serde_json::from_str(&s.body).unwrap();
        assert_eq!(
            body,
            json!({"action": "abort", "target": "shop/web", "why": "p99 \"doubled\""})
        );
    }
    assert_eq!(r.effects.lock().unwrap().len(), 1);

    // A 4xx is final: dead after one attempt.
    let (code, _) = decide(
        &d,
        "/api/v1/rollouts/shop/web/promote",
        json!({"revision": "def"}),
    )
    .await;
    assert_eq!(code, 202);
    let ds = eventually(20, "the 404 to dead-letter", || async {
        let ds = decisions(&d).await;
        (ds[0]["actions"][0]["status"] == "dead").then_some(ds)
    })
    .await;
    assert_eq!(ds[0]["actions"][0]["attempts"], 1);
    assert_eq!(ds[0]["actions"][0]["last_error"], "HTTP 404");
    // Unknown decisions are refused.
    let (code, _) = decide(&d, "/api/v1/rollouts/shop/web/explode", json!({})).await;
    assert_eq!(code, 404);
    // The audit log tells the story.
    let log = d.get_json("/api/v1/audit?subject=shop/web").await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "decision.abort",
        "action.pending",
        "action.done",
        "decision.promote",
        "action.dead",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_records_without_sending() {
    let r = Receiver::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(crate::common::Reply::text("up 1\n")).await;
    let cfg = format!(
        "{}{}",
        actions_config(&r, dir.path(), "dry_run = true"),
        config_for(&[("x", "", &[t.addr], "")])
    );
    let d = Daemon::start(dir.path(), &cfg);
    let (code, _) = decide(&d, "/api/v1/rollouts/shop/web/pause", json!({})).await;
    assert_eq!(code, 202);
    let ds = eventually(10, "the dry run", || async {
        let ds = decisions(&d).await;
        (ds[0]["actions"][0]["status"] == "dry-run").then_some(ds)
    })
    .await;
    assert_eq!(
        ds[0]["actions"][0]["request"]["url"],
        format!("http://{}/deploy/hook", r.addr)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(r.seen().is_empty(), "nothing is sent in dry-run mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_analysis_aborts_once_even_across_kill_9() {
    // The first delivery hangs long enough to kill augur mid-flight.
    let r = Receiver::start(vec![(200, 8000)]).await;
    let (healthy, broken) = (Arm::HEALTHY, Arm::BROKEN);
    let t = simulated(vec![("bad", healthy, Some(broken))]).await;
    let dir = tempfile::tempdir().unwrap();
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/analyses/http.toml");
    let cfg = format!(
        "analysis_files = [\"{templates}\"]\n{}{}",
        actions_config(&r, dir.path(), ""),
        config_for(&[(
            "shop",
            "scrape_interval = \"500ms\"\nscrape_timeout = \"500ms\"",
            &[t.addr],
            ""
        )])
    );
    let mut d = Daemon::start(dir.path(), &cfg);
    let (code, v) = decide(
        &d,
        "/api/v1/analysis/runs",
        json!({"template": "http-canary", "args": {"namespace": "shop", "service": "bad"},
               "interval": "2s", "window": "4s", "initial_delay": "3s",
               "rollout": {"namespace": "shop", "name": "web", "revision": "h1"}}),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    // The analysis fails, the decision is recorded, the delivery starts...
    eventually(40, "the abort request to reach the receiver", || async {
        (!r.seen().is_empty()).then_some(())
    })
    .await;
    let ds = decisions(&d).await;
    assert_eq!(ds[0]["decision"], "abort");
    assert!(ds[0]["actor"].as_str().unwrap().starts_with("analysis:"));
    assert!(
        ds[0]["reason"]
            .as_str()
            .unwrap()
            .contains("critical metric \"errors\" failed"),
        "{}",
        ds[0]
    );
    // ...and augur dies before the receiver answers.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let d = Daemon::start_with(dir.path(), &d.config.clone());
    let ds = eventually(30, "the action to complete after the restart", || async {
        let ds = decisions(&d).await;
        (ds[0]["actions"][0]["status"] == "done").then_some(ds)
    })
    .await;
    assert_eq!(ds.len(), 1, "one decision, not one per restart");
    let seen = r.seen();
    assert!(seen.len() >= 2, "delivered again after the crash");
    assert!(seen
        .iter()
        .all(|s| s.headers["idempotency-key"] == "shop/web/h1/abort/deployer"));
    // Wait out the hung first request: the receiver acted once.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(r.effects.lock().unwrap().len(), 1);
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["action"], "abort");
    assert_eq!(body["target"], "shop/web");
}
