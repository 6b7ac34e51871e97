//! Service discovery: target groups with `__meta_*` labels from static
//! configs, files (`file_sd_configs`), HTTP endpoints (`http_sd_configs`)
//! and the Kubernetes API (`kubernetes_sd_configs`), as Prometheus's
//! `discovery/` packages produce them.
//! Providers run as tasks and publish every job's full group list on a
//! channel; what the targets are for (relabeling, scraping) is not known
//! here.

mod file;
mod http;
pub mod kubernetes;

use parking_lot::Mutex;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, FileSdConfig, HttpSdConfig, KubernetesSdConfig, ScrapeConfig};
use crate::metrics::Metrics;
use crate::relabel::LabelSet;

pub use file::{parse_target_file, read_target_file};

/// Targets sharing labels, from one source (Prometheus's `targetgroup.Group`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TargetGroup {
    /// Unique within its provider: `file:i`, `url:i`, `0` for static.
    pub source: String,
    /// Each target's own labels (at least `__address__`).
    pub targets: Vec<LabelSet>,
    /// Labels of every target of the group.
    pub labels: LabelSet,
}

/// A target group as files and HTTP SD write it: `{"targets": [...],
/// "labels": {...}}`, unknown keys refused (Prometheus decodes strictly).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl RawGroup {
    /// Into a group with `source`; label names must be non-empty (the
    /// UTF-8 scheme's only rule).
    pub fn into_group(self, source: String) -> Result<TargetGroup, String> {
        if let Some(n) = self.labels.keys().find(|n| n.is_empty()) {
            return Err(format!("{n:?} is not a valid label name"));
        }
        Ok(TargetGroup {
            source,
            targets: self
                .targets
                .into_iter()
                .map(|t| LabelSet::from_pairs([("__address__", t)]))
                .collect(),
            labels: LabelSet::from_pairs(self.labels),
        })
    }
}

/// Target groups from a file or HTTP answer: source `<origin>:<index>`,
/// and `meta` (`__meta_filepath` or `__meta_url`) set to `origin`, as
/// Prometheus's file and HTTP discovery both do; a `null` entry is an
/// error, as there.
pub fn groups_from_raw(
    raw: Vec<Option<RawGroup>>,
    origin: &str,
    meta: &str,
) -> Result<Vec<TargetGroup>, String> {
    raw.into_iter()
        .enumerate()
        .map(|(i, g)| {
            let g = g.ok_or_else(|| "nil target group item found".to_string())?;
            let mut g = g.into_group(format!("{origin}:{i}"))?;
            g.labels.set(meta, origin);
            Ok(g)
        })
        .collect()
}

/// Empty groups for the indices `from..to` of `origin`: what a shrunk or
/// vanished list sends so its old groups are removed.
fn removed(origin: &str, from: usize, to: usize) -> impl Iterator<Item = TargetGroup> + '_ {
    (from..to).map(move |i| TargetGroup {
        source: format!("{origin}:{i}"),
        ..TargetGroup::default()
    })
}

/// The groups of a job's `static_configs`: source is the entry's index.
pub fn static_groups(job: &ScrapeConfig) -> Vec<TargetGroup> {
    job.static_configs
        .iter()
        .enumerate()
        .map(|(i, s)| TargetGroup {
            source: i.to_string(),
            targets: s
                .targets
                .iter()
                .map(|t| LabelSet::from_pairs([("__address__", t.as_str())]))
                .collect(),
            labels: LabelSet::from(&s.labels),
        })
        .collect()
}

/// One provider's configuration.
#[derive(Debug, Clone, PartialEq)]
enum Provider {
    File(FileSdConfig),
    Http(HttpSdConfig),
    Kubernetes(KubernetesSdConfig),
}

/// A job's update: every group its providers know now (shared: a job of
/// 100k pods is sent whole at every change, so only pointers are copied).
pub type Update = (String, Vec<Arc<TargetGroup>>);

struct Running {
    job: String,
    provider: Provider,
    id: u64,
    cancel: CancellationToken,
}

/// The groups each provider knows, by job and provider id (ids grow, so
/// a job's groups come out in the order its providers started).
type Known = HashMap<(String, u64), BTreeMap<String, Arc<TargetGroup>>>;

/// Owns the providers: starts them per job, keeps the ones whose config
/// did not change across reloads (so targets do not flap), and sends a
/// job's full group list whenever one of its providers changes.
pub struct DiscoveryManager {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    running: Mutex<Vec<Running>>,
    known: Arc<Mutex<Known>>,
    tx: mpsc::UnboundedSender<Update>,
    next_id: std::sync::atomic::AtomicU64,
}

