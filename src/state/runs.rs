//! Analysis runs: their rows, measurements and verdict history, and the
//! write-through cache of keyed runs.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension};

use super::{State, StateError};

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

/// Most keyed runs kept in memory; past it finished ones are dropped.
pub(super) const RUN_CACHE_MAX: usize = 4096;

pub(super) const RUN_COLUMNS: &str = "id, template, args, run_key, state, message, created_at, updated_at, finished_at, next_at, spec, status, rollout";

pub(super) fn row_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
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
        if run.state != "running" {
            super::delivery::add(
                &tx,
                run.updated_at,
                super::DeliveryKind::Run,
                serde_json::json!({"template": run.template, "result": run.state,
                    "seconds": (run.finished_at.unwrap_or(run.updated_at) - run.created_at).max(0) as f64 / 1000.0}),
            )?;
        }
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
            let (template, created): (String, i64) = tx.query_row(
                "SELECT template, created_at FROM analysis_runs WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            super::delivery::add(
                &tx,
                now,
                super::DeliveryKind::Run,
                serde_json::json!({"template": template, "result": "cancelled",
                    "seconds": (now - created).max(0) as f64 / 1000.0}),
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
