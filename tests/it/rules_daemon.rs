//! Rules in the running daemon: recording rules write into the store,
//! alerts go pending -> firing -> resolved on the group's schedule, and
//! /api/v1/rules and /api/v1/alerts show them in Prometheus's shape.

use crate::common::{config_for, eventually, Daemon, Reply, TestTarget};

const RULES: &str = r#"groups:
  - name: queues
    interval: 1s
    rules:
      - record: queue:depth:sum
        expr: sum(queue_depth)
      - alert: QueueBacklog
        expr: queue_depth > 1
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.queue }} has {{ $value }} items"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_resolve_and_show_in_the_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let t = TestTarget::start(Reply::text(
        "queue_depth{queue=\"a\"} 5\nqueue_depth{queue=\"b\"} 0\n",
    ))
    .await;
    let cfg = format!(
        "rule_files = [\"rules.yml\"]\n{}",
        config_for(&[("shop", "", &[t.addr], "")])
            .replace("[global]\n", "[global]\nevaluation_interval = \"1s\"\n")
    );
    let d = Daemon::start(dir.path(), &cfg);

    let alert = eventually(20, "alert firing", || async {
        let v = d.get_json("/api/v1/alerts").await;
        let a = v["data"]["alerts"].as_array()?.first()?.clone();
        (a["state"] == "firing").then_some(a)
    })
    .await;
    assert_eq!(alert["labels"]["alertname"], "QueueBacklog");
    assert_eq!(alert["labels"]["queue"], "a");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["job"], "shop");
    assert!(alert["labels"].get("__name__").is_none());
    assert_eq!(alert["annotations"]["summary"], "a has 5 items");
    assert_eq!(alert["value"], "5e+00");

    let rules = d.get_json("/api/v1/rules").await;
    let g = &rules["data"]["groups"][0];
    assert_eq!(g["name"], "queues");
    assert_eq!(g["interval"], 1.0);
    assert!(g["file"].as_str().unwrap().ends_with("rules.yml"));
    let r = g["rules"].as_array().unwrap();
    assert_eq!(r[0]["type"], "recording");
    assert_eq!(r[0]["health"], "ok");
    assert_eq!(r[1]["type"], "alerting");
    assert_eq!(r[1]["state"], "firing");
    assert_eq!(r[1]["duration"], 2.0);
    assert_eq!(r[1]["alerts"].as_array().unwrap().len(), 1);

    // The recording rule and the ALERTS series are queryable.
    let v = d.get_json("/api/v1/query?query=queue:depth:sum").await;
    assert_eq!(v["data"]["result"][0]["value"][1], "5");
    let v = d
        .get_json("/api/v1/query?query=ALERTS%7Balertstate%3D%22firing%22%7D")
        .await;
    assert_eq!(v["data"]["result"][0]["metric"]["queue"], "a");

    // The backlog clears: the alert resolves and leaves the active list.
    t.set_body("queue_depth{queue=\"a\"} 0\nqueue_depth{queue=\"b\"} 0\n");
    eventually(15, "alert resolved", || async {
        let v = d.get_json("/api/v1/alerts").await;
        v["data"]["alerts"].as_array()?.is_empty().then_some(())
    })
    .await;
    let v = d
        .get_json("/api/v1/query?query=ALERTS%7Balertstate%3D%22firing%22%7D")
        .await;
    assert!(v["data"]["result"].as_array().unwrap().is_empty(), "{v}");
    assert!(
        d.own_metric("augur_rule_group_iterations_total", "queues")
            .await
            >= 3.0
    );
}

#[test]
fn check_config_reports_rule_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: sum(up\n",
    )
    .unwrap();
    let cfg = dir.path().join("augur.toml");
    std::fs::write(&cfg, "rule_files = [\"*.yml\"]\n").unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    // Placed in the rule file itself, where the fix goes.
    assert!(
        err.contains("bad.yml:5:15: group \"g\", rule 1, \"X\": could not parse expression: 1:7: parse error: unclosed left parenthesis"),
        "{err}"
    );
}
