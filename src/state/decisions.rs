//! Decisions and the actions carrying them out.

use rusqlite::{params, OptionalExtension};

use super::{State, StateError};

/// A decision (promote, abort, pause, resume) about one rollout revision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    /// Row id.
    pub id: i64,
    /// Idempotency key: namespace/name/revision/decision.
    pub key: String,
    /// ms
    pub t: i64,
    /// Rollout namespace.
    pub namespace: String,
    /// Rollout name.
    pub name: String,
    /// Revision (pod hash, Flagger checksum, or "").
    pub revision: String,
    /// A [`crate::decide::Decision`], as `as_str` writes it.
    pub decision: String,
    /// Who decided (`api`, `analysis:<run id>`).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// JSON: the verdicts and numbers behind it.
    pub detail: String,
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Delivered.
    Done,
    /// Given up (a final error or `max_attempts`).
    Dead,
    /// Recorded, not sent (`actions.dry_run`).
    DryRun,
}

impl ActionStatus {
    /// The name stored in SQLite and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Done => "done",
            ActionStatus::Dead => "dead",
            ActionStatus::DryRun => "dry-run",
        }
    }
}

/// One sink's delivery of a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    /// Row id.
    pub id: i64,
    /// The decision.
    pub decision_id: i64,
    /// Idempotency key (decision key + sink).
    pub key: String,
    /// Sink name.
    pub sink: String,
    /// pending, done, dead or dry-run.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// ms
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The request (JSON: method, url, headers without secrets, body).
    pub request: String,
    /// The last response (status and body), if any.
    pub response: Option<String>,
    /// ms, once done, dead or dry-run.
    pub done_at: Option<i64>,
}

pub(super) const ACTION_COLUMNS: &str =
    "id, decision_id, key, sink, status, attempts, next_attempt_at, last_error, request, response, done_at";

pub(super) fn row_action(r: &rusqlite::Row<'_>) -> rusqlite::Result<ActionRow> {
    Ok(ActionRow {
        id: r.get(0)?,
        decision_id: r.get(1)?,
        key: r.get(2)?,
        sink: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        last_error: r.get(7)?,
        request: r.get(8)?,
        response: r.get(9)?,
        done_at: r.get(10)?,
    })
}

pub(super) fn row_decision(r: &rusqlite::Row<'_>) -> rusqlite::Result<DecisionRow> {
    Ok(DecisionRow {
        id: r.get(0)?,
        key: r.get(1)?,
        t: r.get(2)?,
        namespace: r.get(3)?,
        name: r.get(4)?,
        revision: r.get(5)?,
        decision: r.get(6)?,
        actor: r.get(7)?,
        reason: r.get(8)?,
        detail: r.get(9)?,
    })
}

/// An action's request as the audit log and the API show it: URLs
/// without their secrets (both are readable by anyone who can read the API;
/// the sink's own URL is what is sent).
pub fn redacted_request(stored: &str) -> serde_json::Value {
    let mut r = serde_json::from_str::<serde_json::Value>(stored).unwrap_or_default();
    if let Some(u) = r["url"].as_str() {
        r["url"] = serde_json::Value::String(crate::redact::url(u));
    }
    r
}

/// Which decisions to read.
#[derive(Debug, Clone, Copy)]
pub enum DecisionFilter<'a> {
    /// All of them.
    All,
    /// Those of one actor (`analysis:<run>`, ...).
    Actor(&'a str),
    /// Those about one rollout (namespace, name).
    Rollout(&'a str, &'a str),
}

