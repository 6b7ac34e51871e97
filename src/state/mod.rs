//! Durable state in SQLite (WAL mode), the only writer of durable data,
//! one file per table group: `alerts` (alert state, so `for` clocks survive
//! restarts), `outbox` (notifications), `runs` (analysis runs with their
//! measurements and verdict history), `audit` (gates and the audit log),
//! `kayenta` (Kayenta-API executions), `decisions` (decisions and their
//! actions), `rollouts` (driven rollouts' progress and operator commands)
//! and `retention` (deleting old history). Migrations are numbered
//! in code and tracked with `PRAGMA user_version`.
//!
//! Every call is one short statement or transaction on one connection
//! behind a mutex, so async code may call it directly; bulk work (the
//! retention pass) runs on a blocking thread and in batches.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;
use thiserror::Error;

mod alerts;
mod audit;
mod decisions;
mod delivery;
mod kayenta;
mod outbox;
mod retention;
mod rollouts;
mod runs;

pub use alerts::SavedAlert;
pub use audit::{AuditRow, GateRow};
pub use decisions::{redacted_request, ActionRow, ActionStatus, DecisionFilter, DecisionRow};
pub use delivery::{DeliveryEvent, DeliveryKind, DoraInput};
pub use outbox::OutboxEntry;
pub use retention::Pruned;
pub use rollouts::CommandRow;
pub use runs::{MeasurementRow, RunRow, VerdictRow};

/// A database error. rusqlite's message already says everything its
/// source would, so the source is not chained (an error chain would print
/// the same cause three times).
#[derive(Debug, Error)]
pub enum StateError {
    /// SQLite failed.
    #[error("state database: {0}")]
    Db(rusqlite::Error),
    /// A stored value this version cannot read (named in the message).
    #[error("state database: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> StateError {
        StateError::Db(e)
    }
}

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
    // 2: analysis runs, their measurements and verdict history.
    "CREATE TABLE analysis_runs (
        id TEXT PRIMARY KEY,
        template TEXT NOT NULL,
        args TEXT NOT NULL,
        run_key TEXT UNIQUE,
        state TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER,
        next_at INTEGER,
        spec TEXT NOT NULL,
        status TEXT NOT NULL
    );
    CREATE INDEX analysis_runs_state ON analysis_runs (state, next_at);
    CREATE TABLE analysis_measurements (
        run_id TEXT NOT NULL,
        interval INTEGER NOT NULL,
        metric TEXT NOT NULL,
        t INTEGER NOT NULL,
        phase TEXT NOT NULL,
        baseline REAL,
        canary REAL,
        message TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (run_id, interval, metric)
    );
    CREATE TABLE analysis_verdicts (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        t INTEGER NOT NULL,
        state TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );",
    // 3: operator gates (Flagger confirm/rollback hooks) and the audit log.
    "CREATE TABLE gates (
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        open INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (namespace, name, kind)
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        t INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );",
    // 4: executions of the Kayenta-compatible API.
    "CREATE TABLE kayenta_executions (
        id TEXT PRIMARY KEY,
        config_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );",
    // 5: decisions and the actions carrying them out (idempotent by key).
    "CREATE TABLE decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        t INTEGER NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        revision TEXT NOT NULL,
        decision TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        decision_id INTEGER NOT NULL,
        key TEXT NOT NULL UNIQUE,
        sink TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        request TEXT NOT NULL,
        response TEXT,
        done_at INTEGER
    );
    CREATE INDEX actions_due ON actions (status, next_attempt_at);",
    // 6: runs bound to a rollout, decided once when they finish.
    "ALTER TABLE analysis_runs ADD COLUMN rollout TEXT;
    ALTER TABLE analysis_runs ADD COLUMN decided INTEGER NOT NULL DEFAULT 0;",
    // 7: rollouts augur drives and operator commands for them.
    "CREATE TABLE rollouts (
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        progress TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, name)
    );
    CREATE TABLE rollout_commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        t INTEGER NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        verb TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        consumed_at INTEGER
    );
    CREATE INDEX rollout_commands_pending ON rollout_commands (namespace, name, consumed_at);",
    // 8: the delivery ledger (metrics and DORA).
    "CREATE TABLE delivery_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        t INTEGER NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX delivery_events_kind_t ON delivery_events (kind, t);",
];

