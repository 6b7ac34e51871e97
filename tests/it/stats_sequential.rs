//! Anytime-valid tests against reference values
//! (`tests/stats/sequential_fixtures.json`, from `tests/stats/gen_sequential.py`).

use augur::stats::sequential::{
    av_t_cs_t_star, av_t_ln_e, band_look, count_cs, count_ln_e, sample_cdfs, AnytimeP, CdfBound,
    DriftingCounts,
};
use augur::stats::Counts;
use serde_json::Value;

fn fixtures() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/stats/sequential_fixtures.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fixtures")).expect("json")
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn savvi_test_vector_rejects_at_event_210() {
    let f = fixtures();
    let s = &f["savvi"];
    let labels = s["labels"].as_str().unwrap();
    // Arm 1 (traffic share 0.2) plays the canary.
    let (mut base, mut can) = (0u64, 0u64);
    let mut p = AnytimeP::default();
    let mut first = None;
    for (i, ch) in labels.chars().enumerate() {
        if ch == '1' {
            can += 1;
        } else {
            base += 1;
        }
        let ln_e = count_ln_e(base, can, 0.2, 100.0, false).unwrap();
        let pv = p.observe(ln_e);
        if pv <= 0.05 && first.is_none() {
            first = Some((i + 1, base, can, pv));
        }
    }
    let (n, b, c, pv) = first.expect("savvi's vector rejects");
    assert_eq!(n as u64, s["first_reject_n"].as_u64().unwrap());
    assert_eq!([b, c], [148, 62]);
    close(
        pv,
        s["first_reject_p"].as_f64().unwrap(),
        1e-9,
        "p at rejection",
    );
    // The running minimum never goes back up.
    assert!(p.p() <= pv);
}

#[test]
fn beta_binomial_matches_scipy_special() {
    let f = fixtures();
    for c in f["beta_binomial"].as_array().unwrap() {
        let what = c.to_string();
        let (b, k) = (
            c["baseline"].as_u64().unwrap(),
            c["canary"].as_u64().unwrap(),
        );
        let (rho, conc) = (c["rho"].as_f64().unwrap(), c["k"].as_f64().unwrap());
        let two = count_ln_e(b, k, rho, conc, false).unwrap();
        close(two, c["ln_e_two_sided"].as_f64().unwrap(), 1e-9, &what);
        let one = count_ln_e(b, k, rho, conc, true).unwrap();
        close(one, c["ln_e_one_sided"].as_f64().unwrap(), 1e-9, &what);
    }
    // Reference-note goldens.
    close(
        count_ln_e(40, 60, 0.5, 100.0, false).unwrap(),
        0.658892,
        1e-6,
        "golden two-sided",
    );
    close(
        count_ln_e(40, 60, 0.5, 100.0, true).unwrap(),
        1.270783,
        1e-6,
        "golden one-sided",
    );
}

#[test]
fn av_t_matches_reference() {
    let f = fixtures();
    for c in f["av_t"].as_array().unwrap() {
        let xs = |v: &Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let (t, ln_e) = av_t_ln_e(
            &xs(&c["baseline"]),
            &xs(&c["canary"]),
            c["phi"].as_f64().unwrap(),
        )
        .unwrap();
        close(t, c["t"].as_f64().unwrap(), 1e-10, "t");
        close(ln_e, c["ln_e"].as_f64().unwrap(), 1e-9, "ln e");
    }
}

#[test]
fn bad_parameters_are_rejected() {
    assert!(count_ln_e(1, 1, 0.0, 100.0, false).is_err());
    assert!(count_ln_e(1, 1, 0.5, -1.0, false).is_err());
    assert!(av_t_ln_e(&[1.0, 1.0], &[1.0, 1.0], 100.0).is_err());
    let mut p = AnytimeP::resume(0.2);
    assert_eq!(p.observe(f64::NAN), 0.2);
    assert_eq!(p.observe(0.0), 0.2);
    close(p.observe(20f64.ln()), 0.05, 1e-12, "1/E");
}

