//! The remote datasource against a real Prometheus, started by this test on
//! loopback with a temporary config and data directory, and augur scraping
//! the same target: the same queries must agree. Skips, saying what to
//! install, when `prometheus` is not on PATH (`.ci/run` installs Debian's).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{config_for, eventually, Daemon, Reply, TestTarget};
use augur::promql::Value;

pub(crate) struct Prometheus {
    child: Child,
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn find_prometheus() -> Option<String> {
    find_bin("prometheus")
}

/// A binary on PATH.
pub(crate) fn find_bin(bin: &str) -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!p.is_empty()).then_some(p)
}

use crate::common::free_port;

/// A Prometheus scraping `target` every second, also a remote-write receiver.
pub(crate) fn start_prometheus(bin: &str, target: std::net::SocketAddr) -> Prometheus {
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
        .arg("--web.enable-remote-write-receiver")
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

/// Rules read `[datasource]` (as vmalert does): with a remote Prometheus,
/// an alert fires and a recording rule records from data only that
/// Prometheus has (augur scrapes nothing); template `query` goes there
/// too. With the datasource unreachable, rules report `err` with the
/// reason and nothing fires or resolves from an empty answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_evaluate_against_the_remote_datasource() {
    let Some(bin) = find_prometheus() else {
        crate::common::skip_or_fail(
            "prometheus not found on PATH; install the Debian package `prometheus`",
        );
        return;
    };
    let target = TestTarget::start(Reply::text("remote_only_metric 7\n")).await;
    let local_target = TestTarget::start(Reply::text("local_only_metric 3\n")).await;
    let prom = start_prometheus(&bin, target.addr);
    let rules = r#"groups:
  - name: local
    interval: 1s
    rules:
      - record: job:local_only_metric:sum
        expr: sum by (job) (local_only_metric)
  - name: remote
    interval: 1s
    rules:
      - record: job:remote_only_metric:sum
        expr: sum by (job) (remote_only_metric)
      - alert: RemoteOnlyHigh
        expr: remote_only_metric > 5
        labels: {severity: info}
        annotations:
          summary: 'value {{ $value }}, targets {{ query "count(up)" | first | value }}'
"#;
    // The `local` group reads augur's own store (it scrapes one target).
    let cfg = |url: &str| {
        format!(
            "rule_files = [\"rules.yml\"]\n[global]\nevaluation_interval = \"1s\"\nscrape_interval = \"1s\"\nscrape_timeout = \"1s\"\n[datasource]\ntype = \"prometheus\"\nurl = \"{url}\"\ntimeout = \"2s\"\n[[rules.groups]]\nname = \"local\"\ndatasource = \"local\"\n[[scrape_configs]]\njob_name = \"mine\"\nstatic_configs = [{{ targets = [\"{}\"] }}]\n",
            local_target.addr
        )
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let mut d = Daemon::start(dir.path(), &cfg(&prom.url));
    let alert = eventually(40, "alert firing from remote data", || async {
        let a = d.get_json("/api/v1/alerts").await;
        a["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|x| x["labels"]["alertname"] == "RemoteOnlyHigh" && x["state"] == "firing")
            .cloned()
    })
    .await;
    assert_eq!(alert["labels"]["job"], "shop");
    assert_eq!(alert["annotations"]["summary"], "value 7, targets 1");
    let rec = d.export("job:remote_only_metric:sum").await;
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert_eq!(rec[0].0["job"], "shop");
    assert_eq!(rec[0].1.last().unwrap().1, "7");
    // augur did not scrape the remote data; the local group read its own.
    assert!(d.export("remote_only_metric").await.is_empty());
    let local = eventually(10, "local group recorded", || async {
        let s = d.export("job:local_only_metric:sum").await;
        (!s.is_empty()).then_some(s)
    })
    .await;
    assert_eq!(local[0].0["job"], "mine");
    assert_eq!(local[0].1.last().unwrap().1, "3");
    assert_eq!(d.stop(), 0);

    // check config: an unknown group and "remote" without a remote API.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "rule_files = [\"rules.yml\"]\n[[rules.groups]]\nname = \"nope\"\n[[rules.groups]]\nname = \"local\"\ndatasource = \"remote\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:8: rules.groups[0].name: no rule group \"nope\" in rule_files"),
        "{err}"
    );
    assert!(
        err.contains(
            "rules.groups[1].datasource: \"remote\" needs [datasource] type = \"prometheus\""
        ),
        "{err}"
    );

    // Unreachable datasource: health err with the reason, no alert.
    let port = free_port();
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(dir2.path().join("rules.yml"), rules).unwrap();
    let mut d2 = Daemon::start(dir2.path(), &cfg(&format!("http://127.0.0.1:{port}")));
    let rule = eventually(20, "rules report the failing datasource", || async {
        let r = d2.get_json("/api/v1/rules").await;
        let g = r["data"]["groups"]
            .as_array()?
            .iter()
            .find(|g| g["name"] == "remote")?
            .clone();
        let rules = g["rules"].as_array()?.clone();
        rules
            .iter()
            .all(|x| x["health"] == "err")
            .then(|| rules[1].clone())
    })
    .await;
    assert!(
        !rule["lastError"].as_str().unwrap_or("").is_empty(),
        "{rule}"
    );
    let a = d2.get_json("/api/v1/alerts").await;
    assert_eq!(a["data"]["alerts"].as_array().map(Vec::len), Some(0));
    assert_eq!(d2.stop(), 0);
}

fn rfc3339_ms(v: &serde_json::Value) -> i64 {
    humantime::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A new host (empty state dir) restores a pending alert's `for` clock
/// from `ALERTS_FOR_STATE` that the previous host remote-wrote into the
/// datasource, with Prometheus's formula: the time down does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_state_restores_from_the_remote_store_on_a_new_host() {
    let Some(bin) = find_prometheus() else {
        crate::common::skip_or_fail(
            "prometheus not found on PATH; install the Debian package `prometheus`",
        );
        return;
    };
    let target = TestTarget::start(Reply::text("remote_only_metric 7\n")).await;
    let prom = start_prometheus(&bin, target.addr);
    let rules = "groups:\n  - name: remote\n    interval: 1s\n    rules:\n      - alert: SlowBurn\n        expr: remote_only_metric > 5\n        for: 1h\n        labels: {severity: ticket}\n";
    let cfg = format!(
        "rule_files = [\"rules.yml\"]\n[global]\nevaluation_interval = \"1s\"\nexternal_labels = {{ replica = \"a\" }}\n[datasource]\ntype = \"prometheus\"\nurl = \"{0}\"\ntimeout = \"2s\"\n[[remote_write]]\nurl = \"{0}/api/v1/write\"\n[remote_write.queue_config]\nbatch_send_deadline = \"100ms\"\n",
        prom.url
    );
    let pending = |d: &Daemon| {
        let url = d.url("/api/v1/alerts");
        async move {
            let a: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            a["data"]["alerts"]
                .as_array()?
                .iter()
                .find(|x| x["labels"]["alertname"] == "SlowBurn" && x["state"] == "pending")
                .cloned()
        }
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let mut a = Daemon::start(dir.path(), &cfg);
    let first = eventually(40, "host A: alert pending", || pending(&a)).await;
    let a_active = rfc3339_ms(&first["activeAt"]);
    // Pending for a while, and its for-state in the remote store.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let remote = augur::datasource::RemoteClient::new(
        &prom.url,
        Duration::from_secs(5),
        augur::config::Auth::None,
        &[],
    )
    .unwrap();
    // A remote group's results go back by remote write only (as vmalert's):
    // augur keeps no second copy.
    assert!(a.export("ALERTS_FOR_STATE").await.is_empty());
    assert_eq!(a.stop(), 0);
    let r = remote
        .instant(
            "ALERTS_FOR_STATE{alertname=\"SlowBurn\"}[5m]",
            augur::clock::now_ms(),
        )
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected a matrix")
    };
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].labels.get("replica"), Some("a"));
    let (down_at, v) = *m[0].points.last().unwrap();
    assert_eq!(v as i64, a_active.div_euclid(1000));
    let down_at = down_at.div_euclid(1000) * 1000;
    assert!(down_at - a_active >= 5000, "A was pending for 5 s or more");

    // Host B: a fresh state dir, another replica label, down for 2 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::write(dir_b.path().join("rules.yml"), rules).unwrap();
    let b_start = augur::clock::now_ms();
    let mut b = Daemon::start(
        dir_b.path(),
        &cfg.replace("replica = \"a\"", "replica = \"b\""),
    );
    let got = eventually(40, "host B: alert pending", || pending(&b)).await;
    let b_active = rfc3339_ms(&got["activeAt"]);
    // activeAt = A's (whole seconds) + (B's first evaluation - down_at),
    // the first evaluation falling within 3 s of B's start.
    let base = a_active.div_euclid(1000) * 1000;
    let lo = base + (b_start - down_at) - 1000;
    let hi = base + (b_start + 3000 - down_at) + 1000;
    assert!(
        (lo..=hi).contains(&b_active),
        "B activeAt {b_active} not in [{lo}, {hi}] (A {a_active}, down {down_at}, B start {b_start})"
    );
    assert!(
        b_active <= b_start - 4000,
        "the for clock did not start from zero"
    );
    assert_eq!(b.stop(), 0);
}
