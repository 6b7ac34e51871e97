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

/// Runs `kind` on two samples.
pub fn judge_samples(
    kind: TestKind,
    baseline: &[f64],
    canary: &[f64],
    alt: Alternative,
    confidence: f64,
    continuity: bool,
    prior: f64,
) -> Result<Report, JudgeError> {
    let report = |r: super::TestResult| Report {
        test: kind.as_str(),
        alternative: alt.as_str(),
        statistic: r.statistic,
        p_value: r.p_value,
        ln_e: None,
        df: r.df,
        estimate: None,
        ci_low: None,
        ci_high: None,
        n_baseline: baseline.len() as u64,
        n_canary: canary.len() as u64,
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
            let (t, ln_e) = super::sequential::av_t_ln_e(baseline, canary, prior)?;
            let mut rep = report(super::TestResult {
                statistic: t,
                p_value: (-ln_e).exp().min(1.0),
                df: None,
            });
            rep.ln_e = Some(ln_e);
            rep.estimate = Some(mean(canary) - mean(baseline));
            rep
        }
        TestKind::Proportions | TestKind::Fisher | TestKind::SequentialCounts => {
            unreachable!("counts tests go through judge_counts")
        }
    })
}

/// Runs `kind` (proportions, Fisher or the sequential count test) on error
/// counts. `prior` is the sequential test's prior concentration.
pub fn judge_counts(
    kind: TestKind,
    baseline: Counts,
    canary: Counts,
    alt: Alternative,
    confidence: f64,
    prior: f64,
) -> Result<Report, JudgeError> {
    let r = match kind {
        TestKind::Fisher => super::fisher_exact(baseline, canary, alt)?,
        TestKind::SequentialCounts => {
            super::check_counts("baseline", baseline)?;
            super::check_counts("canary", canary)?;
            let rho = canary.total as f64 / (baseline.total + canary.total) as f64;
            let ln_e = match alt {
                Alternative::TwoSided => super::sequential::count_ln_e(
                    baseline.errors,
                    canary.errors,
                    rho,
                    prior,
                    false,
                )?,
                Alternative::Greater => {
                    super::sequential::count_ln_e(baseline.errors, canary.errors, rho, prior, true)?
                }
                // "Canary better" is "baseline worse" with the arms swapped.
                Alternative::Less => super::sequential::count_ln_e(
                    canary.errors,
                    baseline.errors,
                    1.0 - rho,
                    prior,
                    true,
                )?,
            };
            super::TestResult {
                statistic: ln_e,
                p_value: (-ln_e).exp().min(1.0),
                df: None,
            }
        }
        _ => super::two_proportions(baseline, canary, alt)?,
    };
    let mut rep = Report {
        test: kind.as_str(),
        alternative: alt.as_str(),
        statistic: r.statistic,
        p_value: r.p_value,
        ln_e: None,
        df: None,
        estimate: None,
        ci_low: None,
        ci_high: None,
        n_baseline: baseline.total,
        n_canary: canary.total,
    };
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
            rep.ln_e = Some(r.statistic);
            // Canary error rate over baseline error rate.
            rep.estimate = Some(pc / pb);
        }
        _ => rep.estimate = Some(r.statistic),
    }
    Ok(rep)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

impl Report {
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
