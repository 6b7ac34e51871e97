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
    /// Watch augur catch a bad canary: a simulated service, a stand-in
    /// Kubernetes API and the real daemon, on loopback, in under a minute.
    Demo(DemoArgs),
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
    Judge(Box<JudgeArgs>),
}

#[derive(clap::Args)]
struct JudgeArgs {
    /// The test to run.
    #[arg(long, value_enum, default_value = "mann-whitney")]
    test: JudgeTest,
    /// Baseline file: one value per line, or for count tests one cumulative
    /// `errors total` line per interval (or an ERRORS/TOTAL argument).
    #[arg(long, required_unless_present = "canary_config")]
    baseline: Option<String>,
    /// Canary file, in the same format as the baseline.
    #[arg(long, required_unless_present = "canary_config")]
    canary: Option<String>,
    /// Alternative hypothesis; `greater` means the canary is larger.
    #[arg(long, default_value = "two-sided", value_parser = ["two-sided", "greater", "less"])]
    alternative: String,
    /// Confidence level of the reported interval [default: 0.95; kayenta 0.98].
    #[arg(long)]
    confidence: Option<f64>,
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
    /// Values per arm between looks of `sequential-t` and `sequential-band`.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// `sequential-t`: compare log values (use for latency).
    #[arg(long)]
    log: bool,
    /// `sequential-counts`: give every interval its own traffic split
    /// (for canary load that drifts) instead of the cumulative split.
    #[arg(long)]
    per_interval: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// What the values measure, for the summary sentence (e.g. "p99 latency").
    #[arg(long, default_value = "")]
    name: String,
    /// Unit of the values, for the summary sentence (e.g. "ms").
    #[arg(long, default_value = "")]
    unit: String,
    #[command(flatten)]
    kayenta: KayentaArgs,
}

/// Kayenta metric settings (`analysisConfigurations.canary.*`), for
/// `--test kayenta`.
#[derive(clap::Args)]
#[command(next_help_heading = "Kayenta (--test kayenta)")]
struct KayentaArgs {
    /// Which change fails [default: from --alternative: two-sided = either,
    /// greater = increase, less = decrease].
    #[arg(long, value_parser = ["increase", "decrease", "either"])]
    direction: Option<String>,
    /// What a NaN line (a gap) becomes.
    #[arg(long, default_value = "remove", value_parser = ["remove", "replace"])]
    nan_strategy: String,
    /// Remove IQR outliers with this factor (Kayenta's outliers.strategy=remove).
    #[arg(long, value_name = "FACTOR")]
    remove_outliers: Option<f64>,
    /// Effect size measure gating High/Low.
    #[arg(long, default_value = "meanRatio", value_parser = ["meanRatio", "cles"])]
    effect_size: String,
    /// Smallest effect labelled High [default: 1, cles 0.5].
    #[arg(long)]
    allowed_increase: Option<f64>,
    /// Largest effect labelled Low [default: 1, cles 0.5].
    #[arg(long)]
    allowed_decrease: Option<f64>,
    /// Smallest effect for a critical High [default: 1, cles 0.5].
    #[arg(long)]
    critical_increase: Option<f64>,
    /// Largest effect for a critical Low [default: 1, cles 0.5].
    #[arg(long)]
    critical_decrease: Option<f64>,
    /// The metric is critical.
    #[arg(long)]
    critical: bool,
    /// Missing data fails the metric.
    #[arg(long)]
    must_have_data: bool,
    /// Fraction of |estimate| the interval must clear.
    #[arg(long, default_value_t = 0.25)]
    tolerance: f64,
    /// Judge a whole Kayenta canary config (JSON) against a metric set
    /// pair list (JSON) and print Kayenta's judge result.
    #[arg(long, requires = "metric_pairs", conflicts_with_all = ["baseline", "canary"])]
    canary_config: Option<PathBuf>,
    /// The metric set pair list for --canary-config.
    #[arg(long)]
    metric_pairs: Option<PathBuf>,
    /// Pass threshold of the canary score (with --canary-config).
    #[arg(long, default_value_t = 95.0)]
    pass: f64,
    /// Marginal threshold of the canary score (with --canary-config).
    #[arg(long, default_value_t = 75.0)]
    marginal: f64,
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
    SequentialBand,
    Kayenta,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// A healthy canary: the run passes and the rollout is promoted.
    #[arg(long, conflicts_with = "scenario")]
    healthy: bool,
    /// What happens to the canary.
    #[arg(long, value_enum, default_value_t = augur::demo::Scenario::Regression)]
    scenario: augur::demo::Scenario,
    /// Seed of the traffic generator.
    #[arg(long, default_value_t = 2)]
    seed: u64,
    /// Analysis interval (scrapes run four times as often); shorter
    /// compresses time.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    interval: std::time::Duration,
    /// Healthy time after the run starts, before the regression.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    healthy_for: std::time::Duration,
    /// Intervals a passing run needs.
    #[arg(long, default_value_t = 12)]
    count: u32,
    /// Give up (exit 1) without a decision by then.
    #[arg(long, default_value = "55s", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// Print only the outcome, as one JSON document.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    augur::duration::parse(s).map_err(|e| e.to_string())
}

