//! Cases from Prometheus's `model/relabel/relabel_test.go` (TestRelabel,
//! TestRelabelValidate, TestTargetLabelLegacyValidity), written as a table
//! for augur, plus target finishing from `scrape/target_test.go`'s rules.

use std::time::Duration;

use super::*;

fn ls(p: &[(&str, &str)]) -> LabelSet {
    LabelSet::from_pairs(p.iter().map(|(a, b)| (a.to_string(), b.to_string())))
}

/// A rule as relabel_test.go's harness builds it: unset fields take the
/// defaults, so `regex`/`replacement` are given only when set.
#[derive(Default)]
struct R<'a> {
    src: &'a [&'a str],
    re: Option<&'a str>,
    tgt: &'a str,
    sep: Option<&'a str>,
    rep: Option<&'a str>,
    m: u64,
    act: &'a str,
}

fn rule(r: R<'_>) -> Rule {
    Rule::new(&RuleSpec {
        source_labels: r.src.iter().map(|s| s.to_string()).collect(),
        separator: r.sep.map(str::to_string),
        regex: r.re.map(str::to_string),
        modulus: (r.m > 0).then_some(r.m),
        target_label: (!r.tgt.is_empty()).then(|| r.tgt.to_string()),
        replacement: r.rep.map(str::to_string),
        action: (!r.act.is_empty()).then(|| r.act.to_string()),
        legacy_names: false,
    })
    .unwrap_or_else(|e| panic!("rule does not compile: {e}"))
}

fn run(input: &[(&str, &str)], rules: Vec<R<'_>>) -> Option<LabelSet> {
    let rules: Vec<Rule> = rules.into_iter().map(rule).collect();
    let mut set = ls(input);
    process(&mut set, &rules).then_some(set)
}

fn with(input: &[(&str, &str)], extra: &[(&str, &str)]) -> LabelSet {
    let mut s = ls(input);
    for (n, v) in extra {
        s.set(n, v);
    }
    s
}

const ABC: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];

#[test]
fn replace_with_groups() {
    // 1
    let got = run(
        ABC,
        vec![R {
            src: &["a"],
            re: Some("f(.*)"),
            tgt: "d",
            rep: Some("ch${1}-ch${1}"),
            ..R::default()
        }],
    );
    assert_eq!(got, Some(with(ABC, &[("d", "choo-choo")])));
    // 2
    let got = run(
        ABC,
        vec![
            R {
                src: &["a", "b"],
                re: Some("f(.*);(.*)r"),
                tgt: "a",
                rep: Some("b${1}${2}m"),
                ..R::default()
            },
            R {
                src: &["c", "a"],
                re: Some("(b).*b(.*)ba(.*)"),
                tgt: "d",
                rep: Some("$1$2$2$3"),
                ..R::default()
            },
        ],
    );
    assert_eq!(
        got,
        Some(ls(&[
            ("a", "boobam"),
            ("b", "bar"),
            ("c", "baz"),
            ("d", "boooom")
        ]))
    );
    // 5
    let got = run(
        &[("a", "abc")],
        vec![R {
            src: &["a"],
            re: Some(".*(b).*"),
            tgt: "d",
            ..R::default()
        }],
    );
    assert_eq!(got, Some(ls(&[("a", "abc"), ("d", "b")])));
}

#[test]
fn keep_and_drop() {
    // 3, 4
    let drop_o = || R {
        src: &["a"],
        re: Some(".*o.*"),
        act: "drop",
        ..R::default()
    };
    assert_eq!(
        run(
            &[("a", "foo")],
            vec![
                drop_o(),
                R {
                    src: &["a"],
                    re: Some("f(.*)"),
                    tgt: "d",
                    rep: Some("ch$1-ch$1"),
                    ..R::default()
                }
            ]
        ),
        None
    );
    assert_eq!(run(&[("a", "foo"), ("b", "bar")], vec![drop_o()]), None);
    // 6, 7: anchored, so `f|o` does not match "foo"
    for re in ["no-match", "f|o"] {
        let got = run(
            &[("a", "foo")],
            vec![R {
                src: &["a"],
                re: Some(re),
                act: "drop",
                ..R::default()
            }],
        );
        assert_eq!(got, Some(ls(&[("a", "foo")])), "{re}");
    }
    // 8, 9
    let keep = |re| R {
        src: &["a"],
        re: Some(re),
        act: "keep",
        ..R::default()
    };
    assert_eq!(run(&[("a", "foo")], vec![keep("no-match")]), None);
    assert_eq!(
        run(&[("a", "foo")], vec![keep("f.*")]),
        Some(ls(&[("a", "foo")]))
    );
}

