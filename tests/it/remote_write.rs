//! Remote write through the real binary: an in-test receiver that checks
//! the protocol (headers, snappy block format, protobuf, sorted labels,
//! order, stale markers) and misbehaves on cue (500, 429, a hang, 400),
//! then real receivers: Prometheus with `--web.enable-remote-write-receiver`
//! and VictoriaMetrics single-node. Those skip, saying what to install,
//! when the binaries are missing (`.ci/run` installs them).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Router;

use augur::remote_write::proto::WriteRequest;

use crate::common::{eventually, free_port, Daemon, Reply, TestTarget};
use crate::prometheus_remote::{find_bin, start_prometheus};

/// What the receiver does with the next request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Accept,
    Status(u16),
    /// 429 with `Retry-After: 1`
    TooMany,
    /// never answers (the sender's timeout must fire)
    Hang,
    /// 503 with `Retry-After: u64::MAX` and a 64 MiB body
    Hostile,
}

#[derive(Default)]
struct Seen {
    /// accepted requests, decoded
    accepted: Vec<WriteRequest>,
    /// bodies answered with a non-2xx status, by status
    refused: Vec<(u16, Vec<u8>)>,
    /// header problems found
    problems: Vec<String>,
    requests: usize,
    retry_attempts: usize,
}

struct Receiver {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let mode = Arc::new(Mutex::new(Mode::Accept));
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (m, s) = (mode.clone(), seen.clone());
        let app = Router::new().route(
            "/api/v1/write",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (m, s) = (m.clone(), s.clone());
                async move { receive(&m, &s, &headers, &body).await }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, mode, seen }
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// Accepted samples per series (labels as `k=v,...`), in arrival order.
    fn series(&self) -> BTreeMap<String, Vec<(i64, f64)>> {
        let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        for r in &self.seen.lock().unwrap().accepted {
            for ts in &r.timeseries {
                let key: Vec<String> = ts
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                out.entry(key.join(","))
                    .or_default()
                    .extend(ts.samples.iter().map(|s| (s.timestamp, s.value)));
            }
        }
        out
    }
}

async fn receive(
    mode: &Mutex<Mode>,
    seen: &Mutex<Seen>,
    headers: &HeaderMap,
    body: &[u8],
) -> axum::response::Response {
    let m = *mode.lock().unwrap();
    {
        let mut s = seen.lock().unwrap();
        s.requests += 1;
        let want = [
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("x-prometheus-remote-write-version", "0.1.0"),
            ("x-scope-orgid", "tenant-1"),
        ];
        for (k, v) in want {
            if headers.get(k).and_then(|h| h.to_str().ok()) != Some(v) {
                s.problems.push(format!("header {k}: {:?}", headers.get(k)));
            }
        }
        if !headers
            .get("user-agent")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|u| u.starts_with("augur/"))
        {
            s.problems.push("user agent".into());
        }
        if headers.get("retry-attempt").is_some() {
            s.retry_attempts += 1;
        }
    }
    match m {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Mode::Status(code) => {
            seen.lock().unwrap().refused.push((code, body.to_vec()));
            (StatusCode::from_u16(code).unwrap(), "no").into_response()
        }
        Mode::Hostile => {
            seen.lock().unwrap().refused.push((503, Vec::new()));
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("Retry-After", "18446744073709551615")],
                vec![b'x'; 64 << 20],
            )
                .into_response()
        }
        Mode::TooMany => {
            seen.lock().unwrap().refused.push((429, body.to_vec()));
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("Retry-After", "1")],
                "slow down",
            )
                .into_response()
        }
        Mode::Accept => {
            // The block format (the framed one starts with 0xff "sNaPpY").
            let mut s = seen.lock().unwrap();
            if body.first() == Some(&0xff) {
                s.problems.push("framed snappy".into());
            }
            match augur::remote_write::proto::decode(body) {
                Ok(r) => {
                    for ts in &r.timeseries {
                        let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
                        let mut sorted = names.clone();
                        sorted.sort();
                        sorted.dedup();
                        if names != sorted {
                            s.problems
                                .push(format!("labels not sorted/unique: {names:?}"));
                        }
                        if ts.labels.iter().any(|l| l.value.is_empty()) {
                            s.problems.push("empty label value".into());
                        }
                        if ts
                            .samples
                            .windows(2)
                            .any(|w| w[0].timestamp >= w[1].timestamp)
                        {
                            s.problems.push("samples out of order in a series".into());
                        }
                    }
                    s.accepted.push(r);
                    StatusCode::NO_CONTENT.into_response()
                }
                Err(e) => {
                    s.problems.push(e);
                    StatusCode::BAD_REQUEST.into_response()
                }
            }
        }
    }
}

