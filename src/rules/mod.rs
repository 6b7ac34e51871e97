//! Prometheus rule files: loading and validation (`augur check rules`),
//! and template syntax. Evaluation, the alert state machine and
//! notifications build on these.

pub mod file;
pub mod template;

pub use file::{load, parse, Group, Rule, RuleFile};
