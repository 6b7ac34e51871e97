//! Unit tests for the exposition parser, one per format feature.

use super::*;

type Flat = Vec<(String, Vec<(String, String)>, f64, Option<i64>)>;

fn flat(input: &str, format: Format) -> Flat {
    let parsed = parse(input.as_bytes(), format).expect("parses");
    parsed
        .samples
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                parsed
                    .labels(s)
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect(),
                s.value,
                s.timestamp_ms,
            )
        })
        .collect()
}

fn err(input: &str, format: Format) -> ParseError {
    parse(input.as_bytes(), format).expect_err("must fail")
}

fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn help_and_type_become_metadata() {
    let p = parse(
        b"# HELP http_requests_total The total. With \\\\ and \\n.\n# TYPE http_requests_total counter\nhttp_requests_total 3\n",
        Format::Text,
    )
    .unwrap();
    assert_eq!(
        p.metadata[0],
        Metadata::Help {
            name: "http_requests_total".into(),
            text: "The total. With \\ and \n.".into()
        }
    );
    assert_eq!(
        p.metadata[1],
        Metadata::Type {
            name: "http_requests_total".into(),
            metric_type: MetricType::Counter
        }
    );
    assert_eq!(p.samples[0].metric_type, MetricType::Counter);
}

#[test]
fn label_value_escapes_are_unescaped() {
    let s = flat(
        "m{a=\"back\\\\slash\",b=\"quo\\\"te\",c=\"new\\nline\",d=\"keep\\tthis\"} 1\n",
        Format::Text,
    );
    assert_eq!(
        s[0].1,
        l(&[
            ("a", "back\\slash"),
            ("b", "quo\"te"),
            ("c", "new\nline"),
            ("d", "keep\\tthis")
        ])
    );
}

#[test]
fn braces_and_commas_inside_quoted_values() {
    let s = flat(
        "m{path=\"/a}b,c{d}\",x=\"=\"} 2\nn{q=\"}\"} 3\n",
        Format::Text,
    );
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].1, l(&[("path", "/a}b,c{d}"), ("x", "=")]));
    assert_eq!(s[1].1, l(&[("q", "}")]));
    assert_eq!(s[1].2, 3.0);
}

#[test]
fn special_float_values() {
    let s = flat(
        "a NaN\nb +Inf\nc -Inf\nd Inf\ne 1e-3\nf -0.5\ng .5\n",
        Format::Text,
    );
    assert!(s[0].2.is_nan());
    assert_eq!(s[1].2, f64::INFINITY);
    assert_eq!(s[2].2, f64::NEG_INFINITY);
    assert_eq!(s[3].2, f64::INFINITY);
    assert_eq!(s[4].2, 0.001);
    assert_eq!(s[5].2, -0.5);
    assert_eq!(s[6].2, 0.5);
}

#[test]
fn optional_timestamps_in_text_are_milliseconds() {
    let s = flat("a 1 1700000000123\nb 2\nc{x=\"y\"} 3 -5\n", Format::Text);
    assert_eq!(s[0].3, Some(1_700_000_000_123));
    assert_eq!(s[1].3, None);
    assert_eq!(s[2].3, Some(-5));
}

#[test]
fn openmetrics_timestamps_are_seconds() {
    let s = flat(
        "a 1 1520879607.789\nb 2 1520879607\n# EOF\n",
        Format::OpenMetrics,
    );
    assert_eq!(s[0].3, Some(1_520_879_607_789));
    assert_eq!(s[1].3, Some(1_520_879_607_000));
}

#[test]
fn openmetrics_requires_eof() {
    let e = err("a 1\n", Format::OpenMetrics);
    assert!(e.message.contains("# EOF"), "{e}");
    let e = err("a 1\n# EOF\nb 2\n", Format::OpenMetrics);
    assert_eq!(e.line, 3);
    assert!(e.message.contains("after # EOF"), "{e}");
    // Trailing data on the EOF line is reported on that line.
    let e = err("a 1\n# EOF x", Format::OpenMetrics);
    assert_eq!(
        (e.line, e.message.contains("after # EOF")),
        (2, true),
        "{e}"
    );
    // EOF without trailing newline is fine.
    assert_eq!(flat("a 1\n# EOF", Format::OpenMetrics).len(), 1);
}

#[test]
fn openmetrics_unit_and_created_lines() {
    let input = "# TYPE req counter\n# UNIT req seconds\n# HELP req Requests.\nreq_total 3\nreq_created 1.7e9\n# EOF\n";
    let p = parse(input.as_bytes(), Format::OpenMetrics).unwrap();
    assert!(p.metadata.contains(&Metadata::Unit {
        name: "req".into(),
        unit: "seconds"
    }));
    // Prometheus 3 ingests _created as an ordinary series by default.
    let names: Vec<_> = p.samples.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["req_total", "req_created"]);
    assert_eq!(p.samples[1].value, 1.7e9);
    // In the text format _created is a plain sample too.
    assert_eq!(flat("foo_created 5\n", Format::Text)[0].0, "foo_created");
}

#[test]
fn exemplars_are_parsed_and_dropped() {
    let input = "# TYPE h histogram\nh_bucket{le=\"0.5\"} 3 # {trace_id=\"abc\"} 0.4 1.7e9\nh_bucket{le=\"+Inf\"} 4 # {} 7\nh_count 4 123 # {a=\"b\"} 1\n# EOF\n";
    let s = flat(input, Format::OpenMetrics);
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].1, l(&[("le", "0.5")]));
    assert_eq!(s[1].2, 4.0);
    assert_eq!(s[2].3, Some(123_000));
    let e = err(
        "h_bucket{le=\"1\"} 3 # {trace_id=\"abc} 0.4\n# EOF\n",
        Format::OpenMetrics,
    );
    assert_eq!(e.line, 1);
}

