//! Carries decisions out, exactly once in effect: a decision and one action
//! per sink are written to SQLite before anything is sent, keyed by
//! (namespace, name, revision, decision) so the same decision is never
//! recorded twice; a delivery loop sends due actions with an
//! `Idempotency-Key` header, retries transport errors, 408, 429 and 5xx
//! with exponential backoff and jitter, rate-limits per rollout
//! (`governor`), dead-letters after `max_attempts`, and resumes after a
//! crash from the table. Every attempt lands in the audit log. With
//! `dry_run`, the request is recorded instead of sent.
//!
//! Sinks: generic webhooks and Kubernetes ([`kubernetes`]).

pub mod kubernetes;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::RwLock;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{ActionWebhook, ActionsConfig, KubeTarget};
use crate::decide::Decision;
use crate::state::{ActionRow, ActionStatus, DecisionRow, State, StateError};

/// A decision about one rollout revision, to carry out.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutDecision {
    /// Rollout namespace.
    pub namespace: String,
    /// Rollout (or Canary, Deployment) name.
    pub name: String,
    /// Revision: pod-template hash, Flagger checksum, or empty.
    pub revision: String,
    /// What was decided.
    pub decision: Decision,
    /// Who decided.
    pub actor: String,
    /// Why, in one line.
    pub reason: String,
    /// The verdicts and numbers behind it.
    pub detail: Value,
}

impl RolloutDecision {
    /// The idempotency key: one effect per rollout revision and decision.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace, self.name, self.revision, self.decision
        )
    }
}

fn escape_json(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap_or_default();
    q[1..q.len() - 1].to_string()
}

/// The body a webhook sink gets: its template with placeholders filled,
/// or augur's JSON document.
pub fn webhook_body(w: &ActionWebhook, d: &RolloutDecision) -> String {
    match &w.body {
        None => json!({
            "decision": d.decision, "namespace": d.namespace, "name": d.name,
            "revision": d.revision, "reason": d.reason, "actor": d.actor,
            "key": d.key(), "detail": d.detail,
        })
        .to_string(),
        Some(t) => {
            let mut out = t.clone();
            for (k, v) in [
                ("decision", d.decision.as_str()),
                ("namespace", &d.namespace),
                ("name", &d.name),
                ("revision", &d.revision),
                ("reason", &d.reason),
                ("actor", &d.actor),
                ("key", &d.key()),
            ] {
                for form in [format!("{{{{ {k} }}}}"), format!("{{{{{k}}}}}")] {
                    out = out.replace(&form, &escape_json(v));
                }
            }
            out
        }
    }
}

/// Owns the action table's delivery.
pub struct Dispatcher {
    state: Arc<State>,
    cfg: Arc<RwLock<ActionsConfig>>,
    http: reqwest::Client,
    limiter: RwLock<Option<(u32, Arc<DefaultKeyedRateLimiter<String>>)>>,
    wake: tokio::sync::Notify,
    leadership: Arc<crate::ha::Leadership>,
    /// Receivers of change events (PagerDuty) and the URL their links use.
    changes: RwLock<Option<(Arc<RwLock<crate::config::NotifyConfig>>, String)>>,
}

impl Dispatcher {
    /// A dispatcher over `state` with `cfg` (shared, updated on reload).
    pub fn new(state: Arc<State>, cfg: Arc<RwLock<ActionsConfig>>) -> Dispatcher {
        Dispatcher {
            state,
            cfg,
            http: reqwest::Client::new(),
            limiter: RwLock::new(None),
            wake: tokio::sync::Notify::new(),
            leadership: crate::ha::Leadership::single(),
            changes: RwLock::new(None),
        }
    }

    /// Sends promote, abort and rollback decisions as change events to the
    /// receivers in `notify` (PagerDuty), linking to `external_url`.
    pub fn set_changes(
        &self,
        notify: Arc<RwLock<crate::config::NotifyConfig>>,
        external_url: &str,
    ) {
        *self.changes.write() = Some((notify, external_url.to_string()));
    }

    /// Acts only while `leadership` says so (two replicas under `[ha]`):
    /// a standby records decisions and holds their actions.
    pub fn with_leadership(mut self, leadership: Arc<crate::ha::Leadership>) -> Dispatcher {
        self.leadership = leadership;
        self
    }

    /// Whether this replica may act (leader election under `[ha]`).
    pub fn leadership(&self) -> &Arc<crate::ha::Leadership> {
        &self.leadership
    }

