//! Property tests for the analysis path: whatever the queries return
//! (NaN, infinities, negative or inconsistent counts, empty or huge
//! vectors), a measurement never panics and never passes silently on bad
//! data; whatever a template file holds, loading it never panics; the
//! statistics and Kayenta's classifier accept any finite input.

use augur::analysis::run::{measure, Fetched, Phase};
use augur::analysis::template::{parse_file, Metric};
use augur::labels::Labels;
use augur::promql::{Sample, Value};
use augur::stats::kayenta::{Classifier, MetricConfig};
use proptest::prelude::*;

const TEMPLATE: &str = r#"
[[analysis]]
name = "p"
[[analysis.metric]]
name = "threshold"
check = "threshold"
min = 0
max = 1
canary = 'x'
[[analysis.metric]]
name = "relative"
check = "relative"
max_ratio = 1.2
max_delta = 0.1
query = 'x{t="{{ track }}"}'
[[analysis.metric]]
name = "mw"
check = "test"
test = "mann-whitney"
query = 'x{t="{{ track }}"}'
[[analysis.metric]]
name = "seq-t"
check = "test"
test = "sequential-t"
log = true
query = 'x{t="{{ track }}"}'
[[analysis.metric]]
name = "kayenta"
check = "test"
test = "kayenta"
query = 'x{t="{{ track }}"}'
[[analysis.metric]]
name = "band"
check = "test"
test = "sequential-band"
query = 'x{t="{{ track }}"}'
[[analysis.metric]]
name = "counts"
check = "test"
test = "sequential-counts"
errors = 'e{t="{{ track }}"}'
total = 't{t="{{ track }}"}'
[[analysis.metric]]
name = "fisher"
check = "test"
test = "fisher"
errors = 'e{t="{{ track }}"}'
total = 't{t="{{ track }}"}'
"#;

fn metrics() -> Vec<Metric> {
    parse_file("p.toml", TEMPLATE).unwrap().remove(0).metrics
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e6f64..1e6,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(0.0),
        1 => 0.0f64..1.0,
    ]
}

fn vector(xs: &[f64], le: bool) -> Value {
    let les = ["0.1", "1", "10", "+Inf", "bogus"];
    Value::Vector(
        xs.iter()
            .enumerate()
            .map(|(i, &v)| Sample {
                labels: if le {
                    Labels::from_pairs([("le", les[i % les.len()])])
                } else {
                    Labels::from_pairs([("pod", format!("p{i}"))])
                },
                t: 0,
                v,
                drop_name: false,
            })
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn measurements_never_panic(
        b in proptest::collection::vec(any_f64(), 0..40),
        c in proptest::collection::vec(any_f64(), 0..40),
        looks in 1u32..4,
        le in any::<bool>(),
    ) {
        let ms = metrics();
        for m in &ms {
            let mut ev = None;
            for look in 0..looks {
                let fetched = match m.name.as_str() {
                    "counts" | "fisher" => {
                        let s = |x: Option<&f64>| Value::Scalar(x.copied().unwrap_or(0.0));
                        Fetched::Counts {
                            baseline: (s(b.first()), s(b.get(1))),
                            canary: (s(c.first()), s(c.get(1))),
                        }
                    }
                    _ => Fetched::Values { baseline: Some(vector(&b, le)), canary: vector(&c, le) },
                };
                let r = measure(m, Ok(fetched), &mut ev, look, 0.05);
                prop_assert!(!r.message.is_empty());
                // Inconsistent counts are never a pass.
                if matches!(m.name.as_str(), "counts" | "fisher") {
                    let bad = |e: Option<&f64>, t: Option<&f64>| {
                        let (e, t) = (e.copied().unwrap_or(0.0), t.copied().unwrap_or(0.0));
                        !(e.is_finite() && t.is_finite()) || e < 0.0 || t < 0.0 || e.round() > t.round()
                    };
                    if bad(b.first(), b.get(1)) || bad(c.first(), c.get(1)) {
                        prop_assert_ne!(r.phase, Phase::Successful, "{}", r.message);
                    }
                }
            }
        }
    }

    #[test]
    fn template_loading_never_panics(text in "\\PC{0,300}") {
        let _ = parse_file("fuzz.toml", &text);
    }

    #[test]
    fn template_mutations_never_panic(at in 0usize..2000, byte in any::<u8>(), del in any::<bool>()) {
        let mut bytes = TEMPLATE.as_bytes().to_vec();
        let at = at % bytes.len();
        if del { bytes.remove(at); } else { bytes[at] = byte; }
        if let Ok(text) = String::from_utf8(bytes) {
            if let Err(errs) = parse_file("m.toml", &text) {
                for e in errs {
                    prop_assert!(e.line <= text.lines().count() + 1, "{e}");
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }

    #[test]
    fn kayenta_accepts_any_finite_series(
        b in proptest::collection::vec(-1e9f64..1e9, 0..30),
        c in proptest::collection::vec(-1e9f64..1e9, 0..30),
        remove_outliers in any::<bool>(),
    ) {
        let mut cfg = MetricConfig::new("m", vec!["g".into()]);
        if remove_outliers {
            cfg.outlier_factor = Some(3.0);
        }
        let r = Classifier::default().judge_metric(&cfg, &b, &c);
        if b.is_empty() || c.is_empty() {
            prop_assert_eq!(r.label.as_str(), "Nodata");
        }
    }
}
