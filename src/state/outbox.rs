//! The notification outbox: queued, retried, delivered or dead messages.

use rusqlite::params;

use super::{State, StateError};

/// One outbox entry.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// row id
    pub id: i64,
    /// receiver name
    pub receiver: String,
    /// what the payload is (alertmanager, webhook, slack, email)
    pub kind: String,
    /// the message, as the receiver gets it
    pub payload: String,
    /// ms
    pub created_at: i64,
    /// ms
    pub next_attempt_at: i64,
    /// delivery attempts so far
    pub attempts: i64,
    /// pending, sent or dead
    pub status: String,
    /// why the last attempt failed
    pub last_error: Option<String>,
}

pub(super) fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: r.get(0)?,
        receiver: r.get(1)?,
        kind: r.get(2)?,
        payload: r.get(3)?,
        created_at: r.get(4)?,
        next_attempt_at: r.get(5)?,
        attempts: r.get(6)?,
        status: r.get(7)?,
        last_error: r.get(8)?,
    })
}

impl State {
    /// Queues a message for a receiver; it is durable once this returns.
    pub fn enqueue(
        &self,
        receiver: &str,
        kind: &str,
        payload: &str,
        now: i64,
    ) -> Result<i64, StateError> {
        let c = self.conn.lock();
        c.execute(
            "INSERT INTO outbox (receiver, kind, payload, created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![receiver, kind, payload, now],
        )?;
        Ok(c.last_insert_rowid())
    }

    /// Pending entries due at `now`, oldest first.
    pub fn due(&self, now: i64, limit: usize) -> Result<Vec<OutboxEntry>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT id, receiver, kind, payload, created_at, next_attempt_at, attempts, status, last_error
             FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = st.query_map(params![now, limit as i64], row_entry)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Marks an entry delivered.
    pub fn mark_sent(&self, id: i64, now: i64) -> Result<(), StateError> {
        let c = self.conn.lock();
        c.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or dead when `None`.
    pub fn mark_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StateError> {
        let c = self.conn.lock();
        match retry_at {
            Some(t) => c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
                params![id, error, t],
            )?,
            None => c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, status = 'dead' WHERE id = ?1",
                params![id, error],
            )?,
        };
        Ok(())
    }

    /// Entries of a status (all when `None`), newest first.
    pub fn outbox(
        &self,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT id, receiver, kind, payload, created_at, next_attempt_at, attempts, status, last_error
             FROM outbox WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![status, limit as i64], row_entry)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// A mark that changes whenever something a page shows changes: runs
    /// (created, measured, finished), the audit log (decisions, actions,
    /// gates, rollout steps) and the outbox. Open pages poll it.
    pub fn change_mark(&self) -> Result<String, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT (SELECT IFNULL(MAX(updated_at), 0) || ':' || COUNT(*) FROM analysis_runs)
             || '/' || (SELECT IFNULL(MAX(id), 0) FROM audit)
             || '/' || (SELECT IFNULL(MAX(id), 0) || ':' || IFNULL(SUM(status = 'pending'), 0) || ':' || IFNULL(SUM(status = 'dead'), 0) FROM outbox)
             || '/' || (SELECT IFNULL(MAX(updated_at), 0) FROM rollouts)
             || '/' || (SELECT COUNT(*) || ':' || IFNULL(SUM(attempts), 0) || ':' || IFNULL(SUM(status = 'done'), 0) FROM actions)",
        )?;
        Ok(st.query_row([], |r| r.get(0))?)
    }

    /// Number of entries per status.
    pub fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes delivered entries older than `before` (ms).
    pub fn prune_sent(&self, before: i64) -> Result<usize, StateError> {
        let c = self.conn.lock();
        Ok(c.execute(
            "DELETE FROM outbox WHERE status = 'sent' AND sent_at < ?1",
            params![before],
        )?)
    }
}
