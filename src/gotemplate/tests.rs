//! Template tests: syntax checks, and output compared byte for byte with
//! what Prometheus prints (reference table in shared/reference).

use super::*;

fn ctx_with(value: f64, q: &dyn Fn(&str) -> Result<Vec<QuerySample>, String>) -> Context<'_> {
    Context {
        labels: [
            ("instance".to_string(), "web-1.dom:8080".to_string()),
            ("job".to_string(), "api".to_string()),
        ]
        .into_iter()
        .collect(),
        external_labels: [("cluster".to_string(), "prod-eu".to_string())]
            .into_iter()
            .collect(),
        external_url: "http://augur.example:9464/prefix".into(),
        value,
        time_ms: 1_700_000_000_500,
        query: q,
    }
}

fn run(t: &str, value: f64) -> String {
    let q = |_: &str| -> Result<Vec<QuerySample>, String> {
        Ok(vec![
            QuerySample {
                labels: [("instance".to_string(), "b".to_string())]
                    .into_iter()
                    .collect(),
                value: 4.0,
            },
            QuerySample {
                labels: [("instance".to_string(), "a".to_string())]
                    .into_iter()
                    .collect(),
                value: 2.0,
            },
        ])
    };
    expand_alert("Test", t, &ctx_with(value, &q))
}

#[test]
fn values_print_like_prometheus() {
    let table: [(&str, [&str; 4]); 6] = [
        (
            "{{ $value }}",
            ["1e+06", "0.30000000000000004", "90061.5", "0.000123"],
        ),
        ("{{ $value | humanize }}", ["1M", "300m", "90.06k", "123u"]),
        (
            "{{ $value | humanize1024 }}",
            ["976.6ki", "0.3", "87.95ki", "0.000123"],
        ),
        (
            "{{ $value | humanizeDuration }}",
            ["11d 13h 46m 40s", "300ms", "1d 1h 1m 1s", "123us"],
        ),
        (
            "{{ $value | humanizePercentage }}",
            ["1e+08%", "30%", "9.006e+06%", "0.0123%"],
        ),
        (
            "{{ printf \"%.2f\" $value }}",
            ["1000000.00", "0.30", "90061.50", "0.00"],
        ),
    ];
    let values = [1e6, 0.30000000000000004, 90061.5, 0.000123];
    for (t, want) in table {
        for (v, w) in values.iter().zip(want) {
            assert_eq!(run(t, *v), w, "{t} with {v}");
        }
    }
    let ts: [(f64, &str); 4] = [
        (1e6, "1970-01-12 13:46:40 +0000 UTC"),
        (0.30000000000000004, "1970-01-01 00:00:00.3 +0000 UTC"),
        (90061.5, "1970-01-02 01:01:01.5 +0000 UTC"),
        (0.000123, "1970-01-01 00:00:00 +0000 UTC"),
    ];
    for (v, w) in ts {
        assert_eq!(run("{{ $value | humanizeTimestamp }}", v), w);
    }
}

