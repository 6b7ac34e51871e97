//! The delivery ledger: one row per fact the delivery metrics and the DORA
//! report count (a run finished, a decision, an action attempt, a
//! deployment, a detection, an escaped failure, a restore), written in the
//! same transaction as the fact itself, so counters rebuilt from it after a
//! crash are exactly what happened. `metrics` folds new rows into
//! `/metrics`; `dora` computes the four keys over a window.

use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::{json, Value};

use super::{State, StateError};

/// What a ledger row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// An analysis run ended: `{template, result, seconds}`.
    Run,
    /// A decision was recorded: `{namespace, name, decision, actor_kind}`.
    Decision,
    /// An action attempt ended: `{sink, decision, status, latency_seconds?}`.
    Action,
    /// A promote or abort, once per revision and outcome:
    /// `{namespace, name, revision, result, lead_time_seconds?}`.
    Deployment,
    /// First failing interval to the abort carried out: `{namespace, name, seconds}`.
    Detection,
    /// A promoted revision rolled back or alerted on within the escape
    /// window: `{namespace, name, revision, via, first_firing_ms?}`.
    Escape,
    /// An escaped failure's first firing alert to its rollback carried out:
    /// `{namespace, name, revision, seconds}`.
    Restore,
}

impl DeliveryKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Run => "run",
            DeliveryKind::Decision => "decision",
            DeliveryKind::Action => "action",
            DeliveryKind::Deployment => "deployment",
            DeliveryKind::Detection => "detection",
            DeliveryKind::Escape => "escape",
            DeliveryKind::Restore => "restore",
        }
    }

    /// Parses a stored name; an unknown one is an error naming it.
    pub fn parse(s: &str) -> Result<DeliveryKind, StateError> {
        Ok(match s {
            "run" => DeliveryKind::Run,
            "decision" => DeliveryKind::Decision,
            "action" => DeliveryKind::Action,
            "deployment" => DeliveryKind::Deployment,
            "detection" => DeliveryKind::Detection,
            "escape" => DeliveryKind::Escape,
            "restore" => DeliveryKind::Restore,
            other => {
                return Err(StateError::Corrupt(format!(
                    "delivery_events.kind: unknown {other:?} (expected run, decision, action, deployment, detection, escape or restore)"
                )))
            }
        })
    }
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryEvent {
    /// Row id (increasing).
    pub id: i64,
    /// When (ms).
    pub t: i64,
    /// What.
    pub kind: DeliveryKind,
    /// The numbers and labels.
    pub detail: Value,
}

pub(super) fn add(
    tx: &Transaction<'_>,
    t: i64,
    kind: DeliveryKind,
    detail: Value,
) -> Result<(), StateError> {
    tx.execute(
        "INSERT INTO delivery_events (t, kind, detail) VALUES (?1, ?2, ?3)",
        params![t, kind.as_str(), detail.to_string()],
    )?;
    Ok(())
}

