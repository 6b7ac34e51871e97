//! Anytime-valid (sequential) tests: e-values that may be checked after
//! every scrape without inflating false aborts.
//!
//! Under "no difference" each e-value sequence is a nonnegative
//! (super)martingale starting at 1, so by Ville's inequality the chance that
//! it *ever* reaches 1/alpha is at most alpha, however often it is looked at.
//! Formulas: the Dirichlet-mixture count test of Lindon & Malek (NeurIPS
//! 2022, arXiv 2011.03567; code `ssrm`, `savvi`), the anytime-valid t-test
//! of Lindon et al. (arXiv 2210.08589), and the Howard-Ramdas CDF band
//! (`confseq`); golden values in `tests/stats/`.

use super::StatsError;
use statrs::function::beta::{checked_beta_reg, ln_beta};

/// Log e-value of the Beta-binomial (Dirichlet mixture) count test of
/// Lindon & Malek (2022).
///
/// `baseline` and `canary` are cumulative event counts (errors) and
/// `rho` the canary's share of traffic; under "same error rate" each event
/// lands in the canary with probability `rho`, whatever the traffic does
/// over time. `k` is the prior concentration (savvi's default is 100).
/// With `one_sided` the prior is truncated to "canary worse", which gains
/// power against regressions and never rejects for improvements.
pub fn count_ln_e(
    baseline: u64,
    canary: u64,
    rho: f64,
    k: f64,
    one_sided: bool,
) -> Result<f64, StatsError> {
    if !(rho > 0.0 && rho < 1.0) {
        return Err(StatsError::Degenerate(
            "the canary traffic share must lie in (0, 1)",
        ));
    }
    if !(k > 0.0 && k.is_finite()) {
        return Err(StatsError::Degenerate(
            "the prior concentration must be positive",
        ));
    }
    let (cb, ca) = (canary as f64, baseline as f64);
    let (a, b) = (k * rho, k * (1.0 - rho));
    let mut ln_e = ln_beta(a + cb, b + ca) - ln_beta(a, b) - cb * rho.ln() - ca * (1.0 - rho).ln();
    if one_sided {
        // Prior mass above rho: 1 - I_rho(p, q) = I_{1-rho}(q, p), which keeps
        // precision when the mass is nearly 1.
        let upper = |p: f64, q: f64| {
            checked_beta_reg(q, p, 1.0 - rho)
                .map_err(|_| StatsError::Degenerate("incomplete beta out of range"))
        };
        ln_e += upper(a + cb, b + ca)?.ln() - upper(a, b)?.ln();
    }
    Ok(ln_e)
}

/// Log e-value of the anytime-valid two-sample t-test (Lindon, Ham, Tingley
/// and Bojinov 2022), with the pooled t statistic it is built from.
///
/// Exact under the Gaussian model, so apply it to log-latency. `phi` is the
/// prior precision of the standardised effect (100 is a weak prior centred
/// on no change). The statistic is positive when the canary is larger.
pub fn av_t_ln_e(baseline: &[f64], canary: &[f64], phi: f64) -> Result<(f64, f64), StatsError> {
    super::check("baseline", baseline, 2)?;
    super::check("canary", canary, 2)?;
    if !(phi > 0.0 && phi.is_finite()) {
        return Err(StatsError::Degenerate(
            "the prior precision must be positive",
        ));
    }
    let (ma, va) = super::mean_var(baseline);
    let (mb, vb) = super::mean_var(canary);
    av_t_ln_e_moments(
        (baseline.len() as f64, ma, va),
        (canary.len() as f64, mb, vb),
        phi,
    )
}

