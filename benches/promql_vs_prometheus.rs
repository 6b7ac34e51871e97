//! Side by side: the same data and queries in augur and in a real
//! Prometheus, both asked over HTTP. Prints each median latency and the
//! ratio augur/Prometheus. Run with `cargo bench --bench promql_vs_prometheus`;
//! needs `prometheus` and `promtool` on PATH (Debian package `prometheus`)
//! and says so when they are missing.
//!
//! The data is benches/promql.rs's (10k counters and 10k histogram buckets,
//! 1h at 15s), ending now. Prometheus gets it through `promtool tsdb
//! create-blocks-from openmetrics`; augur through a store snapshot.

#[path = "promql.rs"]
#[allow(dead_code)]
mod data;

#[path = "side/mod.rs"]
#[allow(dead_code)]
mod side;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use augur::datasource::RemoteClient;
use augur::labels::{MatchOp, Matcher};
use side::{free_port, have};

fn wait_ready(url: &str) {
    let addr = url.trim_start_matches("http://");
    for _ in 0..600 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not come up");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !have("prometheus") || !have("promtool") {
        eprintln!(
            "SKIP: prometheus and promtool not found; install the Debian package `prometheus`"
        );
        return;
    }
    let now = augur::clock::now_ms() / 15_000 * 15_000;
    let shift = now - data::END;
    let store = data::build();
    let dir = tempfile::tempdir().unwrap();

    // OpenMetrics backfill file, series by series, samples in time order.
    let om = dir.path().join("data.om");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&om).unwrap());
        for name in [
            "http_requests_total",
            "http_request_duration_seconds_bucket",
        ] {
            writeln!(f, "# TYPE {name} unknown").unwrap();
            let m = [Matcher::new(MatchOp::Equal, "__name__", name).unwrap()];
            for s in store.select(&m, i64::MIN, i64::MAX) {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .filter(|l| &*l.name != "__name__")
                    .map(|l| format!("{}={:?}", l.name, &*l.value))
                    .collect();
                for (t, v) in &s.samples {
                    writeln!(
                        f,
                        "{name}{{{}}} {v} {}",
                        labels.join(","),
                        augur::fmtfloat::prom_timestamp(t + shift)
                    )
                    .unwrap();
                }
            }
        }
        writeln!(f, "# EOF").unwrap();
    }
    let tsdb = dir.path().join("tsdb");
    let t0 = Instant::now();
    let st = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&tsdb)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "promtool failed");
    eprintln!("promtool backfill took {:?}", t0.elapsed());

    // augur: the same samples, shifted to end now, through a snapshot.
    let shifted = augur::store::Store::new();
    {
        let m = [Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()];
        let mut app = shifted.appender();
        for s in store.select(&m, i64::MIN, i64::MAX) {
            let r = app.series(s.labels.iter().map(|l| (&*l.name, &*l.value)));
            for (t, v) in &s.samples {
                app.append(r, t + shift, *v).unwrap();
            }
        }
    }
    let state = dir.path().join("augur");
    shifted
        .write_snapshot(&state.join("store.snapshot"))
        .unwrap();
    let cfg = dir.path().join("augur.toml");
    std::fs::write(&cfg, "[storage]\nretention = \"3h\"\n").unwrap();

    let (pp, ap) = (free_port(), free_port());
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(&prom_cfg, "global: {}\n").unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{pp}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut aug = Command::new(env!("CARGO_BIN_EXE_augur"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--listen")
        .arg(format!("127.0.0.1:{ap}"))
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let purl = format!("http://127.0.0.1:{pp}");
    let aurl = format!("http://127.0.0.1:{ap}");
    wait_ready(&purl);
    wait_ready(&aurl);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prom_c = RemoteClient::new(
        &purl,
        Duration::from_secs(120),
        augur::config::Auth::None,
        &[],
    )
    .unwrap();
    let aug_c = RemoteClient::new(
        &aurl,
        Duration::from_secs(120),
        augur::config::Auth::None,
        &[],
    )
    .unwrap();
    let q1 = "sum by (job) (rate(http_requests_total[5m]))";
    let q2 =
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))";
    // Wait until Prometheus has loaded the blocks.
    rt.block_on(async {
        for _ in 0..300 {
            if let Ok(r) = prom_c.instant(q1, now).await {
                if matches!(&r.value, augur::promql::Value::Vector(v) if v.len() == 10) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("prometheus never answered with data");
    });
    println!(
        "{:<70} {:>12} {:>12} {:>8}",
        "query", "augur", "prometheus", "ratio"
    );
    for (label, q, range) in [
        ("instant sum by (job) (rate([5m]))", q1, false),
        (
            "instant histogram_quantile(0.99, sum by (le) (rate([5m])))",
            q2,
            false,
        ),
        ("range 1h step 15s sum by (job) (rate([5m]))", q1, true),
    ] {
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..11 {
            for (i, c) in [&aug_c, &prom_c].iter().enumerate() {
                let t = Instant::now();
                let r = rt.block_on(async {
                    if range {
                        c.range(q, now - 3_600_000, now, 15_000).await
                    } else {
                        c.instant(q, now).await
                    }
                });
                r.unwrap_or_else(|e| panic!("{q}: {e}"));
                times[i].push(t.elapsed());
            }
        }
        let (a, p) = (median(times[0].clone()), median(times[1].clone()));
        println!(
            "{label:<70} {:>10.2}ms {:>10.2}ms {:>8.2}",
            a.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            a.as_secs_f64() / p.as_secs_f64()
        );
    }
    let _ = prom.kill();
    let _ = aug.kill();
    let _ = prom.wait();
    let _ = aug.wait();
}
