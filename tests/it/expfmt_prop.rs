//! Property tests: the parser never panics, every error has a position inside
//! the input, and valid bodies round-trip their values.

use augur::expfmt::{parse, Format};
use proptest::prelude::*;

const VALID_TEXT: &str = "# HELP http_requests_total Total requests.\n# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\",path=\"/a}b\"} 1027 1395066363000\nhttp_requests_total{code=\"500\",msg=\"quo\\\"te\\\\ \\n\"} 3\n# TYPE lat histogram\nlat_bucket{le=\"0.05\"} 24054\nlat_bucket{le=\"+Inf\"} 144320\nlat_sum 53423\nlat_count 144320\nsummary{quantile=\"0.99\"} NaN\nplain -Inf\n";

const VALID_OM: &str = "# TYPE foo counter\n# UNIT foo seconds\n# HELP foo Foo.\nfoo_total{a=\"b\"} 1.5 1520879607.789 # {trace=\"x\"} 1\nfoo_created{a=\"b\"} 1520430000.123\n# TYPE g gauge\ng 3\n# EOF\n";

fn line_count(b: &[u8]) -> usize {
    b.iter().filter(|c| **c == b'\n').count() + 1
}

fn check(bytes: &[u8]) {
    for format in [Format::Text, Format::OpenMetrics] {
        if let Err(e) = parse(bytes, format) {
            assert!(
                e.line >= 1 && e.line <= line_count(bytes),
                "{e} outside input"
            );
            assert!(e.column >= 1, "{e} has no column");
            assert!(!e.message.is_empty());
        }
    }
}

/// Mutations of a valid body: replace, insert or delete a byte.
fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    prop::collection::vec((0..len, any::<u8>(), 0..3u8), 1..6).prop_map(move |edits| {
        let mut b = base.as_bytes().to_vec();
        for (pos, byte, kind) in edits {
            let pos = pos.min(b.len().saturating_sub(1));
            match kind {
                0 if !b.is_empty() => b[pos] = byte,
                1 => b.insert(pos, byte),
                _ if !b.is_empty() => {
                    b.remove(pos);
                }
                _ => {}
            }
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn exposition_like_text_never_panics(s in "[a-z_{}=\",# \\\\\n0-9.+eEINafn-]{0,200}") {
        check(s.as_bytes());
    }

    #[test]
    fn mutated_text_bodies_never_panic(b in mutated(VALID_TEXT)) {
        check(&b);
    }

    #[test]
    fn mutated_openmetrics_bodies_never_panic(b in mutated(VALID_OM)) {
        check(&b);
    }

    #[test]
    fn label_values_round_trip(v in "\\PC{0,20}", x in -1e12f64..1e12) {
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let body = format!("m{{v=\"{escaped}\"}} {x}\n");
        let p = parse(body.as_bytes(), Format::Text).unwrap();
        prop_assert_eq!(p.labels(&p.samples[0])[0].value.as_ref(), v.as_str());
        prop_assert_eq!(p.samples[0].value, x);
    }
}

#[test]
fn the_valid_bodies_are_valid() {
    assert_eq!(
        parse(VALID_TEXT.as_bytes(), Format::Text)
            .unwrap()
            .samples
            .len(),
        8
    );
    assert_eq!(
        parse(VALID_OM.as_bytes(), Format::OpenMetrics)
            .unwrap()
            .samples
            .len(),
        3
    );
}

/// A case proptest found: `# EOF` followed by a space and more bytes on the
/// same, final line.
#[test]
fn data_after_eof_on_the_last_line_is_positioned_inside() {
    check(b"# TYPE g gauge\ng 3\n# EOF \x00");
    check(b"g 3\n# EOF\n\n");
}