impl State {
    /// Records a decision and one pending action per sink in one
    /// transaction. A decision whose key exists is not recorded again: the
    /// stored one is returned with `false`.
    pub fn decide(
        &self,
        d: &DecisionRow,
        actions: &[(String, String)],
        now: i64,
    ) -> Result<(DecisionRow, bool), StateError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        let existing = tx
            .query_row(
                "SELECT id, key, t, namespace, name, revision, decision, actor, reason, detail FROM decisions WHERE key = ?1",
                params![d.key],
                row_decision,
            )
            .optional()?;
        if let Some(e) = existing {
            return Ok((e, false));
        }
        tx.execute(
            "INSERT INTO decisions (key, t, namespace, name, revision, decision, actor, reason, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![d.key, d.t, d.namespace, d.name, d.revision, d.decision, d.actor, d.reason, d.detail],
        )?;
        let id = tx.last_insert_rowid();
        let mut recorded = d.clone();
        recorded.id = id;
        super::delivery::on_decision(&tx, &recorded, !actions.is_empty(), self.escape_window())?;
        for (sink, request) in actions {
            tx.execute(
                "INSERT INTO actions (decision_id, key, sink, status, next_attempt_at, request) VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
                params![id, format!("{}/{sink}", d.key), sink, now, request],
            )?;
        }
        tx.execute(
            "INSERT INTO audit (t, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                now,
                d.actor,
                format!("decision.{}", d.decision),
                format!("{}/{}", d.namespace, d.name),
                serde_json::json!({"key": d.key, "revision": d.revision, "reason": d.reason,
                    "detail": serde_json::from_str::<serde_json::Value>(&d.detail).unwrap_or_default()})
                .to_string()
            ],
        )?;
        tx.commit()?;
        let mut out = d.clone();
        out.id = id;
        Ok((out, true))
    }

    /// Pending actions due at `now`.
    pub fn due_actions(&self, now: i64, limit: usize) -> Result<Vec<ActionRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(&format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows = st.query_map(params![now, limit as i64], row_action)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Records an attempt's outcome: `status` done, dead or dry-run (final)
    /// or pending with `retry_at`; the audit log gets the response.
    #[allow(clippy::too_many_arguments)]
    pub fn action_attempt(
        &self,
        a: &ActionRow,
        status: ActionStatus,
        retry_at: Option<i64>,
        error: Option<&str>,
        response: Option<&str>,
        now: i64,
        subject: &str,
    ) -> Result<(), StateError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        let counts = status != ActionStatus::DryRun;
        let status = status.as_str();
        tx.execute(
            "UPDATE actions SET status = ?2, attempts = attempts + ?3, next_attempt_at = COALESCE(?4, next_attempt_at),
             last_error = ?5, response = COALESCE(?6, response), done_at = CASE WHEN ?2 = 'pending' THEN NULL ELSE ?7 END
             WHERE id = ?1",
            params![a.id, status, i64::from(counts), retry_at, error, response, now],
        )?;
        super::delivery::on_action(&tx, a.decision_id, &a.sink, status, error.is_some(), now)?;
        tx.execute(
            "INSERT INTO audit (t, actor, action, subject, detail) VALUES (?1, 'augur', ?2, ?3, ?4)",
            params![
                now,
                format!("action.{status}"),
                subject,
                serde_json::json!({"sink": a.sink, "key": a.key, "attempt": a.attempts + 1,
                                   "error": error.map(crate::redact::urls_in),
                                   "request": redacted_request(&a.request),
                                   "response": response}).to_string()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Moves a pending action's next attempt without counting one.
    pub fn postpone_action(&self, id: i64, at: i64) -> Result<(), StateError> {
        let c = self.conn.lock();
        c.execute(
            "UPDATE actions SET next_attempt_at = ?2 WHERE id = ?1 AND status = 'pending'",
            params![id, at],
        )?;
        Ok(())
    }

    /// Decisions, newest first, each with its actions.
    pub fn decisions(
        &self,
        limit: usize,
        only: DecisionFilter<'_>,
    ) -> Result<Vec<(DecisionRow, Vec<ActionRow>)>, StateError> {
        let (actor, ns, name) = match only {
            DecisionFilter::All => (None, None, None),
            DecisionFilter::Actor(a) => (Some(a), None, None),
            DecisionFilter::Rollout(ns, name) => (None, Some(ns), Some(name)),
        };
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT id, key, t, namespace, name, revision, decision, actor, reason, detail FROM decisions
             WHERE (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR (namespace = ?3 AND name = ?4))
             ORDER BY id DESC LIMIT ?1",
        )?;
        let ds: Vec<DecisionRow> = st
            .query_map(params![limit as i64, actor, ns, name], row_decision)?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ds.len());
        let mut st = c.prepare_cached(&format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE decision_id = ?1 ORDER BY id"
        ))?;
        for d in ds {
            let acts = st
                .query_map(params![d.id], row_action)?
                .collect::<Result<Vec<_>, _>>()?;
            out.push((d, acts));
        }
        Ok(out)
    }

    /// A decision by id.
    pub fn decision(&self, id: i64) -> Result<Option<DecisionRow>, StateError> {
        let c = self.conn.lock();
        Ok(c.query_row(
            "SELECT id, key, t, namespace, name, revision, decision, actor, reason, detail FROM decisions WHERE id = ?1",
            params![id],
            row_decision,
        )
        .optional()?)
    }
}
