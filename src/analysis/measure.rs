//! One metric's measurement from its query results ([`measure`]): values
//! out of PromQL results, threshold and relative checks, fixed and
//! sequential tests with the evidence they carry between intervals. Pure:
//! no I/O, no clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::template::{Check, Direction, Metric, NoData};
use crate::promql::Value;
use crate::stats::judge::{self, Options, TestKind};
use crate::stats::sequential::{band_look, AnytimeP, DriftingCounts, Moments};
use crate::stats::{kayenta, Alternative, Counts};

/// A measurement's or metric's phase (Argo's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    /// Passed.
    Successful,
    /// Still measuring (metrics only).
    Running,
    /// Neither passed nor failed (e.g. no data).
    Inconclusive,
    /// The measurement could not be taken (query error).
    Error,
    /// Failed.
    Failed,
}

impl Phase {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Successful => "successful",
            Phase::Running => "running",
            Phase::Inconclusive => "inconclusive",
            Phase::Error => "error",
            Phase::Failed => "failed",
        }
    }
}

/// What the queries of one metric returned, per arm.
pub enum Fetched {
    /// Value queries.
    Values {
        /// Baseline result (None when the metric has no baseline query).
        baseline: Option<Value>,
        /// Canary result.
        canary: Value,
    },
    /// Count queries: (errors, total) per arm.
    Counts {
        /// Baseline errors and total.
        baseline: (Value, Value),
        /// Canary errors and total.
        canary: (Value, Value),
    },
}

/// Sequential evidence carried from one measurement to the next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Evidence {
    /// Count e-process with a per-interval split.
    Counts {
        /// The e-process.
        process: DriftingCounts,
        /// Anytime p so far.
        p: f64,
        /// Look at which it crossed, if it did.
        stopped_at: Option<u32>,
        /// Looks so far.
        looks: u32,
    },
    /// Anytime-valid t-test on running moments.
    T {
        /// Baseline moments.
        baseline: Moments,
        /// Canary moments.
        canary: Moments,
        /// Anytime p so far.
        p: f64,
        /// Look at which it crossed.
        stopped_at: Option<u32>,
        /// Looks so far.
        looks: u32,
    },
    /// CDF band on cumulative histogram buckets (`le` → count).
    Band {
        /// Baseline cumulative bucket counts.
        baseline: BTreeMap<String, f64>,
        /// Canary cumulative bucket counts.
        canary: BTreeMap<String, f64>,
        /// Anytime p so far.
        p: f64,
        /// Look at which it crossed.
        stopped_at: Option<u32>,
        /// Looks so far.
        looks: u32,
    },
}

impl Measurement {
    /// Whether the queries returned nothing to judge (no data or an error).
    pub fn lacks_data(&self) -> bool {
        self.phase == Phase::Error || self.detail.get("no_data").is_some()
    }
}

/// One metric's measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Metric name.
    pub metric: String,
    /// Outcome.
    pub phase: Phase,
    /// A sentence a person can read.
    pub message: String,
    /// Baseline value (single value, median, mean or error rate).
    pub baseline: Option<f64>,
    /// Canary value.
    pub canary: Option<f64>,
    /// Numbers behind the verdict (test report, bounds).
    pub detail: serde_json::Value,
}

fn values(v: &Value, nan_replace: bool) -> Vec<f64> {
    let raw: Vec<f64> = match v {
        Value::Scalar(x) => vec![*x],
        Value::String(_) => Vec::new(),
        Value::Vector(s) => s.iter().map(|s| s.v).collect(),
        Value::Matrix(m) => m
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .collect(),
    };
    raw.into_iter()
        .filter_map(|x| {
            if x.is_nan() {
                nan_replace.then_some(0.0)
            } else {
                Some(x)
            }
        })
        .collect()
}

fn one(v: &[f64], arm: &str) -> Result<Option<f64>, String> {
    match v {
        [] => Ok(None),
        [x] => Ok(Some(*x)),
        more => Err(format!(
            "the {arm} query returned {} values; this check needs one (aggregate it with sum, avg or max)",
            more.len()
        )),
    }
}