impl DiscoveryManager {
    /// A manager whose updates arrive on the returned receiver.
    pub fn new(
        tracker: TaskTracker,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> (DiscoveryManager, mpsc::UnboundedReceiver<Update>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            DiscoveryManager {
                tracker,
                shutdown,
                metrics,
                running: Mutex::new(Vec::new()),
                known: Arc::new(Mutex::new(HashMap::new())),
                tx,
                next_id: std::sync::atomic::AtomicU64::new(0),
            },
            rx,
        )
    }

    /// Starts, keeps or stops providers for `cfg`'s jobs.
    pub fn apply(&self, cfg: &Config) {
        let mut running = self.running.lock();
        let mut old: Vec<Running> = running.drain(..).collect();
        let mut next = Vec::new();
        for job in &cfg.scrape_configs {
            let providers = job
                .file_sd_configs
                .iter()
                .cloned()
                .map(Provider::File)
                .chain(job.http_sd_configs.iter().cloned().map(Provider::Http))
                .chain(
                    job.kubernetes_sd_configs
                        .iter()
                        .cloned()
                        .map(Provider::Kubernetes),
                );
            for p in providers {
                if let Some(i) = old
                    .iter()
                    .position(|r| r.job == job.job_name && r.provider == p)
                {
                    next.push(old.swap_remove(i));
                    continue;
                }
                next.push(self.start(&job.job_name, p));
            }
        }
        for r in old {
            r.cancel.cancel();
        }
        // Stopped providers lose their groups; jobs are re-sent so the
        // scrape side sees the current picture.
        let mut known = self.known.lock();
        known.retain(|(job, id), _| next.iter().any(|r| r.id == *id && r.job == *job));
        for job in &cfg.scrape_configs {
            if job.has_discovery() {
                let groups = job_groups(&known, &job.job_name);
                let _ = self.tx.send((job.job_name.clone(), groups));
            }
        }
        *running = next;
    }

    fn start(&self, job: &str, p: Provider) -> Running {
        let cancel = self.shutdown.child_token();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sink = Sink {
            cancel: cancel.clone(),
            job: job.to_string(),
            id,
            known: self.known.clone(),
            tx: self.tx.clone(),
            metrics: self.metrics.clone(),
        };
        match &p {
            Provider::File(c) => {
                self.tracker
                    .spawn(file::run(c.clone(), sink, cancel.clone()));
            }
            Provider::Http(c) => {
                self.tracker
                    .spawn(http::run(c.clone(), sink, cancel.clone()));
            }
            Provider::Kubernetes(c) => {
                self.tracker
                    .spawn(kubernetes::run(c.clone(), sink, cancel.clone()));
            }
        }
        Running {
            job: job.to_string(),
            provider: p,
            id,
            cancel,
        }
    }
}

fn job_groups(known: &Known, job: &str) -> Vec<Arc<TargetGroup>> {
    let mut slots: Vec<_> = known.iter().filter(|((j, _), _)| j == job).collect();
    slots.sort_by_key(|((_, s), _)| *s);
    slots
        .into_iter()
        .flat_map(|(_, groups)| groups.values().cloned())
        .collect()
}

/// Where a provider sends its groups.
struct Sink {
    /// the provider's token: a stopped provider's last answer is ignored
    cancel: CancellationToken,
    job: String,
    id: u64,
    known: Arc<Mutex<Known>>,
    tx: mpsc::UnboundedSender<Update>,
    metrics: Arc<Metrics>,
}

impl Sink {
    /// Replaces groups by source; an empty group removes its source (as
    /// Prometheus's discovery manager); sends the job's list if anything
    /// changed.
    fn send(&self, groups: Vec<TargetGroup>) {
        let mut known = self.known.lock();
        // Checked under the lock `apply` prunes under, after cancelling.
        if self.cancel.is_cancelled() {
            return;
        }
        let mine = known.entry((self.job.clone(), self.id)).or_default();
        let mut changed = false;
        for g in groups {
            if g.targets.is_empty() {
                changed |= mine.remove(&g.source).is_some();
            } else if mine.get(&g.source).is_none_or(|old| **old != g) {
                mine.insert(g.source.clone(), Arc::new(g));
                changed = true;
            }
        }
        if changed {
            let groups = job_groups(&known, &self.job);
            let _ = self.tx.send((self.job.clone(), groups));
        }
    }

    fn failed(&self, mechanism: &'static str, what: &str, err: &str) {
        self.metrics.sd_failed(&self.job, mechanism, what, err);
    }

    fn ok(&self, mechanism: &'static str) {
        self.metrics.sd_refreshed(&self.job, mechanism);
    }
}
