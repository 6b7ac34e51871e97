//! augur as Flagger's webhook target and Argo Rollouts' `web` metric, with
//! the clients emulated from their sources: Flagger POSTs
//! `{name, namespace, phase, checksum, metadata}` as JSON and passes only on
//! 200-202 (`pkg/controller/webhook.go`); Argo's web provider needs a 2xx,
//! reads JSON and applies `{$.verdict}` with
//! `successCondition: result.verdict == "pass"` /
//! `failureCondition: result.verdict == "fail"`
//! (`metricproviders/webmetric`, `utils/evaluate`). The daemon scrapes a
//! simulated service whose canary regresses.

use std::time::Duration;

use crate::common::{config_for, eventually, simulated, Arm, Daemon, Sink, TestTarget};
use serde_json::{json, Value};

fn config(t: &TestTarget) -> String {
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/analyses/http.toml");
    format!(
        "analysis_files = [\"{templates}\"]\n{}",
        config_for(&[(
            "shop",
            "scrape_interval = \"500ms\"\nscrape_timeout = \"500ms\"",
            &[t.addr],
            ""
        )])
    )
}

/// Flagger's call: POST JSON, 10 s timeout, pass = 200..=202.
async fn flagger(
    d: &Daemon,
    hook: &str,
    name: &str,
    checksum: &str,
    metadata: Value,
) -> (bool, u16, String) {
    let body = json!({
        "name": name, "namespace": "shop", "phase": "Progressing", "checksum": checksum,
        "metadata": metadata, "someFutureField": {"x": 1},
    });
    let r = reqwest::Client::new()
        .post(d.url(&format!("/flagger/{hook}")))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let text = r.text().await.unwrap();
    ((200..=202).contains(&code), code, text)
}

fn analysis(service: &str) -> Value {
    json!({"template": "http-canary", "service": service, "interval": "2s", "window": "4s", "initial_delay": "3s"})
}

/// Argo's web provider: status must be 2xx, JSON decoded, `{$.verdict}`.
#[derive(Debug, PartialEq)]
enum Phase {
    Successful,
    Failed,
    Inconclusive,
    Error,
}