fn judge_json(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_augur"))
        .arg("judge")
        .args(args)
        .arg("--json")
        .output()
        .expect("run augur judge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn judge_cli_sequential_counts() {
    // savvi's vector at its rejecting look: 148 baseline and 62 canary
    // events with a 0.8/0.2 traffic split.
    let rep = judge_json(&[
        "--test",
        "sequential-counts",
        "--baseline",
        "148/8000",
        "--canary",
        "62/2000",
    ]);
    assert_eq!(rep["test"], "sequential-counts");
    close(
        rep["p_value"].as_f64().unwrap(),
        0.0455796317592,
        1e-9,
        "savvi p",
    );
    close(
        rep["estimate"].as_f64().unwrap(),
        (62.0 / 2000.0) / (148.0 / 8000.0),
        1e-12,
        "rate ratio",
    );

    let f = fixtures();
    let g = &f["beta_binomial"][0]; // canary 60, baseline 40, rho 0.5, k 100
    let rep = judge_json(&[
        "--test",
        "sequential-counts",
        "--baseline",
        "40/5000",
        "--canary",
        "60/5000",
        "--alternative",
        "greater",
    ]);
    close(
        rep["ln_e"].as_f64().unwrap(),
        g["ln_e_one_sided"].as_f64().unwrap(),
        1e-9,
        "greater",
    );
    // "less" asks whether the canary is better: the mirrored one-sided test.
    let mirrored = &f["beta_binomial"][1]; // canary 40, baseline 60
    let rep = judge_json(&[
        "--test",
        "sequential-counts",
        "--baseline",
        "40/5000",
        "--canary",
        "60/5000",
        "--alternative",
        "less",
    ]);
    close(
        rep["ln_e"].as_f64().unwrap(),
        mirrored["ln_e_one_sided"].as_f64().unwrap(),
        1e-9,
        "less",
    );
    assert_eq!(rep["p_value"], 1.0);
}

#[test]
fn judge_cli_sequential_t() {
    let f = fixtures();
    let c = &f["av_t"][1];
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        let text: String = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| format!("{x}\n"))
            .collect();
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (b, k) = (write("b", &c["baseline"]), write("c", &c["canary"]));
    let rep = judge_json(&[
        "--test",
        "sequential-t",
        "--baseline",
        &b,
        "--canary",
        &k,
        "--prior",
        &c["phi"].to_string(),
        "--batch",
        "1000",
    ]);
    assert_eq!(rep["looks"], 1, "{rep}");
    close(
        rep["statistic"].as_f64().unwrap(),
        c["t"].as_f64().unwrap(),
        1e-10,
        "t",
    );
    let ln_e = c["ln_e"].as_f64().unwrap();
    close(rep["ln_e"].as_f64().unwrap(), ln_e, 1e-9, "ln e");
    close(
        rep["p_value"].as_f64().unwrap(),
        (-ln_e).exp().min(1.0),
        1e-9,
        "p",
    );
}

#[test]
fn judge_cli_streams_savvi_vector() {
    // One line per event: cumulative errors, and totals growing 8000:2000 so
    // the traffic split is savvi's 0.8/0.2.
    let f = fixtures();
    let labels = f["savvi"]["labels"].as_str().unwrap();
    let (mut b, mut c) = (0u64, 0u64);
    let (mut bt, mut ct) = (String::from("# errors total\n"), String::new());
    for (i, ch) in labels.chars().enumerate() {
        if ch == '1' {
            c += 1;
        } else {
            b += 1;
        }
        let n = i as u64 + 1;
        bt += &format!("{b} {}\n", 8000 * n);
        ct += &format!("{c}/{}\n", 2000 * n);
    }
    let dir = tempfile::tempdir().unwrap();
    let (bp, cp) = (dir.path().join("b"), dir.path().join("c"));
    std::fs::write(&bp, bt).unwrap();
    std::fs::write(&cp, ct).unwrap();
    let rep = judge_json(&[
        "--test",
        "sequential-counts",
        "--baseline",
        bp.to_str().unwrap(),
        "--canary",
        cp.to_str().unwrap(),
    ]);
    assert_eq!(rep["decision"], "abort");
    assert_eq!(rep["stopped_at"], 209);
    assert_eq!(rep["looks"], 1000);
    close(
        rep["p_value"].as_f64().unwrap(),
        0.0455796317592,
        1e-9,
        "p at stop",
    );
    close(
        rep["e_value"].as_f64().unwrap(),
        1.0 / 0.0455796317592,
        1e-9,
        "E at stop",
    );
    assert_eq!(rep["n_canary"], 2000 * 210);

    // A stricter level never stops earlier.
    let rep = judge_json(&[
        "--test",
        "sequential-counts",
        "--alpha",
        "0.001",
        "--baseline",
        bp.to_str().unwrap(),
        "--canary",
        cp.to_str().unwrap(),
    ]);
    let at = rep["stopped_at"].as_u64();
    assert!(at.is_none_or(|a| a > 209), "{rep}");

    // Bad lines are named.
    std::fs::write(&cp, "1 10\n0 20\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_augur"))
        .args([
            "judge",
            "--test",
            "sequential-counts",
            "--baseline",
            bp.to_str().unwrap(),
            "--canary",
            cp.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2: counts are cumulative and must not decrease",
            cp.display()
        )),
        "{err}"
    );
}