/// [`av_t_ln_e`] from each arm's (n, mean, sample variance), so a run can
/// keep running moments instead of every value.
pub fn av_t_ln_e_moments(
    baseline: (f64, f64, f64),
    canary: (f64, f64, f64),
    phi: f64,
) -> Result<(f64, f64), StatsError> {
    let ((na, ma, va), (nb, mb, vb)) = (baseline, canary);
    if na < 2.0 || nb < 2.0 {
        return Err(StatsError::TooFew {
            which: if na < 2.0 { "baseline" } else { "canary" },
            got: na.min(nb) as usize,
            need: 2,
        });
    }
    let nu = na + nb - 2.0;
    let pooled = ((na - 1.0) * va + (nb - 1.0) * vb) / nu;
    if pooled <= 0.0 {
        return Err(StatsError::Degenerate("both samples have zero variance"));
    }
    let t = (mb - ma) / (pooled * (1.0 / na + 1.0 / nb)).sqrt();
    let z2 = na * nb / (na + nb);
    let r = phi / (phi + z2);
    let t2 = t * t;
    let ln_e = 0.5 * r.ln() + 0.5 * (nu + 1.0) * ((t2 / nu).ln_1p() - (r * t2 / nu).ln_1p());
    Ok((t, ln_e))
}

/// The half-width, in t units, of the anytime-valid t-test's confidence
/// sequence: every shift δ whose e-value is below 1/α, i.e. the t
/// statistics with ln E(t) < ln(1/α). ln E grows with t², so the set is
/// mean difference ± t*·se (Lindon, Ham, Tingley and Bojinov 2022, the
/// duality of their Theorem 1). Infinite when even t → ∞ cannot reach 1/α
/// (too few observations for this level).
pub fn av_t_cs_t_star(n_baseline: f64, n_canary: f64, phi: f64, alpha: f64) -> f64 {
    let nu = n_baseline + n_canary - 2.0;
    let z2 = n_baseline * n_canary / (n_baseline + n_canary);
    let r = phi / (phi + z2);
    let target = (1.0 / alpha).ln();
    let ln_e = |u: f64| 0.5 * r.ln() + 0.5 * (nu + 1.0) * (u.ln_1p() - (r * u).ln_1p());
    // As u = t²/ν → ∞, ln E rises to ½·ν·ln(1/r).
    if nu.is_nan() || nu <= 0.0 || 0.5 * nu * (1.0 / r).ln() <= target {
        return f64::INFINITY;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while ln_e(hi) < target {
        hi *= 2.0;
        if hi > 1e300 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if ln_e(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi) * nu).sqrt()
}

/// Running count, mean and sum of squared deviations (Welford), for
/// [`av_t_ln_e_moments`]; serialisable so evidence survives restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Moments {
    /// Values seen.
    pub n: f64,
    /// Their mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Adds one value.
    pub fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    /// (n, mean, sample variance).
    pub fn triple(&self) -> (f64, f64, f64) {
        let var = if self.n > 1.0 {
            self.m2 / (self.n - 1.0)
        } else {
            0.0
        };
        (self.n, self.mean, var)
    }
}

/// The anytime-valid p-value: the running minimum of 1/E over all looks.
///
/// A plain 1/E would let p go back up, which is not a valid sequential
/// p-value (a common porting bug, see the reference notes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnytimeP {
    p: f64,
}

impl Default for AnytimeP {
    fn default() -> Self {
        AnytimeP { p: 1.0 }
    }
}

impl AnytimeP {
    /// Resumes from a stored p-value (after a restart).
    pub fn resume(p: f64) -> AnytimeP {
        AnytimeP {
            p: if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) },
        }
    }

    /// Folds in the log e-value of one look and returns the p-value so far.
    pub fn observe(&mut self, ln_e: f64) -> f64 {
        if !ln_e.is_nan() {
            self.p = self.p.min((-ln_e).exp());
        }
        self.p
    }

    /// The p-value so far.
    pub fn p(&self) -> f64 {
        self.p
    }
}

