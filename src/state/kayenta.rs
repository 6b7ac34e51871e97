//! Executions of the Kayenta-compatible API.

use rusqlite::{params, OptionalExtension};

use super::{State, StateError};

impl State {
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
}
