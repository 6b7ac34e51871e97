//! Rollouts augur drives: each one's progress (a JSON document owned by
//! `rollout`) and the operator commands waiting for its controller.

use rusqlite::{params, OptionalExtension};

use super::{State, StateError};

/// An operator command for a driven rollout, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandRow {
    /// Order of arrival.
    pub id: i64,
    /// When it arrived (ms).
    pub t: i64,
    /// `promote`, `abort`, ... (typed by `rollout`).
    pub verb: String,
    /// Who asked.
    pub actor: String,
    /// Why, as given.
    pub reason: String,
}

impl State {
    /// A rollout's stored progress document.
    pub fn rollout_progress(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, StateError> {
        let c = self.conn.lock();
        Ok(c.query_row(
            "SELECT progress FROM rollouts WHERE namespace = ?1 AND name = ?2",
            params![namespace, name],
            |r| r.get(0),
        )
        .optional()?)
    }

    /// Stores a rollout's progress and marks the commands it took in as
    /// consumed, in one transaction (a crash keeps both or neither).
    pub fn save_rollout(
        &self,
        namespace: &str,
        name: &str,
        progress: &str,
        consumed: &[i64],
        now: i64,
    ) -> Result<(), StateError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO rollouts (namespace, name, progress, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (namespace, name) DO UPDATE SET progress = excluded.progress, updated_at = excluded.updated_at",
            params![namespace, name, progress, now],
        )?;
        for id in consumed {
            tx.execute(
                "UPDATE rollout_commands SET consumed_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Queues an operator command; returns its id.
    pub fn rollout_command(
        &self,
        namespace: &str,
        name: &str,
        verb: &str,
        actor: &str,
        reason: &str,
        now: i64,
    ) -> Result<i64, StateError> {
        let c = self.conn.lock();
        c.execute(
            "INSERT INTO rollout_commands (t, namespace, name, verb, actor, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now, namespace, name, verb, actor, reason],
        )?;
        Ok(c.last_insert_rowid())
    }

    /// Commands not yet taken in, oldest first.
    pub fn pending_rollout_commands(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<CommandRow>, StateError> {
        let c = self.conn.lock();
        let mut st = c.prepare_cached(
            "SELECT id, t, verb, actor, reason FROM rollout_commands
             WHERE namespace = ?1 AND name = ?2 AND consumed_at IS NULL ORDER BY id LIMIT 100",
        )?;
        let rows = st
            .query_map(params![namespace, name], |r| {
                Ok(CommandRow {
                    id: r.get(0)?,
                    t: r.get(1)?,
                    verb: r.get(2)?,
                    actor: r.get(3)?,
                    reason: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