#[test]
fn judge_cli_sequential_t_stops_at_first_crossing() {
    let f = fixtures();
    let c = &f["av_t"][4]; // 30 vs 45 values, a 1 sd shift, phi = 10
    let xs = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (b, k) = (xs(&c["baseline"]), xs(&c["canary"]));
    // Oracle: the library's e-value (checked against the reference above)
    // at each look: every 5 values per arm, then a last look at everything.
    let mut ends: Vec<(usize, usize)> = (1..=b.len().min(k.len()) / 5)
        .map(|i| (i * 5, i * 5))
        .collect();
    ends.push((b.len(), k.len()));
    let mut want = None;
    for (i, &(nb, nk)) in ends.iter().enumerate() {
        let (_, ln_e) = av_t_ln_e(&b[..nb], &k[..nk], 10.0).unwrap();
        if ln_e >= 20f64.ln() {
            want = Some((i, nk, ln_e));
            break;
        }
    }
    let (look, n_canary, ln_e) = want.expect("a 1 sd shift crosses within 45 values");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &[f64]| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.iter().map(|x| format!("{x}\n")).collect::<String>()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (bp, kp) = (write("b", &b), write("k", &k));
    let rep = judge_json(&[
        "--test",
        "sequential-t",
        "--batch",
        "5",
        "--prior",
        "10",
        "--baseline",
        &bp,
        "--canary",
        &kp,
    ]);
    assert_eq!(rep["decision"], "abort");
    assert_eq!(rep["stopped_at"], look as u64);
    close(rep["ln_e"].as_f64().unwrap(), ln_e, 1e-12, "ln e at stop");
    assert_eq!(rep["n_canary"], n_canary as u64);
    assert!(
        look + 1 < ends.len(),
        "the test should stop before the data runs out"
    );
}

#[test]
fn rate_ratio_confidence_sequence_matches_reference() {
    let f = fixtures();
    for c in f["count_cs"].as_array().unwrap() {
        let (lo, hi) = count_cs(
            c["baseline"].as_u64().unwrap(),
            c["canary"].as_u64().unwrap(),
            c["rho"].as_f64().unwrap(),
            c["k"].as_f64().unwrap(),
            c["alpha"].as_f64().unwrap(),
        )
        .unwrap();
        let what = format!("{c}");
        close(lo, c["ratio_low"].as_f64().unwrap(), 1e-9, &what);
        match c["ratio_high"].as_f64() {
            Some(h) => close(hi, h, 1e-9, &what),
            None => assert_eq!(hi, f64::INFINITY, "{what}"),
        }
    }
}

