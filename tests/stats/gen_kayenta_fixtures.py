#!/usr/bin/env python3
"""Generates tests/stats/kayenta_fixtures.json: reference values for augur's
port of Kayenta's Mann-Whitney interval and estimate
(kayenta-mannwhitney/.../MannWhitney.scala).

Kayenta's interval is R's wilcox.test(canary, baseline, conf.int = TRUE,
exact = FALSE, correct = TRUE) two-sided interval; its estimate differs from
R's: it solves the *continuity-corrected* W(d) = 0 with the same Brent
solver (uniroot, tol 1e-4). R computes both here, on seeded samples of our
own shaped like the cases in Kayenta's MannWhitneySuite (location shifts,
heavy ties on half-units, zero-inflated rates, metrics around 1e-5 where the
solver's absolute tolerance inverts the interval).

Needs Rscript (Debian: r-base-core; R 4.2.2 used) and numpy.
Run: python3 tests/stats/gen_kayenta_fixtures.py"""
import json
import pathlib
import subprocess
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).parent

R_PROGRAM = r"""
args <- commandArgs(trailingOnly = TRUE)
x <- scan(args[1], quiet = TRUE)  # canary (Kayenta's experiment)
y <- scan(args[2], quiet = TRUE)  # baseline (Kayenta's control)
conf <- as.numeric(args[3])
r <- suppressWarnings(wilcox.test(x, y, conf.int = TRUE, exact = FALSE,
                                  correct = TRUE, conf.level = conf))
nx <- length(x); ny <- length(y)
W <- function(d) {
  dr <- rank(c(x - d, y))
  nt <- table(dr)
  dz <- sum(dr[seq_along(x)]) - nx * (nx + 1) / 2 - nx * ny / 2
  s <- sqrt((nx * ny / 12) * ((nx + ny + 1) - sum(nt^3 - nt) / ((nx + ny) * (nx + ny - 1))))
  (dz - sign(dz) * 0.5) / s
}
mumin <- min(x) - max(y); mumax <- max(x) - min(y)
est <- uniroot(W, c(mumin, mumax), tol = 1e-4)$root
cat(sprintf("%.17g", c(r$conf.int[1], r$conf.int[2], est)), "\n")
"""


def cases():
    rng = np.random.default_rng(20261122)
    yield "shift-normal", rng.normal(10, 2, 30), rng.normal(20, 2, 30), 0.95
    yield "no-shift-normal", rng.normal(10, 2, 30), rng.normal(10, 2, 30), 0.98
    yield "four-vs-four", np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40]), 0.95
    half = lambda n, s: np.round(rng.lognormal(np.log(2.5), s, n) * 2) / 2
    yield "half-unit-ties", half(90, 0.4), half(90, 0.45) - 0.5, 0.95
    yield "half-unit-ties-large", half(180, 0.4), half(180, 0.4), 0.98
    zi = lambda n, p: np.where(rng.random(n) < p, 0.0, rng.uniform(1.2, 4.2, n))
    yield "zero-inflated", zi(200, 0.85), zi(200, 0.7), 0.95
    tiny = lambda n, sd: np.round(rng.normal(1 / 30, sd, n), 9)
    yield "tiny-scale", tiny(400, 2e-6), tiny(400, 2e-6), 0.98
    yield "tiny-scale-shift", rng.normal(2e-5, 1e-5, 200), rng.normal(5e-5, 2e-5, 200), 0.95
    yield "unequal-sizes", rng.exponential(100, 25), rng.exponential(130, 60), 0.98


def main():
    version = subprocess.run(["Rscript", "-e", "cat(R.version.string)"], capture_output=True, text=True,
                             check=True).stdout
    out = []
    with tempfile.TemporaryDirectory() as d:
        prog = pathlib.Path(d) / "k.R"
        prog.write_text(R_PROGRAM)
        for name, base, can, conf in cases():
            xf, yf = pathlib.Path(d) / "x", pathlib.Path(d) / "y"
            xf.write_text("\n".join(repr(float(v)) for v in can) + "\n")
            yf.write_text("\n".join(repr(float(v)) for v in base) + "\n")
            line = subprocess.run(["Rscript", str(prog), str(xf), str(yf), str(conf)], capture_output=True,
                                  text=True, check=True).stdout.split()
            lo, hi, est = (float(v) for v in line)
            out.append({"name": name, "confidence": conf, "baseline": [float(v) for v in base],
                        "canary": [float(v) for v in can], "ci_low": lo, "ci_high": hi, "estimate": est})
    path = HERE / "kayenta_fixtures.json"
    path.write_text(json.dumps({"meta": {"r": version}, "interval": out}, indent=1) + "\n")
    print(f"wrote {path}: {len(out)} cases")


if __name__ == "__main__":
    main()