async fn argo(d: &Daemon, query: &str) -> (Phase, Value) {
    let r = reqwest::Client::new()
        .get(d.url(&format!("/api/v1/argo/http-canary?{query}")))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    if !r.status().is_success() {
        return (Phase::Error, Value::Null);
    }
    let v: Value = r.json().await.unwrap();
    let result = &v["verdict"];
    let phase = match (result == "pass", result == "fail") {
        (_, true) => Phase::Failed,
        (true, false) => Phase::Successful,
        (false, false) => Phase::Inconclusive,
    };
    (phase, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagger_hooks_and_gates() {
    let (healthy, broken) = (Arm::HEALTHY, Arm::BROKEN);
    let t = simulated(vec![
        ("bad", healthy, Some(broken)),
        ("good", healthy, Some(healthy)),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let cfg = format!(
        "{}[notify]\n[[notify.webhook]]\nname = \"chat\"\nurl = \"http://{}/hook\"\n",
        config(&t).replace(
            "[global]\n",
            "[global]\nexternal_labels = { cluster = \"eu-1\" }\n"
        ),
        sink.addr,
    );
    let mut d = Daemon::start(dir.path(), &cfg);

    // Malformed calls get a 4xx with a reason, never a 5xx.
    let (ok, code, why) = flagger(&d, "pre-rollout", "bad", "c1", json!({})).await;
    assert_eq!((ok, code), (false, 400));
    assert!(why.contains("metadata.template"), "{why}");
    let (_, code, why) = flagger(&d, "pre-rollout", "bad", "c1", json!({"template": "nope"})).await;
    assert_eq!(code, 400);
    assert!(why.contains("no analysis template named \"nope\""), "{why}");
    let (_, code, _) = flagger(&d, "deploy", "bad", "c1", json!({})).await;
    assert_eq!(code, 404);
    let r = reqwest::Client::new()
        .post(d.url("/flagger/rollout"))
        .body("{\"name\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // The bad canary: pre-rollout starts the analysis, rollout passes while
    // it gathers, then halts with the reason; rollback turns to 200.
    let (ok, _, why) = flagger(&d, "pre-rollout", "bad", "rev1", analysis("bad")).await;
    assert!(ok, "{why}");
    assert!(why.starts_with("analysis running"), "{why}");
    let (ok, _, _) = flagger(&d, "rollback", "bad", "rev1", json!({})).await;
    assert!(!ok, "no rollback before the analysis fails");
    let why = eventually(40, "the rollout hook to halt", || async {
        let (ok, code, why) = flagger(&d, "rollout", "bad", "rev1", analysis("bad")).await;
        (!ok).then_some((code, why))
    })
    .await;
    assert_eq!(why.0, 403);
    assert!(
        why.1
            .starts_with("analysis failed: critical metric \"errors\" failed"),
        "{}",
        why.1
    );
    let (ok, code, why) = flagger(&d, "rollback", "bad", "rev1", json!({})).await;
    assert!(ok && code == 200, "{why}");
    assert!(why.contains("analysis http-canary failed"), "{why}");
    // A new revision gets a fresh analysis (and no rollback).
    let (ok, _, why) = flagger(&d, "rollout", "bad", "rev2", analysis("bad")).await;
    assert!(ok && why.starts_with("analysis running"), "{why}");
    let (ok, _, _) = flagger(&d, "rollback", "bad", "rev2", json!({})).await;
    assert!(!ok);

    // The healthy canary keeps passing.
    let (ok, _, _) = flagger(&d, "pre-rollout", "good", "g1", analysis("good")).await;
    assert!(ok);
    eventually(
        30,
        "two measured intervals of the healthy canary",
        || async {
            let v = d.get_json("/api/v1/analysis/runs").await;
            v["data"].as_array()?.iter().find(|r| {
                r["key"].as_str().is_some_and(|k| k.contains("/good/g1/"))
                    && r["intervals"].as_u64() >= Some(2)
            })?;
            Some(())
        },
    )
    .await;
    let (ok, _, why) = flagger(&d, "rollout", "good", "g1", analysis("good")).await;
    assert!(ok, "{why}");
    let (ok, _, _) = flagger(&d, "rollback", "good", "g1", json!({})).await;
    assert!(!ok);

    // Gates: closed until opened; loadtester-compatible; persisted.
    let (ok, code, _) = flagger(&d, "confirm-promotion", "good", "g1", json!({})).await;
    assert_eq!((ok, code), (false, 403));
    let gate = |op: &str, path: &str| {
        let url = d.url(&format!("/{path}/{op}"));
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .body(r#"{"name":"good","namespace":"shop"}"#)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(gate("check", "gate").await.0, 403);
    assert_eq!(gate("open", "gate").await.0, 202);
    assert_eq!(gate("check", "gate").await, (200, "Approved\n".to_string()));
    let (ok, _, _) = flagger(&d, "confirm-promotion", "good", "g1", json!({})).await;
    assert!(ok);
    let (ok, _, _) = flagger(&d, "confirm-traffic-increase", "good", "g1", json!({})).await;
    assert!(ok);
    // An operator-requested rollback.
    assert_eq!(gate("open", "rollback").await.0, 202);
    let (ok, _, why) = flagger(&d, "rollback", "good", "g1", json!({})).await;
    assert!(ok && why.contains("operator"), "{why}");
    assert_eq!(gate("close", "rollback").await.0, 202);

    // Events are recorded in the audit log.
    let (ok, _, _) = flagger(&d, "event", "good", "g1", json!({"eventMessage": "Advance good.shop canary weight 10", "eventType": "Normal", "timestamp": "1700000000000"})).await;
    assert!(ok);
    let log = d.get_json("/api/v1/audit?subject=shop/good").await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "flagger.event");
    assert!(
        actions.contains(&"gate.confirm.open") && actions.contains(&"flagger.confirm-promotion"),
        "{actions:?}"
    );
    assert_eq!(log["data"][0]["detail"]["metadata"]["eventType"], "Normal");
    // ... and forwarded to the notification receivers, Warning events as
    // warnings, post-rollout too.
    let (ok, _, _) = flagger(&d, "event", "bad", "rev1", json!({"eventMessage": "Rolling back bad.shop failed checks threshold reached 2", "eventType": "Warning", "timestamp": "1700000001000"})).await;
    assert!(ok);
    let (ok, _, _) = flagger(&d, "post-rollout", "good", "g1", json!({})).await;
    assert!(ok);
    let bodies = eventually(20, "three forwarded events", || async {
        let b = sink.bodies();
        (b.len() >= 3).then_some(b)
    })
    .await;
    let alerts: Vec<Value> = bodies
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap()["alerts"][0].clone())
        .collect();
    let find = |msg: &str| {
        alerts
            .iter()
            .find(|a| a["annotations"]["summary"].as_str().unwrap().contains(msg))
            .unwrap_or_else(|| panic!("no event {msg:?} in {alerts:#?}"))
    };
    let advance = find("Advance good.shop canary weight 10");
    assert_eq!(advance["labels"]["alertname"], "FlaggerEvent");
    assert_eq!(advance["labels"]["canary"], "good");
    assert_eq!(advance["labels"]["namespace"], "shop");
    assert_eq!(advance["labels"]["severity"], "info");
    assert_eq!(advance["labels"]["cluster"], "eu-1");
    assert_eq!(advance["startsAt"], "2023-11-14T22:13:20Z");
    let rollback = find("Rolling back bad.shop");
    assert_eq!(rollback["labels"]["severity"], "warning");
    assert_eq!(rollback["labels"]["event_type"], "Warning");
    let post = find("finished its rollout");
    assert_eq!(post["labels"]["alertname"], "FlaggerPostRollout");
    assert!(post["generatorURL"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/audit?subject=shop%2Fgood"));

    // kill -9: gates and the failed analysis survive.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let d = Daemon::start_with(dir.path(), &d.config.clone());
    let (ok, _, _) = flagger(&d, "confirm-promotion", "good", "g1", json!({})).await;
    assert!(ok, "the gate stays open across a restart");
    let (ok, _, _) = flagger(&d, "rollback", "bad", "rev1", json!({})).await;
    assert!(ok, "the failed revision still rolls back after a restart");
    let gates = d.get_json("/api/v1/gates").await;
    assert_eq!(gates["data"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_web_metric_sees_pass_then_fail() {
    let (healthy, broken) = (Arm::HEALTHY, Arm::BROKEN);
    let t = simulated(vec![
        ("bad", healthy, Some(broken)),
        ("good", healthy, Some(healthy)),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &config(&t));
    let q =
        |svc: &str| format!("namespace=shop&service={svc}&interval=2s&window=4s&initial_delay=3s");

    let (phase, v) = argo(&d, &q("bad")).await;
    assert_eq!(phase, Phase::Successful, "{v}");
    assert_eq!(v["state"], "running");
    let run = v["run"].as_str().unwrap().to_string();
    let v = eventually(40, "the verdict to turn to fail", || async {
        let (phase, v) = argo(&d, &q("bad")).await;
        (phase == Phase::Failed).then_some(v)
    })
    .await;
    assert_eq!(v["run"], run.as_str(), "every poll reads the same run");
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .contains("critical metric \"errors\" failed"));
    let errors = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "errors")
        .unwrap();
    assert_eq!(errors["phase"], "failed");
    assert!(v["score"].as_f64().unwrap() < 50.0);

    // The same through POST with a JSON body (Argo's jsonBody).
    let r = reqwest::Client::new()
        .post(d.url("/api/v1/argo/http-canary"))
        .json(&json!({"namespace": "shop", "service": "good", "interval": "2s", "window": "4s", "initial_delay": "3s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["verdict"], "pass");

    // Configuration problems are Inconclusive (a person looks), not 5xx.
    let r = reqwest::get(d.url("/api/v1/argo/nope?namespace=shop"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["verdict"], "inconclusive");
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .contains("no analysis template"));
    let (phase, v) = argo(&d, "namespace=shop").await;
    assert_eq!(phase, Phase::Inconclusive);
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("argument \"service\" was not supplied"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_protects_mutating_and_webhook_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let token = "s3cret-token-4f9a";
    std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
    std::fs::write(dir.path().join("hmac"), "hmac-key").unwrap();
    let t = TestTarget::start(crate::common::Reply::text("up 1\n")).await;
    let cfg = format!(
        "[server]\nauth_token_file = \"{}\"\nhmac_secret_file = \"{}\"\n{}",
        dir.path().join("token").display(),
        dir.path().join("hmac").display(),
        config_for(&[("x", "", &[t.addr], "")])
    );
    let d = Daemon::start(dir.path(), &cfg);
    let http = reqwest::Client::new();
    let post = |path: &str, body: &str| http.post(d.url(path)).body(body.to_string());

    // Without credentials: 401 everywhere that changes something.
    for path in [
        "/api/v1/analysis/runs",
        "/flagger/rollout",
        "/gate/open",
        "/rollback/open",
        "/canary/x",
    ] {
        let r = post(path, "{}").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains(token), "the token never appears in answers");
    }
    let r = http
        .get(d.url("/api/v1/argo/http-canary?namespace=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .delete(d.url("/api/v1/analysis/runs/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Reading stays open.
    let r = http
        .get(d.url("/api/v1/analysis/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Bearer token in the header, or ?token= for Flagger's webhooks.
    let r = post("/api/v1/analysis/runs", r#"{"template": "nope"}"#)
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "authorized, then an unknown template"
    );
    let r = post("/api/v1/analysis/runs", r#"{"template": "nope"}"#)
        .header("Authorization", "Bearer s3cret-token-4f9b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = post(
        &format!("/flagger/confirm-promotion?token={token}"),
        r#"{"name":"a","namespace":"b"}"#,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 403, "authorized; the gate is closed");

    // A signed request: HMAC-SHA256 of timestamp, method, path and body.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let signed = |method: reqwest::Method, path: &str, body: &str, ts: i64| {
        let sig =
            augur::signing::signature(b"hmac-key", ts, method.as_str(), path, body.as_bytes());
        http.request(method, d.url(path))
            .body(body.to_string())
            .header("X-Augur-Timestamp", ts.to_string())
            .header("X-Augur-Signature", sig)
    };
    let body = r#"{"name":"a","namespace":"b"}"#;
    let ts = now();
    let r = signed(reqwest::Method::POST, "/gate/open", body, ts)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    // The same request again is a replay.
    let r = signed(reqwest::Method::POST, "/gate/open", body, ts)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "replayed");
    // A signature for one request does not authorize another path, body
    // or method, nor an old one.
    let sig = augur::signing::signature(b"hmac-key", ts, "POST", "/gate/close", body.as_bytes());
    for (method, path, b) in [
        (reqwest::Method::POST, "/rollback/open", body),
        (
            reqwest::Method::POST,
            "/gate/close",
            "{\"name\":\"a\",\"namespace\":\"c\"}",
        ),
        (reqwest::Method::DELETE, "/gate/close", body),
    ] {
        let r = http
            .request(method, d.url(path))
            .body(b.to_string())
            .header("X-Augur-Timestamp", ts.to_string())
            .header("X-Augur-Signature", sig.clone())
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 401 | 405), "{path}");
    }
    // The signature of an empty body authorizes nothing else.
    let empty = augur::signing::signature(
        b"hmac-key",
        ts,
        "POST",
        "/api/v1/rollouts/shop/a/abort",
        b"",
    );
    let r = http
        .post(d.url("/api/v1/rollouts/prod/payments/rollback"))
        .header("X-Augur-Timestamp", ts.to_string())
        .header("X-Augur-Signature", empty)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = signed(reqwest::Method::POST, "/gate/close", body, now() - 600)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "stale timestamp");
    assert!(r.text().await.unwrap().contains("5 minutes"));
    // Upper-case prefix and hex are accepted.
    let ts2 = now() + 1;
    let sig = augur::signing::signature(b"hmac-key", ts2, "POST", "/gate/open", body.as_bytes())
        .to_ascii_uppercase();
    let r = http
        .post(d.url("/gate/open"))
        .body(body)
        .header("X-Augur-Timestamp", ts2.to_string())
        .header("X-Augur-Signature", sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    // The bearer scheme is case-insensitive; HEAD never starts a run.
    let r = post("/api/v1/analysis/runs", r#"{"template": "nope"}"#)
        .header("Authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .head(d.url(&format!(
            "/api/v1/argo/http-canary?namespace=head&token={token}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let runs = d.get_json("/api/v1/analysis/runs").await;
    assert!(runs["data"].as_array().unwrap().is_empty(), "{runs}");
    let r = post(&format!("/flagger/confirm-promotion?token={token}"), body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(!d.log_text().contains(token), "secrets never reach the log");
}
