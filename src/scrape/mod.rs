//! Scraping: one task per target on its own schedule, HTTP fetch with
//! timeout, gzip and a body size limit, parsing with [`crate::expfmt`], and
//! writing samples, staleness markers and the `up`/`scrape_*` series into
//! the [`Store`] the way Prometheus's `scrape/scrape.go` does.

pub(crate) mod fetch;
mod target;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::config::{Config, ScrapeConfig};
use crate::discovery::TargetGroup;
use crate::expfmt;
use crate::labels::Labels;
use crate::metrics::{JobLabel, Metrics};
use crate::relabel::{self, Finished, LabelSet};
use crate::store::{stale_nan, AppendError, Appender, SeriesRef, Store};

pub use fetch::ScrapeError;

use crate::clock::now_ms;
pub use target::{sample_labels, scrape_offset};

/// Health of a target after its last scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// not scraped yet
    Unknown,
    /// last scrape succeeded
    Up,
    /// last scrape failed
    Down,
}

impl Health {
    /// The value Prometheus's API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the last scrape of a target did.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    /// up, down or unknown
    pub health: Health,
    /// error of the last scrape, empty when it succeeded
    pub last_error: String,
    /// when the last scrape started
    pub last_scrape: Option<SystemTime>,
    /// how long it took
    pub last_scrape_duration: Duration,
}

/// One active scrape target, plus its live status.
#[derive(Debug)]
pub struct Target {
    /// scrape pool (job name)
    pub job: String,
    /// labels attached to every sample: job, instance, and the rest
    /// without `__` labels
    pub labels: Labels,
    /// every label after relabeling, `__` ones included (but `__meta_*`)
    pub raw_labels: Labels,
    /// the URL scraped
    pub url: String,
    /// scrape interval (from `__scrape_interval__`)
    pub interval: Duration,
    /// scrape timeout (from `__scrape_timeout__`)
    pub timeout: Duration,
    /// labels before relabeling (`__address__`, `__meta_*`, ...); of the
    /// last duplicate seen, as Prometheus shows them
    discovered: Mutex<Labels>,
    status: Mutex<TargetStatus>,
}

impl Target {
    /// A copy of the current status.
    pub fn status(&self) -> TargetStatus {
        self.status.lock().clone()
    }

    /// The labels before relabeling.
    pub fn discovered_labels(&self) -> Labels {
        self.discovered.lock().clone()
    }
}

/// A target dropped by relabeling, as `/api/v1/targets` lists it.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    /// scrape pool
    pub job: String,
    /// labels before relabeling
    pub discovered_labels: Labels,
}

struct Running {
    target: Arc<Target>,
    /// the job's loop settings (shared by the pool's loops until a
    /// reload) and the target's interval and timeout
    settings: (Arc<ScrapeConfig>, Duration, Duration),
    /// identity: the URL and every label but `__meta_*` (Prometheus's
    /// `Target.hash`)
    key: (String, Labels),
    cancel: CancellationToken,
    stale_on_stop: Arc<AtomicBool>,
}

/// One job's targets (Prometheus's scrape pool).
struct Pool {
    cfg: ScrapeConfig,
    /// `cfg` without what only shapes the target list, to tell whether
    /// running loops must restart
    loop_cfg: Arc<ScrapeConfig>,
    /// the HTTP client of `loop_cfg`, shared by the pool's loops
    client: Arc<Result<reqwest::Client, String>>,
    static_groups: Vec<TargetGroup>,
    discovered: Vec<Arc<TargetGroup>>,
    /// finished targets per discovered group, by the group's address (the
    /// `Arc` is kept, so the address is not reused while cached)
    finished: HashMap<usize, (Arc<TargetGroup>, Arc<Vec<Outcome>>)>,
    loops: Vec<Running>,
    dropped: Vec<DroppedTarget>,
    dropped_count: usize,
    /// active targets now, read by every loop for `target_limit`
    active: Arc<AtomicU64>,
}

fn loop_settings(job: &ScrapeConfig) -> ScrapeConfig {
    ScrapeConfig {
        static_configs: Vec::new(),
        file_sd_configs: Vec::new(),
        http_sd_configs: Vec::new(),
        kubernetes_sd_configs: Vec::new(),
        relabel_configs: Vec::new(),
        keep_dropped_targets: 0,
        ..job.clone()
    }
}

