//! Decisions as numbers, through the daemon: a bad canary aborted and a
//! good one promoted give exactly the expected delivery counters and
//! histogram observations in `/metrics`, the same after kill -9 and a
//! restart; a rollback after an alert on the promoted revision is an
//! escaped failure with its time to restore; `/api/v1/dora` and `augur
//! report dora` give the hand-computed keys; PagerDuty events match what a
//! real Alertmanager 0.25 sends for the same alerts, change events carry
//! the decisions, and PagerDuty's retry rules hold (429 and 500 retried,
//! 400 dead-lettered with its reason).

use std::process::Command;
use std::time::Duration;

use crate::common::{
    backlog_rules, config_for, eventually, rules_config, simulated, Arm, Daemon, Reply, Sink,
    TestTarget,
};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const TEMPLATE: &str = r#"
[[analysis]]
name = "canary"
interval = "1s"
window = "3s"
count = 4
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
"#;

const RULES: &str = "groups:\n  - name: shop\n    interval: 1s\n    rules:\n      - alert: GoodBroken\n        expr: shop_errors > 0\n        labels:\n          severity: page\n";

/// Every sample of `name` in a `/metrics` text whose labels contain all of
/// `labels`, summed.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The delivery series of a `/metrics` text, sorted, for comparing two.
fn delivery_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            [
                "augur_analysis_run",
                "augur_decisions",
                "augur_actions",
                "augur_action_latency",
                "augur_detection",
                "augur_deployment",
                "augur_lead_time",
                "augur_time_to_restore",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

async fn post(d: &Daemon, path: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .post(d.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_become_metrics_change_events_and_dora_keys_that_survive_kill_9() {
    let svc = simulated(vec![
        ("bad", Arm::HEALTHY, Some(Arm::BROKEN)),
        ("good", Arm::HEALTHY, Some(Arm::HEALTHY)),
    ])
    .await;
    let errs = TestTarget::start(Reply::text(
        "shop_errors{namespace=\"shop\",rollout=\"good\"} 0\n",
    ))
    .await;
    let deployer = Sink::start().await;
    let pd = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    std::fs::write(dir.path().join("pd.key"), "alerts-key\n").unwrap();
    std::fs::write(dir.path().join("pd-change.key"), "changes-key\n").unwrap();
    let cfg = format!(
        r#"rule_files = ["rules.yml"]
{TEMPLATE}
[notify]
max_backoff = "1s"
[[notify.pagerduty]]
name = "oncall"
routing_key_file = "{key}"
change_routing_key_file = "{change_key}"
url = "http://{pd}/v2/enqueue"
[actions]
[[actions.webhook]]
name = "deployer"
url = "http://{deployer}/deploy"
[delivery]
escape_window = "1h"
{scrape}"#,
        key = dir.path().join("pd.key").display(),
        change_key = dir.path().join("pd-change.key").display(),
        pd = pd.addr,
        deployer = deployer.addr,
        scrape = config_for(&[
            (
                "shop",
                "scrape_interval = \"250ms\"\nscrape_timeout = \"250ms\"",
                &[svc.addr],
                ""
            ),
            ("errs", "", &[errs.addr], ""),
        ])
        .replace("[global]\n", "[global]\nevaluation_interval = \"1s\"\n"),
    );
    let d = Daemon::start(dir.path(), &cfg);
    for (service, rev) in [("bad", "b1"), ("good", "g1")] {
        let code = post(
            &d,
            "/api/v1/analysis/runs",
            json!({"template": "canary", "args": {"service": service}, "initial_delay": "2s",
                   "rollout": {"namespace": "shop", "name": service, "revision": rev, "promote_on_pass": true}}),
        )
        .await;
        assert_eq!(code, 201, "{service}");
    }
    // Both decided and carried out.
    eventually(60, "an abort and a promote, both done", || async {
        let ds = d.get_json("/api/v1/decisions").await;
        let done = |dec: &str| {
            ds["data"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["decision"] == dec && x["actions"][0]["status"] == "done")
            })
        };
        (done("abort") && done("promote")).then_some(())
    })
    .await;
    // The promoted revision breaks: an alert fires on it, then an operator
    // rolls it back.
    errs.set_body("shop_errors{namespace=\"shop\",rollout=\"good\"} 3\n");
    eventually(30, "the alert on the promoted revision", || async {
        let v = d.get_json("/api/v1/alerts").await;
        (v["data"]["alerts"]
            .as_array()?
            .iter()
            .any(|a| a["state"] == "firing"))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let code = post(
        &d,
        "/api/v1/rollouts/shop/good/rollback",
        json!({"revision": "g1", "reason": "errors after the promotion"}),
    )
    .await;
    assert_eq!(code, 202);
    eventually(30, "the rollback done", || async {
        let ds = d.get_json("/api/v1/decisions").await;
        ds["data"]
            .as_array()?
            .iter()
            .any(|x| x["decision"] == "rollback" && x["actions"][0]["status"] == "done")
            .then_some(())
    })
    .await;

    let (_, text) = d.get_text("/metrics").await;
    let m = |name: &str, labels: &[(&str, &str)]| metric(&text, name, labels);
    assert_eq!(
        m(
            "augur_analysis_runs_total",
            &[("template", "canary"), ("result", "failed")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        m(
            "augur_analysis_runs_total",
            &[("template", "canary"), ("result", "passed")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "augur_analysis_run_duration_seconds_count",
            &[("result", "failed")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "augur_analysis_run_duration_seconds_count",
            &[("result", "passed")]
        ),
        1.0
    );
    for (name, decision, kind) in [
        ("bad", "abort", "analysis"),
        ("good", "promote", "analysis"),
        ("good", "rollback", "operator"),
    ] {
        assert_eq!(
            m(
                "augur_decisions_total",
                &[
                    ("namespace", "shop"),
                    ("name", name),
                    ("decision", decision),
                    ("actor_kind", kind)
                ]
            ),
            1.0,
            "{name} {decision}"
        );
        assert_eq!(
            m(
                "augur_actions_total",
                &[
                    ("sink", "deployer"),
                    ("decision", decision),
                    ("status", "done")
                ]
            ),
            1.0,
            "{decision} action"
        );
    }
    assert_eq!(m("augur_actions_total", &[("status", "failed")]), 0.0);
    assert_eq!(m("augur_action_latency_seconds_count", &[]), 3.0);
    assert_eq!(
        m("augur_detection_seconds_count", &[]),
        1.0,
        "one abort by an analysis"
    );
    let detection = m("augur_detection_seconds_sum", &[]);
    assert!(
        detection > 0.0 && detection < 30.0,
        "detection {detection} s"
    );
    assert_eq!(
        m(
            "augur_deployments_total",
            &[("name", "bad"), ("result", "aborted")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "augur_deployments_total",
            &[("name", "good"), ("result", "promoted")]
        ),
        1.0
    );
    assert_eq!(m("augur_deployments_total", &[]), 2.0);
    assert_eq!(
        m(
            "augur_deployment_failures_escaped_total",
            &[("namespace", "shop"), ("name", "good")]
        ),
        1.0
    );
    assert_eq!(
        m("augur_time_to_restore_seconds_count", &[("name", "good")]),
        1.0
    );
    let restore = m("augur_time_to_restore_seconds_sum", &[("name", "good")]);
    // The alert fired at least 1.5 s before the rollback was asked for.
    assert!(restore >= 1.0, "restore {restore} s");
    eprintln!("delivery: detection {detection:.2} s, time to restore {restore:.2} s");

    // Change events: one per promote, abort and rollback, with their own key.
    let changes: Vec<Value> = eventually(20, "three change events", || async {
        let v: Vec<Value> = pd
            .bodies_at("/v2/change/enqueue")
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        (v.len() >= 3).then_some(v)
    })
    .await;
    assert_eq!(changes.len(), 3, "{changes:?}");
    for c in &changes {
        assert_eq!(c["routing_key"], "changes-key");
        assert!(c.get("event_action").is_none() && c.get("dedup_key").is_none());
        assert!(c["payload"]["timestamp"].as_str().is_some());
    }
    let summaries: Vec<&str> = changes
        .iter()
        .map(|c| c["payload"]["summary"].as_str().unwrap())
        .collect();
    assert!(
        summaries
            .iter()
            .any(|s| s.starts_with("augur: abort shop/bad@b1: ")),
        "{summaries:?}"
    );
    assert!(summaries
        .iter()
        .any(|s| s.starts_with("augur: promote shop/good@g1: ")));
    assert!(summaries
        .iter()
        .any(|s| s.starts_with("augur: rollback shop/good@g1: errors after the promotion")));
    // The alert itself went to the alert endpoint with the alert key.
    let alert: Value = serde_json::from_str(&pd.bodies_at("/v2/enqueue")[0]).unwrap();
    assert_eq!(alert["routing_key"], "alerts-key");
    assert_eq!(alert["event_action"], "trigger");

    // DORA over the last day: 2 deployments (1 promoted, 1 aborted), 1
    // escaped, change failure rate (1 + 1) / 2.
    let dora = d.get_json("/api/v1/dora?window=1d").await;
    let o = &dora["data"]["overall"];
    assert_eq!(
        (
            o["deployments"].as_u64(),
            o["promoted"].as_u64(),
            o["aborted"].as_u64(),
            o["escaped"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(1)),
        "{dora}"
    );
    assert_eq!(o["change_failure_rate"], 1.0);
    assert_eq!(o["time_to_restore_samples"], 1);
    // Weeks are the 7-day periods counted back from the window's end: the
    // one week has a deployment day.
    assert_eq!(o["deployment_frequency"]["bucket"], "weekly");
    let (_, overview) = d.get_text("/").await;
    assert!(
        overview.contains("deployments (30d) <b>2</b> change failure rate <b>100%</b>"),
        "the overview's delivery numbers"
    );
    let bad = d.get_json("/api/v1/dora?window=nope").await;
    assert_eq!(bad["errorType"], "bad_data");

    // kill -9, restart: the same numbers, rebuilt from SQLite.
    let before = delivery_lines(&text);
    assert!(before.len() > 20, "{before:?}");
    d.signal(Signal::SIGKILL);
    let mut d = d;
    let _ = d.child.wait();
    let cfg_path = d.config.clone();
    drop(d);
    let d = Daemon::start_with(dir.path(), &cfg_path);
    let (_, after) = d.get_text("/metrics").await;
    assert_eq!(delivery_lines(&after), before, "the counters after kill -9");

    // The report reads the same database, read-only, beside the daemon.
    let out = Command::new(crate::common::bin())
        .args(["report", "dora", "--window", "1d", "--json", "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["overall"], dora["data"]["overall"].clone());
    let table = Command::new(crate::common::bin())
        .args(["report", "dora", "--window", "1d", "--url", &d.url("")])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table.contains("shop/good") && table.contains("100.0%"),
        "{table}"
    );
    let _ = d;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_events_match_a_real_alertmanager_field_by_field() {
    let am_pd = Sink::start().await;
    let augur_pd = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let Some((_am, am)) = crate::common::start_alertmanager(
        dir.path(),
        &format!(
            "route:\n  receiver: pd\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: pd\n    pagerduty_configs:\n      - routing_key: testkey\n        url: http://{}/v2/enqueue\n",
            am_pd.addr
        ),
    ) else {
        return;
    };
    // Two alerts in one group, so the summary and details have work to do.
    let t = TestTarget::start(Reply::text(
        "queue_depth{queue=\"a\"} 5\nqueue_depth{queue=\"b\"} 7\n",
    ))
    .await;
    std::fs::write(dir.path().join("rules.yml"), backlog_rules("0s")).unwrap();
    std::fs::write(dir.path().join("pd.key"), "testkey\n").unwrap();
    let extra = format!(
        "[notify]\nmax_backoff = \"1s\"\n[[notify.alertmanager]]\nurl = \"{am}\"\n[[notify.pagerduty]]\nrouting_key_file = \"{}\"\nurl = \"http://{}/v2/enqueue\"\n",
        dir.path().join("pd.key").display(),
        augur_pd.addr
    );
    let _d = Daemon::start(dir.path(), &rules_config(t.addr, &extra));
    let event = |s: &Sink, action: &'static str| {
        let bodies = s.bodies_at("/v2/enqueue");
        async move {
            bodies
                .iter()
                .filter_map(|b| serde_json::from_str::<Value>(b).ok())
                .filter(|v| v["event_action"] == action)
                .find(|v| {
                    v["payload"]["custom_details"]["num_firing"]
                        == if action == "trigger" { "2" } else { "0" }
                })
        }
    };
    let (am, ours) = eventually(60, "both trigger events", || async {
        Some((
            event(&am_pd, "trigger").await?,
            event(&augur_pd, "trigger").await?,
        ))
    })
    .await;
    let compare = |am: &Value, ours: &Value| {
        for f in [
            "/routing_key",
            "/dedup_key",
            "/event_action",
            "/payload/summary",
            "/payload/severity",
            "/payload/custom_details/firing",
            "/payload/custom_details/resolved",
            "/payload/custom_details/num_firing",
            "/payload/custom_details/num_resolved",
        ] {
            assert_eq!(
                ours.pointer(f),
                am.pointer(f),
                "{f}\naugur: {ours}\nalertmanager: {am}"
            );
        }
    };
    compare(&am, &ours);
    let summary = ours["payload"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("[FIRING:2] Backlog (test "),
        "{summary}"
    );
    // Resolved: both send `resolve` with the same key.
    t.set_body("queue_depth{queue=\"a\"} 0\nqueue_depth{queue=\"b\"} 0\n");
    let (am, ours) = eventually(60, "both resolve events", || async {
        Some((
            event(&am_pd, "resolve").await?,
            event(&augur_pd, "resolve").await?,
        ))
    })
    .await;
    compare(&am, &ours);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_retries_429_and_500_but_dead_letters_400_with_its_reason() {
    let pd = Sink::start().await;
    pd.set_status(429);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), backlog_rules("0s")).unwrap();
    std::fs::write(dir.path().join("pd.key"), "k\n").unwrap();
    let t = TestTarget::start(Reply::text("queue_depth{queue=\"a\"} 5\n")).await;
    let extra = format!(
        "[notify]\nmax_backoff = \"1s\"\nmax_attempts = 20\n[[notify.pagerduty]]\nname = \"pd\"\nrouting_key_file = \"{}\"\nurl = \"http://{}/v2/enqueue\"\nchange_events = false\n",
        dir.path().join("pd.key").display(),
        pd.addr
    );
    let d = Daemon::start(dir.path(), &rules_config(t.addr, &extra));
    eventually(30, "two attempts answered 429", || async {
        (pd.bodies().len() >= 2).then_some(())
    })
    .await;
    pd.set_status(500);
    let n = pd.bodies().len();
    eventually(30, "retried after a 500", || async {
        (pd.bodies().len() >= n + 2).then_some(())
    })
    .await;
    let v = d.get_json("/api/v1/notifications?status=pending").await;
    let first = &v["data"]["notifications"][0];
    assert!(first["attempts"].as_i64().unwrap() >= 3, "{v}");
    pd.set_status(400);
    let dead = eventually(30, "dead-lettered on the 400", || async {
        let v = d.get_json("/api/v1/notifications?status=dead").await;
        v["data"]["notifications"].as_array()?.first().cloned()
    })
    .await;
    let err = dead["lastError"].as_str().unwrap();
    assert!(
        err.contains("400")
            && err.contains("Event object is invalid")
            && err.contains("'routing_key' is invalid"),
        "{err}"
    );
    // A 400 is final: the entry that got it is not tried again.
    let attempts = dead["attempts"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = d.get_json("/api/v1/notifications?status=dead").await;
    let again = v["data"]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == dead["id"])
        .cloned()
        .unwrap();
    assert_eq!(again["attempts"].as_i64().unwrap(), attempts);
}