    /// Looks for due actions now (e.g. held ones, on becoming leader).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Records a decision and its actions (durable once this returns).
    /// Returns the stored decision and whether it is new; a repeated
    /// decision sends nothing again.
    pub fn submit(&self, d: &RolloutDecision, now: i64) -> Result<(DecisionRow, bool), StateError> {
        let cfg = self.cfg.read().clone();
        let actions: Vec<(String, String)> = cfg
            .webhooks
            .iter()
            .filter(|w| {
                w.decisions.contains(&d.decision)
                    && crate::config::sink_wants(&w.rollouts, &d.namespace, &d.name)
            })
            .map(|w| {
                // Configured header values may be secrets: only names are
                // stored; values are read from the config at send time.
                let req = json!({
                    "method": w.method.as_str(), "url": w.url, "body": webhook_body(w, d),
                    "headers": w.headers.keys().collect::<Vec<_>>(),
                });
                (w.name.clone(), req.to_string())
            })
            .collect();
        let mut actions = actions;
        for k in cfg.kubernetes.iter().filter(|k| {
            k.decisions.contains(&d.decision)
                && crate::config::sink_wants(&k.rollouts, &d.namespace, &d.name)
        }) {
            let req = json!({
                "kind": "kubernetes", "target": k.target.as_str(), "namespace": d.namespace,
                "name": d.name, "decision": d.decision,
            });
            actions.push((k.name.clone(), req.to_string()));
        }
        let row = DecisionRow {
            id: 0,
            key: d.key(),
            t: now,
            namespace: d.namespace.clone(),
            name: d.name.clone(),
            revision: d.revision.clone(),
            decision: d.decision.as_str().to_string(),
            actor: d.actor.clone(),
            reason: d.reason.clone(),
            detail: d.detail.to_string(),
        };
        let out = self.state.decide(&row, &actions, now)?;
        if out.1 {
            info!(key = %row.key, actor = %row.actor, reason = %row.reason, sinks = actions.len(), "decision recorded");
            // The leader tells PagerDuty; a standby that records the same
            // decision would tell it twice.
            let leads = self.leadership.may_act().is_some();
            if let Some((notify, url)) = self.changes.read().clone().filter(|_| leads) {
                let ncfg = notify.read().clone();
                if let Err(e) = crate::notify::enqueue_change(&self.state, &ncfg, &out.0, &url, now)
                {
                    warn!(error = %e, "cannot queue the decision's change event");
                }
            }
            if self.leadership.may_act().is_none() && !actions.is_empty() {
                let st = self.leadership.status();
                let why = format!(
                    "standby replica {}: the lease is held by {:?}; the leader acts, and this replica carries the action out if it takes over",
                    st.identity, st.holder
                );
                info!(key = %row.key, "{why}");
                let detail = json!({"key": row.key, "reason": why}).to_string();
                let subject = format!("{}/{}", row.namespace, row.name);
                if let Err(e) = self
                    .state
                    .audit(now, "augur", "decision.held", &subject, &detail)
                {
                    warn!(error = %e, "cannot write the audit log");
                }
            }
            self.wake.notify_one();
        }
        Ok(out)
    }

    fn allowed(&self, subject: &str, per_min: u32) -> bool {
        let Some(n) = NonZeroU32::new(per_min) else {
            return true;
        };
        let mut l = self.limiter.write();
        if l.as_ref().is_none_or(|(m, _)| *m != per_min) {
            *l = Some((per_min, Arc::new(RateLimiter::keyed(Quota::per_minute(n)))));
        }
        l.as_ref()
            .is_none_or(|(_, lim)| lim.check_key(&subject.to_string()).is_ok())
    }

