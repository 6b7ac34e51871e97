//! Prometheus's own PromQL test files (`../shared/conformance/promql/`,
//! never copied into the project), one test per file. Cases that need
//! native histograms are skipped and counted; every other case must pass.

use std::path::PathBuf;

fn run(name: &str) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/promql")
        .join(name);
    if !p.exists() {
        eprintln!("SKIP: {} not found; the conformance data lives in ../shared/conformance", p.display());
        return;
    }
    let r = augur::promql::promqltest::run_file(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!(
        "{name}: {} passed, {} failed, {} skipped",
        r.passed,
        r.failed.len(),
        r.skipped.len()
    );
    for (line, msg) in &r.failed {
        eprintln!("  line {line}: {msg}");
    }
    assert!(r.failed.is_empty(), "{name}: {} cases failed", r.failed.len());
}

macro_rules! conformance {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(#[test] fn $test() { run($file); })*
    };
}

conformance! {
    aggregators => "aggregators.test",
    at_modifier => "at_modifier.test",
    collision => "collision.test",
    functions => "functions.test",
    histograms => "histograms.test",
    limit => "limit.test",
    literals => "literals.test",
    name_label_dropping => "name_label_dropping.test",
    operators => "operators.test",
    range_queries => "range_queries.test",
    selectors => "selectors.test",
    staleness => "staleness.test",
    subquery => "subquery.test",
    trig_functions => "trig_functions.test",
}
