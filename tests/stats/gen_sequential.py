#!/usr/bin/env python3
"""Generates tests/stats/sequential_fixtures.json: reference values for
augur's anytime-valid tests. Run: python3 tests/stats/gen_sequential.py
(scipy 1.17.1, numpy 2.x).

- savvi's own test vector (assuncaolfi/savvi): rho = [0.8, 0.2],
  delta = [1.5, 2], k = 100, np.random.seed(1), multinomial(1, theta, 1000);
  savvi reports the first p <= 0.05 at n = 210 with counts [148, 62] and
  p = 0.0455796317592.
- Beta-binomial e-values over a grid, with scipy.special's betaln/betainc
  (independent special functions) in log space.
- Anytime-valid t-test e-values (Lindon et al. 2022) from scipy's pooled t.
"""
import json
import math
import pathlib

import numpy as np
from scipy import optimize, special, stats


def ln_e_two_sided(c_b, c_a, rho, k):
    a, b = k * rho, k * (1 - rho)
    return (special.betaln(a + c_b, b + c_a) - special.betaln(a, b)
            - c_b * math.log(rho) - c_a * math.log(1 - rho))


def ln_e_one_sided(c_b, c_a, rho, k):
    a, b = k * rho, k * (1 - rho)
    # 1 - I_rho(p, q) = I_{1-rho}(q, p), without cancellation.
    num = special.betaln(a + c_b, b + c_a) + math.log(special.betainc(b + c_a, a + c_b, 1 - rho))
    den = special.betaln(a, b) + math.log(special.betainc(b, a, 1 - rho))
    return num - den - c_b * math.log(rho) - c_a * math.log(1 - rho)


