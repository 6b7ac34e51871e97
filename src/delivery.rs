//! Decisions as numbers: the delivery metrics (`augur_analysis_runs_total`,
//! `augur_decisions_total`, `augur_actions_total`, `augur_detection_seconds`,
//! the DORA series) folded from the state's delivery ledger, and the DORA
//! four keys over a window, computed the way the DORA research and Four
//! Keys define them.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tracing::warn;

use crate::state::{DeliveryKind, DoraInput, State};

/// `{template, result}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// analysis template
    pub template: String,
    /// passed, failed, inconclusive, error, cancelled
    pub result: String,
}

/// `{namespace, name, decision, actor_kind}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// rollout namespace
    pub namespace: String,
    /// rollout name
    pub name: String,
    /// promote, abort, pause, rollback, ...
    pub decision: String,
    /// analysis, flagger, argo, operator, rollout
    pub actor_kind: String,
}

/// `{sink, decision, status}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// action sink
    pub sink: String,
    /// the decision carried out
    pub decision: String,
    /// done, failed (an attempt that will be retried), dead
    pub status: String,
}

/// `{namespace, name, result}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    /// rollout namespace
    pub namespace: String,
    /// rollout name
    pub name: String,
    /// promoted, aborted
    pub result: String,
}

/// `{namespace, name}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    /// rollout namespace
    pub namespace: String,
    /// rollout name
    pub name: String,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn run_hist() -> Histogram {
    Histogram::new([
        1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ])
}
fn latency_hist() -> Histogram {
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0])
}
fn detection_hist() -> Histogram {
    Histogram::new([1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0])
}
fn lead_hist() -> Histogram {
    Histogram::new([
        300.0,
        900.0,
        1800.0,
        3600.0,
        7200.0,
        14400.0,
        43200.0,
        86400.0,
        172800.0,
        604800.0,
        2_592_000.0,
    ])
}
fn restore_hist() -> Histogram {
    Histogram::new([
        60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 604800.0,
    ])
}

/// The delivery families, filled from the ledger.
#[derive(Debug)]
pub struct DeliveryMetrics {
    runs: Family<RunLabels, Counter>,
    run_duration: Hist<RunLabels>,
    decisions: Family<DecisionLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    action_latency: Histogram,
    detection: Histogram,
    deployments: Family<DeploymentLabels, Counter>,
    escaped: Family<RolloutLabels, Counter>,
    lead_time: Hist<RolloutLabels>,
    restore: Hist<RolloutLabels>,
    /// The last ledger row folded in.
    folded: parking_lot::Mutex<i64>,
}

