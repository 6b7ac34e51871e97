//! Canary analysis: templates ([`template`]: TOML files with their
//! placeholders and checks), measuring one metric ([`measure`]), a run's
//! counters and outcome ([`run`], Argo's rules plus "no data never
//! passes"), the scheduler and its persistence through `state`
//! ([`engine`], the only part that does I/O), and Kayenta's canary config,
//! judge and result formats ([`kayenta`]).

pub mod engine;
pub mod kayenta;
pub mod measure;
pub mod run;
pub mod template;