#[test]
fn replace_edge_cases() {
    // 10: no match, no change
    let got = run(
        &[("a", "boo")],
        vec![R {
            src: &["a"],
            re: Some("f"),
            tgt: "b",
            rep: Some("bar"),
            ..R::default()
        }],
    );
    assert_eq!(got, Some(ls(&[("a", "boo")])));
    // 11: group 2 does not exist: "" deletes the target `f`
    let got = run(
        &[("a", "foo"), ("f", "baz")],
        vec![R {
            src: &["a"],
            re: Some("(f).*"),
            tgt: "$1",
            rep: Some("$2"),
            ..R::default()
        }],
    );
    assert_eq!(got, Some(ls(&[("a", "foo")])));
    // 16, 17
    let re = "some-([^-]+)-([^,]+)";
    let got = run(
        &[("a", "some-name-value")],
        vec![R {
            src: &["a"],
            re: Some(re),
            tgt: "${1}",
            rep: Some("${2}"),
            ..R::default()
        }],
    );
    assert_eq!(
        got,
        Some(ls(&[("a", "some-name-value"), ("name", "value")]))
    );
    let got = run(
        &[("a", "some-name-value")],
        vec![R {
            src: &["a"],
            re: Some(re),
            tgt: "${1}",
            rep: Some("${3}"),
            ..R::default()
        }],
    );
    assert_eq!(got, Some(ls(&[("a", "some-name-value")])));
    // 18: targets expanding to "" are invalid and skipped
    let r3 = |re| R {
        src: &["a"],
        re: Some(re),
        tgt: "${3}",
        rep: Some("${1}"),
        ..R::default()
    };
    let got = run(
        &[("a", "some-name-0")],
        vec![r3(re), r3(re), r3("some-([^-]+)(-[^,]+)")],
    );
    assert_eq!(got, Some(ls(&[("a", "some-name-0")])));
    // 19
    let tags = "path:/secret,job:some-job,label:foo=bar";
    let src: &[&str] = &["__meta_sd_tags"];
    let got = run(
        &[("__meta_sd_tags", tags)],
        vec![
            R {
                src,
                re: Some("(?:.+,|^)path:(/[^,]+).*"),
                tgt: "__metrics_path__",
                rep: Some("${1}"),
                ..R::default()
            },
            R {
                src,
                re: Some("(?:.+,|^)job:([^,]+).*"),
                tgt: "job",
                rep: Some("${1}"),
                ..R::default()
            },
            R {
                src,
                re: Some("(?:.+,|^)label:([^=]+)=([^,]+).*"),
                tgt: "${1}",
                rep: Some("${2}"),
                ..R::default()
            },
        ],
    );
    assert_eq!(
        got,
        Some(ls(&[
            ("__meta_sd_tags", tags),
            ("__metrics_path__", "/secret"),
            ("job", "some-job"),
            ("foo", "bar")
        ]))
    );
}

#[test]
fn hashmod_is_prometheus_md5() {
    // 12, 13 (values from Prometheus's tests; recomputed with md5)
    let got = run(
        ABC,
        vec![R {
            src: &["c"],
            tgt: "d",
            m: 1000,
            act: "hashmod",
            ..R::default()
        }],
    );
    assert_eq!(got, Some(with(ABC, &[("d", "976")])));
    let got = run(
        &[("a", "foo\nbar")],
        vec![R {
            src: &["a"],
            tgt: "b",
            m: 1000,
            act: "hashmod",
            ..R::default()
        }],
    );
    assert_eq!(got, Some(ls(&[("a", "foo\nbar"), ("b", "734")])));
}

