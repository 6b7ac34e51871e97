//! Service discovery and relabeling through the real binary: file and HTTP
//! SD feeding relabel rules, checked on `/api/v1/targets` and on the
//! scraped series; broken sources keep the last targets; reloads keep
//! unchanged targets running; metric relabeling and limits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::common::{eventually, Daemon, Reply, TestTarget};

use crate::common::active_targets as active;

fn dropped(t: &Value) -> Vec<Value> {
    t["data"]["droppedTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn by_instance<'a>(ts: &'a [Value], inst: &str) -> Option<&'a Value> {
    ts.iter().find(|t| t["labels"]["instance"] == inst)
}

const BODY: &str =
    "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 10\ngo_goroutines 7\n";

/// Argo Rollouts-style pods in a file: the hash label tells canary from
/// stable; relabeling turns it into `track`, keeps only the app, drops
/// `__meta_` labels and maps the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_relabels_follows_changes_and_survives_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let canary = TestTarget::start(Reply::text(BODY)).await;
    let stable = TestTarget::start(Reply::text(BODY)).await;
    let other = TestTarget::start(Reply::text(BODY)).await;
    let sd = dir.path().join("sd");
    std::fs::create_dir(&sd).unwrap();
    let groups = |with_other: bool| {
        let mut g = vec![
            json!({"targets": [canary.addr.to_string()], "labels": {
                "__meta_app": "checkout", "__meta_hash": "7c9f", "team": "shop"}}),
            json!({"targets": [stable.addr.to_string()], "labels": {
                "__meta_app": "checkout", "__meta_hash": "5d2a", "team": "shop"}}),
        ];
        if with_other {
            g.push(json!({"targets": [other.addr.to_string()], "labels": {
                "__meta_app": "payments", "__meta_hash": "1111"}}));
        }
        serde_json::to_string(&g).unwrap()
    };
    std::fs::write(sd.join("pods.json"), groups(true)).unwrap();
    let cfg = |canary_hash: &str| {
        format!(
            r#"[global]
scrape_interval = "1s"
scrape_timeout = "1s"
[[scrape_configs]]
job_name = "pods"
[[scrape_configs.file_sd_configs]]
files = ["sd/*.json"]
[[scrape_configs.relabel_configs]]
source_labels = ["__meta_app"]
regex = "checkout"
action = "keep"
[[scrape_configs.relabel_configs]]
source_labels = ["__meta_hash"]
regex = "{canary_hash}"
target_label = "track"
replacement = "canary"
[[scrape_configs.relabel_configs]]
source_labels = ["track"]
regex = ""
target_label = "track"
replacement = "stable"
[[scrape_configs.relabel_configs]]
regex = "__meta_(app)"
action = "labelmap"
[[scrape_configs.metric_relabel_configs]]
source_labels = ["__name__"]
regex = "go_.*"
action = "drop"
"#
        )
    };
    let cfg_path = dir.path().join("augur.toml");
    std::fs::write(&cfg_path, cfg("7c9f")).unwrap();
    let mut d = Daemon::start_with(dir.path(), &cfg_path);

    let (c, s) = (canary.addr.to_string(), stable.addr.to_string());
    let t = eventually(20, "two checkout targets up", || async {
        let t = d.get_json("/api/v1/targets").await;
        let a = active(&t);
        let ok = a.len() == 2
            && [&c, &s]
                .iter()
                .all(|i| by_instance(&a, i).is_some_and(|e| e["health"] == "up"));
        ok.then_some(t)
    })
    .await;
    let a = active(&t);
    let ct = by_instance(&a, &c).unwrap();
    let file = sd.join("pods.json").display().to_string();
    assert_eq!(
        ct["labels"],
        json!({"app": "checkout", "instance": c, "job": "pods", "team": "shop", "track": "canary"})
    );
    assert_eq!(ct["discoveredLabels"]["__meta_filepath"], file.as_str());
    assert_eq!(ct["discoveredLabels"]["__meta_hash"], "7c9f");
    assert_eq!(ct["discoveredLabels"]["__address__"], c.as_str());
    assert_eq!(ct["discoveredLabels"]["__scrape_interval__"], "1s");
    assert_eq!(ct["scrapePool"], "pods");
    assert_eq!(ct["scrapeUrl"], format!("http://{c}/metrics"));
    assert_eq!(by_instance(&a, &s).unwrap()["labels"]["track"], "stable");
    let dr = dropped(&t);
    assert_eq!(dr.len(), 1, "{dr:?}");
    assert_eq!(dr[0]["discoveredLabels"]["__meta_app"], "payments");
    assert_eq!(dr[0]["scrapePool"], "pods");
    assert_eq!(t["data"]["droppedTargetCounts"], json!({"pods": 1}));
    // ?state and ?scrapePool as Prometheus.
    let only = d.get_json("/api/v1/targets?state=dropped").await;
    assert!(active(&only).is_empty());
    assert_eq!(dropped(&only).len(), 1);
    let act = d.get_json("/api/v1/targets?state=Active").await;
    assert_eq!(active(&act).len(), 2);
    assert!(act["data"]["droppedTargetCounts"].is_null());
    let none = d.get_json("/api/v1/targets?scrapePool=nope").await;
    assert!(active(&none).is_empty() && dropped(&none).is_empty());
    assert_eq!(none["data"]["droppedTargetCounts"], json!({"pods": 1}));

    // The series carry the relabeled labels; go_* was dropped by metric
    // relabeling; nothing of the dropped target was scraped.
    eventually(10, "canary series with track", || async {
        let s = d
            .export("http_requests_total{track=\"canary\",app=\"checkout\"}")
            .await;
        (s.len() == 1).then_some(())
    })
    .await;
    assert!(d.export("go_goroutines").await.is_empty());
    assert_eq!(other.requests(), 0);
    let post = d
        .export(&format!(
            "scrape_samples_post_metric_relabeling{{instance=\"{c}\"}}"
        ))
        .await;
    assert_eq!(post[0].1.last().unwrap().1, "1");

    // A change to the file: the stable pod goes, a new canary comes.
    let extra = TestTarget::start(Reply::text(BODY)).await;
    let e = extra.addr.to_string();
    let g2 = json!([
        {"targets": [c.clone(), e.clone()], "labels": {"__meta_app": "checkout", "__meta_hash": "7c9f"}}
    ]);
    std::fs::write(sd.join("pods.json"), g2.to_string()).unwrap();
    eventually(15, "stable gone, extra canary up", || async {
        let a = active(&d.get_json("/api/v1/targets").await);
        let ok = a.len() == 2
            && by_instance(&a, &s).is_none()
            && by_instance(&a, &e).is_some_and(|t| t["health"] == "up");
        ok.then_some(())
    })
    .await;
    // Stale markers end the removed target's series.
    eventually(10, "stable series ended", || async {
        let up = d.export(&format!("up{{instance=\"{s}\"}}")).await;
        let last = up.first()?.1.last()?.1.clone();
        (last.contains("NaN") || last.contains("stale")).then_some(())
    })
    .await;

    // A broken file keeps the last targets and is counted.
    std::fs::write(
        sd.join("pods.json"),
        "[{\"targets\": [\"x:1\"], \"bogus\": 1}]",
    )
    .unwrap();
    eventually(10, "sd failure counted", || async {
        (d.own_metric("augur_sd_refresh_failures_total", "file")
            .await
            >= 1.0)
            .then_some(())
    })
    .await;
    let a = active(&d.get_json("/api/v1/targets").await);
    assert_eq!(a.len(), 2, "targets kept after a bad file: {a:?}");
    assert!(
        d.log_text().contains("error reading file"),
        "{}",
        d.log_text()
    );

    // A reload with an invalid regex keeps the old config and says where.
    std::fs::write(&cfg_path, cfg("(unclosed")).unwrap();
    d.signal(Signal::SIGHUP);
    eventually(10, "failed reload reported", || async {
        (d.own_metric("augur_config_last_reload_successful", "")
            .await
            == 0.0)
            .then_some(())
    })
    .await;
    let log = d.log_text();
    assert!(
        log.contains("relabel_configs[1]: error parsing regexp"),
        "{log}"
    );
    // An unchanged reload keeps the loops (health stays up, no restart).
    std::fs::write(&cfg_path, cfg("7c9f")).unwrap();
    d.signal(Signal::SIGHUP);
    eventually(10, "reload ok", || async {
        (d.own_metric("augur_config_last_reload_successful", "")
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    for _ in 0..10 {
        let a = active(&d.get_json("/api/v1/targets").await);
        assert!(
            a.iter().all(|t| t["health"] == "up"),
            "a kept target restarted: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(d.stop(), 0);
}

#[derive(Default)]
struct SdServer {
    status: u16,
    content_type: String,
    body: String,
    headers: Vec<HeaderMap>,
}

async fn serve_sd(
    axum::extract::State(s): axum::extract::State<Arc<Mutex<SdServer>>>,
    h: HeaderMap,
) -> Response {
    let mut s = s.lock().unwrap();
    s.headers.push(h);
    (
        StatusCode::from_u16(s.status).unwrap(),
        [("content-type", s.content_type.clone())],
        s.body.clone(),
    )
        .into_response()
}

async fn sd_server(state: Arc<Mutex<SdServer>>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = Router::new().route("/sd", get(serve_sd)).with_state(state);
    tokio::spawn(async move {
        axum::serve(l, app).await.unwrap();
    });
    addr
}

/// HTTP SD: Prometheus's request headers, `__meta_url`, errors keep the
/// targets, a shorter list removes them; `target_limit` marks every
/// target down with Prometheus's message; `keep_dropped_targets`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sd_keeps_targets_on_errors_and_applies_limits() {
    let dir = tempfile::tempdir().unwrap();
    let t1 = TestTarget::start(Reply::text(BODY)).await;
    let t2 = TestTarget::start(Reply::text(BODY)).await;
    let list = |addrs: &[String]| {
        json!([{"targets": addrs, "labels": {"env": "prod"}},
               {"targets": ["10.0.0.1:9", "10.0.0.2:9"], "labels": {"env": "dev"}}])
        .to_string()
    };
    let (a1, a2) = (t1.addr.to_string(), t2.addr.to_string());
    let state = Arc::new(Mutex::new(SdServer {
        status: 200,
        content_type: "application/json; charset=utf-8".into(),
        body: list(&[a1.clone(), a2.clone()]),
        headers: Vec::new(),
    }));
    let sd = sd_server(state.clone()).await;
    let url = format!("http://{sd}/sd");
    let cfg = |target_limit: u32| {
        format!(
            r#"[global]
scrape_interval = "1s"
scrape_timeout = "1s"
[[scrape_configs]]
job_name = "web"
target_limit = {target_limit}
keep_dropped_targets = 1
[[scrape_configs.http_sd_configs]]
url = "{url}"
refresh_interval = "1s"
[[scrape_configs.relabel_configs]]
source_labels = ["env"]
regex = "prod"
action = "keep"
"#
        )
    };
    let cfg_path = dir.path().join("augur.toml");
    std::fs::write(&cfg_path, cfg(0)).unwrap();
    let mut d = Daemon::start_with(dir.path(), &cfg_path);
    let t = eventually(20, "two prod targets up", || async {
        let t = d.get_json("/api/v1/targets").await;
        let a = active(&t);
        (a.len() == 2 && a.iter().all(|x| x["health"] == "up")).then_some(t)
    })
    .await;
    let a = active(&t);
    assert_eq!(
        by_instance(&a, &a1).unwrap()["discoveredLabels"]["__meta_url"],
        url.as_str()
    );
    // Two dev targets dropped, one listed (keep_dropped_targets = 1).
    assert_eq!(dropped(&t).len(), 1);
    assert_eq!(t["data"]["droppedTargetCounts"]["web"], 2);
    {
        let s = state.lock().unwrap();
        let h = &s.headers[0];
        assert_eq!(h["accept"], "application/json");
        assert_eq!(h["x-prometheus-refresh-interval-seconds"], "1");
        assert!(h["user-agent"].to_str().unwrap().starts_with("augur/"));
    }

    // Errors keep the targets: 500, wrong content type, garbage.
    for (status, ct, body) in [
        (500, "application/json", "[]"),
        (200, "text/plain", "[]"),
        (200, "application/json", "{not json"),
    ] {
        let before = d
            .own_metric("augur_sd_refresh_failures_total", "http")
            .await;
        {
            let mut s = state.lock().unwrap();
            s.status = status;
            s.content_type = ct.into();
            s.body = body.into();
        }
        eventually(10, "failure counted", || async {
            (d.own_metric("augur_sd_refresh_failures_total", "http")
                .await
                > before)
                .then_some(())
        })
        .await;
        assert_eq!(active(&d.get_json("/api/v1/targets").await).len(), 2);
    }
    assert_eq!(d.own_metric("augur_sd_up", "http").await, 0.0);
    let log = d.log_text();
    assert!(log.contains("server returned HTTP status 500"), "{log}");
    assert!(
        log.contains("unsupported content type \\\"text/plain\\\"")
            || log.contains("unsupported content type \"text/plain\""),
        "{log}"
    );

    // A shorter answer removes the target.
    {
        let mut s = state.lock().unwrap();
        s.status = 200;
        s.content_type = "application/json".into();
        s.body = json!([{"targets": [a1.clone()], "labels": {"env": "prod"}}]).to_string();
    }
    eventually(10, "one target left", || async {
        let t = d.get_json("/api/v1/targets").await;
        (active(&t).len() == 1 && t["data"]["droppedTargetCounts"]["web"] == 0).then_some(())
    })
    .await;
    assert_eq!(d.own_metric("augur_sd_up", "http").await, 1.0);

    // target_limit: two targets over a limit of 1 are both down with
    // Prometheus's message, and listed as active.
    {
        let mut s = state.lock().unwrap();
        s.body = list(&[a1.clone(), a2.clone()]);
    }
    std::fs::write(&cfg_path, cfg(1)).unwrap();
    d.signal(Signal::SIGHUP);
    eventually(15, "all targets down over target_limit", || async {
        let a = active(&d.get_json("/api/v1/targets").await);
        let ok = a.len() == 2
            && a.iter().all(|t| {
                t["health"] == "down"
                    && t["lastError"] == "target_limit exceeded (number of targets: 2, limit: 1)"
            });
        ok.then_some(())
    })
    .await;
    assert_eq!(d.stop(), 0);
}

/// `sample_limit` counts samples after metric relabeling, with
/// Prometheus's message; `check config` reports relabel errors in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_limit_counts_after_metric_relabeling() {
    let dir = tempfile::tempdir().unwrap();
    let body: String = (0..10)
        .map(|i| format!("keep_me{{i=\"{i}\"}} 1\ndrop_me{{i=\"{i}\"}} 1\n"))
        .collect();
    let t = TestTarget::start(Reply::text(&body)).await;
    let cfg = |limit: u32| {
        format!(
            r#"[global]
scrape_interval = "1s"
scrape_timeout = "1s"
[[scrape_configs]]
job_name = "lim"
sample_limit = {limit}
static_configs = [{{ targets = ["{}"] }}]
[[scrape_configs.metric_relabel_configs]]
source_labels = ["__name__"]
regex = "drop_me"
action = "drop"
"#,
            t.addr
        )
    };
    let cfg_path = dir.path().join("augur.toml");
    std::fs::write(&cfg_path, cfg(10)).unwrap();
    let mut d = Daemon::start_with(dir.path(), &cfg_path);
    eventually(15, "10 samples kept, under the limit", || async {
        let a = active(&d.get_json("/api/v1/targets").await);
        (a.first()?["health"] == "up").then_some(())
    })
    .await;
    assert_eq!(d.export("keep_me").await.len(), 10);
    assert!(d.export("drop_me").await.is_empty());
    std::fs::write(&cfg_path, cfg(9)).unwrap();
    d.signal(Signal::SIGHUP);
    eventually(15, "over the limit: down", || async {
        let a = active(&d.get_json("/api/v1/targets").await);
        (a.first()?["lastError"] == "sample limit exceeded" && a[0]["health"] == "down")
            .then_some(())
    })
    .await;
    assert_eq!(d.stop(), 0);

    // check config: each bad rule at its line, with Prometheus's words.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[scrape_configs]]\njob_name = \"j\"\n[[scrape_configs.relabel_configs]]\naction = \"hashmod\"\nsource_labels = [\"a\"]\n[[scrape_configs.relabel_configs]]\naction = \"labeldrop\"\nregex = \"x\"\nseparator = \",\"\n[[scrape_configs.file_sd_configs]]\nfiles = [\"a/*/b.json\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let want: BTreeMap<&str, &str> = [
        (
            ":3:",
            "relabel configuration for hashmod requires non-zero modulus",
        ),
        (
            ":6:",
            "labeldrop action requires only 'regex', and no other fields",
        ),
        (
            ":11:",
            "path name \"a/*/b.json\" is not valid for file discovery",
        ),
    ]
    .into_iter()
    .collect();
    for (pos, msg) in want {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("bad.toml{pos}")) && l.contains(msg)),
            "missing {pos} {msg} in:\n{err}"
        );
    }
}
