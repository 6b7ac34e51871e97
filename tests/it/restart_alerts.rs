//! Restart safety: kill -9 while an alert is pending with `for: 30s`; after a
//! restart it keeps its `for` clock (Prometheus's for-state restore, from
//! SQLite) and fires on the original schedule. Then kill -9 while the firing
//! notification waits in the outbox: after a restart it is delivered once.

use std::time::{Duration, Instant};

use crate::common::{backlog_rules, eventually, rules_config, Daemon, Reply, Sink, TestTarget};
use nix::sys::signal::Signal;
use serde_json::Value;

async fn backlog_alert(d: &Daemon) -> Option<Value> {
    let v = d.get_json("/api/v1/alerts").await;
    v["data"]["alerts"].as_array()?.first().cloned()
}

fn parse_time(s: &str) -> f64 {
    let t = humantime::parse_rfc3339(s).unwrap();
    t.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_state_and_outbox_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), backlog_rules("30s")).unwrap();
    let sink = Sink::start().await;
    sink.set_status(503);
    let t = TestTarget::start(Reply::text("queue_depth{queue=\"a\"} 5\n")).await;
    let extra = format!(
        "[rules]\nfor_grace_period = \"10s\"\n[notify]\nmax_backoff = \"1s\"\n[[notify.webhook]]\nname = \"ops\"\nurl = \"http://{}/hook\"\n",
        sink.addr
    );
    let cfg = rules_config(t.addr, &extra);

    // Phase 1: pending, then kill -9 and restart.
    let mut d = Daemon::start(dir.path(), &cfg);
    let a = eventually(20, "pending alert", || async {
        backlog_alert(&d).await.filter(|a| a["state"] == "pending")
    })
    .await;
    let active_at = parse_time(a["activeAt"].as_str().unwrap());
    tokio::time::sleep(Duration::from_secs(5)).await;
    d.signal(Signal::SIGKILL);
    let _ = d.child.wait();
    let cfg_path = d.config.clone();
    drop(d);
    let restarted = Instant::now();
    let d = Daemon::start_with(dir.path(), &cfg_path);
    let a = eventually(20, "restored alert", || async { backlog_alert(&d).await }).await;
    assert_eq!(a["state"], "pending");
    let restored_at = parse_time(a["activeAt"].as_str().unwrap());
    // The outage (about a second) does not count; the 5s before it do.
    assert!(
        restored_at - active_at < 4.0,
        "for clock restarted: {active_at} -> {restored_at}"
    );
    assert!(restored_at >= active_at);
    assert!(
        d.log_text().contains("alert state restored"),
        "{}",
        d.log_text()
    );

    // It fires on the original schedule: 30s after it became active, plus
    // the outage, not 30s after the restart.
    let fire_deadline = active_at + 30.0 + 8.0;
    let a = eventually(60, "firing alert", || async {
        backlog_alert(&d).await.filter(|a| a["state"] == "firing")
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now <= fire_deadline, "fired late: {now} > {fire_deadline}");
    assert!(now >= active_at + 29.0, "fired early");
    let _ = (a, restarted);

    // Phase 2: the firing notification cannot be delivered (503) and waits
    // in the outbox; kill -9, bring the receiver back, restart.
    eventually(20, "a failed delivery", || async {
        (!sink.bodies().is_empty()).then_some(())
    })
    .await;
    let mut d = d;
    d.signal(Signal::SIGKILL);
    let _ = d.child.wait();
    drop(d);
    let failed_before = sink.bodies().len();
    sink.set_status(200);
    let d = Daemon::start_with(dir.path(), &cfg_path);
    eventually(30, "delivered after restart", || async {
        let v = d.get_json("/api/v1/notifications?status=sent").await;
        (!v["data"]["notifications"].as_array()?.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let delivered: Vec<String> = sink.bodies()[failed_before..].to_vec();
    let firing: Vec<&String> = delivered
        .iter()
        .filter(|b| b.contains("\"status\":\"firing\""))
        .collect();
    assert_eq!(
        firing.len(),
        1,
        "delivered {} times: {delivered:?}",
        firing.len()
    );
}
