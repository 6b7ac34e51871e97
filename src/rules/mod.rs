//! Prometheus rule files: loading and validation (`augur check rules`),
//! templates, group evaluation with the alert state machine, and
//! promtool-format unit tests (`augur test rules`).

pub mod file;
pub mod group;
pub mod manager;
pub mod runner;
pub mod unittest;

pub use file::{load, parse, Group, Rule, RuleFile};
pub use group::{Alert, AlertState, EvalContext, GroupState, Health, RuleState};
pub use manager::{GroupHandle, GroupView, RuleManager, RuleView};
pub use runner::RuleRunner;
