//! Rule groups on their schedule: one loop per group, slots at
//! `k * interval + offset` with the offset a hash of the group's file and
//! name (Prometheus's `rules/group.go`), alert state restored from SQLite
//! at start, notifications queued in the outbox and alert state saved
//! after every round.
//!
//! Every query of a round has `query.timeout`; a round runs on a blocking
//! thread and stops at its next check when the daemon shuts down. Readers
//! never wait for a round: they read the view published after it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::group::{EvalContext, ForStateSource};
use super::manager::{GroupHandle, RuleManager};
use crate::config::{Config, NotifyConfig, QueryConfig, RulesConfig};
use crate::datasource::Datasource;
use crate::metrics::{GroupLabel, Metrics};
use crate::state::{SavedAlert, State};
use crate::store::Store;

/// Owns the rule groups' evaluation loops; a reload replaces them all.
pub struct RuleRunner {
    /// the groups
    pub manager: Arc<RuleManager>,
    store: Arc<Store>,
    state: Arc<State>,
    notify: Arc<RwLock<NotifyConfig>>,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    parent: CancellationToken,
    generation: Mutex<CancellationToken>,
}

/// What every loop of one generation shares.
#[derive(Clone)]
struct Settings {
    rules: RulesConfig,
    query: QueryConfig,
    external_labels: BTreeMap<String, String>,
    external_url: String,
    /// `[datasource]` when it is a remote API: rules query it, as
    /// vmalert does; None: the embedded store.
    remote: Option<crate::datasource::RemoteClient>,
    /// `[[remote_write]]` is configured
    remote_write: bool,
    /// `[delivery] alert_labels`: labels naming the rollout a firing alert
    /// is about (with `namespace`), for escaped failures
    delivery_labels: Vec<String>,
}

impl RuleRunner {
    /// A runner whose loops are tracked by `tracker` and stop with `parent`.
    pub fn new(
        store: Arc<Store>,
        state: Arc<State>,
        notify: Arc<RwLock<NotifyConfig>>,
        metrics: Arc<Metrics>,
        tracker: TaskTracker,
        parent: CancellationToken,
    ) -> RuleRunner {
        RuleRunner {
            manager: Arc::new(RuleManager::new()),
            store,
            state,
            notify,
            metrics,
            tracker,
            parent,
            generation: Mutex::new(CancellationToken::new()),
        }
    }

    /// The notification settings the loops read (replaced on reload).
    pub fn set_notify(&self, n: NotifyConfig) {
        *self.notify.write() = n;
    }

