//! The web pages through the real daemon, without a browser: every page
//! renders (empty daemon, running run, failed run with its abort, a run
//! whose intervals all errored, hundreds of intervals, hostile label and
//! argument values escaped), the security headers, `/graph` answering the
//! links alerts carry, the alerts/rules/targets/decisions pages with their
//! filters and no secret shown, every link under `external_url`'s prefix, the event streams (a run's: changed, end,
//! 204; the global one: changed when a run starts), and SIGTERM with a
//! stream open.

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
        "/query?g0.expr=up&g0.tab=table",
        "/rollouts/shop/none",
        "/alerts",
        "/alerts?state=firing,pending&search=x",
        "/rules",
        "/rules?health=err&type=recording",
        "/targets",
        "/targets?health=down&pool=none",
        "/decisions",
        "/decisions?decision=abort",
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
    let links = "[ui]\ngrafana_url = \"https://grafana.example/d/x?var-namespace={{namespace}}&var-name={{name}}&from={{from_ms}}\"\n\
        links = [{ name = \"Explore\", url = \"https://grafana.example/explore?m={{metric}}&q={{query_canary}}\" }]\n";
    let d = daemon_with(dir.path(), &[t.addr], links);
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
    assert!(live.contains("Why not decided yet: "), "{}", &live[..1500]);
    assert!(
        live.contains(
            "curl -X DELETE -H &quot;Authorization: Bearer $AUGUR_TOKEN&quot; 'http://127.0.0.1:"
        ) && live.contains(&format!("/api/v1/analysis/runs/{id}'</code>")),
        "the cancel curl: {}",
        live.split("curl -X DELETE")
            .nth(1)
            .unwrap_or("none")
            .chars()
            .take(200)
            .collect::<String>()
    );
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
    // [ui] links: per run (Grafana) and per metric (Explore, with its query).
    assert!(
        page.contains("https://grafana.example/d/x?var-namespace=shop&amp;var-name=web&amp;from=1"),
        "the Grafana link"
    );
    assert!(
        page.contains("https://grafana.example/explore?m=error+rate&amp;q=%28sum%28rate"),
        "a per-metric link with its filled-in query"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_rules_targets_and_decisions_pages_show_state_errors_and_no_secret() {
    let t = simulated(vec![("web", Arm::HEALTHY, Some(Arm::BROKEN))]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: shop\n    interval: 1s\n    rules:\n      - alert: WebUp\n        expr: up{job=\"shop\"} == 1\n        labels:\n          severity: page\n        annotations:\n          summary: web is up\n      - alert: NeverFires\n        expr: vector(0) > 1\n      - record: broken:many\n        expr: up + on() up\n",
    )
    .unwrap();
    // A dead target, a receiver that never answers and an action sink whose
    // URL carries a token: none of it may kill a page or leak the token.
    let cfg = format!(
        r#"rule_files = ["rules.yml"]
{TEMPLATES}
[storage]
retention = "1h"
[global]
scrape_interval = "1s"
scrape_timeout = "1s"
evaluation_interval = "1s"
[notify]
[[notify.webhook]]
name = "pager"
url = "http://127.0.0.1:1/alerts?key=sekrit-notify"
[actions]
[[actions.webhook]]
name = "deployer"
url = "http://127.0.0.1:1/hook?token=sekrit-action"
headers = {{ "X-Api-Key" = "sekrit-header" }}
[[scrape_configs]]
job_name = "shop"
scrape_interval = "250ms"
scrape_timeout = "250ms"
[[scrape_configs.static_configs]]
targets = ["{}"]
labels = {{ evil = '"><script>alert(1)</script>' }}
[[scrape_configs]]
job_name = "gone"
[[scrape_configs.static_configs]]
targets = ["127.0.0.1:1"]
"#,
        t.addr
    );
    let d = Daemon::start(dir.path(), &cfg);
    let id = start_run(
        &d,
        json!({"template": "quick", "args": {"service": "web"}, "initial_delay": "2s",
               "rollout": {"namespace": "shop", "name": "web", "revision": "r1"}}),
    )
    .await;
    eventually(40, "the abort, its action failing", || async {
        let ds = d.get_json("/api/v1/decisions").await;
        (ds["data"][0]["actions"][0]["attempts"].as_i64() >= Some(1)).then_some(())
    })
    .await;
    eventually(20, "the alert firing and the receiver failing", || async {
        let (_, _, page) = get(&d, "/alerts").await;
        (page.contains("firing (1)") && page.contains("pager")).then_some(())
    })
    .await;
    let (code, _, alerts) = get(&d, "/alerts").await;
    assert_eq!(code, 200);
    assert!(
        alerts.contains("<title>✗ 1 firing · Alerts · augur</title>"),
        "{}",
        &alerts[..600]
    );
    assert!(alerts.contains("WebUp") && alerts.contains("NeverFires"));
    assert!(
        alerts.contains("/graph?g0.expr=up%7Bjob%3D%22shop%22%7D+%3D%3D+1"),
        "expr links to /graph"
    );
    assert!(alerts.contains("web is up"), "the annotation");
    assert!(alerts.contains("id=\"notifications\""), "the outbox card");
    assert!(
        !alerts.contains("<script>alert(1)"),
        "label values are escaped"
    );
    assert!(
        alerts.contains("evil=&quot;&gt;&lt;script&gt;"),
        "and shown"
    );
    // Filters are in the URL.
    let (_, _, inactive) = get(&d, "/alerts?state=inactive").await;
    assert!(inactive.contains("NeverFires") && !inactive.contains("WebUp"));
    let (_, _, searched) = get(&d, "/alerts?search=webup").await;
    assert!(searched.contains("WebUp") && !searched.contains("NeverFires"));

    let (_, _, rules) = get(&d, "/rules").await;
    assert!(rules.contains("Rule failed to evaluate"), "the error row");
    assert!(rules.contains("every 1s") && rules.contains("last run"));
    let (_, _, errs) = get(&d, "/rules?health=err").await;
    assert!(errs.contains("broken:many") && !errs.contains("WebUp"));

    let (_, _, targets) = get(&d, "/targets").await;
    assert!(targets.contains("Error scraping target"), "the error row");
    assert!(targets.contains("0 / 1 up") && targets.contains("1 / 1 up"));
    assert!(!targets.contains("<script>alert(1)"));
    let (_, _, down) = get(&d, "/targets?health=down").await;
    assert!(down.contains("127.0.0.1:1") && !down.contains(&t.addr.to_string()));

    let (_, _, decisions) = get(&d, "/decisions").await;
    assert!(decisions.contains("✗ abort"), "the abort");
    assert!(
        decisions.contains(&format!("/runs/{id}")),
        "linked to its run"
    );
    assert!(
        decisions.contains("Idempotency-Key: shop/web/r1/abort/deployer"),
        "the equivalent curl"
    );
    assert!(
        decisions.contains("X-Api-Key: $X_API_KEY"),
        "header values stay variables"
    );
    assert!(decisions.contains("token=REDACTED"));
    let (_, _, run) = get(&d, &format!("/runs/{id}")).await;
    assert!(
        run.contains("Detection: first failing interval #"),
        "detection line"
    );
    assert!(
        run.contains("not carried out yet: deployer"),
        "the action still failing"
    );
    // No page and no API answer carries a secret.
    for path in [
        "/decisions",
        "/alerts",
        &format!("/runs/{id}"),
        "/api/v1/decisions",
        "/api/v1/notifications",
        "/api/v1/audit",
        "/rollouts/shop/web",
    ] {
        let (_, _, body) = get(&d, path).await;
        for secret in ["sekrit-action", "sekrit-notify", "sekrit-header"] {
            assert!(!body.contains(secret), "{path} shows {secret}");
        }
    }
    // The nav counts what is wrong.
    let (_, _, overview) = get(&d, "/").await;
    assert!(overview.contains("title=\"firing\">1<") && overview.contains("title=\"down\">1<"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_event_stream_says_changed_when_a_run_starts() {
    let t = simulated(vec![("web", Arm::HEALTHY, Some(Arm::HEALTHY))]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon_with(dir.path(), &[t.addr], "");
    let (_, _, overview) = get(&d, "/").await;
    assert!(
        overview.contains("data-live-url=\"/-/ui/events\""),
        "the overview is live"
    );
    let mut r = reqwest::get(d.url("/-/ui/events")).await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("event: hello") {
        let c = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await;
        text.push_str(&String::from_utf8_lossy(&c.unwrap().unwrap().unwrap()));
    }
    let started = Instant::now();
    start_run(&d, json!({"template": "quick", "args": {"service": "web"}})).await;
    while !text.contains("event: changed") {
        match tokio::time::timeout(Duration::from_secs(10), r.chunk()).await {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            other => panic!("no change event: {other:?}; so far: {text}"),
        }
    }
    eprintln!(
        "global events: run start reached the stream in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let (_, _, overview) = get(&d, "/").await;
    assert!(
        overview.contains("<title>▶ 1 running · Overview"),
        "the title carries the state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_hundreds_of_intervals_renders_whole_and_small() {
    let dir = tempfile::tempdir().unwrap();
    let many = "[[analysis]]\nname = \"many\"\ninterval = \"50ms\"\nwindow = \"1s\"\ncount = 200\n\
        [[analysis.metric]]\nname = \"constant\"\ncheck = \"threshold\"\nmax = 2\ncanary = 'vector(1)'\n\
        [[analysis.metric]]\nname = \"ratio\"\ncheck = \"relative\"\nmax_ratio = 2\nbaseline = 'vector(1)'\ncanary = 'vector(1.1)'\n";
    let d = Daemon::start(dir.path(), &format!("{many}\n{}", config_for(&[])));
    let id = start_run(&d, json!({"template": "many"})).await;
    let run = eventually(120, "200 intervals", || async {
        let r = run_state(&d, &id).await;
        (r["state"] != "running").then_some(r)
    })
    .await;
    assert_eq!(run["state"], "passed", "{run}");
    assert_eq!(run["intervals"], 200);
    let started = Instant::now();
    let (code, _, page) = get(&d, &format!("/runs/{id}")).await;
    let took = started.elapsed();
    assert_eq!(code, 200);
    assert!(
        page.contains("<th>200</th>"),
        "every interval has a grid column"
    );
    // Past 60 points a series is its line alone: one path through all 200.
    let d_attr = page
        .split("class=\"line s-canary\" d=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a canary line");
    assert_eq!(d_attr.matches('l').count(), 199, "one segment per interval");
    assert_eq!(
        page.matches("<rect class=\"pt s-canary\"").count(),
        0,
        "no crowded markers"
    );
    assert!(
        page.contains("earlier passing measurements are in"),
        "the table is cut, the JSON has all"
    );
    eprintln!(
        "200-interval run page through the daemon: {} bytes, {:.1} ms (debug build, with HTTP)",
        page.len(),
        took.as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_link_carries_the_external_url_path_prefix() {
    // Behind a reverse proxy that serves augur under /augur/ and strips it.
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "[server]\nexternal_url = \"http://proxy.example/augur/\"\n{}",
            config_for(&[])
        ),
    );
    for path in ["/", "/alerts", "/rules", "/targets", "/decisions", "/graph"] {
        let (code, _, page) = get(&d, path).await;
        assert_eq!(code, 200, "{path}");
        let hrefs: Vec<&str> = page
            .split(" href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .chain(
                page.split(" src=\"")
                    .skip(1)
                    .filter_map(|s| s.split('"').next()),
            )
            .chain(
                page.split(" action=\"")
                    .skip(1)
                    .filter_map(|s| s.split('"').next()),
            )
            .collect();
        assert!(hrefs.len() > 8, "{path}: {hrefs:?}");
        for h in hrefs {
            assert!(
                h.starts_with("/augur/") || h.starts_with("http") || h.starts_with('#'),
                "{path}: {h} misses the prefix"
            );
        }
        if path != "/graph" {
            assert!(
                page.contains("data-live-url=\"/augur/-/ui/events\""),
                "{path}: the event stream too"
            );
        }
    }
}
