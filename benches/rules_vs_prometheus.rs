//! Rule evaluation side by side: 1,000 alerting rules in 10 groups over a
//! target with 10k series, run by augur and by a real Prometheus scraping
//! the same target with the same rule files. Prints each one's total
//! evaluation time per round (sum of the groups' last duration) and CPU
//! seconds per minute of each process.
//! Run with `cargo bench --bench rules_vs_prometheus`; needs `prometheus`
//! on PATH (Debian package `prometheus`) and says so when it is missing.

#[path = "side/mod.rs"]
#[allow(dead_code)]
mod side;

use std::process::{Command, Stdio};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use side::{body, cpu_seconds, free_port, have, metric_sum, ROUTES, SERIES};

const GROUPS: usize = 10;
const RULES_PER_GROUP: usize = 100;
const WARMUP_SECS: u64 = 45;
const WINDOW_SECS: u64 = 60;

fn rules() -> String {
    let mut s = String::from("groups:\n");
    for g in 0..GROUPS {
        s.push_str(&format!("  - name: canary-{g}\n    rules:\n"));
        for r in 0..RULES_PER_GROUP {
            let k = g * RULES_PER_GROUP + r;
            s.push_str(&format!(
                "      - alert: ErrorRatio{k}\n        expr: sum by (instance_id) (rate(app_requests_total{{route=\"r{}\",code=\"500\"}}[1m])) / sum by (instance_id) (rate(app_requests_total{{route=\"r{}\"}}[1m])) > 0.{}\n        for: 1m\n        labels:\n          severity: page\n        annotations:\n          summary: \"{{{{ $labels.instance_id }}}} error ratio {{{{ $value | humanizePercentage }}}}\"\n",
                k % ROUTES,
                k % ROUTES,
                (k % 9) + 1
            ));
        }
    }
    s
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !have("prometheus") {
        eprintln!("SKIP: prometheus not found; install the Debian package `prometheus`");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target_port = free_port();
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
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules()).unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("augur.toml"),
        format!(
            "rule_files = [\"rules.yml\"]\n[global]\nscrape_interval = \"15s\"\nevaluation_interval = \"15s\"\n[[scrape_configs]]\njob_name = \"app\"\n[[scrape_configs.static_configs]]\ntargets = [\"127.0.0.1:{target_port}\"]\n"
        ),
    )
    .unwrap();
    let (pp, ap) = (free_port(), free_port());
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{pp}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut aug = Command::new(env!("CARGO_BIN_EXE_augur"))
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
    eprintln!(
        "warming up {WARMUP_SECS}s ({} rules, {SERIES} series)...",
        GROUPS * RULES_PER_GROUP
    );
    std::thread::sleep(Duration::from_secs(WARMUP_SECS));
    let (pc0, ac0) = (cpu_seconds(prom.id()), cpu_seconds(aug.id()));
    std::thread::sleep(Duration::from_secs(WINDOW_SECS));
    let (pc1, ac1) = (cpu_seconds(prom.id()), cpu_seconds(aug.id()));
    let get =
        |url: String| rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() });
    let p = metric_sum(
        &get(format!("http://127.0.0.1:{pp}/metrics")),
        "prometheus_rule_group_last_duration_seconds",
    );
    let a = metric_sum(
        &get(format!("http://127.0.0.1:{ap}/metrics")),
        "augur_rule_group_last_duration_seconds",
    );
    let per_min = 60.0 / WINDOW_SECS as f64;
    println!(
        "{:<52} {:>12} {:>12} {:>8}",
        "", "augur", "prometheus", "ratio"
    );
    println!(
        "{:<52} {:>10.1}ms {:>10.1}ms {:>8.2}",
        "rule evaluation time per round (sum of 10 groups)",
        a * 1e3,
        p * 1e3,
        a / p
    );
    println!(
        "{:<52} {:>11.2}s {:>11.2}s {:>8.2}",
        "process CPU per minute (scrape + rules + rest)",
        (ac1 - ac0) * per_min,
        (pc1 - pc0) * per_min,
        (ac1 - ac0) / (pc1 - pc0)
    );
    let _ = prom.kill();
    let _ = aug.kill();
    let _ = prom.wait();
    let _ = aug.wait();
}
