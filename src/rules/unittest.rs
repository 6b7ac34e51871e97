//! `augur test rules`: promtool's rule unit-test files
//! (`cmd/promtool/unittest.go`) with its semantics: every group evaluated
//! at every `evaluation_interval` step, only firing alerts compared, exact
//! labels and annotations, expression checks after the last step.
//! Floats compare with a relative tolerance of 1e-9, since the last bits
//! of a sum depend on summation order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::file::Scalar;
use super::group::{AlertState, EvalContext, GroupState};
use crate::duration;
use crate::labels::Labels;
use crate::promql::promqltest::{parse_series_desc, parse_values, SeqValue};
use crate::promql::{Engine, Value};
use crate::store::{stale_nan, Store};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    evaluation_interval: Option<Scalar>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    name: Option<String>,
    interval: Option<Scalar>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<PromqlTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, Scalar>,
    external_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: Scalar,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: Scalar,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Option<Vec<ExpAlert>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: Option<BTreeMap<String, Scalar>>,
    #[serde(default)]
    exp_annotations: Option<BTreeMap<String, Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTest {
    expr: String,
    eval_time: Scalar,
    #[serde(default)]
    exp_samples: Option<Vec<ExpSample>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    labels: String,
    #[serde(default)]
    value: f64,
    histogram: Option<String>,
}

fn dur(s: &Scalar) -> Result<i64, String> {
    duration::parse(&s.0)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| e.to_string())
}

