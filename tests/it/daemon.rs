//! End-to-end tests of the daemon: the real binary scraping real HTTP
//! targets, checked through its HTTP API.

use std::time::Duration;

use crate::common::{config_for, eventually, Daemon, Reply, TestTarget};
use nix::sys::signal::Signal;
use serde_json::Value;

fn target_entry<'a>(targets: &'a Value, addr: &str) -> Option<&'a Value> {
    targets["data"]["activeTargets"]
        .as_array()?
        .iter()
        .find(|t| t["labels"]["instance"] == addr)
}

async fn up_values(d: &Daemon, instance: &str) -> Vec<String> {
    d.export(&format!("up{{instance=\"{instance}\"}}"))
        .await
        .into_iter()
        .flat_map(|(_, v)| v.into_iter().map(|(_, s)| s))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_targets_tracks_changes_and_marks_staleness() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestTarget::start(Reply::text(
        "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 10\nhttp_requests_total{code=\"500\"} 1\n",
    ))
    .await;
    let mut b = TestTarget::start(Reply::text("temperature{room=\"a\"} 21.5\n")).await;
    let cfg = config_for(&[(
        "checkout",
        "",
        &[a.addr, b.addr],
        "labels = { track = \"canary\" }",
    )]);
    let mut d = Daemon::start(dir.path(), &cfg);
    let a_addr = a.addr.to_string();
    let b_addr = b.addr.to_string();

    // Both targets are up and their series carry the target labels.
    eventually(15, "both targets up", || async {
        let t = d.get_json("/api/v1/targets").await;
        let ok = [&a_addr, &b_addr]
            .iter()
            .all(|addr| target_entry(&t, addr).is_some_and(|e| e["health"] == "up"));
        ok.then_some(())
    })
    .await;
    let series = d.export("http_requests_total").await;
    assert_eq!(series.len(), 2, "{series:?}");
    let m = &series[0].0;
    assert_eq!(m["job"], "checkout");
    assert_eq!(m["track"], "canary");
    assert_eq!(m["instance"], a_addr.as_str());
    assert_eq!(series[1].1.last().unwrap().1, "1");
    let up = d.export("up").await;
    assert_eq!(up.len(), 2);
    assert_eq!(up[0].0["track"], "canary");
    for name in [
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        let s = d.export(&format!("{name}{{instance=\"{a_addr}\"}}")).await;
        assert_eq!(s.len(), 1, "{name} missing");
    }
    let scraped = d
        .export(&format!("scrape_samples_scraped{{instance=\"{a_addr}\"}}"))
        .await;
    assert_eq!(scraped[0].1[0].1, "2");
    let added = d
        .export(&format!("scrape_series_added{{instance=\"{a_addr}\"}}"))
        .await;
    assert_eq!(added[0].1[0].1, "2", "first scrape adds both series");

    // The target changes: one value moves, one series disappears.
    a.set_body("# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 25\n");
    eventually(10, "500 series marked stale", || async {
        let s = d.export("http_requests_total{code=\"500\"}").await;
        (s.len() == 1 && s[0].1.last().is_some_and(|(_, v)| v == "stale")).then_some(())
    })
    .await;
    eventually(5, "200 series updated", || async {
        let s = d.export("http_requests_total{code=\"200\"}").await;
        (s[0].1.last().unwrap().1 == "25").then_some(())
    })
    .await;

    // Target b stops: up 0, its series stale, lastError says why.
    b.stop().await;
    eventually(10, "target b down", || async {
        let t = d.get_json("/api/v1/targets").await;
        let e = target_entry(&t, &b_addr)?;
        (e["health"] == "down").then(|| e["lastError"].as_str().unwrap().to_string())
    })
    .await;
    assert_eq!(up_values(&d, &b_addr).await.last().unwrap(), "0");
    let temp = d.export("temperature").await;
    assert_eq!(temp[0].1.last().unwrap().1, "stale");
    // a is unaffected.
    assert_eq!(up_values(&d, &a_addr).await.last().unwrap(), "1");
    assert_eq!(d.stop(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_exposition_marks_only_that_target_down_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = TestTarget::start(Reply::text("ok_metric 1\nbroken{a=\"1\" b=\"2\"} 3\n")).await;
    let good = TestTarget::start(Reply::text("fine 1\n")).await;
    let d = Daemon::start(
        dir.path(),
        &config_for(&[("j", "", &[bad.addr, good.addr], "")]),
    );
    let err = eventually(15, "bad target down", || async {
        let t = d.get_json("/api/v1/targets").await;
        let e = target_entry(&t, &bad.addr.to_string())?;
        (e["health"] == "down").then(|| e["lastError"].as_str().unwrap().to_string())
    })
    .await;
    assert!(err.contains("line 2, column 14"), "{err}");
    eventually(10, "good target up", || async {
        let t = d.get_json("/api/v1/targets").await;
        (target_entry(&t, &good.addr.to_string())?["health"] == "up").then_some(())
    })
    .await;
    assert!(
        d.export("ok_metric").await.is_empty(),
        "nothing from a bad body is stored"
    );
    assert_eq!(up_values(&d, &bad.addr.to_string()).await[0], "0");
    assert!(
        d.own_metric("augur_scrape_failures_total", "reason=\"parse\"")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_slow_bodies_are_cut_off_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let big: String = (0..2000).map(|i| format!("m{{i=\"{i}\"}} 1\n")).collect();
    let large = TestTarget::start(Reply::text(&big)).await;
    let mut slow_reply = Reply::text("slow 1\n");
    slow_reply.delay = Duration::from_secs(3);
    let slow = TestTarget::start(slow_reply).await;
    let cfg = config_for(&[
        ("large", "body_size_limit = \"1KB\"", &[large.addr], ""),
        (
            "slow",
            "scrape_interval = \"2s\"\nscrape_timeout = \"500ms\"",
            &[slow.addr],
            "",
        ),
    ]);
    let d = Daemon::start(dir.path(), &cfg);
    for (addr, want) in [
        (large.addr, "body size limit exceeded"),
        (slow.addr, "timed out after 500ms"),
    ] {
        let err = eventually(15, want, || async {
            let t = d.get_json("/api/v1/targets").await;
            let e = target_entry(&t, &addr.to_string())?;
            (e["health"] == "down").then(|| e["lastError"].as_str().unwrap().to_string())
        })
        .await;
        assert!(err.contains(want), "{err}");
    }
    let t = d.get_json("/api/v1/targets").await;
    let slow_entry = target_entry(&t, &slow.addr.to_string()).unwrap();
    let took = slow_entry["lastScrapeDuration"].as_f64().unwrap();
    assert!(
        took < 1.5,
        "slow scrape was not cut at its timeout: {took}s"
    );
    assert!(
        d.own_metric("augur_scrape_failures_total", "reason=\"body_size_limit\"")
            .await
            >= 1.0
    );
    assert!(
        d.own_metric("augur_scrape_failures_total", "reason=\"timeout\"")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_prometheus_headers_credentials_and_accepts_gzip_openmetrics() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "hunter2").unwrap();
    let mut om = Reply::openmetrics(
        "# TYPE lat histogram\nlat_bucket{le=\"1\"} 3 # {trace_id=\"x\"} 0.5\nlat_bucket{le=\"+Inf\"} 4\nlat_count 4\nlat_sum 2.5\n# EOF\n",
    );
    om.gzip = true;
    let bearer = TestTarget::start(om).await;
    let basic = TestTarget::start(Reply::text("b 1\n")).await;
    let cfg = config_for(&[
        (
            "bearer",
            &format!(
                "authorization = {{ credentials_file = \"{}\" }}",
                token.display()
            ),
            &[bearer.addr],
            "",
        ),
        (
            "basic",
            &format!(
                "basic_auth = {{ username = \"u\", password_file = \"{}\" }}",
                pw.display()
            ),
            &[basic.addr],
            "",
        ),
    ]);
    let d = Daemon::start(dir.path(), &cfg);
    eventually(15, "histogram scraped", || async {
        let s = d.export("lat_bucket").await;
        (s.len() == 2).then_some(())
    })
    .await;
    let h = bearer.last_headers().unwrap();
    assert_eq!(h["authorization"], "Bearer s3cret");
    assert!(h["accept"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text;version=1.0.0"));
    assert_eq!(h["x-prometheus-scrape-timeout-seconds"], "1");
    assert!(h["accept-encoding"].to_str().unwrap().contains("gzip"));
    // le normalised the Prometheus 3 way.
    let les: Vec<String> = d
        .export("lat_bucket")
        .await
        .iter()
        .map(|(m, _)| m["le"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(les, ["+Inf", "1.0"]);
    eventually(10, "basic target scraped", || async {
        basic
            .last_headers()
            .map(|h| h["authorization"].to_str().unwrap().to_string())
    })
    .await;
    assert_eq!(
        basic.last_headers().unwrap()["authorization"],
        "Basic dTpodW50ZXIy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honor_labels_false_exports_conflicting_labels() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(Reply::text("m{job=\"inner\",instance=\"\",x=\"1\"} 1\n")).await;
    let d = Daemon::start(dir.path(), &config_for(&[("outer", "", &[t.addr], "")]));
    let s = eventually(15, "m scraped", || async {
        let s = d.export("m").await;
        (!s.is_empty()).then_some(s)
    })
    .await;
    let m = &s[0].0;
    assert_eq!(m["job"], "outer");
    assert_eq!(m["exported_job"], "inner");
    assert_eq!(m["instance"], t.addr.to_string().as_str());
    assert_eq!(m["x"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_samples_are_rejected_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = TestTarget::start(Reply::text(&format!("ts_metric 1 {now}\n"))).await;
    let d = Daemon::start(dir.path(), &config_for(&[("j", "", &[t.addr], "")]));
    eventually(15, "first sample", || async {
        (!d.export("ts_metric").await.is_empty()).then_some(())
    })
    .await;
    t.set_body(&format!("ts_metric 2 {}\n", now - 60_000));
    eventually(10, "out-of-order counted", || async {
        (d.own_metric("augur_scrape_samples_out_of_order_total", "job=\"j\"")
            .await
            >= 1.0)
            .then_some(())
    })
    .await;
    let s = d.export("ts_metric").await;
    assert_eq!(s[0].1, vec![(now, "1".to_string())]);
    // The target stays up: rejected samples do not fail the scrape.
    assert_eq!(
        up_values(&d, &t.addr.to_string()).await.last().unwrap(),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_survive_sigterm_and_restart_through_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(Reply::text("kept 42\n")).await;
    let cfg = config_for(&[("j", "", &[t.addr], "")]);
    let mut d = Daemon::start(dir.path(), &cfg);
    let before = eventually(15, "scraped twice", || async {
        let s = d.export("kept").await;
        (s.len() == 1 && s[0].1.len() >= 2).then(|| s[0].1.clone())
    })
    .await;
    assert_eq!(d.stop(), 0);
    assert!(
        d.log_text().contains("store snapshot written"),
        "{}",
        d.log_text()
    );
    assert!(dir.path().join("state/store.snapshot").exists());

    let cfg_path = d.config.clone();
    drop(d);
    let d2 = Daemon::start_with(dir.path(), &cfg_path);
    let after = d2.export("kept").await;
    assert_eq!(after.len(), 1, "{}", d2.log_text());
    for sample in &before {
        assert!(
            after[0].1.contains(sample),
            "{sample:?} lost across restart"
        );
    }
    assert!(d2.log_text().contains("store snapshot loaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_snapshot_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state/store.snapshot"),
        b"AUGURSN1 truncated",
    )
    .unwrap();
    let t = TestTarget::start(Reply::text("x 1\n")).await;
    let d = Daemon::start(dir.path(), &config_for(&[("j", "", &[t.addr], "")]));
    eventually(15, "ready", || async {
        (d.get_text("/-/ready").await.0 == 200).then_some(())
    })
    .await;
    let log = d.log_text();
    assert!(
        log.contains("WARN") && log.contains("snapshot skipped"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_broken_config_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let t1 = TestTarget::start(Reply::text("one 1\n")).await;
    let t2 = TestTarget::start(Reply::text("two 2\n")).await;
    let d = Daemon::start(dir.path(), &config_for(&[("j", "", &[t1.addr], "")]));
    eventually(15, "t1 scraped", || async {
        (!d.export("one").await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        d.own_metric("augur_config_last_reload_successful", "")
            .await,
        1.0
    );

    std::fs::write(
        &d.config,
        "[global]\nscrape_interval = \"soon\"\n[[scrape_configs]]\njob_name = \"j\"\nbogus = 1\n",
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    eventually(10, "reload failure visible", || async {
        (d.own_metric("augur_config_last_reload_successful", "")
            .await
            == 0.0)
            .then_some(())
    })
    .await;
    assert!(d.log_text().contains("keeping the previous configuration"));
    let before = t1.requests();
    eventually(10, "old config still scraping", || async {
        (t1.requests() > before).then_some(())
    })
    .await;

    // A good config afterwards is applied: t1 goes, t2 comes.
    std::fs::write(&d.config, config_for(&[("j", "", &[t2.addr], "")])).unwrap();
    d.signal(Signal::SIGHUP);
    eventually(10, "t2 scraped", || async {
        (!d.export("two").await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        d.own_metric("augur_config_last_reload_successful", "")
            .await,
        1.0
    );
    let t = d.get_json("/api/v1/targets").await;
    assert!(target_entry(&t, &t1.addr.to_string()).is_none());
    // The removed target's series end with a staleness marker.
    eventually(5, "removed target stale", || async {
        let s = d.export("one").await;
        (s[0].1.last()?.1 == "stale").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_series_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(Reply::text("s{a=\"1\"} 1\ns{a=\"2\"} 2\n")).await;
    let d = Daemon::start(dir.path(), &config_for(&[("j", "", &[t.addr], "")]));
    assert_eq!(d.get_text("/-/healthy").await.0, 200);
    eventually(15, "ready", || async {
        (d.get_text("/-/ready").await.0 == 200).then_some(())
    })
    .await;
    let v = d
        .get_json("/api/v1/series?match[]=s%7Ba%3D%222%22%7D")
        .await;
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["a"], "2");
    let bad = reqwest::get(d.url("/api/v1/series?match[]=s%7B"))
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let (code, text) = d.get_text("/metrics").await;
    assert_eq!(code, 200);
    for name in [
        "augur_build_info",
        "augur_scrapes_total",
        "augur_store_series",
        "augur_store_samples",
        "augur_store_bytes",
        "augur_config_last_reload_successful",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    // augur's own metrics are valid OpenMetrics for its own parser.
    augur::expfmt::parse(text.as_bytes(), augur::expfmt::Format::OpenMetrics).unwrap();
    assert!(d.own_metric("augur_store_series", "").await >= 7.0);
}

#[test]
fn check_config_lists_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[global]\nscrape_interval = \"15x\"\n[[scrape_configs]]\njob_name = \"a\"\nscheme = \"ftp\"\n[[scrape_configs]]\njob_name = \"a\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    let prefix = format!("{}:", bad.display());
    assert!(lines[0].starts_with(&format!("{prefix}2:19:")), "{err}");
    assert!(lines[1].starts_with(&format!("{prefix}5:10:")), "{err}");
    assert!(lines[2].starts_with(&format!("{prefix}7:12:")), "{err}");

    let good = std::env::current_dir().unwrap().join("examples/augur.toml");
    let out = std::process::Command::new(crate::common::bin())
        .args(["check", "config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `run` with a bad config exits 2 too, listing the errors.
    let out = std::process::Command::new(crate::common::bin())
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2:19"));
}
