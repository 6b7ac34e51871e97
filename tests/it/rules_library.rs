//! The shipped rule library in rules/: every `rules/*.yml` passes
//! `augur check rules` with the number of rules it holds, has unit tests in
//! `rules/tests/<name>.test.yml`, and those pass `augur test rules`; when
//! promtool is installed it gives the same verdicts and the same output.
//! (The unit tests set `group_eval_order`: without it promtool evaluates
//! rule groups in random order and the cross-check would be flaky.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
}

/// Files directly in `dir` whose name ends with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    out.sort();
    out
}

/// The rule files, `rules/*.yml` (not the tests, which are in a subdirectory).
fn rule_files() -> Vec<PathBuf> {
    let f = files(&rules_dir(), ".yml");
    // The files the README documents; a new file is welcome, a missing one is not.
    for name in ["http", "slo", "kubernetes", "istio", "linkerd", "nginx"] {
        assert!(
            f.contains(&rules_dir().join(format!("{name}.yml"))),
            "rules/{name}.yml is missing"
        );
    }
    f
}

fn test_files() -> Vec<PathBuf> {
    files(&rules_dir().join("tests"), ".test.yml")
}

/// `rules/tests/<name>.test.yml` for `rules/<name>.yml`.
fn test_file_for(rule_file: &Path) -> PathBuf {
    let stem = rule_file.file_stem().unwrap().to_str().unwrap();
    rules_dir().join("tests").join(format!("{stem}.test.yml"))
}

/// Rules in a rule file, counted from its text: the library writes every
/// rule as a list item starting with `- record:` or `- alert:`.
fn count_rules(text: &str) -> usize {
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("- record:") || l.starts_with("- alert:"))
        .count()
}

fn augur(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_augur"))
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn promtool(args: &[&str], file: &Path) -> Output {
    Command::new("promtool")
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_rule_file_passes_check_rules() {
    let mut total = 0;
    for f in rule_files() {
        let n = count_rules(&std::fs::read_to_string(&f).unwrap());
        assert!(n > 0, "{}: no rules", f.display());
        total += n;
        let out = augur(&["check", "rules"], &f);
        assert!(out.status.success(), "{}: {}", f.display(), show(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("Checking {}\n  SUCCESS: {n} rules found\n\n", f.display()),
            "{}",
            f.display()
        );
        assert!(out.stderr.is_empty(), "{}: {}", f.display(), show(&out));
    }
    // 24 recording rules and 21 alerts when this test was written.
    assert!(total >= 45, "{total} rules in rules/*.yml");
}

#[test]
fn every_rule_file_has_unit_tests() {
    for f in rule_files() {
        let t = test_file_for(&f);
        assert!(
            t.is_file(),
            "{} has no unit tests: expected {}",
            f.display(),
            t.display()
        );
        // The test file loads the rule file it is named after.
        let name = f.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&t).unwrap();
        assert!(
            text.contains(&format!("- ../{name}\n")),
            "{} does not list ../{name} in rule_files",
            t.display()
        );
    }
    // And no test file is left without its rule file.
    for t in test_files() {
        let stem = t
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".test.yml");
        assert!(
            rules_dir().join(format!("{stem}.yml")).is_file(),
            "{}: rules/{stem}.yml does not exist",
            t.display()
        );
    }
}

#[test]
fn every_unit_test_file_passes_test_rules() {
    let tests = test_files();
    assert!(tests.len() >= 6, "{tests:?}");
    for t in tests {
        let out = augur(&["test", "rules"], &t);
        assert!(out.status.success(), "{}: {}", t.display(), show(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("Unit Testing:  {}\n  SUCCESS\n\n", t.display()),
            "{}",
            t.display()
        );
    }
}

/// promtool passes the same files with the same output (the exact text
/// augur's own tests above expect), so the library stays valid for
/// Prometheus and the two implementations agree on it.
#[test]
fn promtool_agrees() {
    if Command::new("promtool").arg("--version").output().is_err() {
        if std::env::var("AUGUR_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            panic!("required by AUGUR_REQUIRE_ALL=1: promtool; install the Debian package `prometheus`");
        }
        eprintln!("SKIP: promtool cross-check: install the Debian package `prometheus`");
        return;
    }
    for f in rule_files() {
        let n = count_rules(&std::fs::read_to_string(&f).unwrap());
        let out = promtool(&["check", "rules"], &f);
        assert!(out.status.success(), "{}: {}", f.display(), show(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("Checking {}\n  SUCCESS: {n} rules found\n\n", f.display()),
            "{}",
            f.display()
        );
    }
    for t in test_files() {
        let out = promtool(&["test", "rules"], &t);
        assert!(out.status.success(), "{}: {}", t.display(), show(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("Unit Testing:  {}\n  SUCCESS\n\n", t.display()),
            "{}",
            t.display()
        );
    }
}
