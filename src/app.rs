//! Wiring and lifecycle of the daemon: loads config and snapshot, owns every
//! task, answers signals (SIGHUP reload, SIGTERM/SIGINT shutdown) and talks
//! to systemd (`Type=notify`: READY, RELOADING, STOPPING, WATCHDOG).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use parking_lot::RwLock;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::api::{self, ApiState};
use crate::config::{self, Config, ConfigErrors};
use crate::metrics::Metrics;
use crate::rules::{EvalContext, GroupState, RuleManager};
use crate::scrape::{now_ms, ScrapeManager};
use crate::state::{SavedAlert, State};
use crate::store::Store;

/// File name of the store snapshot inside the state directory.
pub const SNAPSHOT_FILE: &str = "store.snapshot";

/// How long shutdown waits for scrapes in flight.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Command-line settings for `augur run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// the config file
    pub config: PathBuf,
    /// overrides `server.listen`
    pub listen: Option<SocketAddr>,
    /// overrides `server.state_dir`
    pub state_dir: Option<PathBuf>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config file is invalid (exit code 2).
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// Anything else (exit code 1).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn load_config(opts: &RunOptions) -> Result<Config, ConfigErrors> {
    let mut cfg = config::load(&opts.config)?;
    if let Some(l) = opts.listen {
        if cfg.server.external_url == format!("http://{}/", cfg.server.listen) {
            cfg.server.external_url = format!("http://{l}/");
        }
        cfg.server.listen = l;
    }
    if let Some(d) = &opts.state_dir {
        cfg.server.state_dir = d.clone();
    }
    Ok(cfg)
}