/// The confidence sequence for the canary/baseline error-rate ratio that
/// goes with [`count_ln_e`] (two-sided): every ratio whose e-value is still
/// below 1/alpha, so 1 leaves the interval exactly when the test aborts.
///
/// Lindon & Malek (2022), "Anytime-valid inference for multinomial count
/// data", NeurIPS; the set {θ : Σ c_i ln θ_i ≥ lnB(a0 + c) − lnB(a0) +
/// ln α} of savvi/ssrm, mapped from the canary's event share θ to the rate
/// ratio (θ/(1−θ)) / (ρ/(1−ρ)).
pub fn count_cs(
    baseline: u64,
    canary: u64,
    rho: f64,
    k: f64,
    alpha: f64,
) -> Result<(f64, f64), StatsError> {
    // Validates rho and k the same way the test does.
    count_ln_e(baseline, canary, rho, k, false)?;
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(StatsError::Degenerate("alpha must lie in (0, 1)"));
    }
    let (cb, ca) = (canary as f64, baseline as f64);
    let (a, b) = (k * rho, k * (1.0 - rho));
    let level = ln_beta(a + cb, b + ca) - ln_beta(a, b) + alpha.ln();
    // g is concave in θ with its maximum at the observed share, where it is
    // at least ln(1/α) > 0; each side has one root.
    let g = |t: f64| {
        let lb = if cb > 0.0 { cb * t.ln() } else { 0.0 };
        let la = if ca > 0.0 { ca * (-t).ln_1p() } else { 0.0 };
        lb + la - level
    };
    let hat = if cb + ca > 0.0 { cb / (cb + ca) } else { rho };
    let root = |mut inside: f64, mut outside: f64| {
        if g(outside) >= 0.0 {
            return outside;
        }
        for _ in 0..200 {
            let mid = 0.5 * (inside + outside);
            if mid == inside || mid == outside {
                break;
            }
            if g(mid) >= 0.0 {
                inside = mid;
            } else {
                outside = mid;
            }
        }
        inside
    };
    let lo = root(hat, 0.0);
    let hi = root(hat, 1.0);
    let odds = |t: f64| t / (1.0 - t);
    let base = odds(rho);
    Ok((odds(lo) / base, odds(hi) / base))
}

/// The count e-process when the traffic split drifts between intervals
/// (canary load changing during a rollout step, uneven pod readiness).
///
/// Each interval s contributes errors (e_B,s canary, e_A,s baseline) and
/// its own split ρ_s from request counts. Under H0 (same per-request error
/// rate) the canary's share of an interval's errors is Binomial(ρ_s); under
/// a log rate ratio δ it is θ_s(δ) = ρ_s e^δ / (1 − ρ_s + ρ_s e^δ). The
/// product of per-interval likelihood ratios is a martingale for each δ,
/// and so is its mixture over a fixed prior on δ (reference notes §2.2;
/// construction as in Lindon & Malek 2022, with the split per interval).
/// The prior is N(0, 1) on δ, discretised on a grid: a discrete prior is a
/// proper prior, so validity is exact, not approximate.
///
/// The state is the log likelihood ratio per grid point; it serialises so
/// a run's evidence survives a restart.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DriftingCounts {
    /// One-sided: the prior only covers δ > 0 (canary worse).
    pub one_sided: bool,
    /// Log likelihood ratio at each grid point.
    pub log_lr: Vec<f64>,
}

/// Grid of log rate ratios for [`DriftingCounts`]: ±5 (a 150x ratio) in
/// steps of 0.05.
fn drift_grid() -> impl Iterator<Item = f64> {
    (-100..=100).map(|i| i as f64 * 0.05)
}

impl DriftingCounts {
    /// A fresh e-process (E = 1).
    pub fn new(one_sided: bool) -> DriftingCounts {
        DriftingCounts {
            one_sided,
            log_lr: vec![0.0; drift_grid().count()],
        }
    }

    /// Folds in one interval: errors and requests in that interval for each
    /// arm. Intervals without errors or without traffic on either arm carry
    /// no information and leave E unchanged.
    pub fn observe(
        &mut self,
        baseline: super::Counts,
        canary: super::Counts,
    ) -> Result<(), StatsError> {
        for (which, c) in [("baseline", baseline), ("canary", canary)] {
            if c.errors > c.total {
                return Err(StatsError::BadCounts {
                    which,
                    errors: c.errors,
                    total: c.total,
                });
            }
        }
        if self.log_lr.len() != drift_grid().count() {
            return Err(StatsError::Degenerate(
                "stored evidence does not match the prior grid",
            ));
        }
        if baseline.total == 0 || canary.total == 0 || baseline.errors + canary.errors == 0 {
            return Ok(());
        }
        let rho = canary.total as f64 / (canary.total + baseline.total) as f64;
        let (eb, ea) = (canary.errors as f64, baseline.errors as f64);
        for (l, d) in self.log_lr.iter_mut().zip(drift_grid()) {
            let theta = rho * d.exp() / (1.0 - rho + rho * d.exp());
            *l += eb * (theta / rho).ln() + ea * ((1.0 - theta) / (1.0 - rho)).ln();
        }
        Ok(())
    }

