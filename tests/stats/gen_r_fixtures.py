#!/usr/bin/env python3
"""Generates tests/stats/r_wilcox_fixtures.json: R's location shift and
confidence interval from wilcox.test(canary, baseline, conf.int = TRUE,
exact = FALSE, correct = ...) for every Mann-Whitney sample pair in
scipy_fixtures.json. Needs Rscript (Debian: r-base-core; R 4.2.2 used).
Run: python3 tests/stats/gen_r_fixtures.py"""
import json
import pathlib
import subprocess
import tempfile

HERE = pathlib.Path(__file__).parent

R_PROGRAM = r"""
args <- commandArgs(trailingOnly = TRUE)
x <- scan(args[1], quiet = TRUE)  # canary
y <- scan(args[2], quiet = TRUE)  # baseline
for (alt in c("two.sided", "greater", "less")) for (corr in c(TRUE, FALSE)) {
  r <- suppressWarnings(wilcox.test(x, y, alternative = alt, conf.int = TRUE,
                                    exact = FALSE, correct = corr, conf.level = 0.95))
  cat(alt, corr, sprintf("%.17g", c(r$estimate, r$conf.int[1], r$conf.int[2], r$p.value)), "\n")
}
"""


def finite(text):
    """JSON has no infinity: one-sided intervals' open ends become null."""
    v = float(text)
    return v if abs(v) != float("inf") else None


def main():
    scipy = json.loads((HERE / "scipy_fixtures.json").read_text())
    seen = {}
    for c in scipy["mann_whitney"]:
        seen.setdefault(c["name"], (c["baseline"], c["canary"]))
    version = subprocess.run(["Rscript", "-e", "cat(R.version.string)"], capture_output=True, text=True,
                             check=True).stdout
    cases = []
    with tempfile.TemporaryDirectory() as d:
        prog = pathlib.Path(d) / "w.R"
        prog.write_text(R_PROGRAM)
        for name, (base, can) in seen.items():
            xf, yf = pathlib.Path(d) / "x", pathlib.Path(d) / "y"
            xf.write_text("\n".join(repr(v) for v in can) + "\n")
            yf.write_text("\n".join(repr(v) for v in base) + "\n")
            out = subprocess.run(["Rscript", str(prog), str(xf), str(yf)], capture_output=True, text=True,
                                 check=True).stdout
            for line in out.strip().splitlines():
                alt, corr, est, lo, hi, p = line.split()
                cases.append({"name": name, "alternative": alt.replace(".", "-"), "correct": corr == "TRUE",
                              "estimate": float(est), "ci_low": finite(lo), "ci_high": finite(hi), "p": float(p)})
    out = HERE / "r_wilcox_fixtures.json"
    out.write_text(json.dumps({"meta": {"r": version}, "wilcox": cases}, indent=1) + "\n")
    print(f"wrote {out}: {len(cases)} cases")


if __name__ == "__main__":
    main()