/// Owns the scrape pools and their loops: builds each job's targets from
/// its target groups (static and discovered) through relabeling, starts
/// new loops, stops removed ones (writing staleness markers for their
/// series) and keeps unchanged ones running across reloads and updates.
/// Loops are tasks on the caller's [`TaskTracker`].
pub struct ScrapeManager {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    seed: u64,
    pools: Mutex<BTreeMap<String, Pool>>,
    first_round_pending: Arc<AtomicUsize>,
    started: AtomicBool,
}

impl ScrapeManager {
    /// A manager whose loops stop when `shutdown` is cancelled.
    pub fn new(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        seed: u64,
    ) -> ScrapeManager {
        ScrapeManager {
            store,
            metrics,
            tracker,
            shutdown,
            seed,
            pools: Mutex::new(BTreeMap::new()),
            first_round_pending: Arc::new(AtomicUsize::new(0)),
            started: AtomicBool::new(false),
        }
    }

    /// True once every target of the first config has been scraped once
    /// (successfully or not).
    pub fn first_round_done(&self) -> bool {
        self.started.load(Ordering::SeqCst) && self.first_round_pending.load(Ordering::SeqCst) == 0
    }

    /// All active targets, by pool name, then URL.
    pub fn targets(&self) -> Vec<Arc<Target>> {
        let pools = self.pools.lock();
        let mut out = Vec::new();
        for p in pools.values() {
            let mut ts: Vec<_> = p.loops.iter().map(|r| r.target.clone()).collect();
            ts.sort_by(|a, b| a.url.cmp(&b.url).then_with(|| a.labels.cmp(&b.labels)));
            out.extend(ts);
        }
        out
    }

    /// Targets dropped by relabeling (at most `keep_dropped_targets` per
    /// pool), by pool name.
    pub fn dropped_targets(&self) -> Vec<DroppedTarget> {
        let pools = self.pools.lock();
        pools
            .values()
            .flat_map(|p| p.dropped.iter().cloned())
            .collect()
    }

    /// How many targets each pool dropped (all of them, kept or not).
    pub fn dropped_counts(&self) -> BTreeMap<String, usize> {
        let pools = self.pools.lock();
        pools
            .iter()
            .map(|(k, p)| (k.clone(), p.dropped_count))
            .collect()
    }

    /// Applies a config: pools for new jobs, new settings for kept ones
    /// (loops restart only where their settings changed), pools of removed
    /// jobs stopped. A job whose discovery configs are unchanged keeps its
    /// discovered groups, so a reload makes no scrape gap.
    pub fn apply(&self, cfg: &Config) {
        let first = !self.started.swap(true, Ordering::SeqCst);
        let mut pools = self.pools.lock();
        let mut old = std::mem::take(&mut *pools);
        for job in &cfg.scrape_configs {
            let mut pool = old.remove(&job.job_name).unwrap_or_else(|| Pool {
                cfg: job.clone(),
                loop_cfg: Arc::new(loop_settings(job)),
                client: Arc::new(fetch::client(job)),
                static_groups: Vec::new(),
                discovered: Vec::new(),
                finished: HashMap::new(),
                loops: Vec::new(),
                dropped: Vec::new(),
                dropped_count: 0,
                active: Arc::new(AtomicU64::new(0)),
            });
            if pool.cfg.file_sd_configs != job.file_sd_configs
                || pool.cfg.http_sd_configs != job.http_sd_configs
                || pool.cfg.kubernetes_sd_configs != job.kubernetes_sd_configs
            {
                pool.discovered.clear();
            }
            pool.cfg = job.clone();
            let settings = loop_settings(job);
            if *pool.loop_cfg != settings {
                pool.client = Arc::new(fetch::client(&settings));
                pool.loop_cfg = Arc::new(settings);
            }
            pool.static_groups = crate::discovery::static_groups(job);
            self.sync(&mut pool, first);
            pools.insert(job.job_name.clone(), pool);
        }
        for (_, pool) in old {
            for r in pool.loops {
                info!(job = %r.target.job, url = %r.target.url, "target removed");
                r.stale_on_stop.store(true, Ordering::SeqCst);
                r.cancel.cancel();
            }
            self.metrics.targets.remove(&JobLabel {
                job: pool.cfg.job_name.clone(),
            });
        }
    }