#[test]
fn le_and_quantile_are_normalised_like_prometheus_3() {
    let input = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"0.50\"} 1\nh_bucket{le=\"1e3\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_bucket{le=\"junk\"} 2\n# TYPE s summary\ns{quantile=\"0.9\"} 1\ns{quantile=\"1\"} 2\n# TYPE g gauge\ng{le=\"1\"} 1\n";
    let s = flat(input, Format::Text);
    let les: Vec<_> = s.iter().map(|x| x.1[0].1.clone()).collect();
    assert_eq!(
        les,
        ["1.0", "0.5", "1000.0", "+Inf", "junk", "0.9", "1.0", "1"]
    );
}

#[test]
fn flat_histograms_and_summaries() {
    let input = "# TYPE rpc summary\nrpc{quantile=\"0.5\"} 0.1\nrpc_sum 10\nrpc_count 20\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n";
    let p = parse(input.as_bytes(), Format::Text).unwrap();
    assert_eq!(p.samples.len(), 7);
    assert!(p.samples[..3]
        .iter()
        .all(|s| s.metric_type == MetricType::Summary));
    assert!(p.samples[3..]
        .iter()
        .all(|s| s.metric_type == MetricType::Histogram));
}

#[test]
fn whitespace_comments_and_blank_lines_in_text() {
    let input = "\n# just a comment\n#no space comment\n  \nm { a = \"1\" , } 1\t\n\tn 2\n";
    let s = flat(input, Format::Text);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].1, l(&[("a", "1")]));
    assert_eq!(s[1].0, "n");
}

#[test]
fn last_line_without_newline() {
    assert_eq!(flat("a 1\nb 2", Format::Text).len(), 2);
}

#[test]
fn series_text_is_the_raw_key() {
    let p = parse(b"m{a=\"x\"} 1\nn 2\n", Format::Text).unwrap();
    assert_eq!(p.samples[0].series, "m{a=\"x\"}");
    assert_eq!(p.samples[1].series, "n");
}

#[test]
fn utf8_quoted_names() {
    let s = flat(
        "{\"my.metric\",\"label.name\"=\"v\",b=\"c\"} 1\n",
        Format::Text,
    );
    assert_eq!(s[0].0, "my.metric");
    assert_eq!(s[0].1, l(&[("label.name", "v"), ("b", "c")]));
}

#[test]
fn errors_carry_line_and_column() {
    let e = err("ok 1\nm{a=\"1\" b=\"2\"} 1\n", Format::Text);
    assert_eq!((e.line, e.column), (2, 9), "{e}");
    let e = err("m{a=1} 1\n", Format::Text);
    assert_eq!((e.line, e.column), (1, 5), "{e}");
    let e = err("m 1 2 3\n", Format::Text);
    assert_eq!(e.line, 1);
    assert!(e.message.contains("end of line"), "{e}");
    let e = err("m abc\n", Format::Text);
    assert_eq!((e.line, e.column), (1, 3));
    assert!(e.message.contains("float"), "{e}");
    let e = err("m{a=\"unterminated} 1\n", Format::Text);
    assert_eq!((e.line, e.column), (1, 5));
    let e = err("# TYPE m bogus\n", Format::Text);
    assert!(e.message.contains("invalid metric type"), "{e}");
    let e = err("m 1 12.5\n", Format::Text);
    assert!(e.message.contains("timestamp"), "{e}");
    let e = err("m{a=\"1\",a=\"2\"} 1\n", Format::Text);
    assert!(e.message.contains("not unique"), "{e}");
    let e = err("1m 1\n", Format::Text);
    assert!(e.message.contains("metric name"), "{e}");
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = err("m{a=\"ü\",b=x} 1\n", Format::Text);
    assert_eq!((e.line, e.column), (1, 11), "{e}");
}

#[test]
fn invalid_utf8_is_reported_with_position() {
    let e = parse(b"ok 1\nm{a=\"\xff\"} 1\n", Format::Text).unwrap_err();
    assert_eq!((e.line, e.column), (2, 6));
    assert!(e.message.contains("UTF-8"));
}

#[test]
fn openmetrics_is_strict_about_comments_and_blank_lines() {
    let e = err("# random comment\n# EOF\n", Format::OpenMetrics);
    assert!(e.message.contains("HELP, TYPE, UNIT or EOF"), "{e}");
    let e = err("a 1\n\n# EOF\n", Format::OpenMetrics);
    assert_eq!(e.line, 2);
    let e = err("# TYPE a untyped\n# EOF\n", Format::OpenMetrics);
    assert!(e.message.contains("invalid metric type"), "{e}");
}

#[test]
fn content_type_selects_format() {
    assert_eq!(
        Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Some(Format::OpenMetrics)
    );
    assert_eq!(
        Format::from_content_type("text/plain; version=0.0.4"),
        Some(Format::Text)
    );
    assert_eq!(Format::from_content_type(""), None);
    assert_eq!(Format::from_content_type("application/json"), None);
}

#[test]
fn go_float_parsing_rejects_signed_nan() {
    assert!(parse_go_float("NaN").unwrap().is_nan());
    assert!(parse_go_float("nan").unwrap().is_nan());
    assert_eq!(parse_go_float("+inf"), Some(f64::INFINITY));
    assert_eq!(parse_go_float("-Infinity"), Some(f64::NEG_INFINITY));
    assert_eq!(parse_go_float("+NaN"), None);
    assert_eq!(parse_go_float(""), None);
}
