//! Discovery and relabeling benchmarks: 10,000 discovered targets (pods
//! with ~30 Kubernetes-style labels) through 10 relabel rules, reported as
//! target-rules per second (goal: at least 1M/s); and an update of 5,000
//! pods reaching the scrape loops (`ScrapeManager::update_groups`: target
//! finishing, dedup and loop start/stop; goal: under 1 s), both a fresh
//! set of 5,000 and a change of one pod among 5,000.

use std::sync::Arc;
use std::time::Duration;

use augur::config::Config;
use augur::discovery::TargetGroup;
use augur::metrics::Metrics;
use augur::relabel::{populate_labels, LabelSet, Rule, RuleSpec};
use augur::scrape::ScrapeManager;
use augur::store::Store;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn pod(i: usize, canary: bool) -> (LabelSet, LabelSet) {
    let mut g = vec![
        (
            "__meta_kubernetes_namespace".to_string(),
            "shop".to_string(),
        ),
        (
            "__meta_kubernetes_pod_name".into(),
            format!("checkout-7c9f-{i}"),
        ),
        (
            "__meta_kubernetes_pod_ip".into(),
            format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
        ),
        ("__meta_kubernetes_pod_ready".into(), "true".into()),
        ("__meta_kubernetes_pod_phase".into(), "Running".into()),
        (
            "__meta_kubernetes_pod_node_name".into(),
            format!("node-{}", i % 50),
        ),
        (
            "__meta_kubernetes_pod_host_ip".into(),
            format!("192.168.0.{}", i % 50),
        ),
        (
            "__meta_kubernetes_pod_uid".into(),
            format!("{i:08x}-aaaa-bbbb-cccc-dddddddddddd"),
        ),
        (
            "__meta_kubernetes_pod_controller_kind".into(),
            "ReplicaSet".into(),
        ),
        (
            "__meta_kubernetes_pod_controller_name".into(),
            "checkout-7c9f".into(),
        ),
        ("__meta_kubernetes_pod_label_app".into(), "checkout".into()),
        (
            "__meta_kubernetes_pod_labelpresent_app".into(),
            "true".into(),
        ),
        (
            "__meta_kubernetes_pod_label_rollouts_pod_template_hash".into(),
            if canary { "7c9f" } else { "5d2a" }.into(),
        ),
        (
            "__meta_kubernetes_pod_labelpresent_rollouts_pod_template_hash".into(),
            "true".into(),
        ),
        ("__meta_kubernetes_pod_label_team".into(), "payments".into()),
        (
            "__meta_kubernetes_pod_labelpresent_team".into(),
            "true".into(),
        ),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape".into(),
            "true".into(),
        ),
        (
            "__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape".into(),
            "true".into(),
        ),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_port".into(),
            "8080".into(),
        ),
        (
            "__meta_kubernetes_pod_annotationpresent_prometheus_io_port".into(),
            "true".into(),
        ),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_path".into(),
            "/metrics".into(),
        ),
        (
            "__meta_kubernetes_pod_annotationpresent_prometheus_io_path".into(),
            "true".into(),
        ),
    ];
    g.sort();
    let t = LabelSet::from_pairs([
        (
            "__address__".to_string(),
            format!("10.{}.{}.{}:8080", i >> 16, (i >> 8) & 255, i & 255),
        ),
        ("__meta_kubernetes_pod_container_name".into(), "app".into()),
        (
            "__meta_kubernetes_pod_container_port_name".into(),
            "http".into(),
        ),
        (
            "__meta_kubernetes_pod_container_port_number".into(),
            "8080".into(),
        ),
        (
            "__meta_kubernetes_pod_container_port_protocol".into(),
            "TCP".into(),
        ),
        (
            "__meta_kubernetes_pod_container_init".into(),
            "false".into(),
        ),
        (
            "__meta_kubernetes_pod_container_image".into(),
            "shop/checkout:1.2.3".into(),
        ),
    ]);
    (t, LabelSet::from_pairs(g))
}

