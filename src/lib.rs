//! augur: a canary analysis daemon and Prometheus-compatible alert evaluator.
//!
//! Data flows one way (see `../shared/design.md`):
//!
//! ```text
//! targets' /metrics --reqwest--> scrape --expfmt--> store (sliding windows)
//!                                                     | read at eval time t
//!                                      rules / analysis -> decide -> act -> state
//! ```
//!
//! - [`expfmt`]: Prometheus text 0.0.4 and OpenMetrics parsing into samples.
//! - [`store`]: in-memory series, label index, ring buffers, retention, snapshots.
//! - [`scrape`]: target schedules, HTTP fetch, `up`/`scrape_*` series.
//! - [`config`]: the TOML config, raw serde structs compiled into a validated config.
//! - [`api`]: the HTTP API (health, readiness, own metrics, targets).
//! - [`app`]: wiring, task ownership, signals, reload and shutdown.
//! - [`duration`]: Prometheus duration strings (`1h30m`).
//! - [`fmtfloat`]: Go-compatible float formatting.
//! - [`stats`]: two-sample tests (Mann-Whitney, Welch, KS, proportions, Fisher),
//!   sequential e-values and Kayenta's classifier and scorer.
//! - [`analysis`]: canary analysis around the statistics (Kayenta formats so far).
//! - [`demo`]: `augur demo`, the whole pipeline on simulated traffic.

pub mod act;
pub mod analysis;
pub mod api;
pub mod app;
pub mod config;
pub mod datasource;
pub mod decide;
pub mod demo;
pub mod duration;
pub mod expfmt;
pub mod fmtfloat;
pub mod labels;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod pathglob;
pub mod promql;
pub mod rules;
pub mod scrape;
pub mod signing;
pub mod state;
pub mod stats;
pub mod store;
pub mod timefmt;