#[test]
fn labelmap_labelkeep_labeldrop() {
    let b = &[("a", "foo"), ("b1", "bar"), ("b2", "baz")];
    // 14
    let got = run(
        b,
        vec![R {
            re: Some("(b.*)"),
            rep: Some("bar_${1}"),
            act: "labelmap",
            ..R::default()
        }],
    );
    assert_eq!(got, Some(with(b, &[("bar_b1", "bar"), ("bar_b2", "baz")])));
    // 15
    let m = &[
        ("a", "foo"),
        ("__meta_my_bar", "aaa"),
        ("__meta_my_baz", "bbb"),
        ("__meta_other", "ccc"),
    ];
    let got = run(
        m,
        vec![R {
            re: Some("__meta_(my.*)"),
            rep: Some("${1}"),
            act: "labelmap",
            ..R::default()
        }],
    );
    assert_eq!(got, Some(with(m, &[("my_bar", "aaa"), ("my_baz", "bbb")])));
    // 21, 22
    let got = run(
        b,
        vec![R {
            re: Some("(b.*)"),
            act: "labelkeep",
            ..R::default()
        }],
    );
    assert_eq!(got, Some(ls(&[("b1", "bar"), ("b2", "baz")])));
    let got = run(
        b,
        vec![R {
            re: Some("(b.*)"),
            act: "labeldrop",
            ..R::default()
        }],
    );
    assert_eq!(got, Some(ls(&[("a", "foo")])));
}

#[test]
fn labeldrop_then_replace_then_keep_issue_12283() {
    // 20
    let name = "__meta_kubernetes_pod_container_port_name";
    let port = "__meta_kubernetes_pod_annotation_XXX_metrics_port";
    let got = run(
        &[(name, "foo"), (port, "9091")],
        vec![
            R {
                re: Some("^__meta_kubernetes_pod_container_port_name$"),
                act: "labeldrop",
                ..R::default()
            },
            R {
                src: &[port],
                re: Some("(.+)"),
                tgt: name,
                rep: Some("metrics"),
                ..R::default()
            },
            R {
                src: &[name],
                re: Some("^metrics$"),
                act: "keep",
                ..R::default()
            },
        ],
    );
    assert_eq!(got, Some(ls(&[(port, "9091"), (name, "metrics")])));
}

#[test]
fn case_and_equality_actions() {
    // 23
    let got = run(
        &[("foo", "bAr123Foo")],
        vec![
            R {
                src: &["foo"],
                tgt: "foo_uppercase",
                act: "uppercase",
                ..R::default()
            },
            R {
                src: &["foo"],
                tgt: "foo_lowercase",
                act: "lowercase",
                ..R::default()
            },
        ],
    );
    assert_eq!(
        got,
        Some(ls(&[
            ("foo", "bAr123Foo"),
            ("foo_lowercase", "bar123foo"),
            ("foo_uppercase", "BAR123FOO")
        ]))
    );
    // Go's simple case mapping: ß stays, Σ -> σ even at a word's end.
    let got = run(
        &[("a", "straße ΟΔΟΣ")],
        vec![
            R {
                src: &["a"],
                tgt: "u",
                act: "uppercase",
                ..R::default()
            },
            R {
                src: &["a"],
                tgt: "l",
                act: "lowercase",
                ..R::default()
            },
        ],
    );
    let got = got.unwrap();
    assert_eq!(got.get("u"), "STRAßE ΟΔΟΣ");
    assert_eq!(got.get("l"), "straße οδοσ");
    // 24-27
    let p = &[
        ("__tmp_port", "1234"),
        ("__port1", "1234"),
        ("__port2", "5678"),
    ];
    let eq = |tgt, act| R {
        src: &["__tmp_port"],
        tgt,
        act,
        ..R::default()
    };
    assert_eq!(run(p, vec![eq("__port1", "keepequal")]), Some(ls(p)));
    assert_eq!(run(p, vec![eq("__port1", "dropequal")]), None);
    assert_eq!(run(p, vec![eq("__port2", "dropequal")]), Some(ls(p)));
    assert_eq!(run(p, vec![eq("__port2", "keepequal")]), None);
}