const RULES: &str = r#"groups:
  - name: rw
    interval: 1s
    rules:
      - record: rw:answer
        expr: vector(42)
      - record: rw:flap
        expr: sum(flap_metric)
      - record: rw:dropme
        expr: vector(1)
      - alert: RwAlert
        expr: vector(1)
        for: 2s
        labels: {severity: info}
"#;

fn config(target: SocketAddr, remote: &str) -> String {
    format!(
        r#"rule_files = ["rules.yml"]
[storage]
retention = "1h"
[global]
scrape_interval = "1s"
scrape_timeout = "1s"
evaluation_interval = "1s"
external_labels = {{ cluster = "test" }}
[[scrape_configs]]
job_name = "shop"
static_configs = [{{ targets = ["{target}"] }}]
{remote}
"#
    )
}

fn remote(url: &str, extra: &str, queue: &str) -> String {
    format!(
        r#"[[remote_write]]
url = "{url}"
name = "test"
remote_timeout = "1s"
headers = {{ "X-Scope-OrgID" = "tenant-1" }}
{extra}
[[remote_write.write_relabel_configs]]
source_labels = ["__name__"]
regex = "rw:dropme"
action = "drop"
[remote_write.queue_config]
{queue}
"#
    )
}

fn is_stale(v: f64) -> bool {
    v.to_bits() == 0x7ff0_0000_0000_0002
}

