//! Notifications end to end: a webhook gets signed Alertmanager-style
//! payloads and is retried until it answers; a receiver that never answers
//! ends in the dead-letter state; a real Alertmanager receives and resolves
//! augur's alerts; email reaches a real SMTP server.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{backlog_rules, eventually, rules_config, Daemon, Reply, Sink, TestTarget};
use serde_json::Value;

async fn backlog_target() -> TestTarget {
    TestTarget::start(Reply::text("queue_depth{queue=\"a\"} 5\n")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_signed_payloads_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), backlog_rules("1s")).unwrap();
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    let sink = Sink::start().await;
    sink.set_status(503);
    let t = backlog_target().await;
    let extra = format!(
        "[notify]\nmax_backoff = \"1s\"\n[[notify.webhook]]\nname = \"ops\"\nurl = \"http://{}/hook\"\nhmac_secret_file = \"{}\"\n",
        sink.addr,
        dir.path().join("secret").display()
    );
    let d = Daemon::start(dir.path(), &rules_config(t.addr, &extra));
    // Two failed attempts, then the receiver comes back.
    eventually(30, "two failed deliveries", || async {
        (sink.bodies().len() >= 2).then_some(())
    })
    .await;
    sink.set_status(200);
    let v = eventually(30, "delivered", || async {
        let v = d.get_json("/api/v1/notifications?status=sent").await;
        (!v["data"]["notifications"].as_array()?.is_empty()).then_some(v)
    })
    .await;
    let entry = &v["data"]["notifications"][0];
    assert_eq!(entry["receiver"], "ops");
    assert!(entry["attempts"].as_i64().unwrap() >= 3, "{entry}");

    let (headers, body) = sink.requests.lock().unwrap().last().cloned().unwrap();
    let sig = headers["x-augur-signature"].to_str().unwrap().to_string();
    let ts: i64 = headers["x-augur-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        sig,
        augur::signing::signature(b"s3cret", ts, "POST", "/hook", body.as_bytes())
    );
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["version"], "4");
    assert_eq!(p["status"], "firing");
    assert_eq!(p["receiver"], "ops");
    assert_eq!(p["groupLabels"]["alertname"], "Backlog");
    let a = &p["alerts"][0];
    assert_eq!(a["labels"]["alertname"], "Backlog");
    assert_eq!(a["labels"]["cluster"], "test", "external labels are added");
    assert_eq!(a["annotations"]["summary"], "a has 5 items");
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    assert!(a["generatorURL"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr=queue_depth+%3E+1&g0.tab=1"));
    assert!(d.own_metric("augur_notifications_sent_total", "ops").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_notifications_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), backlog_rules("0s")).unwrap();
    let sink = Sink::start().await;
    sink.set_status(500);
    let t = backlog_target().await;
    let extra = format!(
        "[notify]\nmax_attempts = 2\nmax_backoff = \"1s\"\n[[notify.slack]]\nname = \"chat\"\nurl = \"http://{}/slack\"\n",
        sink.addr
    );
    let d = Daemon::start(dir.path(), &rules_config(t.addr, &extra));
    let v = eventually(30, "dead letter", || async {
        let v = d.get_json("/api/v1/notifications").await;
        (v["data"]["counts"]["dead"].as_i64()? >= 1).then_some(v)
    })
    .await;
    let dead: Vec<&Value> = v["data"]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "dead")
        .collect();
    assert_eq!(dead[0]["attempts"], 2);
    assert!(dead[0]["lastError"].as_str().unwrap().contains("500"));
    assert!(dead[0]["payload"]["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING:1] Backlog"));
    assert!(d.own_metric("augur_notifications_dead_total", "").await >= 1.0);
}

use crate::common::{free_port, Proc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alertmanager_receives_and_resolves_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_am, am)) = crate::common::start_alertmanager(
        dir.path(),
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    ) else {
        return;
    };
    std::fs::write(dir.path().join("rules.yml"), backlog_rules("1s")).unwrap();
    let t = backlog_target().await;
    let extra = format!("[[notify.alertmanager]]\nurl = \"{am}\"\n");
    let _d = Daemon::start(dir.path(), &rules_config(t.addr, &extra));
    let alert = eventually(40, "alert in Alertmanager", || async {
        let v: Value = reqwest::get(format!("{am}/api/v2/alerts"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v.as_array()?.first().cloned()
    })
    .await;
    assert_eq!(alert["labels"]["alertname"], "Backlog");
    assert_eq!(alert["labels"]["queue"], "a");
    assert_eq!(alert["labels"]["cluster"], "test");
    assert_eq!(alert["annotations"]["summary"], "a has 5 items");
    assert_eq!(alert["status"]["state"], "active");
    // The backlog clears: augur sends the resolved alert and Alertmanager
    // stops listing it.
    t.set_body("queue_depth{queue=\"a\"} 0\n");
    eventually(40, "alert resolved in Alertmanager", || async {
        let v: Value = reqwest::get(format!("{am}/api/v2/alerts"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v.as_array()?.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_a_real_smtp_server() {
    let has_aiosmtpd = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_aiosmtpd {
        crate::common::skip_or_fail("aiosmtpd not found; install it with `pip install aiosmtpd`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let port = free_port();
    let _smtp = Proc(
        Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::fs::write(dir.path().join("rules.yml"), backlog_rules("1s")).unwrap();
    let t = backlog_target().await;
    let extra = format!(
        "[notify]\nmax_backoff = \"1s\"\n[[notify.email]]\nname = \"oncall\"\nsmtp = \"127.0.0.1:{port}\"\ntls = \"none\"\nfrom = \"augur@example.org\"\nto = [\"oncall@example.org\"]\nsubject = \"[{{{{ .Status | toUpper }}}}] {{{{ .CommonLabels.alertname }}}}\"\nbody = \"{{{{ range .Alerts }}}}{{{{ .Annotations.summary }}}}{{{{ end }}}}\"\n"
    );
    let d = Daemon::start(dir.path(), &rules_config(t.addr, &extra));
    let mut mail = None;
    for _ in 0..400 {
        let new = maildir.join("new");
        if let Some(entry) = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut r| r.next())
            .and_then(|e| e.ok())
        {
            mail = std::fs::read_to_string(entry.path()).ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(mail) = mail else {
        let v = d.get_json("/api/v1/notifications").await;
        panic!("no email delivered; outbox: {v}\nlog:\n{}", d.log_text());
    };
    assert!(mail.contains("Subject: [FIRING] Backlog"), "{mail}");
    assert!(mail.contains("To: oncall@example.org"), "{mail}");
    assert!(mail.contains("a has 5 items"), "{mail}");
}
