//! Canary analysis: templates, runs and their scoring. So far: Kayenta's
//! canary config and judge result formats ([`kayenta`]).

pub mod engine;
pub mod kayenta;
pub mod run;
pub mod template;
