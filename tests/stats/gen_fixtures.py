#!/usr/bin/env python3
"""Generates tests/stats/scipy_fixtures.json: reference values from scipy for
augur's classical tests. Run: python3 tests/stats/gen_fixtures.py
(scipy 1.17.1, numpy 2.x). Orientation: samples are (baseline, canary);
"greater" means the canary is larger (scipy is called with x = canary)."""
import json
import math
import pathlib

import numpy as np
from scipy import stats

rng = np.random.default_rng(20261121)


def rounded(a, nd=None):
    return [float(v) if nd is None else float(round(v, nd)) for v in a]


def samples():
    out = []
    x = [12.1, 15.3, 11.8, 14.2, 13.9, 16.4, 12.7, 15.0, 13.3, 14.8, 12.9, 15.6]
    y = [14.0, 16.2, 15.1, 17.3, 13.8, 16.9, 15.5, 18.1, 14.7, 16.0]
    out.append(("reference-note", x, y))
    out.append(("ties", [1, 2, 2, 3, 3, 3, 4, 5], [3, 4, 4, 5, 5, 6, 7, 7, 8]))
    out.append(("normal-equal", rounded(rng.normal(100, 10, 40)), rounded(rng.normal(100, 10, 35))))
    out.append(("normal-shift", rounded(rng.normal(100, 10, 60)), rounded(rng.normal(106, 10, 55))))
    out.append(("lognormal-latency-ms", rounded(rng.lognormal(np.log(150), 0.5, 300), 1), rounded(rng.lognormal(np.log(170), 0.5, 280), 1)))
    out.append(("spread", rounded(rng.normal(0, 1, 200)), rounded(rng.normal(0, 2, 200))))
    out.append(("heavy-ties-ms", rounded(np.floor(rng.exponential(20, 500))), rounded(np.floor(rng.exponential(22, 450)))))
    out.append(("large", rounded(rng.normal(50, 5, 2000)), rounded(rng.normal(50.3, 5, 2500))))
    out.append(("canary-smaller", rounded(rng.normal(10, 1, 80)), rounded(rng.normal(9.5, 1, 70))))
    return out


def two_proportion(be, bt, ce, ct, alternative):
    p1, p2 = be / bt, ce / ct
    pbar = (be + ce) / (bt + ct)
    se = math.sqrt(pbar * (1 - pbar) * (1 / bt + 1 / ct))
    z = (p2 - p1) / se
    if alternative == "greater":
        p = stats.norm.sf(z)
    elif alternative == "less":
        p = stats.norm.cdf(z)
    else:
        p = 2 * stats.norm.sf(abs(z))
    return z, p


def main():
    alts = ["two-sided", "greater", "less"]
    cases = {"mann_whitney": [], "welch": [], "ks": [], "proportions": [], "fisher": []}
    for name, base, can in samples():
        for alt in alts:
            for cont in (True, False):
                r = stats.mannwhitneyu(can, base, alternative=alt, method="asymptotic", use_continuity=cont)
                cases["mann_whitney"].append({"name": name, "baseline": base, "canary": can, "alternative": alt,
                                              "continuity": cont, "u_canary": float(r.statistic), "p": float(r.pvalue)})
            r = stats.ttest_ind(can, base, equal_var=False, alternative=alt)
            case = {"name": name, "baseline": base, "canary": can, "alternative": alt,
                    "t": float(r.statistic), "df": float(r.df), "p": float(r.pvalue)}
            if alt == "two-sided":
                ci = r.confidence_interval(0.95)
                case["ci95"] = [float(ci.low), float(ci.high)]
            cases["welch"].append(case)
        d = stats.ks_2samp(can, base).statistic
        en = len(base) * len(can) / (len(base) + len(can))
        cases["ks"].append({"name": name, "baseline": base, "canary": can, "d": float(d),
                            "p": float(stats.kstwobign.sf(math.sqrt(en) * d))})
    counts = [(12, 1000, 25, 1000), (0, 500, 3, 500), (50, 10000, 50, 10000), (200, 100000, 240, 100000),
              (5000, 5000000, 6000, 5000000), (1, 10, 9, 10), (30, 1000, 10, 1000), (2, 150000, 11, 40000),
              # Tables whose first column fills a row (lo > 0 in the support).
              (0, 1, 686115, 816864), (5, 8, 30, 30), (1, 1, 900, 1000)]
    for be, bt, ce, ct in counts:
        table = [[ce, ct - ce], [be, bt - be]]
        for alt in alts:
            z, p = two_proportion(be, bt, ce, ct, alt)
            cases["proportions"].append({"baseline": [be, bt], "canary": [ce, ct], "alternative": alt, "z": z, "p": float(p)})
            odds, pf = stats.fisher_exact(table, alternative=alt)
            cases["fisher"].append({"baseline": [be, bt], "canary": [ce, ct], "alternative": alt,
                                    "odds_ratio": float(odds) if math.isfinite(odds) else None, "p": float(pf)})
    # Pearson chi-square without Yates is z^2: a cross-check of the z formula.
    chi2 = stats.chi2_contingency([[12, 988], [25, 975]], correction=False)[0]
    cases["proportions_chi2_check"] = {"table": [[12, 988], [25, 975]], "chi2": float(chi2)}
    meta = {"scipy": stats.__name__ and __import__("scipy").__version__, "numpy": np.__version__, "seed": 20261121}
    out = pathlib.Path(__file__).with_name("scipy_fixtures.json")
    out.write_text(json.dumps({"meta": meta, **cases}, indent=1) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{k}={len(v)}" for k, v in cases.items() if isinstance(v, list)))


if __name__ == "__main__":
    main()
