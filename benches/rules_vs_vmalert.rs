//! Rules over a remote datasource, side by side with vmalert: the same
//! 1,000 rules (500 recording, 500 alerting, 10 groups) evaluated against
//! the same VictoriaMetrics single-node, which scrapes one target with 10k
//! series; each tool writes its results back to it by remote write and
//! sends alerts to the same stand-in Alertmanager. The two run one after
//! the other (2-core machine) and are measured over the same window:
//! rule evaluation time per round (sum of the groups' mean), process CPU
//! per minute, and peak RSS.
//! Run with `cargo bench --bench rules_vs_vmalert`; needs `victoria-metrics`
//! and `vmalert` on PATH (Debian package `victoria-metrics`) and says so
//! when they are missing.

#[path = "side/mod.rs"]
#[allow(dead_code)]
mod side;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use side::{body, cpu_seconds, free_port, have, metric_sum, peak_rss_mib, ROUTES, SERIES};

const GROUPS: usize = 10;
const RULES_PER_GROUP: usize = 100;
const WARMUP_SECS: u64 = 35;
const WINDOW_SECS: u64 = 60;
const INTERVAL: &str = "10s";

fn rules() -> String {
    let mut s = String::from("groups:\n");
    for g in 0..GROUPS {
        s.push_str(&format!(
            "  - name: canary-{g}\n    interval: {INTERVAL}\n    rules:\n"
        ));
        for r in 0..RULES_PER_GROUP {
            let k = g * RULES_PER_GROUP + r;
            let route = k % ROUTES;
            if r % 2 == 0 {
                s.push_str(&format!(
                    "      - record: route:app_requests:rate1m_{k}\n        expr: sum by (instance_id) (rate(app_requests_total{{route=\"r{route}\"}}[1m]))\n"
                ));
            } else {
                s.push_str(&format!(
                    "      - alert: ErrorRatio{k}\n        expr: sum by (instance_id) (rate(app_requests_total{{route=\"r{route}\",code=\"500\"}}[1m])) / sum by (instance_id) (rate(app_requests_total{{route=\"r{route}\"}}[1m])) > 0.{}\n        for: 1m\n        labels:\n          severity: page\n        annotations:\n          summary: \"{{{{ $labels.instance_id }}}} error ratio {{{{ $value }}}}\"\n",
                    (k % 9) + 1
                ));
            }
        }
    }
    s
}

struct Measured {
    eval_ms: f64,
    cpu_per_min: f64,
    peak_rss: f64,
    failures: f64,
}

