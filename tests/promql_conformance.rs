//! Prometheus's own PromQL test files (`../shared/conformance/promql/`,
//! never copied into the project), one test per file. Cases that need
//! native histograms are skipped and counted; every other case must pass.

use std::path::PathBuf;

/// Cases augur knowingly answers differently, with the reason. Each must
/// still fail, so a fix is noticed and the entry removed.
const KNOWN_DEVIATIONS: &[(&str, usize, &str)] = &[(
    "functions.test",
    523,
    "Go keeps \"\\xff\" as an invalid UTF-8 byte, so the label name is invalid; promql-parser decodes it to U+00FF, a valid name",
)];

fn run(name: &str) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/promql")
        .join(name);
    if !p.exists() {
        eprintln!(
            "SKIP: {} not found; the conformance data lives in ../shared/conformance",
            p.display()
        );
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
    let known: Vec<usize> = KNOWN_DEVIATIONS
        .iter()
        .filter(|(f, _, _)| *f == name)
        .map(|(_, l, _)| *l)
        .collect();
    let unexpected: Vec<&(usize, String)> = r
        .failed
        .iter()
        .filter(|(l, _)| !known.contains(l))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{name}: {} cases failed",
        unexpected.len()
    );
    for l in known {
        assert!(
            r.failed.iter().any(|(fl, _)| *fl == l),
            "{name}: line {l} now passes; remove it from KNOWN_DEVIATIONS"
        );
    }
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