    /// Delivers due actions until `token` is cancelled.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        loop {
            let now = crate::clock::now_ms();
            match self.state.due_actions(now, 64) {
                Ok(due) => {
                    for a in due {
                        self.deliver(a).await;
                    }
                }
                Err(e) => warn!(error = %e, "cannot read due actions"),
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    async fn deliver(&self, a: ActionRow) {
        // A standby, or a leader past its renew deadline, holds the action.
        let Some(epoch) = self.leadership.may_act() else {
            return;
        };
        let ha = self.leadership.enabled();
        let cfg = self.cfg.read().clone();
        let now = crate::clock::now_ms();
        let subject = match self.state.decision(a.decision_id) {
            Ok(Some(d)) => format!("{}/{}", d.namespace, d.name),
            _ => String::new(),
        };
        let record =
            |status: ActionStatus, retry: Option<i64>, err: Option<&str>, resp: Option<&str>| {
                // Under [ha], every attempt carries the lease epoch it ran under.
                let stamped = ha.then(|| {
                    let mut v = resp
                        .and_then(|r| serde_json::from_str::<Value>(r).ok())
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    v["lease_epoch"] = json!(epoch);
                    v.to_string()
                });
                let resp = stamped.as_deref().or(resp);
                if let Err(e) = self.state.action_attempt(
                    &a,
                    status,
                    retry,
                    err,
                    resp,
                    crate::clock::now_ms(),
                    &subject,
                ) {
                    warn!(key = %a.key, error = %e, "cannot record an action attempt");
                }
            };
        if cfg.dry_run {
            info!(key = %a.key, request = %a.request, "dry run: action recorded, not sent");
            record(ActionStatus::DryRun, None, None, None);
            return;
        }
        if !self.allowed(&subject, cfg.rate_limit_per_minute) {
            // Over the per-rollout rate: try again shortly, no attempt used.
            if let Err(e) = self.state.postpone_action(a.id, now + 1000) {
                warn!(key = %a.key, error = %e, "cannot postpone an action");
            }
            return;
        }
        let req: Value = match serde_json::from_str(&a.request) {
            Ok(v) => v,
            Err(e) => {
                let why = format!("stored action request is unreadable: {e}");
                warn!(key = %a.key, error = %why, "action dead");
                record(ActionStatus::Dead, None, Some(&why), None);
                return;
            }
        };
        if let Some(k) = cfg.kubernetes.iter().find(|k| k.name == a.sink) {
            let field = |f: &str| {
                req[f]
                    .as_str()
                    .ok_or_else(|| format!("stored action request has no {f:?}"))
            };
            // An unknown decision read back ends the action, naming it.
            let decision = field("decision").and_then(|d| d.parse::<Decision>());
            let (ns, name, decision) = match (field("namespace"), field("name"), decision) {
                (Ok(a), Ok(b), Ok(c)) => (a, b, c),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    warn!(key = %a.key, error = %e, "action dead");
                    record(ActionStatus::Dead, None, Some(&e), None);
                    return;
                }
            };
            if k.target == KubeTarget::FlaggerCanary
                && k.abort_with == crate::config::AbortWith::RollbackGate
                && matches!(decision, Decision::Abort | Decision::Rollback)
            {
                // Flagger has no abort field: its `rollback` webhook answers
                // 200 once this gate is open.
                let r = self.state.set_gate(&crate::state::GateRow {
                    namespace: ns.into(),
                    name: name.into(),
                    kind: "rollback".into(),
                    open: true,
                    updated_at: now,
                    actor: format!("decision:{}", a.key),
                });
                match r {
                    Ok(()) => record(
                        ActionStatus::Done,
                        None,
                        None,
                        Some(&json!({"rollback_gate": "open"}).to_string()),
                    ),
                    Err(e) => record(
                        ActionStatus::Pending,
                        Some(now + 1000),
                        Some(&e.to_string()),
                        None,
                    ),
                }
                return;
            }
            let outcome = match kubernetes::client(k).await {
                Ok(c) => {
                    kubernetes::act(&c, k, ns, name, decision, ha.then_some(a.key.as_str())).await
                }
                Err(f) => Err((Vec::new(), f)),
            };
            match outcome {
                Ok(calls) => {
                    info!(key = %a.key, sink = %a.sink, "Kubernetes action done");
                    record(
                        ActionStatus::Done,
                        None,
                        None,
                        Some(&json!({"calls": kubernetes::calls_json(&calls)}).to_string()),
                    );
                }
                Err((calls, f)) => {
                    let resp = json!({"calls": kubernetes::calls_json(&calls)}).to_string();
                    if f.retryable && (a.attempts + 1) < i64::from(cfg.max_attempts) {
                        let retry = now
                            + crate::notify::backoff(a.attempts, cfg.max_backoff).as_millis()
                                as i64;
                        warn!(key = %a.key, error = %f.message, "Kubernetes action failed; retrying");
                        record(
                            ActionStatus::Pending,
                            Some(retry),
                            Some(&f.message),
                            Some(&resp),
                        );
                    } else {
                        warn!(key = %a.key, error = %f.message, "Kubernetes action failed for good");
                        record(ActionStatus::Dead, None, Some(&f.message), Some(&resp));
                    }
                }
            }
            return;
        }
        let Some(sink) = cfg.webhooks.iter().find(|w| w.name == a.sink) else {
            record(
                ActionStatus::Dead,
                None,
                Some("the sink is no longer configured"),
                None,
            );
            return;
        };
        let Some(body) = req["body"].as_str().map(str::to_string) else {
            let why = "stored action request has no \"body\"";
            warn!(key = %a.key, error = why, "action dead");
            record(ActionStatus::Dead, None, Some(why), None);
            return;
        };
        let method = sink.method.clone();
        let mut r = self
            .http
            .request(method.clone(), &sink.url)
            .timeout(sink.timeout)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &a.key);
        if ha {
            r = r.header("Augur-Lease-Epoch", epoch.to_string());
        }
        for (k, v) in &sink.headers {
            r = r.header(k, v);
        }
        if let Some(f) = &sink.hmac_secret_file {
            match std::fs::read(f) {
                Ok(secret) => {
                    let secret = String::from_utf8_lossy(&secret).trim().to_string();
                    match reqwest::Url::parse(&sink.url) {
                        Ok(url) => {
                            let now_s = now.div_euclid(1000);
                            for (k, v) in crate::signing::headers(
                                secret.as_bytes(),
                                method.as_str(),
                                &url,
                                body.as_bytes(),
                                now_s,
                            ) {
                                r = r.header(k, v);
                            }
                        }
                        Err(e) => {
                            let why = format!("sink {} url {:?}: {e}", sink.name, sink.url);
                            record(ActionStatus::Dead, None, Some(&why), None);
                            return;
                        }
                    }
                }
                Err(e) => {
                    let why = format!("cannot read the HMAC secret file {}: {e}", f.display());
                    let retry = now
                        + crate::notify::backoff(a.attempts, cfg.max_backoff).as_millis() as i64;
                    record(ActionStatus::Pending, Some(retry), Some(&why), None);
                    return;
                }
            }
        }
        let outcome = r.body(body).send().await;
        let (retryable, err, resp) = match outcome {
            Ok(resp) => {
                let code = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                let short: String = text.chars().take(2048).collect();
                let summary = json!({"status": code, "body": short}).to_string();
                if (200..300).contains(&code) {
                    info!(key = %a.key, sink = %a.sink, status = code, "action delivered");
                    record(ActionStatus::Done, None, None, Some(&summary));
                    return;
                }
                let retryable = code >= 500 || code == 408 || code == 429;
                (retryable, format!("HTTP {code}"), Some(summary))
            }
            Err(e) => (
                true,
                format!("request failed: {}", crate::redact::reqwest_error(e)),
                None,
            ),
        };
        if retryable && (a.attempts + 1) < i64::from(cfg.max_attempts) {
            let retry =
                now + crate::notify::backoff(a.attempts, cfg.max_backoff).as_millis() as i64;
            warn!(key = %a.key, sink = %a.sink, error = %err, "action failed; retrying");
            record(
                ActionStatus::Pending,
                Some(retry),
                Some(&err),
                resp.as_deref(),
            );
        } else {
            warn!(key = %a.key, sink = %a.sink, error = %err, "action failed for good");
            record(ActionStatus::Dead, None, Some(&err), resp.as_deref());
        }
    }

    /// Turns finished analysis runs bound to a rollout into decisions
    /// (through [`crate::decide::on_run_finished`]); safe to repeat after a
    /// crash because decisions are idempotent by key.
    pub fn settle_runs(&self, now: i64) -> Result<usize, StateError> {
        let mut n = 0;
        for run in self.state.undecided_runs()? {
            let binding = run
                .rollout
                .as_deref()
                .ok_or_else(|| "no rollout".to_string())
                .and_then(|r| serde_json::from_str::<Value>(r).map_err(|e| e.to_string()))
                .and_then(|v| RolloutBinding::from_json(&v));
            let state = crate::analysis::run::RunState::parse(&run.state)
                .ok_or_else(|| format!("unknown run state {:?}", run.state));
            let (b, state) = match (binding, state) {
                (Ok(b), Ok(s)) => (b, s),
                (Err(e), _) | (_, Err(e)) => {
                    // A corrupt row decides nothing; it is said once, loudly.
                    warn!(run = %run.id, error = %e, "finished run bound to a rollout is unreadable; no decision");
                    self.state.audit(
                        now,
                        &format!("analysis:{}", run.id),
                        "decision.error",
                        "",
                        &json!({"run": run.id, "error": e}).to_string(),
                    )?;
                    self.state.mark_decided(&run.id)?;
                    continue;
                }
            };
            if let Some(decision) = crate::decide::on_run_finished(state, b.promote_on_pass) {
                let d = RolloutDecision {
                    namespace: b.namespace,
                    name: b.name,
                    revision: b.revision,
                    decision,
                    actor: format!("analysis:{}", run.id),
                    reason: format!("analysis {} {}: {}", run.template, run.state, run.message),
                    detail: json!({"run": run.id, "template": run.template, "state": run.state,
                                   "status": serde_json::from_str::<Value>(&run.status).unwrap_or_default()}),
                };
                self.submit(&d, now)?;
                n += 1;
            }
            self.state.mark_decided(&run.id)?;
        }
        Ok(n)
    }

    /// Settles finished runs every 250 ms until `token` is cancelled.
    pub async fn settle_loop(self: Arc<Self>, token: CancellationToken) {
        loop {
            if let Err(e) = self.settle_runs(crate::clock::now_ms()) {
                warn!(error = %e, "cannot turn finished analyses into decisions");
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// Decisions with their actions, for the API.
    pub fn list(&self, limit: usize) -> Result<Vec<Value>, StateError> {
        self.list_only(limit, crate::state::DecisionFilter::All)
    }

    /// [`Dispatcher::list`] of one actor's or one rollout's decisions.
    pub fn list_only(
        &self,
        limit: usize,
        only: crate::state::DecisionFilter<'_>,
    ) -> Result<Vec<Value>, StateError> {
        // On a standby, pending actions wait for this replica to lead.
        let standby = self.leadership.may_act().is_none();
        Ok(self
            .state
            .decisions(limit, only)?
            .into_iter()
            .map(|(d, acts)| {
                json!({
                    "id": d.id, "key": d.key, "time": d.t as f64 / 1000.0,
                    "namespace": d.namespace, "name": d.name, "revision": d.revision,
                    "decision": d.decision, "actor": d.actor, "reason": d.reason,
                    "detail": serde_json::from_str::<Value>(&d.detail).unwrap_or_default(),
                    "actions": acts.iter().map(|a| json!({
                        "sink": a.sink, "key": a.key, "status": a.status, "attempts": a.attempts,
                        "request": crate::state::redacted_request(&a.request),
                        "last_error": a.last_error.as_deref().map(crate::redact::urls_in),
                        "response": a.response.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
                        "done": a.done_at.map(|t| t as f64 / 1000.0),
                        "held": standby && a.status == ActionStatus::Pending.as_str(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect())
    }
}

/// The rollout an analysis run decides about (the `rollout` object given
/// at creation), checked like a Kubernetes object name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutBinding {
    /// Namespace.
    pub namespace: String,
    /// Rollout, Canary or Deployment name.
    pub name: String,
    /// Revision (pod-template hash, checksum), or empty.
    pub revision: String,
    /// Whether a pass promotes.
    pub promote_on_pass: bool,
}

impl RolloutBinding {
    /// Reads `{namespace, name, revision?, promote_on_pass?}`; an error
    /// names the field that is missing or wrong.
    pub fn from_json(v: &Value) -> Result<RolloutBinding, String> {
        let Some(o) = v.as_object() else {
            return Err(format!(
                "rollout: expected {{\"namespace\", \"name\", \"revision\", \"promote_on_pass\"}}, found {v}"
            ));
        };
        if let Some(k) = o.keys().find(|k| {
            !matches!(
                k.as_str(),
                "namespace" | "name" | "revision" | "promote_on_pass"
            )
        }) {
            return Err(format!(
                "rollout.{k}: unknown field; expected namespace, name, revision and promote_on_pass"
            ));
        }
        let text = |k: &str, required: bool| -> Result<String, String> {
            match o.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                None | Some(Value::Null) if !required => Ok(String::new()),
                None | Some(Value::Null) => Err(format!("rollout.{k}: required")),
                Some(other) => Err(format!("rollout.{k}: expected a string, found {other}")),
            }
        };
        let b = RolloutBinding {
            namespace: text("namespace", true)?,
            name: text("name", true)?,
            revision: text("revision", false)?,
            promote_on_pass: match o.get("promote_on_pass") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(format!(
                        "rollout.promote_on_pass: expected true or false, found {other}"
                    ))
                }
            },
        };
        crate::names::check_namespace(&b.namespace)
            .and_then(|()| crate::names::check_name(&b.name))
            .and_then(|()| crate::names::check_revision(&b.revision))
            .map_err(|e| format!("rollout.{e}"))?;
        Ok(b)
    }
}
