//! The model of an analysis run, free of I/O and clocks: the per-metric
//! counters and the run's outcome ([`RunStatus::record`]). Measuring one
//! metric is in [`super::measure`].
//!
//! Outcome rules follow Argo Rollouts (`utils/analysis/helpers.go`
//! `assessMetricStatus`/`assessRunStatus`): a metric fails when
//! `failed > failure_limit`, is inconclusive when `inconclusive >
//! inconclusive_limit`, errs when `consecutive_error >
//! consecutive_error_limit`, succeeds at `consecutive_success_limit` or
//! when `count` measurements are in; the run takes the worst metric phase
//! and ends as soon as one metric fails, errs or is inconclusive. With a
//! Flagger-style `threshold`, the run fails on that many failed intervals
//! in total instead. A critical metric's failure ends the run at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::measure::{measure, Evidence, Fetched, Measurement, Phase};
use super::template::Template;

/// A run's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Measuring.
    Running,
    /// Every metric passed.
    Passed,
    /// A metric failed.
    Failed,
    /// A metric was inconclusive.
    Inconclusive,
    /// A metric kept erring.
    Error,
    /// Stopped by an operator.
    Cancelled,
}

impl RunState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Passed => "passed",
            RunState::Failed => "failed",
            RunState::Inconclusive => "inconclusive",
            RunState::Error => "error",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Parses [`RunState::as_str`].
    pub fn parse(s: &str) -> Option<RunState> {
        Some(match s {
            "running" => RunState::Running,
            "passed" => RunState::Passed,
            "failed" => RunState::Failed,
            "inconclusive" => RunState::Inconclusive,
            "error" => RunState::Error,
            "cancelled" => RunState::Cancelled,
            _ => return None,
        })
    }
}

/// One metric's counters (Argo's `MetricResult`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricStatus {
    /// Metric name.
    pub name: String,
    /// Measurements that count towards `count` (not errors).
    pub count: u32,
    /// Successful measurements.
    pub successful: u32,
    /// Failed measurements.
    pub failed: u32,
    /// Inconclusive measurements.
    pub inconclusive: u32,
    /// Errored measurements.
    pub error: u32,
    /// Errors in a row.
    pub consecutive_error: u32,
    /// Successes in a row.
    pub consecutive_success: u32,
    /// Sequential evidence.
    pub evidence: Option<Evidence>,
    /// The latest measurement.
    pub last: Option<Measurement>,
    /// Why the metric completed (Argo's message), once it has.
    pub phase: Option<Phase>,
    /// Argo-style message for the phase.
    pub message: String,
    /// Measurements whose queries returned data (None: stored by a
    /// version that did not count them).
    #[serde(default)]
    pub with_data: Option<u32>,
    /// Successful measurements that had data.
    #[serde(default)]
    pub passed_with_data: Option<u32>,
}

impl MetricStatus {
    /// Whether some measurement passed on real data.
    pub fn passed_on_data(&self) -> bool {
        self.passed_with_data.map_or(self.successful > 0, |n| n > 0)
    }

    /// Whether some measurement had data.
    pub fn has_data(&self) -> bool {
        self.with_data.map_or(self.count > 0, |n| n > 0)
    }
}

/// How much a run has seen so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// No interval measured yet.
    Nothing,
    /// Intervals measured, none with data.
    NoData,
    /// Some measurement had data.
    Data,
}

/// A run's counters and evidence, persisted after every interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// Intervals measured.
    pub intervals: u32,
    /// Flagger's failed checks (intervals with any non-successful metric).
    pub failed_checks: u32,
    /// Per-metric status, in template order.
    pub metrics: Vec<MetricStatus>,
}

