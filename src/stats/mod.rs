//! Classical two-sample tests comparing a baseline against a canary.
//!
//! Orientation is fixed everywhere: samples are `(baseline, canary)` and the
//! [`Alternative::Greater`] hypothesis means "the canary is larger" (higher
//! latency, higher error rate). Results are checked against scipy fixtures in
//! `tests/stats/scipy_fixtures.json` (generator: `tests/stats/gen_fixtures.py`).
//!
//! Distribution functions come from `statrs`; the test statistics are written
//! here because no maintained crate offers tie-corrected Mann-Whitney, Welch
//! with fractional degrees of freedom and Fisher's exact test with scipy's
//! two-sided rule in one place.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use thiserror::Error;

pub mod judge;
pub mod kayenta;
pub mod sequential;
pub mod wilcox;

/// Which departure from "no difference" a test looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alternative {
    /// The canary differs in either direction.
    TwoSided,
    /// The canary is larger than the baseline.
    Greater,
    /// The canary is smaller than the baseline.
    Less,
}

impl Alternative {
    /// Parses scipy's spelling: `two-sided`, `greater`, `less`.
    pub fn parse(s: &str) -> Option<Alternative> {
        match s {
            "two-sided" | "two_sided" => Some(Alternative::TwoSided),
            "greater" => Some(Alternative::Greater),
            "less" => Some(Alternative::Less),
            _ => None,
        }
    }

    /// The scipy spelling of this alternative.
    pub fn as_str(self) -> &'static str {
        match self {
            Alternative::TwoSided => "two-sided",
            Alternative::Greater => "greater",
            Alternative::Less => "less",
        }
    }
}

/// Why a test could not be computed.
#[derive(Debug, Error, PartialEq)]
pub enum StatsError {
    /// A sample is too small for the test.
    #[error("{which} sample has {got} values; the test needs at least {need}")]
    TooFew {
        /// `baseline` or `canary`.
        which: &'static str,
        /// Values supplied.
        got: usize,
        /// Values required.
        need: usize,
    },
    /// A log-scale test got a value that has no logarithm.
    #[error("{which} sample holds {value}; a log-scale test needs values above 0")]
    NotPositive {
        /// `baseline` or `canary`.
        which: &'static str,
        /// The offending value.
        value: f64,
    },
    /// A sample holds NaN or an infinity.
    #[error("{which} sample holds a non-finite value ({value})")]
    NonFinite {
        /// `baseline` or `canary`.
        which: &'static str,
        /// The offending value.
        value: f64,
    },
    /// Counts are inconsistent (errors above total, empty total).
    #[error("{which} counts are invalid: {errors} errors out of {total} requests")]
    BadCounts {
        /// `baseline` or `canary`.
        which: &'static str,
        /// Failed events.
        errors: u64,
        /// All events.
        total: u64,
    },
    /// Both samples are constant and equal, or otherwise degenerate.
    #[error("the test is undefined: {0}")]
    Degenerate(&'static str),
}

/// The outcome of one test.
#[derive(Clone, Debug, PartialEq)]
pub struct TestResult {
    /// The test statistic (U of the canary, t, D or z).
    pub statistic: f64,
    /// The p-value for the requested alternative.
    pub p_value: f64,
    /// Degrees of freedom, for Welch's t-test.
    pub df: Option<f64>,
}

pub(crate) fn check(which: &'static str, xs: &[f64], need: usize) -> Result<(), StatsError> {
    if xs.len() < need {
        return Err(StatsError::TooFew {
            which,
            got: xs.len(),
            need,
        });
    }
    if let Some(&value) = xs.iter().find(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite { which, value });
    }
    Ok(())
}

fn std_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("standard normal parameters are valid")
}

/// Upper tail of the standard normal.
pub fn norm_sf(z: f64) -> f64 {
    std_normal().sf(z)
}

/// Lower tail of the standard normal.
pub fn norm_cdf(z: f64) -> f64 {
    std_normal().cdf(z)
}

