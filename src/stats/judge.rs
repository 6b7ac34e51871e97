//! One-shot comparison of two samples (`augur judge`): input parsing and the report.

use super::{Alternative, Counts, StatsError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Which test `augur judge` runs (and an analysis metric's `test`); the
/// kebab-case names are how templates and stored runs spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestKind {
    /// Mann-Whitney U with R's location shift and interval.
    MannWhitney,
    /// Welch's t-test with a confidence interval for the mean difference.
    Welch,
    /// Two-sample Kolmogorov-Smirnov.
    Ks,
    /// Two-proportion z-test on error counts.
    Proportions,
    /// Fisher's exact test on error counts.
    Fisher,
    /// Anytime-valid Beta-binomial e-value on error counts (one look).
    SequentialCounts,
    /// Anytime-valid t-test e-value on samples (one look).
    SequentialT,
    /// Howard-Ramdas time-uniform CDF band test on sample streams.
    SequentialBand,
    /// Kayenta's NetflixACAJudge classification of one metric.
    Kayenta,
}

impl TestKind {
    /// Every test, in the order `augur judge --help` lists them.
    pub const ALL: [TestKind; 9] = [
        TestKind::MannWhitney,
        TestKind::Welch,
        TestKind::Ks,
        TestKind::Proportions,
        TestKind::Fisher,
        TestKind::SequentialCounts,
        TestKind::SequentialT,
        TestKind::SequentialBand,
        TestKind::Kayenta,
    ];

    /// The test spelled `name`, if any.
    pub fn from_name(name: &str) -> Option<TestKind> {
        TestKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TestKind::MannWhitney => "mann-whitney",
            TestKind::Welch => "welch",
            TestKind::Ks => "ks",
            TestKind::Proportions => "proportions",
            TestKind::Fisher => "fisher",
            TestKind::SequentialCounts => "sequential-counts",
            TestKind::SequentialT => "sequential-t",
            TestKind::SequentialBand => "sequential-band",
            TestKind::Kayenta => "kayenta",
        }
    }

    /// Whether the test takes `errors/total` counts instead of sample files.
    pub fn takes_counts(self) -> bool {
        matches!(
            self,
            TestKind::Proportions | TestKind::Fisher | TestKind::SequentialCounts
        )
    }
}

/// Why a comparison could not be made.
#[derive(Debug, Error)]
pub enum JudgeError {
    /// A line of a sample file is not a number.
    #[error("{path}:{line}: expected one number per line, found {found:?}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The text found.
        found: String,
    },
    /// A line of a counts file is not `errors total`.
    #[error("{path}:{line}: {what}, found {found:?}")]
    BadCountLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was expected.
        what: &'static str,
        /// The text found.
        found: String,
    },
    /// A file holds no data lines.
    #[error("{path}: no data (expected at least one line)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Sequential count files disagree on the number of intervals.
    #[error("the baseline has {baseline} intervals but the canary has {canary}; each line is one interval in both files")]
    Intervals {
        /// Baseline lines.
        baseline: usize,
        /// Canary lines.
        canary: usize,
    },
    /// A counts argument is not `errors/total`.
    #[error("{which}: expected counts as ERRORS/TOTAL (e.g. 12/1000), found {found:?}")]
    BadCounts {
        /// `baseline` or `canary`.
        which: &'static str,
        /// The text found.
        found: String,
    },
    /// The test itself rejected the input.
    #[error(transparent)]
    Stats(#[from] StatsError),
}