#[test]
fn multiline_utf8_names_and_named_groups() {
    let l = &[("a", "line1\nline2"), ("b", "bar"), ("c", "baz")];
    // 28
    let r = |src: &'static [&'static str], tgt| R {
        src,
        re: Some("line1.*line2"),
        tgt,
        rep: Some("match${1}"),
        ..R::default()
    };
    assert_eq!(
        run(l, vec![r(&["a"], "d")]),
        Some(with(l, &[("d", "match")]))
    );
    // 29
    let u = &[("utf-8.label", "line1\nline2"), ("b", "bar"), ("c", "baz")];
    assert_eq!(
        run(u, vec![r(&["utf-8.label"], "d")]),
        Some(with(u, &[("d", "match")]))
    );
    // 30, 31
    assert_eq!(
        run(l, vec![r(&["a"], "utf-8.label")]),
        Some(with(l, &[("utf-8.label", "match")]))
    );
    assert_eq!(
        run(l, vec![r(&["a"], "utf-8.label${1}")]),
        Some(with(l, &[("utf-8.label", "match")]))
    );
    // 32
    let got = run(
        l,
        vec![
            R {
                src: &["a"],
                re: Some("(line1).*(?<second>line2)"),
                tgt: "label1_${1}",
                rep: Some("val_${second}"),
                ..R::default()
            },
            R {
                src: &["a"],
                re: Some("(line1).*(?<second>line2)"),
                tgt: "label2_$1",
                rep: Some("val_$second"),
                ..R::default()
            },
        ],
    );
    assert_eq!(
        got,
        Some(with(
            l,
            &[("label1_line1", "val_line2"), ("label2_line1", "val_line2")]
        ))
    );
    // 33, 34
    let got = run(
        &[("__name__", "http_requests_total")],
        vec![R {
            src: &["__name__"],
            re: Some(".*_total$"),
            tgt: "__type__",
            rep: Some("counter"),
            ..R::default()
        }],
    );
    assert_eq!(got.unwrap().get("__type__"), "counter");
}

#[test]
fn go_expand_rules() {
    let re = crate::labels::anchored_go_regex("(a)(?P<n>b)(c)?").unwrap();
    let caps = re.captures("ab").unwrap();
    let e = |t: &str| expand(&re, &caps, t);
    assert_eq!(e("$$"), "$");
    assert_eq!(e("$1x"), "", "$1x is the name 1x");
    assert_eq!(e("${1}x"), "ax");
    assert_eq!(e("$1-"), "a-");
    assert_eq!(e("$1$2"), "ab");
    assert_eq!(e("$01"), "", "leading zero: a name, not group 1");
    assert_eq!(e("$0"), "ab");
    assert_eq!(e("$3"), "", "unmatched group");
    assert_eq!(e("$9"), "", "out of range");
    assert_eq!(e("$n"), "b");
    assert_eq!(e("${n}"), "b");
    assert_eq!(e("${a-b}"), "${a-b}", "malformed: $ stays literal");
    assert_eq!(e("${1"), "${1");
    assert_eq!(e("$-"), "$-");
    assert_eq!(e("x$"), "x$");
}

fn spec(action: &str) -> RuleSpec {
    RuleSpec {
        action: Some(action.to_string()),
        ..RuleSpec::default()
    }
}

fn err(s: RuleSpec) -> String {
    Rule::new(&s).unwrap_err().to_string()
}

#[test]
fn validation_messages_are_prometheus() {
    assert_eq!(err(spec("")), "relabel action cannot be empty");
    assert_eq!(err(spec("Nope")), "unknown relabel action \"Nope\"");
    assert!(Rule::new(&RuleSpec {
        target_label: Some("x".into()),
        ..spec("RePlAcE")
    })
    .is_ok());
    assert_eq!(
        err(spec("replace")),
        "relabel configuration for replace action requires 'target_label' value"
    );
    assert_eq!(
        err(RuleSpec::default()),
        "relabel configuration for replace action requires 'target_label' value"
    );
    assert_eq!(
        err(spec("lowercase")),
        "relabel configuration for lowercase action requires 'target_label' value"
    );
    assert_eq!(
        err(RuleSpec {
            regex: Some("abcdef".into()),
            ..spec("hashmod")
        }),
        "relabel configuration for hashmod requires non-zero modulus"
    );
    assert_eq!(
        err(RuleSpec {
            source_labels: vec!["__address__".into()],
            modulus: Some(8),
            ..spec("hashmod")
        }),
        "relabel configuration for hashmod action requires 'target_label' value"
    );
    let five = |action: &str| -> Vec<RuleSpec> {
        vec![
            RuleSpec {
                source_labels: vec!["abcdef".into()],
                ..spec(action)
            },
            RuleSpec {
                modulus: Some(8),
                ..spec(action)
            },
            RuleSpec {
                separator: Some(",".into()),
                ..spec(action)
            },
            RuleSpec {
                replacement: Some("yolo-{1}".into()),
                ..spec(action)
            },
            RuleSpec {
                target_label: Some("yolo".into()),
                ..spec(action)
            },
        ]
    };
    for a in ["labelkeep", "labeldrop"] {
        for s in five(a) {
            assert_eq!(
                err(s),
                format!("{a} action requires only 'regex', and no other fields")
            );
        }
    }
    for a in ["keepequal", "dropequal"] {
        assert_eq!(
            err(RuleSpec {
                source_labels: vec!["abcdef".into()],
                ..spec(a)
            }),
            format!("relabel configuration for {a} action requires 'target_label' value")
        );
        assert_eq!(
            err(RuleSpec {
                source_labels: vec!["abcdef".into()],
                regex: Some("foo".into()),
                target_label: Some("bar".into()),
                ..spec(a)
            }),
            format!(
                "{a} action requires only 'source_labels' and `target_label`, and no other fields"
            )
        );
        // Prometheus compares the default regex by identity: an explicit
        // `(.*)` is "another field".
        assert!(Rule::new(&RuleSpec {
            regex: Some("(.*)".into()),
            target_label: Some("bar".into()),
            ..spec(a)
        })
        .is_err());
    }
    for a in ["lowercase", "uppercase"] {
        assert_eq!(
            err(RuleSpec {
                source_labels: vec!["__name__".into()],
                target_label: Some("__name__".into()),
                replacement: Some("bar".into()),
                ..spec(a)
            }),
            format!("'replacement' can not be set for {a} action")
        );
    }
    assert!(err(RuleSpec {
        regex: Some("abc(def".into()),
        target_label: Some("x".into()),
        ..RuleSpec::default()
    })
    .starts_with("error parsing regexp: "));
}

