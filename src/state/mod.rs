//! Durable state in SQLite (WAL mode): alert state, so `for` clocks survive
//! restarts, the notification outbox, and analysis runs (status, sequential
//! evidence, measurements, verdict history). The only writer of durable data.
//! Migrations are numbered in code and tracked with `PRAGMA user_version`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

/// A database error. rusqlite's message already says everything its
/// source would, so the source is not chained (an error chain would print
/// the same cause three times).
#[derive(Debug, Error)]
#[error("state database: {0}")]
pub struct StateError(rusqlite::Error);

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> StateError {
        StateError(e)
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
];

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

/// One analysis run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Template name.
    pub template: String,
    /// Arguments as a JSON object.
    pub args: String,
    /// Caller's idempotency key (e.g. Flagger's namespace/name/checksum).
    pub key: Option<String>,
    /// running, passed, failed, inconclusive, error or cancelled.
    pub state: String,
    /// Why it is in that state.
    pub message: String,
    /// ms
    pub created_at: i64,
    /// ms
    pub updated_at: i64,
    /// ms, once finished
    pub finished_at: Option<i64>,
    /// ms, when the next measurement is due (running runs)
    pub next_at: Option<i64>,
    /// The template as resolved at creation (JSON), so reloads do not
    /// change a running analysis.
    pub spec: String,
    /// Counters and sequential evidence (JSON).
    pub status: String,
    /// The rollout the run decides about (JSON `{namespace, name,
    /// revision, promote_on_pass}`), if any.
    pub rollout: Option<String>,
}

/// One stored measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementRow {
    /// 1-based interval.
    pub interval: i64,
    /// Metric name.
    pub metric: String,
    /// ms
    pub t: i64,
    /// successful, failed, inconclusive or error
    pub phase: String,
    /// Baseline value.
    pub baseline: Option<f64>,
    /// Canary value.
    pub canary: Option<f64>,
    /// Readable sentence.
    pub message: String,
    /// JSON detail.
    pub detail: String,
}

/// One entry of a run's verdict history.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictRow {
    /// ms
    pub t: i64,
    /// Run state after the interval.
    pub state: String,
    /// Why.
    pub message: String,
}

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

    /// Back to an alert; an unreadable row is an error naming what is
    /// wrong (an unknown state is never read as some default).
    pub fn to_alert(&self) -> Result<crate::rules::Alert, String> {
        use crate::rules::AlertState;
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&self.labels).map_err(|e| format!("labels: {e}"))?;
        let annotations =
            serde_json::from_str(&self.annotations).map_err(|e| format!("annotations: {e}"))?;
        Ok(crate::rules::Alert {
            labels: crate::labels::Labels::from_pairs(labels),
            annotations,
            state: match self.state.as_str() {
                "pending" => AlertState::Pending,
                "firing" => AlertState::Firing,
                "inactive" => AlertState::Inactive,
                other => return Err(format!("unknown alert state {other:?}")),
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
    /// Keyed runs as last written. Webhook ticks look a run up by key every
    /// interval from many clients at once; reading the database for each
    /// serialises them on the connection. Every write to a run goes
    /// through this type, so the cache is written through and stays exact.
    runs_by_key: parking_lot::RwLock<HashMap<String, Arc<RunRow>>>,
}

/// Most keyed runs kept in memory; past it finished ones are dropped.
const RUN_CACHE_MAX: usize = 4096;

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
            runs_by_key: parking_lot::RwLock::new(HashMap::new()),
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

const RUN_COLUMNS: &str = "id, template, args, run_key, state, message, created_at, updated_at, finished_at, next_at, spec, status, rollout";

fn row_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        template: r.get(1)?,
        args: r.get(2)?,
        key: r.get(3)?,
        state: r.get(4)?,
        message: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        finished_at: r.get(8)?,
        next_at: r.get(9)?,
        spec: r.get(10)?,
        status: r.get(11)?,
        rollout: r.get(12)?,
    })
}

