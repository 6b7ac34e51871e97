//! `augur test promql|rules`: promqltest files and promtool rule tests.

use std::path::PathBuf;
use std::process::ExitCode;

pub fn test_promql(files: &[PathBuf]) -> ExitCode {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut broken = false;
    for f in files {
        match augur::promql::promqltest::run_file(f) {
            Ok(r) => {
                for (line, msg) in &r.failed {
                    println!("FAIL {}:{line}: {msg}", f.display());
                }
                for (line, why) in &r.skipped {
                    println!("SKIP {}:{line}: {why}", f.display());
                }
                println!(
                    "{}: {} passed, {} failed, {} skipped",
                    f.display(),
                    r.passed,
                    r.failed.len(),
                    r.skipped.len()
                );
                passed += r.passed;
                failed += r.failed.len();
                skipped += r.skipped.len();
            }
            Err(e) => {
                eprintln!("{e}");
                broken = true;
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if broken {
        ExitCode::from(2)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Output as `promtool test rules` prints it.
pub fn test_rules(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        let r = augur::rules::unittest::run_file(f);
        for w in &r.warnings {
            eprintln!("{w}");
        }
        if r.errors.is_empty() {
            println!("  SUCCESS");
        } else {
            failed = true;
            eprintln!("  FAILED:");
            for e in &r.errors {
                eprintln!("{e}");
                println!();
            }
        }
        println!();
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