fn notify(state: &[NotifyState]) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    if let Err(e) = sd_notify::notify(false, state) {
        warn!(error = %e, "cannot notify systemd");
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How a program that embeds the daemon (`augur demo`) controls it:
/// instead of signals, a token stops it, and the bound address is
/// reported once it serves.
#[derive(Debug)]
pub struct Embedded {
    /// Cancel to stop the daemon as SIGTERM would.
    pub shutdown: CancellationToken,
    /// Gets the HTTP address once the daemon is ready.
    pub ready: tokio::sync::oneshot::Sender<SocketAddr>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: RunOptions) -> Result<(), StartError> {
    run_with(opts, None).await
}

/// Runs the daemon inside another program until `e.shutdown` is
/// cancelled; it installs no signal handlers.
pub async fn run_embedded(opts: RunOptions, e: Embedded) -> Result<(), StartError> {
    run_with(opts, Some(e)).await
}

async fn run_with(opts: RunOptions, embedded: Option<Embedded>) -> Result<(), StartError> {
    let cfg = load_config(&opts)?;
    std::fs::create_dir_all(&cfg.server.state_dir).with_context(|| {
        format!(
            "cannot create state directory {}",
            cfg.server.state_dir.display()
        )
    })?;

    let store = Arc::new(Store::new());
    let snapshot_path = cfg.server.state_dir.join(SNAPSHOT_FILE);
    if cfg.storage.snapshot_on_shutdown {
        load_snapshot(&store, &snapshot_path, cfg.storage.retention);
    }

    let metrics = Arc::new(Metrics::new(store.clone()));
    metrics.config_last_reload_successful.set(1);
    metrics.config_last_reload_success_timestamp.set(unix_now());

    let tracker = TaskTracker::new();
    let scrape_token = CancellationToken::new();
    let http_token = CancellationToken::new();
    let seed = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        cfg.global.external_labels.hash(&mut h);
        cfg.server.listen.hash(&mut h);
        h.finish()
    };
    let scrape = Arc::new(ScrapeManager::new(
        store.clone(),
        metrics.clone(),
        tracker.clone(),
        scrape_token.clone(),
        seed,
    ));
    scrape.apply(&cfg);

    let db_path = cfg.server.state_dir.join("augur.db");
    let state = Arc::new(
        State::open(&db_path).with_context(|| format!("cannot open {}", db_path.display()))?,
    );
    let notify_cfg = Arc::new(RwLock::new(cfg.notify.clone()));
    tracker.spawn(
        crate::notify::Deliverer::new(state.clone(), notify_cfg.clone(), metrics.clone())
            .run(scrape_token.clone()),
    );
    let rules = Arc::new(RuleRunner {
        manager: Arc::new(RuleManager::new()),
        store: store.clone(),
        state: state.clone(),
        notify: notify_cfg.clone(),
        metrics: metrics.clone(),
        tracker: tracker.clone(),
        parent: scrape_token.clone(),
        generation: parking_lot::Mutex::new(CancellationToken::new()),
    });
    rules
        .manager
        .update(&cfg.rules, cfg.global.evaluation_interval)
        .map_err(|e| anyhow::anyhow!("cannot load rules: {e}"))?;
    rules.spawn(&cfg, true);

    let datasource = crate::datasource::Datasource::new(&cfg.datasource, &cfg.query, store.clone())
        .map_err(|e| anyhow::anyhow!("cannot set up the datasource: {e}"))?;
    let analysis = Arc::new(crate::analysis::engine::AnalysisManager::new(
        state.clone(),
        datasource,
    ));
    analysis.set_templates(&cfg.analyses);
    analysis.set_kayenta_configs(&cfg.kayenta_configs);
    tracker.spawn(analysis.clone().run(scrape_token.clone()));
    let actions_cfg = Arc::new(RwLock::new(cfg.actions.clone()));
    let act = Arc::new(crate::act::Dispatcher::new(
        state.clone(),
        actions_cfg.clone(),
    ));
    tracker.spawn(act.clone().run(scrape_token.clone()));
    tracker.spawn(act.clone().settle_loop(scrape_token.clone()));

    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let addr = listener.local_addr().context("no local address")?;
    info!(%addr, "listening");
    let ready = Arc::new(AtomicBool::new(false));
    let auth = Arc::new(RwLock::new(cfg.server.auth.clone()));
    let query_cfg = Arc::new(RwLock::new(cfg.query.clone()));
    let current = Arc::new(RwLock::new(cfg));
    let state = Arc::new(ApiState {
        config: current.clone(),
        store: store.clone(),
        scrape: scrape.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        query: query_cfg.clone(),
        rules: rules.manager.clone(),
        state: state.clone(),
        analysis: analysis.clone(),
        auth: auth.clone(),
        act: act.clone(),
    });
    let server = {
        let token = http_token.clone();
        let app = api::router(state);
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await
        })
    };

    tracker.spawn(retention_loop(
        store.clone(),
        current.clone(),
        scrape_token.clone(),
    ));
    if let Some(every) = watchdog_interval() {
        tracker.spawn(watchdog_loop(every, scrape_token.clone()));
    }
    ready.store(true, Ordering::SeqCst);
    notify(&[NotifyState::Ready]);
    info!(config = %opts.config.display(), "augur started");

    match embedded {
        Some(e) => {
            let _ = e.ready.send(addr);
            e.shutdown.cancelled().await;
        }
        None => {
            let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
            let mut term =
                signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
            let mut int =
                signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
            loop {
                tokio::select! {
                    _ = hup.recv() => {
                        reload(&opts, &current, &scrape, &rules, &metrics, &analysis, &store);
                        *auth.write() = current.read().server.auth.clone();
                        *actions_cfg.write() = current.read().actions.clone();
                        *query_cfg.write() = current.read().query.clone();
                    }
                    _ = term.recv() => { info!("SIGTERM received, shutting down"); break; }
                    _ = int.recv() => { info!("SIGINT received, shutting down"); break; }
                }
            }
        }
    }

    notify(&[NotifyState::Stopping]);
    scrape_token.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        warn!("tasks did not stop within the shutdown deadline");
    }
    let cfg = current.read().clone();
    if cfg.storage.snapshot_on_shutdown {
        let started = Instant::now();
        match store.write_snapshot(&snapshot_path) {
            Ok(s) => {
                metrics
                    .snapshot_duration
                    .set(started.elapsed().as_secs_f64());
                info!(path = %snapshot_path.display(), series = s.series, samples = s.samples, bytes = s.bytes, "store snapshot written");
            }
            Err(e) => error!(error = %e, "store snapshot failed"),
        }
    }
    http_token.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "HTTP server error"),
        Err(e) => warn!(error = %e, "HTTP server task failed"),
    }
    info!("augur stopped");
    Ok(())
}

fn load_snapshot(store: &Store, path: &Path, retention: Duration) {
    if !path.exists() {
        warn!(path = %path.display(), "no store snapshot found, starting with an empty store (normal on first start)");
        return;
    }
    let min_t = now_ms() - retention.as_millis() as i64;
    match store.load_snapshot(path, min_t) {
        Ok(s) => {
            info!(path = %path.display(), series = s.series, samples = s.samples, "store snapshot loaded")
        }
        Err(e) => warn!(error = %e, "store snapshot skipped, starting empty"),
    }
}

