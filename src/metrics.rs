//! augur's own metrics, served on `/metrics`, and the notable events that
//! move them (Vector's "internal events"): each event method below writes
//! its log line and bumps its counters in one call, so a log line and its
//! counter never drift apart. Events of analysis runs, decisions and
//! actions get their methods here when their counters arrive.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::store::Store;

/// `{job}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    /// scrape job
    pub job: String,
}

/// `{job, reason}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// scrape job
    pub job: String,
    /// why: http, timeout, body_size_limit, parse, sample_limit, content_type
    pub reason: String,
}

/// `{job, mechanism}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SdLabels {
    /// scrape job
    pub job: String,
    /// file, http, kubernetes
    pub mechanism: String,
}

/// `{rule_group}`: `file;name`, as Prometheus labels its rule metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    /// file;group
    pub rule_group: String,
}

/// `{receiver}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabel {
    /// receiver name
    pub receiver: String,
}

/// `{name, url}` of a `[[remote_write]]` endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteLabels {
    /// the endpoint's name
    pub name: String,
    /// its URL
    pub url: String,
}

/// Every metric augur exports about itself.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// scrapes attempted
    pub scrapes: Family<JobLabel, Counter>,
    /// scrapes failed, by reason
    pub scrape_failures: Family<FailureLabels, Counter>,
    /// samples scraped
    pub samples_scraped: Family<JobLabel, Counter>,
    /// scrape durations
    pub scrape_duration: Family<JobLabel, Histogram>,
    /// body bytes received
    pub scrape_bytes: Family<JobLabel, Counter>,
    /// out-of-order samples from scrapes
    pub samples_out_of_order: Family<JobLabel, Counter>,
    /// duplicate-timestamp samples from scrapes
    pub samples_duplicate: Family<JobLabel, Counter>,
    /// active targets after relabeling
    pub targets: Family<JobLabel, Gauge>,
    /// targets dropped by relabeling
    pub targets_dropped: Family<JobLabel, Gauge>,
    /// discovered targets that failed a check after relabeling
    pub target_sync_failed: Family<JobLabel, Counter>,
    /// discovery refreshes that failed (the last targets are kept)
    pub sd_failures: Family<SdLabels, Counter>,
    /// 1 while a discovery source answers, 0 while its last refresh failed
    pub sd_up: Family<SdLabels, Gauge>,
    /// 1 when the last reload succeeded
    pub config_last_reload_successful: Gauge,
    /// unix time of the last successful reload
    pub config_last_reload_success_timestamp: Gauge<f64, AtomicU64>,
    /// reloads attempted
    pub config_reloads: Counter,
    /// seconds the last snapshot took to write
    pub snapshot_duration: Gauge<f64, AtomicU64>,
    /// rule group rounds run
    pub rule_evaluations: Family<GroupLabel, Counter>,
    /// rule evaluations that failed
    pub rule_evaluation_failures: Family<GroupLabel, Counter>,
    /// duration of the last round of each group
    pub rule_group_last_duration: Family<GroupLabel, Gauge<f64, AtomicU64>>,
    /// rounds skipped because the previous one ran late
    pub rule_group_iterations_missed: Family<GroupLabel, Counter>,
    /// notifications delivered
    pub notifications_sent: Family<ReceiverLabel, Counter>,
    /// delivery attempts that failed
    pub notifications_failed: Family<ReceiverLabel, Counter>,
    /// notifications given up on
    pub notifications_dead: Counter,
    /// samples a remote-write receiver accepted
    pub remote_samples: Family<RemoteLabels, Counter>,
    /// samples a receiver refused for good (4xx)
    pub remote_failed: Family<RemoteLabels, Counter>,
    /// samples dropped: full queue, or flush deadline at shutdown
    pub remote_dropped: Family<RemoteLabels, Counter>,
    /// samples queued or in flight
    pub remote_pending: Family<RemoteLabels, Gauge>,
    /// newest timestamp a receiver accepted (seconds)
    pub remote_highest_sent: Family<RemoteLabels, Gauge<f64, AtomicU64>>,
    /// 1 while this replica may act (always, without `[ha]`)
    pub ha_leader: Gauge,
    /// times this replica started or stopped leading
    pub ha_transitions: Counter,
    /// decisions as numbers, folded from the delivery ledger
    pub delivery: crate::delivery::DeliveryMetrics,
}

