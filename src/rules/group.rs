//! Rule evaluation with Prometheus's semantics (`rules/recording.go`,
//! `rules/alerting.go`, `rules/group.go`): rules run in order at one
//! timestamp, each rule's output is written before the next runs, series a
//! rule stops returning get staleness markers, and alerts follow the
//! inactive -> pending -> firing state machine with `for`,
//! `keep_firing_for` and 15 minutes of resolved retention.
//!
//! Time comes in as an argument; nothing here reads the clock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use promql_parser::parser::Expr;

use super::file::{Group, Rule};
use crate::gotemplate::{self as template, QuerySample};
use crate::labels::{Labels, METRIC_NAME};
use crate::promql::{Engine, Value};
use crate::store::{stale_nan, Origin, Store, Tapped};

/// How long a resolved alert is kept (and re-sent) (`resolvedRetention`).
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// State of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// resolved, kept for re-sending
    Inactive,
    /// active, waiting for `for`
    Pending,
    /// active for at least `for`
    Firing,
}

impl AlertState {
    /// Prometheus's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// identity: sample labels - `__name__` + rule labels + `alertname`
    pub labels: Labels,
    /// expanded annotations
    pub annotations: BTreeMap<String, String>,
    /// state
    pub state: AlertState,
    /// value of the sample at the last evaluation it was present
    pub value: f64,
    /// when it became active (ms)
    pub active_at: i64,
    /// when it started firing (ms)
    pub fired_at: Option<i64>,
    /// when it was resolved (ms)
    pub resolved_at: Option<i64>,
    /// first evaluation it was missing while kept firing (ms)
    pub keep_firing_since: Option<i64>,
    /// last time it was sent to receivers (ms)
    pub last_sent_at: Option<i64>,
    /// end of validity announced to receivers (ms)
    pub valid_until: Option<i64>,
}

/// Health of a rule after its last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// never evaluated
    Unknown,
    /// last evaluation succeeded
    Ok,
    /// last evaluation failed
    Err,
}

impl Health {
    /// Prometheus's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// A rule with its evaluation state.
#[derive(Debug)]
pub struct RuleState {
    /// the rule as loaded (group labels merged into its labels)
    pub rule: Rule,
    expr: Expr,
    /// health after the last evaluation
    pub health: Health,
    /// error of the last evaluation
    pub last_error: Option<String>,
    /// time of the last evaluation (ms)
    pub last_evaluation: Option<i64>,
    /// how long the last evaluation took (seconds)
    pub eval_seconds: f64,
    /// alerts by identity (alerting rules)
    pub active: BTreeMap<Labels, Alert>,
    prev_series: HashSet<Labels>,
    /// whether ALERTS/ALERTS_FOR_STATE are written (after for-state restore)
    pub restored: bool,
}

impl RuleState {
    /// Takes over another rule's runtime state (reload of an unchanged rule).
    pub fn take_state(&mut self, old: &mut RuleState) {
        self.health = old.health;
        self.last_error = old.last_error.take();
        self.last_evaluation = old.last_evaluation;
        self.eval_seconds = old.eval_seconds;
        self.active = std::mem::take(&mut old.active);
        self.prev_series = std::mem::take(&mut old.prev_series);
        self.restored = old.restored;
    }

    /// True for alerting rules.
    pub fn is_alerting(&self) -> bool {
        self.rule.alert.is_some()
    }

    /// The alerts that are pending or firing.
    pub fn active_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
    }
}

/// What evaluation needs from outside: data, the engine, and the settings
/// templates see.
pub struct EvalContext<'a> {
    /// the store rules read from and write to
    pub store: &'a Store,
    /// the query engine
    pub engine: &'a Engine,
    /// `$externalLabels`
    pub external_labels: &'a BTreeMap<String, String>,
    /// `$externalURL`
    pub external_url: &'a str,
    /// A monotonic clock in seconds, to time each rule; the module itself
    /// never reads the clock.
    pub clock: Option<&'a dyn Fn() -> f64>,
    /// Where queries go when the datasource is remote (query text, time
    /// in ms); None: `engine` over `store`. Results are still written to
    /// `store` (recording rules, `ALERTS`).
    pub remote: Option<&'a RemoteQuery<'a>>,
    /// keep results in the store; false: hand them to remote write only
    /// (a group over a remote datasource with `[[remote_write]]`, as
    /// vmalert, so augur does not hold a second copy of the results)
    pub store_results: bool,
}

