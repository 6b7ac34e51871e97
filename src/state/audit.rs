//! Operator gates and the append-only audit log.

use rusqlite::{params, OptionalExtension};

use super::{State, StateError};

/// One gate.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRow {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Canary or rollout name.
    pub name: String,
    /// `confirm` or `rollback`.
    pub kind: String,
    /// Open (proceed / roll back) or closed.
    pub open: bool,
    /// ms
    pub updated_at: i64,
    /// Who set it.
    pub actor: String,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Row id (append order).
    pub id: i64,
    /// ms
    pub t: i64,
    /// Who or what acted (`flagger`, `argo`, `api`, `augur`).
    pub actor: String,
    /// What happened (`flagger.rollout`, `gate.open`, ...).
    pub action: String,
    /// What it was about (`namespace/name`).
    pub subject: String,
    /// JSON detail: request, answer, numbers.
    pub detail: String,
}

impl State {
    /// Opens or closes a gate, recording who did it in the audit log.
    pub fn set_gate(&self, gate: &GateRow) -> Result<(), StateError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO gates (namespace, name, kind, open, updated_at, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (namespace, name, kind) DO UPDATE SET open = ?4, updated_at = ?5, actor = ?6",
            params![gate.namespace, gate.name, gate.kind, gate.open, gate.updated_at, gate.actor],
        )?;
        tx.execute(
            "INSERT INTO audit (t, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, '{}')",
            params![
                gate.updated_at,
                gate.actor,
                format!(
                    "gate.{}.{}",
                    gate.kind,
                    if gate.open { "open" } else { "close" }
                ),
                format!("{}/{}", gate.namespace, gate.name)
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A gate's state; closed when never set (like flagger-loadtester).
    pub fn gate(&self, namespace: &str, name: &str, kind: &str) -> Result<bool, StateError> {
        let c = self.conn.lock();
        Ok(c.query_row(
            "SELECT open FROM gates WHERE namespace = ?1 AND name = ?2 AND kind = ?3",
            params![namespace, name, kind],
            |r| r.get::<_, bool>(0),
        )
        .optional()?
        .unwrap_or(false))
    }

    /// All gates that were ever set.
    pub fn gates(&self) -> Result<Vec<GateRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT namespace, name, kind, open, updated_at, actor FROM gates ORDER BY namespace, name, kind",
        )?;
        let rows = st.query_map([], |r| {
            Ok(GateRow {
                namespace: r.get(0)?,
                name: r.get(1)?,
                kind: r.get(2)?,
                open: r.get(3)?,
                updated_at: r.get(4)?,
                actor: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Appends to the audit log (never updated or deleted).
    pub fn audit(
        &self,
        t: i64,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<i64, StateError> {
        let c = self.conn.lock();
        c.execute(
            "INSERT INTO audit (t, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![t, actor, action, subject, detail],
        )?;
        Ok(c.last_insert_rowid())
    }

    /// The newest audit entries, newest first; only `subject` when given.
    pub fn audit_log(
        &self,
        subject: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT id, t, actor, action, subject, detail FROM audit WHERE (?1 IS NULL OR subject = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![subject, limit as i64], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                t: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                subject: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
