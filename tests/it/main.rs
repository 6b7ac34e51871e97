//! augur's integration tests in one binary (as ripgrep does), so the
//! crate is linked once. Each module is one area; they start the real
//! `augur` binary on loopback against real HTTP targets (`common`), or run
//! the library on data files under `tests/`.
//!
//! Run one area with `cargo test --test it <module>::`, e.g.
//! `cargo test --test it trust::`.

mod common;

mod actions;
mod analysis;
mod analysis_prop;
mod config_reference;
mod crash;
mod daemon;
mod delivery;
mod demo;
mod discovery;
mod docs;
mod examples_kubernetes;
mod expfmt_conformance;
mod expfmt_prop;
mod ha;
mod hooks;
mod kayenta;
mod kayenta_api;
mod kubernetes;
mod kubernetes_sd;
mod notify;
mod prometheus_remote;
mod promql_conformance;
mod query_api;
mod relabel_prometheus;
mod remote_write;
mod restart_alerts;
mod rollouts;
mod rules_check;
mod rules_daemon;
mod rules_library;
mod rules_unittest;
mod stats_fixtures;
mod stats_sequential;
mod systemd;
mod tls;
mod trust;
mod ui;
mod ui_browser;
