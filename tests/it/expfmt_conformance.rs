//! The parser against Prometheus's own exposition test data, read from
//! `../shared/conformance/exposition/` (never copied into the project).

use std::path::PathBuf;

use augur::expfmt::{parse, Format, MetricType};

fn data(name: &str) -> Option<Vec<u8>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/exposition")
        .join(name);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!(
                "SKIP: {} not found; the conformance data lives in ../shared/conformance",
                p.display()
            );
            None
        }
    }
}

fn value(p: &augur::expfmt::Parsed<'_>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let s = p
        .samples
        .iter()
        .find(|s| {
            s.name == name
                && p.labels(s).len() == labels.len()
                && labels
                    .iter()
                    .all(|(n, v)| p.labels(s).iter().any(|l| l.name == *n && l.value == *v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"));
    s.value
}

#[test]
fn alltypes_237_metric_families_text() {
    let Some(b) = data("alltypes.237mfs.prom.txt") else {
        return;
    };
    let p = parse(&b, Format::Text).unwrap();
    // Every non-comment line is one sample.
    assert_eq!(p.samples.len(), 1857);
    let types = p
        .metadata
        .iter()
        .filter(|m| matches!(m, augur::expfmt::Metadata::Type { .. }))
        .count();
    assert_eq!(types, 237);
    assert_eq!(
        value(&p, "go_gc_cycles_automatic_gc_cycles_total", &[]),
        190932.0
    );
    assert_eq!(
        value(
            &p,
            "prometheus_http_requests_total",
            &[("code", "200"), ("handler", "/-/healthy")]
        ),
        29524.0
    );
    // quantile="1" of a summary is normalised to "1.0" (Prometheus 3).
    assert_eq!(
        value(&p, "go_gc_duration_seconds", &[("quantile", "1.0")]),
        0.002389378
    );
    assert_eq!(
        value(
            &p,
            "go_gc_heap_allocs_by_size_bytes_bucket",
            &[("le", "8.999999999999998")]
        ),
        2.279966416e9
    );
    // Integral bounds gain ".0"; Go's %g exponent form is kept as is.
    assert_eq!(
        value(
            &p,
            "prometheus_http_response_size_bytes_bucket",
            &[("handler", "/-/healthy"), ("le", "100000.0")]
        ),
        29524.0
    );
    assert_eq!(
        value(
            &p,
            "prometheus_http_response_size_bytes_bucket",
            &[("handler", "/"), ("le", "1e+06")]
        ),
        688.0
    );
    let buckets = p
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket"))
        .count();
    assert_eq!(buckets, 999);
    assert!(p
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket"))
        .all(|s| s.metric_type == MetricType::Histogram));
}

#[test]
fn alltypes_5_metric_families_openmetrics() {
    let Some(b) = data("alltypes.5mfs.om.txt") else {
        return;
    };
    let p = parse(&b, Format::OpenMetrics).unwrap();
    // 53 sample lines; _created lines are ordinary samples by default.
    assert_eq!(p.samples.len(), 53);
    assert_eq!(
        value(
            &p,
            "rpc_durations_seconds",
            &[("service", "uniform"), ("quantile", "0.9")]
        ),
        0.00017801230208182325
    );
    assert_eq!(
        value(&p, "rpc_requests_created", &[("service", "uniform")]),
        1.7268398130168471e9
    );
    // Exemplars are dropped, values kept.
    assert_eq!(
        value(
            &p,
            "rpc_durations_histogram_seconds_bucket",
            &[("le", "-0.0002899999999999998")]
        ),
        3.0
    );
    assert_eq!(
        value(&p, "rpc_durations_histogram_seconds_sum", &[]),
        -8.452185437166741e-05
    );
}

#[test]
fn one_histogram_openmetrics_without_trailing_newline() {
    let Some(b) = data("1histogram.om.txt") else {
        return;
    };
    assert!(!b.ends_with(b"\n"), "fixture ends right after # EOF");
    let p = parse(&b, Format::OpenMetrics).unwrap();
    assert_eq!(p.samples.len(), 42);
    // le="1.0" stays "1.0"; le="10.0" stays "10.0".
    assert_eq!(
        value(
            &p,
            "golang_manual_histogram_seconds_bucket",
            &[
                ("address", "0.0.0.0"),
                ("generation", "20"),
                ("port", "5001"),
                ("le", "10.0")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &p,
            "golang_manual_histogram_seconds_sum",
            &[
                ("address", "0.0.0.0"),
                ("generation", "20"),
                ("port", "5003")
            ]
        ),
        10.0
    );
}

#[test]
fn every_conformance_file_survives_being_cut_anywhere() {
    // A truncated body must give an error or fewer samples, never a panic.
    for name in ["alltypes.5mfs.om.txt", "1histogram.om.txt"] {
        let Some(b) = data(name) else {
            return;
        };
        for cut in (0..b.len()).step_by(7) {
            let _ = parse(&b[..cut], Format::OpenMetrics);
            let _ = parse(&b[..cut], Format::Text);
        }
    }
}
