//! One whole analysis measurement on the embedded store: a run of a
//! 10-metric template (error e-process, error-rate delta, p50/p90/p95/p99
//! ratios, histogram CDF band, per-pod mean latency t-test, per-pod p99
//! Mann-Whitney and Kayenta) is created and measured once, queries, tests
//! and the SQLite write included. Goal: under 20 ms. The store holds the
//! service's 2 x 10 pods (counters, 10-bucket histograms, sums and counts)
//! plus 5,000 unrelated series, 1h at 15s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use augur::analysis::engine::{AnalysisManager, Overrides};
use augur::analysis::template::parse_file;
use augur::config::QueryConfig;
use augur::datasource::Datasource;
use augur::labels::Labels;
use augur::state::State;
use augur::store::Store;
use criterion::{criterion_group, criterion_main, Criterion};

const END: i64 = 1_700_000_000_000;
const STEP: i64 = 15_000;
const POINTS: i64 = 241;

const TEMPLATE: &str = r#"
[[analysis]]
name = "bench"
interval = "1m"
window = "5m"
[analysis.args]
ns = {}
[[analysis.metric]]
name = "errors"
check = "test"
test = "sequential-counts"
errors = 'sum(increase(http_requests_total{ns="{{ args.ns }}", track="{{ track }}", code="500"}[{{ interval }}]))'
total = 'sum(increase(http_requests_total{ns="{{ args.ns }}", track="{{ track }}"}[{{ interval }}]))'
[[analysis.metric]]
name = "error rate"
check = "relative"
max_delta = 0.01
query = 'sum(rate(http_requests_total{ns="{{ args.ns }}", track="{{ track }}", code="500"}[{{ window }}])) / sum(rate(http_requests_total{ns="{{ args.ns }}", track="{{ track }}"}[{{ window }}]))'
[[analysis.metric]]
name = "p50"
check = "relative"
max_ratio = 1.2
query = 'histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{ns="{{ args.ns }}", track="{{ track }}"}[{{ window }}])))'
[[analysis.metric]]
name = "p90"
check = "relative"
max_ratio = 1.2
query = 'histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{ns="{{ args.ns }}", track="{{ track }}"}[{{ window }}])))'
[[analysis.metric]]
name = "p95"
check = "relative"
max_ratio = 1.2
query = 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{ns="{{ args.ns }}", track="{{ track }}"}[{{ window }}])))'
[[analysis.metric]]
name = "p99"
check = "relative"
max_ratio = 1.5
query = 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{ns="{{ args.ns }}", track="{{ track }}"}[{{ window }}])))'
[[analysis.metric]]
name = "distribution"
check = "test"
test = "sequential-band"
query = 'sum by (le) (increase(http_request_duration_seconds_bucket{ns="{{ args.ns }}", track="{{ track }}"}[{{ interval }}]))'
[[analysis.metric]]
name = "pod mean latency"
check = "test"
test = "sequential-t"
log = true
query = 'sum by (pod) (rate(http_request_duration_seconds_sum{ns="{{ args.ns }}", track="{{ track }}"}[{{ window }}])) / sum by (pod) (rate(http_request_duration_seconds_count{ns="{{ args.ns }}", track="{{ track }}"}[{{ window }}]))'
[[analysis.metric]]
name = "pod p99 mann-whitney"
check = "test"
test = "mann-whitney"
query = 'histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{ns="{{ args.ns }}", track="{{ track }}"}[{{ window }}])))'
[[analysis.metric]]
name = "pod p99 kayenta"
check = "test"
test = "kayenta"
query = 'histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{ns="{{ args.ns }}", track="{{ track }}"}[{{ window }}])))'
"#;

fn build() -> Store {
    let store = Store::new();
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    let mut app = store.appender();
    let mut series: Vec<(augur::store::SeriesRef, f64)> = Vec::new();
    let mut add = |labels: Vec<(&str, String)>, per_step: f64, app: &mut augur::store::Appender| {
        let l = Labels::from_pairs(labels);
        let r = app.series(l.iter().map(|x| (&*x.name, &*x.value)));
        series.push((r, per_step));
    };
    for i in 0..5_000 {
        add(
            vec![
                ("__name__", "other_requests_total".into()),
                ("job", format!("job-{}", i % 10)),
                ("instance", format!("10.0.{}.{}:8080", i / 250, i % 250)),
            ],
            (1 + i % 7) as f64,
            &mut app,
        );
    }
    for (t, slow) in [("baseline", 1.0), ("canary", 1.1)] {
        for p in 0..10 {
            let base = |name: &str| {
                vec![
                    ("__name__", name.to_string()),
                    ("ns", "shop".to_string()),
                    ("track", t.to_string()),
                    ("pod", format!("web-{t}-{p}")),
                ]
            };
            let mut ok = base("http_requests_total");
            ok.push(("code", "200".into()));
            add(ok, 1500.0, &mut app);
            let mut err = base("http_requests_total");
            err.push(("code", "500".into()));
            add(err, 15.0 * slow, &mut app);
            for (b, le) in les.iter().enumerate() {
                let mut l = base("http_request_duration_seconds_bucket");
                l.push(("le", le.to_string()));
                // Exponential-ish latency whose scale grows with the pod
                // and the track, so per-pod p99s differ.
                let scale = slow * (1.0 + p as f64 / 40.0);
                let frac = if *le == "+Inf" {
                    1.0
                } else {
                    1.0 - (-((b + 1) as f64) * 0.8 / scale).exp()
                };
                add(l, 1515.0 * frac, &mut app);
            }
            add(
                base("http_request_duration_seconds_sum"),
                1515.0 * 0.12 * slow * (1.0 + p as f64 / 50.0),
                &mut app,
            );
            add(
                base("http_request_duration_seconds_count"),
                1515.0,
                &mut app,
            );
        }
    }
    for k in 0..POINTS {
        let t = END - (POINTS - 1 - k) * STEP;
        for (r, per) in &series {
            app.append(*r, t, k as f64 * per).unwrap();
        }
    }
    drop(app);
    store
}

fn bench(c: &mut Criterion) {
    let store = Arc::new(build());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = Arc::new(State::in_memory().unwrap());
    let query = QueryConfig {
        lookback_delta: Duration::from_secs(300),
        timeout: Duration::from_secs(120),
        max_samples: 50_000_000,
        max_concurrency: 20,
    };
    let ds = Datasource::Embedded { store, query };
    let manager = AnalysisManager::new(state, ds);
    manager.set_templates(&parse_file("bench.toml", TEMPLATE).unwrap());
    let args: BTreeMap<String, String> = [("ns".to_string(), "shop".to_string())].into();
    let once = Overrides {
        count: Some(1),
        initial_delay: Some(Duration::ZERO),
        ..Default::default()
    };
    // Sanity: the measurement really ran every metric on data.
    let row = manager.create("bench", &args, None, &once, END).unwrap();
    rt.block_on(manager.tick(END)).unwrap();
    let view = manager.view(&row.id).unwrap().unwrap();
    let ms = view["measurements"].as_array().unwrap();
    assert_eq!(ms.len(), 10, "{view:#}");
    for m in ms {
        assert!(m["phase"] == "successful" || m["phase"] == "failed", "{m}");
    }
    let mut g = c.benchmark_group("analysis");
    g.sample_size(20);
    g.bench_function("measure_10_metrics_embedded_store", |b| {
        b.iter(|| {
            manager.create("bench", &args, None, &once, END).unwrap();
            rt.block_on(manager.tick(END)).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
