//! The set of rule groups the daemon evaluates, rebuilt on reload with the
//! alert state of unchanged rules carried over (Prometheus's CopyState).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::file::RuleFile;
use super::group::GroupState;

/// Groups shared between their evaluation loops and the API.
#[derive(Default)]
pub struct RuleManager {
    groups: RwLock<Vec<Arc<Mutex<GroupState>>>>,
}

impl RuleManager {
    /// An empty manager.
    pub fn new() -> RuleManager {
        RuleManager::default()
    }

    /// Replaces the groups with those of `files`. A rule whose group (file
    /// and name), rule name and expression are unchanged keeps its alerts,
    /// health and series.
    pub fn update(
        &self,
        files: &[(PathBuf, RuleFile)],
        default_interval: Duration,
    ) -> Result<(), String> {
        let mut next = Vec::new();
        for (path, rf) in files {
            for g in &rf.groups {
                next.push(GroupState::new(
                    &path.to_string_lossy(),
                    g,
                    default_interval,
                )?);
            }
        }
        let mut groups = self.groups.write();
        for ng in &mut next {
            let Some(old) = groups.iter().find(|o| {
                let o = o.lock();
                o.file == ng.file && o.name == ng.name
            }) else {
                continue;
            };
            let mut old = old.lock();
            for nr in &mut ng.rules {
                if let Some(or) = old
                    .rules
                    .iter_mut()
                    .find(|r| r.rule.name() == nr.rule.name() && r.rule.expr == nr.rule.expr)
                {
                    nr.take_state(or);
                }
            }
        }
        *groups = next.into_iter().map(|g| Arc::new(Mutex::new(g))).collect();
        Ok(())
    }

    /// The current groups.
    pub fn groups(&self) -> Vec<Arc<Mutex<GroupState>>> {
        self.groups.read().clone()
    }
}
