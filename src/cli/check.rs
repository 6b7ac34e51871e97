//! `augur check config|rules`: every error as `file:line:col`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Output as `promtool check rules` prints it: `Checking FILE`, then
/// `  SUCCESS: N rules found` or `  FAILED:` and one error per line.
pub fn check_rules(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        println!("Checking {}", f.display());
        match augur::rules::load(f) {
            // A lint finding fails the check in words but not in the exit
            // code, as promtool's default (`--lint=duplicate-rules`).
            Ok(rf) => match rf.duplicate_rules_message() {
                Some(m) => {
                    eprintln!("  FAILED:");
                    eprintln!("{m}");
                    println!();
                }
                None => println!("  SUCCESS: {} rules found\n", rf.rule_count()),
            },
            Err(errs) => {
                failed = true;
                eprintln!("  FAILED:");
                for e in errs {
                    eprintln!("{e}");
                }
                // promtool prints the separating blank line on stdout.
                println!();
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `augur check config FILE…`: exit 2 when any file has an error.
pub fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut bad = false;
    for f in files {
        match augur::config::load(f) {
            Ok(cfg) => println!(
                "{}: ok ({} scrape configs, {} static targets, {} rule files, {} analysis templates)",
                f.display(),
                cfg.scrape_configs.len(),
                cfg.scrape_configs
                    .iter()
                    .flat_map(|j| &j.static_configs)
                    .map(|s| s.targets.len())
                    .sum::<usize>(),
                cfg.rule_files.len(),
                cfg.analyses.len()
            ),
            Err(errs) => {
                bad = true;
                for e in &errs.0 {
                    eprintln!("{e}");
                }
            }
        }
    }
    if bad {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
