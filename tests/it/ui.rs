//! The web pages through the real daemon, without a browser: every page
//! renders (empty daemon, running run, failed run with its abort, a run
//! whose intervals all errored, hostile label and argument values escaped),
//! the security headers, `/graph` answering the links alerts carry, the
//! run page's event stream (changed, end, 204), and SIGTERM with a stream
//! open.

use std::time::{Duration, Instant};

use crate::common::{
    config_for, eventually, rules_config, simulated, Arm, Daemon, Reply, Sink, TestTarget,
};
use serde_json::{json, Value};

const TEMPLATES: &str = r#"
[[analysis]]
name = "quick"
interval = "1s"
window = "3s"
count = 6
[analysis.args]
service = {}
[[analysis.metric]]
name = "errors"
check = "test"
test = "sequential-counts"
direction = "increase"
critical = true
errors = 'sum(increase(http_requests_total{service="{{ args.service }}", track="{{ track }}", code=~"5.."}[{{ interval }}]))'
total = 'sum(increase(http_requests_total{service="{{ args.service }}", track="{{ track }}"}[{{ interval }}]))'
[[analysis.metric]]
name = "error rate"
check = "relative"
max_delta = 0.05
query = '(sum(rate(http_requests_total{service="{{ args.service }}", track="{{ track }}", code=~"5.."}[{{ window }}])) or vector(0)) / sum(rate(http_requests_total{service="{{ args.service }}", track="{{ track }}"}[{{ window }}]))'
[[analysis.metric]]
name = "traffic"
check = "threshold"
min = 1
canary = 'sum(rate(http_requests_total{service="{{ args.service }}", track="{{ track }}"}[{{ window }}]))'

[[analysis]]
name = "broken"
interval = "1s"
window = "1s"
count = 3
consecutive_error_limit = 3
[[analysis.metric]]
name = "many series"
check = "threshold"
max = 1
canary = 'http_requests_total'
"#;

async fn get(d: &Daemon, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = reqwest::get(d.url(path)).await.unwrap();
    let (code, headers) = (r.status().as_u16(), r.headers().clone());
    (code, headers, r.text().await.unwrap())
}

