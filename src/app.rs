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
use crate::clock::now_ms;
use crate::config::{self, Config, ConfigErrors};
use crate::discovery::DiscoveryManager;
use crate::metrics::Metrics;
use crate::rules::RuleRunner;
use crate::scrape::ScrapeManager;
use crate::state::State;
use crate::store::Store;

/// File name of the store snapshot inside the state directory.
pub const SNAPSHOT_FILE: &str = "store.snapshot";

/// How long shutdown waits for scrapes, rule rounds and deliveries in flight.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// How long shutdown waits for HTTP requests in flight.
const HTTP_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// After SIGTERM the process exits within this, whatever is still running
/// (systemd's TimeoutStopSec is 30 s in the shipped unit).
pub const EXIT_DEADLINE: Duration = Duration::from_secs(25);

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
    warn_if_open(&cfg);

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

    let db_path = cfg.server.state_dir.join("augur.db");
    let state = Arc::new(State::open(&db_path).with_context(|| {
        format!(
            "cannot open {} (the state directory must be writable)",
            db_path.display()
        )
    })?);
    let groups = crate::rules::RuleManager::compile(&cfg.rules, cfg.global.evaluation_interval)
        .map_err(|e| anyhow::anyhow!("cannot load rules: {e}"))?;
    let datasource = crate::datasource::Datasource::new(&cfg.datasource, &cfg.query, store.clone())
        .map_err(|e| anyhow::anyhow!("cannot set up the datasource: {e}"))?;

    let remote_write = Arc::new(crate::remote_write::RemoteWrite::new(
        metrics.clone(),
        tracker.clone(),
        scrape_token.clone(),
    ));
    apply_remote_write(&remote_write, &cfg);
    store.set_tap(Some(remote_write.clone()));
    scrape.apply(&cfg);
    let discovery = start_discovery(&cfg, &scrape, &metrics, &tracker, &scrape_token);
    let notify_cfg = Arc::new(RwLock::new(cfg.notify.clone()));
    tracker.spawn(
        crate::notify::Deliverer::new(state.clone(), notify_cfg.clone(), metrics.clone())
            .run(scrape_token.clone()),
    );
    let rules = Arc::new(RuleRunner::new(
        store.clone(),
        state.clone(),
        notify_cfg.clone(),
        metrics.clone(),
        tracker.clone(),
        scrape_token.clone(),
    ));
    rules.manager.install(groups);
    rules.spawn(&cfg, &datasource, true);

    let analysis = analysis_manager(&cfg, state.clone(), datasource);
    {
        // Runs are measured only once the store has caught up: after the
        // first scrape round, and within a grace period after the start
        // an interval without data is taken again (analysis::engine).
        let scrape = scrape.clone();
        let token = scrape_token.clone();
        tracker.spawn(analysis.clone().run(token, async move {
            while !scrape.first_round_done() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    let actions_cfg = Arc::new(RwLock::new(cfg.actions.clone()));
    let leadership = match &cfg.ha {
        Some(ha) => crate::ha::Leadership::elected(ha.clone(), metrics.clone()),
        None => crate::ha::Leadership::single(),
    };
    let act = Arc::new(
        crate::act::Dispatcher::new(state.clone(), actions_cfg.clone())
            .with_leadership(leadership.clone()),
    );
    act.set_changes(notify_cfg.clone(), &cfg.server.external_url);
    {
        // A new leader carries out the actions it held at once.
        let act = act.clone();
        tracker.spawn(leadership.run(scrape_token.clone(), move || act.wake()));
    }
    tracker.spawn(act.clone().run(scrape_token.clone()));
    tracker.spawn(act.clone().settle_loop(scrape_token.clone()));
    let rollouts = Arc::new(crate::rollout::Controller::new(
        state.clone(),
        analysis.clone(),
        act.clone(),
    ));
    rollouts.set_rollouts(&cfg.rollouts);
    rollouts.set_commit_annotation(&cfg.delivery.commit_time_annotation);
    state.set_escape_window(cfg.delivery.escape_window.as_millis() as i64);
    tracker.spawn(rollouts.clone().run(scrape_token.clone()));

    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let addr = listener.local_addr().context("no local address")?;
    info!(%addr, "listening");
    let ready = Arc::new(AtomicBool::new(false));
    let auth = Arc::new(RwLock::new(cfg.server.auth.clone()));
    let query_cfg = Arc::new(RwLock::new(cfg.query.clone()));
    let query_slots = Arc::new(tokio::sync::Semaphore::new(cfg.query.max_concurrency));
    let snapshots = cfg.storage.snapshot_on_shutdown;
    let current = Arc::new(RwLock::new(cfg));
    tracker.spawn(state_retention_loop(
        state.clone(),
        current.clone(),
        scrape_token.clone(),
    ));
    let api_state = Arc::new(ApiState {
        config: current.clone(),
        store: store.clone(),
        scrape: scrape.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        query: query_cfg.clone(),
        query_slots: query_slots.clone(),
        rules: rules.manager.clone(),
        state: state.clone(),
        analysis: analysis.clone(),
        auth: Arc::new(crate::api::Auth::new(auth.clone())),
        act: act.clone(),
        rollouts: rollouts.clone(),
        shutdown: http_token.clone(),
        ui_mark: parking_lot::Mutex::new(None),
    });
    let server = {
        let token = http_token.clone();
        let app = api::router(api_state);
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
    if snapshots {
        tracker.spawn(snapshot_loop(
            store.clone(),
            snapshot_path.clone(),
            current.clone(),
            metrics.clone(),
            scrape_token.clone(),
        ));
    }
    if let Some(every) = watchdog_interval() {
        tracker.spawn(watchdog_loop(every, scrape_token.clone()));
    }
    let live = Arc::new(Live {
        opts: opts.clone(),
        current: current.clone(),
        scrape: scrape.clone(),
        discovery: discovery.clone(),
        remote_write,
        rules: rules.clone(),
        metrics: metrics.clone(),
        analysis: analysis.clone(),
        rollouts,
        act: act.clone(),
        notify: notify_cfg.clone(),
        store: store.clone(),
        state: state.clone(),
        auth,
        actions: actions_cfg,
        query: query_cfg,
        query_slots,
        reload_lock: parking_lot::Mutex::new(()),
    });
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
            // Reloads run on a blocking thread, one at a time, so that a
            // slow one (a rule file on a hung mount) never keeps this loop
            // from answering SIGTERM.
            let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<()>(1);
            {
                let live = live.clone();
                let token = scrape_token.clone();
                tracker.spawn(async move {
                    loop {
                        tokio::select! {
                            _ = token.cancelled() => return,
                            got = reload_rx.recv() => {
                                if got.is_none() { return; }
                                let live = live.clone();
                                if let Err(e) = tokio::task::spawn_blocking(move || live.reload()).await {
                                    error!(error = %e, "reload task failed");
                                }
                            }
                        }
                    }
                });
            }
            loop {
                tokio::select! {
                    _ = hup.recv() => {
                        // A reload already queued covers this signal too.
                        let _ = reload_tx.try_send(());
                    }
                    _ = term.recv() => { info!("SIGTERM received, shutting down"); break; }
                    _ = int.recv() => { info!("SIGINT received, shutting down"); break; }
                }
            }
            exit_failsafe();
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
        write_snapshot(&store, &snapshot_path, &metrics);
    }
    http_token.cancel();
    let abort = server.abort_handle();
    match tokio::time::timeout(HTTP_SHUTDOWN_DEADLINE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server error"),
        Ok(Err(e)) if e.is_cancelled() => {}
        Ok(Err(e)) => warn!(error = %e, "HTTP server task failed"),
        Err(_) => {
            // Requests still running (a long query): drop them, which
            // cancels their evaluations.
            warn!("HTTP requests still running at shutdown; closing them");
            abort.abort();
        }
    }
    info!("augur stopped");
    Ok(())
}

/// The analysis manager with the config's templates, Kayenta configs and
/// limits.
fn analysis_manager(
    cfg: &Config,
    state: Arc<State>,
    datasource: crate::datasource::Datasource,
) -> Arc<crate::analysis::engine::AnalysisManager> {
    let analysis = Arc::new(crate::analysis::engine::AnalysisManager::new(
        state, datasource,
    ));
    analysis.set_templates(&cfg.analyses);
    analysis.set_kayenta_configs(&cfg.kayenta_configs);
    analysis.set_limits(cfg.state.max_running_analyses);
    analysis
}

/// Exits the process if an orderly shutdown has not finished in time:
/// whatever hangs, systemd never has to SIGKILL (and lose the snapshot).
fn exit_failsafe() {
    let spawned = std::thread::Builder::new()
        .name("exit-failsafe".into())
        .spawn(|| {
            std::thread::sleep(EXIT_DEADLINE);
            eprintln!(
                "augur: shutdown did not finish within {}s; exiting",
                EXIT_DEADLINE.as_secs()
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the shutdown failsafe");
    }
}

/// A warning at start (and reload) when anyone who can reach the listen
/// address may call the mutating endpoints.
fn warn_if_open(cfg: &Config) {
    let a = &cfg.server.auth;
    if !cfg.server.listen.ip().is_loopback()
        && a.token_file.is_none()
        && a.hmac_secret_file.is_none()
    {
        warn!(
            listen = %cfg.server.listen,
            "listening beyond loopback without server.auth_token_file or server.hmac_secret_file: anyone who can reach this address can start analyses, open gates and abort or promote rollouts"
        );
    }
}

fn write_snapshot(store: &Store, path: &Path, metrics: &Metrics) {
    let started = Instant::now();
    match store.write_snapshot(path) {
        Ok(s) => {
            metrics.snapshot_written(started.elapsed().as_secs_f64());
            info!(path = %path.display(), series = s.series, samples = s.samples, bytes = s.bytes, "store snapshot written");
        }
        Err(e) => error!(error = %e, "store snapshot failed"),
    }
}

/// Snapshots the store every `storage.snapshot_interval`, so a crash or
/// kill -9 loses at most that much of the analysis window. The interval
/// stretches to 20 times the last snapshot's duration, so a large store
/// never spends more than 5% of a core on snapshots.
async fn snapshot_loop(
    store: Arc<Store>,
    path: PathBuf,
    cfg: Arc<RwLock<Config>>,
    metrics: Arc<Metrics>,
    token: CancellationToken,
) {
    let mut last = Duration::ZERO;
    loop {
        let every = cfg.read().storage.snapshot_interval;
        if every.is_zero() {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        }
        let wait = every.max(last * 20);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let (s, p) = (store.clone(), path.clone());
        let started = Instant::now();
        match tokio::task::spawn_blocking(move || s.write_snapshot(&p)).await {
            Ok(Ok(_)) => {
                last = started.elapsed();
                metrics.snapshot_written(last.as_secs_f64());
            }
            Ok(Err(e)) => error!(error = %e, "periodic store snapshot failed"),
            Err(e) => error!(error = %e, "periodic store snapshot task failed"),
        }
    }
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

/// Starts service discovery for `cfg` and the task that hands each job's
/// groups to the scrape pools. Bursts are taken together (a watch can send
/// many events at once); relabeling runs off the async workers.
fn start_discovery(
    cfg: &Config,
    scrape: &Arc<ScrapeManager>,
    metrics: &Arc<Metrics>,
    tracker: &TaskTracker,
    token: &CancellationToken,
) -> Arc<DiscoveryManager> {
    let (discovery, mut updates) =
        DiscoveryManager::new(tracker.clone(), token.clone(), metrics.clone());
    let discovery = Arc::new(discovery);
    discovery.apply(cfg);
    let scrape = scrape.clone();
    let token = token.clone();
    tracker.spawn(async move {
        loop {
            let first = tokio::select! {
                _ = token.cancelled() => return,
                u = updates.recv() => match u {
                    Some(u) => u,
                    None => return,
                },
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut latest: std::collections::BTreeMap<String, crate::discovery::Update> =
                std::collections::BTreeMap::new();
            latest.insert(first.0.clone(), first);
            while let Ok(u) = updates.try_recv() {
                latest.insert(u.0.clone(), u);
            }
            let scrape = scrape.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for (_, (job, groups)) in latest {
                    scrape.update_groups(&job, groups);
                }
            })
            .await;
        }
    });
    discovery
}

/// What a reload replaces, and the lock that keeps reloads one at a time.
struct Live {
    opts: RunOptions,
    current: Arc<RwLock<Config>>,
    scrape: Arc<ScrapeManager>,
    discovery: Arc<DiscoveryManager>,
    remote_write: Arc<crate::remote_write::RemoteWrite>,
    rules: Arc<RuleRunner>,
    metrics: Arc<Metrics>,
    analysis: Arc<crate::analysis::engine::AnalysisManager>,
    rollouts: Arc<crate::rollout::Controller>,
    act: Arc<crate::act::Dispatcher>,
    notify: Arc<RwLock<crate::config::NotifyConfig>>,
    store: Arc<Store>,
    state: Arc<crate::state::State>,
    auth: Arc<RwLock<crate::config::ApiAuth>>,
    actions: Arc<RwLock<crate::config::ActionsConfig>>,
    query: Arc<RwLock<crate::config::QueryConfig>>,
    query_slots: Arc<tokio::sync::Semaphore>,
    reload_lock: parking_lot::Mutex<()>,
}

/// A new configuration with everything built from it, before any of it
/// takes effect.
struct Compiled {
    cfg: Config,
    groups: Vec<crate::rules::GroupState>,
    datasource: crate::datasource::Datasource,
}

impl Live {
    /// Compiles the config file, its rules and datasource in full.
    fn compile(&self) -> Result<Compiled, Vec<String>> {
        let cfg = load_config(&self.opts)
            .map_err(|errs| errs.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let groups = crate::rules::RuleManager::compile(&cfg.rules, cfg.global.evaluation_interval)
            .map_err(|e| vec![format!("cannot load rules: {e}")])?;
        let datasource =
            crate::datasource::Datasource::new(&cfg.datasource, &cfg.query, self.store.clone())
                .map_err(|e| vec![format!("cannot set up the datasource: {e}")])?;
        Ok(Compiled {
            cfg,
            groups,
            datasource,
        })
    }

    /// Swaps a compiled configuration in.
    fn apply(&self, c: Compiled) {
        let Compiled {
            cfg,
            groups,
            datasource,
        } = c;
        let old = self.current.read().clone();
        if cfg.server.listen != old.server.listen || cfg.server.state_dir != old.server.state_dir {
            warn!("server.listen and server.state_dir changes take effect after a restart");
        }
        if cfg.ha != old.ha {
            warn!("[ha] changes take effect after a restart");
        }
        warn_if_open(&cfg);
        apply_remote_write(&self.remote_write, &cfg);
        self.scrape.apply(&cfg);
        self.discovery.apply(&cfg);
        self.rules.manager.install(groups);
        self.rules.set_notify(cfg.notify.clone());
        self.rules.spawn(&cfg, &datasource, false);
        self.analysis.set_templates(&cfg.analyses);
        self.analysis.set_kayenta_configs(&cfg.kayenta_configs);
        self.analysis.set_limits(cfg.state.max_running_analyses);
        self.analysis.set_datasource(datasource);
        self.rollouts.set_rollouts(&cfg.rollouts);
        self.rollouts
            .set_commit_annotation(&cfg.delivery.commit_time_annotation);
        self.state
            .set_escape_window(cfg.delivery.escape_window.as_millis() as i64);
        self.act
            .set_changes(self.notify.clone(), &cfg.server.external_url);
        *self.auth.write() = cfg.server.auth.clone();
        *self.actions.write() = cfg.actions.clone();
        let had = old.query.max_concurrency;
        let want = cfg.query.max_concurrency;
        if want > had {
            self.query_slots.add_permits(want - had);
        } else if want < had {
            self.query_slots.forget_permits(had - want);
        }
        *self.query.write() = cfg.query.clone();
        *self.current.write() = cfg;
    }

    /// SIGHUP: all of the new configuration or none of it.
    fn reload(&self) {
        let _one = self.reload_lock.lock();
        if let Ok(m) = NotifyState::monotonic_usec_now() {
            notify(&[NotifyState::Reloading, m]);
        } else {
            notify(&[NotifyState::Reloading]);
        }
        match self.compile() {
            Ok(c) => {
                self.apply(c);
                self.metrics.reloaded(&self.opts.config, &[], unix_now());
            }
            Err(errs) => self.metrics.reloaded(&self.opts.config, &errs, unix_now()),
        }
        notify(&[NotifyState::Ready]);
    }
}

/// The config's `[[remote_write]]` endpoints, with the external labels
/// Prometheus adds to what it sends.
fn apply_remote_write(rw: &crate::remote_write::RemoteWrite, cfg: &Config) {
    let external: Vec<(String, String)> = cfg.global.external_labels_map().into_iter().collect();
    rw.apply(&cfg.remote_write, &external);
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

/// Deletes old history from SQLite: at start, then hourly.
async fn state_retention_loop(
    state: Arc<State>,
    cfg: Arc<RwLock<Config>>,
    token: CancellationToken,
) {
    loop {
        let sc = cfg.read().state.clone();
        let before = now_ms() - i64::try_from(sc.retention.as_millis()).unwrap_or(i64::MAX / 2);
        let st = state.clone();
        match tokio::task::spawn_blocking(move || st.prune(before, sc.max_audit_rows)).await {
            Ok(Ok(p)) if p != crate::state::Pruned::default() => info!(
                runs = p.runs,
                decisions = p.decisions,
                notifications = p.notifications,
                kayenta = p.kayenta,
                audit = p.audit,
                rules = p.rules,
                "old state deleted (state.retention)"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot delete old state"),
            Err(e) => warn!(error = %e, "state retention task failed"),
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
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

/// The HTTP API over an in-memory store and SQLite database, with no
/// scrapes, rule loops, deliveries or listener: every request is answered
/// as the daemon would, nothing runs in the background. For fuzzing the
/// API's request handling.
pub fn offline_router(cfg: &Config) -> anyhow::Result<axum::Router> {
    let store = Arc::new(Store::new());
    let metrics = Arc::new(Metrics::new(store.clone()));
    let scrape = Arc::new(ScrapeManager::new(
        store.clone(),
        metrics.clone(),
        TaskTracker::new(),
        CancellationToken::new(),
        0,
    ));
    let state = Arc::new(State::in_memory().context("in-memory state")?);
    let rules = crate::rules::RuleManager::new();
    rules.install(
        crate::rules::RuleManager::compile(&cfg.rules, cfg.global.evaluation_interval)
            .map_err(|e| anyhow::anyhow!(e))?,
    );
    let datasource = crate::datasource::Datasource::new(&cfg.datasource, &cfg.query, store.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let analysis = analysis_manager(cfg, state.clone(), datasource);
    let act = Arc::new(crate::act::Dispatcher::new(
        state.clone(),
        Arc::new(RwLock::new(cfg.actions.clone())),
    ));
    let rollouts = Arc::new(crate::rollout::Controller::new(
        state.clone(),
        analysis.clone(),
        act.clone(),
    ));
    rollouts.set_rollouts(&cfg.rollouts);
    let st = ApiState {
        config: Arc::new(RwLock::new(cfg.clone())),
        store,
        scrape,
        metrics,
        ready: Arc::new(AtomicBool::new(true)),
        query: Arc::new(RwLock::new(cfg.query.clone())),
        query_slots: Arc::new(tokio::sync::Semaphore::new(cfg.query.max_concurrency)),
        rules: Arc::new(rules),
        state,
        analysis,
        auth: Arc::new(crate::api::Auth::new(Arc::new(RwLock::new(
            cfg.server.auth.clone(),
        )))),
        act,
        rollouts,
        shutdown: tokio_util::sync::CancellationToken::new(),
        ui_mark: parking_lot::Mutex::new(None),
    };
    Ok(api::router(Arc::new(st)))
}