    /// The log e-value so far: log Σ w_j exp(L_j).
    pub fn ln_e(&self) -> f64 {
        let weights: Vec<(f64, f64)> = drift_grid()
            .zip(&self.log_lr)
            .filter(|(d, _)| !self.one_sided || *d > 0.0)
            .map(|(d, &l)| (-0.5 * d * d, l))
            .collect();
        let ln_norm = log_sum_exp(weights.iter().map(|w| w.0));
        log_sum_exp(weights.iter().map(|(w, l)| w + l)) - ln_norm
    }
}

fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + xs.map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Howard & Ramdas' time-uniform bound on an empirical CDF: with
/// probability ≥ 1 − α, for all t ≥ m and all x,
/// |F_t(x) − F(x)| ≤ A·sqrt((ln(1 + ln(t/m)) + C(α)) / t).
///
/// Howard, S. R. and Ramdas, A. (2022), "Sequential estimation of
/// quantiles with applications to A/B-testing and best-arm identification",
/// Bernoulli 28(3), Theorem 2; C(α) solved as confseq's
/// `EmpiricalProcessLILBound::find_optimal_C` does (gostevehoward/confseq,
/// `uniform_boundaries.h`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CdfBound {
    /// A (> 1/√2); confseq's default 0.85.
    pub a: f64,
    /// m, the first sample size the bound covers.
    pub t_min: f64,
    /// C(α).
    pub c: f64,
}

impl CdfBound {
    /// The bound for level `alpha` with A = 0.85 and m = `t_min`.
    pub fn new(alpha: f64, t_min: f64) -> Result<CdfBound, StatsError> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(StatsError::Degenerate("alpha must lie in (0, 1)"));
        }
        if t_min.is_nan() || t_min < 1.0 {
            return Err(StatsError::Degenerate("m must be at least 1"));
        }
        let a = 0.85;
        Ok(CdfBound {
            a,
            t_min,
            c: lil_c(alpha, a),
        })
    }

    /// ε(t); infinite below m.
    pub fn eps(&self, t: f64) -> f64 {
        if t < self.t_min {
            f64::INFINITY
        } else {
            self.a * (((t / self.t_min).ln().ln_1p() + self.c) / t).sqrt()
        }
    }
}

/// confseq's error bound for a given C: the minimum over η of
/// 4 e^{−γ²C} (1 + 1/((γ² − 1) ln η)), γ² = (2/η)(A − √(2(η−1)/C))².
fn lil_alpha(c: f64, a: f64) -> f64 {
    let err = |eta: f64| {
        let g2 = 2.0 / eta * (a - (2.0 * (eta - 1.0) / c).sqrt()).powi(2);
        if g2 <= 1.0 {
            f64::INFINITY
        } else {
            4.0 * (-g2 * c).exp() * (1.0 + 1.0 / ((g2 - 1.0) * eta.ln()))
        }
    };
    // η's upper end: √(η/2) + √(2(η−1)/C) = A, by bisection on [1, 2A²].
    let (mut lo, mut hi) = (1.0, 2.0 * a * a);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if (mid / 2.0).sqrt() + (2.0 * (mid - 1.0) / c).sqrt() - a > 0.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // Golden-section search for the minimum (err is unimodal in η there).
    let (mut l, mut r) = (1.0, 0.5 * (lo + hi));
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut x1, mut x2) = (r - phi * (r - l), l + phi * (r - l));
    let (mut f1, mut f2) = (err(x1), err(x2));
    for _ in 0..200 {
        if f1 < f2 {
            r = x2;
            x2 = x1;
            f2 = f1;
            x1 = r - phi * (r - l);
            f1 = err(x1);
        } else {
            l = x1;
            x1 = x2;
            f1 = f2;
            x2 = l + phi * (r - l);
            f2 = err(x2);
        }
    }
    f1.min(f2)
}