async fn start_run(d: &Daemon, body: Value) -> String {
    let r = reqwest::Client::new()
        .post(d.url("/api/v1/analysis/runs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

async fn run_state(d: &Daemon, id: &str) -> Value {
    d.get_json(&format!("/api/v1/analysis/runs/{id}")).await["data"].clone()
}

fn daemon_with(dir: &std::path::Path, targets: &[std::net::SocketAddr], extra: &str) -> Daemon {
    let cfg = format!(
        "{TEMPLATES}\n{extra}\n{}",
        config_for(&[(
            "shop",
            "scrape_interval = \"250ms\"\nscrape_timeout = \"250ms\"",
            targets,
            "labels = { evil = '\"><script>alert(1)</script>' }"
        )])
    );
    Daemon::start(dir, &cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_for_an_empty_daemon_with_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &config_for(&[]));
    for path in [
        "/",
        "/runs",
        "/rollouts",
        "/graph",
        "/graph?g0.expr=up&g0.tab=1",
        "/rollouts/shop/none",
    ] {
        let (code, h, body) = get(&d, path).await;
        assert_eq!(code, 200, "{path}: {body}");
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(body.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(
            !body.contains("<script>") && !body.contains("style=\""),
            "no inline script or style: {path}"
        );
    }
    let (code, _, _) = get(&d, "/runs/nope").await;
    assert_eq!(code, 404);
    // The assets are served under their fingerprinted names, cached for good.
    let (_, _, page) = get(&d, "/").await;
    let css = page
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|p| p.ends_with(".css")))
        .unwrap()
        .to_string();
    let (code, h, body) = get(&d, &css).await;
    assert_eq!(code, 200);
    assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
    assert!(body.contains("prefers-color-scheme: dark"));
    let (code, _, _) = get(&d, "/static/augur.deadbeef.css").await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_page_shows_the_verdict_charts_evidence_and_the_abort() {
    let t = simulated(vec![("web", Arm::HEALTHY, Some(Arm::BROKEN))]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon_with(dir.path(), &[t.addr], "");
    let id = start_run(
        &d,
        json!({"template": "quick", "args": {"service": "web"}, "initial_delay": "2s",
               "rollout": {"namespace": "shop", "name": "web", "revision": "r1"}}),
    )
    .await;
    // While it runs: a live page.
    let (_, _, live) = get(&d, &format!("/runs/{id}")).await;
    assert!(
        live.contains("data-live-url="),
        "a running run's page is live"
    );
    assert!(live.contains("<noscript><meta http-equiv=\"refresh\""));
    let run = eventually(40, "the run to fail", || async {
        let r = run_state(&d, &id).await;
        (r["state"] == "failed").then_some(r)
    })
    .await;
    eventually(10, "the abort decision", || async {
        let ds = d.get_json("/api/v1/decisions").await;
        (ds["data"][0]["decision"] == "abort").then_some(())
    })
    .await;
    let (code, _, page) = get(&d, &format!("/runs/{id}")).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("<title>✗ failed · shop/web #"),
        "{}",
        &page[..400]
    );
    // The verdict sentence, escaped as text.
    let msg = run["message"].as_str().unwrap();
    let escaped = msg
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    assert!(page.contains(&escaped), "the verdict sentence: {msg}");
    // One section per metric, a phase grid, baseline and canary series, the
    // evidence chart with its abort line and the crossing.
    for m in ["errors", "error-rate", "traffic"] {
        assert!(page.contains(&format!("id=\"metric-{m}\"")), "{m}");
    }
    assert!(page.contains("table class=\"grid\""));
    let intervals = run["intervals"].as_u64().unwrap() as usize;
    let canary_points = page.matches("<rect class=\"pt s-canary\"").count();
    assert!(
        canary_points >= intervals,
        "{canary_points} canary points for {intervals} intervals"
    );
    assert!(page.contains("abort below"), "the level line");
    assert!(page.contains("crossed at #"), "the crossing");
    assert!(
        page.contains("class=\"band band-pass\""),
        "the threshold band"
    );
    assert!(page.contains("max_delta"), "the relative limit");
    // The queries with the arguments filled in, and a /graph link.
    assert!(
        page.contains("service=&quot;web&quot;, track=&quot;canary&quot;"),
        "filled-in queries"
    );
    assert!(page.contains("/graph?g0.expr="));
    // The decision story: audit, decision, the action.
    assert!(page.contains("analysis.failed"), "audit");
    assert!(
        page.contains("decision.abort") || page.contains("abort</span> by analysis:"),
        "decision"
    );
    // Not live once final.
    assert!(!page.contains("data-live-url="));
    // The overview lists it with its decision.
    let (_, _, overview) = get(&d, "/").await;
    assert!(overview.contains(&format!("/runs/{id}")));
    assert!(
        overview.contains("✗ abort") || overview.contains("abort</span>"),
        "decision on the overview"
    );
    // A run page renders fast enough to measure.
    let started = Instant::now();
    for _ in 0..10 {
        get(&d, &format!("/runs/{id}?live=0")).await;
    }
    eprintln!(
        "run page ({intervals} intervals): {:.1} ms per request, {} bytes",
        started.elapsed().as_secs_f64() * 100.0,
        page.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_escaped_and_errored_runs_render() {
    let t = simulated(vec![("web", Arm::HEALTHY, Some(Arm::HEALTHY))]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon_with(dir.path(), &[t.addr], "");
    let evil = "\"><script>alert(1)</script>";
    let id = start_run(&d, json!({"template": "quick", "args": {"service": evil}})).await;
    let broken = start_run(&d, json!({"template": "broken"})).await;
    eventually(60, "the broken run to end", || async {
        (run_state(&d, &broken).await["state"] != "running").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for path in [
        format!("/runs/{id}"),
        format!("/runs/{broken}"),
        "/".to_string(),
        "/runs".to_string(),
        "/graph?g0.expr=up&g0.tab=1".to_string(),
        "/graph?g0.expr=up&g0.tab=0&g0.range_input=1m".to_string(),
        format!(
            "/graph?g0.expr={}",
            form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
        ),
    ] {
        let (code, _, page) = get(&d, &path).await;
        assert_eq!(code, 200, "{path}");
        assert!(!page.contains("<script>alert(1)"), "{path} is not escaped");
    }
    let (_, _, table) = get(&d, "/graph?g0.expr=up&g0.tab=1").await;
    assert!(
        table.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the label is shown, escaped"
    );
    let (_, _, bad) = get(
        &d,
        &format!(
            "/graph?g0.expr={}",
            form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
        ),
    )
    .await;
    assert!(bad.contains("class=\"error\""), "a parse error is shown");
    let (_, _, errored) = get(&d, &format!("/runs/{broken}")).await;
    assert!(
        errored.contains("no data for"),
        "an all-error metric has no chart: {}",
        &errored[..300]
    );
    assert!(errored.contains("! error"), "error cells in the grid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_links_open_graph_with_the_series() {
    let target = TestTarget::start(Reply::text(
        "# TYPE queue_depth gauge\nqueue_depth{queue=\"orders\"} 5\n",
    ))
    .await;
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        crate::common::backlog_rules("0s"),
    )
    .unwrap();
    let extra = format!(
        "[notify]\n[[notify.webhook]]\nname = \"hook\"\nurl = \"http://{}/\"\n",
        sink.addr
    );
    let d = Daemon::start(dir.path(), &rules_config(target.addr, &extra));
    let url = eventually(30, "a firing alert sent to the webhook", || async {
        sink.bodies().iter().find_map(|b| {
            let v: Value = serde_json::from_str(b).ok()?;
            v["alerts"][0]["generatorURL"].as_str().map(str::to_string)
        })
    })
    .await;
    assert!(url.contains("/graph?g0.expr="), "{url}");
    // The daemon listens on an ephemeral port; the link's path and query are what count.
    let path = &url[url.find("/graph").unwrap()..];
    let r = reqwest::get(d.url(path)).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let page = r.text().await.unwrap();
    assert!(page.contains("queue_depth"), "the expression");
    assert!(page.contains("orders"), "the series");
    let _ = d;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_event_stream_says_changed_then_end_and_never_blocks_sigterm() {
    let t = simulated(vec![("web", Arm::HEALTHY, Some(Arm::HEALTHY))]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon_with(dir.path(), &[t.addr], "");
    let id = start_run(
        &d,
        json!({"template": "quick", "args": {"service": "web"}, "count": 3}),
    )
    .await;
    let mut r = reqwest::get(d.url(&format!("/runs/{id}/events")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let started = Instant::now();
    let mut text = String::new();
    while !text.contains("event: end") {
        match tokio::time::timeout(Duration::from_secs(20), r.chunk()).await {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            other => panic!("stream stopped early: {other:?}; so far: {text}"),
        }
    }
    assert!(text.contains("event: changed"), "{text}");
    let first_change = text.find("event: changed").unwrap();
    assert!(first_change < text.find("event: end").unwrap());
    eprintln!(
        "run events: {:.1} s from open to end",
        started.elapsed().as_secs_f64()
    );
    // A final run: 204, the SSE "stop reconnecting".
    let again = reqwest::get(d.url(&format!("/runs/{id}/events")))
        .await
        .unwrap();
    assert_eq!(again.status(), 204);
    // An open stream on a running run does not hold SIGTERM up.
    let id2 = start_run(
        &d,
        json!({"template": "quick", "args": {"service": "web"}, "count": 100}),
    )
    .await;
    let mut open = reqwest::get(d.url(&format!("/runs/{id2}/events")))
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), open.chunk()).await;
    let t0 = Instant::now();
    let code = d.stop();
    assert_eq!(code, 0);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "SIGTERM took {:?} with a stream open",
        t0.elapsed()
    );
}