#[test]
fn confidence_sequence_excludes_one_exactly_when_the_test_aborts() {
    let threshold = 20f64.ln();
    let mut both = 0;
    for canary in (0..200).step_by(7) {
        for baseline in (0..200).step_by(11) {
            let ln_e = count_ln_e(baseline, canary, 0.3, 100.0, false).unwrap();
            let (lo, hi) = count_cs(baseline, canary, 0.3, 100.0, 0.05).unwrap();
            let excluded = lo > 1.0 || hi < 1.0;
            // Away from the boundary itself (bisection precision).
            if (ln_e - threshold).abs() > 1e-6 {
                assert_eq!(
                    excluded,
                    ln_e >= threshold,
                    "{baseline} {canary}: {ln_e} [{lo}, {hi}]"
                );
            }
            both += usize::from(excluded);
        }
    }
    assert!(both > 10);
}

#[test]
fn drifting_split_e_process_matches_reference_and_resumes() {
    let f = fixtures();
    for c in f["drifting"].as_array().unwrap() {
        let mut e = DriftingCounts::new(c["one_sided"].as_bool().unwrap());
        let intervals = c["intervals"].as_array().unwrap();
        for (i, iv) in intervals.iter().enumerate() {
            let n = |j: usize| iv[j].as_u64().unwrap();
            e.observe(
                Counts {
                    errors: n(0),
                    total: n(1),
                },
                Counts {
                    errors: n(2),
                    total: n(3),
                },
            )
            .unwrap();
            if i == intervals.len() / 2 {
                // A restart: the evidence goes through its stored form.
                let stored = serde_json::to_string(&e).unwrap();
                e = serde_json::from_str(&stored).unwrap();
            }
        }
        close(
            e.ln_e(),
            c["ln_e"].as_f64().unwrap(),
            1e-9,
            &format!("{}", c["ratio"]),
        );
    }
    // Errors above traffic are refused; an empty interval changes nothing.
    let mut e = DriftingCounts::new(false);
    assert!(e
        .observe(
            Counts {
                errors: 3,
                total: 2
            },
            Counts {
                errors: 0,
                total: 5
            }
        )
        .is_err());
    e.observe(
        Counts {
            errors: 0,
            total: 0,
        },
        Counts {
            errors: 0,
            total: 0,
        },
    )
    .unwrap();
    assert_eq!(e.ln_e(), 0.0);
}

#[test]
fn cdf_band_matches_confseq() {
    // confseq's own unit test: empirical_process_lil_bound(1000, .05, 100, .85).
    let b = CdfBound::new(0.05, 100.0).unwrap();
    close(b.eps(1000.0), 0.08204769, 1e-5, "confseq eps");
    assert_eq!(b.eps(99.0), f64::INFINITY);
    // C(alpha) as confseq solves it (reference notes).
    for (alpha, c) in [(0.05, 8.1227), (0.025, 8.6226), (0.01, 9.2835)] {
        let got = CdfBound::new(alpha, 1.0).unwrap().c;
        assert!((got - c).abs() < 2e-4, "C({alpha}) = {got}, want {c}");
    }
    // eps(1000, 0.05) with m = 1 is about twice the fixed-n DKW width.
    close(
        CdfBound::new(0.05, 1.0).unwrap().eps(1000.0),
        0.0858,
        1e-3,
        "eps m=1",
    );
}