def main():
    np.random.seed(1)
    rho = np.array([0.8, 0.2])
    delta = np.array([1.5, 2.0])
    theta = rho * np.exp(delta) / np.sum(rho * np.exp(delta))
    draws = np.random.multinomial(1, theta, 1000)
    labels = "".join(str(int(np.argmax(d))) for d in draws)

    grid = []
    for c_b, c_a, r, k in [(60, 40, 0.5, 100), (40, 60, 0.5, 100), (0, 0, 0.5, 100), (5, 0, 0.5, 100),
                           (13, 10, 0.5, 2), (260, 200, 0.5, 100), (1200, 1000, 0.3, 100),
                           (25, 12, 0.5, 10000), (30000, 29000, 0.5, 100), (7, 50, 0.1, 100)]:
        grid.append({"canary": c_b, "baseline": c_a, "rho": r, "k": k,
                     "ln_e_two_sided": float(ln_e_two_sided(c_b, c_a, r, k)),
                     "ln_e_one_sided": float(ln_e_one_sided(c_b, c_a, r, k))})

    rng = np.random.default_rng(20261122)
    avt = []
    for n_a, n_b, shift, phi in [(50, 50, 0.0, 100), (50, 50, 0.6, 100), (200, 180, 0.2, 100),
                                 (1000, 1000, 0.05, 100), (30, 45, 1.0, 10)]:
        a = [float(round(v, 6)) for v in rng.normal(0, 1, n_a)]
        b = [float(round(v, 6)) for v in rng.normal(shift, 1, n_b)]
        t = stats.ttest_ind(b, a, equal_var=True).statistic
        nu = n_a + n_b - 2
        z2 = n_a * n_b / (n_a + n_b)
        r = phi / (phi + z2)
        ln_e = 0.5 * math.log(r) + 0.5 * (nu + 1) * (math.log1p(t * t / nu) - math.log1p(r * t * t / nu))
        avt.append({"baseline": a, "canary": b, "phi": phi, "t": float(t), "ln_e": float(ln_e)})

    # Confidence sequences for the rate ratio (savvi/ssrm's set, roots by brentq).
    cs = []
    for c_b, c_a, r, k, alpha in [(60, 40, 0.5, 100, 0.05), (30, 10, 0.5, 100, 0.05), (0, 12, 0.5, 100, 0.05),
                                  (9, 0, 0.2, 100, 0.05), (1200, 1000, 0.3, 100, 0.01), (5, 5, 0.5, 10, 0.1)]:
        a, b = k * r, k * (1 - r)
        level = special.betaln(a + c_b, b + c_a) - special.betaln(a, b) + math.log(alpha)

        def g(t):
            return (c_b * math.log(t) if c_b else 0.0) + (c_a * math.log1p(-t) if c_a else 0.0) - level
        hat = c_b / (c_b + c_a)
        eps = 1e-300
        lo = 0.0 if g(max(eps, 0.0) if c_b == 0 else eps) >= 0 else optimize.brentq(g, eps, hat, xtol=1e-300, rtol=1e-15)
        hi = 1.0 if c_a == 0 else optimize.brentq(g, hat, 1 - 1e-16, xtol=1e-300, rtol=1e-15)
        odds = lambda t: t / (1 - t)
        cs.append({"canary": c_b, "baseline": c_a, "rho": r, "k": k, "alpha": alpha,
                   "ratio_low": float(odds(lo) / odds(r)),
                   "ratio_high": float(odds(hi) / odds(r)) if hi < 1 else None})

    # Drifting split: per-interval Binomial likelihood ratios mixed over a
    # discretised N(0, 1) prior on the log rate ratio.
    dgrid = np.arange(-100, 101) * 0.05
    drift_rng = np.random.default_rng(7)
    drift = []
    for ratio, one_sided in [(1.0, False), (2.0, False), (2.0, True), (0.5, True)]:
        intervals, log_lr = [], np.zeros_like(dgrid)
        for s in range(20):
            share = 0.05 + 0.45 * s / 19  # canary traffic ramps from 5% to 50%
            n_c = int(drift_rng.poisson(2000 * share)) + 1
            n_b = int(drift_rng.poisson(2000 * (1 - share))) + 1
            e_c = int(drift_rng.binomial(n_c, min(1.0, 0.01 * ratio)))
            e_b = int(drift_rng.binomial(n_b, 0.01))
            intervals.append([e_b, n_b, e_c, n_c])
            if e_c + e_b and n_c and n_b:
                rho = n_c / (n_c + n_b)
                theta = rho * np.exp(dgrid) / (1 - rho + rho * np.exp(dgrid))
                log_lr += e_c * np.log(theta / rho) + e_b * np.log((1 - theta) / (1 - rho))
        w = -0.5 * dgrid ** 2
        keep = dgrid > 0 if one_sided else np.ones_like(dgrid, dtype=bool)
        ln_e = special.logsumexp(w[keep] + log_lr[keep]) - special.logsumexp(w[keep])
        drift.append({"ratio": ratio, "one_sided": one_sided, "intervals": intervals, "ln_e": float(ln_e)})

    # Half-width (t units) of the anytime-valid t confidence sequence:
    # the t with ln E(t) = ln(1/alpha).
    t_star = []
    for n_a, n_b, phi, alpha in [(50, 50, 100, 0.05), (200, 180, 100, 0.05), (1000, 1000, 100, 0.01),
                                 (30, 45, 10, 0.1), (5, 5, 100, 0.05)]:
        nu = n_a + n_b - 2
        r = phi / (phi + n_a * n_b / (n_a + n_b))

        def f(t):
            return (0.5 * math.log(r) + 0.5 * (nu + 1) * (math.log1p(t * t / nu) - math.log1p(r * t * t / nu))
                    - math.log(1 / alpha))
        sup = 0.5 * nu * math.log(1 / r)
        ts = optimize.brentq(f, 0.0, 1e6, xtol=1e-14, rtol=1e-15) if sup > math.log(1 / alpha) else None
        t_star.append({"n_baseline": n_a, "n_canary": n_b, "phi": phi, "alpha": alpha, "t_star": ts})

    out = pathlib.Path(__file__).with_name("sequential_fixtures.json")
    out.write_text(json.dumps({
        "meta": {"scipy": __import__("scipy").__version__, "numpy": np.__version__},
        "savvi": {"rho": [0.8, 0.2], "k": 100, "labels": labels, "first_reject_n": 210,
                  "first_reject_counts": [148, 62], "first_reject_p": 0.0455796317592},
        "beta_binomial": grid,
        "av_t": avt,
        "count_cs": cs,
        "drifting": drift,
        "av_t_cs": t_star,
    }, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