fn reload(
    opts: &RunOptions,
    current: &RwLock<Config>,
    scrape: &ScrapeManager,
    rules: &RuleRunner,
    metrics: &Metrics,
    analysis: &crate::analysis::engine::AnalysisManager,
    store: &Arc<Store>,
) {
    if let Ok(m) = NotifyState::monotonic_usec_now() {
        notify(&[NotifyState::Reloading, m]);
    } else {
        notify(&[NotifyState::Reloading]);
    }
    metrics.config_reloads.inc();
    match load_config(opts) {
        Ok(cfg) => {
            let old = current.read().clone();
            if cfg.server != old.server {
                warn!("server.listen and server.state_dir changes take effect after a restart");
            }
            scrape.apply(&cfg);
            if let Err(e) = rules
                .manager
                .update(&cfg.rules, cfg.global.evaluation_interval)
            {
                error!(error = %e, "cannot load rules, keeping the previous ones");
            }
            *rules.notify.write() = cfg.notify.clone();
            rules.spawn(&cfg, false);
            analysis.set_templates(&cfg.analyses);
            analysis.set_kayenta_configs(&cfg.kayenta_configs);
            match crate::datasource::Datasource::new(&cfg.datasource, &cfg.query, store.clone()) {
                Ok(ds) => analysis.set_datasource(ds),
                Err(e) => {
                    error!(error = %e, "cannot set up the datasource, keeping the previous one")
                }
            }
            *current.write() = cfg;
            metrics.config_last_reload_successful.set(1);
            metrics.config_last_reload_success_timestamp.set(unix_now());
            info!(config = %opts.config.display(), "configuration reloaded");
        }
        Err(errs) => {
            for e in &errs.0 {
                error!(error = %e, "invalid configuration");
            }
            metrics.config_last_reload_successful.set(0);
            error!(
                errors = errs.0.len(),
                "reload failed, keeping the previous configuration"
            );
        }
    }
    notify(&[NotifyState::Ready]);
}

async fn retention_loop(store: Arc<Store>, cfg: Arc<RwLock<Config>>, token: CancellationToken) {
    loop {
        let retention = cfg.read().storage.retention;
        let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(30));
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let removed = store.evict_before(now_ms() - retention.as_millis() as i64);
        if removed > 0 {
            info!(series = removed, "series removed by retention");
        }
    }
}

/// Half the systemd watchdog timeout, when the watchdog is on for us.
/// `sd_notify::watchdog_enabled` requires `WATCHDOG_PID`, but
/// sd_watchdog_enabled(3) only checks the PID when the variable is set.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

async fn watchdog_loop(every: Duration, token: CancellationToken) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => notify(&[NotifyState::Watchdog]),
        }
    }
}

/// Owns the rule groups' evaluation loops; a reload replaces them all.
struct RuleRunner {
    manager: Arc<RuleManager>,
    store: Arc<Store>,
    state: Arc<State>,
    notify: Arc<RwLock<crate::config::NotifyConfig>>,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    parent: CancellationToken,
    generation: parking_lot::Mutex<CancellationToken>,
}

impl RuleRunner {
    /// Starts one loop per group, stopping the previous generation.
    fn spawn(&self, cfg: &Config, restore: bool) {
        let token = self.parent.child_token();
        let old = std::mem::replace(&mut *self.generation.lock(), token.clone());
        old.cancel();
        let rc = cfg.rules_config.clone();
        for g in self.manager.groups() {
            if restore {
                // Alert state from the database, saved at every evaluation.
                let mut gs = g.lock();
                let now = now_ms();
                let keys: Vec<String> = gs.rules.iter().map(|r| gs.rule_key(r)).collect();
                for (r, key) in gs.rules.iter_mut().zip(keys) {
                    if !r.is_alerting() {
                        continue;
                    }
                    match self.state.load_rule(&key) {
                        Ok((Some(last), saved)) => {
                            let alerts = saved.iter().filter_map(SavedAlert::to_alert).collect();
                            r.restore_saved(
                                alerts,
                                last,
                                now,
                                rc.for_outage_tolerance,
                                rc.for_grace_period,
                            );
                            info!(rule = %key, alerts = r.active.len(), "alert state restored");
                        }
                        Ok((None, _)) => {}
                        Err(e) => warn!(rule = %key, error = %e, "cannot read saved alert state"),
                    }
                }
            }
            if !restore {
                let mut gs = g.lock();
                for r in &mut gs.rules {
                    if r.last_evaluation.is_none() {
                        r.restored = true;
                    }
                }
            }
            self.tracker.spawn(group_loop(
                g,
                self.store.clone(),
                self.state.clone(),
                self.notify.clone(),
                rc.clone(),
                self.metrics.clone(),
                cfg.query.clone(),
                cfg.global.external_labels_map(),
                cfg.server.external_url.clone(),
                restore,
                token.clone(),
            ));
        }
    }
}

