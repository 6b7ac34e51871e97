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
use crate::scrape::{now_ms, ScrapeManager};
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

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: RunOptions) -> Result<(), StartError> {
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

    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let addr = listener.local_addr().context("no local address")?;
    info!(%addr, "listening");
    let ready = Arc::new(AtomicBool::new(false));
    let query_cfg = Arc::new(RwLock::new(cfg.query.clone()));
    let state = Arc::new(ApiState {
        store: store.clone(),
        scrape: scrape.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        query: query_cfg.clone(),
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

    let current = Arc::new(RwLock::new(cfg));
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

    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                reload(&opts, &current, &scrape, &metrics);
                *query_cfg.write() = current.read().query.clone();
            }
            _ = term.recv() => { info!("SIGTERM received, shutting down"); break; }
            _ = int.recv() => { info!("SIGINT received, shutting down"); break; }
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

fn reload(opts: &RunOptions, current: &RwLock<Config>, scrape: &ScrapeManager, metrics: &Metrics) {
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