/// The state database.
pub struct State {
    conn: Mutex<Connection>,
    /// Keyed runs as last written. Webhook ticks look a run up by key every
    /// interval from many clients at once; reading the database for each
    /// serialises them on the connection. Every write to a run goes
    /// through this type, so the cache is written through and stays exact.
    runs_by_key: parking_lot::RwLock<HashMap<String, Arc<RunRow>>>,
    /// `[delivery] escape_window` in ms (set at start and reload).
    escape_window_ms: std::sync::atomic::AtomicI64,
}

impl State {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<State, StateError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// Opens an existing database read-only, without migrating it (for
    /// reports next to a running daemon); it must be at the current schema.
    pub fn open_read_only(path: &Path) -> Result<State, StateError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != MIGRATIONS.len() as i64 {
            return Err(StateError::Corrupt(format!(
                "{} is at schema {version}, this augur reads schema {}: run this version of augur on it once",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        Ok(State {
            runs_by_key: parking_lot::RwLock::new(HashMap::new()),
            conn: Mutex::new(conn),
            escape_window_ms: std::sync::atomic::AtomicI64::new(3_600_000),
        })
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
            runs_by_key: parking_lot::RwLock::new(HashMap::new()),
            conn: Mutex::new(conn),
            escape_window_ms: std::sync::atomic::AtomicI64::new(3_600_000),
        })
    }
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

    fn run(id: &str, state: &str, finished: Option<i64>, rollout: Option<&str>) -> RunRow {
        RunRow {
            id: id.into(),
            template: "t".into(),
            args: "{}".into(),
            key: Some(format!("k/{id}")),
            state: state.into(),
            message: String::new(),
            created_at: 0,
            updated_at: 0,
            finished_at: finished,
            next_at: None,
            spec: "{}".into(),
            status: "{}".into(),
            rollout: rollout.map(str::to_string),
        }
    }

    #[test]
    fn retention_deletes_old_history_and_keeps_what_is_live() {
        let s = State::in_memory().unwrap();
        s.insert_run(&run("old", "passed", Some(1_000), None))
            .unwrap();
        s.insert_run(&run("new", "passed", Some(9_000), None))
            .unwrap();
        s.insert_run(&run("live", "running", None, None)).unwrap();
        // Bound to a rollout and not decided yet: kept until decided.
        s.insert_run(&run("bound", "failed", Some(1_000), Some("{}")))
            .unwrap();
        s.record_interval(
            &run("live", "running", None, None),
            &[MeasurementRow {
                interval: 1,
                metric: "m".into(),
                t: 1_000,
                phase: "successful".into(),
                baseline: None,
                canary: None,
                message: String::new(),
                detail: "{}".into(),
            }],
        )
        .unwrap();
        let d = |key: &str, t: i64| DecisionRow {
            id: 0,
            key: key.into(),
            t,
            namespace: "shop".into(),
            name: "web".into(),
            revision: "r".into(),
            decision: "abort".into(),
            actor: "api".into(),
            reason: String::new(),
            detail: "{}".into(),
        };
        // An old decision whose action is still pending stays.
        s.decide(&d("a", 1_000), &[("hook".into(), "{}".into())], 1_000)
            .unwrap();
        s.decide(&d("b", 1_000), &[], 1_000).unwrap();
        let sent = s.enqueue("am", "alertmanager", "[]", 1_000).unwrap();
        s.mark_sent(sent, 1_000).unwrap();
        s.enqueue("am", "alertmanager", "[]", 1_000).unwrap();
        for t in 0..10 {
            s.audit(t * 1_000, "x", "y", "z", "{}").unwrap();
        }
        let p = s.prune(5_000, 3).unwrap();
        assert_eq!(p.runs, 1);
        assert_eq!(p.decisions, 1);
        assert_eq!(p.notifications, 1);
        assert!(s.run("old").unwrap().is_none());
        for id in ["new", "live", "bound"] {
            assert!(s.run(id).unwrap().is_some(), "{id}");
        }
        assert_eq!(s.measurements("live").unwrap().len(), 1);
        assert_eq!(s.decisions(10, DecisionFilter::All).unwrap().len(), 1);
        assert_eq!(s.outbox(Some("pending"), 10).unwrap().len(), 1);
        // Audit: older than the cutoff and beyond the newest 3.
        assert_eq!(s.audit_log(None, 100).unwrap().len(), 3);
        assert!(s.run_by_key("k/old").unwrap().is_none());
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
