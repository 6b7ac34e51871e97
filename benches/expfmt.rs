//! Exposition parsing throughput: augur's parser against `prometheus-parse`
//! on the same bodies (Prometheus's alltypes test file and a generated
//! 10k-series body). Reports MB/s; samples/s = MB/s x samples per MB
//! (printed once per input).

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn generated_body(series: usize) -> String {
    let mut s =
        String::from("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n");
    for i in 0..series / 2 {
        s.push_str(&format!(
            "http_requests_total{{code=\"{}\",method=\"GET\",path=\"/api/v1/item/{}\",pod=\"checkout-7d9f8b6c4-{:05}\"}} {}\n",
            [200, 404, 500][i % 3],
            i % 100,
            i / 100,
            i * 17
        ));
    }
    s.push_str("# TYPE latency_seconds histogram\n");
    for i in 0..series / 2 / 12 {
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ] {
            s.push_str(&format!(
                "latency_seconds_bucket{{pod=\"p{i}\",le=\"{le}\"}} {i}\n"
            ));
        }
    }
    s
}

fn inputs() -> Vec<(String, String)> {
    let mut v = Vec::new();
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/exposition/alltypes.237mfs.prom.txt");
    match std::fs::read_to_string(&p) {
        Ok(s) => v.push(("alltypes_237mfs".to_string(), s)),
        Err(_) => eprintln!("SKIP alltypes: {} not found", p.display()),
    }
    v.push(("generated_10k_series".to_string(), generated_body(10_000)));
    v
}

fn bench(c: &mut Criterion) {
    for (name, body) in inputs() {
        let samples = augur::expfmt::parse(body.as_bytes(), augur::expfmt::Format::Text)
            .expect("benchmark input parses")
            .samples
            .len();
        eprintln!(
            "{name}: {} bytes, {samples} samples ({:.0} samples per MB)",
            body.len(),
            samples as f64 / (body.len() as f64 / 1e6)
        );
        let mut g = c.benchmark_group(format!("parse/{name}"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("augur", |b| {
            b.iter(|| {
                let p =
                    augur::expfmt::parse(black_box(body.as_bytes()), augur::expfmt::Format::Text)
                        .unwrap();
                black_box(p.samples.len())
            })
        });
        g.bench_function("prometheus-parse", |b| {
            b.iter(|| {
                let lines = black_box(&body).lines().map(|l| Ok(l.to_string()));
                let s = prometheus_parse::Scrape::parse(lines).unwrap();
                black_box(s.samples.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