impl DeliveryMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> DeliveryMetrics {
        let m = DeliveryMetrics {
            runs: Family::default(),
            run_duration: Family::new_with_constructor(run_hist),
            decisions: Family::default(),
            actions: Family::default(),
            action_latency: latency_hist(),
            detection: detection_hist(),
            deployments: Family::default(),
            escaped: Family::default(),
            lead_time: Family::new_with_constructor(lead_hist),
            restore: Family::new_with_constructor(restore_hist),
            folded: parking_lot::Mutex::new(0),
        };
        registry.register(
            "augur_analysis_runs",
            "Analysis runs ended, by template and result",
            m.runs.clone(),
        );
        registry.register(
            "augur_analysis_run_duration_seconds",
            "How long ended analysis runs took, by template and result",
            m.run_duration.clone(),
        );
        registry.register(
            "augur_decisions",
            "Decisions recorded, by rollout, decision and who made it",
            m.decisions.clone(),
        );
        registry.register(
            "augur_actions",
            "Action attempts ended: done, failed (retried) or dead",
            m.actions.clone(),
        );
        registry.register(
            "augur_action_latency_seconds",
            "From a decision to its action done",
            m.action_latency.clone(),
        );
        registry.register(
            "augur_detection_seconds",
            "From a run's first failing interval to its abort carried out",
            m.detection.clone(),
        );
        registry.register(
            "augur_deployments",
            "Rollout revisions promoted or aborted (a failed change the canary caught)",
            m.deployments.clone(),
        );
        registry.register(
            "augur_deployment_failures_escaped",
            "Promoted revisions rolled back or alerted on within the escape window",
            m.escaped.clone(),
        );
        registry.register(
            "augur_lead_time_seconds",
            "From the commit time on the pod template to the promotion",
            m.lead_time.clone(),
        );
        registry.register(
            "augur_time_to_restore_seconds",
            "From an escaped failure's first firing alert to its rollback carried out",
            m.restore.clone(),
        );
        m
    }

    /// Folds ledger rows written since the last call (all of them on the
    /// first call, which is how the counters survive a restart).
    pub fn fold(&self, state: &State) {
        let mut last = self.folded.lock();
        loop {
            let rows = match state.delivery_events(*last, 10_000) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "cannot read the delivery ledger; delivery metrics are stale");
                    return;
                }
            };
            let n = rows.len();
            for e in rows {
                self.apply(e.kind, &e.detail);
                *last = e.id;
            }
            if n < 10_000 {
                return;
            }
        }
    }

    fn apply(&self, kind: DeliveryKind, d: &Value) {
        let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
        let rollout = || RolloutLabels {
            namespace: s("namespace"),
            name: s("name"),
        };
        match kind {
            DeliveryKind::Run => {
                let l = RunLabels {
                    template: s("template"),
                    result: s("result"),
                };
                self.runs.get_or_create(&l).inc();
                if let Some(x) = d["seconds"].as_f64() {
                    self.run_duration.get_or_create(&l).observe(x);
                }
            }
            DeliveryKind::Decision => {
                self.decisions
                    .get_or_create(&DecisionLabels {
                        namespace: s("namespace"),
                        name: s("name"),
                        decision: s("decision"),
                        actor_kind: s("actor_kind"),
                    })
                    .inc();
            }
            DeliveryKind::Action => {
                self.actions
                    .get_or_create(&ActionLabels {
                        sink: s("sink"),
                        decision: s("decision"),
                        status: s("status"),
                    })
                    .inc();
                if let Some(x) = d["latency_seconds"].as_f64() {
                    self.action_latency.observe(x);
                }
            }
            DeliveryKind::Deployment => {
                self.deployments
                    .get_or_create(&DeploymentLabels {
                        namespace: s("namespace"),
                        name: s("name"),
                        result: s("result"),
                    })
                    .inc();
                if let Some(x) = d["lead_time_seconds"].as_f64() {
                    self.lead_time.get_or_create(&rollout()).observe(x);
                }
            }
            DeliveryKind::Detection => {
                if let Some(x) = d["seconds"].as_f64() {
                    self.detection.observe(x);
                }
            }
            DeliveryKind::Escape => {
                self.escaped.get_or_create(&rollout()).inc();
            }
            DeliveryKind::Restore => {
                if let Some(x) = d["seconds"].as_f64() {
                    self.restore.get_or_create(&rollout()).observe(x);
                }
            }
        }
    }
}