/// An instant query against a remote datasource.
pub type RemoteQuery<'a> = dyn Fn(&str, i64) -> Result<crate::promql::QueryResult, String> + 'a;

/// An instant query at `t` through the context's datasource.
fn instant(cx: &EvalContext<'_>, text: &str, expr: &Expr, t: i64) -> Result<Value, String> {
    let r = match cx.remote {
        Some(q) => q(text, t)?,
        None => cx
            .engine
            .instant(cx.store, expr, t)
            .map_err(|e| e.to_string())?,
    };
    Ok(r.value)
}

/// A group with its rules' state.
#[derive(Debug)]
pub struct GroupState {
    /// the file it came from
    pub file: String,
    /// name
    pub name: String,
    /// evaluation interval
    pub interval: Duration,
    /// query offset
    pub query_offset: Duration,
    /// series/alerts limit per rule (0 = none)
    pub limit: i64,
    /// rules in order
    pub rules: Vec<RuleState>,
    /// how long the last round took (seconds), set by the caller
    pub last_eval_seconds: f64,
    /// slot time of the last round (ms)
    pub last_evaluation: Option<i64>,
}

impl GroupState {
    /// Prepares a loaded group; `default_interval` applies when the group
    /// has none. Group labels are merged under each rule's labels.
    pub fn new(file: &str, g: &Group, default_interval: Duration) -> Result<GroupState, String> {
        let mut rules = Vec::new();
        for r in &g.rules {
            let expr = crate::promql::parse(&r.expr).map_err(|e| e.to_string())?;
            let mut rule = r.clone();
            for (k, v) in &g.labels {
                rule.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            rules.push(RuleState {
                rule,
                expr,
                health: Health::Unknown,
                last_error: None,
                last_evaluation: None,
                eval_seconds: 0.0,
                active: BTreeMap::new(),
                prev_series: HashSet::new(),
                restored: false,
            });
        }
        Ok(GroupState {
            file: file.to_string(),
            name: g.name.clone(),
            // 0 is "unset", as in Prometheus's rules manager.
            interval: g
                .interval
                .filter(|d| !d.is_zero())
                .unwrap_or(default_interval),
            query_offset: g.query_offset.unwrap_or_default(),
            limit: g.limit,
            rules,
            last_eval_seconds: 0.0,
            last_evaluation: None,
        })
    }

    /// Evaluates every rule at slot time `ts` (ms), in order.
    pub fn eval(&mut self, ts: i64, cx: &EvalContext<'_>) {
        let offset = self.query_offset.as_millis() as i64;
        for i in 0..self.rules.len() {
            let limit = self.limit;
            let started = cx.clock.map(|c| c());
            let r = &mut self.rules[i];
            r.last_evaluation = Some(ts);
            let result = if r.is_alerting() {
                eval_alerting(r, ts, offset, limit, cx)
            } else {
                eval_recording(r, ts - offset, limit, cx)
            };
            let out = match result {
                Ok(out) => out,
                Err(e) => {
                    r.health = Health::Err;
                    r.last_error = Some(e);
                    if let (Some(c), Some(s)) = (cx.clock, started) {
                        r.eval_seconds = c() - s;
                    }
                    continue;
                }
            };
            r.health = Health::Ok;
            r.last_error = None;
            // Commit this rule's output before the next rule runs, then
            // end the series it no longer returns.
            let mut cur = HashSet::with_capacity(out.len());
            if !cx.store_results {
                let t = ts - offset;
                let mut fwd: Vec<Tapped> = Vec::with_capacity(out.len());
                for (labels, v) in out {
                    fwd.push(Tapped {
                        labels: crate::store::tap_labels(&labels),
                        t,
                        v,
                    });
                    cur.insert(labels);
                }
                for gone in r.prev_series.difference(&cur) {
                    fwd.push(Tapped {
                        labels: crate::store::tap_labels(gone),
                        t,
                        v: stale_nan(),
                    });
                }
                cx.store.forward(Origin::Rules, fwd);
                r.prev_series = cur;
                if let (Some(c), Some(s)) = (cx.clock, started) {
                    r.eval_seconds = c() - s;
                }
                continue;
            }
            let mut append_err = None;
            let mut app = cx.store.appender_from(Origin::Rules);
            for (labels, v) in out {
                let s = app.series(labels.iter().map(|l| (&*l.name, &*l.value)));
                match app.append(s, ts - offset, v) {
                    Ok(_) => {
                        cur.insert(labels);
                    }
                    Err(e) => append_err = Some(format!("{e:?}")),
                }
            }
            for gone in r.prev_series.difference(&cur) {
                // Errors are ignored for staleness markers, as upstream.
                let s = app.series(gone.iter().map(|l| (&*l.name, &*l.value)));
                let _ = app.append(s, ts - offset, stale_nan());
            }
            drop(app);
            r.prev_series = cur;
            if let Some(e) = append_err {
                r.health = Health::Err;
                r.last_error = Some(format!("cannot append rule output: {e}"));
            }
            if let (Some(c), Some(s)) = (cx.clock, started) {
                r.eval_seconds = c() - s;
            }
        }
    }
}

fn query_vector(
    cx: &EvalContext<'_>,
    text: &str,
    expr: &Expr,
    t: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    match instant(cx, text, expr, t)? {
        Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
        Value::Scalar(f) => Ok(vec![(Labels::default(), f)]),
        _ => Err("rule result is not a vector or scalar".into()),
    }
}

fn eval_recording(
    r: &mut RuleState,
    t: i64,
    limit: i64,
    cx: &EvalContext<'_>,
) -> Result<Vec<(Labels, f64)>, String> {
    // One copy of the name and rule labels for all of the rule's series.
    let name_key: Arc<str> = METRIC_NAME.into();
    let name: Arc<str> = r.rule.record.as_deref().unwrap_or_default().into();
    let extra: Vec<(Arc<str>, Arc<str>)> = r
        .rule
        .labels
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
        .collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (labels, v) in query_vector(cx, &r.rule.expr, &r.expr, t)? {
        let mut l = labels;
        l.set_shared(&name_key, &name);
        for (k, val) in &extra {
            l.set_shared(k, val);
        }
        if !seen.insert(l.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push((l, v));
    }
    if limit > 0 && out.len() as i64 > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        ));
    }
    Ok(out)
}