impl State {
    /// Stores a new run with its first verdict. A run with the same `key`
    /// is returned instead (the caller asked for it before).
    pub fn insert_run(&self, run: &RunRow) -> Result<RunRow, StateError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        if let Some(k) = &run.key {
            let existing = tx
                .query_row(
                    &format!("SELECT {RUN_COLUMNS} FROM analysis_runs WHERE run_key = ?1"),
                    params![k],
                    row_run,
                )
                .optional()?;
            if let Some(e) = existing {
                self.cache_run(&e);
                return Ok(e);
            }
        }
        tx.execute(
            "INSERT INTO analysis_runs (id, template, args, run_key, state, message, created_at, updated_at, finished_at, next_at, spec, status, rollout)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![run.id, run.template, run.args, run.key, run.state, run.message, run.created_at, run.updated_at, run.finished_at, run.next_at, run.spec, run.status, run.rollout],
        )?;
        tx.execute(
            "INSERT INTO analysis_verdicts (run_id, seq, t, state, message) VALUES (?1, 0, ?2, ?3, ?4)",
            params![run.id, run.created_at, run.state, run.message],
        )?;
        tx.commit()?;
        self.cache_run(run);
        Ok(run.clone())
    }

    fn cache_run(&self, run: &RunRow) {
        let Some(k) = &run.key else { return };
        let mut m = self.runs_by_key.write();
        if m.len() >= RUN_CACHE_MAX && !m.contains_key(k) {
            m.retain(|_, r| r.state == "running");
            if m.len() >= RUN_CACHE_MAX {
                m.clear();
            }
        }
        m.insert(k.clone(), Arc::new(run.clone()));
    }

    /// Records one interval of a run in one transaction: its measurements,
    /// the new status and state, and (when the state or message changed) a
    /// verdict history entry. Ignored when the run is no longer running
    /// (cancelled meanwhile); returns whether it was applied.
    pub fn record_interval(
        &self,
        run: &RunRow,
        measurements: &[MeasurementRow],
    ) -> Result<bool, StateError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        let current: Option<(String, String)> = tx
            .query_row(
                "SELECT state, message FROM analysis_runs WHERE id = ?1",
                params![run.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((state, message)) = current else {
            return Ok(false);
        };
        if state != "running" {
            return Ok(false);
        }
        for m in measurements {
            tx.execute(
                "INSERT OR REPLACE INTO analysis_measurements (run_id, interval, metric, t, phase, baseline, canary, message, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![run.id, m.interval, m.metric, m.t, m.phase, m.baseline, m.canary, m.message, m.detail],
            )?;
        }
        tx.execute(
            "UPDATE analysis_runs SET state = ?2, message = ?3, updated_at = ?4, finished_at = ?5, next_at = ?6, status = ?7 WHERE id = ?1",
            params![run.id, run.state, run.message, run.updated_at, run.finished_at, run.next_at, run.status],
        )?;
        if state != run.state || message != run.message {
            tx.execute(
                "INSERT INTO analysis_verdicts (run_id, seq, t, state, message)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), -1) + 1 FROM analysis_verdicts WHERE run_id = ?1), ?2, ?3, ?4)",
                params![run.id, run.updated_at, run.state, run.message],
            )?;
        }
        tx.commit()?;
        self.cache_run(run);
        Ok(true)
    }

    /// Cancels a running run; returns the run as it now is (None if unknown).
    pub fn cancel_run(&self, id: &str, now: i64, why: &str) -> Result<Option<RunRow>, StateError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        let n = tx.execute(
            "UPDATE analysis_runs SET state = 'cancelled', message = ?3, updated_at = ?2, finished_at = ?2, next_at = NULL
             WHERE id = ?1 AND state = 'running'",
            params![id, now, why],
        )?;
        if n > 0 {
            tx.execute(
                "INSERT INTO analysis_verdicts (run_id, seq, t, state, message)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), -1) + 1 FROM analysis_verdicts WHERE run_id = ?1), ?2, 'cancelled', ?3)",
                params![id, now, why],
            )?;
        }
        let row = tx
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM analysis_runs WHERE id = ?1"),
                params![id],
                row_run,
            )
            .optional()?;
        tx.commit()?;
        if let Some(r) = &row {
            self.cache_run(r);
        }
        Ok(row)
    }

    /// One run.
    pub fn run(&self, id: &str) -> Result<Option<RunRow>, StateError> {
        let c = self.conn.lock();
        Ok(c.query_row(
            &format!("SELECT {RUN_COLUMNS} FROM analysis_runs WHERE id = ?1"),
            params![id],
            row_run,
        )
        .optional()?)
    }

    /// Runs, newest first; only `state` ones when given.
    pub fn runs(&self, state: Option<&str>, limit: usize) -> Result<Vec<RunRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM analysis_runs WHERE (?1 IS NULL OR state = ?1) ORDER BY created_at DESC, id LIMIT ?2"
        ))?;
        let rows = st.query_map(params![state, limit as i64], row_run)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// A run's measurements, oldest first.
    pub fn measurements(&self, id: &str) -> Result<Vec<MeasurementRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT interval, metric, t, phase, baseline, canary, message, detail FROM analysis_measurements
             WHERE run_id = ?1 ORDER BY interval, rowid",
        )?;
        let rows = st.query_map(params![id], |r| {
            Ok(MeasurementRow {
                interval: r.get(0)?,
                metric: r.get(1)?,
                t: r.get(2)?,
                phase: r.get(3)?,
                baseline: r.get(4)?,
                canary: r.get(5)?,
                message: r.get(6)?,
                detail: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// A run's verdict history, oldest first.
    pub fn verdicts(&self, id: &str) -> Result<Vec<VerdictRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT t, state, message FROM analysis_verdicts WHERE run_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map(params![id], |r| {
            Ok(VerdictRow {
                t: r.get(0)?,
                state: r.get(1)?,
                message: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
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

    /// The newest run with this key prefix (e.g. all templates of one
    /// Flagger revision), if any.
    pub fn latest_run_with_key_prefix(&self, prefix: &str) -> Result<Vec<RunRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM analysis_runs WHERE substr(run_key, 1, length(?1)) = ?1 ORDER BY created_at DESC"
        ))?;
        let rows = st.query_map(params![prefix], row_run)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Stores a Kayenta-API execution (its whole `GET /canary/{id}` answer).
    pub fn put_kayenta_execution(
        &self,
        id: &str,
        config_id: &str,
        now: i64,
        body: &str,
    ) -> Result<(), StateError> {
        let c = self.conn.lock();
        c.execute(
            "INSERT OR REPLACE INTO kayenta_executions (id, config_id, created_at, body) VALUES (?1, ?2, ?3, ?4)",
            params![id, config_id, now, body],
        )?;
        Ok(())
    }

    /// A stored Kayenta-API execution.
    pub fn kayenta_execution(&self, id: &str) -> Result<Option<String>, StateError> {
        let c = self.conn.lock();
        Ok(c.query_row(
            "SELECT body FROM kayenta_executions WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?)
    }

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
        tx.execute(
            "INSERT INTO audit (t, actor, action, subject, detail) VALUES (?1, 'augur', ?2, ?3, ?4)",
            params![
                now,
                format!("action.{status}"),
                subject,
                serde_json::json!({"sink": a.sink, "key": a.key, "attempt": a.attempts + 1, "error": error,
                                   "request": serde_json::from_str::<serde_json::Value>(&a.request).unwrap_or_default(),
                                   "response": response}).to_string()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Finished runs bound to a rollout that have not been decided yet.
    pub fn undecided_runs(&self) -> Result<Vec<RunRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM analysis_runs WHERE rollout IS NOT NULL AND decided = 0 AND state != 'running' ORDER BY finished_at"
        ))?;
        let rows = st.query_map([], row_run)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Marks a run decided (its decision, if any, is recorded).
    pub fn mark_decided(&self, id: &str) -> Result<(), StateError> {
        let c = self.conn.lock();
        c.execute(
            "UPDATE analysis_runs SET decided = 1 WHERE id = ?1",
            params![id],
        )?;
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
    ) -> Result<Vec<(DecisionRow, Vec<ActionRow>)>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT id, key, t, namespace, name, revision, decision, actor, reason, detail FROM decisions ORDER BY id DESC LIMIT ?1",
        )?;
        let ds: Vec<DecisionRow> = st
            .query_map(params![limit as i64], row_decision)?
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

    /// The run stored under `key`.
    pub fn run_by_key(&self, key: &str) -> Result<Option<Arc<RunRow>>, StateError> {
        if let Some(r) = self.runs_by_key.read().get(key) {
            return Ok(Some(r.clone()));
        }
        let row = {
            let c = self.conn.lock();
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM analysis_runs WHERE run_key = ?1"),
                params![key],
                row_run,
            )
            .optional()?
        };
        Ok(row.map(|r| {
            self.cache_run(&r);
            Arc::new(r)
        }))
    }
}

/// Rows deleted by one retention pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// finished analysis runs (with their measurements and verdicts)
    pub runs: usize,
    /// decisions whose actions had all finished (with those actions)
    pub decisions: usize,
    /// delivered or dead notifications
    pub notifications: usize,
    /// Kayenta-API executions
    pub kayenta: usize,
    /// audit rows (by age or over the row cap)
    pub audit: usize,
    /// saved state of rules not evaluated since
    pub rules: usize,
}

/// Rows deleted per statement, so a large pass does not hold the
/// connection for long.
const PRUNE_BATCH: i64 = 5000;

impl State {
    /// Deletes history older than `before` (ms) and audit rows beyond
    /// `max_audit_rows`. Running runs and pending actions are never
    /// deleted, nor runs bound to a rollout that were not decided yet.
    pub fn prune(&self, before: i64, max_audit_rows: u64) -> Result<Pruned, StateError> {
        let mut p = Pruned::default();
        loop {
            let ids: Vec<String> = {
                let mut c = self.conn.lock();
                let tx = c.transaction()?;
                let ids: Vec<String> = {
                    let mut st = tx.prepare_cached(
                        "SELECT id FROM analysis_runs WHERE state != 'running' AND finished_at < ?1
                         AND (rollout IS NULL OR decided = 1) LIMIT ?2",
                    )?;
                    let rows = st.query_map(params![before, PRUNE_BATCH], |r| r.get(0))?;
                    rows.collect::<Result<_, _>>()?
                };
                for id in &ids {
                    tx.execute(
                        "DELETE FROM analysis_measurements WHERE run_id = ?1",
                        params![id],
                    )?;
                    tx.execute(
                        "DELETE FROM analysis_verdicts WHERE run_id = ?1",
                        params![id],
                    )?;
                    tx.execute("DELETE FROM analysis_runs WHERE id = ?1", params![id])?;
                }
                tx.commit()?;
                ids
            };
            if !ids.is_empty() {
                let gone: std::collections::HashSet<&String> = ids.iter().collect();
                self.runs_by_key
                    .write()
                    .retain(|_, r| !gone.contains(&r.id));
            }
            p.runs += ids.len();
            if (ids.len() as i64) < PRUNE_BATCH {
                break;
            }
        }
        loop {
            let n = {
                let mut c = self.conn.lock();
                let tx = c.transaction()?;
                let ids: Vec<i64> = {
                    let mut st = tx.prepare_cached(
                        "SELECT id FROM decisions d WHERE t < ?1 AND NOT EXISTS
                         (SELECT 1 FROM actions a WHERE a.decision_id = d.id AND a.status = 'pending') LIMIT ?2",
                    )?;
                    let rows = st.query_map(params![before, PRUNE_BATCH], |r| r.get(0))?;
                    rows.collect::<Result<_, _>>()?
                };
                for id in &ids {
                    tx.execute("DELETE FROM actions WHERE decision_id = ?1", params![id])?;
                    tx.execute("DELETE FROM decisions WHERE id = ?1", params![id])?;
                }
                tx.commit()?;
                ids.len()
            };
            p.decisions += n;
            if (n as i64) < PRUNE_BATCH {
                break;
            }
        }
        let batched = |sql: &str, arg: i64| -> Result<usize, StateError> {
            let mut total = 0;
            loop {
                let n = self.conn.lock().execute(sql, params![arg, PRUNE_BATCH])?;
                total += n;
                if (n as i64) < PRUNE_BATCH {
                    return Ok(total);
                }
            }
        };
        p.notifications = batched(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status IN ('sent', 'dead')
             AND created_at < ?1 LIMIT ?2)",
            before,
        )?;
        p.kayenta = batched(
            "DELETE FROM kayenta_executions WHERE rowid IN (SELECT rowid FROM kayenta_executions
             WHERE created_at < ?1 LIMIT ?2)",
            before,
        )?;
        p.audit = batched(
            "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE t < ?1 LIMIT ?2)",
            before,
        )?;
        let cutoff: Option<i64> = self
            .conn
            .lock()
            .query_row(
                "SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?1",
                params![i64::try_from(max_audit_rows).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(cut) = cutoff {
            p.audit += batched(
                "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE id <= ?1 LIMIT ?2)",
                cut,
            )?;
        }
        {
            let mut c = self.conn.lock();
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM alerts WHERE rule_key IN (SELECT rule_key FROM rule_evals WHERE last_eval < ?1)",
                params![before],
            )?;
            p.rules = tx.execute(
                "DELETE FROM rule_evals WHERE last_eval < ?1",
                params![before],
            )?;
            tx.commit()?;
        }
        Ok(p)
    }

    /// Moves a running run's next measurement without recording one.
    pub fn postpone_run(&self, id: &str, next_at: i64) -> Result<(), StateError> {
        let c = self.conn.lock();
        c.execute(
            "UPDATE analysis_runs SET next_at = ?2 WHERE id = ?1 AND state = 'running'",
            params![id, next_at],
        )?;
        Ok(())
    }

    /// How many runs are running.
    pub fn running_count(&self) -> Result<u64, StateError> {
        let c = self.conn.lock();
        let n: i64 = c.query_row(
            "SELECT COUNT(*) FROM analysis_runs WHERE state = 'running'",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Running runs due at `now` (oldest due first), at most `limit`.
    pub fn due_runs(&self, now: i64, limit: usize) -> Result<Vec<RunRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM analysis_runs WHERE state = 'running'
             AND (next_at IS NULL OR next_at <= ?1) ORDER BY next_at LIMIT ?2"
        ))?;
        let rows = st.query_map(params![now, limit as i64], row_run)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// When the next running run is due, if any runs.
    pub fn next_due(&self) -> Result<Option<i64>, StateError> {
        let c = self.conn.lock();
        Ok(c.query_row(
            "SELECT MIN(next_at) FROM analysis_runs WHERE state = 'running'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Cancels running runs whose key starts with `prefix` but not with
    /// `keep` (earlier revisions of the same canary); returns their ids.
    pub fn cancel_superseded(
        &self,
        prefix: &str,
        keep: &str,
        now: i64,
        why: &str,
    ) -> Result<Vec<String>, StateError> {
        let ids: Vec<String> = {
            let c = self.conn.lock();
            let mut st = c.prepare_cached(
                "SELECT id, run_key FROM analysis_runs WHERE state = 'running'
                 AND run_key >= ?1 AND substr(run_key, 1, length(?1)) = ?1",
            )?;
            let rows = st.query_map(params![prefix], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, key) = row?;
                if key.as_deref().is_some_and(|k| !k.starts_with(keep)) {
                    out.push(id);
                }
            }
            out
        };
        for id in &ids {
            self.cancel_run(id, now, why)?;
        }
        Ok(ids)
    }
}

const ACTION_COLUMNS: &str =
    "id, decision_id, key, sink, status, attempts, next_attempt_at, last_error, request, response, done_at";

fn row_action(r: &rusqlite::Row<'_>) -> rusqlite::Result<ActionRow> {
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

fn row_decision(r: &rusqlite::Row<'_>) -> rusqlite::Result<DecisionRow> {
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
        assert_eq!(s.decisions(10).unwrap().len(), 1);
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