#[test]
fn validate_utf8_and_legacy_schemes() {
    // TestRelabelValidate 3-9
    let lower3 = |legacy| RuleSpec {
        replacement: Some("$1".into()),
        target_label: Some("${3}".into()),
        legacy_names: legacy,
        ..spec("lowercase")
    };
    assert!(Rule::new(&lower3(false)).is_ok());
    assert_eq!(
        err(lower3(true)),
        "\"${3}\" is invalid 'target_label' for lowercase action"
    );
    for tgt in ["${3}", "0${3}", "-${3}"] {
        let s = RuleSpec {
            source_labels: vec!["a".into()],
            regex: Some("some-([^-]+)-([^,]+)".into()),
            replacement: Some("${1}".into()),
            target_label: Some(tgt.into()),
            ..spec("replace")
        };
        assert!(Rule::new(&s).is_ok(), "{tgt}");
    }
    for (re, rep) in [
        ("__meta_kubernetes_pod_label_(strimzi_io_.+)", "$1"),
        ("__meta_(.+)", "${1}"),
    ] {
        let s = RuleSpec {
            regex: Some(re.into()),
            replacement: Some(rep.into()),
            legacy_names: true,
            ..spec("labelmap")
        };
        assert!(Rule::new(&s).is_ok(), "{re}");
    }
    // TestTargetLabelLegacyValidity
    for (s, ok) in [
        ("-label", false),
        ("label", true),
        ("label${1}", true),
        ("${1}label", true),
        ("${1}", true),
        ("${", false),
        ("$", false),
        ("${}", false),
        ("foo${", false),
        ("$1", true),
        ("asd$2asd", true),
        ("-foo${1}bar-", false),
        ("bar.foo${1}bar", false),
        ("_${1}_", true),
        ("foo${bar}foo", true),
    ] {
        assert_eq!(is_relabel_target(s), ok, "{s}");
    }
    // Legacy names refuse dots at run time: the rule is skipped.
    let r = Rule::new(&RuleSpec {
        source_labels: vec!["a".into()],
        regex: Some("(.*)".into()),
        target_label: Some("x${1}".into()),
        legacy_names: true,
        ..spec("replace")
    })
    .unwrap();
    let mut s = ls(&[("a", ".b")]);
    assert!(process(&mut s, &[r]));
    assert_eq!(s, ls(&[("a", ".b")]));
}

fn job<'a>(rules: &'a [Rule], params: &'a [(String, String)]) -> JobDefaults<'a> {
    JobDefaults {
        job_name: "j",
        scrape_interval: Duration::from_secs(15),
        scrape_timeout: Duration::from_secs(10),
        metrics_path: "/metrics",
        scheme: "http",
        params,
        rules,
    }
}