/// Four Keys' deployment-frequency bucket from deployment days: daily when
/// the median week has deployments on at least 3 days, weekly when the
/// median week has one, monthly when the median month has one, else
/// yearly. Weeks (7 days) and months (30 days) are counted back from `to`
/// (ms), as many as fit in the window (at least one), empty ones included;
/// rolling periods rather than calendar ones, so the bucket does not
/// depend on the weekday the window ends on.
pub fn frequency_bucket(days: &[i64], from: i64, to: i64) -> &'static str {
    const DAY: i64 = 86_400_000;
    let distinct: std::collections::BTreeSet<i64> =
        days.iter().map(|t| t.div_euclid(DAY)).collect();
    let span_days = ((to - from) / DAY).max(1);
    let per = |len: i64| -> Vec<f64> {
        let last_day = (to - 1).div_euclid(DAY);
        let periods = (span_days / len).max(1);
        (0..periods)
            .map(|p| {
                let hi = last_day - p * len;
                let lo = hi - len + 1;
                distinct.iter().filter(|d| **d >= lo && **d <= hi).count() as f64
            })
            .collect()
    };
    let weekly = median(per(7)).unwrap_or(0.0);
    if weekly >= 3.0 {
        "daily"
    } else if weekly >= 1.0 {
        "weekly"
    } else if median(per(30)).unwrap_or(0.0) >= 1.0 {
        "monthly"
    } else {
        "yearly"
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The four keys for one set of deployments.
fn keys(
    deployments: &[&(i64, String, String, String, Option<f64>)],
    escapes: usize,
    restores: &[f64],
    from: i64,
    to: i64,
) -> Value {
    let promoted: Vec<_> = deployments.iter().filter(|d| d.3 == "promoted").collect();
    let aborted = deployments.iter().filter(|d| d.3 == "aborted").count();
    let total = promoted.len() + aborted;
    let days: Vec<i64> = promoted.iter().map(|d| d.0).collect();
    let leads: Vec<f64> = promoted
        .iter()
        .filter_map(|d| d.4)
        .filter(|x| *x > 0.0)
        .collect();
    let failures = aborted + escapes;
    json!({
        "deployments": total,
        "promoted": promoted.len(),
        "aborted": aborted,
        "escaped": escapes,
        "deployment_frequency": {
            "bucket": frequency_bucket(&days, from, to),
            "per_day": promoted.len() as f64 / ((to - from) as f64 / 86_400_000.0).max(1.0),
        },
        "lead_time_seconds": median(leads.clone()),
        "lead_time_samples": leads.len(),
        "change_failure_rate": (total > 0).then(|| failures as f64 / total as f64),
        "time_to_restore_seconds": median(restores.to_vec()),
        "time_to_restore_samples": restores.len(),
    })
}

/// The DORA report over `[from, to]` (ms): overall and per rollout.
/// Deployments are promoted or aborted revisions; the change failure rate
/// is (aborted + escaped) / deployments (a canary abort is a failed change
/// that was remediated at once, DORA 2024's wording); deployment frequency
/// counts promotions.
pub fn dora(input: &DoraInput, from: i64, to: i64) -> Value {
    let mut names: BTreeMap<(String, String), ()> = BTreeMap::new();
    for d in &input.deployments {
        names.insert((d.1.clone(), d.2.clone()), ());
    }
    let per: Vec<Value> = names
        .keys()
        .map(|(ns, name)| {
            let ds: Vec<_> = input
                .deployments
                .iter()
                .filter(|d| &d.1 == ns && &d.2 == name)
                .collect();
            let esc = input
                .escapes
                .iter()
                .filter(|e| &e.1 == ns && &e.2 == name)
                .count();
            let res: Vec<f64> = input
                .restores
                .iter()
                .filter(|r| &r.1 == ns && &r.2 == name)
                .map(|r| r.3)
                .collect();
            let mut v = keys(&ds, esc, &res, from, to);
            v["namespace"] = json!(ns);
            v["name"] = json!(name);
            v
        })
        .collect();
    let all: Vec<_> = input.deployments.iter().collect();
    let res: Vec<f64> = input.restores.iter().map(|r| r.3).collect();
    json!({
        "from": crate::timefmt::rfc3339_ms(from),
        "to": crate::timefmt::rfc3339_ms(to),
        "overall": keys(&all, input.escapes.len(), &res, from, to),
        "rollouts": per,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn frequency_buckets_follow_four_keys() {
        let to = 100 * DAY;
        let from = to - 28 * DAY;
        // Every day: daily.
        let every: Vec<i64> = (0..28).map(|d| from + d * DAY + 1000).collect();
        assert_eq!(frequency_bucket(&every, from, to), "daily");
        // Two days a week: weekly.
        let two: Vec<i64> = (0..4)
            .flat_map(|w| [to - (w * 7 + 1) * DAY, to - (w * 7 + 2) * DAY])
            .collect();
        assert_eq!(frequency_bucket(&two, from, to), "weekly");
        // One deployment in four weeks: the median week has none; the month has one.
        assert_eq!(frequency_bucket(&[to - DAY], from, to), "monthly");
        assert_eq!(frequency_bucket(&[], from, to), "yearly");
    }

    #[test]
    fn keys_are_medians_and_rates() {
        let d = |t: i64, r: &str, lead: Option<f64>| {
            (
                t,
                "shop".to_string(),
                "web".to_string(),
                r.to_string(),
                lead,
            )
        };
        let input = DoraInput {
            deployments: vec![
                d(DAY, "promoted", Some(600.0)),
                d(2 * DAY, "aborted", None),
                d(3 * DAY, "promoted", Some(1800.0)),
                d(4 * DAY, "promoted", Some(-5.0)),
            ],
            escapes: vec![(5 * DAY, "shop".into(), "web".into())],
            restores: vec![(5 * DAY, "shop".into(), "web".into(), 900.0)],
        };
        let v = dora(&input, 0, 7 * DAY);
        let o = &v["overall"];
        assert_eq!(o["deployments"], 4);
        assert_eq!(o["change_failure_rate"], 0.5, "(1 aborted + 1 escaped) / 4");
        assert_eq!(
            o["lead_time_seconds"], 1200.0,
            "median of 600 and 1800; -5 ignored"
        );
        assert_eq!(o["time_to_restore_seconds"], 900.0);
        assert_eq!(v["rollouts"][0]["name"], "web");
    }
}