fn fmt(x: f64, unit: &str) -> String {
    let s = judge::sig(x);
    if unit.is_empty() {
        s
    } else {
        format!("{s} {unit}")
    }
}

fn alternative(d: Direction) -> Alternative {
    match d {
        Direction::Increase => Alternative::Greater,
        Direction::Decrease => Alternative::Less,
        Direction::Either => Alternative::TwoSided,
    }
}

fn no_data(m: &Metric, what: &str) -> Measurement {
    let phase = match m.no_data {
        NoData::Fail => Phase::Failed,
        NoData::Inconclusive => Phase::Inconclusive,
        NoData::Pass => Phase::Successful,
    };
    Measurement {
        metric: m.name.clone(),
        phase,
        message: format!(
            "{}: no data ({what}); counted as {}",
            m.name,
            phase.as_str()
        ),
        baseline: None,
        canary: None,
        detail: json!({"no_data": what}),
    }
}

fn error(m: &Metric, msg: String) -> Measurement {
    Measurement {
        metric: m.name.clone(),
        phase: Phase::Error,
        message: format!("{}: {msg}", m.name),
        baseline: None,
        canary: None,
        detail: json!({"error": msg}),
    }
}

/// Judges one metric from its query results. `fetched` is the queries'
/// outcome (an error message when one failed); `evidence` is the metric's
/// sequential state, updated in place; `look` counts this run's intervals;
/// `level` is this metric's share of the sequential alpha.
pub fn measure(
    m: &Metric,
    fetched: Result<Fetched, String>,
    evidence: &mut Option<Evidence>,
    look: u32,
    level: f64,
) -> Measurement {
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => return error(m, e),
    };
    match (&m.check, fetched) {
        (Check::Threshold { min, max }, Fetched::Values { canary, .. }) => {
            let c = match one(&values(&canary, m.nan_replace), "canary") {
                Ok(Some(c)) => c,
                Ok(None) => return no_data(m, "the canary query returned nothing"),
                Err(e) => return error(m, e),
            };
            let ok = min.is_none_or(|lo| c >= lo) && max.is_none_or(|hi| c <= hi);
            let range = match (min, max) {
                (Some(lo), Some(hi)) => {
                    format!("allowed [{}, {}]", fmt(*lo, &m.unit), fmt(*hi, &m.unit))
                }
                (Some(lo), None) => format!("minimum {}", fmt(*lo, &m.unit)),
                (None, Some(hi)) => format!("maximum {}", fmt(*hi, &m.unit)),
                (None, None) => "no bounds".into(),
            };
            Measurement {
                metric: m.name.clone(),
                phase: if ok { Phase::Successful } else { Phase::Failed },
                message: format!(
                    "canary {} {} ({range}): {}",
                    m.name,
                    fmt(c, &m.unit),
                    if ok { "within" } else { "outside the range" }
                ),
                baseline: None,
                canary: Some(c),
                detail: json!({"min": min, "max": max}),
            }
        }
        (
            Check::Relative {
                max_ratio,
                min_ratio,
                max_delta,
                min_delta,
            },
            Fetched::Values { baseline, canary },
        ) => {
            let b = baseline.map(|b| one(&values(&b, m.nan_replace), "baseline"));
            let c = one(&values(&canary, m.nan_replace), "canary");
            let (b, c) = match (b, c) {
                (Some(Err(e)), _) | (_, Err(e)) => return error(m, e),
                (Some(Ok(Some(b))), Ok(Some(c))) => (b, c),
                (_, Ok(None)) => return no_data(m, "the canary query returned nothing"),
                _ => return no_data(m, "the baseline query returned nothing"),
            };
            let ratio = if b != 0.0 {
                c / b
            } else if c == 0.0 {
                1.0
            } else {
                f64::INFINITY * c.signum()
            };
            let delta = c - b;
            let mut broken = Vec::new();
            if let Some(r) = max_ratio.filter(|&r| ratio > r) {
                broken.push(format!("ratio above {}", fmt(r, "")));
            }
            if let Some(r) = min_ratio.filter(|&r| ratio < r) {
                broken.push(format!("ratio below {}", fmt(r, "")));
            }
            if let Some(d) = max_delta.filter(|&d| delta > d) {
                broken.push(format!("difference above {}", fmt(d, &m.unit)));
            }
            if let Some(d) = min_delta.filter(|&d| delta < d) {
                broken.push(format!("difference below {}", fmt(d, &m.unit)));
            }
            let pct = if b != 0.0 && ratio.is_finite() {
                format!(" ({:+.1}%)", 100.0 * (ratio - 1.0))
            } else {
                String::new()
            };
            Measurement {
                metric: m.name.clone(),
                phase: if broken.is_empty() {
                    Phase::Successful
                } else {
                    Phase::Failed
                },
                message: format!(
                    "canary {} {} vs baseline {}{pct}: {}",
                    m.name,
                    fmt(c, &m.unit),
                    fmt(b, &m.unit),
                    if broken.is_empty() {
                        "within limits".to_string()
                    } else {
                        broken.join(", ")
                    }
                ),
                baseline: Some(b),
                canary: Some(c),
                detail: json!({"ratio": if ratio.is_finite() { json!(ratio) } else { json!(null) }, "delta": delta}),
            }
        }
        (
            Check::Test {
                test,
                alpha,
                confidence,
                log,
            },
            fetched,
        ) => measure_test(
            m,
            *test,
            *alpha,
            *confidence,
            *log,
            fetched,
            evidence,
            look,
            level,
        ),
        _ => error(m, "the metric's queries do not fit its check".into()),
    }
}

