//! Durable state in SQLite (WAL mode): alert state, so `for` clocks survive
//! restarts, and the notification outbox. The only writer of durable data.
//! Migrations are numbered in code and tracked with `PRAGMA user_version`.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

/// A database error.
#[derive(Debug, Error)]
#[error("state database: {0}")]
pub struct StateError(#[from] rusqlite::Error);

/// Schema versions, applied in order.
const MIGRATIONS: &[&str] = &[
    // 1: alert state and the outbox.
    "CREATE TABLE alerts (
        rule_key TEXT NOT NULL,
        labels TEXT NOT NULL,
        state TEXT NOT NULL,
        value REAL NOT NULL,
        active_at INTEGER NOT NULL,
        fired_at INTEGER,
        resolved_at INTEGER,
        keep_firing_since INTEGER,
        last_sent_at INTEGER,
        valid_until INTEGER,
        annotations TEXT NOT NULL,
        PRIMARY KEY (rule_key, labels)
    );
    CREATE TABLE rule_evals (
        rule_key TEXT PRIMARY KEY,
        last_eval INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        receiver TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT,
        sent_at INTEGER
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);",
];

/// One persisted alert.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedAlert {
    /// alert labels as JSON (sorted object)
    pub labels: String,
    /// pending, firing or inactive
    pub state: String,
    /// last value
    pub value: f64,
    /// ms
    pub active_at: i64,
    /// ms
    pub fired_at: Option<i64>,
    /// ms
    pub resolved_at: Option<i64>,
    /// ms
    pub keep_firing_since: Option<i64>,
    /// ms
    pub last_sent_at: Option<i64>,
    /// ms
    pub valid_until: Option<i64>,
    /// annotations as JSON
    pub annotations: String,
}

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

impl SavedAlert {
    /// The persisted form of an alert.
    pub fn from_alert(a: &crate::rules::Alert) -> SavedAlert {
        let labels: std::collections::BTreeMap<&str, &str> =
            a.labels.iter().map(|l| (&*l.name, &*l.value)).collect();
        SavedAlert {
            labels: serde_json::to_string(&labels).unwrap_or_default(),
            state: a.state.as_str().to_string(),
            value: a.value,
            active_at: a.active_at,
            fired_at: a.fired_at,
            resolved_at: a.resolved_at,
            keep_firing_since: a.keep_firing_since,
            last_sent_at: a.last_sent_at,
            valid_until: a.valid_until,
            annotations: serde_json::to_string(&a.annotations).unwrap_or_default(),
        }
    }

    /// Back to an alert; `None` if the row is unreadable.
    pub fn to_alert(&self) -> Option<crate::rules::Alert> {
        use crate::rules::AlertState;
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&self.labels).ok()?;
        let annotations = serde_json::from_str(&self.annotations).ok()?;
        Some(crate::rules::Alert {
            labels: crate::labels::Labels::from_pairs(labels),
            annotations,
            state: match self.state.as_str() {
                "pending" => AlertState::Pending,
                "firing" => AlertState::Firing,
                _ => AlertState::Inactive,
            },
            value: self.value,
            active_at: self.active_at,
            fired_at: self.fired_at,
            resolved_at: self.resolved_at,
            keep_firing_since: self.keep_firing_since,
            last_sent_at: self.last_sent_at,
            valid_until: self.valid_until,
        })
    }
}

/// The state database.
pub struct State {
    conn: Mutex<Connection>,
}

