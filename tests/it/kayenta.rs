//! Kayenta compatibility (`augur judge --test kayenta`, `--canary-config`),
//! through the real binary: the Mann-Whitney interval against R
//! (`tests/stats/kayenta_fixtures.json`, from `gen_kayenta_fixtures.py`),
//! and the classifier and scorer against the outcomes Kayenta's own suites
//! expect (ClassifierSuite, ScorerSuite), written here as our own tables.

use serde_json::{json, Value};
use std::path::Path;

fn augur_judge(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_augur"))
        .arg("judge")
        .args(args)
        .output()
        .expect("run augur judge")
}

fn write(dir: &Path, name: &str, xs: &[f64]) -> String {
    let path = dir.join(name);
    let text: String = xs.iter().map(|x| format!("{x:?}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn kayenta(dir: &Path, baseline: &[f64], canary: &[f64], extra: &[&str]) -> Value {
    let b = write(dir, "baseline", baseline);
    let c = write(dir, "canary", canary);
    let mut args = vec![
        "--test",
        "kayenta",
        "--json",
        "--baseline",
        &b,
        "--canary",
        &c,
    ];
    args.extend_from_slice(extra);
    let out = augur_judge(&args);
    assert!(
        out.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn interval_and_estimate_match_r() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/stats/kayenta_fixtures.json"
    );
    let f: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = f["interval"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    let mut inverted = 0;
    for c in cases {
        let conf = c["confidence"].to_string();
        let r = kayenta(
            dir.path(),
            &floats(&c["baseline"]),
            &floats(&c["canary"]),
            &["--confidence", &conf],
        );
        for key in ["ci_low", "ci_high", "estimate"] {
            let (got, want) = (r[key].as_f64().unwrap(), c[key].as_f64().unwrap());
            assert!(
                (got - want).abs() <= 1e-9 * want.abs() + 1e-15,
                "{} {key}: got {got:e}, R {want:e}",
                c["name"]
            );
        }
        // Kayenta's absolute solver tolerance (1e-4) dwarfs metrics near
        // 1e-5 and can invert the interval; a port must do the same.
        if r["ci_low"].as_f64() > r["ci_high"].as_f64() {
            inverted += 1;
        }
    }
    assert!(inverted >= 1, "no fixture exercises the inverted interval");
}

/// A seeded N(mean, sd) sample (xorshift + Box-Muller), so the tables below
/// are reproducible without data files.
fn normal(seed: u64, n: usize, mean: f64, sd: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

struct Case {
    name: &'static str,
    baseline: Vec<f64>,
    canary: Vec<f64>,
    args: &'static [&'static str],
    label: &'static str,
    critical: bool,
}

/// The classifier's decisions, case by case as Kayenta's ClassifierSuite
/// expects them (its tests use tolerance 0.10 and confidence 0.95, or 0.20
/// and 0.98 for CLES).
#[test]
fn classifier_reproduces_kayentas_labels() {
    const SUITE: &[&str] = &["--tolerance", "0.10", "--confidence", "0.95"];
    let low = normal(1, 30, 10.0, 2.0);
    let mid = normal(2, 30, 10.0, 2.0);
    let high = normal(3, 30, 20.0, 2.0);
    let small_c = vec![1.0, 2.2, 1.1, 2.5, 3.0];
    let small_e = vec![20.0, 22.0, 21.0, 25.0, 30.0];
    let c = |name, baseline: &Vec<f64>, canary: &Vec<f64>, args, label, critical| Case {
        name,
        baseline: baseline.clone(),
        canary: canary.clone(),
        args,
        label,
        critical,
    };
    let cases = vec![
        c("pass", &mid, &low, &[], "Pass", false),
        c("high", &mid, &high, &[], "High", false),
        c("low", &high, &low, &[], "Low", false),
        c(
            "decrease ignored when direction=increase",
            &high,
            &low,
            &["--direction", "increase"],
            "Pass",
            false,
        ),
        c(
            "increase ignored when direction=decrease",
            &mid,
            &high,
            &["--direction", "decrease"],
            "Pass",
            false,
        ),
        c(
            "direction from --alternative greater",
            &mid,
            &high,
            &["--alternative", "greater"],
            "High",
            false,
        ),
        c(
            "direction from --alternative greater ignores a decrease",
            &high,
            &low,
            &["--alternative", "greater"],
            "Pass",
            false,
        ),
        c(
            "low with direction=decrease",
            &high,
            &low,
            &["--direction", "decrease"],
            "Low",
            false,
        ),
        c(
            "mean ratio above allowed increase",
            &small_c,
            &small_e,
            &["--allowed-decrease", "0.8", "--allowed-increase", "1.2"],
            "High",
            false,
        ),
        c(
            "mean ratio inside allowed band",
            &vec![20.0, 22.0, 21.0, 25.0, 30.0],
            &vec![10.0, 12.2, 10.1, 12.5, 23.0],
            &["--allowed-decrease", "0.5", "--allowed-increase", "1.0"],
            "Pass",
            false,
        ),
        c(
            "critical high",
            &small_c,
            &small_e,
            &[
                "--critical",
                "--critical-decrease",
                "1.0",
                "--critical-increase",
                "1.2",
            ],
            "High",
            true,
        ),
        c(
            "critical low",
            &vec![10.0, 20.2, 10.1, 20.5, 30.0],
            &vec![2.0, 2.0, 2.0, 2.0, 3.0],
            &[
                "--critical",
                "--critical-decrease",
                "1.2",
                "--critical-increase",
                "1.0",
            ],
            "Low",
            true,
        ),
        c(
            "critical metric below critical effect",
            &small_c,
            &small_e,
            &[
                "--critical",
                "--allowed-increase",
                "5",
                "--critical-increase",
                "13",
            ],
            "High",
            false,
        ),
        c(
            "critical metric inside allowed effect",
            &small_c,
            &small_e,
            &[
                "--critical",
                "--allowed-increase",
                "13",
                "--critical-increase",
                "15",
            ],
            "Pass",
            false,
        ),
        c(
            "critical with default thresholds",
            &small_c,
            &small_e,
            &["--critical"],
            "High",
            true,
        ),
        c(
            "all tied",
            &vec![1.0, 1.0],
            &vec![1.0, 1.0, 1.0],
            &["--direction", "decrease"],
            "Pass",
            false,
        ),
        c(
            "identical populations",
            &vec![5.0, 4.0, 3.0, 2.0, 1.0],
            &vec![1.0, 2.0, 3.0, 4.0, 5.0],
            &["--direction", "decrease"],
            "Pass",
            false,
        ),
        c(
            "leading zero",
            &vec![1.0; 5],
            &vec![0.0, 1.0, 1.0, 1.0, 1.0],
            &["--direction", "decrease"],
            "Pass",
            false,
        ),
        c(
            "missing canary",
            &vec![1.0, 2.0, 3.0, 4.0, 5.0],
            &vec![],
            &[],
            "Nodata",
            false,
        ),
        c(
            "missing canary, critical",
            &vec![1.0, 2.0, 3.0, 4.0, 5.0],
            &vec![],
            &["--critical"],
            "Nodata",
            true,
        ),
        c(
            "missing canary, must have data",
            &vec![1.0, 2.0, 3.0],
            &vec![],
            &["--must-have-data"],
            "NodataFailMetric",
            false,
        ),
        c(
            "missing canary, nan replace",
            &vec![1.0, 2.0, 3.0, 4.0, 5.0],
            &vec![],
            &["--nan-strategy", "replace"],
            "Pass",
            false,
        ),
        c(
            "majority tied",
            &vec![1.0; 5],
            &vec![1.0, 1.0, 1.0, 1.0, 10.0],
            &[],
            "Pass",
            false,
        ),
        c(
            "two constants (noise breaks the ties)",
            &vec![1.0; 5],
            &vec![10.0; 5],
            &[],
            "High",
            false,
        ),
        c(
            "two constants, baseline zero",
            &vec![0.0; 5],
            &vec![10.0; 5],
            &[],
            "High",
            false,
        ),
        c(
            "zero baseline mean: ratio NaN, gate ignored",
            &vec![0.0; 5],
            &vec![54.9, 54.5, 55.1, 55.6, 57.4],
            &["--allowed-decrease", "0.8", "--allowed-increase", "1.2"],
            "High",
            false,
        ),
        c(
            "zero canary mean",
            &vec![54.9, 54.5, 55.1, 55.6, 57.4],
            &vec![0.0; 5],
            &["--allowed-decrease", "0.8", "--allowed-increase", "1.2"],
            "Low",
            false,
        ),
        c(
            "zero mean, critical",
            &vec![0.0; 10],
            &vec![
                0.05, 0.05, 0.0167, 0.0167, 0.0167, 0.05, 0.0333, 0.05, 0.05, 0.1333,
            ],
            &[
                "--critical",
                "--critical-decrease",
                "0.8",
                "--critical-increase",
                "1.2",
                "--nan-strategy",
                "replace",
            ],
            "High",
            true,
        ),
        c(
            "both zero",
            &vec![0.0; 5],
            &vec![0.0; 5],
            &["--allowed-decrease", "0.8", "--allowed-increase", "1.2"],
            "Pass",
            false,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for case in &cases {
        let mut args: Vec<&str> = SUITE.to_vec();
        args.extend_from_slice(case.args);
        let r = kayenta(dir.path(), &case.baseline, &case.canary, &args);
        assert_eq!(r["classification"], case.label, "{}: {r}", case.name);
        assert_eq!(r["critical"], case.critical, "{}: {r}", case.name);
    }
    // Zero means make the ratio undefined (JSON null); no test means 1.
    let r = kayenta(
        dir.path(),
        &[0.0; 5],
        &[54.9, 54.5, 55.1, 55.6, 57.4],
        SUITE,
    );
    assert!(r["ratio"].is_null());
    let r = kayenta(dir.path(), &[0.0; 5], &[0.0; 5], SUITE);
    assert_eq!(r["ratio"], 1.0);
    // Kayenta's reasons.
    let r = kayenta(dir.path(), &[1.0, 2.0], &[], &["--name", "p99"]);
    assert_eq!(r["classification_reason"], "Missing data for p99");
    let r = kayenta(
        dir.path(),
        &small_c,
        &small_e,
        &["--name", "p99", "--critical"],
    );
    assert_eq!(
        r["classification_reason"],
        "The metric p99 was classified as High (Critical)"
    );
}

#[test]
fn cles_effect_size_gates_labels() {
    const CLES: &[&str] = &[
        "--tolerance",
        "0.20",
        "--confidence",
        "0.98",
        "--effect-size",
        "cles",
        "--allowed-decrease",
        "0.2",
        "--allowed-increase",
        "0.8",
    ];
    let dir = tempfile::tempdir().unwrap();
    // Clear shifts: CLES near 1 or 0 passes the gate.
    let r = kayenta(
        dir.path(),
        &normal(4, 30, 25.0, 2.0),
        &normal(5, 30, 21.0, 2.0),
        CLES,
    );
    assert_eq!(r["classification"], "Low", "{r}");
    let r = kayenta(
        dir.path(),
        &normal(6, 40, 1e-3, 2e-4),
        &normal(7, 40, 4e-3, 3e-4),
        CLES,
    );
    assert_eq!(r["classification"], "High", "{r}");
    // A significant but small shift (CLES ~0.7 < 0.8) is held back.
    let r = kayenta(
        dir.path(),
        &normal(8, 2000, 10.0, 2.0),
        &normal(9, 2000, 10.8, 2.0),
        CLES,
    );
    assert_eq!(r["classification"], "Pass", "{r}");
    let strict = kayenta(
        dir.path(),
        &normal(8, 2000, 10.0, 2.0),
        &normal(9, 2000, 10.8, 2.0),
        &CLES[..6],
    );
    assert_eq!(strict["classification"], "High", "{strict}");
}

#[test]
fn gaps_and_outliers_are_preprocessed() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let c = dir.path().join("c");
    std::fs::write(&b, "# control\nNaN\n1\n2\n3\nNaN\n").unwrap();
    std::fs::write(&c, "NaN\nNaN\n").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--test",
            "kayenta",
            "--json",
            "--baseline",
            b.to_str().unwrap(),
            "--canary",
            c.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = augur_judge(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let r = run(&[]);
    assert_eq!(r["classification"], "Nodata");
    assert_eq!(
        (r["n_baseline"].as_u64(), r["n_canary"].as_u64()),
        (Some(3), Some(0))
    );
    // Replaced gaps are zeros: the canary is all zeros, clearly lower.
    std::fs::write(&b, "11\n12\n13\n14\n15\n").unwrap();
    std::fs::write(&c, "NaN\nNaN\nNaN\nNaN\nNaN\n").unwrap();
    let r = run(&[
        "--nan-strategy",
        "replace",
        "--tolerance",
        "0.1",
        "--confidence",
        "0.95",
    ]);
    assert_eq!(r["n_canary"], 5);
    assert_eq!(r["classification"], "Low", "{r}");
    // IQR removal (factor 3, fences widened to P1/P99) drops the spike.
    let base = normal(10, 60, 100.0, 5.0);
    let mut can = normal(11, 60, 100.0, 5.0);
    can[7] = 1e6;
    let r = kayenta(dir.path(), &base, &can, &["--remove-outliers", "3"]);
    assert_eq!(r["n_canary"], 59, "{r}");
    let r = kayenta(dir.path(), &base, &can, &[]);
    assert_eq!(r["n_canary"], 60);
}

// ---- whole canary configs: Kayenta's scoring ----

/// Data that the classifier labels as asked (checked by the test above).
fn pair(name: &str, label: &str) -> Value {
    let (control, experiment): (Vec<Value>, Vec<Value>) = match label {
        "Pass" => (
            vec![json!(1.0), json!(2.0), json!(3.0)],
            vec![json!(3.0), json!(2.0), json!(1.0)],
        ),
        "High" => (
            normal(1, 30, 10.0, 2.0)
                .into_iter()
                .map(Value::from)
                .collect(),
            normal(3, 30, 20.0, 2.0)
                .into_iter()
                .map(Value::from)
                .collect(),
        ),
        "Low" => (
            normal(3, 30, 20.0, 2.0)
                .into_iter()
                .map(Value::from)
                .collect(),
            normal(1, 30, 10.0, 2.0)
                .into_iter()
                .map(Value::from)
                .collect(),
        ),
        // Jackson's spelling of a gap, and a null: both removed.
        "Nodata" => (
            vec![json!(1.0), json!(2.0)],
            vec![json!("NaN"), Value::Null],
        ),
        other => panic!("no data for {other}"),
    };
    json!({"name": name, "id": format!("id-{name}"), "tags": {"k": "v"},
           "values": {"control": control, "experiment": experiment}})
}

struct Metric {
    name: &'static str,
    group: &'static str,
    label: &'static str,
    critical: bool,
}

fn m(name: &'static str, group: &'static str, label: &'static str) -> Metric {
    Metric {
        name,
        group,
        label,
        critical: false,
    }
}

fn crit(mut x: Metric) -> Metric {
    x.critical = true;
    x
}

fn run_config(metrics: &[Metric], weights: Value, extra: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "name": "scorer-table",
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "metrics": metrics.iter().map(|x| json!({
            "name": x.name, "groups": [x.group], "scopeName": "default",
            "query": {"type": "prometheus", "metricName": x.name},
            "analysisConfigurations": {"canary": {"critical": x.critical}},
        })).collect::<Vec<_>>(),
        "classifier": {"groupWeights": weights},
    });
    let pairs: Vec<Value> = metrics.iter().map(|x| pair(x.name, x.label)).collect();
    let cp = dir.path().join("config.json");
    let pp = dir.path().join("pairs.json");
    std::fs::write(&cp, config.to_string()).unwrap();
    std::fs::write(&pp, Value::from(pairs).to_string()).unwrap();
    let mut args = vec![
        "--test",
        "kayenta",
        "--canary-config",
        cp.to_str().unwrap(),
        "--metric-pairs",
        pp.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = augur_judge(&args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        return (Value::Null, err);
    }
    (serde_json::from_slice(&out.stdout).unwrap(), err)
}

/// Kayenta's ScorerSuite expectations, with real metric data behind every
/// label.
#[test]
fn scorer_reproduces_kayentas_scores() {
    let none = json!({});
    let table: Vec<(&str, Vec<Metric>, Value, f64)> = vec![
        (
            "single pass",
            vec![m("a", "g", "Pass")],
            none.clone(),
            100.0,
        ),
        ("single high", vec![m("a", "g", "High")], none.clone(), 0.0),
        (
            "single nodata group",
            vec![m("a", "g", "Nodata")],
            none.clone(),
            0.0,
        ),
        (
            "pass group and nodata group",
            vec![
                m("a", "pass", "Pass"),
                m("b", "pass", "Pass"),
                m("c", "nodata", "Nodata"),
            ],
            none.clone(),
            100.0,
        ),
        (
            "one group, pass and high",
            vec![m("a", "g", "Pass"), m("b", "g", "High")],
            none.clone(),
            50.0,
        ),
        (
            "one group, pass high low",
            vec![m("a", "g", "Pass"), m("b", "g", "High"), m("c", "g", "Low")],
            none.clone(),
            33.33,
        ),
        (
            "weighted 75/25",
            vec![
                m("a", "group-1", "Pass"),
                m("b", "group-1", "Pass"),
                m("c", "group-2", "High"),
            ],
            json!({"group-1": 75.0, "group-2": 25.0}),
            75.0,
        ),
        (
            "weighted 50/50",
            vec![
                m("a", "group-1", "Pass"),
                m("b", "group-1", "High"),
                m("c", "group-2", "High"),
            ],
            json!({"group-1": 50, "group-2": 50}),
            25.0,
        ),
        (
            "weighted 50/50 with a nodata",
            vec![
                m("a", "group-1", "Pass"),
                m("b", "group-1", "Nodata"),
                m("c", "group-2", "High"),
            ],
            json!({"group-1": 50, "group-2": 50}),
            50.0,
        ),
        (
            "critical failure",
            vec![m("a", "g", "Pass"), crit(m("b", "g", "High"))],
            none.clone(),
            0.0,
        ),
        (
            "critical metric passing",
            vec![m("a", "g", "Low"), crit(m("b", "g", "Pass"))],
            none.clone(),
            50.0,
        ),
        (
            "critical nodata",
            vec![m("a", "g", "Pass"), crit(m("b", "g", "Nodata"))],
            none.clone(),
            0.0,
        ),
        (
            "weighted 15/85",
            vec![
                m("a", "group1", "High"),
                m("b", "group1", "Low"),
                m("c", "group1", "Pass"),
                m("d", "group2", "High"),
            ],
            json!({"group1": 15.0, "group2": 85.0}),
            5.0,
        ),
    ];
    for (name, metrics, weights, want) in table {
        let (r, err) = run_config(&metrics, weights, &[]);
        assert!(!r.is_null(), "{name}: {err}");
        for (x, res) in metrics.iter().zip(r["results"].as_array().unwrap()) {
            assert_eq!(res["classification"], x.label, "{name}: {}", x.name);
        }
        assert_eq!(r["score"]["score"], want, "{name}: {r}");
        let class = if want >= 95.0 {
            "Pass"
        } else if want >= 75.0 {
            "Marginal"
        } else {
            "Fail"
        };
        assert_eq!(r["score"]["classification"], class, "{name}");
    }
}

#[test]
fn judge_result_has_kayentas_shape() {
    let metrics = [
        m("latency", "perf", "High"),
        crit(m("errors", "errors", "Pass")),
        m("gone", "perf", "Nodata"),
    ];
    let (r, err) = run_config(&metrics, json!({}), &["--pass", "90", "--marginal", "40"]);
    assert!(!r.is_null(), "{err}");
    assert_eq!(r["judgeName"], "NetflixACAJudge-v1.0");
    let high = &r["results"][0];
    assert_eq!(high["name"], "latency");
    assert_eq!(high["id"], "id-latency");
    assert_eq!(high["tags"], json!({"k": "v"}));
    assert_eq!(high["groups"], json!(["perf"]));
    assert_eq!(
        high["classificationReason"],
        "latency was classified as High"
    );
    assert_eq!(high["experimentMetadata"]["stats"]["count"], 30);
    assert!(high["resultMetadata"]["ratio"].as_f64().unwrap() > 1.5);
    assert_eq!(
        r["results"][2]["classificationReason"],
        "Missing data for gone"
    );
    assert_eq!(r["results"][2]["resultMetadata"]["ratio"], 1.0);
    // perf: High + Nodata -> 0; errors: 100; two groups share 100 equally.
    let groups: Vec<(String, f64)> = r["groupScores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["score"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![("errors".to_string(), 100.0), ("perf".to_string(), 0.0)]
    );
    assert_eq!(r["score"]["score"], 50.0);
    assert_eq!(r["score"]["classification"], "Marginal");
    assert_eq!(r["score"]["classificationReason"], "");
    // The NODATA override reason.
    let (r, _) = run_config(
        &[m("a", "g", "Nodata"), m("b", "g", "Pass")],
        json!({}),
        &[],
    );
    assert_eq!(r["score"]["score"], 0.0);
    assert_eq!(
        r["score"]["classificationReason"],
        "Canary Failed: 50% or more metrics returned NODATA"
    );
    // A muted failing metric is reported but not scored.
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("c.json");
    let pp = dir.path().join("p.json");
    std::fs::write(
        &cp,
        json!({"metrics": [
        {"name": "a", "groups": ["g"], "analysisConfigurations": {"canary": {"muted": true}}},
        {"name": "b", "groups": ["g"]}]})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        &pp,
        json!([pair("a", "High"), pair("b", "Pass")]).to_string(),
    )
    .unwrap();
    let out = augur_judge(&[
        "--test",
        "kayenta",
        "--canary-config",
        cp.to_str().unwrap(),
        "--metric-pairs",
        pp.to_str().unwrap(),
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["results"][0]["classification"], "High");
    assert_eq!(r["results"][0]["muted"], true);
    assert_eq!(r["score"]["score"], 100.0);
}

#[test]
fn bad_kayenta_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("config.json");
    let pp = dir.path().join("pairs.json");
    std::fs::write(&pp, json!([pair("a", "Pass")]).to_string()).unwrap();
    let run = |config: &str| {
        std::fs::write(&cp, config).unwrap();
        let out = augur_judge(&[
            "--test",
            "kayenta",
            "--canary-config",
            cp.to_str().unwrap(),
            "--metric-pairs",
            pp.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{config}");
        assert!(out.stdout.is_empty());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = run("{\n  \"metrics\": [\n    {\"name\": \"a\",}\n  ]\n}");
    assert!(e.contains("config.json:3:"), "{e}");
    let e = run(
        r#"{"metrics": [{"name": "a", "analysisConfigurations": {"canary": {"critical": "yes"}}}]}"#,
    );
    assert!(
        e.contains("metrics[0].analysisConfigurations.canary.critical")
            && e.contains("expected true or false"),
        "{e}"
    );
    let e = run(r#"{"metrics": [{"name": "b"}]}"#);
    assert!(e.contains("Could not find metric config for a"), "{e}");
    let e = run(r#"{"metrics": [{"name": "a"}, {"name": "a"}]}"#);
    assert!(e.contains("used twice"), "{e}");
    std::fs::write(
        &pp,
        r#"[{"name": "a", "values": {"control": [1, "x"], "experiment": []}}]"#,
    )
    .unwrap();
    let e = run(r#"{"metrics": [{"name": "a"}]}"#);
    assert!(
        e.contains("pairs.json") && e.contains("[0].values.control[1]"),
        "{e}"
    );
    // Sample files: a bad line is named; a missing file too.
    let b = write(dir.path(), "b", &[1.0]);
    std::fs::write(dir.path().join("c"), "1\nfast\n").unwrap();
    let c = dir.path().join("c");
    let out = augur_judge(&[
        "--test",
        "kayenta",
        "--baseline",
        &b,
        "--canary",
        c.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("c:2: expected one number per line"));
}