/// The multi-threaded runtime the daemon and the demo run on.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Queries evaluate recursively on blocking threads; the parser
        // bounds their depth, this leaves a wide margin (tokio: 2 MiB).
        .thread_stack_size(8 << 20)
        .build()
        .map_err(|e| {
            eprintln!("augur: cannot start the runtime: {e}");
            ExitCode::from(1)
        })
}

fn demo(args: &DemoArgs) -> ExitCode {
    use augur::demo::{Options, Scenario};
    let scenario = if args.healthy {
        Scenario::Healthy
    } else {
        args.scenario
    };
    let opts = Options {
        scenario,
        seed: args.seed,
        interval: args.interval,
        healthy_for: args.healthy_for,
        count: args.count,
        timeout: args.timeout,
        live: !args.json,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut out = std::io::stdout();
    match rt.block_on(augur::demo::run(opts, &mut out)) {
        Ok(o) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&o).unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("augur demo: {e:#}");
            ExitCode::from(1)
        }
    }
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
                        "{}: ok ({} scrape configs, {} targets, {} rule files, {} analysis templates)",
                        f.display(),
                        cfg.scrape_configs.len(),
                        cfg.scrape_configs
                            .iter()
                            .map(|j| j.targets.len())
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
        Command::Demo(args) => {
            // The daemon's own logs would drown the story; errors only
            // unless asked.
            init_logging(
                cli.log_format,
                Some(cli.log_level.as_deref().unwrap_or("error")),
            );
            demo(&args)
        }
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
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let opts = RunOptions {
                config,
                listen,
                state_dir,
            };
            let outcome = rt.block_on(app::run(opts));
            // Work still running on blocking threads (a query past its
            // cancellation check) must not hold the exit: the state is
            // already written.
            rt.shutdown_timeout(std::time::Duration::from_secs(3));
            match outcome {
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
    if let Some(config) = &args.kayenta.canary_config {
        return judge_kayenta_files(args, config);
    }
    let (Some(baseline), Some(canary)) = (args.baseline.as_deref(), args.canary.as_deref()) else {
        eprintln!("augur judge: --baseline and --canary are required");
        return ExitCode::from(2);
    };
    let kind = match args.test {
        JudgeTest::MannWhitney => TestKind::MannWhitney,
        JudgeTest::Welch => TestKind::Welch,
        JudgeTest::Ks => TestKind::Ks,
        JudgeTest::Proportions => TestKind::Proportions,
        JudgeTest::Fisher => TestKind::Fisher,
        JudgeTest::SequentialCounts => TestKind::SequentialCounts,
        JudgeTest::SequentialT => TestKind::SequentialT,
        JudgeTest::SequentialBand => TestKind::SequentialBand,
        JudgeTest::Kayenta => TestKind::Kayenta,
    };
    let default_confidence = if kind == TestKind::Kayenta {
        0.98
    } else {
        0.95
    };
    let opts = judge::Options {
        alt: augur::stats::Alternative::parse(&args.alternative)
            .expect("clap restricts the values"),
        confidence: args.confidence.unwrap_or(default_confidence),
        continuity: !args.no_continuity,
        prior: args.prior,
        alpha: args.alpha,
        batch: args.batch,
        per_interval: args.per_interval,
        log: args.log,
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
    let read = |p: &str, gaps: bool| {
        std::fs::read_to_string(p)
            .map_err(|e| format!("{p}: {e}"))
            .and_then(|text| {
                let path = Path::new(p);
                if gaps {
                    judge::parse_series(path, &text)
                } else {
                    judge::parse_sample(path, &text)
                }
                .map_err(|e| e.to_string())
            })
    };
    if kind == TestKind::Kayenta {
        let cfg = match kayenta_metric_config(args, opts.alt) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("augur judge: {e}");
                return ExitCode::from(2);
            }
        };
        let classifier = augur::stats::kayenta::Classifier {
            tolerance: args.kayenta.tolerance,
            confidence: opts.confidence,
        };
        let result = match (read(baseline, true), read(canary, true)) {
            (Ok(b), Ok(c)) => Ok(judge::judge_kayenta(&b, &c, &cfg, &classifier)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        return print_report(args, result);
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
        match (read(baseline, false), read(canary, false)) {
            (Ok(b), Ok(c)) => judge::judge_samples(kind, &b, &c, &opts).map_err(|e| e.to_string()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    };
    print_report(args, result)
}

fn print_report(args: &JudgeArgs, result: Result<augur::stats::judge::Report, String>) -> ExitCode {
    match result {
        Ok(mut report) => {
            report.summary = report.sentence(&args.name, &args.unit);
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

/// The Kayenta metric settings from the command line.
fn kayenta_metric_config(
    args: &JudgeArgs,
    alt: augur::stats::Alternative,
) -> Result<augur::stats::kayenta::MetricConfig, String> {
    use augur::stats::kayenta::{Direction, EffectMeasure, MetricConfig, NanStrategy};
    let k = &args.kayenta;
    let name = if args.name.is_empty() {
        "metric"
    } else {
        &args.name
    };
    let mut cfg = MetricConfig::new(name, vec!["default".to_string()]);
    cfg.direction = match (k.direction.as_deref(), alt) {
        (Some(d), _) => Direction::parse_lenient(d),
        (None, augur::stats::Alternative::Greater) => Direction::Increase,
        (None, augur::stats::Alternative::Less) => Direction::Decrease,
        (None, augur::stats::Alternative::TwoSided) => Direction::Either,
    };
    cfg.nan_strategy = NanStrategy::parse_lenient(&k.nan_strategy);
    if let Some(f) = k.remove_outliers {
        if !(f > 0.0 && f.is_finite()) {
            return Err(format!(
                "--remove-outliers: expected a positive factor, found {f}"
            ));
        }
        cfg.outlier_factor = Some(f);
    }
    cfg.measure = EffectMeasure::parse_lenient(&k.effect_size);
    let d = cfg.measure.neutral();
    cfg.allowed_increase = k.allowed_increase.unwrap_or(d);
    cfg.allowed_decrease = k.allowed_decrease.unwrap_or(d);
    cfg.critical_increase = k.critical_increase.unwrap_or(d);
    cfg.critical_decrease = k.critical_decrease.unwrap_or(d);
    cfg.critical = k.critical;
    cfg.must_have_data = k.must_have_data;
    if !(k.tolerance >= 0.0 && k.tolerance.is_finite()) {
        return Err(format!(
            "--tolerance: expected a non-negative fraction, found {}",
            k.tolerance
        ));
    }
    Ok(cfg)
}

/// `augur judge --canary-config C --metric-pairs P`: Kayenta's judge result.
fn judge_kayenta_files(args: &JudgeArgs, config: &Path) -> ExitCode {
    use augur::analysis::kayenta;
    let k = &args.kayenta;
    let Some(pairs) = k.metric_pairs.as_deref() else {
        eprintln!("augur judge: --canary-config needs --metric-pairs");
        return ExitCode::from(2);
    };
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let run = || -> Result<serde_json::Value, String> {
        let cfg = kayenta::parse_canary_config(&config.display().to_string(), &read(config)?)
            .map_err(|e| e.to_string())?;
        let pairs = kayenta::parse_metric_pairs(&pairs.display().to_string(), &read(pairs)?)
            .map_err(|e| e.to_string())?;
        let results = kayenta::judge_pairs(&cfg, &pairs)?;
        Ok(kayenta::judge_result(
            &cfg, &pairs, &results, k.pass, k.marginal,
        ))
    };
    match run() {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).expect("JSON serialises")
            );
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
        None => augur::clock::now_ms(),
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
