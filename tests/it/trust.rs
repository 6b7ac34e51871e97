//! Nothing a client sends can crash, freeze or fool the daemon: the
//! reliability probe's reproductions (deep and huge PromQL, unbounded
//! ranges and exports, slow rules, clients that go away, absurd
//! schedules, no-data runs, path tricks in names, unbounded run creation,
//! silently dropped input) and variants, each against the real binary,
//! which must answer a 4xx with a reason, stay healthy while the bad
//! requests run, and stop on SIGTERM in time.

use std::time::{Duration, Instant};

use crate::common::{config_for, eventually, Daemon, Reply, TestTarget};
use serde_json::{json, Value};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn query_post(d: &Daemon, q: &str) -> (u16, Value) {
    let r = http()
        .post(d.url("/api/v1/query"))
        .form(&[("query", q)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `/-/healthy` answers within `secs` (the daemon is not frozen).
async fn healthy_within(d: &Daemon, secs: u64) {
    let t = Instant::now();
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(secs))
        .build()
        .unwrap()
        .get(d.url("/-/healthy"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/-/healthy did not answer within {secs}s: {e}"));
    assert_eq!(r.status().as_u16(), 200);
    assert!(t.elapsed() < Duration::from_secs(secs));
}

/// CPU seconds the process has used (utime + stime from /proc).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_long_and_unbounded_queries_get_400_and_the_daemon_lives() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(Reply::text("up 1\nmy_gauge 2\n")).await;
    let d = Daemon::start(dir.path(), &config_for(&[("x", "", &[t.addr], "")]));
    let n = 1500;
    let shapes = [
        format!("{}up{}", "abs(".repeat(n), ")".repeat(n)),
        format!("{}up{}", "sum(".repeat(n), ")".repeat(n)),
        format!("{}up", "-".repeat(30_000)),
        format!("up{}", " + up".repeat(20_000)),
        format!("up{}", " ^ up".repeat(20_000)),
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}up{}", "max_over_time(".repeat(150), "[1m:])".repeat(150)),
        format!("up{{a=\"{}\"}}", "x".repeat(300_000)),
    ];
    for q in &shapes {
        let (status, v) = query_post(&d, q).await;
        assert_eq!(status, 400, "{}: {v}", &q[..40]);
        assert_eq!(v["errorType"], "bad_data");
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.contains("nests deeper than") || msg.contains("bytes long"),
            "{msg}"
        );
    }
    // The same limits hold for selectors and for range queries.
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("match[]", &shapes[0])
        .finish();
    let (status, _) = d.get_text(&format!("/api/v1/series?{q}")).await;
    assert_eq!(status, 400);
    for (start, end, step) in [
        ("-9e15", "9e15", "1e12"),
        ("-1e300", "1e300", "1"),
        ("0", "9e15", "1"),
        ("0", "100", "0.0001"),
    ] {
        let (status, body) = d
            .get_text(&format!(
                "/api/v1/query_range?query=up&start={start}&end={end}&step={step}&timeout=2s"
            ))
            .await;
        assert_eq!(status, 400, "{start} {end} {step}: {body}");
        assert!(!body.contains("panicked"), "{body}");
    }
    let (status, body) = d.get_text("/api/v1/query?query=up&time=1e300").await;
    assert_eq!(status, 400, "{body}");
    healthy_within(&d, 2).await;
    let (_, v) = query_post(&d, "sum(up)").await;
    assert_eq!(v["status"], "success", "still answers queries: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_queries_are_located_without_freezing_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "");
    // Every prefix of these is "unfinished": a per-prefix search for the
    // error position would take minutes each.
    let q1 = format!("up{{a=\"{}\"}}}}", "x".repeat(120_000));
    let matchers: Vec<String> = (0..5000).map(|i| format!("l{i}=\"v\"")).collect();
    let q2 = format!("up{{{}}} offset 5m bar", matchers.join(","));
    let started = Instant::now();
    let (a, b, _) = tokio::join!(query_post(&d, &q1), query_post(&d, &q2), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        healthy_within(&d, 1).await;
    });
    assert_eq!(a.0, 400, "{}", a.1);
    assert_eq!(b.0, 400, "{}", b.1);
    assert!(a.1["error"]
        .as_str()
        .unwrap()
        .contains("parse error: unexpected"));
    assert!(b.1["error"]
        .as_str()
        .unwrap()
        .contains("unexpected identifier \"bar\""));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_its_query_and_sigterm_still_exits() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(Reply::text("up 1\n")).await;
    let d = Daemon::start(
        dir.path(),
        &format!(
            "[query]\ntimeout = \"10m\"\n{}",
            config_for(&[("x", "", &[t.addr], "")])
        ),
    );
    let pid = d.pid();
    eventually(10, "a scrape", || async {
        let v = d.get_json("/api/v1/query?query=up").await;
        (!v["data"]["result"].as_array()?.is_empty()).then_some(())
    })
    .await;
    // A subquery of 3 * 10^12 steps: runs until cancelled.
    let slow = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(d.url("/api/v1/query?query=max_over_time(up%5B100y%3A1ms%5D)"))
        .send()
        .await;
    assert!(slow.is_err(), "the client gave up");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 1.5,
        "the abandoned query still burns a core: {used}s in 3s"
    );
    // And with the client waiting, the query's own timeout answers 503.
    let (status, body) = d
        .get_text("/api/v1/query?query=max_over_time(up%5B100y%3A1ms%5D)&timeout=1s")
        .await;
    assert_eq!(status, 503, "{body}");
    // SIGTERM while another such query runs: the process exits in time.
    let url = d.url("/api/v1/query?query=max_over_time(up%5B100y%3A1ms%5D)");
    let hold = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut d = d;
    let t0 = Instant::now();
    let code = d.stop();
    assert_eq!(code, 0);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "stopped after {:?}",
        t0.elapsed()
    );
    hold.abort();
    assert!(d.log_text().contains("store snapshot written"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_never_finishes_blocks_neither_the_api_nor_scrapes_nor_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slow.yml"),
        "groups:\n  - name: slow\n    interval: 1s\n    rules:\n      - record: slow:max\n        expr: max_over_time(up[100y:1s])\n      - alert: AlwaysPending\n        expr: up > 0\n        for: 10m\n",
    )
    .unwrap();
    let t = TestTarget::start(Reply::text("up 1\n")).await;
    let d = Daemon::start(
        dir.path(),
        &format!(
            "rule_files = [\"{}\"]\n[query]\ntimeout = \"3s\"\n{}",
            dir.path().join("slow.yml").display(),
            config_for(&[("x", "", &[t.addr], "")])
        ),
    );
    // While the slow rule is evaluating, the rule API answers at once.
    for _ in 0..5 {
        let t0 = Instant::now();
        let (status, _) = d.get_text("/api/v1/rules").await;
        assert_eq!(status, 200);
        let (status, _) = d.get_text("/api/v1/alerts").await;
        assert_eq!(status, 200);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        healthy_within(&d, 1).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // The rule times out with the query timeout and says so.
    let v = eventually(20, "the slow rule to time out", || async {
        let v = d.get_json("/api/v1/rules").await;
        let r = v["data"]["groups"][0]["rules"][0].clone();
        (r["health"] == "err").then_some(r)
    })
    .await;
    assert!(
        v["lastError"].as_str().unwrap().contains("timed out"),
        "{v}"
    );
    // Scrapes went on meanwhile.
    let before = t.requests();
    eventually(10, "a scrape while the rule is stuck", || async {
        (t.requests() > before).then_some(())
    })
    .await;
    let mut d = d;
    let t0 = Instant::now();
    assert_eq!(d.stop(), 0);
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_bounded_by_max_samples_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let body: String = (0..300)
        .map(|i| format!("card{{id=\"{i}\"}} {i}\n"))
        .collect();
    let t = TestTarget::start(Reply::text(&body)).await;
    let d = Daemon::start(
        dir.path(),
        &format!(
            "[query]\nmax_samples = 1000\n{}",
            config_for(&[("x", "", &[t.addr], "")])
        ),
    );
    eventually(20, "five scrapes", || async {
        let v = d
            .get_json("/api/v1/query?query=count_over_time(card%7Bid%3D%220%22%7D%5B1h%5D)")
            .await;
        (v["data"]["result"][0]["value"][1]
            .as_str()?
            .parse::<u32>()
            .ok()?
            >= 5)
            .then_some(())
    })
    .await;
    let (status, body) = d
        .get_text("/api/v1/export?match[]=%7B__name__%3D~%22card%22%7D")
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("too many samples"), "{body}");
    // Within the limit: the whole matrix, as valid JSON.
    let rows = d.export("card{id=~\"1.\"}").await;
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|(_, v)| v.len() >= 5));
}