/// The outcome of `augur judge`, printed as text or JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Test name.
    pub test: &'static str,
    /// Alternative hypothesis.
    pub alternative: &'static str,
    /// Test statistic.
    pub statistic: f64,
    /// p-value.
    pub p_value: f64,
    /// Natural log of the e-value (sequential tests only); the p-value of
    /// a single look is then min(1, 1/E).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ln_e: Option<f64>,
    /// The e-value (sequential tests only; null when it overflows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_value: Option<f64>,
    /// `abort` once the e-value reached 1/alpha, else `continue`
    /// (sequential tests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
    /// The 0-based look at which the e-value first reached 1/alpha, or null
    /// (sequential tests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Option<u64>>,
    /// Looks evaluated (sequential tests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub looks: Option<u64>,
    /// Degrees of freedom (Welch only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub df: Option<f64>,
    /// Effect estimate, canary minus baseline: Hodges-Lehmann shift, mean
    /// difference or error-rate difference; the odds ratio for Fisher, the
    /// rate ratio for sequential counts, the ratio of geometric means for
    /// `sequential-t --log`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
    /// Lower bound of the two-sided confidence interval of the estimate
    /// (for sequential tests: the confidence sequence at level 1 − alpha).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_low: Option<f64>,
    /// Upper bound of the two-sided confidence interval of the estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_high: Option<f64>,
    /// Kayenta's label: Pass, High, Low, Nodata, NodataFailMetric, Error
    /// (kayenta only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<&'static str>,
    /// Kayenta's reason for the label, or null (kayenta only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification_reason: Option<Option<String>>,
    /// Whether the label is a critical failure (kayenta only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical: Option<bool>,
    /// mean(canary)/mean(baseline), Kayenta's `ratio` (kayenta only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The score Kayenta gives a canary judged on this metric alone
    /// (kayenta only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// What `baseline_value`/`canary_value` are: `median`, `mean` or
    /// `error rate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub center: Option<&'static str>,
    /// The baseline's median, mean or error rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_value: Option<f64>,
    /// The canary's median, mean or error rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_value: Option<f64>,
    /// One sentence a person can read, e.g. "canary p99 latency median
    /// 212 ms vs baseline 148 ms, +43% [+31%, +55%], p < 0.001".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// Baseline observations (values, or total events for counts).
    pub n_baseline: u64,
    /// Canary observations.
    pub n_canary: u64,
}

/// Parses a sample file's text: one number per line; blank lines and `#`
/// comments are skipped. `path` only names the file in errors (the module
/// stays free of I/O).
pub fn parse_sample(path: &Path, text: &str) -> Result<Vec<f64>, JudgeError> {
    parse_values(path, text, false)
}

/// Like [`parse_sample`], but `NaN` lines are gaps kept as NaN (Kayenta's
/// metric series have them) and an empty file is an empty series.
pub fn parse_series(path: &Path, text: &str) -> Result<Vec<f64>, JudgeError> {
    parse_values(path, text, true)
}