/// C(α): the root of lil_alpha(C) = α (decreasing in C).
fn lil_c(alpha: f64, a: f64) -> f64 {
    let (mut lo, mut hi) = (5.0, 10.0);
    while lil_alpha(lo, a) < alpha && lo > 1e-3 {
        lo /= 2.0;
    }
    while lil_alpha(hi, a) > alpha {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if lil_alpha(mid, a) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The result of a CDF band comparison at one look.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandLook {
    /// The largest gap between the two empirical CDFs (for `greater`:
    /// baseline CDF minus canary CDF, i.e. the canary is slower).
    pub gap: f64,
    /// The band half-widths added up: ε_baseline + ε_canary at α/2 each.
    pub threshold: f64,
    /// Whether the gap leaves the bands (reject "same distribution").
    pub reject: bool,
    /// The smallest α at which this look rejects (1 when none).
    pub p_value: f64,
}

/// Howard-Ramdas two-sample band test on empirical CDFs evaluated at common
/// points: `baseline[i]`/`canary[i]` are the CDFs at the i-th point (from
/// sorted samples or cumulative histogram buckets `count(le)/total`), and
/// `n_*` the sample sizes. The band holds for all x at once, so a subset of
/// points (Prometheus `le` edges) keeps the test valid, only coarser.
/// `greater` tests "canary stochastically larger" (slower).
pub fn band_look(
    baseline: &[f64],
    canary: &[f64],
    n_baseline: f64,
    n_canary: f64,
    alpha: f64,
    t_min: f64,
    greater: bool,
) -> Result<BandLook, StatsError> {
    if baseline.len() != canary.len() {
        return Err(StatsError::Degenerate(
            "the two CDFs must be evaluated at the same points",
        ));
    }
    let bound = CdfBound::new(alpha / 2.0, t_min)?;
    let gap = baseline
        .iter()
        .zip(canary)
        .map(|(b, c)| if greater { b - c } else { (b - c).abs() })
        .fold(0.0, f64::max);
    let threshold = bound.eps(n_baseline) + bound.eps(n_canary);
    // The smallest α that rejects: the largest C with
    // A(√((l_b + C)/n_b) + √((l_c + C)/n_c)) < gap, then α = 2·err(C).
    let p_value = if n_baseline < t_min || n_canary < t_min || gap <= 0.0 {
        1.0
    } else {
        let l = |n: f64| (n / t_min).ln().ln_1p();
        let width = |c: f64| {
            bound.a
                * (((l(n_baseline) + c) / n_baseline).sqrt()
                    + ((l(n_canary) + c) / n_canary).sqrt())
        };
        if width(0.0) >= gap {
            1.0
        } else {
            let (mut lo, mut hi) = (0.0, 1.0);
            while width(hi) < gap {
                hi *= 2.0;
            }
            for _ in 0..100 {
                let mid = 0.5 * (lo + hi);
                if width(mid) < gap {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            (2.0 * lil_alpha(lo, bound.a)).min(1.0)
        }
    };
    Ok(BandLook {
        gap,
        threshold,
        reject: gap > threshold,
        p_value,
    })
}

/// Empirical CDFs of two samples at every pooled value, for [`band_look`].
pub fn sample_cdfs(baseline: &[f64], canary: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let b = super::sorted(baseline);
    let c = super::sorted(canary);
    let mut points: Vec<f64> = b.iter().chain(&c).copied().collect();
    points.sort_by(f64::total_cmp);
    points.dedup();
    let cdf = |s: &[f64], x: f64| s.partition_point(|&v| v <= x) as f64 / s.len().max(1) as f64;
    (
        points.iter().map(|&x| cdf(&b, x)).collect(),
        points.iter().map(|&x| cdf(&c, x)).collect(),
    )
}