fn duration_buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

impl Metrics {
    /// Registers all metrics; the store is read at each `/metrics` request.
    pub fn new(store: Arc<Store>) -> Metrics {
        let mut registry = Registry::default();
        let scrapes = Family::<JobLabel, Counter>::default();
        let scrape_failures = Family::<FailureLabels, Counter>::default();
        let samples_scraped = Family::<JobLabel, Counter>::default();
        let scrape_duration = Family::<JobLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(duration_buckets())
        });
        let scrape_bytes = Family::<JobLabel, Counter>::default();
        let samples_out_of_order = Family::<JobLabel, Counter>::default();
        let samples_duplicate = Family::<JobLabel, Counter>::default();
        let targets = Family::<JobLabel, Gauge>::default();
        let targets_dropped = Family::<JobLabel, Gauge>::default();
        let target_sync_failed = Family::<JobLabel, Counter>::default();
        let sd_failures = Family::<SdLabels, Counter>::default();
        let sd_up = Family::<SdLabels, Gauge>::default();
        let config_last_reload_successful = Gauge::default();
        let config_last_reload_success_timestamp = Gauge::<f64, AtomicU64>::default();
        let config_reloads = Counter::default();
        let snapshot_duration = Gauge::<f64, AtomicU64>::default();

        registry.register(
            "augur_build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register("augur_scrapes", "Scrapes attempted", scrapes.clone());
        registry.register(
            "augur_scrape_failures",
            "Scrapes that failed, by reason",
            scrape_failures.clone(),
        );
        registry.register(
            "augur_scrape_samples",
            "Samples scraped from targets",
            samples_scraped.clone(),
        );
        registry.register(
            "augur_scrape_duration_seconds",
            "Time taken by scrapes",
            scrape_duration.clone(),
        );
        registry.register(
            "augur_scrape_body_bytes",
            "Uncompressed body bytes received from targets",
            scrape_bytes.clone(),
        );
        registry.register(
            "augur_scrape_samples_out_of_order",
            "Scraped samples rejected as out of order",
            samples_out_of_order.clone(),
        );
        registry.register(
            "augur_scrape_samples_duplicate_timestamp",
            "Scraped samples rejected for a duplicate timestamp with a different value",
            samples_duplicate.clone(),
        );
        registry.register(
            "augur_targets",
            "Active scrape targets after relabeling",
            targets.clone(),
        );
        registry.register(
            "augur_targets_dropped",
            "Discovered targets dropped by relabeling",
            targets_dropped.clone(),
        );
        registry.register(
            "augur_target_sync_failed",
            "Discovered targets refused after relabeling (no address, bad interval, ...)",
            target_sync_failed.clone(),
        );
        registry.register(
            "augur_sd_refresh_failures",
            "Service discovery refreshes that failed; the last known targets are kept",
            sd_failures.clone(),
        );
        registry.register(
            "augur_sd_up",
            "1 while a service discovery source answers, 0 while it fails",
            sd_up.clone(),
        );
        registry.register(
            "augur_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            config_last_reload_successful.clone(),
        );
        registry.register(
            "augur_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            config_last_reload_success_timestamp.clone(),
        );
        registry.register(
            "augur_config_reloads",
            "Configuration reloads attempted",
            config_reloads.clone(),
        );
        registry.register(
            "augur_store_snapshot_duration_seconds",
            "Time the last store snapshot took",
            snapshot_duration.clone(),
        );
        let rule_evaluations = Family::<GroupLabel, Counter>::default();
        let rule_evaluation_failures = Family::<GroupLabel, Counter>::default();
        let rule_group_last_duration = Family::<GroupLabel, Gauge<f64, AtomicU64>>::default();
        let rule_group_iterations_missed = Family::<GroupLabel, Counter>::default();
        registry.register(
            "augur_rule_group_iterations",
            "Rule group rounds evaluated",
            rule_evaluations.clone(),
        );
        registry.register(
            "augur_rule_evaluation_failures",
            "Rule evaluations that failed",
            rule_evaluation_failures.clone(),
        );
        registry.register(
            "augur_rule_group_last_duration_seconds",
            "Duration of the last evaluation round of each rule group",
            rule_group_last_duration.clone(),
        );
        registry.register(
            "augur_rule_group_iterations_missed",
            "Rule group rounds skipped because the previous one ran late",
            rule_group_iterations_missed.clone(),
        );
        let notifications_sent = Family::<ReceiverLabel, Counter>::default();
        let notifications_failed = Family::<ReceiverLabel, Counter>::default();
        let notifications_dead = Counter::default();
        registry.register(
            "augur_notifications_sent",
            "Notifications delivered",
            notifications_sent.clone(),
        );
        registry.register(
            "augur_notifications_failed",
            "Notification delivery attempts that failed",
            notifications_failed.clone(),
        );
        registry.register(
            "augur_notifications_dead",
            "Notifications given up on after the last attempt (dead letters)",
            notifications_dead.clone(),
        );
        let remote_samples = Family::<RemoteLabels, Counter>::default();
        let remote_failed = Family::<RemoteLabels, Counter>::default();
        let remote_dropped = Family::<RemoteLabels, Counter>::default();
        let remote_pending = Family::<RemoteLabels, Gauge>::default();
        let remote_highest_sent = Family::<RemoteLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "augur_remote_write_samples",
            "Samples a remote-write receiver accepted",
            remote_samples.clone(),
        );
        registry.register(
            "augur_remote_write_failed",
            "Samples a remote-write receiver refused for good (4xx); not retried",
            remote_failed.clone(),
        );
        registry.register(
            "augur_remote_write_dropped",
            "Samples dropped before a receiver got them: a full queue drops its oldest, shutdown its unsent",
            remote_dropped.clone(),
        );
        registry.register(
            "augur_remote_write_pending",
            "Samples queued or in flight to a remote-write receiver",
            remote_pending.clone(),
        );
        registry.register(
            "augur_remote_write_highest_sent_timestamp_seconds",
            "Newest sample timestamp a remote-write receiver accepted",
            remote_highest_sent.clone(),
        );
        let ha_leader = Gauge::default();
        ha_leader.set(1);
        let ha_transitions = Counter::default();
        registry.register(
            "augur_ha_leader",
            "1 while this replica holds the lease and may act (always 1 without [ha])",
            ha_leader.clone(),
        );
        registry.register(
            "augur_ha_transitions",
            "Times this replica started or stopped leading",
            ha_transitions.clone(),
        );
        registry.register_collector(Box::new(StoreCollector(store)));
        let delivery = crate::delivery::DeliveryMetrics::register(&mut registry);
        Metrics {
            delivery,
            registry,
            scrapes,
            scrape_failures,
            samples_scraped,
            scrape_duration,
            scrape_bytes,
            samples_out_of_order,
            samples_duplicate,
            targets,
            targets_dropped,
            target_sync_failed,
            sd_failures,
            sd_up,
            config_last_reload_successful,
            config_last_reload_success_timestamp,
            config_reloads,
            snapshot_duration,
            rule_evaluations,
            rule_evaluation_failures,
            rule_group_last_duration,
            rule_group_iterations_missed,
            notifications_sent,
            notifications_failed,
            notifications_dead,
            remote_samples,
            remote_failed,
            remote_dropped,
            remote_pending,
            remote_highest_sent,
            ha_leader,
            ha_transitions,
        }
    }

    /// Renders everything in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Reads the store's counters at each scrape instead of mirroring them.