/// The protocol, the outage sequence 500 -> 429 -> hang -> recovery with
/// nothing lost, then a 400 that is dropped, counted and never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_protocol_retries_and_refusals() {
    let target = TestTarget::start(Reply::text("flap_metric 5\nscraped_metric 1\n")).await;
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let cfg = config(
        target.addr,
        &remote(
            &rx.url(),
            "",
            "batch_send_deadline = \"200ms\"\nmin_backoff = \"50ms\"\nmax_backoff = \"300ms\"\nretry_on_http_429 = true",
        ),
    );
    let mut d = Daemon::start(dir.path(), &cfg);

    // Rule results, ALERTS and ALERTS_FOR_STATE arrive, with the external
    // label; the relabeled-away series and scraped samples do not.
    eventually(20, "firing ALERTS and ALERTS_FOR_STATE sent", || async {
        let s = rx.series();
        (s.keys()
            .any(|k| k.contains("__name__=ALERTS,") && k.contains("alertstate=firing"))
            && s.keys()
                .any(|k| k.starts_with("__name__=ALERTS_FOR_STATE,")))
        .then_some(())
    })
    .await;
    let s = rx.series();
    let answer = "__name__=rw:answer,cluster=test";
    assert!(s.contains_key(answer), "{:?}", s.keys());
    assert!(s.keys().all(|k| !k.contains("rw:dropme")), "{:?}", s.keys());
    assert!(s
        .keys()
        .all(|k| !k.contains("scraped_metric") && !k.starts_with("__name__=up")));
    // The pending series ended with a staleness marker when it fired.
    let pending = s
        .iter()
        .find(|(k, _)| k.contains("__name__=ALERTS,") && k.contains("alertstate=pending"))
        .expect("pending ALERTS sent");
    assert!(is_stale(pending.1.last().unwrap().1), "{:?}", pending.1);
    let for_state = s
        .iter()
        .find(|(k, _)| k.starts_with("__name__=ALERTS_FOR_STATE,"))
        .unwrap();
    assert_eq!(
        for_state.0,
        "__name__=ALERTS_FOR_STATE,alertname=RwAlert,cluster=test,severity=info"
    );
    let alerts = d.get_json("/api/v1/alerts").await;
    let active_at = alerts["data"]["alerts"][0]["activeAt"]
        .as_str()
        .unwrap()
        .to_string();
    let active_secs = for_state.1.last().unwrap().1;
    let active_ms = humantime::parse_rfc3339(&active_at)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(active_secs as i64, active_ms.div_euclid(1000));

    // A rule output that disappears gets a staleness marker.
    target.set_body("scraped_metric 1\n");
    eventually(10, "rw:flap staleness marker sent", || async {
        let s = rx.series();
        s.get("__name__=rw:flap,cluster=test")
            .filter(|v| v.last().is_some_and(|p| is_stale(p.1)))
            .map(|_| ())
    })
    .await;

    // Outage: 500, then 429 with Retry-After, then a hang past
    // remote_timeout; then recovery. Nothing the queue held is lost.
    let before = rx.series().get(answer).map_or(0, Vec::len);
    for (mode, secs) in [(Mode::Status(500), 2), (Mode::TooMany, 2), (Mode::Hang, 3)] {
        rx.set(mode);
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    rx.set(Mode::Accept);
    let got = eventually(20, "samples from the outage delivered", || async {
        let v = rx.series().get(answer).cloned().unwrap_or_default();
        (v.len() >= before + 7).then_some(v)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Every sample augur stored for the series between the first and the
    // last delivered one was delivered, once, in order.
    let stored = d.export("rw:answer").await;
    let (first, last) = (got[0].0, got.last().unwrap().0);
    let stored_ts: Vec<i64> = stored[0]
        .1
        .iter()
        .map(|p| p.0)
        .filter(|t| (first..=last).contains(t))
        .collect();
    let got_ts: Vec<i64> = rx.series()[answer]
        .iter()
        .map(|p| p.0)
        .filter(|t| (first..=last).contains(t))
        .collect();
    assert_eq!(got_ts, stored_ts, "delivered vs stored timestamps");
    assert!(got.iter().all(|p| p.1 == 42.0));
    {
        let seen = rx.seen.lock().unwrap();
        assert!(seen.problems.is_empty(), "{:?}", seen.problems);
        assert!(seen.refused.iter().any(|r| r.0 == 500));
        assert!(seen.refused.iter().any(|r| r.0 == 429));
        assert!(seen.retry_attempts > 0, "retries carry Retry-Attempt");
    }
    assert_eq!(
        d.own_metric("augur_remote_write_dropped_total", "").await,
        0.0
    );
    assert_eq!(
        d.own_metric("augur_remote_write_failed_total", "").await,
        0.0
    );
    assert!(
        d.own_metric("augur_remote_write_samples_total", "name=\"test\"")
            .await
            > 10.0
    );
    let high = d
        .own_metric("augur_remote_write_highest_sent_timestamp_seconds", "")
        .await;
    assert!((high * 1000.0) as i64 >= last - 1, "{high} vs {last}");

    // 400: dropped at once, counted as failed, never retried.
    let refused_before = rx.seen.lock().unwrap().refused.len();
    rx.set(Mode::Status(400));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    rx.set(Mode::Accept);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (bodies, samples): (Vec<Vec<u8>>, usize) = {
        let seen = rx.seen.lock().unwrap();
        let bodies: Vec<Vec<u8>> = seen.refused[refused_before..]
            .iter()
            .filter(|r| r.0 == 400)
            .map(|r| r.1.clone())
            .collect();
        let samples = bodies
            .iter()
            .map(|b| {
                augur::remote_write::proto::decode(b)
                    .unwrap()
                    .timeseries
                    .iter()
                    .map(|t| t.samples.len())
                    .sum::<usize>()
            })
            .sum();
        (bodies, samples)
    };
    assert!(!bodies.is_empty());
    let distinct: HashSet<&Vec<u8>> = bodies.iter().collect();
    assert_eq!(distinct.len(), bodies.len(), "a 400 batch was retried");
    assert_eq!(
        d.own_metric("augur_remote_write_failed_total", "").await,
        samples as f64
    );
    eventually(10, "pending back to 0", || async {
        (d.own_metric("augur_remote_write_pending", "").await == 0.0).then_some(())
    })
    .await;
    assert_eq!(d.stop(), 0);
}

/// A full queue drops its oldest samples and counts them; what it held
/// arrives after the outage, in order. SIGTERM flushes what is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_full_queue_drops_oldest_and_shutdown_flushes() {
    let target = TestTarget::start(Reply::text(
        "a_metric{i=\"1\"} 1\na_metric{i=\"2\"} 2\na_metric{i=\"3\"} 3\n",
    ))
    .await;
    let rx = Receiver::start().await;
    rx.set(Mode::Status(503));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    // One shard holding 40 samples (about two rounds of scrapes and rule
    // results); scraped samples are sent too.
    let cfg = config(
        target.addr,
        &remote(
            &rx.url(),
            "send_scraped = true",
            "capacity = 40\nmax_shards = 1\nmax_samples_per_send = 10\nbatch_send_deadline = \"100ms\"\nmin_backoff = \"50ms\"\nmax_backoff = \"100ms\"",
        ),
    );
    let mut d = Daemon::start(dir.path(), &cfg);
    eventually(20, "drops counted while the receiver fails", || async {
        (d.own_metric("augur_remote_write_dropped_total", "name=\"test\"")
            .await
            > 20.0)
            .then_some(())
    })
    .await;
    // Queued plus one batch in flight, at most.
    assert!(d.own_metric("augur_remote_write_pending", "").await <= 50.0);
    rx.set(Mode::Accept);
    eventually(20, "scraped samples delivered after recovery", || async {
        let s = rx.series();
        s.keys()
            .any(|k| k.starts_with("__name__=a_metric,") && k.contains("cluster=test"))
            .then_some(())
    })
    .await;
    {
        let seen = rx.seen.lock().unwrap();
        assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    }
    // Every series arrived in timestamp order across requests.
    for (k, v) in rx.series() {
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0), "{k}: {v:?}");
    }
    d.stop();

    // Shutdown flush: a long batch deadline holds samples; SIGTERM sends them.
    let rx2 = Receiver::start().await;
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(dir2.path().join("rules.yml"), RULES).unwrap();
    let cfg = config(
        target.addr,
        &remote(&rx2.url(), "", "batch_send_deadline = \"10m\""),
    );
    let mut d2 = Daemon::start(dir2.path(), &cfg);
    eventually(20, "rule results stored", || async {
        let s = d2.export("rw:answer").await;
        (s.first().map_or(0, |s| s.1.len()) >= 3).then_some(())
    })
    .await;
    assert_eq!(
        rx2.seen.lock().unwrap().requests,
        0,
        "held until the deadline"
    );
    let stored = d2.export("rw:answer").await[0].1.len();
    assert_eq!(d2.stop(), 0);
    let got = rx2
        .series()
        .get("__name__=rw:answer,cluster=test")
        .map_or(0, Vec::len);
    assert!(got >= stored, "flushed {got} of {stored} at shutdown");
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_victoria_metrics(bin: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!(
            "-storageDataPath={}",
            dir.path().join("vm").display()
        ))
        .arg("-retentionPeriod=1d")
        .arg("-search.latencyOffset=1s")
        .arg("-search.disableCache")
        .arg("-loggerLevel=ERROR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start victoria-metrics");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// Raw samples of `selector` over the last 5 minutes, from a