    /// A job's discovered groups changed (all of them, from every
    /// provider of the job); unknown jobs are ignored.
    pub fn update_groups(&self, job: &str, groups: Vec<Arc<TargetGroup>>) {
        let mut pools = self.pools.lock();
        if let Some(pool) = pools.get_mut(job) {
            pool.discovered = groups;
            self.sync(pool, false);
        }
    }

    /// Prometheus's `scrapePool.Sync`: targets from groups, deduplicated by
    /// URL and labels; loops started, kept or stopped to match.
    fn sync(&self, pool: &mut Pool, counts_for_ready: bool) {
        let job = &pool.cfg;
        let defaults = job.target_defaults();
        let mut active: Vec<(ActiveKey, Labels, Duration, Duration)> = Vec::new();
        // foldhash: SipHash over every target's labels showed in profiles.
        let mut index: HashMap<ActiveKey, usize, foldhash::fast::RandomState> = HashMap::default();
        pool.dropped.clear();
        pool.dropped_count = 0;
        // Finished targets of unchanged discovered groups are reused: a
        // watch event changes one group of thousands, and every group
        // that did not change is the same `Arc` as before.
        let mut outcomes: Vec<Arc<Vec<Outcome>>> = pool
            .static_groups
            .iter()
            .map(|g| Arc::new(self.finish_group(job, &defaults, g)))
            .collect();
        let mut cache = HashMap::with_capacity(pool.discovered.len());
        for g in &pool.discovered {
            let k = Arc::as_ptr(g) as usize;
            let o = match pool.finished.remove(&k) {
                Some((same, o)) if Arc::ptr_eq(&same, g) => o,
                _ => Arc::new(self.finish_group(job, &defaults, g)),
            };
            cache.insert(k, (g.clone(), o.clone()));
            outcomes.push(o);
        }
        pool.finished = cache;
        for o in outcomes.iter().flat_map(|o| o.iter()) {
            match o {
                Outcome::Active(key, discovered, interval, timeout) => match index.get(key) {
                    Some(&n) => active[n].1 = discovered.clone(),
                    None => {
                        index.insert(key.clone(), active.len());
                        active.push((key.clone(), discovered.clone(), *interval, *timeout));
                    }
                },
                Outcome::Dropped(discovered) => {
                    if job.keep_dropped_targets == 0
                        || (pool.dropped.len() as u64) < job.keep_dropped_targets
                    {
                        pool.dropped.push(DroppedTarget {
                            job: job.job_name.clone(),
                            discovered_labels: discovered.clone(),
                        });
                    }
                    pool.dropped_count += 1;
                }
                Outcome::Failed => {}
            }
        }
        let job_label = JobLabel {
            job: job.job_name.clone(),
        };
        self.metrics
            .targets
            .get_or_create(&job_label)
            .set(active.len() as i64);
        self.metrics
            .targets_dropped
            .get_or_create(&job_label)
            .set(pool.dropped_count as i64);
        pool.active.store(active.len() as u64, Ordering::SeqCst);

        let mut old: HashMap<ActiveKey, Running, foldhash::fast::RandomState> =
            pool.loops.drain(..).map(|r| (r.key.clone(), r)).collect();
        let mut next = Vec::with_capacity(active.len());
        for (key, discovered, interval, timeout) in active {
            let settings = (pool.loop_cfg.clone(), interval, timeout);
            match old.remove(&key) {
                Some(r)
                    if Arc::ptr_eq(&r.settings.0, &settings.0)
                        && r.settings.1 == interval
                        && r.settings.2 == timeout =>
                {
                    *r.target.discovered.lock() = discovered;
                    next.push(r);
                }
                Some(r) => {
                    // Same series, new settings: no staleness gap.
                    r.cancel.cancel();
                    next.push(self.start(
                        settings,
                        &pool.client,
                        key,
                        discovered,
                        &pool.active,
                        false,
                    ));
                }
                None => next.push(self.start(
                    settings,
                    &pool.client,
                    key,
                    discovered,
                    &pool.active,
                    counts_for_ready,
                )),
            }
        }
        for (_, r) in old {
            info!(job = %r.target.job, url = %r.target.url, "target removed");
            r.stale_on_stop.store(true, Ordering::SeqCst);
            r.cancel.cancel();
        }
        pool.loops = next;
    }

