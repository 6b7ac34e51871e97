//! `augur judge`: one statistical comparison, or Kayenta's judge on a
//! canary config and metric set pairs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use augur::stats::judge::TestKind;

#[derive(clap::Args)]
pub struct JudgeArgs {
    /// The test to run.
    #[arg(long, default_value = "mann-whitney", value_parser = test_kind_parser())]
    test: TestKind,
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
pub struct KayentaArgs {
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

/// Parses `--test` against the stats module's own names, so the CLI
/// cannot drift from what templates accept.
fn test_kind_parser() -> impl clap::builder::TypedValueParser<Value = TestKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(TestKind::ALL.map(TestKind::as_str))
        .map(|s| TestKind::from_name(&s).expect("a listed name"))
}

pub fn judge(args: &JudgeArgs) -> ExitCode {
    use augur::stats::judge;
    use augur::stats::Counts;
    if let Some(config) = &args.kayenta.canary_config {
        return judge_kayenta_files(args, config);
    }
    let (Some(baseline), Some(canary)) = (args.baseline.as_deref(), args.canary.as_deref()) else {
        eprintln!("augur judge: --baseline and --canary are required");
        return ExitCode::from(2);
    };
    let kind = args.test;
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

pub fn print_report(
    args: &JudgeArgs,
    result: Result<augur::stats::judge::Report, String>,
) -> ExitCode {
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
pub fn kayenta_metric_config(
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
pub fn judge_kayenta_files(args: &JudgeArgs, config: &Path) -> ExitCode {
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