fn fmt_dur(ms: i64) -> String {
    duration::format(Duration::from_millis(ms.max(0) as u64))
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`.
fn go_upper_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}E{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

fn indent_lines(s: &str, indent: &str) -> String {
    s.split('\n')
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

type LabelsAndAnnotations = Vec<(Labels, Labels)>;

fn la_string(la: &LabelsAndAnnotations) -> String {
    if la.is_empty() {
        return "[]".into();
    }
    let item = |(l, a): &(Labels, Labels)| {
        format!(
            "\nLabels:{}\nAnnotations:{}",
            l.prom_string(),
            a.prom_string()
        )
    };
    let mut s = format!("[\n0:{}", indent_lines(&item(&la[0]), "  "));
    for (i, x) in la[1..].iter().enumerate() {
        s.push_str(&format!(",\n{}:{}", i + 1, indent_lines(&item(x), "  ")));
    }
    s.push_str("\n]");
    s
}

fn close(a: f64, b: f64, fuzzy: bool) -> bool {
    if a == b {
        return true;
    }
    if a.is_nan() || b.is_nan() {
        return false;
    }
    if fuzzy {
        return false;
    }
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Outcome of one unit-test file.
#[derive(Debug, Default)]
pub struct UnitTestReport {
    /// messages of failed checks, formatted like promtool's
    pub errors: Vec<String>,
    /// warnings (rule-file globs that matched nothing)
    pub warnings: Vec<String>,
}

/// Runs one promtool unit-test file.
pub fn run_file(path: &Path) -> UnitTestReport {
    let mut report = UnitTestReport::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(format!("{}: {e}", path.display()));
            return report;
        }
    };
    let tf: TestFile = match serde_saphyr::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid YAML")
                    .to_string(),
            );
            return report;
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for rf in &tf.rule_files {
        let p = if Path::new(rf).is_absolute() {
            PathBuf::from(rf)
        } else {
            base.join(rf)
        };
        let pattern = p.to_string_lossy().to_string();
        let matched: Vec<PathBuf> = crate::pathglob::glob(&p).unwrap_or_default();
        if matched.is_empty() {
            report
                .warnings
                .push(format!("  WARNING: no file match pattern {pattern}"));
        }
        files.extend(matched);
    }
    let ei = match tf.evaluation_interval.as_ref().map(dur).transpose() {
        Ok(v) => v.unwrap_or(60_000),
        Err(e) => {
            report.errors.push(e);
            return report;
        }
    };
    let mut order: BTreeMap<String, usize> = BTreeMap::new();
    for (i, g) in tf.group_eval_order.iter().enumerate() {
        if order.insert(g.clone(), i).is_some() {
            report
                .errors
                .push(format!("group name repeated in evaluation order: {g}"));
            return report;
        }
    }
    for tg in &tf.tests {
        match run_group(tg, &files, ei, &order, tf.fuzzy_compare) {
            Ok(errs) => report.errors.extend(errs),
            Err(e) => report.errors.push(e),
        }
    }
    report
}

fn run_group(
    tg: &TestGroup,
    files: &[PathBuf],
    ei: i64,
    order: &BTreeMap<String, usize>,
    fuzzy: bool,
) -> Result<Vec<String>, String> {
    let interval = tg.interval.as_ref().map(dur).transpose()?.unwrap_or(ei);
    let store = Store::new();
    for s in &tg.input_series {
        let (labels, _) = parse_series_desc(&s.series)?;
        let vals = parse_values(&s.values.0)?;
        for (i, v) in vals.iter().enumerate() {
            let t = i as i64 * interval;
            let r = match v {
                SeqValue::Value(f) => store.append(&labels, t, *f),
                SeqValue::Stale => store.append(&labels, t, stale_nan()),
                _ => continue,
            };
            r.map_err(|e| format!("cannot load series {labels}: {e:?}"))?;
        }
    }
    let mut groups: Vec<GroupState> = Vec::new();
    for f in files {
        let rf = super::file::load(f).map_err(|e| e.join("\n"))?;
        for g in &rf.groups {
            let mut gs = GroupState::new(
                &f.to_string_lossy(),
                g,
                Duration::from_millis(interval as u64),
            )?;
            for r in &mut gs.rules {
                r.restored = true;
            }
            groups.push(gs);
        }
    }
    // Unlisted groups sort as position 0, like promtool's orderedGroups.
    groups.sort_by_key(|g| order.get(&g.name).copied().unwrap_or(0));

    let ext: BTreeMap<String, String> = tg
        .external_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    let ext_url = tg.external_url.clone().unwrap_or_default();
    let engine = Engine {
        default_subquery_step: Duration::from_millis(ei as u64),
        ..Engine::default()
    };
    let cx = EvalContext {
        store: &store,
        engine: &engine,
        external_labels: &ext,
        external_url: &ext_url,
        clock: None,
        remote: None,
        store_results: true,
    };
    let name_line = tg
        .name
        .as_ref()
        .map(|n| format!("    name: {n},\n"))
        .unwrap_or_default();

    let mut alert_times: Vec<i64> = Vec::new();
    for a in &tg.alert_rule_test {
        let t = dur(&a.eval_time)?;
        if a.alertname.is_empty() {
            let in_group = tg
                .name
                .as_ref()
                .map(|n| format!(" (in TestGroup {n})"))
                .unwrap_or_default();
            return Err(format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                fmt_dur(t)
            ));
        }
        alert_times.push(t);
    }
    alert_times.sort_unstable();
    alert_times.dedup();
    let mut max_t = alert_times.last().copied().unwrap_or(0);
    for p in &tg.promql_expr_test {
        max_t = max_t.max(dur(&p.eval_time)?);
    }

    let mut errs = Vec::new();
    let mut curr = 0;
    let mut ts = 0;
    while ts <= max_t {
        let mut eval_errs = Vec::new();
        for g in &mut groups {
            g.eval(ts, &cx);
            for r in &g.rules {
                if let Some(e) = &r.last_error {
                    eval_errs.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        r.rule.name(),
                        fmt_dur(ts)
                    ));
                }
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return Ok(errs);
        }
        while curr < alert_times.len() && ts <= alert_times[curr] && alert_times[curr] < ts + ei {
            let t = alert_times[curr];
            for case in tg
                .alert_rule_test
                .iter()
                .filter(|a| dur(&a.eval_time).ok() == Some(t))
            {
                let mut got: LabelsAndAnnotations = Vec::new();
                for g in &groups {
                    for r in g
                        .rules
                        .iter()
                        .filter(|r| r.rule.alert.as_deref() == Some(&case.alertname))
                    {
                        for a in r.active.values().filter(|a| a.state == AlertState::Firing) {
                            got.push((
                                a.labels.clone(),
                                Labels::from_pairs(
                                    a.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                                ),
                            ));
                        }
                    }
                }
                let mut exp: LabelsAndAnnotations = case
                    .exp_alerts
                    .iter()
                    .flatten()
                    .map(|e| {
                        let mut l: Vec<(String, String)> = e
                            .exp_labels
                            .iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.0.clone()))
                            .collect();
                        l.push(("alertname".into(), case.alertname.clone()));
                        let a = e
                            .exp_annotations
                            .iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.0.clone()));
                        (Labels::from_pairs(l), Labels::from_pairs(a))
                    })
                    .collect();
                got.sort();
                exp.sort();
                if got != exp {
                    errs.push(format!(
                        "{name_line}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        case.alertname,
                        fmt_dur(t),
                        indent_lines(&la_string(&exp), "            "),
                        indent_lines(&la_string(&got), "            ")
                    ));
                }
            }
            curr += 1;
        }
        ts += ei;
    }

    'cases: for p in &tg.promql_expr_test {
        let t = dur(&p.eval_time)?;
        let got = crate::promql::parse(&p.expr).and_then(|e| engine.instant(&store, &e, t));
        let mut got: Vec<(Labels, f64)> = match got {
            Err(e) => {
                errs.push(format!(
                    "    expr: {:?}, time: {}, err: {e}",
                    p.expr,
                    fmt_dur(t)
                ));
                continue;
            }
            Ok(r) => match r.value {
                Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
                Value::Scalar(f) => vec![(Labels::default(), f)],
                other => {
                    errs.push(format!(
                        "    expr: {:?}, time: {}, err: rule result is not a vector or scalar: {}",
                        p.expr,
                        fmt_dur(t),
                        other.type_name()
                    ));
                    continue;
                }
            },
        };
        let mut exp: Vec<(Labels, f64)> = Vec::new();
        for s in p.exp_samples.iter().flatten() {
            if s.histogram.is_some() {
                errs.push(format!(
                    "    expr: {:?}, time: {}, err: native histograms are not supported",
                    p.expr,
                    fmt_dur(t)
                ));
                continue 'cases;
            }
            match parse_series_desc(&format!("{} 0", s.labels)) {
                Ok((l, _)) => exp.push((l, s.value)),
                Err(e) => {
                    errs.push(format!(
                        "    expr: {:?}, time: {}, err: labels {:?}: {e}",
                        p.expr,
                        fmt_dur(t),
                        s.labels
                    ));
                    continue 'cases;
                }
            }
        }
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        let same = got.len() == exp.len()
            && got
                .iter()
                .zip(&exp)
                .all(|(g, e)| g.0 == e.0 && close(g.1, e.1, fuzzy));
        if !same {
            let show = |v: &[(Labels, f64)]| {
                if v.is_empty() {
                    "nil".to_string()
                } else {
                    v.iter()
                        .map(|(l, f)| format!("{} {}", l.prom_string(), go_upper_e(*f)))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            errs.push(format!(
                "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
                p.expr,
                fmt_dur(t),
                show(&exp),
                show(&got)
            ));
        }
    }
    Ok(errs)
}