#[test]
fn prometheus_functions() {
    let cases = [
        ("{{ stripPort \"a.b.c:80\" }}", "a.b.c"),
        ("{{ stripDomain \"host.dom:80\" }}", "host:80"),
        ("{{ stripDomain \"10.0.0.1:80\" }}", "10.0.0.1:80"),
        ("{{ title \"ab cd\" }}", "Ab Cd"),
        ("{{ reReplaceAll \"(a)\" \"x$1\" \"banana\" }}", "bxanxanxa"),
        ("{{ parseDuration \"1h30m\" }}", "5400"),
        ("{{ match \"^b\" \"banana\" }}", "true"),
        ("{{ toUpper \"abc\" }}{{ toLower \"DEF\" }}", "ABCdef"),
        ("{{ $labels.job }} {{ $labels.missing }}|", "api |"),
        ("{{ .Labels.job }} {{ $externalLabels.cluster }}", "api prod-eu"),
        ("{{ $externalURL }} {{ pathPrefix }}", "http://augur.example:9464/prefix /prefix"),
        ("{{ with query \"count(v)\" }}{{ . | first | value }}{{ end }}", "4"),
        ("{{ range query \"x\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}", "a=2 b=4 "),
        ("{{ if gt $value 0.5 }}high{{ else if gt $value 0.1 }}mid{{ else }}low{{ end }}", "mid"),
        ("{{ range $k, $v := $labels }}{{ $k }}:{{ $v }};{{ end }}", "instance:web-1.dom:8080;job:api;"),
        ("{{- \"  x  \" -}}  y", "  x  y"),
        ("a {{/* comment */}} b", "a  b"),
        ("{{ $x := 2 }}{{ $x }}", "2"),
        ("{{ printf \"%s has %d%%\" $labels.job 5 }}", "api has 5%"),
        ("{{ len $labels }}", "2"),
        ("{{ index $labels \"job\" }}", "api"),
        ("{{ toDuration 90 }}", "1m30s"),
        ("{{ now }}", "1.7000000005e+09"),
        ("{{ $labels }}", "map[instance:web-1.dom:8080 job:api]"),
        ("{{ graphLink \"up == 0\" }}", "/graph?g0.expr=up+%3D%3D+0&g0.tab=0"),
    ];
    for (t, want) in cases {
        assert_eq!(run(t, 0.25), want, "{t}");
    }
}

#[test]
fn notification_templates_range_over_lists() {
    let alert = |s: &str| {
        TValue::Map(
            [("Summary".to_string(), TValue::Str(s.into()))]
                .into_iter()
                .collect(),
        )
    };
    let data = TValue::Map(
        [
            ("Status".to_string(), TValue::Str("firing".into())),
            (
                "Alerts".to_string(),
                TValue::List(vec![alert("a"), alert("b")]),
            ),
        ]
        .into_iter()
        .collect(),
    );
    let out = render(
        "body",
        "{{ .Status | toUpper }}:{{ range .Alerts }} {{ .Summary }}{{ end }} ({{ len .Alerts }})",
        data,
    )
    .unwrap();
    assert_eq!(out, "FIRING: a b (2)");
}

#[test]
fn execution_errors_expand_to_a_marker() {
    let out = run("{{ humanize \"abc\" }}", 1.0);
    assert!(
        out.starts_with("<error expanding template: template: __alert_Test:1: "),
        "{out}"
    );
    assert!(out.contains("humanize"), "{out}");
    let out = run(
        "{{ with query \"q\" }}{{ . | first | value }}{{ end }}{{ first (query \"q\") }}",
        1.0,
    );
    assert!(!out.starts_with("<error"), "{out}");
}

#[test]
fn accepts_prometheus_style_templates() {
    for t in [
        "plain text",
        "{{ $labels.instance }} is down",
        "{{ $value | humanize }} req/s on {{ $labels.job }}",
        "{{ printf \"%.2f\" $value }}%",
        "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
        "{{ if gt $value 0.5 }}high{{ else if gt $value 0.1 }}mid{{ else }}low{{ end }}",
        "{{ range $i, $e := $labels }}{{ $i }}={{ $e }}{{ end }}",
        "{{- $x := 1 -}}{{ $x }}",
        "{{/* a comment */}}",
        "{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}",
        "{{ $externalLabels.cluster }} {{ $externalURL }}",
        "{{ (query \"up\" | first).Labels.job }}",
    ] {
        assert!(check("t", t).is_ok(), "{t}: {:?}", check("t", t));
    }
}

#[test]
fn rejects_what_go_rejects() {
    let cases = [
        ("{{ $labels.x ", "unclosed action"),
        ("{{ nosuchfunc 1 }}", "function \"nosuchfunc\" not defined"),
        ("{{ if true }}x", "unexpected EOF"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ $nope }}", "undefined variable \"$nope\""),
        ("{{ }}", "missing value for command"),
        ("{{ \"abc }}", "unterminated quoted string"),
    ];
    for (t, want) in cases {
        let e = check("__alert_X", t).unwrap_err();
        assert!(e.starts_with("template: __alert_X:1: "), "{e}");
        assert!(e.contains(want), "{t}: {e}");
    }
    assert!(check("t", "{{ if true }}{{ $a := 1 }}{{ end }}{{ $a }}").is_err());
}
