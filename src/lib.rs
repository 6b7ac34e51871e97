//! augur: a canary analysis daemon and Prometheus-compatible alert evaluator.
//!
//! Data flows one way:
//!
//! ```text
//! targets' /metrics --reqwest--> scrape --expfmt--> store (sliding windows)
//!                 rule results and ALERTS -------> store --tap--> remote_write
//! remote Prometheus API -------------------------> datasource (same queries)
//!                                                     | read at eval time t
//!                   rules (record/alert) -> notify    analysis -> decide -> act
//!                                                         rollout (steps) --/
//!                              \___________________________________/
//!                                   state (SQLite: alerts, runs, decisions,
//!                                          outbox, audit)
//! api (axum) reads every stage and writes only through analysis and act.
//! ```
//!
//! Stages, in data-flow order:
//! - [`discovery`]: target groups from static configs, files and HTTP SD.
//! - [`relabel`]: Prometheus relabeling (every action) and target finishing.
//! - [`expfmt`]: Prometheus text 0.0.4 and OpenMetrics parsing into samples.
//! - [`scrape`]: target schedules, HTTP fetch, limits, `up`/`scrape_*` series.
//! - [`store`]: in-memory series, label index, ring buffers, retention, snapshots;
//!   a tap hands what it stores to remote write.
//! - [`remote_write`]: remote write 1.0 of rule results (and, asked, scraped
//!   samples) from the store's tap: sharded bounded queues, retries, metrics.
//! - [`promql`]: the PromQL engine over a `SeriesSource`, its one parser door
//!   with limits, and the promqltest runner.
//! - [`datasource`]: queries over the embedded store or a remote API, off the
//!   async workers, with timeouts and cancellation.
//! - [`rules`]: rule files, groups and their runner, alert state machine,
//!   promtool-format unit tests.
//! - [`gotemplate`]: Go's text/template with Prometheus's functions (alert
//!   labels and annotations, notification subjects and bodies).
//! - [`notify`]: the notification outbox (Alertmanager, webhook, Slack, email,
//!   PagerDuty alerts and change events).
//! - [`stats`]: two-sample, Kayenta and sequential tests on plain numbers.
//! - [`analysis`]: analysis templates, runs, measurements and verdicts, the
//!   Kayenta formats and judge.
//! - [`decide`]: pure policy from verdicts and gates to answers and decisions.
//! - [`delivery`]: decisions as numbers: the delivery metrics folded from
//!   the state's ledger, and the DORA four keys.
//! - [`act`]: decisions carried out once (webhooks, Kubernetes) from the outbox.
//! - [`rollout`]: rollouts augur drives itself (`[[rollouts]]`): canary steps
//!   over a traffic router, blue-green switches, durable step state.
//! - [`ha`]: Lease leader election (client-go's semantics); `act` acts only
//!   while this replica leads.
//! - [`state`]: SQLite schema, migrations, retention; the only durable writer.
//! - [`api`]: the HTTP API (Prometheus-compatible queries, rules, targets,
//!   runs, Flagger, Argo, Kayenta, decisions, audit) and its auth.
//! - [`ui`]: the web pages (server-rendered HTML, SVG charts, live updates
//!   over Server-Sent Events), read-only, over the same state as `api`.
//! - [`app`]: wiring, task ownership, signals, atomic reload and shutdown.
//! - [`demo`]: `augur demo`, the whole pipeline on simulated traffic.
//!
//! The `augur` binary (`src/main.rs`, command bodies in `src/cli/`) parses
//! the command line and calls these.
//!
//! Leaves: [`config`] (the TOML config, compiled with every error
//! collected), [`diag`] (`file:line:col` errors), [`sample`] (series data
//! and the staleness marker, shared by store and engine), [`clock`] (the
//! wall clock), [`labels`], [`metrics`] (augur's own, and the events that
//! move them), [`duration`], [`fmtfloat`], [`timefmt`], [`names`]
//! (Kubernetes name checks), [`kubeapi`] (Kubernetes clients and raw
//! requests shared by act, ha and discovery), [`pathglob`] (Prometheus's `rule_files`
//! globs), [`signing`] (request signatures), [`redact`] (secrets out of
//! URLs and errors before they are stored or shown).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod act;
pub mod analysis;
pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod datasource;
pub mod decide;
pub mod delivery;
pub mod demo;
pub mod diag;
pub mod discovery;
pub mod duration;
pub mod expfmt;
pub mod fmtfloat;
pub mod gotemplate;
pub mod ha;
pub mod kubeapi;
pub mod labels;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod pathglob;
pub mod promql;
pub mod redact;
pub mod relabel;
pub mod remote_write;
pub mod rollout;
pub mod rules;
pub mod sample;
pub mod scrape;
pub mod signing;
pub mod state;
pub mod stats;
pub mod store;
pub mod timefmt;
pub mod ui;