impl RunStatus {
    /// A fresh status for `t`.
    pub fn new(t: &Template) -> RunStatus {
        RunStatus {
            intervals: 0,
            failed_checks: 0,
            metrics: t
                .metrics
                .iter()
                .map(|m| MetricStatus {
                    name: m.name.clone(),
                    with_data: Some(0),
                    passed_with_data: Some(0),
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// What the run has seen so far.
    pub fn seen(&self) -> Seen {
        if self.intervals == 0 {
            Seen::Nothing
        } else if self.metrics.iter().any(MetricStatus::has_data) {
            Seen::Data
        } else {
            Seen::NoData
        }
    }

    /// Folds in one interval's measurements (template order) and returns
    /// the run's state and the reason.
    pub fn record(&mut self, t: &Template, ms: Vec<Measurement>) -> (RunState, String) {
        self.intervals += 1;
        if ms.iter().any(|m| m.phase != Phase::Successful) {
            self.failed_checks += 1;
        }
        let mut critical = None;
        for ((st, m), spec) in self.metrics.iter_mut().zip(ms).zip(&t.metrics) {
            if !m.lacks_data() {
                st.with_data = Some(st.with_data.unwrap_or(st.count) + 1);
                if m.phase == Phase::Successful {
                    st.passed_with_data = Some(st.passed_with_data.unwrap_or(st.successful) + 1);
                }
            }
            match m.phase {
                Phase::Successful => {
                    st.successful += 1;
                    st.count += 1;
                    st.consecutive_success += 1;
                    st.consecutive_error = 0;
                }
                Phase::Failed => {
                    st.failed += 1;
                    st.count += 1;
                    st.consecutive_success = 0;
                    st.consecutive_error = 0;
                    if spec.critical && critical.is_none() {
                        critical = Some(format!(
                            "critical metric {:?} failed: {}",
                            spec.name, m.message
                        ));
                    }
                }
                Phase::Inconclusive => {
                    st.inconclusive += 1;
                    st.count += 1;
                    st.consecutive_success = 0;
                    st.consecutive_error = 0;
                }
                Phase::Error | Phase::Running => {
                    st.error += 1;
                    st.consecutive_error += 1;
                    st.consecutive_success = 0;
                }
            }
            st.last = Some(m);
        }
        if t.threshold.is_none() || critical.is_some() {
            for st in &mut self.metrics {
                let (phase, msg) = assess(t, st);
                st.phase = (phase != Phase::Running).then_some(phase);
                st.message = msg;
            }
        }
        if let Some(why) = critical {
            return (RunState::Failed, why);
        }
        if let Some(th) = t.threshold {
            // Flagger: cumulative failed checks, not consecutive.
            if self.failed_checks >= th {
                return (
                    RunState::Failed,
                    format!(
                        "{} failed checks reached the threshold of {th}",
                        self.failed_checks
                    ),
                );
            }
            if t.count.is_some_and(|c| self.intervals >= c) {
                if let Some(m) = self.metrics.iter().find(|m| !m.passed_on_data()) {
                    return (
                        RunState::Inconclusive,
                        format!(
                            "{} checks done, but metric {:?} never passed on data (augur does not pass a metric on no data)",
                            self.intervals, m.name
                        ),
                    );
                }
                return (
                    RunState::Passed,
                    format!(
                        "{} checks done, {} failed (threshold {th})",
                        self.intervals, self.failed_checks
                    ),
                );
            }
            return (
                RunState::Running,
                format!("{} failed checks of {th} allowed", self.failed_checks),
            );
        }
        let worst = self
            .metrics
            .iter()
            .map(|s| s.phase.unwrap_or(Phase::Running))
            .max()
            .unwrap_or(Phase::Successful);
        let why = |p: Phase| {
            self.metrics
                .iter()
                .find(|s| s.phase == Some(p))
                .map(|s| s.message.clone())
                .unwrap_or_default()
        };
        match worst {
            Phase::Failed => (RunState::Failed, why(Phase::Failed)),
            Phase::Error => (RunState::Error, why(Phase::Error)),
            Phase::Inconclusive => (RunState::Inconclusive, why(Phase::Inconclusive)),
            Phase::Running => (
                RunState::Running,
                format!("{} intervals measured", self.intervals),
            ),
            Phase::Successful => (
                RunState::Passed,
                format!(
                    "all {} metrics passed after {} intervals",
                    self.metrics.len(),
                    self.intervals
                ),
            ),
        }
    }
}

impl RunStatus {
    /// A 0-100 score from each metric's latest measurement, for consumers
    /// that want one number (Kayenta-style): per group, the weighted share
    /// of decisive metrics (successful or failed) that passed; groups count
    /// equally; metrics without a decisive result are left out, like
    /// Kayenta's Nodata. None before any decisive measurement.
    pub fn score(&self, t: &Template) -> Option<f64> {
        let mut groups: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for (st, spec) in self.metrics.iter().zip(&t.metrics) {
            let Some(last) = &st.last else { continue };
            let passed = match last.phase {
                Phase::Successful => 1.0,
                Phase::Failed => 0.0,
                _ => continue,
            };
            let g = groups.entry(spec.group.as_str()).or_insert((0.0, 0.0));
            g.0 += spec.weight * passed;
            g.1 += spec.weight;
        }
        let scores: Vec<f64> = groups
            .values()
            .filter(|(_, w)| *w > 0.0)
            .map(|(p, w)| 100.0 * p / w)
            .collect();
        (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
    }
}

/// Argo's `assessMetricStatus`.
fn assess(t: &Template, st: &MetricStatus) -> (Phase, String) {
    let name = &st.name;
    let failure_limit = t
        .metrics
        .iter()
        .find(|m| &m.name == name)
        .and_then(|m| m.failure_limit)
        .unwrap_or(t.failure_limit);
    if st.failed > failure_limit {
        return (
            Phase::Failed,
            format!(
                "Metric {name:?} assessed Failed due to failed ({}) > failureLimit ({failure_limit})",
                st.failed
            ),
        );
    }
    if st.inconclusive > t.inconclusive_limit {
        return (
            Phase::Inconclusive,
            format!(
                "Metric {name:?} assessed Inconclusive due to inconclusive ({}) > inconclusiveLimit ({})",
                st.inconclusive, t.inconclusive_limit
            ),
        );
    }
    if st.consecutive_error > t.consecutive_error_limit {
        return (
            Phase::Error,
            format!(
                "Metric {name:?} assessed Error due to consecutiveErrors ({}) > consecutiveErrorLimit ({})",
                st.consecutive_error, t.consecutive_error_limit
            ),
        );
    }
    // Argo would pass a metric whose measurements were all inconclusive
    // (within inconclusiveLimit) once `count` is reached; augur never
    // passes a metric that had no data to judge: a typo in a service name
    // must pause the rollout, not promote it.
    let passing = (t.consecutive_success_limit > 0
        && st.consecutive_success >= t.consecutive_success_limit)
        || t.count
            .is_some_and(|c| st.count >= c && t.consecutive_success_limit == 0);
    if passing && !st.passed_on_data() {
        return (
            Phase::Inconclusive,
            format!(
                "Metric {name:?} assessed Inconclusive: none of its {} measurements passed on data",
                st.count
            ),
        );
    }
    if t.consecutive_success_limit > 0 && st.consecutive_success >= t.consecutive_success_limit {
        return (
            Phase::Successful,
            format!(
                "Metric {name:?} assessed Successful due to consecutiveSuccess ({}) >= consecutiveSuccessLimit ({})",
                st.consecutive_success, t.consecutive_success_limit
            ),
        );
    }
    if let Some(c) = t.count {
        if st.count >= c {
            if t.consecutive_success_limit > 0 {
                return (
                    Phase::Inconclusive,
                    format!(
                        "Metric {name:?} assessed Inconclusive due to count ({c}) reached before consecutiveSuccessLimit ({})",
                        t.consecutive_success_limit
                    ),
                );
            }
            return (
                Phase::Successful,
                format!("Metric {name:?} assessed Successful after {c} measurements"),
            );
        }
    }
    (Phase::Running, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::template::parse_file;
    use crate::promql::Value;
    use serde_json::json;

    fn template(extra: &str) -> Template {
        let text = format!(
            "[[analysis]]\nname = \"t\"\ninterval = \"1s\"\n{extra}\n[[analysis.metric]]\nname = \"m\"\ncheck = \"threshold\"\nmax = 1\ncanary = 'up'\n"
        );
        parse_file("t.toml", &text).unwrap().remove(0)
    }

    fn m(phase: Phase) -> Vec<Measurement> {
        vec![Measurement {
            metric: "m".into(),
            phase,
            message: String::new(),
            baseline: None,
            canary: None,
            detail: json!({}),
        }]
    }

    fn play(t: &Template, phases: &[Phase]) -> Vec<RunState> {
        let mut st = RunStatus::new(t);
        phases.iter().map(|&p| st.record(t, m(p)).0).collect()
    }

    use Phase::*;
    use RunState as R;

    #[test]
    fn a_metric_failure_limit_overrides_the_templates() {
        let text = "[[analysis]]\nname = \"t\"\ninterval = \"1s\"\ncount = 5\n[[analysis.metric]]\nname = \"m\"\ncheck = \"threshold\"\nmax = 1\nfailure_limit = 2\ncanary = 'up'\n";
        let t = parse_file("t.toml", text).unwrap().remove(0);
        assert_eq!(t.metrics[0].failure_limit, Some(2));
        assert_eq!(
            play(&t, &[Failed, Failed, Successful, Failed]),
            [R::Running, R::Running, R::Running, R::Failed]
        );
        let mut st = RunStatus::new(&t);
        for p in [Failed, Failed, Failed] {
            st.record(&t, m(p));
        }
        assert_eq!(
            assess(&t, &st.metrics[0]).1,
            "Metric \"m\" assessed Failed due to failed (3) > failureLimit (2)"
        );
        // Without it, the template's (default 0) applies.
        let t = template("count = 5");
        assert_eq!(play(&t, &[Failed]), [R::Failed]);
        let bad = text.replace("failure_limit = 2", "failure_limit = -1");
        let e = format!("{:?}", parse_file("t.toml", &bad).unwrap_err());
        assert!(
            e.contains("failure_limit: expected a count of 0 or more"),
            "{e}"
        );
    }

    #[test]
    fn argo_limits() {
        // failureLimit 1: the second failure fails (failed > limit).
        let t = template("failure_limit = 1\ncount = 5");
        assert_eq!(
            play(&t, &[Failed, Successful, Failed]),
            [R::Running, R::Running, R::Failed]
        );
        // consecutiveErrorLimit defaults to 4: the 5th error in a row errs;
        // a success in between resets the streak; errors do not count.
        let t = template("count = 3");
        assert_eq!(
            play(
                &t,
                &[Error, Error, Error, Error, Successful, Error, Error, Error, Error, Error]
            ),
            [
                R::Running,
                R::Running,
                R::Running,
                R::Running,
                R::Running,
                R::Running,
                R::Running,
                R::Running,
                R::Running,
                R::Error
            ]
        );
        assert_eq!(
            play(&t, &[Successful, Error, Successful, Successful]),
            [R::Running, R::Running, R::Running, R::Passed]
        );
        // One inconclusive ends the run with the default limit of 0.
        assert_eq!(
            play(&t, &[Successful, Inconclusive]),
            [R::Running, R::Inconclusive]
        );
        // consecutiveSuccessLimit: success as soon as reached...
        let t = template("count = 6\nconsecutive_success_limit = 2\nfailure_limit = 3");
        assert_eq!(
            play(&t, &[Failed, Successful, Successful]),
            [R::Running, R::Running, R::Passed]
        );
        // ...and inconclusive when count comes first.
        assert_eq!(
            play(
                &t,
                &[Successful, Failed, Successful, Failed, Successful, Failed]
            ),
            [
                R::Running,
                R::Running,
                R::Running,
                R::Running,
                R::Running,
                R::Inconclusive
            ]
        );
    }

    #[test]
    fn flagger_threshold_counts_failed_intervals_cumulatively() {
        let t = template("threshold = 2\ncount = 4");
        assert_eq!(
            play(&t, &[Failed, Successful, Successful, Successful]),
            [R::Running, R::Running, R::Running, R::Passed]
        );
        assert_eq!(
            play(&t, &[Failed, Successful, Error]),
            [R::Running, R::Running, R::Failed]
        );
        assert_eq!(
            play(&t, &[Inconclusive, Inconclusive]),
            [R::Running, R::Failed]
        );
    }

    #[test]
    fn count_and_limits_are_validated() {
        let text = "[[analysis]]\nname = \"t\"\ncount = 2\nconsecutive_success_limit = 2\nfailure_limit = 1\n[[analysis.metric]]\nname = \"m\"\ncheck = \"threshold\"\nmax = 1\ncanary = 'up'\n";
        let e = parse_file("t.toml", text).unwrap_err();
        assert!(
            e[0].to_string().contains(
                "count (2) must be at least failure_limit + consecutive_success_limit (3)"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn threshold_is_inclusive_and_needs_one_value() {
        let t = template("");
        let metric = &t.metrics[0];
        let v = |x: f64| Fetched::Values {
            baseline: None,
            canary: Value::Scalar(x),
        };
        assert_eq!(
            measure(metric, Ok(v(1.0)), &mut None, 0, 0.05).phase,
            Successful
        );
        assert_eq!(
            measure(metric, Ok(v(1.0001)), &mut None, 0, 0.05).phase,
            Failed
        );
        assert_eq!(
            measure(metric, Ok(v(f64::NAN)), &mut None, 0, 0.05).phase,
            Inconclusive
        );
        let two = Value::Vector(vec![
            crate::promql::Sample {
                labels: crate::labels::Labels::default(),
                t: 0,
                v: 0.5,
                drop_name: false,
            },
            crate::promql::Sample {
                labels: crate::labels::Labels::default(),
                t: 0,
                v: 0.7,
                drop_name: false,
            },
        ]);
        let r = measure(
            metric,
            Ok(Fetched::Values {
                baseline: None,
                canary: two,
            }),
            &mut None,
            0,
            0.05,
        );
        assert_eq!(r.phase, Error);
        assert!(r.message.contains("returned 2 values"), "{}", r.message);
        let r = measure(metric, Err("query failed: boom".into()), &mut None, 0, 0.05);
        assert_eq!(
            (r.phase, r.message.as_str()),
            (Error, "m: query failed: boom")
        );
    }
}
