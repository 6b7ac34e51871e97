//! The set of rule groups the daemon evaluates, rebuilt on reload with the
//! alert state of unchanged rules carried over (Prometheus's CopyState).
//!
//! Each group's state is locked only by its own evaluation loop and by a
//! reload; readers (the HTTP API) get the view published after the last
//! evaluation, so a slow rule never blocks a request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::file::{Rule, RuleFile};
use super::group::{Alert, GroupState, Health, RuleState};

/// One group: its state (for the evaluation loop) and its last view.
#[derive(Debug)]
pub struct GroupHandle {
    /// Locked by the group's loop while it evaluates, and by reloads.
    pub state: Mutex<GroupState>,
    view: RwLock<Arc<GroupView>>,
}

impl GroupHandle {
    fn new(state: GroupState) -> GroupHandle {
        let view = RwLock::new(Arc::new(state.view()));
        GroupHandle {
            state: Mutex::new(state),
            view,
        }
    }

    /// The group as of its last evaluation.
    pub fn view(&self) -> Arc<GroupView> {
        self.view.read().clone()
    }

    /// Publishes the state's view (after an evaluation).
    pub fn publish(&self, state: &GroupState) {
        *self.view.write() = Arc::new(state.view());
    }
}

/// What readers see of a group.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// the file it came from
    pub file: String,
    /// name
    pub name: String,
    /// evaluation interval
    pub interval: Duration,
    /// series/alerts limit per rule (0 = none)
    pub limit: i64,
    /// how long the last round took (seconds)
    pub last_eval_seconds: f64,
    /// slot time of the last round (ms)
    pub last_evaluation: Option<i64>,
    /// its rules
    pub rules: Vec<RuleView>,
}

/// What readers see of a rule.
#[derive(Debug, Clone)]
pub struct RuleView {
    /// the rule as loaded
    pub rule: Rule,
    /// health after the last evaluation
    pub health: Health,
    /// error of the last evaluation
    pub last_error: Option<String>,
    /// time of the last evaluation (ms)
    pub last_evaluation: Option<i64>,
    /// how long the last evaluation took (seconds)
    pub eval_seconds: f64,
    /// pending and firing alerts
    pub alerts: Vec<Alert>,
}

impl RuleView {
    /// True for alerting rules.
    pub fn is_alerting(&self) -> bool {
        self.rule.alert.is_some()
    }
}

impl GroupState {
    /// A copy of what readers need.
    pub fn view(&self) -> GroupView {
        GroupView {
            file: self.file.clone(),
            name: self.name.clone(),
            interval: self.interval,
            limit: self.limit,
            last_eval_seconds: self.last_eval_seconds,
            last_evaluation: self.last_evaluation,
            rules: self.rules.iter().map(RuleState::view).collect(),
        }
    }
}

impl RuleState {
    fn view(&self) -> RuleView {
        RuleView {
            rule: self.rule.clone(),
            health: self.health,
            last_error: self.last_error.clone(),
            last_evaluation: self.last_evaluation,
            eval_seconds: self.eval_seconds,
            alerts: self.active_alerts().cloned().collect(),
        }
    }
}

/// Groups shared between their evaluation loops and the API.
#[derive(Default)]
pub struct RuleManager {
    groups: RwLock<Vec<Arc<GroupHandle>>>,
}

impl RuleManager {
    /// An empty manager.
    pub fn new() -> RuleManager {
        RuleManager::default()
    }

    /// Builds the groups of `files` without installing them, so a reload
    /// can fail before anything changes.
    pub fn compile(
        files: &[(PathBuf, RuleFile)],
        default_interval: Duration,
    ) -> Result<Vec<GroupState>, String> {
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
        Ok(next)
    }

    /// Installs compiled groups. A rule whose group (file and name), rule
    /// name and expression are unchanged keeps its alerts, health and
    /// series. Waits for running evaluations of the old groups (each is
    /// bounded by the query timeout).
    pub fn install(&self, mut next: Vec<GroupState>) {
        let mut groups = self.groups.write();
        for ng in &mut next {
            let Some(old) = groups.iter().find(|o| {
                let v = o.view();
                v.file == ng.file && v.name == ng.name
            }) else {
                continue;
            };
            let mut old = old.state.lock();
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
        *groups = next
            .into_iter()
            .map(|g| Arc::new(GroupHandle::new(g)))
            .collect();
    }

    /// Replaces the groups with those of `files` (compile, then install).
    pub fn update(
        &self,
        files: &[(PathBuf, RuleFile)],
        default_interval: Duration,
    ) -> Result<(), String> {
        let next = Self::compile(files, default_interval)?;
        self.install(next);
        Ok(())
    }

    /// The current groups.
    pub fn groups(&self) -> Vec<Arc<GroupHandle>> {
        self.groups.read().clone()
    }

    /// Every group as of its last evaluation.
    pub fn views(&self) -> Vec<Arc<GroupView>> {
        self.groups.read().iter().map(|g| g.view()).collect()
    }
}