fn to_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|x| (x.name.to_string(), x.value.to_string()))
        .collect()
}

fn eval_alerting(
    r: &mut RuleState,
    ts: i64,
    offset: i64,
    limit: i64,
    cx: &EvalContext<'_>,
) -> Result<Vec<(Labels, f64)>, String> {
    let res = query_vector(cx, &r.rule.expr, &r.expr, ts - offset)?;
    let alert_name = r.rule.alert.clone().unwrap_or_default();
    // `query` in templates runs at the slot time, not ts - offset.
    let query = |q: &str| -> Result<Vec<QuerySample>, String> {
        let e = crate::promql::parse(q).map_err(|e| e.to_string())?;
        Ok(match instant(cx, q, &e, ts)? {
            Value::Vector(v) => v
                .into_iter()
                .map(|s| QuerySample {
                    labels: to_map(&s.labels),
                    value: s.v,
                })
                .collect(),
            Value::Scalar(f) => vec![QuerySample {
                labels: BTreeMap::new(),
                value: f,
            }],
            _ => Vec::new(),
        })
    };
    let mut fresh: HashMap<Labels, Alert> = HashMap::with_capacity(res.len());
    for (labels, v) in res {
        let ctx = template::Context {
            labels: to_map(&labels),
            external_labels: cx.external_labels.clone(),
            external_url: cx.external_url.to_string(),
            value: v,
            time_ms: ts,
            query: &query,
        };
        let mut id = labels.without_name();
        for (k, text) in &r.rule.labels {
            id.set(k, &template::expand_alert(&alert_name, text, &ctx));
        }
        id.set("alertname", &alert_name);
        let annotations: BTreeMap<String, String> = r
            .rule
            .annotations
            .iter()
            .map(|(k, text)| (k.clone(), template::expand_alert(&alert_name, text, &ctx)))
            .collect();
        if fresh.contains_key(&id) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
        fresh.insert(
            id.clone(),
            Alert {
                labels: id,
                annotations,
                state: AlertState::Pending,
                value: v,
                active_at: ts,
                fired_at: None,
                resolved_at: None,
                keep_firing_since: None,
                last_sent_at: None,
                valid_until: None,
            },
        );
    }
    let present: HashSet<Labels> = fresh.keys().cloned().collect();
    for (id, a) in fresh {
        match r.active.get_mut(&id) {
            Some(old) if old.state != AlertState::Inactive => {
                old.value = a.value;
                old.annotations = a.annotations;
            }
            _ => {
                r.active.insert(id, a);
            }
        }
    }
    let hold = r.rule.for_.as_millis() as i64;
    let keep_for = r.rule.keep_firing_for.as_millis() as i64;
    let retention = RESOLVED_RETENTION.as_millis() as i64;
    let mut out = Vec::new();
    let mut active_count = 0i64;
    let mut remove = Vec::new();
    for (id, a) in r.active.iter_mut() {
        if !present.contains(id) {
            let mut keep_firing = false;
            if a.state == AlertState::Firing && keep_for > 0 {
                let since = *a.keep_firing_since.get_or_insert(ts);
                keep_firing = ts - since < keep_for;
            }
            if a.state == AlertState::Pending || a.resolved_at.is_some_and(|r| ts - r > retention) {
                remove.push(id.clone());
            }
            if a.state != AlertState::Inactive && !keep_firing {
                a.state = AlertState::Inactive;
                a.resolved_at = Some(ts);
            }
            if !keep_firing {
                continue;
            }
        } else {
            a.keep_firing_since = None;
        }
        active_count += 1;
        if a.state == AlertState::Pending && ts - a.active_at >= hold {
            a.state = AlertState::Firing;
            a.fired_at = Some(ts);
        }
        if a.state == AlertState::Firing && ts - a.active_at < hold {
            a.state = AlertState::Pending;
            a.fired_at = None;
            a.last_sent_at = None;
            a.keep_firing_since = None;
        }
        if r.restored {
            // Raw rule labels, overwritten by the alert's (alerting.go sample()).
            let mut l =
                Labels::from_pairs(r.rule.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            for x in a.labels.iter() {
                l.set(&x.name, &x.value);
            }
            let mut alerts = l.clone();
            alerts.set(METRIC_NAME, "ALERTS");
            alerts.set("alertstate", a.state.as_str());
            out.push((alerts, 1.0));
            let mut for_state = l;
            for_state.set(METRIC_NAME, "ALERTS_FOR_STATE");
            // float64(ActiveAt.Unix()): whole seconds.
            out.push((for_state, a.active_at.div_euclid(1000) as f64));
        }
    }
    for id in remove {
        r.active.remove(&id);
    }
    if limit > 0 && active_count > limit {
        r.active.clear();
        return Err(format!(
            "exceeded limit of {limit} with {active_count} alerts"
        ));
    }
    Ok(out)
}

impl GroupState {
    /// Restores `for` state of pending and firing alerts from the
    /// `ALERTS_FOR_STATE` series after a restart (`rules/group.go`
    /// RestoreForState): the outage does not count toward `for`, and an
    /// alert that had almost fired gets at least `grace` before firing.
    /// The series come from `source`: the embedded store, or the remote
    /// datasource (a new host, a wiped state dir) as vmalert's remote read.
    pub fn restore_for_state(
        &mut self,
        ts: i64,
        source: &ForStateSource<'_>,
        outage_tolerance: Duration,
        grace: Duration,
    ) {
        use crate::labels::{MatchOp, Matcher};
        let grace_ms = grace.as_millis() as i64;
        let tolerance_ms = outage_tolerance.as_millis() as i64;
        for r in &mut self.rules {
            if !r.is_alerting() || r.restored {
                continue;
            }
            let hold = r.rule.for_.as_millis() as i64;
            if hold < grace_ms || r.active.is_empty() {
                r.restored = true;
                continue;
            }
            let name = r.rule.alert.clone().unwrap_or_default();
            let mut pairs = vec![
                (METRIC_NAME.to_string(), "ALERTS_FOR_STATE".to_string()),
                ("alertname".to_string(), name),
            ];
            for (k, v) in &r.rule.labels {
                if !v.contains("{{") {
                    pairs.push((k.clone(), v.clone()));
                }
            }
            let series: Vec<crate::store::SeriesData> = match source {
                ForStateSource::Store(store) => {
                    let Ok(matchers) = pairs
                        .iter()
                        .map(|(k, v)| Matcher::new(MatchOp::Equal, k, v))
                        .collect::<Result<Vec<_>, _>>()
                    else {
                        r.restored = true;
                        continue;
                    };
                    store.select(&matchers, ts - tolerance_ms, ts)
                }
                ForStateSource::Remote { query, .. } => {
                    let sel: Vec<String> = pairs
                        .iter()
                        // JSON's string escapes are valid PromQL ones.
                        .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
                        .collect();
                    let q = format!("{{{}}}[{tolerance_ms}ms]", sel.join(","));
                    match query(&q, ts) {
                        Ok(res) => match res.value {
                            Value::Matrix(m) => m
                                .into_iter()
                                .map(|s| crate::store::SeriesData {
                                    labels: s.labels,
                                    samples: s.points,
                                })
                                .collect(),
                            _ => Vec::new(),
                        },
                        Err(e) => {
                            tracing::warn!(alert = %pairs[1].1, error = %e, "cannot read ALERTS_FOR_STATE from the datasource; for clocks start now");
                            Vec::new()
                        }
                    }
                }
            };
            // A remote store holds the sender's external labels too (and a
            // pair of replicas one series each): they are not part of an
            // alert's identity, and the newest series wins.
            let ignore: &[String] = match source {
                ForStateSource::Store(_) => &[],
                ForStateSource::Remote { external, .. } => external,
            };
            // The newest sample per identity, found once for all alerts.
            let mut last: HashMap<Labels, (i64, f64)> = HashMap::new();
            for s in &series {
                if let Some(&p) = s.samples.last() {
                    let e = last.entry(s.labels.drop(ignore, true)).or_insert(p);
                    if p.0 > e.0 {
                        *e = p;
                    }
                }
            }
            for a in r.active.values_mut() {
                let Some(&(t, v)) = last.get(&a.labels.drop(ignore, true)) else {
                    continue;
                };
                if crate::store::is_stale_nan(v) || !v.is_finite() {
                    continue;
                }
                let down_at = t.div_euclid(1000) * 1000;
                let mut active_at = (v as i64) * 1000;
                let remaining = hold - (down_at - active_at);
                if remaining > 0 && remaining < grace_ms {
                    active_at = ts + grace_ms - hold;
                } else if remaining > 0 {
                    active_at += ts - down_at;
                }
                a.active_at = active_at;
            }
            r.restored = true;
        }
    }
}

/// Where [`GroupState::restore_for_state`] reads `ALERTS_FOR_STATE`.
pub enum ForStateSource<'a> {
    /// the embedded store
    Store(&'a Store),
    /// the remote datasource
    Remote {
        /// an instant query at a time
        query: &'a RemoteQuery<'a>,
        /// the external label names the sender adds
        external: Vec<String>,
    },
}

impl GroupState {
    /// The alerts to send after an evaluation at `ts`, per rule expression
    /// (`AlertingRule.sendAlerts`): firing alerts every `resend_delay`,
    /// resolved ones once more after they resolve. Marks them sent and
    /// valid until `ts + 4 * max(interval, resend_delay)`.
    pub fn take_sendable(&mut self, ts: i64, resend_delay: Duration) -> Vec<(String, Vec<Alert>)> {
        let delta = self.interval.max(resend_delay).as_millis() as i64;
        let resend = resend_delay.as_millis() as i64;
        let mut out = Vec::new();
        for r in &mut self.rules {
            if !r.is_alerting() || r.health == Health::Err {
                continue;
            }
            let mut batch = Vec::new();
            for a in r.active.values_mut() {
                let needs = match a.state {
                    AlertState::Pending => false,
                    _ => {
                        a.resolved_at
                            .is_some_and(|res| a.last_sent_at.is_none_or(|s| res > s))
                            || a.last_sent_at.is_none_or(|s| s + resend < ts)
                    }
                };
                if needs {
                    a.last_sent_at = Some(ts);
                    a.valid_until = Some(ts + 4 * delta);
                    batch.push(a.clone());
                }
            }
            if !batch.is_empty() {
                out.push((r.rule.expr.clone(), batch));
            }
        }
        out
    }

    /// The key persisted state is stored under: file, group, rule.
    pub fn rule_key(&self, r: &RuleState) -> String {
        format!("{};{};{}", self.file, self.name, r.rule.name())
    }
}

impl RuleState {
    /// Puts back alerts saved before a restart (`last_eval` = the last
    /// evaluation before it), with Prometheus's for-state restore rule: the
    /// outage does not count toward `for`, an alert close to firing waits
    /// at least `grace`, and nothing older than `tolerance` comes back.
    pub fn restore_saved(
        &mut self,
        saved: Vec<Alert>,
        last_eval: i64,
        now: i64,
        tolerance: Duration,
        grace: Duration,
    ) {
        self.restored = true;
        if now - last_eval > tolerance.as_millis() as i64 {
            return;
        }
        let hold = self.rule.for_.as_millis() as i64;
        let grace = grace.as_millis() as i64;
        for mut a in saved {
            if a.state != AlertState::Inactive && hold >= grace {
                let remaining = hold - (last_eval - a.active_at);
                if remaining > 0 && remaining < grace {
                    a.active_at = now + grace - hold;
                } else if remaining > 0 {
                    a.active_at += now - last_eval;
                }
            }
            self.active.insert(a.labels.clone(), a);
        }
    }
}