/// The actor's kind for `augur_decisions_total`: analysis runs count as
/// the integration that started them (their key says which).
pub(super) fn actor_kind(tx: &Transaction<'_>, actor: &str) -> Result<&'static str, StateError> {
    if let Some(run) = actor.strip_prefix("analysis:") {
        let key: Option<Option<String>> = tx
            .query_row(
                "SELECT run_key FROM analysis_runs WHERE id = ?1",
                params![run],
                |r| r.get(0),
            )
            .optional()?;
        let key = key.flatten().unwrap_or_default();
        return Ok(if key.starts_with("flagger/") {
            "flagger"
        } else if key.starts_with("argo/") {
            "argo"
        } else if key.starts_with("rollout/") {
            "rollout"
        } else {
            "analysis"
        });
    }
    Ok(match actor {
        "rollout" => "rollout",
        _ => "operator",
    })
}

/// Facts a new decision adds to the ledger (inside `decide`'s
/// transaction): the decision, the deployment it ends, an escape when it
/// rolls back a recent promotion, and, when it has no action to wait for,
/// its detection or restore time at once.
pub(super) fn on_decision(
    tx: &Transaction<'_>,
    d: &super::DecisionRow,
    has_actions: bool,
    escape_window_ms: i64,
) -> Result<(), StateError> {
    let kind = actor_kind(tx, &d.actor)?;
    add(
        tx,
        d.t,
        DeliveryKind::Decision,
        json!({"namespace": d.namespace, "name": d.name, "decision": d.decision, "actor_kind": kind}),
    )?;
    let result = match d.decision.as_str() {
        "promote" | "promote-full" => Some("promoted"),
        "abort" => Some("aborted"),
        _ => None,
    };
    if let Some(result) = result {
        let seen: Option<i64> = tx
            .query_row(
                "SELECT id FROM delivery_events WHERE kind = 'deployment'
                 AND json_extract(detail, '$.namespace') = ?1 AND json_extract(detail, '$.name') = ?2
                 AND json_extract(detail, '$.revision') = ?3 AND json_extract(detail, '$.result') = ?4",
                params![d.namespace, d.name, d.revision, result],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_none() {
            let mut detail = json!({"namespace": d.namespace, "name": d.name, "revision": d.revision, "result": result});
            let commit = serde_json::from_str::<Value>(&d.detail)
                .ok()
                .and_then(|v| v["commit_time_ms"].as_i64());
            if let (Some(c), "promoted") = (commit, result) {
                // Four Keys ignores non-positive lead times (automated pushes).
                if d.t > c {
                    detail["lead_time_seconds"] = json!((d.t - c) as f64 / 1000.0);
                }
            }
            add(tx, d.t, DeliveryKind::Deployment, detail)?;
        }
    }
    if d.decision == "rollback" {
        escape(
            tx,
            &d.namespace,
            &d.name,
            d.t,
            escape_window_ms,
            "rollback",
            None,
        )?;
    }
    if !has_actions {
        carried_out(tx, d, d.t)?;
    }
    Ok(())
}

/// Records an escape of the newest revision of `namespace/name` promoted
/// within `window_ms` before `at`, unless one is recorded already.
fn escape(
    tx: &Transaction<'_>,
    namespace: &str,
    name: &str,
    at: i64,
    window_ms: i64,
    via: &str,
    alert: Option<(&str, i64)>,
) -> Result<bool, StateError> {
    let promoted: Option<String> = tx
        .query_row(
            "SELECT json_extract(detail, '$.revision') FROM delivery_events WHERE kind = 'deployment'
             AND json_extract(detail, '$.namespace') = ?1 AND json_extract(detail, '$.name') = ?2
             AND json_extract(detail, '$.result') = 'promoted' AND t <= ?3 AND t >= ?4
             ORDER BY t DESC, id DESC LIMIT 1",
            params![namespace, name, at, at - window_ms],
            |r| r.get(0),
        )
        .optional()?;
    let Some(revision) = promoted else {
        return Ok(false);
    };
    let already: Option<i64> = tx
        .query_row(
            "SELECT id FROM delivery_events WHERE kind = 'escape'
             AND json_extract(detail, '$.namespace') = ?1 AND json_extract(detail, '$.name') = ?2
             AND json_extract(detail, '$.revision') = ?3",
            params![namespace, name, revision],
            |r| r.get(0),
        )
        .optional()?;
    if already.is_some() {
        return Ok(false);
    }
    let mut detail =
        json!({"namespace": namespace, "name": name, "revision": revision, "via": via});
    if let Some((alertname, first)) = alert {
        detail["alert"] = json!(alertname);
        detail["first_firing_ms"] = json!(first);
    }
    add(tx, at, DeliveryKind::Escape, detail)?;
    Ok(true)
}

/// A decision is carried out (its last action done, or at once when it
/// has none): an analysis abort's detection time, a rollback's restore
/// time when an alert found the escape.
fn carried_out(tx: &Transaction<'_>, d: &super::DecisionRow, done: i64) -> Result<(), StateError> {
    if d.decision == "abort" {
        if let Some(run) = d.actor.strip_prefix("analysis:") {
            let first: Option<i64> = tx.query_row(
                "SELECT MIN(t) FROM analysis_measurements WHERE run_id = ?1 AND phase = 'failed'",
                params![run],
                |r| r.get(0),
            )?;
            if let Some(first) = first {
                add(
                    tx,
                    done,
                    DeliveryKind::Detection,
                    json!({"namespace": d.namespace, "name": d.name, "seconds": (done - first).max(0) as f64 / 1000.0}),
                )?;
            }
        }
    }
    if d.decision == "rollback" {
        let esc: Option<(String, i64)> = tx
            .query_row(
                "SELECT json_extract(detail, '$.revision'), json_extract(detail, '$.first_firing_ms')
                 FROM delivery_events e WHERE kind = 'escape'
                 AND json_extract(detail, '$.namespace') = ?1 AND json_extract(detail, '$.name') = ?2
                 AND json_extract(detail, '$.first_firing_ms') IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM delivery_events r WHERE r.kind = 'restore'
                     AND json_extract(r.detail, '$.namespace') = ?1 AND json_extract(r.detail, '$.name') = ?2
                     AND json_extract(r.detail, '$.revision') = json_extract(e.detail, '$.revision'))
                 ORDER BY id DESC LIMIT 1",
                params![d.namespace, d.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((revision, first)) = esc {
            add(
                tx,
                done,
                DeliveryKind::Restore,
                json!({"namespace": d.namespace, "name": d.name, "revision": revision,
                       "seconds": (done - first).max(0) as f64 / 1000.0}),
            )?;
        }
    }
    Ok(())
}

/// Facts an action attempt adds (inside `action_attempt`'s transaction).
pub(super) fn on_action(
    tx: &Transaction<'_>,
    decision_id: i64,
    sink: &str,
    status: &str,
    failed_attempt: bool,
    now: i64,
) -> Result<(), StateError> {
    let Some(d) = tx
        .query_row(
            "SELECT id, key, t, namespace, name, revision, decision, actor, reason, detail FROM decisions WHERE id = ?1",
            params![decision_id],
            super::decisions::row_decision,
        )
        .optional()?
    else {
        return Ok(());
    };
    let outcome = match (status, failed_attempt) {
        ("done", _) => "done",
        ("dead", _) => "dead",
        ("pending", true) => "failed",
        _ => return Ok(()),
    };
    let mut detail = json!({"sink": sink, "decision": d.decision, "status": outcome});
    if outcome == "done" {
        detail["latency_seconds"] = json!((now - d.t).max(0) as f64 / 1000.0);
    }
    add(tx, now, DeliveryKind::Action, detail)?;
    if outcome == "done" {
        let pending: i64 = tx.query_row(
            "SELECT COUNT(*) FROM actions WHERE decision_id = ?1 AND status = 'pending'",
            params![decision_id],
            |r| r.get(0),
        )?;
        if pending == 0 {
            carried_out(tx, &d, now)?;
        }
    }
    Ok(())
}

/// What a DORA report is computed from: deployments, escapes and restores
/// in `[from, to]` (ms).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DoraInput {
    /// `(t, namespace, name, result, lead_time_seconds)`
    pub deployments: Vec<(i64, String, String, String, Option<f64>)>,
    /// `(t, namespace, name)`
    pub escapes: Vec<(i64, String, String)>,
    /// `(t, namespace, name, seconds)`
    pub restores: Vec<(i64, String, String, f64)>,
}

impl State {
    /// Sets the window after a promotion in which a rollback or a matching
    /// alert counts as an escaped failure.
    pub fn set_escape_window(&self, ms: i64) {
        self.escape_window_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn escape_window(&self) -> i64 {
        self.escape_window_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An alert fired for `namespace/name` at `first_firing` (ms): an
    /// escape when that rollout promoted a revision within the window.
    pub fn alert_fired(
        &self,
        namespace: &str,
        name: &str,
        alertname: &str,
        first_firing: i64,
    ) -> Result<bool, StateError> {
        let window = self.escape_window();
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        let new = escape(
            &tx,
            namespace,
            name,
            first_firing,
            window,
            "alert",
            Some((alertname, first_firing)),
        )?;
        tx.commit()?;
        Ok(new)
    }

    /// Ledger rows after `after_id`, oldest first, at most `limit`.
    pub fn delivery_events(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<DeliveryEvent>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT id, t, kind, detail FROM delivery_events WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = st.query_map(params![after_id, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, t, kind, detail) = row?;
            out.push(DeliveryEvent {
                id,
                t,
                kind: DeliveryKind::parse(&kind)?,
                detail: serde_json::from_str(&detail).map_err(|e| {
                    StateError::Corrupt(format!("delivery_events row {id}: detail: {e}"))
                })?,
            });
        }
        Ok(out)
    }

    /// Deployments, escapes and restores in `[from, to]` (ms).
    pub fn dora_input(&self, from: i64, to: i64) -> Result<DoraInput, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT t, kind, json_extract(detail, '$.namespace'), json_extract(detail, '$.name'),
                    json_extract(detail, '$.result'), json_extract(detail, '$.lead_time_seconds'),
                    json_extract(detail, '$.seconds')
             FROM delivery_events WHERE kind IN ('deployment', 'escape', 'restore') AND t >= ?1 AND t <= ?2
             ORDER BY t, id",
        )?;
        let rows = st.query_map(params![from, to], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                r.get::<_, Option<f64>>(5)?,
                r.get::<_, Option<f64>>(6)?,
            ))
        })?;
        let mut out = DoraInput::default();
        for row in rows {
            let (t, kind, ns, name, result, lead, secs) = row?;
            match DeliveryKind::parse(&kind)? {
                DeliveryKind::Deployment => out.deployments.push((t, ns, name, result, lead)),
                DeliveryKind::Escape => out.escapes.push((t, ns, name)),
                DeliveryKind::Restore => out.restores.push((t, ns, name, secs.unwrap_or(0.0))),
                _ => {}
            }
        }
        Ok(out)
    }
}