/// The rules a typical pod job has (keep annotated pods, port and path
/// from annotations, canary track from the hash, labels mapped).
fn rules() -> Vec<Rule> {
    let spec = |src: &[&str], regex: &str, target: &str, rep: &str, action: &str| RuleSpec {
        source_labels: src.iter().map(|s| s.to_string()).collect(),
        regex: (!regex.is_empty()).then(|| regex.to_string()),
        target_label: (!target.is_empty()).then(|| target.to_string()),
        replacement: (!rep.is_empty()).then(|| rep.to_string()),
        action: Some(action.to_string()),
        ..RuleSpec::default()
    };
    [
        spec(
            &["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
            "true",
            "",
            "",
            "keep",
        ),
        spec(
            &["__meta_kubernetes_pod_phase"],
            "Pending|Succeeded|Failed",
            "",
            "",
            "drop",
        ),
        spec(
            &["__meta_kubernetes_pod_annotation_prometheus_io_path"],
            "(.+)",
            "__metrics_path__",
            "",
            "replace",
        ),
        spec(
            &[
                "__address__",
                "__meta_kubernetes_pod_annotation_prometheus_io_port",
            ],
            r"([^:]+)(?::\d+)?;(\d+)",
            "__address__",
            "$1:$2",
            "replace",
        ),
        spec(
            &["__meta_kubernetes_pod_label_rollouts_pod_template_hash"],
            "7c9f",
            "track",
            "canary",
            "replace",
        ),
        spec(&["track"], "", "track", "stable", "replace"),
        spec(&[], "__meta_kubernetes_pod_label_(.+)", "", "", "labelmap"),
        spec(
            &["__meta_kubernetes_namespace"],
            "",
            "namespace",
            "",
            "replace",
        ),
        spec(&["__meta_kubernetes_pod_name"], "", "pod", "", "replace"),
        spec(&[], "rollouts_pod_template_hash", "", "", "labeldrop"),
    ]
    .iter()
    .map(|s| Rule::new(s).expect("valid rule"))
    .collect()
}

fn bench_relabel(c: &mut Criterion) {
    let rules = rules();
    let pods: Vec<_> = (0..10_000).map(|i| pod(i, i % 10 == 0)).collect();
    let params = Vec::new();
    let defaults = augur::relabel::JobDefaults {
        job_name: "pods",
        scrape_interval: Duration::from_secs(15),
        scrape_timeout: Duration::from_secs(10),
        metrics_path: "/metrics",
        scheme: "http",
        params: &params,
        rules: &rules,
    };
    let mut g = c.benchmark_group("relabel");
    g.throughput(Throughput::Elements((pods.len() * rules.len()) as u64));
    g.bench_function("10k_targets_x_10_rules", |b| {
        b.iter(|| {
            for (t, l) in &pods {
                black_box(populate_labels(&defaults, t, l));
            }
        })
    });
    g.finish();
}

fn config() -> Config {
    let text = r#"
[global]
scrape_interval = "1m"
[[scrape_configs]]
job_name = "pods"
[[scrape_configs.file_sd_configs]]
files = ["/nonexistent/pods.json"]
"#;
    let mut cfg = augur::config::compile(std::path::Path::new("bench.toml"), text).expect("config");
    cfg.scrape_configs[0].relabel_configs = rules();
    cfg
}

fn groups(n: usize, gen: usize) -> Vec<Arc<TargetGroup>> {
    (0..n)
        .map(|i| {
            let (t, l) = pod(i + gen * 1_000_000, i % 10 == 0);
            Arc::new(TargetGroup {
                source: format!("pod/shop/{i}"),
                targets: vec![t],
                labels: l,
            })
        })
        .collect()
}

fn bench_update(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let store = Arc::new(Store::new());
    let metrics = Arc::new(Metrics::new(store.clone()));
    let token = CancellationToken::new();
    let mgr = ScrapeManager::new(store, metrics, TaskTracker::new(), token.clone(), 1);
    let cfg = config();
    mgr.apply(&cfg);
    let mut g = c.benchmark_group("scrape_pool_update");
    g.sample_size(10);
    // All 5,000 pods replaced by 5,000 new ones: every loop stopped and
    // started.
    let mut gen = 0;
    g.bench_function("5000_pods_replaced", |b| {
        b.iter_batched(
            || {
                gen += 1;
                groups(5_000, gen)
            },
            |gs| mgr.update_groups("pods", gs),
            criterion::BatchSize::LargeInput,
        )
    });
    // One pod of 5,000 changes: 4,999 loops kept.
    let base = groups(5_000, 0);
    mgr.update_groups("pods", base.clone());
    let mut flip = false;
    g.bench_function("5000_pods_one_changed", |b| {
        b.iter_batched(
            || {
                flip = !flip;
                let mut gs = base.clone();
                gs[0] = groups(1, if flip { 99 } else { 0 }).remove(0);
                gs
            },
            |gs| mgr.update_groups("pods", gs),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
    assert_eq!(mgr.targets().len(), 5_000);
    token.cancel();
}

criterion_group!(benches, bench_relabel, bench_update);
criterion_main!(benches);