/// Prometheus-compatible API (a range selector in an instant query
/// returns the stored samples with their own timestamps).
async fn raw_samples(
    base: &str,
    selector: &str,
) -> Option<Vec<(serde_json::Value, Vec<(i64, f64)>)>> {
    let now = augur::clock::now_ms() as f64 / 1000.0;
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[
            ("query", format!("{selector}[5m]")),
            ("time", format!("{now:.3}")),
            ("nocache", "1".into()),
        ])
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    let out = v["data"]["result"]
        .as_array()?
        .iter()
        .map(|s| {
            let vals = s["values"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            (
                                (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                                p[1].as_str().unwrap().parse::<f64>().unwrap(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (s["metric"].clone(), vals)
        })
        .collect::<Vec<_>>();
    (!out.is_empty()).then_some(out)
}

/// Prometheus 2.42 and VictoriaMetrics as receivers: recording results,
/// ALERTS and ALERTS_FOR_STATE readable from both with augur's own values
/// and timestamps; scraped samples only where `send_scraped` is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_to_prometheus_and_victoria_metrics() {
    let (Some(prom_bin), Some(vm_bin)) = (find_bin("prometheus"), find_bin("victoria-metrics"))
    else {
        crate::common::skip_or_fail(
            "prometheus or victoria-metrics not found on PATH; install the Debian packages `prometheus` and `victoria-metrics`",
        );
        return;
    };
    // It scrapes nothing that exists: all it holds comes by remote write.
    let prom = start_prometheus(&prom_bin, "127.0.0.1:9".parse().unwrap());
    let vm = start_victoria_metrics(&vm_bin);
    let target = TestTarget::start(Reply::text(
        "# TYPE requests_total counter\nrequests_total{code=\"200\"} 90\nrequests_total{code=\"500\"} 10\n",
    ))
    .await;
    let rules = r#"groups:
  - name: rw
    interval: 1s
    rules:
      - record: job:error_ratio
        expr: sum by (job) (requests_total{code="500"}) / sum by (job) (requests_total)
      - alert: ErrorsHigh
        expr: job:error_ratio > 0.05
        for: 2s
        labels: {severity: page}
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let cfg = config(
        target.addr,
        &format!(
            "[[remote_write]]\nurl = \"{}/api/v1/write\"\nname = \"prometheus\"\n[remote_write.queue_config]\nbatch_send_deadline = \"200ms\"\n[[remote_write]]\nurl = \"{}/api/v1/write\"\nname = \"vm\"\nsend_scraped = true\n[remote_write.queue_config]\nbatch_send_deadline = \"200ms\"\n",
            prom.url, vm.base
        ),
    );
    let mut d = Daemon::start(dir.path(), &cfg);
    eventually(30, "the alert fires in augur", || async {
        let a = d.get_json("/api/v1/alerts").await;
        a["data"]["alerts"]
            .as_array()?
            .iter()
            .any(|x| x["state"] == "firing")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = d.export("job:error_ratio").await;
    let ours: Vec<(i64, f64)> = ours[0]
        .1
        .iter()
        .map(|(t, v)| (*t, v.parse().unwrap()))
        .collect();
    for (name, base) in [("prometheus", &prom.url), ("vm", &vm.base)] {
        let got = eventually(30, &format!("{name} has the recording results"), || async {
            let r = raw_samples(base, "job:error_ratio").await?;
            (r[0].1.len() >= 3).then_some(r)
        })
        .await;
        assert_eq!(got.len(), 1, "{name}: {got:?}");
        assert_eq!(got[0].0["job"], "shop", "{name}");
        assert_eq!(got[0].0["cluster"], "test", "{name}: external label");
        // Every sample the receiver has is one of augur's, same time and value.
        for p in &got[0].1 {
            assert!(ours.contains(p), "{name}: {p:?} not in augur's {ours:?}");
            assert!((p.1 - 0.1).abs() < 1e-12);
        }
        let firing = eventually(30, &format!("{name} has ALERTS"), || async {
            raw_samples(
                base,
                "ALERTS{alertname=\"ErrorsHigh\",alertstate=\"firing\"}",
            )
            .await
        })
        .await;
        assert_eq!(firing[0].0["severity"], "page");
        assert!(firing[0].1.iter().all(|p| p.1 == 1.0));
        let fs = eventually(30, &format!("{name} has ALERTS_FOR_STATE"), || async {
            raw_samples(base, "ALERTS_FOR_STATE{alertname=\"ErrorsHigh\"}").await
        })
        .await;
        let alerts = d.get_json("/api/v1/alerts").await;
        let active_at =
            humantime::parse_rfc3339(alerts["data"]["alerts"][0]["activeAt"].as_str().unwrap())
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as f64;
        assert!(fs[0].1.iter().all(|p| p.1 == active_at), "{name}: {fs:?}");
    }
    // Scraped samples: only the endpoint with send_scraped has them.
    let scraped = eventually(30, "vm has scraped samples", || async {
        raw_samples(&vm.base, "requests_total").await
    })
    .await;
    assert_eq!(scraped.len(), 2);
    assert!(raw_samples(&prom.url, "requests_total").await.is_none());
    assert_eq!(
        d.own_metric("augur_remote_write_failed_total", "").await,
        0.0
    );
    assert_eq!(d.stop(), 0);
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A hostile receiver (an endless Retry-After, a 64 MiB error body)
/// neither crashes augur, nor makes it buffer the body, nor blocks its
/// shutdown: the samples wait, then are counted dropped at SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_receiver_cannot_crash_bloat_or_block_shutdown() {
    let target = TestTarget::start(Reply::text("flap_metric 5\n")).await;
    let rx = Receiver::start().await;
    rx.set(Mode::Hostile);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let cfg = config(
        target.addr,
        &remote(
            &rx.url(),
            "",
            "batch_send_deadline = \"100ms\"\nmax_shards = 1",
        ),
    );
    let mut d = Daemon::start(dir.path(), &cfg);
    eventually(20, "the receiver refused a batch", || async {
        (!rx.seen.lock().unwrap().refused.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(rss_mib(d.pid()) < 60.0, "RSS {} MiB", rss_mib(d.pid()));
    assert_eq!(d.get_text("/-/healthy").await.0, 200);
    // One request, then the (capped) Retry-After wait: no hammering.
    assert_eq!(rx.seen.lock().unwrap().refused.len(), 1);
    let pending = eventually(10, "samples wait", || async {
        let p = d.own_metric("augur_remote_write_pending", "").await;
        (p > 0.0).then_some(p)
    })
    .await;
    let stop = std::time::Instant::now();
    assert_eq!(d.stop(), 0);
    assert!(
        stop.elapsed() < Duration::from_secs(9),
        "{:?}",
        stop.elapsed()
    );
    assert!(pending > 0.0);
}
