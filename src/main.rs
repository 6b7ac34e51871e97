//! The `augur` command: parses the CLI, sets up logging, calls the library
//! and maps outcomes to exit codes (0 ok, 1 check or runtime failure,
//! 2 usage or config error).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use augur::app::{self, RunOptions, StartError};

#[derive(Parser)]
#[command(
    name = "augur",
    version,
    about = "Canary analysis daemon and Prometheus-compatible alert evaluator"
)]
struct Cli {
    /// Log format: human on a terminal, plain otherwise, or JSON lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, global = true)]
    log_format: LogFormat,
    /// Log filter (tracing syntax, e.g. `info` or `augur=debug`); RUST_LOG also works.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Config file (TOML).
        #[arg(long, short = 'c', default_value = "/etc/augur/augur.toml")]
        config: PathBuf,
        /// Listen address, overriding server.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// State directory, overriding server.state_dir.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Check files without running anything.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Run test files.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
    /// Run a PromQL query against augur or any Prometheus-compatible API.
    Query {
        /// The PromQL expression.
        expr: String,
        /// Evaluation time: RFC 3339 or Unix seconds (default: now).
        #[arg(long)]
        time: Option<String>,
        /// Query the datasource of this config (a running augur for the
        /// embedded store, or the remote Prometheus it names).
        #[arg(long, conflicts_with = "url")]
        config: Option<PathBuf>,
        /// Base URL of a Prometheus-compatible API.
        #[arg(long)]
        url: Option<String>,
        /// Print the API's JSON `data` object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compare a baseline against a canary with one statistical test.
    ///
    /// Sample tests read files with one number per line; `proportions` and
    /// `fisher` take ERRORS/TOTAL counts. Exit 2 on bad input.
    Judge(JudgeArgs),
}

#[derive(clap::Args)]
struct JudgeArgs {
    /// The test to run.
    #[arg(long, value_enum, default_value = "mann-whitney")]
    test: JudgeTest,
    /// Baseline file: one value per line, or for count tests one cumulative
    /// `errors total` line per interval (or an ERRORS/TOTAL argument).
    #[arg(long)]
    baseline: String,
    /// Canary file, in the same format as the baseline.
    #[arg(long)]
    canary: String,
    /// Alternative hypothesis; `greater` means the canary is larger.
    #[arg(long, default_value = "two-sided", value_parser = ["two-sided", "greater", "less"])]
    alternative: String,
    /// Confidence level of the reported interval.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Drop the Mann-Whitney continuity correction.
    #[arg(long)]
    no_continuity: bool,
    /// Prior of the sequential tests: the count test's concentration k,
    /// or the t-test's precision phi.
    #[arg(long, default_value_t = 100.0)]
    prior: f64,
    /// Level of the sequential tests: abort once the e-value reaches 1/alpha.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Values per arm between looks of `sequential-t`.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum JudgeTest {
    MannWhitney,
    Welch,
    Ks,
    Proportions,
    Fisher,
    SequentialCounts,
    SequentialT,
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run promtool rule unit-test files (`promtool test rules` format);
    /// exit 1 when any test fails.
    Rules {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run promqltest files (Prometheus's `promql/promqltest` format);
    /// ends with `N passed, N failed, N skipped`.
    Promql {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Check config files; prints every error as file:line:col and exits 2 on error.
    Config {
        /// Config files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check Prometheus rule files like `promtool check rules`; exit 1 on any invalid file.
    Rules {
        /// Rule files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Auto if std::io::stderr().is_terminal() => b.init(),
        // journald adds its own timestamps; keep lines plain.
        _ => b.with_ansi(false).without_time().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            what: CheckCommand::Config { files },
        } => {
            let mut bad = false;
            for f in &files {
                match augur::config::load(f) {
                    Ok(cfg) => println!(
                        "{}: ok ({} scrape configs, {} targets)",
                        f.display(),
                        cfg.scrape_configs.len(),
                        cfg.scrape_configs
                            .iter()
                            .map(|j| j.targets.len())
                            .sum::<usize>()
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
        Command::Check {
            what: CheckCommand::Rules { files },
        } => check_rules(&files),
        Command::Test {
            what: TestCommand::Promql { files },
        } => test_promql(&files),
        Command::Test {
            what: TestCommand::Rules { files },
        } => test_rules(&files),
        Command::Judge(args) => judge(&args),
        Command::Query {
            expr,
            time,
            config,
            url,
            json,
        } => query(&expr, time.as_deref(), config, url, json),
        Command::Run {
            config,
            listen,
            state_dir,
        } => {
            init_logging(cli.log_format, cli.log_level.as_deref());
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("augur: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let opts = RunOptions {
                config,
                listen,
                state_dir,
            };
            match rt.block_on(app::run(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(StartError::Config(errs)) => {
                    for e in &errs.0 {
                        eprintln!("{e}");
                    }
                    ExitCode::from(2)
                }
                Err(StartError::Other(e)) => {
                    eprintln!("augur: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn judge(args: &JudgeArgs) -> ExitCode {
    use augur::stats::judge::{self, TestKind};
    use augur::stats::Counts;
    let (baseline, canary) = (args.baseline.as_str(), args.canary.as_str());
    let kind = match args.test {
        JudgeTest::MannWhitney => TestKind::MannWhitney,
        JudgeTest::Welch => TestKind::Welch,
        JudgeTest::Ks => TestKind::Ks,
        JudgeTest::Proportions => TestKind::Proportions,
        JudgeTest::Fisher => TestKind::Fisher,
        JudgeTest::SequentialCounts => TestKind::SequentialCounts,
        JudgeTest::SequentialT => TestKind::SequentialT,
    };
    let opts = judge::Options {
        alt: augur::stats::Alternative::parse(&args.alternative)
            .expect("clap restricts the values"),
        confidence: args.confidence,
        continuity: !args.no_continuity,
        prior: args.prior,
        alpha: args.alpha,
        batch: args.batch,
    };
    if !(opts.confidence > 0.0 && opts.confidence < 1.0) {
        eprintln!(
            "augur judge: --confidence: expected a level between 0 and 1, found {}",
            opts.confidence
        );
        return ExitCode::from(2);
    }
    if !(opts.alpha > 0.0 && opts.alpha < 1.0) {
        eprintln!(
            "augur judge: --alpha: expected a level between 0 and 1, found {}",
            opts.alpha
        );
        return ExitCode::from(2);
    }
    let result = if kind.takes_counts() {
        // A path that exists is a counts file; anything else must be an
        // ERRORS/TOTAL literal.
        let counts = |which: &'static str, arg: &str| -> Result<Vec<Counts>, String> {
            let path = Path::new(arg);
            if path.is_file() {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{arg}: {e}"))?;
                judge::parse_count_lines(path, &text).map_err(|e| e.to_string())
            } else {
                judge::parse_counts(which, arg)
                    .map(|c| vec![c])
                    .map_err(|e| e.to_string())
            }
        };
        match (counts("baseline", baseline), counts("canary", canary)) {
            (Ok(b), Ok(c)) => judge::judge_counts(kind, &b, &c, &opts).map_err(|e| e.to_string()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    } else {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map_err(|e| format!("{p}: {e}"))
                .and_then(|text| {
                    judge::parse_sample(Path::new(p), &text).map_err(|e| e.to_string())
                })
        };
        match (read(baseline), read(canary)) {
            (Ok(b), Ok(c)) => judge::judge_samples(kind, &b, &c, &opts).map_err(|e| e.to_string()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    };
    match result {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("a report serialises")
                );
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("augur judge: {e}");
            ExitCode::from(2)
        }
    }
}

fn test_promql(files: &[PathBuf]) -> ExitCode {
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

fn query(
    expr: &str,
    time: Option<&str>,
    config: Option<PathBuf>,
    url: Option<String>,
    json: bool,
) -> ExitCode {
    use augur::config::DatasourceConfig;
    let t = match time {
        None => augur::scrape::now_ms(),
        Some(s) => match augur::api::parse_time_param(s) {
            Some(t) => t,
            None => {
                eprintln!("augur: --time {s:?} is neither RFC 3339 nor Unix seconds");
                return ExitCode::from(2);
            }
        },
    };
    let (base, timeout, auth, headers) = match (config, url) {
        (_, Some(u)) => (
            u,
            std::time::Duration::from_secs(120),
            augur::config::Auth::None,
            Vec::new(),
        ),
        (Some(c), None) => match augur::config::load(&c) {
            Ok(cfg) => match cfg.datasource {
                DatasourceConfig::Prometheus {
                    url,
                    timeout,
                    auth,
                    headers,
                } => (url, timeout, auth, headers),
                DatasourceConfig::Embedded => (
                    format!("http://{}", cfg.server.listen),
                    cfg.query.timeout,
                    augur::config::Auth::None,
                    Vec::new(),
                ),
            },
            Err(errs) => {
                for e in &errs.0 {
                    eprintln!("{e}");
                }
                return ExitCode::from(2);
            }
        },
        (None, None) => (
            "http://127.0.0.1:9464".to_string(),
            std::time::Duration::from_secs(120),
            augur::config::Auth::None,
            Vec::new(),
        ),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("augur: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        let client = augur::datasource::RemoteClient::new(&base, timeout, auth, &headers)?;
        client.instant(expr, t).await
    });
    match result {
        Ok(r) => {
            for a in &r.annotations {
                eprintln!("{:?}: {}", a.kind, a.message);
            }
            if json {
                println!("{}", augur::datasource::write_data(&r.value, t));
            } else {
                print!("{}", augur::datasource::format_table(&r.value));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("augur: {e}");
            ExitCode::from(1)
        }
    }
}

/// Output as `promtool check rules` prints it: `Checking FILE`, then
/// `  SUCCESS: N rules found` or `  FAILED:` and one error per line.
fn check_rules(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        println!("Checking {}", f.display());
        match augur::rules::load(f) {
            Ok(rf) => println!("  SUCCESS: {} rules found\n", rf.rule_count()),
            Err(errs) => {
                failed = true;
                eprintln!("  FAILED:");
                for e in errs {
                    eprintln!("{e}");
                }
                eprintln!();
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Output as `promtool test rules` prints it.
fn test_rules(files: &[PathBuf]) -> ExitCode {
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
