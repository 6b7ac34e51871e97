//! Anytime-valid (sequential) tests: e-values that may be checked after
//! every scrape without inflating false aborts.
//!
//! Under "no difference" each e-value sequence is a nonnegative
//! (super)martingale starting at 1, so by Ville's inequality the chance that
//! it *ever* reaches 1/alpha is at most alpha, however often it is looked at.
//! Formulas and golden values: `../shared/reference/statistics.md` §1.2, §2.3.

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
    let (na, nb) = (baseline.len() as f64, canary.len() as f64);
    let (ma, va) = super::mean_var(baseline);
    let (mb, vb) = super::mean_var(canary);
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