fn verdict_from_report(m: &Metric, rep: &judge::Report, failed: bool) -> Measurement {
    Measurement {
        metric: m.name.clone(),
        phase: if failed {
            Phase::Failed
        } else {
            Phase::Successful
        },
        message: rep.sentence(&m.name, &m.unit),
        baseline: rep.baseline_value,
        canary: rep.canary_value,
        detail: serde_json::to_value(rep).unwrap_or_default(),
    }
}

/// Rounds a counter query's value to a count; negative or NaN is an error.
fn count_of(v: &Value, what: &str) -> Result<Option<u64>, String> {
    // NaN is not "no requests": it means the query computed nothing
    // countable (e.g. 0/0), and must not pass as zero errors.
    let raw = values(v, true);
    if values(v, false).len() != raw.len() {
        return Err(format!(
            "the {what} query returned NaN; expected a count of 0 or more"
        ));
    }
    match one(&raw, what)? {
        None => Ok(None),
        Some(x) if x >= 0.0 && x.is_finite() => Ok(Some(x.round() as u64)),
        Some(x) => Err(format!(
            "the {what} query returned {x}; expected a count of 0 or more"
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn measure_test(
    m: &Metric,
    kind: TestKind,
    alpha: f64,
    confidence: f64,
    log: bool,
    fetched: Fetched,
    evidence: &mut Option<Evidence>,
    look: u32,
    level: f64,
) -> Measurement {
    let alt = alternative(m.direction);
    let opts = Options {
        alt,
        confidence,
        continuity: true,
        prior: 100.0,
        alpha,
        batch: 1,
        per_interval: false,
        log: false,
    };
    match fetched {
        Fetched::Counts { baseline, canary } => {
            let counts = |(e, t): &(Value, Value), arm: &str| -> Result<Option<Counts>, String> {
                let errors = count_of(e, &format!("{arm} errors"))?;
                let total = count_of(t, &format!("{arm} total"))?;
                match (errors, total) {
                    (_, None) | (_, Some(0)) => Ok(None),
                    (e, Some(t)) => {
                        let e = e.unwrap_or(0);
                        if e > t {
                            return Err(format!("{arm}: {e} errors out of {t} requests; errors must not exceed the total"));
                        }
                        Ok(Some(Counts {
                            errors: e,
                            total: t,
                        }))
                    }
                }
            };
            let (b, c) = match (counts(&baseline, "baseline"), counts(&canary, "canary")) {
                (Err(e), _) | (_, Err(e)) => return error(m, e),
                (Ok(None), _) => return no_data(m, "no baseline traffic"),
                (_, Ok(None)) => return no_data(m, "no canary traffic"),
                (Ok(Some(b)), Ok(Some(c))) => (b, c),
            };
            if kind == TestKind::SequentialCounts {
                let (mut process, mut p, mut stopped, looks) = match evidence.take() {
                    Some(Evidence::Counts {
                        process,
                        p,
                        stopped_at,
                        looks,
                    }) => (process, p, stopped_at, looks),
                    _ => (
                        DriftingCounts::new(alt != Alternative::TwoSided),
                        1.0,
                        None,
                        0,
                    ),
                };
                let obs = if alt == Alternative::Less {
                    process.observe(c, b)
                } else {
                    process.observe(b, c)
                };
                if let Err(e) = obs {
                    *evidence = Some(Evidence::Counts {
                        process,
                        p,
                        stopped_at: stopped,
                        looks,
                    });
                    return error(m, e.to_string());
                }
                let ln_e = process.ln_e();
                p = AnytimeP::resume(p).observe(ln_e);
                if stopped.is_none() && ln_e >= (1.0 / level).ln() {
                    stopped = Some(look);
                }
                *evidence = Some(Evidence::Counts {
                    process,
                    p,
                    stopped_at: stopped,
                    looks: looks + 1,
                });
                let rb = b.errors as f64 / b.total as f64;
                let rc = c.errors as f64 / c.total as f64;
                let failed = stopped.is_some();
                return Measurement {
                    metric: m.name.clone(),
                    phase: if failed { Phase::Failed } else { Phase::Successful },
                    message: format!(
                        "{}: canary error rate {}% ({} of {}) vs baseline {}% ({} of {}) this interval, e-value {} (abort at {}, anytime {}){}",
                        m.name, judge::sig(100.0 * rc), c.errors, c.total, judge::sig(100.0 * rb), b.errors, b.total,
                        judge::sig(ln_e.exp()), judge::sig(1.0 / level), judge::p_text(p),
                        if failed { ": abort" } else { ": continue" }
                    ),
                    baseline: Some(rb),
                    canary: Some(rc),
                    detail: json!({"ln_e": ln_e, "e_value": ln_e.exp(), "p_value": p, "level": level, "stopped_at": stopped}),
                };
            }
            match judge::judge_counts(kind, &[b], &[c], &opts) {
                Ok(rep) => {
                    let failed = rep.p_value < alpha;
                    verdict_from_report(m, &rep, failed)
                }
                Err(e) => error(m, e.to_string()),
            }
        }
        Fetched::Values { baseline, canary } => {
            let Some(baseline) = baseline else {
                return error(m, "a test needs a baseline query".into());
            };
            if kind == TestKind::SequentialBand {
                return band(m, &baseline, &canary, evidence, look, level);
            }
            let tf = |v: &Value| -> Vec<f64> {
                let xs = values(v, m.nan_replace);
                if log {
                    xs.into_iter().filter(|x| *x > 0.0).map(f64::ln).collect()
                } else {
                    xs
                }
            };
            let (b, c) = (tf(&baseline), tf(&canary));
            if kind == TestKind::Kayenta {
                let mut cfg = kayenta::MetricConfig::new(&m.name, vec![m.group.clone()]);
                cfg.direction = match m.direction {
                    Direction::Increase => kayenta::Direction::Increase,
                    Direction::Decrease => kayenta::Direction::Decrease,
                    Direction::Either => kayenta::Direction::Either,
                };
                cfg.critical = m.critical;
                let classifier = kayenta::Classifier {
                    tolerance: 0.25,
                    confidence,
                };
                let rep = judge::judge_kayenta(&b, &c, &cfg, &classifier);
                return match rep.classification {
                    Some("Nodata") => no_data(m, "Kayenta: missing data"),
                    Some("Error") => error(
                        m,
                        rep.classification_reason
                            .clone()
                            .flatten()
                            .unwrap_or_default(),
                    ),
                    Some("Pass") => verdict_from_report(m, &rep, false),
                    _ => verdict_from_report(m, &rep, true),
                };
            }
            if b.is_empty() {
                return no_data(m, "the baseline query returned nothing");
            }
            if c.is_empty() {
                return no_data(m, "the canary query returned nothing");
            }
            if kind == TestKind::SequentialT {
                let (mut mb, mut mc, p, mut stopped, looks) = match evidence.take() {
                    Some(Evidence::T {
                        baseline,
                        canary,
                        p,
                        stopped_at,
                        looks,
                    }) => (baseline, canary, p, stopped_at, looks),
                    _ => (Moments::default(), Moments::default(), 1.0, None, 0),
                };
                b.iter().for_each(|&x| mb.push(x));
                c.iter().for_each(|&x| mc.push(x));
                let result =
                    crate::stats::sequential::av_t_ln_e_moments(mb.triple(), mc.triple(), 100.0);
                let (t, ln_e) = match result {
                    Ok(v) => v,
                    Err(_) => {
                        // Too few values so far: keep gathering.
                        *evidence = Some(Evidence::T {
                            baseline: mb,
                            canary: mc,
                            p,
                            stopped_at: stopped,
                            looks: looks + 1,
                        });
                        return Measurement {
                            metric: m.name.clone(),
                            phase: Phase::Successful,
                            message: format!(
                                "{}: gathering data ({} baseline, {} canary values so far)",
                                m.name, mb.n, mc.n
                            ),
                            baseline: None,
                            canary: None,
                            detail: json!({}),
                        };
                    }
                };
                // One-sided use: only a change in the bad direction counts.
                let bad = match m.direction {
                    Direction::Increase => t > 0.0,
                    Direction::Decrease => t < 0.0,
                    Direction::Either => true,
                };
                let ln_e_dir = if bad { ln_e } else { ln_e.min(0.0) };
                let p = AnytimeP::resume(p).observe(ln_e_dir);
                if stopped.is_none() && ln_e_dir >= (1.0 / level).ln() {
                    stopped = Some(look);
                }
                *evidence = Some(Evidence::T {
                    baseline: mb,
                    canary: mc,
                    p,
                    stopped_at: stopped,
                    looks: looks + 1,
                });
                let unexp = |x: f64| if log { x.exp() } else { x };
                let failed = stopped.is_some();
                return Measurement {
                    metric: m.name.clone(),
                    phase: if failed { Phase::Failed } else { Phase::Successful },
                    message: format!(
                        "canary {} {} {} vs baseline {} ({} and {} values), e-value {} (abort at {}, anytime {}){}",
                        m.name,
                        if log { "geometric mean" } else { "mean" },
                        fmt(unexp(mc.mean), &m.unit),
                        fmt(unexp(mb.mean), &m.unit),
                        mc.n, mb.n, judge::sig(ln_e_dir.exp()), judge::sig(1.0 / level), judge::p_text(p),
                        if failed { ": abort" } else { ": continue" }
                    ),
                    baseline: Some(unexp(mb.mean)),
                    canary: Some(unexp(mc.mean)),
                    detail: json!({"t": t, "ln_e": ln_e_dir, "p_value": p, "level": level, "stopped_at": stopped}),
                };
            }
            match judge::judge_samples(kind, &b, &c, &opts) {
                Ok(rep) => {
                    let failed = rep.p_value < alpha;
                    verdict_from_report(m, &rep, failed)
                }
                Err(e) => error(m, e.to_string()),
            }
        }
    }
}

/// Cumulative histogram buckets by `le` from a vector of bucket series.
fn buckets(v: &Value) -> Result<BTreeMap<String, f64>, String> {
    let Value::Vector(samples) = v else {
        return Err(format!(
            "sequential-band needs histogram buckets as an instant vector with `le` labels (e.g. sum by (le) (increase(x_bucket[{{{{ interval }}}}]))), got a {}",
            v.type_name()
        ));
    };
    let mut out = BTreeMap::new();
    for s in samples {
        let Some(le) = s.labels.get("le") else {
            return Err(
                "sequential-band needs histogram buckets: a series has no `le` label".into(),
            );
        };
        if !s.v.is_nan() {
            *out.entry(le.to_string()).or_insert(0.0) += s.v;
        }
    }
    Ok(out)
}

fn band(
    m: &Metric,
    baseline: &Value,
    canary: &Value,
    evidence: &mut Option<Evidence>,
    look: u32,
    level: f64,
) -> Measurement {
    let (nb, nc) = match (buckets(baseline), buckets(canary)) {
        (Err(e), _) | (_, Err(e)) => return error(m, e),
        (Ok(b), Ok(c)) => (b, c),
    };
    let (mut cb, mut cc, p, mut stopped, looks) = match evidence.take() {
        Some(Evidence::Band {
            baseline,
            canary,
            p,
            stopped_at,
            looks,
        }) => (baseline, canary, p, stopped_at, looks),
        _ => (BTreeMap::new(), BTreeMap::new(), 1.0, None, 0),
    };
    for (le, v) in nb {
        *cb.entry(le).or_insert(0.0) += v;
    }
    for (le, v) in nc {
        *cc.entry(le).or_insert(0.0) += v;
    }
    let keep = |p: f64, stopped: Option<u32>, cb, cc| Evidence::Band {
        baseline: cb,
        canary: cc,
        p,
        stopped_at: stopped,
        looks: looks + 1,
    };
    // Common edges, in numeric order; +Inf holds the totals.
    let mut edges: Vec<(f64, String)> = cb
        .keys()
        .filter(|k| cc.contains_key(*k))
        .filter_map(|k| crate::expfmt::parse_go_float(k).map(|v| (v, k.clone())))
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (tb, tc) = (
        cb.get("+Inf").copied().unwrap_or(0.0),
        cc.get("+Inf").copied().unwrap_or(0.0),
    );
    if tb <= 0.0 || tc <= 0.0 {
        *evidence = Some(keep(p, stopped, cb, cc));
        return no_data(
            m,
            "no observations in the histogram buckets yet (or no +Inf bucket)",
        );
    }
    let fb: Vec<f64> = edges.iter().map(|(_, k)| cb[k] / tb).collect();
    let fc: Vec<f64> = edges.iter().map(|(_, k)| cc[k] / tc).collect();
    let greater = m.direction == Direction::Increase;
    let (fb2, fc2) = if m.direction == Direction::Decrease {
        (fc, fb)
    } else {
        (fb, fc)
    };
    let l = match band_look(
        &fb2,
        &fc2,
        tb,
        tc,
        level,
        1.0,
        greater || m.direction == Direction::Decrease,
    ) {
        Ok(l) => l,
        Err(e) => return error(m, e.to_string()),
    };
    let p = p.min(l.p_value);
    if stopped.is_none() && l.reject {
        stopped = Some(look);
    }
    *evidence = Some(keep(p, stopped, cb, cc));
    let failed = stopped.is_some();
    Measurement {
        metric: m.name.clone(),
        phase: if failed { Phase::Failed } else { Phase::Successful },
        message: format!(
            "{}: largest CDF gap {} vs band {} over {} baseline and {} canary observations (anytime {}){}",
            m.name, judge::sig(l.gap), judge::sig(l.threshold), tb.round(), tc.round(), judge::p_text(p),
            if failed { ": abort" } else { ": continue" }
        ),
        baseline: None,
        canary: None,
        detail: json!({"gap": l.gap, "threshold": l.threshold, "p_value": p, "level": level, "stopped_at": stopped}),
    }
}
