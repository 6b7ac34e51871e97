//! PromQL engine latency over 10k series x 1h at 15s resolution (241
//! samples each), the goals: instant `sum by (job) (rate(...[5m]))`
//! under 20 ms, instant `histogram_quantile(0.99, sum by (le) (rate(...)))`
//! under 50 ms, and a 1h range query at 15s step of the first under 200 ms.

use augur::labels::Labels;
use augur::promql::{parse, Engine};
use augur::store::Store;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

pub const END: i64 = 1_700_000_000_000;
const STEP: i64 = 15_000;
const POINTS: i64 = 241;

/// 10k counter series and 10k histogram bucket series.
pub fn build() -> Store {
    let store = Store::new();
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    let mut app = store.appender();
    let mut counters = Vec::new();
    for i in 0..10_000 {
        let l = Labels::from_pairs([
            ("__name__", "http_requests_total".to_string()),
            ("job", format!("job-{}", i % 10)),
            ("instance", format!("10.0.{}.{}:8080", i / 250, i % 250)),
            ("code", ["200", "404", "500", "503"][i % 4].to_string()),
        ]);
        counters.push(app.series(l.iter().map(|x| (&*x.name, &*x.value))));
    }
    let mut buckets = Vec::new();
    for i in 0..1_000 {
        for (b, le) in les.iter().enumerate() {
            let l = Labels::from_pairs([
                (
                    "__name__",
                    "http_request_duration_seconds_bucket".to_string(),
                ),
                ("job", format!("job-{}", i % 10)),
                ("instance", format!("10.1.{}.{}:8080", i / 250, i % 250)),
                ("le", le.to_string()),
            ]);
            buckets.push((app.series(l.iter().map(|x| (&*x.name, &*x.value))), b));
        }
    }
    for k in 0..POINTS {
        let t = END - (POINTS - 1 - k) * STEP;
        for (i, r) in counters.iter().enumerate() {
            app.append(*r, t, (k * (1 + i as i64 % 7)) as f64).unwrap();
        }
        for (r, b) in &buckets {
            app.append(*r, t, (k * (*b as i64 + 1) * 3) as f64).unwrap();
        }
    }
    drop(app);
    store
}

fn bench(c: &mut Criterion) {
    let store = build();
    let engine = Engine::default();
    let rate = parse("sum by (job) (rate(http_requests_total[5m]))").unwrap();
    let hq = parse(
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    )
    .unwrap();
    let mut g = c.benchmark_group("promql_10k_series_1h");
    g.sample_size(20);
    g.bench_function("instant_sum_by_job_rate_5m", |b| {
        b.iter(|| black_box(engine.instant(&store, &rate, END).unwrap()))
    });
    g.bench_function("instant_histogram_quantile_p99", |b| {
        b.iter(|| black_box(engine.instant(&store, &hq, END).unwrap()))
    });
    g.bench_function("range_1h_step_15s_sum_by_job_rate_5m", |b| {
        b.iter(|| {
            black_box(
                engine
                    .range(&store, &rate, END - 3_600_000, END, STEP)
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
