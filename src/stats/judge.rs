//! One-shot comparison of two samples (`augur judge`): input parsing and the report.

use super::{Alternative, Counts, StatsError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Which test `augur judge` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

impl TestKind {
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
    /// difference or error-rate difference; the odds ratio for Fisher.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
    /// Lower bound of the two-sided confidence interval of the estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_low: Option<f64>,
    /// Upper bound of the two-sided confidence interval of the estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_high: Option<f64>,
    /// Baseline observations (values, or total events for counts).
    pub n_baseline: u64,
    /// Canary observations.
    pub n_canary: u64,
}

/// Parses a sample file's text: one number per line; blank lines and `#`
/// comments are skipped. `path` only names the file in errors (the module
/// stays free of I/O).
pub fn parse_sample(path: &Path, text: &str) -> Result<Vec<f64>, JudgeError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.parse::<f64>() {
            Ok(v) if v.is_finite() => out.push(v),
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
    /// Values per arm between looks of the sequential t-test.
    pub batch: usize,
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
            let batch = opts.batch.max(1);
            let n = baseline.len().min(canary.len());
            let mut ends: Vec<(usize, usize)> = (1..=n / batch)
                .map(|k| (k * batch, k * batch))
                .filter(|&(b, c)| b >= 2 && c >= 2)
                .collect();
            if ends.last() != Some(&(baseline.len(), canary.len())) {
                ends.push((baseline.len(), canary.len()));
            }
            let mut looks = Vec::with_capacity(ends.len());
            let mut stats_at = Vec::with_capacity(ends.len());
            for &(nb, nc) in &ends {
                let (t, ln_e) =
                    super::sequential::av_t_ln_e(&baseline[..nb], &canary[..nc], prior)?;
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
            rep.n_baseline = nb as u64;
            rep.n_canary = nc as u64;
            rep
        }
        TestKind::Proportions | TestKind::Fisher | TestKind::SequentialCounts => {
            unreachable!("counts tests go through judge_counts")
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
            for (b, c) in baseline_looks.iter().zip(canary_looks) {
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
        }
        _ => rep.estimate = Some(r.statistic),
    }
    Ok(rep)
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
            n_baseline,
            n_canary,
        }
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
        s += &format!(
            "n_baseline   {}\nn_canary     {}\n",
            self.n_baseline, self.n_canary
        );
        s
    }
}