fn fetch(rt: &tokio::runtime::Runtime, url: &str) -> String {
    rt.block_on(async {
        match reqwest::get(url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    })
}

/// Warms up, then measures `child` over the window. `eval` reads the
/// metrics page and returns (total seconds, rounds) so far, or a gauge of
/// the last round's total when `rounds` is None.
fn measure(
    rt: &tokio::runtime::Runtime,
    child: &mut Child,
    metrics_url: &str,
    eval: &dyn Fn(&str) -> (f64, Option<f64>),
    failures: &str,
) -> Measured {
    std::thread::sleep(Duration::from_secs(WARMUP_SECS));
    let c0 = cpu_seconds(child.id());
    let (s0, n0) = eval(&fetch(rt, metrics_url));
    let mut gauge = Vec::new();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(WINDOW_SECS) {
        std::thread::sleep(Duration::from_secs(1));
        let (s, n) = eval(&fetch(rt, metrics_url));
        if n.is_none() {
            gauge.push(s);
        }
    }
    let c1 = cpu_seconds(child.id());
    let page = fetch(rt, metrics_url);
    let (s1, n1) = eval(&page);
    let eval_ms = match (n0, n1) {
        (Some(a), Some(b)) if b > a => (s1 - s0) / (b - a) * 1e3,
        _ => gauge.iter().sum::<f64>() / gauge.len().max(1) as f64 * 1e3,
    };
    Measured {
        eval_ms,
        cpu_per_min: (c1 - c0) * 60.0 / WINDOW_SECS as f64,
        peak_rss: peak_rss_mib(child.id()),
        failures: metric_sum(&page, failures),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !have("victoria-metrics") || !have("vmalert") {
        eprintln!(
            "SKIP: victoria-metrics or vmalert not found; install the Debian package `victoria-metrics`"
        );
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (target_port, am_port) = (free_port(), free_port());
    let start = std::time::Instant::now();
    rt.spawn(async move {
        let app = Router::new().route(
            "/metrics",
            get(move || async move { body(start.elapsed().as_secs()) }),
        );
        let l = tokio::net::TcpListener::bind(("127.0.0.1", target_port))
            .await
            .unwrap();
        axum::serve(l, app).await.unwrap();
    });
    rt.spawn(async move {
        // A stand-in Alertmanager: accepts every batch.
        let app = Router::new().route("/api/v2/alerts", post(|| async { "" }));
        let l = tokio::net::TcpListener::bind(("127.0.0.1", am_port))
            .await
            .unwrap();
        axum::serve(l, app).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules()).unwrap();
    std::fs::write(
        dir.path().join("scrape.yml"),
        format!(
            "scrape_configs:\n  - job_name: app\n    scrape_interval: 10s\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ),
    )
    .unwrap();
    let vm_port = free_port();
    let vm_url = format!("http://127.0.0.1:{vm_port}");
    let mut vm = Command::new("victoria-metrics")
        .arg(format!("-httpListenAddr=127.0.0.1:{vm_port}"))
        .arg(format!(
            "-storageDataPath={}",
            dir.path().join("vm").display()
        ))
        .arg(format!(
            "-promscrape.config={}",
            dir.path().join("scrape.yml").display()
        ))
        .arg("-retentionPeriod=1d")
        .arg("-search.latencyOffset=1s")
        .arg("-loggerLevel=ERROR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eprintln!("filling VictoriaMetrics for 25s ({SERIES} series)...");
    std::thread::sleep(Duration::from_secs(25));

    // RULES_BENCH_ONLY=augur measures augur alone (for profiling).
    let only_augur = std::env::var("RULES_BENCH_ONLY").is_ok_and(|v| v == "augur");
    let vp = free_port();
    let mut vmalert = Command::new(if only_augur { "true" } else { "vmalert" })
        .arg(format!("-rule={}", dir.path().join("rules.yml").display()))
        .arg(format!("-datasource.url={vm_url}"))
        .arg(format!("-remoteWrite.url={vm_url}"))
        .arg(format!("-notifier.url=http://127.0.0.1:{am_port}"))
        .arg(format!("-evaluationInterval={INTERVAL}"))
        .arg(format!("-httpListenAddr=127.0.0.1:{vp}"))
        .arg("-loggerLevel=ERROR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eprintln!(
        "vmalert: warming up {WARMUP_SECS}s, measuring {WINDOW_SECS}s ({} rules)...",
        GROUPS * RULES_PER_GROUP
    );
    let v = if only_augur {
        Measured {
            eval_ms: f64::NAN,
            cpu_per_min: f64::NAN,
            peak_rss: f64::NAN,
            failures: f64::NAN,
        }
    } else {
        measure(
            &rt,
            &mut vmalert,
            &format!("http://127.0.0.1:{vp}/metrics"),
            &|page| {
                (
                    metric_sum(page, "vmalert_iteration_duration_seconds_sum"),
                    Some(
                        metric_sum(page, "vmalert_iteration_duration_seconds_count")
                            / GROUPS as f64,
                    ),
                )
            },
            "vmalert_execution_errors_total",
        )
    };
    let _ = vmalert.kill();
    let _ = vmalert.wait();

    std::fs::write(
        dir.path().join("augur.toml"),
        format!(
            "rule_files = [\"rules.yml\"]\n[global]\nevaluation_interval = \"{INTERVAL}\"\n[datasource]\ntype = \"prometheus\"\nurl = \"{vm_url}\"\n{}[[notify.alertmanager]]\nurl = \"http://127.0.0.1:{am_port}\"\n{}",
            if std::env::var("RULES_BENCH_NO_RW").is_ok() {
                String::new()
            } else {
                format!("[[remote_write]]\nurl = \"{vm_url}/api/v1/write\"\n")
            },
            std::env::var("RULES_BENCH_AUGUR_EXTRA").unwrap_or_default()
        ),
    )
    .unwrap();
    let ap = free_port();
    // RULES_BENCH_WRAP=heaptrack (or another wrapper) profiles augur.
    let mut aug = match std::env::var("RULES_BENCH_WRAP") {
        Ok(w) => {
            let mut c = Command::new(w);
            c.arg(env!("CARGO_BIN_EXE_augur"));
            c
        }
        Err(_) => Command::new(env!("CARGO_BIN_EXE_augur")),
    };
    let mut aug = aug
        .args(["run", "--config"])
        .arg(dir.path().join("augur.toml"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{ap}"))
        .arg("--state-dir")
        .arg(dir.path().join("augur-state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eprintln!("augur: warming up {WARMUP_SECS}s, measuring {WINDOW_SECS}s...");
    let a = measure(
        &rt,
        &mut aug,
        &format!("http://127.0.0.1:{ap}/metrics"),
        &|page| {
            (
                metric_sum(page, "augur_rule_group_last_duration_seconds"),
                None,
            )
        },
        "augur_rule_evaluation_failures_total",
    );
    let _ = aug.kill();
    let _ = aug.wait();
    let _ = vm.kill();
    let _ = vm.wait();

    println!(
        "{:<52} {:>12} {:>12} {:>8}",
        "", "augur", "vmalert", "ratio"
    );
    println!(
        "{:<52} {:>10.1}ms {:>10.1}ms {:>8.2}",
        "rule evaluation time per round (sum of 10 groups)",
        a.eval_ms,
        v.eval_ms,
        a.eval_ms / v.eval_ms
    );
    println!(
        "{:<52} {:>11.2}s {:>11.2}s {:>8.2}",
        "process CPU per minute",
        a.cpu_per_min,
        v.cpu_per_min,
        a.cpu_per_min / v.cpu_per_min
    );
    println!(
        "{:<52} {:>9.1}MiB {:>9.1}MiB {:>8.2}",
        "peak RSS",
        a.peak_rss,
        v.peak_rss,
        a.peak_rss / v.peak_rss
    );
    println!(
        "{:<52} {:>12} {:>12}",
        "rule evaluation failures (window end)", a.failures, v.failures
    );
}
