//! `augur check rules`: the real-world corpus in ../shared/conformance/rules
//! is accepted, the invalid files in tests/rules are rejected with
//! promtool's messages, and promtool (when installed) gives the same verdicts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn augur(args: &[&str], files: &[PathBuf]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_augur"))
        .args(args)
        .args(files)
        .output()
        .unwrap()
}

fn corpus(dir: &str) {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/rules")
        .join(dir);
    let Ok(entries) = std::fs::read_dir(&d) else {
        eprintln!(
            "SKIP: {} not found; the conformance data lives in ../shared/conformance",
            d.display()
        );
        return;
    };
    let files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    assert!(files.len() > 100, "{}", d.display());
    let mut rules = 0;
    let mut linted = 0;
    for f in &files {
        match augur::rules::load(f) {
            Ok(rf) => {
                rules += rf.rule_count();
                linted += usize::from(rf.duplicate_rules_message().is_some());
            }
            Err(e) => panic!("{}: {e:?}", f.display()),
        }
    }
    assert!(rules > 900, "{dir}: {rules} rules");
    // The CLI agrees and reports every file: valid, or (promtool's default
    // lint, exit 0 all the same) holding duplicate rules.
    let out = augur(&["check", "rules"], &files);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("  SUCCESS: ")
            .count(),
        files.len() - linted
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .matches("duplicate rule(s) found.")
            .count(),
        linted
    );
}

/// promtool's default `duplicate-rules` lint, word for word (Debian's
/// promtool 2.42 printed this for the file below): FAILED on stderr, exit 0.
#[test]
fn duplicate_rules_are_linted_as_promtool_does() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dup.yml");
    std::fs::write(
        &f,
        "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up == 0\n        labels: {severity: page}\n      - alert: X\n        expr: up == 0\n        labels: {severity: page}\n      - alert: X\n        expr: up == 2\n        labels: {severity: page}\n      - record: r\n        expr: up\n  - name: b\n    rules:\n      - record: r\n        expr: up\n      - alert: Y\n        expr: up\n",
    )
    .unwrap();
    let out = augur(&["check", "rules"], std::slice::from_ref(&f));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Checking {}\n\n", f.display())
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "  FAILED:\nlint error 2 duplicate rule(s) found.\nMetric: X\nLabel(s):\n\tseverity: page\nMetric: r\nLabel(s):\nMight cause inconsistency while recording expressions\n"
    );
}

#[test]
fn accepts_awesome_prometheus_alerts() {
    corpus("awesome-prometheus-alerts");
}

#[test]
fn accepts_monitoring_mixins() {
    corpus("monitoring-mixins");
}

fn own(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rules")
        .join(name)
}

#[test]
fn rejects_invalid_files_with_promtool_messages() {
    let cases = [
        ("bad_promql.yml", "5:15: group \"g\", rule 1, \"Broken\": could not parse expression: 1:34: parse error: unclosed left parenthesis"),
        // A block scalar is placed at its `|`, as yaml.v3 does, and the
        // PromQL position is within the multi-line expression.
        ("bad_promql_block.yml", "5:15: group \"g\", rule 1, \"BrokenBlock\": could not parse expression: 3:1: parse error: unclosed left parenthesis"),
        ("bad_template.yml", "group \"g\", rule 1, \"BadTemplate\": annotation \"summary\": template: __alert_BadTemplate:1: unclosed action"),
        ("bad_function.yml", "group \"g\", rule 1, \"BadFunction\": annotation \"summary\": template: __alert_BadFunction:1: function \"nosuchfunc\" not defined"),
        ("duplicate_group.yml", "6:5: groupname: \"same\" is repeated in the same file"),
        ("for_on_recording.yml", "4:17: group \"g\", rule 1, \"job:up:sum\": invalid field 'for' in recording rule"),
        ("annotations_on_recording.yml", "4:17: group \"g\", rule 1, \"job:up:sum\": invalid field 'annotations' in recording rule"),
        ("missing_expr.yml", "0:0: group \"g\", rule 1, \"NoExpr\": field 'expr' must be set in rule"),
        ("record_and_alert.yml", "4:17: 5:16: group \"g\", rule 1, \"AlsoAlert\": only one of 'record' and 'alert' must be set"),
        // promtool prints this one without a position; augur adds it.
        ("bad_duration.yml", "6:14: not a valid duration string: \"5x\""),
        ("empty_group_name.yml", "2:5: Groupname must not be empty"),
        ("unknown_field.yml", "6:9: unknown field `severity`"),
    ];
    for (file, want) in cases {
        let p = own(file);
        let errs = augur::rules::load(&p).unwrap_err();
        let expected = format!("{}: {want}", p.display());
        assert!(
            errs.iter().any(|e| e.starts_with(&expected)),
            "{file}: {errs:?}"
        );
        let out = augur(&["check", "rules"], std::slice::from_ref(&p));
        assert_eq!(out.status.code(), Some(1), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("  FAILED:\n"), "{stderr}");
        assert!(stderr.contains(&expected), "{stderr}");
        // promtool's blank line after a file goes to stdout.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("Checking {}\n\n", p.display())
        );
        assert!(!stderr.ends_with("\n\n"), "{stderr:?}");
    }
    // Every error, not only the first: an unknown field does not hide a
    // bad duration further down (promtool stops at the first).
    let p = own("many_errors.yml");
    let errs = augur::rules::load(&p).unwrap_err();
    let text: Vec<String> = errs
        .iter()
        .map(|e| {
            e.trim_start_matches(&format!("{}: ", p.display()))
                .to_string()
        })
        .collect();
    for want in [
        "7:9: unknown field `bogus`",
        "15:9: unknown field `junk`",
        "6:14: duration out of range",
        "10:14: not a valid duration string: \"-5m\"",
    ] {
        assert!(text.iter().any(|e| e.starts_with(want)), "{want}: {text:?}");
    }
    let ok = own("canary_alerts.yml");
    let out = augur(&["check", "rules"], std::slice::from_ref(&ok));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Checking {}\n  SUCCESS: 4 rules found\n\n", ok.display())
    );
}

#[test]
fn same_verdicts_as_promtool() {
    if Command::new("promtool").arg("--version").output().is_err() {
        if std::env::var("AUGUR_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            panic!("required by AUGUR_REQUIRE_ALL=1: promtool; install the Debian package `prometheus`");
        }
        eprintln!("SKIP: promtool not found; install the Debian package `prometheus`");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "yml") {
            continue;
        }
        let theirs = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&p)
            .output()
            .unwrap();
        let ours = augur(&["check", "rules"], std::slice::from_ref(&p));
        assert_eq!(ours.status.code(), theirs.status.code(), "{}", p.display());
        n += 1;
    }
    assert!(n >= 10);
}