async fn post_json(d: &Daemon, path: &str, body: Value) -> (u16, Value) {
    let r = http().post(d.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const PROBE_TEMPLATE: &str = r#"
[[analysis]]
name = "probe"
interval = "1s"
window = "10s"
count = 3

[[analysis.metric]]
name = "gauge"
check = "threshold"
max = 100
canary = 'sum(my_gauge{track="{{ track }}"})'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_schedules_bad_names_and_wrong_types_are_400s() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), PROBE_TEMPLATE);
    for (field, value) in [
        ("initial_delay", "9223372036854775807ms"),
        ("interval", "9223372036854775807ms"),
        ("window", "100000y"),
        ("interval", "0s"),
    ] {
        let (status, v) = post_json(
            &d,
            "/api/v1/analysis/runs",
            json!({"template": "probe", field: value, "count": 2}),
        )
        .await;
        assert_eq!(status, 400, "{field}={value}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with(field), "{v}");
    }
    // Names that would travel into Kubernetes URLs or logs.
    for (ns, name) in [
        (
            "shop",
            "checkout%2F..%2F..%2Fapi%2Fv1%2Fnamespaces%2Fkube-system%2Fpods%2Fx%3Fq=1%23",
        ),
        ("a%20b", "web"),
        ("shop", "%0d%0aX-Injected:%201"),
        ("Shop", "web"),
    ] {
        let r = http()
            .post(d.url(&format!("/api/v1/rollouts/{ns}/{name}/abort")))
            .json(&json!({"revision": "r9"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{ns}/{name}");
    }
    let (status, v) = post_json(
        &d,
        "/api/v1/analysis/runs",
        json!({"template": "probe", "rollout": {"namespace": "shop", "name": "../x", "revision": "r1"}}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post_json(
        &d,
        "/flagger/pre-rollout",
        json!({"name": "web\r\nX: 1", "namespace": "shop", "checksum": "c1", "metadata": {"template": "probe"}}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post_json(
        &d,
        "/flagger/pre-rollout",
        json!({"name": "web", "namespace": "shop", "checksum": "c1", "metadata": {"template": "probe", "interval": "0s"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(v.as_str().unwrap().starts_with("metadata.interval"), "{v}");
    // A number where a string is expected is refused, not dropped.
    let (status, v) = post_json(
        &d,
        "/api/v1/rollouts/shop/checkout/abort",
        json!({"revision": 5}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.as_str().unwrap().contains("revision"), "{v}");
    let (status, _) = post_json(
        &d,
        "/api/v1/rollouts/shop/checkout/abort",
        json!({"revison": "r1"}),
    )
    .await;
    assert_eq!(status, 400, "a misspelt field");
    for path in [
        "/api/v1/audit?limit=-1",
        "/api/v1/audit?limit=abc",
        "/api/v1/decisions?limit=-5",
        "/api/v1/analysis/runs?limit=x",
        "/api/v1/notifications?status=bogus",
    ] {
        let (status, body) = d.get_text(path).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    // 405s say why, and name what is allowed.
    let r = http().put(d.url("/api/v1/query")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert!(r.headers().contains_key("allow"));
    assert!(!r.text().await.unwrap().is_empty());
    // Nothing was recorded from any of it.
    let v = d.get_json("/api/v1/decisions").await;
    assert!(v["data"].as_array().unwrap().is_empty(), "{v}");
    assert!(!d.log_text().contains("X-Injected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_no_data_never_passes_and_answers_argo_and_flagger_so() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(Reply::text("up 1\n")).await;
    // inconclusive_limit above count: Argo's arithmetic would pass.
    let cfg = format!(
        "{}{}",
        PROBE_TEMPLATE.replace("count = 3", "count = 2\ninconclusive_limit = 5"),
        config_for(&[("x", "", &[t.addr], "")])
    );
    let d = Daemon::start(dir.path(), &cfg);
    let (status, v) = post_json(&d, "/api/v1/analysis/runs", json!({"template": "probe"})).await;
    assert_eq!(status, 201, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let run = eventually(20, "the run to end", || async {
        let v = d.get_json(&format!("/api/v1/analysis/runs/{id}")).await;
        (v["data"]["state"] != "running").then(|| v["data"].clone())
    })
    .await;
    assert_eq!(run["state"], "inconclusive", "{run}");
    assert!(
        !run["message"].as_str().unwrap().contains("metrics passed"),
        "{run}"
    );
    // Argo: inconclusive while no data has been seen, and at the end.
    let q = "/api/v1/argo/probe?key=argo-nodata&count=2";
    let v = d.get_json(q).await;
    assert_eq!(v["verdict"], "pass", "nothing measured yet: {v}");
    let v = eventually(10, "a measured interval", || async {
        let v = d.get_json(q).await;
        (v["intervals"].as_u64()? >= 1).then_some(v)
    })
    .await;
    assert_eq!(v["verdict"], "inconclusive", "{v}");
    // Flagger: halted.
    let body = json!({"name": "web", "namespace": "shop", "checksum": "c1",
        "metadata": {"template": "probe"}});
    eventually(15, "Flagger to be halted", || async {
        let (status, v) = post_json(&d, "/flagger/rollout", body.clone()).await;
        (status == 403).then_some(v)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_runs_are_capped_and_a_new_flagger_revision_supersedes_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[state]\nmax_running_analyses = 3\n{}",
        // No data, but a high limit: the runs stay running.
        PROBE_TEMPLATE.replace("count = 3", "count = 1000\ninconclusive_limit = 1000")
    );
    let d = Daemon::start(dir.path(), &cfg);
    let hook = |checksum: &str| {
        json!({"name": "web", "namespace": "shop", "checksum": checksum,
            "metadata": {"template": "probe"}})
    };
    // Fresh checksums for one canary: each new revision ends the last.
    for c in ["c1", "c2", "c3", "c4", "c5"] {
        let (status, v) = post_json(&d, "/flagger/pre-rollout", hook(c)).await;
        assert_eq!(status, 200, "{c}: {v}");
    }
    let v = d.get_json("/api/v1/analysis/runs?state=running").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["data"][0]["key"].as_str().unwrap().contains("/c5/"));
    let v = d.get_json("/api/v1/analysis/runs?state=cancelled").await;
    let all = d.get_json("/api/v1/analysis/runs").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 4, "{all}");
    assert!(v["data"][0]["message"]
        .as_str()
        .unwrap()
        .contains("superseded"));
    // Other canaries fill the cap; the next is refused with the reason.
    for name in ["a", "b"] {
        let (status, _) = post_json(
            &d,
            "/flagger/pre-rollout",
            json!({"name": name, "namespace": "shop", "checksum": "x", "metadata": {"template": "probe"}}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, v) = post_json(&d, "/api/v1/analysis/runs", json!({"template": "probe"})).await;
    assert_eq!(status, 429, "{v}");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("max_running_analyses"));
    let (status, v) = post_json(
        &d,
        "/flagger/pre-rollout",
        json!({"name": "c", "namespace": "shop", "checksum": "x", "metadata": {"template": "probe"}}),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    let v = d.get_json("/api/v1/argo/probe?key=over-the-cap").await;
    assert_eq!(v["verdict"], "inconclusive");
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .contains("max_running_analyses"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kayenta_scopes_beyond_the_resolution_limit_end_terminal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.json"),
        r#"{"id": "cfg", "name": "cfg", "applications": ["app"], "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "metrics": [{"name": "m", "query": {"type": "prometheus", "customInlineTemplate": "PromQL:up"}, "groups": ["g"],
        "analysisConfigurations": {"canary": {"direction": "increase"}}, "scopeName": "default"}],
        "classifier": {"groupWeights": {"g": 100}}}"#,
    )
    .unwrap();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "kayenta_configs = [\"{}\"]\n",
            dir.path().join("c.json").display()
        ),
    );
    let scope = |start: &str, end: &str, step: Value| json!({"scope": "x", "location": "", "start": start, "end": end, "step": step});
    for step in [json!(1), json!(i64::MAX)] {
        let (status, v) = post_json(
            &d,
            "/canary/cfg",
            json!({"thresholds": {"pass": 90, "marginal": 75}, "scopes": {"default": {
                "controlScope": scope("1990-01-01T00:00:00Z", "2090-01-01T00:00:00Z", step.clone()),
                "experimentScope": scope("1990-01-01T00:00:00Z", "2090-01-01T00:00:00Z", step)}}}),
        )
        .await;
        assert!(status == 200 || status == 400, "{status}: {v}");
        if status == 200 {
            let id = v["canaryExecutionId"].as_str().unwrap();
            let e = d.get_json(&format!("/canary/{id}")).await;
            assert_eq!(e["status"], "terminal", "{e}");
            let why = e["exception"].to_string();
            assert!(
                why.contains("resolution") || why.contains("out of range"),
                "{e}"
            );
        }
    }
    healthy_within(&d, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_evaluation_interval_is_the_default_and_reload_survives_symlink_loops() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yml"),
        "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: vector(1)\n",
    )
    .unwrap();
    let cfg_path = dir.path().join("augur.toml");
    std::fs::write(
        &cfg_path,
        "rule_files = [\"r.yml\"]\n[global]\nevaluation_interval = \"0s\"\n",
    )
    .unwrap();
    let d = Daemon::start_with(dir.path(), &cfg_path);
    let v = d.get_json("/api/v1/rules").await;
    assert_eq!(v["data"]["groups"][0]["interval"], 60.0, "{v}");
    // A reload whose glob meets two looping symlinks finishes (and a
    // SIGTERM right after is still obeyed).
    let a = dir.path().join("loop/a");
    std::fs::create_dir_all(&a).unwrap();
    std::os::unix::fs::symlink("..", a.join("back")).unwrap();
    std::os::unix::fs::symlink("../a", a.join("self")).unwrap();
    std::fs::write(
        &cfg_path,
        "rule_files = [\"r.yml\", \"loop/**/*.yml\"]\n[global]\nevaluation_interval = \"2s\"\n",
    )
    .unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    eventually(20, "the reload", || async {
        let v = d.get_json("/api/v1/rules").await;
        (v["data"]["groups"][0]["interval"] == 2.0).then_some(())
    })
    .await;
    let mut d = d;
    let t0 = Instant::now();
    assert_eq!(d.stop(), 0);
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_target_limits_mark_targets_down_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let many: Vec<String> = (0..1000).map(|i| format!("l{i}=\"v\"")).collect();
    let wide = TestTarget::start(Reply::text(&format!("wide{{{}}} 1\n", many.join(",")))).await;
    let long = TestTarget::start(Reply::text(&format!(
        "long{{a=\"{}\"}} 1\n",
        "x".repeat(1 << 20)
    )))
    .await;
    let ok = TestTarget::start(Reply::text("fine 1\n")).await;
    let (a, b) = (
        TestTarget::start(Reply::text("x 1\n")).await,
        TestTarget::start(Reply::text("x 1\n")).await,
    );
    let cfg = config_for(&[
        ("wide", "label_limit = 30", &[wide.addr], ""),
        ("long", "label_value_length_limit = 1024", &[long.addr], ""),
        (
            "fine",
            "label_limit = 30\nlabel_value_length_limit = 1024",
            &[ok.addr],
            "",
        ),
        ("pool", "target_limit = 1", &[a.addr, b.addr], ""),
    ]);
    let d = Daemon::start(dir.path(), &cfg);
    let targets = eventually(20, "every target scraped", || async {
        let v = d.get_json("/api/v1/targets").await;
        let t = v["data"]["activeTargets"].as_array()?.clone();
        t.iter()
            .all(|t| t["lastScrape"] != "0001-01-01T00:00:00Z" && t["health"] != "unknown")
            .then_some(t)
    })
    .await;
    let by_job =
        |job: &str| -> Vec<&Value> { targets.iter().filter(|t| t["scrapePool"] == job).collect() };
    let err = |t: &Value| t["lastError"].as_str().unwrap_or("").to_string();
    assert_eq!(by_job("wide")[0]["health"], "down");
    assert!(
        err(by_job("wide")[0])
            .starts_with("label_limit exceeded (metric: wide, number of labels: 1003, limit: 30)"),
        "{}",
        err(by_job("wide")[0])
    );
    assert_eq!(by_job("long")[0]["health"], "down");
    assert!(err(by_job("long")[0]).contains("label_value_length_limit exceeded"));
    assert_eq!(by_job("fine")[0]["health"], "up");
    for t in by_job("pool") {
        assert_eq!(t["health"], "down");
        assert!(
            err(t).contains("target_limit exceeded (number of targets: 2, limit: 1)"),
            "{}",
            err(t)
        );
    }
    // Nothing of the refused scrapes was stored.
    let v = d
        .get_json("/api/v1/query?query=count(%7B__name__%3D~%22wide%7Clong%22%7D)")
        .await;
    assert!(v["data"]["result"].as_array().unwrap().is_empty(), "{v}");
}
