//! `augur test rules` on promtool-format unit tests for canary alerts: the
//! passing file passes, deliberately broken variants fail with promtool's
//! messages, and promtool (when installed) gives the same verdict on each.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules")
}

fn augur(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_augur"))
        .args(["test", "rules"])
        .arg(file)
        .output()
        .unwrap()
}

/// Variants of the passing test file, each with one wrong expectation.
fn broken_variants(tmp: &Path) -> Vec<(String, PathBuf, &'static str)> {
    let good = std::fs::read_to_string(dir().join("canary_alerts_test.yml")).unwrap();
    std::fs::copy(
        dir().join("canary_alerts.yml"),
        tmp.join("canary_alerts.yml"),
    )
    .unwrap();
    let edits: [(&str, &str, &str, &'static str); 6] = [
        ("wrong_severity", "              severity: page\n              track: canary", "              severity: ticket\n              track: canary", "alertname: CanaryErrorRateHigh, time: 7m"),
        ("fires_too_early", "      - eval_time: 5m\n        alertname: CanaryErrorRateHigh\n        exp_alerts: []", "      - eval_time: 5m\n        alertname: CanaryErrorRateHigh\n        exp_alerts:\n          - exp_labels: {severity: page, track: canary}", "alertname: CanaryErrorRateHigh, time: 5m"),
        ("wrong_annotation", "summary: \"Canary error ratio is 5.263%\"", "summary: \"Canary error ratio is 5.26%\"", "alertname: CanaryErrorRateHigh, time: 16m"),
        ("wrong_value", "value: 0.009900990099009901", "value: 0.0099", "expr: \"track:http_requests:error_ratio_rate5m\", time: 7m"),
        ("wrong_state", "alertstate=\"pending\"", "alertstate=\"firing\"", "expr: \"ALERTS{alertname=\\\"CanaryErrorRateHigh\\\"}\", time: 4m"),
        ("missed_recovery", "      - eval_time: 17m\n        alertname: CanaryErrorRateHigh\n        exp_alerts: []", "      - eval_time: 17m\n        alertname: CanaryErrorRateHigh\n        exp_alerts:\n          - exp_labels: {severity: page, track: canary}", "alertname: CanaryErrorRateHigh, time: 17m"),
    ];
    edits
        .into_iter()
        .map(|(name, from, to, msg)| {
            assert!(good.contains(from), "{name}: pattern not in the test file");
            let p = tmp.join(format!("{name}_test.yml"));
            std::fs::write(&p, good.replacen(from, to, 1)).unwrap();
            (name.to_string(), p, msg)
        })
        .collect()
}

#[test]
fn canary_alert_tests_pass() {
    let f = dir().join("canary_alerts_test.yml");
    let out = augur(&f);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Unit Testing:  {}\n  SUCCESS\n\n", f.display())
    );
}

#[test]
fn broken_variants_fail_with_promtool_style_messages() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, p, msg) in broken_variants(tmp.path()) {
        let out = augur(&p);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.starts_with("  FAILED:\n"), "{name}: {stderr}");
        assert!(stderr.contains(msg), "{name}: {stderr}");
    }
}

#[test]
fn same_verdicts_and_messages_as_promtool() {
    if Command::new("promtool").arg("--version").output().is_err() {
        if std::env::var("AUGUR_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            panic!("required by AUGUR_REQUIRE_ALL=1: promtool; install the Debian package `prometheus`");
        }
        eprintln!("SKIP: promtool not found; install the Debian package `prometheus`");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut files = vec![dir().join("canary_alerts_test.yml")];
    files.extend(broken_variants(tmp.path()).into_iter().map(|(_, p, _)| p));
    for f in files {
        let theirs = Command::new("promtool")
            .args(["test", "rules"])
            .arg(&f)
            .output()
            .unwrap();
        let ours = augur(&f);
        assert_eq!(ours.status.code(), theirs.status.code(), "{}", f.display());
        // The failure report is the same text.
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            String::from_utf8_lossy(&theirs.stderr),
            "{}",
            f.display()
        );
    }
}