/// The standard normal quantile.
pub fn norm_ppf(p: f64) -> f64 {
    std_normal().inverse_cdf(p)
}

/// Student's t quantile with `df` degrees of freedom.
pub fn t_ppf(p: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

fn z_pvalue(z: f64, alt: Alternative) -> f64 {
    match alt {
        Alternative::Greater => norm_sf(z),
        Alternative::Less => norm_cdf(z),
        Alternative::TwoSided => (2.0 * norm_sf(z.abs())).min(1.0),
    }
}

fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The canary's rank sum in the pooled sample (midranks for ties) and
/// the tie term Σ(t³ − t) over tie groups.
pub(crate) fn rank_sum(baseline: &[f64], canary: &[f64]) -> (f64, f64) {
    let mut pooled: Vec<(f64, bool)> = canary
        .iter()
        .map(|&v| (v, true))
        .chain(baseline.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_canary = 0.0;
    let mut tie_sum = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i;
        while j + 1 < pooled.len() && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        let midrank = (i + j) as f64 / 2.0 + 1.0;
        let in_canary = pooled[i..=j].iter().filter(|p| p.1).count() as f64;
        rank_sum_canary += midrank * in_canary;
        tie_sum += t * t * t - t;
        i = j + 1;
    }
    (rank_sum_canary, tie_sum)
}

/// Mann-Whitney U test, normal approximation with tie correction.
///
/// The statistic is U of the canary (scipy's `mannwhitneyu(canary, baseline)`
/// with `method="asymptotic"`).
pub fn mann_whitney(
    baseline: &[f64],
    canary: &[f64],
    alt: Alternative,
    continuity: bool,
) -> Result<TestResult, StatsError> {
    check("baseline", baseline, 1)?;
    check("canary", canary, 1)?;
    let n1 = canary.len() as f64;
    let n2 = baseline.len() as f64;
    let n = n1 + n2;
    let (rank_sum_canary, tie_sum) = rank_sum(baseline, canary);
    let u1 = rank_sum_canary - n1 * (n1 + 1.0) / 2.0;
    let u2 = n1 * n2 - u1;
    let u = match alt {
        Alternative::Greater => u1,
        Alternative::Less => u2,
        Alternative::TwoSided => u1.max(u2),
    };
    let mu = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_sum / (n * (n - 1.0)));
    if var <= 0.0 {
        return Err(StatsError::Degenerate("every value is the same"));
    }
    let mut num = u - mu;
    if continuity {
        num -= 0.5;
    }
    let z = num / var.sqrt();
    let mut p = norm_sf(z);
    if alt == Alternative::TwoSided {
        p *= 2.0;
    }
    Ok(TestResult {
        statistic: u1,
        p_value: p.clamp(0.0, 1.0),
        df: None,
    })
}

pub(crate) fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    // Two-pass with a compensation term keeps the variance exact-ish for
    // latencies with a large common offset.
    let (mut ss, mut comp) = (0.0, 0.0);
    for &x in xs {
        let d = x - mean;
        ss += d * d;
        comp += d;
    }
    (mean, (ss - comp * comp / n) / (n - 1.0))
}