#[test]
fn cdf_band_test_rejects_spread_and_respects_alpha() {
    // Deterministic quantiles of a log-normal: baseline vs the same median
    // with twice the spread (Mann-Whitney and t barely see it).
    let n = 4000;
    let q = |i: usize| augur::stats::norm_ppf((i as f64 + 0.5) / n as f64);
    let base: Vec<f64> = (0..n).map(|i| (5.0 + 0.3 * q(i)).exp()).collect();
    let wide: Vec<f64> = (0..n)
        .map(|i| (5.0 + 0.6 * q((i * 7919) % n)).exp())
        .collect();
    let (fb, fc) = sample_cdfs(&base, &wide);
    let l = band_look(&fb, &fc, n as f64, n as f64, 0.05, 1.0, false).unwrap();
    assert!(l.reject, "{l:?}");
    assert!(l.p_value < 0.05);
    // Same distribution: no rejection, p large.
    let (fb, fc) = sample_cdfs(&base, &base);
    let l = band_look(&fb, &fc, n as f64, n as f64, 0.05, 1.0, false).unwrap();
    assert!(!l.reject && l.p_value == 1.0, "{l:?}");
    // The same data bucketed at Prometheus-style `le` edges: CDFs at fewer
    // points, a gap no larger, the same verdict here.
    let edges = [50.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0];
    let bucket = |xs: &[f64]| -> Vec<f64> {
        edges
            .iter()
            .map(|&e| xs.iter().filter(|&&x| x <= e).count() as f64 / xs.len() as f64)
            .collect()
    };
    let (fb_full, fc_full) = sample_cdfs(&base, &wide);
    let full = band_look(&fb_full, &fc_full, n as f64, n as f64, 0.05, 1.0, false).unwrap();
    let hist = band_look(
        &bucket(&base),
        &bucket(&wide),
        n as f64,
        n as f64,
        0.05,
        1.0,
        false,
    )
    .unwrap();
    assert!(hist.gap <= full.gap + 1e-12);
    assert!(hist.reject, "{hist:?}");
    // p-value and rule agree: rejecting at alpha means p < alpha.
    let p = hist.p_value;
    assert!(
        band_look(
            &bucket(&base),
            &bucket(&wide),
            n as f64,
            n as f64,
            p * 1.01,
            1.0,
            false
        )
        .unwrap()
        .reject
    );
    assert!(
        !band_look(
            &bucket(&base),
            &bucket(&wide),
            n as f64,
            n as f64,
            p * 0.99,
            1.0,
            false
        )
        .unwrap()
        .reject
    );
}

#[test]
fn judge_cli_sequential_band_and_per_interval_counts() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2000;
    let q = |i: usize| augur::stats::norm_ppf((((i * 7919) % n) as f64 + 0.5) / n as f64);
    let base: String = (0..n)
        .map(|i| format!("{}\n", (5.0 + 0.3 * q(i)).exp()))
        .collect();
    let slow: String = (0..n)
        .map(|i| format!("{}\n", (5.2 + 0.3 * q((i * 31) % n)).exp()))
        .collect();
    let b = dir.path().join("b");
    let c = dir.path().join("c");
    std::fs::write(&b, &base).unwrap();
    std::fs::write(&c, &slow).unwrap();
    let rep = judge_json(&[
        "--test",
        "sequential-band",
        "--baseline",
        b.to_str().unwrap(),
        "--canary",
        c.to_str().unwrap(),
        "--batch",
        "100",
        "--alternative",
        "greater",
    ]);
    assert_eq!(rep["decision"], "abort", "{rep}");
    let at = rep["stopped_at"].as_u64().unwrap();
    assert!(at < 19, "{rep}");
    assert_eq!(rep["n_canary"], (at + 1) * 100);
    assert!(rep["p_value"].as_f64().unwrap() < 0.05);
    std::fs::write(&c, &base).unwrap();
    let rep = judge_json(&[
        "--test",
        "sequential-band",
        "--baseline",
        b.to_str().unwrap(),
        "--canary",
        c.to_str().unwrap(),
        "--batch",
        "100",
    ]);
    assert_eq!(rep["decision"], "continue", "{rep}");
    assert_eq!(rep["looks"], 20);

    // Per-interval splits: the canary's share ramps 5% -> 50% while its
    // error rate is twice the baseline's. The cumulative split misjudges a
    // ramp; the per-interval e-process uses each interval's own split.
    let f = fixtures();
    let case = &f["drifting"][1];
    let (mut cb, mut cc) = (String::new(), String::new());
    let (mut eb, mut nb, mut ec, mut nc) = (0, 0, 0, 0);
    for iv in case["intervals"].as_array().unwrap() {
        let x = |j: usize| iv[j].as_u64().unwrap();
        eb += x(0);
        nb += x(1);
        ec += x(2);
        nc += x(3);
        cb += &format!("{eb} {nb}\n");
        cc += &format!("{ec} {nc}\n");
    }
    std::fs::write(&b, cb).unwrap();
    std::fs::write(&c, cc).unwrap();
    let rep = judge_json(&[
        "--test",
        "sequential-counts",
        "--per-interval",
        "--baseline",
        b.to_str().unwrap(),
        "--canary",
        c.to_str().unwrap(),
        "--alpha",
        "1e-12",
    ]);
    close(
        rep["ln_e"].as_f64().unwrap(),
        case["ln_e"].as_f64().unwrap(),
        1e-9,
        "per-interval",
    );
    assert_eq!(rep["looks"], 20);
    // The cumulative form reports the rate-ratio confidence sequence.
    let rep = judge_json(&[
        "--test",
        "sequential-counts",
        "--baseline",
        "40/5000",
        "--canary",
        "60/5000",
    ]);
    let cs = &f["count_cs"][0];
    close(
        rep["ci_low"].as_f64().unwrap(),
        cs["ratio_low"].as_f64().unwrap(),
        1e-9,
        "cs low",
    );
    close(
        rep["ci_high"].as_f64().unwrap(),
        cs["ratio_high"].as_f64().unwrap(),
        1e-9,
        "cs high",
    );
}