/// Evaluates one group on its own schedule: slots at k*interval + offset,
/// the offset a hash of the group's file and name, as Prometheus does.
#[allow(clippy::too_many_arguments)]
async fn group_loop(
    group: Arc<parking_lot::Mutex<GroupState>>,
    store: Arc<Store>,
    state: Arc<State>,
    notify: Arc<RwLock<crate::config::NotifyConfig>>,
    rc: crate::config::RulesConfig,
    metrics: Arc<Metrics>,
    query: crate::config::QueryConfig,
    external_labels: std::collections::BTreeMap<String, String>,
    external_url: String,
    mut restore: bool,
    token: CancellationToken,
) {
    let (interval, offset, key) = {
        use std::hash::{Hash, Hasher};
        let g = group.lock();
        let iv = (g.interval.as_millis() as i64).max(1);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        g.file.hash(&mut h);
        g.name.hash(&mut h);
        (
            iv,
            (h.finish() % iv as u64) as i64,
            format!("{};{}", g.file, g.name),
        )
    };
    let labels = crate::metrics::GroupLabel { rule_group: key };
    let mut last_slot: Option<i64> = None;
    loop {
        let now = now_ms();
        let mut slot = (now - offset).div_euclid(interval) * interval + offset + interval;
        if let Some(prev) = last_slot {
            let missed = (slot - prev) / interval - 1;
            if missed > 0 {
                metrics
                    .rule_group_iterations_missed
                    .get_or_create(&labels)
                    .inc_by(missed as u64);
            }
            slot = slot.max(prev + interval);
        }
        let wait = Duration::from_millis((slot - now).max(0) as u64);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        last_slot = Some(slot);
        let g = group.clone();
        let st = store.clone();
        let db = state.clone();
        let ncfg = notify.read().clone();
        let rc = rc.clone();
        let (q, ext, url) = (query.clone(), external_labels.clone(), external_url.clone());
        let do_restore = restore;
        restore = false;
        let result = tokio::task::spawn_blocking(move || {
            let engine = crate::promql::Engine {
                cancel: None,
                lookback: q.lookback_delta,
                default_subquery_step: Duration::from_secs(60),
                max_samples: q.max_samples,
            };
            let clock_origin = Instant::now();
            let clock = move || clock_origin.elapsed().as_secs_f64();
            let cx = EvalContext {
                store: &st,
                engine: &engine,
                external_labels: &ext,
                external_url: &url,
                clock: Some(&clock),
            };
            let started = Instant::now();
            let mut gs = g.lock();
            gs.eval(slot, &cx);
            if do_restore {
                gs.restore_for_state(slot, &st, rc.for_outage_tolerance, rc.for_grace_period);
            }
            // Notifications go to the outbox before the state that says
            // they were sent, so a crash can repeat a send but never lose one.
            for (expr, alerts) in gs.take_sendable(slot, rc.resend_delay) {
                let out: Vec<_> = alerts
                    .iter()
                    .map(|a| crate::notify::outgoing(a, &expr, &ext, &url))
                    .collect();
                if let Err(e) = crate::notify::enqueue(&db, &ncfg, &out, &url, now_ms()) {
                    warn!(error = %e, "cannot queue notifications");
                }
            }
            for r in gs.rules.iter().filter(|r| r.is_alerting()) {
                let saved: Vec<SavedAlert> =
                    r.active.values().map(SavedAlert::from_alert).collect();
                if let Err(e) = db.save_rule(&gs.rule_key(r), slot, &saved) {
                    warn!(error = %e, "cannot save alert state");
                }
            }
            gs.last_eval_seconds = started.elapsed().as_secs_f64();
            gs.last_evaluation = Some(slot);
            let failures = gs.rules.iter().filter(|r| r.last_error.is_some()).count();
            (gs.last_eval_seconds, failures)
        })
        .await;
        match result {
            Ok((secs, failures)) => {
                metrics
                    .rule_group_last_duration
                    .get_or_create(&labels)
                    .set(secs);
                metrics.rule_evaluations.get_or_create(&labels).inc();
                if failures > 0 {
                    metrics
                        .rule_evaluation_failures
                        .get_or_create(&labels)
                        .inc_by(failures as u64);
                }
            }
            Err(e) => warn!(error = %e, "rule group evaluation task failed"),
        }
    }
}