/// Welch's unequal-variance t-test; the statistic is positive when the canary
/// mean is larger.
pub fn welch(baseline: &[f64], canary: &[f64], alt: Alternative) -> Result<TestResult, StatsError> {
    check("baseline", baseline, 2)?;
    check("canary", canary, 2)?;
    let (mb, vb) = mean_var(baseline);
    let (mc, vc) = mean_var(canary);
    let sb = vb / baseline.len() as f64;
    let sc = vc / canary.len() as f64;
    let se2 = sb + sc;
    if se2 <= 0.0 {
        return Err(StatsError::Degenerate("both samples have zero variance"));
    }
    let t = (mc - mb) / se2.sqrt();
    let df = se2 * se2
        / (sc * sc / (canary.len() as f64 - 1.0) + sb * sb / (baseline.len() as f64 - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|_| StatsError::Degenerate("bad df"))?;
    let p = match alt {
        Alternative::Greater => dist.sf(t),
        Alternative::Less => dist.cdf(t),
        Alternative::TwoSided => (2.0 * dist.sf(t.abs())).min(1.0),
    };
    Ok(TestResult {
        statistic: t,
        p_value: p,
        df: Some(df),
    })
}

/// Kolmogorov's limiting distribution: P(sqrt(n)·D > x).
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < 1.0 {
        // The alternating series converges slowly for small x; the Jacobi
        // theta form converges in a handful of terms there.
        let mut cdf = 0.0;
        let w = std::f64::consts::PI * std::f64::consts::PI / (8.0 * x * x);
        for k in 1..=20 {
            let odd = (2 * k - 1) as f64;
            let term = (-odd * odd * w).exp();
            cdf += term;
            if term < 1e-300 {
                break;
            }
        }
        cdf *= (2.0 * std::f64::consts::PI).sqrt() / x;
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    let mut sf = 0.0;
    let mut sign = 1.0;
    for k in 1..=100 {
        let kf = k as f64;
        let term = (-2.0 * kf * kf * x * x).exp();
        sf += sign * term;
        if term < 1e-300 || term < sf.abs() * 1e-17 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sf).clamp(0.0, 1.0)
}

/// Two-sample Kolmogorov-Smirnov test with the asymptotic (Kolmogorov)
/// p-value; the statistic is sup |F_canary - F_baseline|.
pub fn kolmogorov_smirnov(baseline: &[f64], canary: &[f64]) -> Result<TestResult, StatsError> {
    check("baseline", baseline, 1)?;
    check("canary", canary, 1)?;
    let b = sorted(baseline);
    let c = sorted(canary);
    let (nb, nc) = (b.len() as f64, c.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    // Advance past every copy of the smallest remaining value so ties move
    // both empirical CDFs before they are compared.
    while i < b.len() && j < c.len() {
        let v = b[i].min(c[j]);
        while i < b.len() && b[i] == v {
            i += 1;
        }
        while j < c.len() && c[j] == v {
            j += 1;
        }
        d = d.max((i as f64 / nb - j as f64 / nc).abs());
    }
    let en = nb * nc / (nb + nc);
    Ok(TestResult {
        statistic: d,
        p_value: kolmogorov_sf(en.sqrt() * d),
        df: None,
    })
}

/// Errors and total events in one arm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Failed events (errors, 5xx responses).
    pub errors: u64,
    /// All events.
    pub total: u64,
}

pub(crate) fn check_counts(which: &'static str, c: Counts) -> Result<(), StatsError> {
    if c.total == 0 || c.errors > c.total {
        return Err(StatsError::BadCounts {
            which,
            errors: c.errors,
            total: c.total,
        });
    }
    Ok(())
}

/// Two-proportion z-test with the pooled variance; z is positive when the
/// canary's error rate is higher.
pub fn two_proportions(
    baseline: Counts,
    canary: Counts,
    alt: Alternative,
) -> Result<TestResult, StatsError> {
    check_counts("baseline", baseline)?;
    check_counts("canary", canary)?;
    let (be, bt) = (baseline.errors as f64, baseline.total as f64);
    let (ce, ct) = (canary.errors as f64, canary.total as f64);
    let pooled = (be + ce) / (bt + ct);
    let se = (pooled * (1.0 - pooled) * (1.0 / bt + 1.0 / ct)).sqrt();
    if se == 0.0 {
        return Err(StatsError::Degenerate(
            "the pooled error rate is 0 or 1, so the proportions cannot differ",
        ));
    }
    let z = (ce / ct - be / bt) / se;
    Ok(TestResult {
        statistic: z,
        p_value: z_pvalue(z, alt),
        df: None,
    })
}

/// Fisher's exact test on `[[canary errors, canary ok], [baseline errors,
/// baseline ok]]`; the statistic is the sample odds ratio (infinite when a
/// cell of the denominator is zero, NaN when both are).
///
/// The two-sided p-value sums every table no more likely than the observed
/// one, with scipy's relative tolerance of 1e-14.
pub fn fisher_exact(
    baseline: Counts,
    canary: Counts,
    alt: Alternative,
) -> Result<TestResult, StatsError> {
    check_counts("baseline", baseline)?;
    check_counts("canary", canary)?;
    let a = canary.errors;
    let b = canary.total - canary.errors;
    let c = baseline.errors;
    let d = baseline.total - baseline.errors;
    let odds = if b == 0 || c == 0 {
        if a == 0 || d == 0 {
            f64::NAN
        } else {
            f64::INFINITY
        }
    } else {
        (a as f64 * d as f64) / (b as f64 * c as f64)
    };
    // X ~ Hypergeometric(population N, successes K = row 1, draws n = column 1).
    let big_n = canary.total + baseline.total;
    let k = canary.total;
    let n = a + c;
    let lo = n.saturating_sub(big_n - k);
    let hi = k.min(n);
    if lo == hi {
        return Ok(TestResult {
            statistic: odds,
            p_value: 1.0,
            df: None,
        });
    }
    // Probabilities relative to the mode, built by the pmf ratio
    // f(x+1)/f(x) = (K-x)(n-x) / ((x+1)(N-K-n+x+1)). Ratios keep full
    // precision where log-gamma differences of numbers near 10^7 would not.
    let mode = (((n + 1) as f64 * (k + 1) as f64) / (big_n + 2) as f64).floor() as u64;
    let mode = mode.clamp(lo, hi);
    let len = (hi - lo + 1) as usize;
    let mut w = vec![0.0f64; len];
    w[(mode - lo) as usize] = 1.0;
    let ratio = |x: u64| -> f64 {
        // (N - K + x + 1) - n, in an order that cannot underflow: x >= lo.
        ((k - x) as f64 * (n - x) as f64) / ((x + 1) as f64 * (big_n - k + x + 1 - n) as f64)
    };
    let mut x = mode;
    while x < hi {
        let next = w[(x - lo) as usize] * ratio(x);
        w[(x + 1 - lo) as usize] = next;
        x += 1;
        if next == 0.0 {
            break;
        }
    }
    let mut x = mode;
    while x > lo {
        let prev = w[(x - lo) as usize] / ratio(x - 1);
        w[(x - 1 - lo) as usize] = prev;
        x -= 1;
        if prev == 0.0 {
            break;
        }
    }
    let total: f64 = w.iter().sum();
    let at = (a - lo) as usize;
    let p = match alt {
        Alternative::Less => w[..=at].iter().sum::<f64>() / total,
        Alternative::Greater => w[at..].iter().sum::<f64>() / total,
        Alternative::TwoSided => {
            let observed = w[at];
            if (observed - 1.0).abs() <= 1e-14 {
                1.0
            } else {
                let cut = observed * (1.0 + 1e-14);
                w.iter().filter(|&&v| v <= cut).sum::<f64>() / total
            }
        }
    };
    Ok(TestResult {
        statistic: odds,
        p_value: p.min(1.0),
        df: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            welch(&[1.0], &[1.0, 2.0], Alternative::TwoSided),
            Err(StatsError::TooFew {
                which: "baseline",
                got: 1,
                need: 2
            })
        );
        assert!(matches!(
            mann_whitney(&[1.0, f64::NAN], &[1.0], Alternative::Less, true),
            Err(StatsError::NonFinite {
                which: "baseline",
                ..
            })
        ));
        assert!(two_proportions(
            Counts {
                errors: 5,
                total: 4
            },
            Counts {
                errors: 1,
                total: 9
            },
            Alternative::Greater
        )
        .is_err());
    }
}