#[test]
fn judge_cli_sequential_t_on_log_values() {
    // exp() of the fixture's normal samples: with --log the test sees the
    // fixture's values again and must give its e-value.
    let f = fixtures();
    let c = &f["av_t"][1];
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        let text: String = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| format!("{:?}\n", x.as_f64().unwrap().exp()))
            .collect();
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (b, cn) = (write("b", &c["baseline"]), write("c", &c["canary"]));
    let n = c["baseline"].as_array().unwrap().len().to_string();
    let rep = judge_json(&[
        "--test",
        "sequential-t",
        "--log",
        "--baseline",
        &b,
        "--canary",
        &cn,
        "--batch",
        &n,
        "--alpha",
        "1e-300",
    ]);
    close(
        rep["ln_e"].as_f64().unwrap(),
        c["ln_e"].as_f64().unwrap(),
        1e-9,
        "log ln_e",
    );
    // A value with no logarithm is refused, naming it.
    std::fs::write(dir.path().join("z"), "1\n0\n2\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_augur"))
        .args([
            "judge",
            "--test",
            "sequential-t",
            "--log",
            "--baseline",
            &b,
            "--canary",
        ])
        .arg(dir.path().join("z"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("canary sample holds 0; a log-scale test needs values above 0"));
}

#[test]
fn av_t_confidence_sequence_matches_reference_and_the_test() {
    let f = fixtures();
    for c in f["av_t_cs"].as_array().unwrap() {
        let got = av_t_cs_t_star(
            c["n_baseline"].as_f64().unwrap(),
            c["n_canary"].as_f64().unwrap(),
            c["phi"].as_f64().unwrap(),
            c["alpha"].as_f64().unwrap(),
        );
        match c["t_star"].as_f64() {
            Some(t) => close(got, t, 1e-9, &format!("{c}")),
            None => assert_eq!(got, f64::INFINITY, "{c}"),
        }
    }
    // Through the CLI: 0 leaves the sequence exactly when the test aborts.
    let dir = tempfile::tempdir().unwrap();
    for case in f["av_t"].as_array().unwrap() {
        let write = |name: &str, v: &Value| {
            let p = dir.path().join(name);
            let text: String = v
                .as_array()
                .unwrap()
                .iter()
                .map(|x| format!("{x}\n"))
                .collect();
            std::fs::write(&p, text).unwrap();
            p.to_str().unwrap().to_string()
        };
        let (b, c) = (write("b", &case["baseline"]), write("c", &case["canary"]));
        let n = case["baseline"]
            .as_array()
            .unwrap()
            .len()
            .max(case["canary"].as_array().unwrap().len());
        let phi = case["phi"].to_string();
        let rep = judge_json(&[
            "--test",
            "sequential-t",
            "--baseline",
            &b,
            "--canary",
            &c,
            "--batch",
            &n.to_string(),
            "--prior",
            &phi,
        ]);
        let (lo, hi) = (
            rep["ci_low"].as_f64().unwrap(),
            rep["ci_high"].as_f64().unwrap(),
        );
        let excludes = lo > 0.0 || hi < 0.0;
        assert_eq!(excludes, rep["decision"] == "abort", "{rep}");
        let est = rep["estimate"].as_f64().unwrap();
        assert!(lo <= est && est <= hi);
    }
}
