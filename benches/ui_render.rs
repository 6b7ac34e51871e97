//! The run page's server-side render time and size for a 200-interval run
//! of the shipped `http-canary` template (5 metrics: 1000 measurements,
//! every chart drawn). Goal (issue 17): under 20 ms and under 100 KB
//! without the shared CSS and JS.

use augur::analysis::engine::RunDetail;
use augur::analysis::run::RunStatus;
use augur::state::{MeasurementRow, RunRow};
use augur::ui::{run, Ui};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn detail(intervals: i64) -> RunDetail {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = augur::config::compile(
        &dir.join("augur.toml"),
        "analysis_files = [\"rules/analyses/http.toml\"]\n",
    )
    .expect("the shipped templates compile");
    let t = cfg
        .analyses
        .iter()
        .find(|t| t.name == "http-canary")
        .unwrap()
        .clone();
    let mut status = RunStatus::new(&t);
    status.intervals = intervals as u32;
    let mut ms = Vec::new();
    for i in 1..=intervals {
        for (k, m) in t.metrics.iter().enumerate() {
            let wobble = ((i * 7 + k as i64 * 3) % 11) as f64 / 100.0;
            ms.push(MeasurementRow {
                interval: i,
                metric: m.name.clone(),
                t: 1_700_000_000_000 + i * 60_000,
                phase: if i == intervals && k == 0 {
                    "failed".into()
                } else {
                    "successful".into()
                },
                baseline: Some(0.01 + wobble / 10.0),
                canary: Some(0.012 + wobble / 8.0),
                message: format!("{}: canary 1.2% vs baseline 1.0% at #{i}", m.name),
                detail: format!(
                    "{{\"p_value\": {}, \"level\": 0.025, \"e_value\": 1.5}}",
                    (1.0 - i as f64 / intervals as f64).max(0.001)
                ),
            });
        }
    }
    RunDetail {
        row: RunRow {
            id: "0123456789abcdef".into(),
            template: t.name.clone(),
            args: "{\"namespace\": \"shop\", \"service\": \"checkout\"}".into(),
            key: None,
            state: "failed".into(),
            message: "critical metric \"errors\" failed".into(),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000 + intervals * 60_000,
            finished_at: Some(1_700_000_000_000 + intervals * 60_000),
            next_at: None,
            spec: serde_json::to_string(&t).unwrap(),
            status: serde_json::to_string(&status).unwrap(),
            rollout: Some(
                "{\"namespace\": \"shop\", \"name\": \"checkout\", \"revision\": \"abc\"}".into(),
            ),
        },
        template: Some(t),
        status,
        measurements: ms,
        verdicts: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let d = detail(200);
    let ui = Ui::default();
    let page = run::main(&ui, &d, &[], &[]).into_string();
    println!(
        "run page, 200 intervals x 5 metrics: {} bytes of main content",
        page.len()
    );
    c.bench_function("run page render, 200 intervals", |b| {
        b.iter(|| black_box(run::main(&ui, black_box(&d), &[], &[]).into_string().len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