#[test]
fn target_finishing() {
    let t = ls(&[("__address__", "h:9100"), ("track", "canary")]);
    let g = ls(&[("track", "baseline"), ("__meta_x", "1"), ("zone", "a")]);
    match populate_labels(&job(&[], &[]), &t, &g) {
        Finished::Active {
            labels,
            discovered,
            interval,
            timeout,
        } => {
            assert_eq!(
                discovered,
                ls(&[
                    ("__address__", "h:9100"),
                    ("__meta_x", "1"),
                    ("__metrics_path__", "/metrics"),
                    ("__scheme__", "http"),
                    ("__scrape_interval__", "15s"),
                    ("__scrape_timeout__", "10s"),
                    ("job", "j"),
                    ("track", "canary"),
                    ("zone", "a"),
                ])
            );
            assert_eq!(
                public_labels(&labels),
                ls(&[
                    ("instance", "h:9100"),
                    ("job", "j"),
                    ("track", "canary"),
                    ("zone", "a")
                ])
            );
            assert_eq!(labels.get("__meta_x"), "");
            assert_eq!(
                (interval, timeout),
                (Duration::from_secs(15), Duration::from_secs(10))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn target_finishing_checks() {
    let r = |tgt: &str, rep: &str| {
        rule(R {
            tgt: Box::leak(tgt.to_string().into_boxed_str()),
            rep: Some(Box::leak(rep.to_string().into_boxed_str())),
            ..R::default()
        })
    };
    let case = |rules: Vec<Rule>| {
        populate_labels(&job(&rules, &[]), &ls(&[("__address__", "h:1")]), &ls(&[]))
    };
    assert_eq!(
        case(vec![r("__address__", "")]),
        Finished::Failed(TargetError::NoAddress)
    );
    assert_eq!(
        case(vec![r("__address__", "http://h:1/x")]),
        Finished::Failed(TargetError::BadAddress("http://h:1/x".into()))
    );
    assert_eq!(
        case(vec![r("__scrape_interval__", "0s")])
            .clone()
            .failed()
            .unwrap(),
        "scrape interval cannot be 0"
    );
    assert_eq!(
        case(vec![r("__scrape_interval__", "abc")])
            .failed()
            .unwrap(),
        "error parsing scrape interval: not a valid duration string: \"abc\""
    );
    assert_eq!(
        case(vec![r("__scrape_timeout__", "20s")]).failed().unwrap(),
        "scrape timeout cannot be greater than scrape interval (\"20s\" > \"15s\")"
    );
    // Per-target interval and timeout are honoured.
    match case(vec![
        r("__scrape_interval__", "1m"),
        r("__scrape_timeout__", "30s"),
    ]) {
        Finished::Active {
            interval, timeout, ..
        } => assert_eq!(
            (interval, timeout),
            (Duration::from_secs(60), Duration::from_secs(30))
        ),
        other => panic!("{other:?}"),
    }
    // Dropped by relabeling: discovered labels kept.
    let drop = rule(R {
        src: &["__address__"],
        re: Some("h:.*"),
        act: "drop",
        ..R::default()
    });
    match case(vec![drop]) {
        Finished::Dropped { discovered } => assert_eq!(discovered.get("__address__"), "h:1"),
        other => panic!("{other:?}"),
    }
    // An explicit instance wins; no default port (Prometheus 3).
    match populate_labels(
        &job(&[], &[]),
        &ls(&[("__address__", "example.com"), ("instance", "pretty")]),
        &ls(&[]),
    ) {
        Finished::Active { labels, .. } => {
            assert_eq!(labels.get("instance"), "pretty");
            assert_eq!(target_url(&labels, &[]), "http://example.com/metrics");
        }
        other => panic!("{other:?}"),
    }
}

impl Finished {
    fn failed(self) -> Option<String> {
        match self {
            Finished::Failed(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

#[test]
fn params_become_labels_and_url_query() {
    let params = vec![
        ("module".to_string(), "http_2xx".to_string()),
        ("module".to_string(), "second".to_string()),
        ("a b".to_string(), "x&y".to_string()),
    ];
    let set_target = rule(R {
        src: &["__address__"],
        tgt: "__param_target",
        ..R::default()
    });
    let rules = vec![set_target];
    match populate_labels(
        &job(&rules, &params),
        &ls(&[("__address__", "h:1"), ("__param_module", "from_sd")]),
        &ls(&[]),
    ) {
        Finished::Active {
            labels, discovered, ..
        } => {
            // Prometheus 3: a label from discovery wins over params.
            assert_eq!(discovered.get("__param_module"), "from_sd");
            assert_eq!(discovered.get("__param_a b"), "x&y");
            assert_eq!(
                target_url(&labels, &params),
                "http://h:1/metrics?a+b=x%26y&module=from_sd&module=second&target=h%3A1"
            );
        }
        other => panic!("{other:?}"),
    }
}