#[derive(Debug)]
struct StoreCollector(Arc<Store>);

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let st = self.0.stats();
        let gauges = [
            ("augur_store_series", "Series held in memory", st.series),
            ("augur_store_samples", "Samples held in memory", st.samples),
            (
                "augur_store_bytes",
                "Estimated heap bytes used by the store",
                st.bytes,
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v as i64);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let counters = [
            (
                "augur_store_samples_appended",
                "Samples appended to the store",
                st.appended_total,
            ),
            (
                "augur_store_samples_out_of_order",
                "Samples rejected by the store as out of order",
                st.out_of_order_total,
            ),
            (
                "augur_store_samples_duplicate",
                "Samples rejected by the store as duplicate timestamps",
                st.duplicate_total,
            ),
            (
                "augur_store_series_evicted",
                "Series removed by retention",
                st.series_evicted_total,
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}

/// Events: one call logs and counts.
impl Metrics {
    /// A scrape failed (`reason` is the failure counter's label).
    pub fn scrape_failed(&self, job: &str, url: &str, reason: &str, error: &dyn std::fmt::Display) {
        self.scrape_failures
            .get_or_create(&FailureLabels {
                job: job.to_string(),
                reason: reason.to_string(),
            })
            .inc();
        tracing::warn!(job, url, error = %error, "scrape failed");
    }

    /// A discovery source failed to refresh; its last targets stay.
    pub fn sd_failed(&self, job: &str, mechanism: &str, source: &str, error: &str) {
        let l = SdLabels {
            job: job.to_string(),
            mechanism: mechanism.to_string(),
        };
        self.sd_failures.get_or_create(&l).inc();
        self.sd_up.get_or_create(&l).set(0);
        tracing::warn!(
            job,
            mechanism,
            source,
            error,
            "service discovery failed; keeping the last known targets"
        );
    }

    /// A discovery source refreshed.
    pub fn sd_refreshed(&self, job: &str, mechanism: &str) {
        let l = SdLabels {
            job: job.to_string(),
            mechanism: mechanism.to_string(),
        };
        self.sd_up.get_or_create(&l).set(1);
    }

    /// A discovered target was refused after relabeling (Prometheus's
    /// "Creating target failed").
    pub fn target_failed(&self, job: &str, error: &dyn std::fmt::Display) {
        self.target_sync_failed
            .get_or_create(&JobLabel {
                job: job.to_string(),
            })
            .inc();
        tracing::warn!(job, error = %error, "creating target failed");
    }

    /// Samples of one scrape were rejected as out of order or duplicate.
    pub fn samples_rejected(&self, job: &JobLabel, url: &str, out_of_order: u64, duplicate: u64) {
        if out_of_order > 0 {
            self.samples_out_of_order
                .get_or_create(job)
                .inc_by(out_of_order);
            tracing::warn!(job = %job.job, url, count = out_of_order, "out-of-order samples rejected");
        }
        if duplicate > 0 {
            self.samples_duplicate.get_or_create(job).inc_by(duplicate);
            tracing::warn!(job = %job.job, url, count = duplicate, "samples with duplicate timestamps rejected");
        }
    }

    /// A rule group finished a round in `secs` with `failures` failed rules.
    pub fn rule_group_evaluated(&self, group: &GroupLabel, secs: f64, failures: usize) {
        self.rule_group_last_duration.get_or_create(group).set(secs);
        self.rule_evaluations.get_or_create(group).inc();
        if failures > 0 {
            self.rule_evaluation_failures
                .get_or_create(group)
                .inc_by(failures as u64);
            tracing::debug!(rule_group = %group.rule_group, failures, "rules failed this round");
        }
    }

    /// A rule group skipped `missed` evaluation slots (a round ran long).
    pub fn rule_group_missed(&self, group: &GroupLabel, missed: u64) {
        self.rule_group_iterations_missed
            .get_or_create(group)
            .inc_by(missed);
        tracing::warn!(rule_group = %group.rule_group, missed, "rule group iterations missed");
    }

    /// A reload finished: the new config is in effect, or (with errors)
    /// the previous one keeps running.
    pub fn reloaded(&self, config: &std::path::Path, errors: &[String], unix_now: f64) {
        self.config_reloads.inc();
        if errors.is_empty() {
            self.config_last_reload_successful.set(1);
            self.config_last_reload_success_timestamp.set(unix_now);
            tracing::info!(config = %config.display(), "configuration reloaded");
        } else {
            for e in errors {
                tracing::error!(error = %e, "invalid configuration");
            }
            self.config_last_reload_successful.set(0);
            tracing::error!(
                errors = errors.len(),
                "reload failed, keeping the previous configuration"
            );
        }
    }

    /// The store was snapshotted in `secs`.
    pub fn snapshot_written(&self, secs: f64) {
        self.snapshot_duration.set(secs);
    }
}