    /// Finishes every target of one group; failures are logged and
    /// counted here, once per group version.
    fn finish_group(
        &self,
        job: &ScrapeConfig,
        defaults: &relabel::JobDefaults<'_>,
        g: &TargetGroup,
    ) -> Vec<Outcome> {
        g.targets
            .iter()
            .enumerate()
            .map(
                |(i, t)| match relabel::populate_labels(defaults, t, &g.labels) {
                    Finished::Active {
                        labels,
                        discovered,
                        interval,
                        timeout,
                    } => {
                        let url = relabel::target_url(&labels, &job.params);
                        Outcome::Active(
                            (url, labels.to_labels()),
                            discovered.to_labels(),
                            interval,
                            timeout,
                        )
                    }
                    Finished::Dropped { discovered } => Outcome::Dropped(discovered.to_labels()),
                    Finished::Failed(e) => {
                        self.metrics.target_failed(
                            &job.job_name,
                            &format!("instance {i} in group {}: {e}", g.source),
                        );
                        Outcome::Failed
                    }
                },
            )
            .collect()
    }

    fn start(
        &self,
        settings: (Arc<ScrapeConfig>, Duration, Duration),
        client: &Arc<Result<reqwest::Client, String>>,
        key: ActiveKey,
        discovered: Labels,
        active: &Arc<AtomicU64>,
        counts_for_ready: bool,
    ) -> Running {
        // Loops share the job's settings; interval and timeout are the
        // target's own (`__scrape_interval__`, `__scrape_timeout__`).
        let job = &settings.0;
        let full = LabelSet::from(&key.1);
        let target = Arc::new(Target {
            job: job.job_name.clone(),
            labels: relabel::public_labels(&full).to_labels(),
            raw_labels: key.1.clone(),
            url: key.0.clone(),
            interval: settings.1,
            timeout: settings.2,
            discovered: Mutex::new(discovered),
            status: Mutex::new(TargetStatus {
                health: Health::Unknown,
                last_error: String::new(),
                last_scrape: None,
                last_scrape_duration: Duration::ZERO,
            }),
        });
        let cancel = self.shutdown.child_token();
        let stale_on_stop = Arc::new(AtomicBool::new(false));
        if counts_for_ready {
            self.first_round_pending.fetch_add(1, Ordering::SeqCst);
        }
        let lp = ScrapeLoop {
            target: target.clone(),
            job: job.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            client: client.clone(),
            cache: HashMap::new(),
            prev: HashSet::new(),
            report_refs: None,
            iteration: 0,
            job_label: JobLabel {
                job: job.job_name.clone(),
            },
            pool_active: active.clone(),
        };
        let offset = scrape_offset(&target.labels, &target.url, self.seed, target.interval);
        let pending = counts_for_ready.then(|| self.first_round_pending.clone());
        self.tracker
            .spawn(lp.run(offset, cancel.clone(), stale_on_stop.clone(), pending));
        Running {
            target,
            settings,
            key,
            cancel,
            stale_on_stop,
        }
    }
}

/// A target's identity in its pool: URL and labels (without `__meta_*`).
type ActiveKey = (String, Labels);

/// What finishing one discovered target gave.
#[derive(Debug)]
enum Outcome {
    /// identity, discovered labels, interval, timeout
    Active(ActiveKey, Labels, Duration, Duration),
    /// discovered labels
    Dropped(Labels),
    /// refused (logged when finished)
    Failed,
}

struct CacheEntry {
    /// None: metric relabeling dropped the series
    series: Option<SeriesRef>,
    last_seen: u64,
}

/// Counts from appending one scrape.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct AppendStats {
    scraped: u64,
    added: u64,
    series_added: u64,
    out_of_order: u64,
    duplicate: u64,
}

struct ScrapeLoop {
    target: Arc<Target>,
    /// the job's settings, shared by its loops; the target's interval and
    /// timeout are on `target`
    job: Arc<ScrapeConfig>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// shared by the pool's loops (one connection pool, not one per target)
    client: Arc<Result<reqwest::Client, String>>,
    /// Raw series text -> store series, as Prometheus's scrape cache.
    cache: HashMap<Box<str>, CacheEntry>,
    /// Series written by the last successful scrape (staleness tracking).
    prev: HashSet<SeriesRef>,
    report_refs: Option<[SeriesRef; 5]>,
    iteration: u64,
    job_label: JobLabel,
    /// the pool's active target count, for `target_limit`
    pool_active: Arc<AtomicU64>,
}

