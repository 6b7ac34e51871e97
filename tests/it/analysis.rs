//! Analysis runs end to end: the real daemon scrapes a simulated service
//! (a real HTTP target whose counters and histograms grow with time),
//! runs the shipped `http-canary` template through
//! `POST /api/v1/analysis/runs` with a compressed schedule, and the verdicts
//! are read back from the API: a bad canary fails, a healthy one passes, a
//! canary without traffic ends inconclusive, a cancelled run stops, and a
//! run survives `kill -9`.

use std::time::Duration;

use crate::common::{bin, config_for, eventually, simulated, Arm, Daemon, TestTarget};
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

async fn post(d: &Daemon, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(d.url("/api/v1/analysis/runs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn run_body(service: &str, count: Option<u32>) -> Value {
    let mut b = json!({
        "template": "http-canary",
        "args": {"namespace": "shop", "service": service},
        "interval": "2s",
        "window": "4s",
        "initial_delay": "3s",
    });
    if let Some(c) = count {
        b["count"] = json!(c);
    }
    b
}

async fn finished(d: &Daemon, id: &str, secs: u64) -> Value {
    eventually(secs, &format!("run {id} to finish"), || async {
        let v = d.get_json(&format!("/api/v1/analysis/runs/{id}")).await;
        (v["data"]["state"] != "running").then(|| v["data"].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_fail_pass_go_inconclusive_and_cancel() {
    let (healthy, broken) = (Arm::HEALTHY, Arm::BROKEN);
    let t = simulated(vec![
        ("bad", healthy, Some(broken)),
        ("good", healthy, Some(healthy)),
        ("quiet", healthy, None),
        ("forever", healthy, Some(healthy)),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &config(&t));

    // The shipped templates are listed with their args.
    let ts = d.get_json("/api/v1/analysis/templates").await;
    let names: Vec<&str> = ts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["http-canary", "http-canary-argo"]);
    let args = &ts["data"][0]["args"];
    assert!(args
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "service" && a["required"] == true));

    // Bad requests are refused with a reason.
    let (code, v) = post(&d, json!({"template": "nope"})).await;
    assert_eq!((code, v["errorType"].as_str()), (404, Some("not_found")));
    let (code, v) = post(
        &d,
        json!({"template": "http-canary", "args": {"namespace": "shop"}}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("argument \"service\" was not supplied"),
        "{v}"
    );
    let (code, v) = post(&d, json!({"template": "http-canary", "args": {"namespace": "shop", "service": "x", "colour": "red"}})).await;
    assert_eq!(code, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("no argument \"colour\""),
        "{v}"
    );
    let r = reqwest::Client::new()
        .post(d.url("/api/v1/analysis/runs"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let mut ids = Vec::new();
    for (svc, count) in [
        ("bad", Some(6)),
        ("good", Some(4)),
        ("quiet", Some(6)),
        ("forever", None),
    ] {
        let (code, v) = post(&d, run_body(svc, count)).await;
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["data"]["state"], "running");
        ids.push(v["data"]["id"].as_str().unwrap().to_string());
    }

    // A regression: 10% errors against 1% and a slower histogram.
    let bad = finished(&d, &ids[0], 40).await;
    if std::env::var("SHOW").is_ok() {
        eprintln!("{bad:#}");
    }
    assert_eq!(bad["state"], "failed", "{bad:#}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("critical metric \"errors\" failed"),
        "{bad:#}"
    );
    let ms = bad["measurements"].as_array().unwrap();
    let last_errors = ms.iter().rev().find(|m| m["metric"] == "errors").unwrap();
    assert_eq!(last_errors["phase"], "failed");
    assert!(
        last_errors["message"]
            .as_str()
            .unwrap()
            .ends_with(": abort"),
        "{last_errors}"
    );
    assert!(last_errors["detail"]["e_value"].as_f64().unwrap() >= 40.0);
    let rate = ms
        .iter()
        .rev()
        .find(|m| m["metric"] == "error rate")
        .unwrap();
    assert!(
        (rate["canary"].as_f64().unwrap() - 0.10).abs() < 0.02,
        "{rate}"
    );
    // errors group: both failed -> 0; latency: p95 and band failed, p99 passed -> 33.3.
    let score = bad["score"].as_f64().unwrap();
    assert!(score < 50.0, "{score}");
    let verdicts = bad["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.first().unwrap()["state"], "running");
    assert_eq!(verdicts.last().unwrap()["state"], "failed");

    // Identical arms pass after `count` intervals.
    let good = finished(&d, &ids[1], 40).await;
    assert_eq!(good["state"], "passed", "{good:#}");
    assert_eq!(good["intervals"], 4);
    assert_eq!(good["score"], 100.0);
    let ms = good["measurements"].as_array().unwrap();
    assert_eq!(ms.len(), 4 * 5);
    assert!(ms.iter().all(|m| m["phase"] == "successful"), "{good:#}");
    let p99 = ms
        .iter()
        .rev()
        .find(|m| m["metric"] == "p99 latency")
        .unwrap();
    assert!(
        p99["message"]
            .as_str()
            .unwrap()
            .starts_with("canary p99 latency"),
        "{p99}"
    );
    assert!(good["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["successful"] == 4));

    // No canary traffic: never a silent pass.
    let quiet = finished(&d, &ids[2], 40).await;
    assert_eq!(quiet["state"], "inconclusive", "{quiet:#}");
    assert!(
        quiet["message"]
            .as_str()
            .unwrap()
            .contains("inconclusive (3) > inconclusiveLimit (2)"),
        "{quiet:#}"
    );
    let ms = quiet["measurements"].as_array().unwrap();
    assert!(ms.iter().all(|m| m["phase"] == "inconclusive"), "{quiet:#}");
    assert!(ms[0]["message"].as_str().unwrap().contains("no data"));
    assert!(quiet["score"].is_null());

    // An open-ended run measures until cancelled, then stops.
    let forever = &ids[3];
    eventually(30, "two intervals", || async {
        let v = d
            .get_json(&format!("/api/v1/analysis/runs/{forever}"))
            .await;
        (v["data"]["intervals"].as_u64() >= Some(2)).then_some(())
    })
    .await;
    let r = reqwest::Client::new()
        .delete(d.url(&format!("/api/v1/analysis/runs/{forever}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["state"], "cancelled");
    let at = v["data"]["intervals"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let v = d
        .get_json(&format!("/api/v1/analysis/runs/{forever}"))
        .await;
    assert_eq!(v["data"]["state"], "cancelled");
    assert_eq!(v["data"]["intervals"].as_u64().unwrap(), at);
    assert_eq!(
        v["data"]["verdicts"].as_array().unwrap().last().unwrap()["state"],
        "cancelled"
    );
    let r = reqwest::Client::new()
        .delete(d.url("/api/v1/analysis/runs/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // The list shows all four, newest first; a state filter narrows it.
    let all = d.get_json("/api/v1/analysis/runs").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 4);
    let failed = d.get_json("/api/v1/analysis/runs?state=failed").await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1);
    assert_eq!(failed["data"][0]["id"], ids[0].as_str());
    let (code, _) = d.get_text("/api/v1/analysis/runs?state=happy").await;
    assert_eq!(code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_survives_kill_9_with_its_evidence() {
    let healthy = Arm::HEALTHY;
    let t = simulated(vec![("steady", healthy, Some(healthy))]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), &config(&t));
    let (code, v) = post(&d, run_body("steady", Some(6))).await;
    assert_eq!(code, 201);
    let id = v["data"]["id"].as_str().unwrap().to_string();
    eventually(30, "two intervals", || async {
        let v = d.get_json(&format!("/api/v1/analysis/runs/{id}")).await;
        (v["data"]["intervals"].as_u64() >= Some(2)).then_some(())
    })
    .await;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let before = {
        let d2 = Daemon::start_with(dir.path(), &d.config);
        let v = d2.get_json(&format!("/api/v1/analysis/runs/{id}")).await;
        assert_eq!(v["data"]["state"], "running", "{v:#}");
        let n = v["data"]["intervals"].as_u64().unwrap();
        assert!(n >= 2);
        let done = finished(&d2, &id, 40).await;
        assert_eq!(done["state"], "passed", "{done:#}");
        assert_eq!(done["intervals"], 6);
        // Every interval is recorded once, across the restart.
        let ms = done["measurements"].as_array().unwrap();
        let intervals: Vec<u64> = ms
            .iter()
            .filter(|m| m["metric"] == "errors")
            .map(|m| m["interval"].as_u64().unwrap())
            .collect();
        assert_eq!(intervals, vec![1, 2, 3, 4, 5, 6]);
        n
    };
    assert!(before >= 2);
    drop(d);
    // `augur check config` agrees with the daemon about the templates.
    let out = std::process::Command::new(bin())
        .args(["check", "config"])
        .arg(dir.path().join("augur.toml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 analysis templates"));
}

#[test]
fn shipped_templates_check_and_bad_ones_are_positioned() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("augur.toml");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/analyses/*.toml");
    std::fs::write(&cfg, format!("analysis_files = [\"{shipped}\"]\n")).unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 analysis templates"));

    std::fs::write(
        dir.path().join("bad.toml"),
        r#"[[analysis]]
name = "x"
interval = "1q"

[analysis.args]
ns = {}

[[analysis.metric]]
name = "a"
check = "relative"
query = 'rate(foo{ns="{{ args.nss }}", t="{{ track }}"}[{{ window }}])'

[[analysis.metric]]
name = "b"
check = "test"
test = "t-test"
query = 'rate(foo{t="{{ track }}"}[{{ window }}]'
"#,
    )
    .unwrap();
    let good = "[[analysis]]\nname = \"x\"\n[[analysis.metric]]\nname = \"m\"\ncheck = \"threshold\"\nmax = 1\ncanary = 'up'\n";
    std::fs::write(dir.path().join("good.toml"), good).unwrap();
    std::fs::write(
        &cfg,
        format!("analysis_files = [\"bad.toml\", \"good.toml\"]\n\n{good}"),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "bad.toml:3:12: interval: unknown unit \"q\"",
        "bad.toml:10:9: check = \"relative\" needs max_ratio, min_ratio, max_delta or min_delta",
        "bad.toml:11:9: unknown placeholder {{ args.nss }}: declare it under [analysis.args]",
        "bad.toml:16:8: test: unknown test \"t-test\"",
        "bad.toml:17:9: query does not parse",
        "analysis template \"x\" is defined twice",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
