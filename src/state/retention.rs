//! Deleting old history (`[state]` retention).

use rusqlite::{params, OptionalExtension};

use super::{State, StateError};

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
pub(super) const PRUNE_BATCH: i64 = 5000;

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
}