const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

impl ScrapeLoop {
    async fn run(
        mut self,
        offset: Duration,
        cancel: CancellationToken,
        stale_on_stop: Arc<AtomicBool>,
        mut first_round: Option<Arc<AtomicUsize>>,
    ) {
        // Align to the target's slot within the interval, like Prometheus.
        let interval = self.target.interval;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let iv = interval.as_millis().max(1);
        let into = Duration::from_millis((now.as_millis() % iv) as u64);
        let wait = if offset >= into {
            offset - into
        } else {
            interval - (into - offset)
        };
        let start = tokio::time::Instant::now() + wait;
        let mut ticker = tokio::time::interval_at(start, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        debug!(url = %self.target.url, ?wait, "scrape loop started");
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                // Boxed: an idle loop then holds only the box, not the
                // HTTP future's state (100k targets are 100k tasks).
                _ = Box::pin(self.scrape_once()) => {}
            }
            if let Some(p) = first_round.take() {
                p.fetch_sub(1, Ordering::SeqCst);
            }
        }
        if let Some(p) = first_round.take() {
            p.fetch_sub(1, Ordering::SeqCst);
        }
        if stale_on_stop.load(Ordering::SeqCst) {
            self.mark_all_stale(now_ms());
        }
    }

    async fn scrape_once(&mut self) {
        let ts = now_ms();
        let wall = SystemTime::now();
        let started = Instant::now();
        self.metrics.scrapes.get_or_create(&self.job_label).inc();
        let targets = self.pool_active.load(Ordering::SeqCst);
        let fetched = match &*self.client {
            // Prometheus: past target_limit no target of the job is
            // scraped; each reports the error with up = 0.
            _ if self.job.target_limit > 0 && targets > self.job.target_limit => {
                Err(ScrapeError::TargetLimit {
                    limit: self.job.target_limit,
                    got: targets,
                })
            }
            Ok(c) => fetch::fetch(c, &self.job, &self.target.url, self.target.timeout).await,
            Err(e) => Err(ScrapeError::Client(e.clone())),
        };
        let result = fetched.and_then(|body| {
            self.metrics
                .scrape_bytes
                .get_or_create(&self.job_label)
                .inc_by(body.bytes.len() as u64);
            self.append_body(&body, ts)
        });
        let took = started.elapsed();
        self.metrics
            .scrape_duration
            .get_or_create(&self.job_label)
            .observe(took.as_secs_f64());
        let (health, err, stats) = match result {
            Ok(stats) => {
                self.metrics
                    .samples_scraped
                    .get_or_create(&self.job_label)
                    .inc_by(stats.scraped);
                (Health::Up, String::new(), stats)
            }
            Err(e) => {
                self.metrics
                    .scrape_failed(&self.job.job_name, &self.target.url, e.reason(), &e);
                // A failed scrape ends every series of the last good one.
                self.stale_missing(&HashSet::new(), ts);
                let stats = AppendStats {
                    scraped: e.samples_scraped(),
                    ..AppendStats::default()
                };
                (Health::Down, e.to_string(), stats)
            }
        };
        self.report(ts, health == Health::Up, took, stats);
        let mut st = self.target.status.lock();
        st.health = health;
        st.last_error = err;
        st.last_scrape = Some(wall);
        st.last_scrape_duration = took;
    }

    fn append_body(&mut self, body: &fetch::Body, ts: i64) -> Result<AppendStats, ScrapeError> {
        if body.bytes.is_empty() {
            // Prometheus: an empty body is not an error, it only ends series.
            self.stale_missing(&HashSet::new(), ts);
            return Ok(AppendStats::default());
        }
        let format = match body
            .content_type
            .as_deref()
            .and_then(expfmt::Format::from_content_type)
        {
            Some(f) => f,
            None => match (self.job.fallback_scrape_protocol, &body.content_type) {
                (Some(f), _) => f,
                (None, None) => return Err(ScrapeError::BlankContentType),
                (None, Some(ct)) => return Err(ScrapeError::UnsupportedContentType(ct.clone())),
            },
        };
        let parsed = expfmt::parse(&body.bytes, format).map_err(ScrapeError::Parse)?;
        let n = parsed.samples.len() as u64;
        self.check_limits(&parsed)?;
        self.iteration += 1;
        let mut stats = AppendStats {
            scraped: n,
            ..AppendStats::default()
        };
        let mut cur: HashSet<SeriesRef> = HashSet::with_capacity(parsed.samples.len());
        {
            let store = self.store.clone();
            let mut app = store.appender();
            for s in &parsed.samples {
                let (r, new) = self.resolve(&mut app, &parsed, s)?;
                // Dropped by metric relabeling.
                let Some(mut r) = r else { continue };
                if new {
                    stats.series_added += 1;
                }
                let t = match (self.job.honor_timestamps, s.timestamp_ms) {
                    (true, Some(t)) => t,
                    _ => ts,
                };
                let mut res = app.append(r, t, s.value);
                if res == Err(AppendError::UnknownSeries) {
                    // Evicted since it was cached: look it up again.
                    self.cache.remove(s.series);
                    if let (Some(again), _) = self.resolve(&mut app, &parsed, s)? {
                        r = again;
                        res = app.append(r, t, s.value);
                    }
                }
                match res {
                    Ok(_) => stats.added += 1,
                    Err(AppendError::OutOfOrder) => stats.out_of_order += 1,
                    Err(AppendError::Duplicate) => stats.duplicate += 1,
                    Err(AppendError::UnknownSeries) => {}
                }
                // Series with their own timestamps are not marked stale
                // (Prometheus without track_timestamps_staleness).
                if s.timestamp_ms.is_none() || !self.job.honor_timestamps {
                    cur.insert(r);
                }
            }
            Self::stale_missing_in(&mut app, &self.prev, &cur, ts);
        }
        self.prev = cur;
        self.metrics.samples_rejected(
            &self.job_label,
            &self.target.url,
            stats.out_of_order,
            stats.duplicate,
        );
        if self.iteration % 16 == 0 {
            let it = self.iteration;
            self.cache.retain(|_, e| e.last_seen + 2 >= it);
        }
        Ok(stats)
    }

    /// The labels a scraped series is stored under: merged with the
    /// target's, then through `metric_relabel_configs`; None when
    /// relabeling dropped it.
    fn final_labels(
        &self,
        parsed: &expfmt::Parsed<'_>,
        s: &expfmt::Sample<'_>,
    ) -> Result<Option<Vec<(String, String)>>, ScrapeError> {
        let pairs = sample_labels(
            &s.name,
            parsed.labels(s),
            &self.target.labels,
            self.job.honor_labels,
        );
        if self.job.metric_relabel_configs.is_empty() {
            return Ok(Some(pairs));
        }
        let mut set = LabelSet::from_pairs(pairs);
        if !relabel::process(&mut set, &self.job.metric_relabel_configs) {
            return Ok(None);
        }
        if set.get(crate::labels::METRIC_NAME).is_empty() {
            return Err(ScrapeError::NameLabelMandatory);
        }
        Ok(Some(
            set.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        ))
    }

    /// Everything that fails a scrape before anything of it is stored:
    /// `sample_limit` on the samples left after metric relabeling, and
    /// Prometheus's `verifyLabelLimits` on every series not seen in an
    /// earlier scrape (cached ones passed already), and a series that
    /// relabeling left without a name.
    fn check_limits(&self, parsed: &expfmt::Parsed<'_>) -> Result<(), ScrapeError> {
        let (count, name_len, value_len) = (
            self.job.label_limit as usize,
            self.job.label_name_length_limit as usize,
            self.job.label_value_length_limit as usize,
        );
        let label_limits = count > 0 || name_len > 0 || value_len > 0;
        let sample_limit = self.job.sample_limit;
        if !label_limits && sample_limit == 0 && self.job.metric_relabel_configs.is_empty() {
            return Ok(());
        }
        let short = |s: &str| s.chars().take(50).collect::<String>();
        let mut kept = 0u64;
        for s in &parsed.samples {
            if let Some(e) = self.cache.get(s.series) {
                kept += u64::from(e.series.is_some());
                continue;
            }
            let Some(pairs) = self.final_labels(parsed, s)? else {
                continue;
            };
            kept += 1;
            if !label_limits {
                continue;
            }
            let metric = pairs
                .iter()
                .find(|(n, _)| n == crate::labels::METRIC_NAME)
                .map_or(String::new(), |(_, v)| short(v));
            if count > 0 && pairs.len() > count {
                return Err(ScrapeError::LabelLimit(format!(
                    "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {count})",
                    pairs.len()
                )));
            }
            for (n, v) in &pairs {
                if name_len > 0 && n.len() > name_len {
                    return Err(ScrapeError::LabelLimit(format!(
                        "label_name_length_limit exceeded (metric: {metric}, label name: {}, length: {}, limit: {name_len})",
                        short(n),
                        n.len()
                    )));
                }
                if value_len > 0 && v.len() > value_len {
                    return Err(ScrapeError::LabelLimit(format!(
                        "label_value_length_limit exceeded (metric: {metric}, label name: {}, value: {:?}, length: {}, limit: {value_len})",
                        short(n),
                        short(v),
                        v.len()
                    )));
                }
            }
        }
        if sample_limit > 0 && kept > sample_limit {
            return Err(ScrapeError::SampleLimit {
                limit: sample_limit,
                got: parsed.samples.len() as u64,
            });
        }
        Ok(())
    }

    /// The store series for a scraped sample, via the cache (None when
    /// metric relabeling drops it); `true` when the series is new to this
    /// target's cache (`scrape_series_added`).
    fn resolve(
        &mut self,
        app: &mut Appender<'_>,
        parsed: &expfmt::Parsed<'_>,
        s: &expfmt::Sample<'_>,
    ) -> Result<(Option<SeriesRef>, bool), ScrapeError> {
        if let Some(e) = self.cache.get_mut(s.series) {
            e.last_seen = self.iteration;
            return Ok((e.series, false));
        }
        let r = self
            .final_labels(parsed, s)?
            .map(|pairs| app.series(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))));
        self.cache.insert(
            s.series.into(),
            CacheEntry {
                series: r,
                last_seen: self.iteration,
            },
        );
        Ok((r, r.is_some()))
    }

    fn stale_missing(&mut self, cur: &HashSet<SeriesRef>, ts: i64) {
        if self.prev.is_empty() {
            return;
        }
        let mut app = self.store.appender();
        Self::stale_missing_in(&mut app, &self.prev, cur, ts);
        drop(app);
        self.prev = cur.clone();
    }

    fn stale_missing_in(
        app: &mut Appender<'_>,
        prev: &HashSet<SeriesRef>,
        cur: &HashSet<SeriesRef>,
        ts: i64,
    ) {
        for r in prev.difference(cur) {
            // Errors are ignored, as Prometheus does for stale markers.
            let _ = app.append(*r, ts, stale_nan());
        }
    }

    fn report(&mut self, ts: i64, up: bool, took: Duration, stats: AppendStats) {
        let store = self.store.clone();
        let mut app = store.appender();
        let refs = self.report_refs(&mut app);
        let values = [
            if up { 1.0 } else { 0.0 },
            took.as_secs_f64(),
            stats.scraped as f64,
            stats.added as f64,
            stats.series_added as f64,
        ];
        for (r, v) in refs.iter().zip(values) {
            let _ = app.append(*r, ts, v);
        }
    }

    fn report_refs(&mut self, app: &mut Appender<'_>) -> [SeriesRef; 5] {
        if let Some(refs) = self.report_refs {
            if refs.iter().all(|r| app.is_live(*r)) {
                return refs;
            }
        }
        let labels = &self.target.labels;
        let refs = REPORT_NAMES.map(|name| {
            app.series(
                std::iter::once(("__name__", name))
                    .chain(labels.iter().map(|l| (&*l.name, &*l.value))),
            )
        });
        self.report_refs = Some(refs);
        refs
    }

    /// Target removed: end its scraped series and its report series.
    fn mark_all_stale(&mut self, ts: i64) {
        self.stale_missing(&HashSet::new(), ts);
        let store = self.store.clone();
        let mut app = store.appender();
        let refs = self.report_refs(&mut app);
        for r in refs {
            let _ = app.append(r, ts, stale_nan());
        }
    }
}
