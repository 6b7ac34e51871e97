//! Alert state of alerting rules, so `for` clocks survive restarts.

use rusqlite::{params, OptionalExtension};

use super::{State, StateError};

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

impl State {
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
}
