//! The remote datasource against a real Prometheus, started by this test on
//! loopback with a temporary config and data directory, and augur scraping
//! the same target: the same queries must agree. Skips, saying what to
//! install, when `prometheus` is not on PATH (`.ci/run` installs Debian's).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{config_for, eventually, Daemon, Reply, TestTarget};
use augur::promql::Value;

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn find_prometheus() -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", "command -v prometheus"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!p.is_empty()).then_some(p)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn start_prometheus(bin: &str, target: std::net::SocketAddr) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: shop\n    static_configs:\n      - targets: ['{target}']\n        labels: {{track: canary}}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn vector(v: &Value) -> Vec<(String, f64)> {
    let Value::Vector(s) = v else {
        panic!("expected a vector, got {v:?}")
    };
    let mut out: Vec<(String, f64)> = s.iter().map(|s| (s.labels.to_string(), s.v)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_prometheus_and_augur_agree() {
    let Some(bin) = find_prometheus() else {
        crate::common::skip_or_fail(
            "prometheus not found on PATH; install the Debian package `prometheus`",
        );
        return;
    };
    let target = TestTarget::start(Reply::text(
        "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 100\nhttp_requests_total{code=\"500\"} 5\n# TYPE latency_seconds histogram\nlatency_seconds_bucket{le=\"0.1\"} 50\nlatency_seconds_bucket{le=\"0.5\"} 90\nlatency_seconds_bucket{le=\"+Inf\"} 100\nlatency_seconds_sum 20\nlatency_seconds_count 100\n",
    ))
    .await;
    let prom = start_prometheus(&bin, target.addr);
    let dir = tempfile::tempdir().unwrap();
    let augur = Daemon::start(
        dir.path(),
        &config_for(&[(
            "shop",
            "",
            &[target.addr],
            "labels = { track = \"canary\" }",
        )]),
    );

    let remote = augur::datasource::RemoteClient::new(
        &prom.url,
        Duration::from_secs(5),
        augur::config::Auth::None,
        &[],
    )
    .unwrap();
    let local = augur::datasource::RemoteClient::new(
        &format!("http://{}", augur.addr),
        Duration::from_secs(5),
        augur::config::Auth::None,
        &[],
    )
    .unwrap();
    eventually(
        30,
        "prometheus and augur both scraped the target",
        || async {
            let now = augur::clock::now_ms();
            let a = remote.instant("up", now).await.ok()?;
            let b = local.instant("up", now).await.ok()?;
            (vector(&a.value).len() == 1 && vector(&b.value).len() == 1).then_some(())
        },
    )
    .await;

    let now = augur::clock::now_ms();
    for q in [
        "up",
        "sum by (code) (http_requests_total)",
        "sum(http_requests_total{code=~\"5..\"}) / sum(http_requests_total)",
        "histogram_quantile(0.75, sum by (le) (latency_seconds_bucket))",
        "count by (job, track) (up == 1)",
        "label_replace(up, \"pod\", \"$1\", \"instance\", \"(.*):.*\")",
        "http_requests_total > 10",
        "absent(nonexistent_metric{job=\"shop\"})",
    ] {
        let a = remote
            .instant(q, now)
            .await
            .unwrap_or_else(|e| panic!("prometheus: {q}: {e}"));
        let b = local
            .instant(q, now)
            .await
            .unwrap_or_else(|e| panic!("augur: {q}: {e}"));
        assert_eq!(vector(&a.value), vector(&b.value), "query {q}");
    }
    // Values are checked against known numbers too, not only agreement.
    let r = remote
        .instant(
            "sum(http_requests_total{code=~\"5..\"}) / sum(http_requests_total)",
            now,
        )
        .await
        .unwrap();
    assert!((vector(&r.value)[0].1 - 5.0 / 105.0).abs() < 1e-12);
    let r = remote
        .instant(
            "histogram_quantile(0.75, sum by (le) (latency_seconds_bucket))",
            now,
        )
        .await
        .unwrap();
    // rank 75 in (0.1, 0.5] with 50 below and 40 inside.
    assert!((vector(&r.value)[0].1 - 0.35).abs() < 1e-12);

    // A range query is pushed down whole and comes back as a matrix.
    let r = remote
        .range("sum(up)", now - 2000, now, 1000)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected matrix")
    };
    assert_eq!(m.len(), 1);
    assert!(m[0].points.iter().all(|(_, v)| *v == 1.0));
    // promtool, Prometheus's own client, reads augur's API.
    let out = Command::new("promtool")
        .args(["query", "instant"])
        .arg(format!("http://{}", augur.addr))
        .arg("sum by (code) (http_requests_total)")
        .output()
        .expect("promtool comes with the prometheus package");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("{code=\"500\"} => 5 @["), "{text}");
    assert!(text.contains("{code=\"200\"} => 100 @["), "{text}");
    // Errors come back typed.
    let e = remote.instant("sum(", now).await.unwrap_err();
    assert!(
        matches!(e, augur::datasource::DatasourceError::RemoteQuery { ref kind, .. } if kind == "bad_data"),
        "{e}"
    );
}