impl State {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<State, StateError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// An in-memory database, for tests and `augur test rules`.
    pub fn in_memory() -> Result<State, StateError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<State, StateError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL with synchronous=NORMAL survives process crashes (kill -9);
        // FULL would also survive power loss at more fsyncs.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            conn.execute_batch(&format!(
                "BEGIN; {m}; PRAGMA user_version = {}; COMMIT;",
                i + 1
            ))?;
        }
        Ok(State {
            conn: Mutex::new(conn),
        })
    }

    /// Replaces the saved alerts of one rule and records its evaluation time.
    pub fn save_rule(
        &self,
        rule_key: &str,
        last_eval: i64,
        alerts: &[SavedAlert],
    ) -> Result<(), StateError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        tx.execute("DELETE FROM alerts WHERE rule_key = ?1", params![rule_key])?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO alerts (rule_key, labels, state, value, active_at, fired_at, resolved_at,
                 keep_firing_since, last_sent_at, valid_until, annotations)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for a in alerts {
                ins.execute(params![
                    rule_key,
                    a.labels,
                    a.state,
                    a.value,
                    a.active_at,
                    a.fired_at,
                    a.resolved_at,
                    a.keep_firing_since,
                    a.last_sent_at,
                    a.valid_until,
                    a.annotations
                ])?;
            }
        }
        tx.execute(
            "INSERT INTO rule_evals (rule_key, last_eval) VALUES (?1, ?2)
             ON CONFLICT(rule_key) DO UPDATE SET last_eval = excluded.last_eval",
            params![rule_key, last_eval],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The saved alerts of a rule and its last evaluation time.
    pub fn load_rule(&self, rule_key: &str) -> Result<(Option<i64>, Vec<SavedAlert>), StateError> {
        let c = self.conn.lock();
        let last: Option<i64> = c
            .query_row(
                "SELECT last_eval FROM rule_evals WHERE rule_key = ?1",
                params![rule_key],
                |r| r.get(0),
            )
            .optional()?;
        let mut st = c.prepare_cached(
            "SELECT labels, state, value, active_at, fired_at, resolved_at, keep_firing_since,
             last_sent_at, valid_until, annotations FROM alerts WHERE rule_key = ?1",
        )?;
        let rows = st.query_map(params![rule_key], |r| {
            Ok(SavedAlert {
                labels: r.get(0)?,
                state: r.get(1)?,
                value: r.get(2)?,
                active_at: r.get(3)?,
                fired_at: r.get(4)?,
                resolved_at: r.get(5)?,
                keep_firing_since: r.get(6)?,
                last_sent_at: r.get(7)?,
                valid_until: r.get(8)?,
                annotations: r.get(9)?,
            })
        })?;
        let alerts = rows.collect::<Result<Vec<_>, _>>()?;
        Ok((last, alerts))
    }

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

fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxEntry> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &str, active_at: i64) -> SavedAlert {
        SavedAlert {
            labels: labels.into(),
            state: "pending".into(),
            value: 1.0,
            active_at,
            fired_at: None,
            resolved_at: None,
            keep_firing_since: None,
            last_sent_at: None,
            valid_until: None,
            annotations: "{}".into(),
        }
    }

    #[test]
    fn alerts_survive_reopening_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("augur.db");
        {
            let s = State::open(&p).unwrap();
            s.save_rule(
                "f;g;A",
                5000,
                &[alert("{\"a\":\"1\"}", 1000), alert("{\"a\":\"2\"}", 2000)],
            )
            .unwrap();
            s.save_rule("f;g;A", 6000, &[alert("{\"a\":\"2\"}", 2000)])
                .unwrap();
        }
        let s = State::open(&p).unwrap();
        let (last, alerts) = s.load_rule("f;g;A").unwrap();
        assert_eq!(last, Some(6000));
        assert_eq!(alerts, vec![alert("{\"a\":\"2\"}", 2000)]);
        assert_eq!(s.load_rule("other").unwrap(), (None, vec![]));
    }

    #[test]
    fn outbox_retries_then_dead_letters() {
        let s = State::in_memory().unwrap();
        let id = s.enqueue("am", "alertmanager", "[]", 100).unwrap();
        assert_eq!(s.due(100, 10).unwrap().len(), 1);
        s.mark_failed(id, "connection refused", Some(1100)).unwrap();
        assert!(s.due(500, 10).unwrap().is_empty());
        let e = &s.due(1100, 10).unwrap()[0];
        assert_eq!(
            (e.attempts, e.last_error.as_deref()),
            (1, Some("connection refused"))
        );
        s.mark_failed(id, "still down", None).unwrap();
        assert!(s.due(9999, 10).unwrap().is_empty());
        assert_eq!(s.outbox(Some("dead"), 10).unwrap().len(), 1);
        let id2 = s.enqueue("am", "alertmanager", "[1]", 200).unwrap();
        s.mark_sent(id2, 300).unwrap();
        assert_eq!(
            s.outbox_counts().unwrap(),
            vec![("dead".to_string(), 1), ("sent".to_string(), 1)]
        );
        assert_eq!(s.prune_sent(400).unwrap(), 1);
    }
}