    /// Starts one loop per group, stopping the previous generation. With
    /// `restore` (the first start), alert state comes back from SQLite.
    pub fn spawn(&self, cfg: &Config, datasource: &Datasource, restore: bool) {
        let token = self.parent.child_token();
        let old = std::mem::replace(&mut *self.generation.lock(), token.clone());
        old.cancel();
        let settings = Settings {
            rules: cfg.rules_config.clone(),
            query: cfg.query.clone(),
            external_labels: cfg.global.external_labels_map(),
            external_url: cfg.server.external_url.clone(),
            remote: match datasource {
                Datasource::Remote(r) => Some(r.clone()),
                Datasource::Embedded { .. } => None,
            },
            remote_write: !cfg.remote_write.is_empty(),
            delivery_labels: cfg.delivery.alert_labels.clone(),
        };
        for g in self.manager.groups() {
            let local = cfg.rules_config.local_groups.contains(&g.state.lock().name);
            let settings = if local {
                Settings {
                    remote: None,
                    ..settings.clone()
                }
            } else {
                settings.clone()
            };
            if restore {
                self.restore(&g, &settings.rules);
            } else {
                let mut gs = g.state.lock();
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
                self.metrics.clone(),
                settings,
                restore,
                token.clone(),
            ));
        }
    }

    /// Alert state from the database, saved at every evaluation.
    fn restore(&self, g: &GroupHandle, rc: &RulesConfig) {
        let mut gs = g.state.lock();
        let now = crate::clock::now_ms();
        let keys: Vec<String> = gs.rules.iter().map(|r| gs.rule_key(r)).collect();
        for (r, key) in gs.rules.iter_mut().zip(keys) {
            if !r.is_alerting() {
                continue;
            }
            match self.state.load_rule(&key) {
                Ok((Some(last), saved)) => {
                    let mut alerts = Vec::with_capacity(saved.len());
                    for s in &saved {
                        match s.to_alert() {
                            Ok(a) => alerts.push(a),
                            Err(e) => {
                                warn!(rule = %key, error = %e, "saved alert skipped")
                            }
                        }
                    }
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
        g.publish(&gs);
    }
}

/// Evaluates one group on its own schedule.
#[allow(clippy::too_many_arguments)]
async fn group_loop(
    group: Arc<GroupHandle>,
    store: Arc<Store>,
    state: Arc<State>,
    notify: Arc<RwLock<NotifyConfig>>,
    metrics: Arc<Metrics>,
    settings: Settings,
    mut restore: bool,
    token: CancellationToken,
) {
    let (interval, offset, key) = {
        use std::hash::{Hash, Hasher};
        let v = group.view();
        let iv = i64::try_from(v.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        v.file.hash(&mut h);
        v.name.hash(&mut h);
        (
            iv,
            (h.finish() % iv as u64) as i64,
            format!("{};{}", v.file, v.name),
        )
    };
    let labels = GroupLabel { rule_group: key };
    let mut last_slot: Option<i64> = None;
    loop {
        let now = crate::clock::now_ms();
        let mut slot = (now - offset).div_euclid(interval) * interval + offset + interval;
        if let Some(prev) = last_slot {
            let missed = (slot - prev) / interval - 1;
            if missed > 0 {
                metrics.rule_group_missed(&labels, missed as u64);
            }
            slot = slot.max(prev + interval);
        }
        let wait = Duration::from_millis((slot - now).max(0) as u64);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        last_slot = Some(slot);
        let cancel = Arc::new(AtomicBool::new(false));
        let round = Round {
            group: group.clone(),
            store: store.clone(),
            state: state.clone(),
            notify: notify.read().clone(),
            settings: settings.clone(),
            restore,
            cancel: cancel.clone(),
        };
        restore = false;
        let mut task = tokio::task::spawn_blocking(move || round.run(slot));
        let result = tokio::select! {
            r = &mut task => r,
            _ = token.cancelled() => {
                // Shutdown or reload: the evaluation stops at its next check.
                cancel.store(true, Ordering::SeqCst);
                task.await
            }
        };
        match result {
            Ok((secs, failures)) => metrics.rule_group_evaluated(&labels, secs, failures),
            Err(e) => warn!(error = %e, "rule group evaluation task failed"),
        }
    }
}

/// One evaluation round of one group, run on a blocking thread.
struct Round {
    group: Arc<GroupHandle>,
    store: Arc<Store>,
    state: Arc<State>,
    notify: NotifyConfig,
    settings: Settings,
    restore: bool,
    cancel: Arc<AtomicBool>,
}

impl Round {
    /// Firing alerts that name a rollout (`namespace` plus one of the
    /// `[delivery] alert_labels`) mark its recent promotion as escaped.
    fn escapes(&self, alerts: &[crate::notify::OutgoingAlert]) {
        for a in alerts.iter().filter(|a| !a.resolved) {
            let Some(ns) = a.labels.get("namespace") else {
                continue;
            };
            let alertname = a.labels.get("alertname").map_or("", String::as_str);
            for l in &self.settings.delivery_labels {
                if let Some(name) = a.labels.get(l) {
                    match self.state.alert_fired(ns, name, alertname, a.starts_at) {
                        Ok(true) => {
                            info!(rollout = %format!("{ns}/{name}"), alert = %alertname, "promoted revision alerted on: an escaped failure")
                        }
                        Ok(false) => {}
                        Err(e) => warn!(error = %e, "cannot record an escaped failure"),
                    }
                }
            }
        }
    }

    /// Evaluates at `slot`; returns the round's duration and failed rules.
    fn run(self, slot: i64) -> (f64, usize) {
        let mut engine = crate::datasource::engine(&self.settings.query);
        engine.cancel = Some(self.cancel.clone());
        let clock_origin = Instant::now();
        let clock = move || clock_origin.elapsed().as_secs_f64();
        let (ext, url) = (&self.settings.external_labels, &self.settings.external_url);
        // Remote queries run on the runtime from this blocking thread; a
        // cancelled round (shutdown, reload) stops waiting within 100 ms.
        let handle = tokio::runtime::Handle::current();
        let cancel = self.cancel.clone();
        let remote_query = |q: &str, t: i64| -> Result<crate::promql::QueryResult, String> {
            let Some(rc) = &self.settings.remote else {
                return Err("no remote datasource".into());
            };
            handle.block_on(async {
                let query = rc.instant(q, t);
                tokio::pin!(query);
                loop {
                    tokio::select! {
                        r = &mut query => return r.map_err(|e| e.to_string()),
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {
                            if cancel.load(Ordering::SeqCst) {
                                return Err("query cancelled".into());
                            }
                        }
                    }
                }
            })
        };
        let cx = EvalContext {
            store: &self.store,
            engine: &engine,
            external_labels: ext,
            external_url: url,
            clock: Some(&clock),
            remote: self
                .settings
                .remote
                .is_some()
                .then_some(&remote_query as &super::group::RemoteQuery<'_>),
            // Results of a group over a remote datasource go back to the
            // shared store by remote write, as vmalert's; augur keeps them
            // only when there is nowhere to send them.
            store_results: self.settings.remote.is_none() || !self.settings.remote_write,
        };
        let rc = &self.settings.rules;
        let started = Instant::now();
        let mut gs = self.group.state.lock();
        gs.eval(slot, &cx);
        if self.restore {
            let source = match cx.remote {
                Some(query) => ForStateSource::Remote {
                    query,
                    external: ext.keys().cloned().collect(),
                },
                None => ForStateSource::Store(&self.store),
            };
            gs.restore_for_state(slot, &source, rc.for_outage_tolerance, rc.for_grace_period);
        }
        // Notifications go to the outbox before the state that says they
        // were sent, so a crash can repeat a send but never lose one.
        for (expr, alerts) in gs.take_sendable(slot, rc.resend_delay) {
            let out: Vec<_> = alerts
                .iter()
                .map(|a| crate::notify::outgoing(a, &expr, ext, url))
                .collect();
            if let Err(e) =
                crate::notify::enqueue(&self.state, &self.notify, &out, url, crate::clock::now_ms())
            {
                warn!(error = %e, "cannot queue notifications");
            }
            self.escapes(&out);
        }
        for r in gs.rules.iter().filter(|r| r.is_alerting()) {
            let saved: Vec<SavedAlert> = r.active.values().map(SavedAlert::from_alert).collect();
            if let Err(e) = self.state.save_rule(&gs.rule_key(r), slot, &saved) {
                warn!(error = %e, "cannot save alert state");
            }
        }
        gs.last_eval_seconds = started.elapsed().as_secs_f64();
        gs.last_evaluation = Some(slot);
        let failures = gs.rules.iter().filter(|r| r.last_error.is_some()).count();
        self.group.publish(&gs);
        (gs.last_eval_seconds, failures)
    }
}