fn parse_values(path: &Path, text: &str, gaps: bool) -> Result<Vec<f64>, JudgeError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.parse::<f64>() {
            Ok(v) if v.is_finite() || (gaps && v.is_nan()) => out.push(v),
            _ => {
                return Err(JudgeError::BadValue {
                    path: path.to_path_buf(),
                    line: i + 1,
                    found: line.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// Parses `errors/total`.
pub fn parse_counts(which: &'static str, s: &str) -> Result<Counts, JudgeError> {
    let bad = || JudgeError::BadCounts {
        which,
        found: s.to_string(),
    };
    let (e, t) = s.split_once('/').ok_or_else(bad)?;
    let errors = e.trim().parse::<u64>().map_err(|_| bad())?;
    let total = t.trim().parse::<u64>().map_err(|_| bad())?;
    Ok(Counts { errors, total })
}

/// Parses a counts file: one `errors total` line per interval, cumulative
/// (blank lines and `#` comments skipped). `ERRORS/TOTAL` is accepted too.
pub fn parse_count_lines(path: &Path, text: &str) -> Result<Vec<Counts>, JudgeError> {
    let mut out: Vec<Counts> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what| JudgeError::BadCountLine {
            path: path.to_path_buf(),
            line: i + 1,
            what,
            found: line.to_string(),
        };
        let fields: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '/')
            .filter(|f| !f.is_empty())
            .collect();
        let [e, t] = fields[..] else {
            return Err(bad("expected `errors total`"));
        };
        let (Ok(errors), Ok(total)) = (e.parse::<u64>(), t.parse::<u64>()) else {
            return Err(bad("expected two non-negative integers `errors total`"));
        };
        if errors > total {
            return Err(bad("errors exceed total"));
        }
        if let Some(prev) = out.last() {
            if errors < prev.errors || total < prev.total {
                return Err(bad("counts are cumulative and must not decrease"));
            }
        }
        out.push(Counts { errors, total });
    }
    if out.is_empty() {
        return Err(JudgeError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Settings shared by every test of `augur judge`.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Alternative hypothesis.
    pub alt: Alternative,
    /// Confidence level of reported intervals.
    pub confidence: f64,
    /// Mann-Whitney continuity correction.
    pub continuity: bool,
    /// Sequential tests' prior (count concentration k, t-test precision phi).
    pub prior: f64,
    /// Sequential tests' level: abort once E >= 1/alpha.
    pub alpha: f64,
    /// Values per arm between looks of the sequential sample tests.
    pub batch: usize,
    /// Sequential counts: each interval has its own traffic split (the
    /// drifting-split e-process) instead of one cumulative split.
    pub per_interval: bool,
    /// `sequential-t`: test log values (latency is closer to log-normal
    /// than normal, and the t-test's validity rests on normality).
    pub log: bool,
}

/// Prefix lengths seen at each look: every `batch` values per arm (at
/// least `min` each), plus a last look at everything.
fn look_ends(nb: usize, nc: usize, batch: usize, min: usize) -> Vec<(usize, usize)> {
    let batch = batch.max(1);
    let n = nb.min(nc);
    let mut ends: Vec<(usize, usize)> = (1..=n / batch)
        .map(|k| (k * batch, k * batch))
        .filter(|&(b, c)| b >= min && c >= min)
        .collect();
    if ends.last() != Some(&(nb, nc)) {
        ends.push((nb, nc));
    }
    ends
}

/// Folds a sequence of per-look log e-values into the sequential fields of
/// a report: values at the stopping look if the test stopped, else at the
/// last look; p is the running minimum of 1/E.
fn sequential_fields(rep: &mut Report, looks: &[f64], alpha: f64) -> usize {
    let threshold = (1.0 / alpha).ln();
    let mut p = super::sequential::AnytimeP::default();
    let mut at = looks.len() - 1;
    let mut stopped = None;
    for (i, &ln_e) in looks.iter().enumerate() {
        p.observe(ln_e);
        if ln_e >= threshold {
            stopped = Some(i as u64);
            at = i;
            break;
        }
    }
    let ln_e = looks[at];
    rep.ln_e = Some(ln_e);
    rep.e_value = Some(ln_e.exp());
    rep.p_value = p.p();
    rep.decision = Some(if stopped.is_some() {
        "abort"
    } else {
        "continue"
    });
    rep.stopped_at = Some(stopped);
    rep.looks = Some(looks.len() as u64);
    at
}

/// Runs `kind` on two samples.
pub fn judge_samples(
    kind: TestKind,
    baseline: &[f64],
    canary: &[f64],
    opts: &Options,
) -> Result<Report, JudgeError> {
    let mut rep = judge_samples_inner(kind, baseline, canary, opts)?;
    if rep.center.is_none() {
        let (center, f): (&'static str, fn(&[f64]) -> f64) = match kind {
            TestKind::Welch => ("mean", mean),
            _ => ("median", median),
        };
        rep.center = Some(center);
        rep.baseline_value = Some(f(baseline));
        rep.canary_value = Some(f(canary));
    }
    rep.summary = rep.sentence("", "");
    Ok(rep)
}

fn judge_samples_inner(
    kind: TestKind,
    baseline: &[f64],
    canary: &[f64],
    opts: &Options,
) -> Result<Report, JudgeError> {
    let Options {
        alt,
        confidence,
        continuity,
        prior,
        ..
    } = *opts;
    let report = |r: super::TestResult| {
        Report::new(kind, alt, &r, baseline.len() as u64, canary.len() as u64)
    };
    Ok(match kind {
        TestKind::MannWhitney => {
            let mut rep = report(super::mann_whitney(baseline, canary, alt, continuity)?);
            let hl = super::wilcox::shift(baseline, canary, alt, confidence, continuity)?;
            rep.estimate = Some(hl.estimate);
            rep.ci_low = Some(hl.low);
            rep.ci_high = Some(hl.high);
            rep
        }
        TestKind::Welch => {
            let r = super::welch(baseline, canary, alt)?;
            let df = r.df.unwrap_or(f64::NAN);
            let diff = mean(canary) - mean(baseline);
            // t = diff / se, so se falls out of the statistic.
            let se = if r.statistic != 0.0 {
                diff / r.statistic
            } else {
                f64::NAN
            };
            let mut rep = report(r);
            rep.estimate = Some(diff);
            if se.is_finite() {
                let q = super::t_ppf(1.0 - (1.0 - confidence) / 2.0, df);
                rep.ci_low = Some(diff - q * se);
                rep.ci_high = Some(diff + q * se);
            }
            rep
        }
        TestKind::Ks => report(super::kolmogorov_smirnov(baseline, canary)?),
        TestKind::SequentialT => {
            // Look k sees the first k·batch values of each arm (values in
            // arrival order), plus a last look at everything.
            let ends = look_ends(baseline.len(), canary.len(), opts.batch, 2);
            let logged = |xs: &[f64], which: &'static str| -> Result<Vec<f64>, StatsError> {
                if !opts.log {
                    return Ok(xs.to_vec());
                }
                match xs.iter().find(|&&x| x <= 0.0) {
                    Some(&value) => Err(StatsError::NotPositive { which, value }),
                    None => Ok(xs.iter().map(|x| x.ln()).collect()),
                }
            };
            let (lb, lc) = (logged(baseline, "baseline")?, logged(canary, "canary")?);
            let mut looks = Vec::with_capacity(ends.len());
            let mut stats_at = Vec::with_capacity(ends.len());
            for &(nb, nc) in &ends {
                let (t, ln_e) = super::sequential::av_t_ln_e(&lb[..nb], &lc[..nc], prior)?;
                looks.push(ln_e);
                stats_at.push(t);
            }
            let mut rep = report(super::TestResult {
                statistic: 0.0,
                p_value: 1.0,
                df: None,
            });
            rep.alternative = Alternative::TwoSided.as_str();
            let at = sequential_fields(&mut rep, &looks, opts.alpha);
            let (nb, nc) = ends[at];
            rep.statistic = stats_at[at];
            rep.estimate = Some(mean(&canary[..nc]) - mean(&baseline[..nb]));
            // The confidence sequence at the same look and level: mean
            // difference ± t*·se (on log values: the ratio of geometric
            // means, reported as canary/baseline).
            let (ma, va) = super::mean_var(&lb[..nb]);
            let (mb, vb) = super::mean_var(&lc[..nc]);
            let (fa, fb) = (nb as f64, nc as f64);
            let pooled = ((fa - 1.0) * va + (fb - 1.0) * vb) / (fa + fb - 2.0);
            let se = (pooled * (1.0 / fa + 1.0 / fb)).sqrt();
            let half = super::sequential::av_t_cs_t_star(fa, fb, prior, opts.alpha) * se;
            let d = mb - ma;
            if opts.log {
                rep.estimate = Some(d.exp());
                rep.ci_low = Some((d - half).exp());
                rep.ci_high = Some((d + half).exp());
                rep.center = Some("geometric mean");
                rep.baseline_value = Some(ma.exp());
                rep.canary_value = Some(mb.exp());
            } else {
                rep.ci_low = Some(d - half);
                rep.ci_high = Some(d + half);
                rep.center = Some("mean");
                rep.baseline_value = Some(mean(&baseline[..nb]));
                rep.canary_value = Some(mean(&canary[..nc]));
            }
            rep.n_baseline = nb as u64;
            rep.n_canary = nc as u64;
            rep
        }
        TestKind::SequentialBand => {
            super::check("baseline", baseline, 1)?;
            super::check("canary", canary, 1)?;
            let ends = look_ends(baseline.len(), canary.len(), opts.batch, 1);
            let greater = alt == Alternative::Greater;
            let mut p = 1.0f64;
            let mut stopped = None;
            let mut at = ends.len() - 1;
            let mut look = None;
            for (i, &(nb, nc)) in ends.iter().enumerate() {
                let (fb, fc) = super::sequential::sample_cdfs(&baseline[..nb], &canary[..nc]);
                let l = super::sequential::band_look(
                    &fb, &fc, nb as f64, nc as f64, opts.alpha, 1.0, greater,
                )?;
                p = p.min(l.p_value);
                look = Some(l);
                if l.reject {
                    stopped = Some(i as u64);
                    at = i;
                    break;
                }
            }
            let l = look.expect("there is always a last look");
            let (nb, nc) = ends[at];
            let mut rep = report(super::TestResult {
                statistic: l.gap,
                p_value: p,
                df: None,
            });
            rep.alternative = if greater { "greater" } else { "two-sided" };
            rep.decision = Some(if stopped.is_some() {
                "abort"
            } else {
                "continue"
            });
            rep.stopped_at = Some(stopped);
            rep.looks = Some(ends.len() as u64);
            rep.n_baseline = nb as u64;
            rep.n_canary = nc as u64;
            rep.center = Some("median");
            rep.baseline_value = Some(median(&baseline[..nb]));
            rep.canary_value = Some(median(&canary[..nc]));
            rep
        }
        TestKind::Proportions | TestKind::Fisher | TestKind::SequentialCounts => {
            unreachable!("counts tests go through judge_counts")
        }
        TestKind::Kayenta => {
            let cfg = super::kayenta::MetricConfig::new("metric", vec!["default".into()]);
            judge_kayenta(
                baseline,
                canary,
                &cfg,
                &super::kayenta::Classifier::default(),
            )
        }
    })
}

/// Runs `kind` (proportions, Fisher or the sequential count test) on error
/// counts, one cumulative entry per interval; the fixed-horizon tests use
/// the last interval.
pub fn judge_counts(
    kind: TestKind,
    baseline_looks: &[Counts],
    canary_looks: &[Counts],
    opts: &Options,
) -> Result<Report, JudgeError> {
    let Options {
        alt,
        confidence,
        prior,
        ..
    } = *opts;
    let (Some(&baseline), Some(&canary)) = (baseline_looks.last(), canary_looks.last()) else {
        return Err(JudgeError::Intervals {
            baseline: baseline_looks.len(),
            canary: canary_looks.len(),
        });
    };
    let mut seq_looks = Vec::new();
    let r = match kind {
        TestKind::Fisher => super::fisher_exact(baseline, canary, alt)?,
        TestKind::SequentialCounts => {
            if baseline_looks.len() != canary_looks.len() {
                return Err(JudgeError::Intervals {
                    baseline: baseline_looks.len(),
                    canary: canary_looks.len(),
                });
            }
            let mut drift = super::sequential::DriftingCounts::new(alt != Alternative::TwoSided);
            let mut prev = (Counts::default(), Counts::default());
            for (b, c) in baseline_looks.iter().zip(canary_looks) {
                if opts.per_interval {
                    // Increments of the cumulative lines; "less" swaps arms.
                    let inc = |x: &Counts, p: &Counts| Counts {
                        errors: x.errors - p.errors,
                        total: x.total - p.total,
                    };
                    let (ib, ic) = (inc(b, &prev.0), inc(c, &prev.1));
                    prev = (*b, *c);
                    if alt == Alternative::Less {
                        drift.observe(ic, ib)?;
                    } else {
                        drift.observe(ib, ic)?;
                    }
                    seq_looks.push(drift.ln_e());
                    continue;
                }
                super::check_counts("baseline", *b)?;
                super::check_counts("canary", *c)?;
                // The traffic split as observed so far.
                let rho = c.total as f64 / (b.total + c.total) as f64;
                let ln_e = match alt {
                    Alternative::TwoSided => {
                        super::sequential::count_ln_e(b.errors, c.errors, rho, prior, false)?
                    }
                    Alternative::Greater => {
                        super::sequential::count_ln_e(b.errors, c.errors, rho, prior, true)?
                    }
                    // "Canary better" is "baseline worse" with the arms swapped.
                    Alternative::Less => {
                        super::sequential::count_ln_e(c.errors, b.errors, 1.0 - rho, prior, true)?
                    }
                };
                seq_looks.push(ln_e);
            }
            super::TestResult {
                statistic: 0.0,
                p_value: 1.0,
                df: None,
            }
        }
        _ => super::two_proportions(baseline, canary, alt)?,
    };
    let mut rep = Report::new(kind, alt, &r, baseline.total, canary.total);
    let pb = baseline.errors as f64 / baseline.total as f64;
    let pc = canary.errors as f64 / canary.total as f64;
    match kind {
        TestKind::Proportions => {
            // Wald interval for the difference (unpooled), as statsmodels'
            // confint_proportions_2indep(method="wald").
            let se = (pb * (1.0 - pb) / baseline.total as f64
                + pc * (1.0 - pc) / canary.total as f64)
                .sqrt();
            let q = super::norm_ppf(1.0 - (1.0 - confidence) / 2.0);
            rep.estimate = Some(pc - pb);
            rep.ci_low = Some(pc - pb - q * se);
            rep.ci_high = Some(pc - pb + q * se);
        }
        TestKind::SequentialCounts => {
            let at = sequential_fields(&mut rep, &seq_looks, opts.alpha);
            let (b, c) = (baseline_looks[at], canary_looks[at]);
            rep.statistic = seq_looks[at];
            rep.n_baseline = b.total;
            rep.n_canary = c.total;
            // Canary error rate over baseline error rate at that look.
            rep.estimate =
                Some((c.errors as f64 / c.total as f64) / (b.errors as f64 / b.total as f64));
            if !opts.per_interval && b.total > 0 && c.total > 0 {
                // The rate-ratio confidence sequence at the same look and
                // level: it excludes 1 exactly when the test aborts.
                let rho = c.total as f64 / (b.total + c.total) as f64;
                let (lo, hi) =
                    super::sequential::count_cs(b.errors, c.errors, rho, prior, opts.alpha)?;
                rep.ci_low = Some(lo);
                rep.ci_high = Some(hi);
            }
        }
        _ => rep.estimate = Some(r.statistic),
    }
    let (b, c) = if kind == TestKind::SequentialCounts {
        let at = rep.looks.map_or(0, |_| {
            // The look the sequential fields describe.
            baseline_looks
                .iter()
                .position(|x| x.total == rep.n_baseline)
                .unwrap_or(baseline_looks.len() - 1)
        });
        (baseline_looks[at], canary_looks[at])
    } else {
        (baseline, canary)
    };
    rep.center = Some("error rate");
    rep.baseline_value = Some(b.errors as f64 / b.total as f64);
    rep.canary_value = Some(c.errors as f64 / c.total as f64);
    rep.summary = rep.sentence("", "");
    Ok(rep)
}

/// Kayenta's classification of one metric (`augur judge --test kayenta`):
/// the label, its reason, and the shift interval at the classifier's
/// confidence; `statistic`/`p_value` are the two-sided Mann-Whitney U and
/// p-value of the preprocessed series (Kayenta computes but never shows
/// them), NaN when no test ran.
pub fn judge_kayenta(
    baseline: &[f64],
    canary: &[f64],
    cfg: &super::kayenta::MetricConfig,
    classifier: &super::kayenta::Classifier,
) -> Report {
    use super::kayenta;
    let m = classifier.judge_metric(cfg, baseline, canary);
    let mw = super::mann_whitney(
        &m.baseline_values,
        &m.canary_values,
        Alternative::TwoSided,
        true,
    )
    .unwrap_or(super::TestResult {
        statistic: f64::NAN,
        p_value: f64::NAN,
        df: None,
    });
    let mut rep = Report::new(
        TestKind::Kayenta,
        Alternative::TwoSided,
        &mw,
        m.baseline_values.len() as u64,
        m.canary_values.len() as u64,
    );
    rep.alternative = match cfg.direction {
        kayenta::Direction::Either => "two-sided",
        kayenta::Direction::Increase => "greater",
        kayenta::Direction::Decrease => "less",
    };
    rep.estimate = m.estimate;
    if let Some((lo, hi)) = m.interval {
        rep.ci_low = Some(lo);
        rep.ci_high = Some(hi);
    }
    rep.classification = Some(m.label.as_str());
    rep.classification_reason = Some(m.reason.clone());
    rep.critical = Some(m.critical);
    rep.ratio = Some(m.ratio);
    if !m.baseline_values.is_empty() && !m.canary_values.is_empty() {
        rep.center = Some("mean");
        rep.baseline_value = Some(m.baseline.mean);
        rep.canary_value = Some(m.canary.mean);
    }
    let alone = kayenta::score(std::slice::from_ref(&m), &Default::default(), 100.0, 0.0);
    rep.score = Some(alone.score);
    rep.summary = rep.sentence(&cfg.name, "");
    rep
}

fn median(xs: &[f64]) -> f64 {
    let s = super::sorted(xs);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// `x` with three significant digits, no trailing zeros, no exponent for
/// everyday magnitudes: how readable messages print numbers.
pub fn sig(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..=9).contains(&mag) {
        return format!("{x:.2e}");
    }
    let decimals = (2 - mag).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn signed(s: String) -> String {
    if s.starts_with('-') {
        s
    } else {
        format!("+{s}")
    }
}

/// "p < 0.001" or "p = 0.0234".
pub fn p_text(p: f64) -> String {
    if p.is_nan() {
        "no p-value".to_string()
    } else if p < 0.001 {
        "p < 0.001".to_string()
    } else {
        format!("p = {}", sig(p))
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

impl Report {
    /// A report holding a test's result and sample sizes; the optional
    /// fields are filled in by the caller.
    fn new(
        kind: TestKind,
        alt: Alternative,
        r: &super::TestResult,
        n_baseline: u64,
        n_canary: u64,
    ) -> Report {
        Report {
            test: kind.as_str(),
            alternative: alt.as_str(),
            statistic: r.statistic,
            p_value: r.p_value,
            ln_e: None,
            e_value: None,
            decision: None,
            stopped_at: None,
            looks: None,
            df: r.df,
            estimate: None,
            ci_low: None,
            ci_high: None,
            classification: None,
            classification_reason: None,
            critical: None,
            ratio: None,
            score: None,
            center: None,
            baseline_value: None,
            canary_value: None,
            summary: String::new(),
            n_baseline,
            n_canary,
        }
    }

    /// The report as one sentence, e.g. "canary p99 latency median 212 ms
    /// vs baseline 148 ms, +43% [+31%, +55%], p < 0.001". `name` and `unit`
    /// may be empty.
    pub fn sentence(&self, name: &str, unit: &str) -> String {
        let named = |s: &str| {
            if name.is_empty() {
                s.to_string()
            } else {
                format!("{s} {name}")
            }
        };
        let with_unit = |x: f64| {
            if unit.is_empty() {
                sig(x)
            } else {
                format!("{} {unit}", sig(x))
            }
        };
        let rate = |x: f64| format!("{}%", sig(100.0 * x));
        let mut out = match (self.center, self.baseline_value, self.canary_value) {
            (Some("error rate"), Some(b), Some(c)) => format!(
                "{} error rate {} ({} of {}) vs baseline {} ({} of {})",
                named("canary"),
                rate(c),
                (c * self.n_canary as f64).round(),
                self.n_canary,
                rate(b),
                (b * self.n_baseline as f64).round(),
                self.n_baseline
            ),
            (Some(center), Some(b), Some(c)) => format!(
                "{} {center} {} vs baseline {}",
                named("canary"),
                with_unit(c),
                with_unit(b)
            ),
            _ => format!(
                "{}: no data (baseline {} values, canary {})",
                named("canary"),
                self.n_baseline,
                self.n_canary
            ),
        };
        let interval = match (self.ci_low, self.ci_high) {
            (Some(l), Some(h)) => Some((l, h)),
            _ => None,
        };
        match (self.test, self.estimate) {
            ("proportions", Some(d)) => {
                out += &format!(", {} pp", signed(sig(100.0 * d)));
                if let Some((l, h)) = interval {
                    out += &format!(" [{}, {}]", signed(sig(100.0 * l)), signed(sig(100.0 * h)));
                }
            }
            ("fisher", Some(or)) => out += &format!(", odds ratio {}", sig(or)),
            ("sequential-counts", Some(r)) => out += &format!(", {}x the baseline rate", sig(r)),
            ("sequential-t", Some(ratio)) if self.center == Some("geometric mean") => {
                let pct = |x: f64| format!("{}%", signed(sig(100.0 * (x - 1.0))));
                out += &format!(", {}", pct(ratio));
                if let Some((l, h)) = interval {
                    out += &format!(" [{}, {}]", pct(l), pct(h));
                }
            }
            (_, Some(est)) => {
                // Relative to the baseline when it is not zero, else absolute.
                match self.baseline_value {
                    Some(b) if b != 0.0 && b.is_finite() => {
                        let pct = |x: f64| format!("{}%", signed(sig(100.0 * x / b.abs())));
                        out += &format!(", {}", pct(est));
                        if let Some((l, h)) = interval {
                            out += &format!(" [{}, {}]", pct(l), pct(h));
                        }
                    }
                    _ => {
                        out += &format!(", {}", signed(with_unit(est)));
                        if let Some((l, h)) = interval {
                            out += &format!(" [{}, {}]", signed(sig(l)), signed(sig(h)));
                        }
                    }
                }
            }
            ("ks", None) => out += &format!(", largest CDF gap {}", sig(self.statistic)),
            _ => {}
        }
        if let Some(ln_e) = self.ln_e {
            let e = ln_e.exp();
            out += &format!(", e-value {}", sig(e));
            match (self.decision, self.stopped_at) {
                (Some("abort"), Some(Some(at))) => {
                    out += &format!(" at look {at} (anytime {}): abort", p_text(self.p_value))
                }
                _ => out += &format!(" (anytime {}): continue", p_text(self.p_value)),
            }
        } else if let Some(class) = self.classification {
            out += &format!(": Kayenta classifies {class}");
        } else {
            out += &format!(", {}", p_text(self.p_value));
        }
        out
    }

    /// Human-readable lines, one `key value` pair per line.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "test         {} ({})\nstatistic    {}\np_value      {}\n",
            self.test, self.alternative, self.statistic, self.p_value
        );
        if let Some(l) = self.ln_e {
            s += &format!("ln_e         {l}\n");
        }
        if let Some(df) = self.df {
            s += &format!("df           {df}\n");
        }
        if let Some(e) = self.estimate {
            s += &format!("estimate     {e}\n");
        }
        if let (Some(l), Some(h)) = (self.ci_low, self.ci_high) {
            s += &format!("ci           [{l}, {h}]\n");
        }
        if let Some(c) = self.classification {
            s += &format!("class        {c}\n");
        }
        s += &format!(
            "n_baseline   {}\nn_canary     {}\n",
            self.n_baseline, self.n_canary
        );
        if !self.summary.is_empty() {
            s += &format!("summary      {}\n", self.summary);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::TestKind;

    /// The CLI parses with `as_str`/`from_name` and templates and SQLite
    /// with serde: the two spellings must be one.
    #[test]
    fn command_line_and_stored_spellings_agree() {
        for k in TestKind::ALL {
            let stored = serde_json::to_value(k).unwrap();
            assert_eq!(stored, k.as_str());
            assert_eq!(TestKind::from_name(k.as_str()), Some(k));
            assert_eq!(serde_json::from_value::<TestKind>(stored).unwrap(), k);
        }
        assert_eq!(TestKind::from_name("mann-whitney-v9"), None);
    }
}
