//! Runs analyses: creates runs from templates, measures every due run on
//! its interval through the datasource, and persists each interval (status,
//! evidence, measurements, verdicts) in one transaction, so a restart
//! resumes every running analysis where it stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde_json::json;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::kayenta;
use super::run::{measure, Fetched, Measurement, Phase, RunState, RunStatus};
use super::template::{substitute, Queries, Template, Vars};
use crate::datasource::Datasource;
use crate::state::{MeasurementRow, RunRow, State, StateError};

/// Why a run could not be created or read.
#[derive(Debug, Error)]
pub enum AnalysisError {
    /// No template has that name.
    #[error("no analysis template named {0:?}")]
    UnknownTemplate(String),
    /// The arguments do not fit the template.
    #[error("{0}")]
    BadArgs(String),
    /// As many runs are running as `state.max_running_analyses` allows.
    #[error("{0} analysis runs are running, the most state.max_running_analyses allows; finish or cancel some first")]
    TooManyRunning(u64),
    /// The database failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Owns the templates and schedules the runs.
pub struct AnalysisManager {
    templates: RwLock<Arc<BTreeMap<String, Template>>>,
    /// The last answer per (actor, action, subject), so repeated webhook
    /// ticks with the same answer do not flood the audit log.
    last_answers: parking_lot::Mutex<std::collections::HashMap<(String, String, String), String>>,
    kayenta: RwLock<Arc<Vec<crate::config::KayentaConfigFile>>>,
    datasource: RwLock<Datasource>,
    state: Arc<State>,
    wake: tokio::sync::Notify,
    max_running: std::sync::atomic::AtomicU64,
    /// When this process started (ms): measurements soon after it get a
    /// grace period for the store to catch up.
    started_at: i64,
}

/// One run, typed: what the run page draws.
#[derive(Clone, Debug)]
pub struct RunDetail {
    /// The stored row.
    pub row: RunRow,
    /// The template as the run uses it (None if unreadable).
    pub template: Option<Template>,
    /// Counters and evidence.
    pub status: RunStatus,
    /// Every measurement, by interval.
    pub measurements: Vec<crate::state::MeasurementRow>,
    /// The verdict history.
    pub verdicts: Vec<crate::state::VerdictRow>,
}

/// Per-run changes to a template's schedule (the API's `interval`,
/// `window`, `initial_delay` and `count`), like Argo's args-driven counts.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Time between measurements.
    pub interval: Option<Duration>,
    /// Data window.
    pub window: Option<Duration>,
    /// Wait before the first measurement.
    pub initial_delay: Option<Duration>,
    /// Number of measurements.
    pub count: Option<u32>,
    /// The rollout this run decides about: `{namespace, name, revision,
    /// promote_on_pass}`; when it finishes, the decision policy turns its
    /// verdict into an action.
    pub rollout: Option<serde_json::Value>,
    /// `(prefix, keep)`: a new run cancels running runs whose key starts
    /// with `prefix` but not `keep` (earlier revisions of a canary).
    pub supersede: Option<(String, String)>,
}

/// The retry delay after an interval in which every query failed (Argo's
/// `DefaultErrorRetryInterval`), unless the interval is shorter.
const ERROR_RETRY: Duration = Duration::from_secs(10);

fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl AnalysisManager {
    /// A manager over `state`, querying `datasource`.
    pub fn new(state: Arc<State>, datasource: Datasource) -> AnalysisManager {
        AnalysisManager {
            templates: RwLock::new(Arc::new(BTreeMap::new())),
            last_answers: parking_lot::Mutex::new(std::collections::HashMap::new()),
            kayenta: RwLock::new(Arc::new(Vec::new())),
            datasource: RwLock::new(datasource),
            state,
            wake: tokio::sync::Notify::new(),
            max_running: std::sync::atomic::AtomicU64::new(1000),
            started_at: crate::clock::now_ms(),
        }
    }

    /// Sets the most runs that may run at once (config load and reload).
    pub fn set_limits(&self, max_running: u64) {
        self.max_running
            .store(max_running, std::sync::atomic::Ordering::Relaxed);
    }

    /// Replaces the templates (config load and reload). Running runs keep
    /// the template they started with.
    pub fn set_templates(&self, ts: &[Template]) {
        let map = ts.iter().map(|t| (t.name.clone(), t.clone())).collect();
        *self.templates.write() = Arc::new(map);
    }

    /// Replaces the Kayenta canary configs (load and reload).
    pub fn set_kayenta_configs(&self, cs: &[crate::config::KayentaConfigFile]) {
        *self.kayenta.write() = Arc::new(cs.to_vec());
    }

    /// The Kayenta canary configs.
    pub fn kayenta_configs(&self) -> Arc<Vec<crate::config::KayentaConfigFile>> {
        self.kayenta.read().clone()
    }

    /// Runs a Kayenta-API execution to completion (fetch, judge, score) and
    /// stores its status document; returns the execution id. Fetch or
    /// judge failures are stored as a terminal execution, as Kayenta does.
    pub async fn kayenta_execute(
        &self,
        config: &crate::config::KayentaConfigFile,
        request: &serde_json::Value,
        scopes: &BTreeMap<String, (super::kayenta::Scope, super::kayenta::Scope)>,
        thresholds: (f64, f64),
        params: &BTreeMap<String, String>,
        now: i64,
    ) -> Result<String, AnalysisError> {
        use super::kayenta;
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            rand::random::<u32>(),
            rand::random::<u16>(),
            rand::random::<u16>() & 0xfff,
            rand::random::<u16>() & 0xfff,
            rand::random::<u64>() & 0xffff_ffff_ffff
        );
        let ds = self.datasource.read().clone();
        let outcome = match fetch_pairs(&ds, &config.config, scopes).await {
            // Judging up to 11,000 points per series is CPU work: off the
            // async workers.
            Ok(pairs) => {
                let cfg = config.config.clone();
                tokio::task::spawn_blocking(move || {
                    kayenta::judge_pairs(&cfg, &pairs).map(|results| {
                        kayenta::judge_result(&cfg, &pairs, &results, thresholds.0, thresholds.1)
                    })
                })
                .await
                .unwrap_or_else(|e| Err(format!("judge failed: {e}")))
            }
            Err(e) => Err(e),
        };
        let end = crate::clock::now_ms();
        let iso = |ms: i64| crate::timefmt::rfc3339_ms(ms);
        let durations: Vec<i64> = scopes.values().map(|(c, _)| c.end - c.start).collect();
        let duration = durations
            .first()
            .filter(|d| durations.iter().all(|x| x == *d))
            .map(|d| iso_duration(*d));
        let app = params
            .get("application")
            .cloned()
            .unwrap_or_else(|| "ad-hoc".into());
        let stage = |s: &str| {
            json!({
                "setupContext": "succeeded", "fetchControl0": s, "fetchExperiment0": s,
                "mixMetrics": s, "judge": s,
            })
        };
        let mut body = json!({
            "application": app,
            "parentPipelineExecutionId": params.get("parentPipelineExecutionId"),
            "pipelineId": id,
            "complete": true,
            "config": config.raw,
            "canaryConfigId": config.id,
            "canaryExecutionRequest": request,
            "metricSetPairListId": format!("{:016x}", rand::random::<u64>()),
            "buildTimeMillis": now, "buildTimeIso": iso(now),
            "startTimeMillis": now, "startTimeIso": iso(now),
            "endTimeMillis": end, "endTimeIso": iso(end),
            "storageAccountName": params.get("storageAccountName"),
            "metricsAccountName": params.get("metricsAccountName"),
            "configurationAccountName": params.get("configurationAccountName"),
        });
        match outcome {
            Ok(judge) => {
                body["status"] = json!("succeeded");
                body["stageStatus"] = stage("succeeded");
                body["result"] = json!({"judgeResult": judge, "canaryDuration": duration});
            }
            Err(e) => {
                body["status"] = json!("terminal");
                body["stageStatus"] = stage("terminal");
                body["exception"] = json!({"details": {"error": e, "errors": [e]}});
            }
        }
        self.state
            .put_kayenta_execution(&id, &config.id, now, &body.to_string())?;
        self.audit(
            now,
            "kayenta-api",
            "kayenta.execute",
            &config.id,
            &json!({"execution": id, "status": body["status"]}),
        );
        Ok(id)
    }

    /// A stored Kayenta-API execution document.
    pub fn kayenta_execution(&self, id: &str) -> Result<Option<serde_json::Value>, AnalysisError> {
        Ok(self
            .state
            .kayenta_execution(id)?
            .and_then(|b| serde_json::from_str(&b).ok()))
    }

    /// Replaces the datasource (reload).
    pub fn set_datasource(&self, ds: Datasource) {
        *self.datasource.write() = ds;
    }

    /// The current templates.
    pub fn templates(&self) -> Arc<BTreeMap<String, Template>> {
        self.templates.read().clone()
    }

    /// Starts a run of `template` with `args`. With a `key`, asking twice
    /// returns the first run instead of starting another.
    pub fn create(
        &self,
        template: &str,
        args: &BTreeMap<String, String>,
        key: Option<String>,
        overrides: &Overrides,
        now: i64,
    ) -> Result<Arc<RunRow>, AnalysisError> {
        // Webhooks call this on every tick: an existing run is a plain read,
        // no write transaction.
        if let Some(k) = &key {
            if let Some(existing) = self.state.run_by_key(k)? {
                return Ok(existing);
            }
        }
        let mut t = self
            .templates()
            .get(template)
            .cloned()
            .ok_or_else(|| AnalysisError::UnknownTemplate(template.to_string()))?;
        for (key, d) in [
            ("interval", overrides.interval),
            ("window", overrides.window),
            ("initial_delay", overrides.initial_delay),
        ] {
            if let Some(d) = d {
                super::template::check_schedule(key, d).map_err(AnalysisError::BadArgs)?;
            }
        }
        if let Some(i) = overrides.interval {
            if i.is_zero() {
                return Err(AnalysisError::BadArgs(
                    "interval: expected a positive duration".into(),
                ));
            }
            t.interval = i;
        }
        if let Some(w) = overrides.window {
            t.window = w;
        }
        if let Some(d) = overrides.initial_delay {
            t.initial_delay = d;
        }
        if let Some(c) = overrides.count {
            if c == 0 {
                return Err(AnalysisError::BadArgs("count: expected at least 1".into()));
            }
            t.count = Some(c);
        }
        let args = t.resolve_args(args).map_err(AnalysisError::BadArgs)?;
        t.track_values(&args).map_err(AnalysisError::BadArgs)?;
        let max = self.max_running.load(std::sync::atomic::Ordering::Relaxed);
        if self.state.running_count()? >= max {
            return Err(AnalysisError::TooManyRunning(max));
        }
        let spec = serde_json::to_string(&t)
            .map_err(|e| AnalysisError::BadArgs(format!("cannot store the template: {e}")))?;
        let status = serde_json::to_string(&RunStatus::new(&t))
            .map_err(|e| AnalysisError::BadArgs(format!("cannot store the run status: {e}")))?;
        let args_json = serde_json::to_string(&args)
            .map_err(|e| AnalysisError::BadArgs(format!("cannot store the arguments: {e}")))?;
        let row = RunRow {
            id: new_id(),
            template: t.name.clone(),
            args: args_json,
            key,
            state: RunState::Running.as_str().into(),
            message: format!(
                "started: first measurement after {}",
                crate::duration::format(t.initial_delay)
            ),
            created_at: now,
            updated_at: now,
            finished_at: None,
            next_at: Some(later(now, t.initial_delay)),
            spec,
            status,
            rollout: overrides.rollout.as_ref().map(|r| r.to_string()),
        };
        let stored = self.state.insert_run(&row)?;
        if stored.id == row.id {
            info!(run = %row.id, template = %t.name, "analysis run started");
            if let Some((prefix, keep)) = &overrides.supersede {
                let why = format!("superseded by run {} of a newer revision", row.id);
                match self.state.cancel_superseded(prefix, keep, now, &why) {
                    Ok(ids) => {
                        for id in ids {
                            info!(run = %id, by = %row.id, "analysis run superseded by a newer revision");
                        }
                    }
                    Err(e) => warn!(error = %e, "cannot cancel runs of earlier revisions"),
                }
            }
            if let Some(subject) = rollout_subject(&row) {
                self.audit(
                    now,
                    &format!("analysis:{}", row.id),
                    "analysis.started",
                    &subject,
                    &serde_json::json!({"run": row.id, "template": t.name, "reason": row.message,
                        "args": serde_json::from_str::<serde_json::Value>(&row.args).unwrap_or_default(),
                        "rollout": overrides.rollout}),
                );
            }
        }
        self.wake.notify_one();
        Ok(Arc::new(stored))
    }

    /// Opens or closes an operator gate (Flagger confirm/rollback hooks).
    pub fn set_gate(
        &self,
        namespace: &str,
        name: &str,
        kind: &str,
        open: bool,
        actor: &str,
        now: i64,
    ) -> Result<(), AnalysisError> {
        self.state.set_gate(&crate::state::GateRow {
            namespace: namespace.into(),
            name: name.into(),
            kind: kind.into(),
            open,
            updated_at: now,
            actor: actor.into(),
        })?;
        Ok(())
    }

    /// Whether a gate is open (closed when never set).
    pub fn gate(&self, namespace: &str, name: &str, kind: &str) -> Result<bool, AnalysisError> {
        Ok(self.state.gate(namespace, name, kind)?)
    }

    /// Every gate ever set.
    pub fn gates(&self) -> Result<Vec<crate::state::GateRow>, AnalysisError> {
        Ok(self.state.gates()?)
    }

    /// Appends to the audit log; a failure is logged, never fatal.
    pub fn audit(
        &self,
        now: i64,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) {
        if let Err(e) = self
            .state
            .audit(now, actor, action, subject, &detail.to_string())
        {
            warn!(error = %e, action, subject, "cannot write the audit log");
        }
    }

    /// Appends to the audit log only when `answer` differs from the last
    /// one recorded for this actor, action and subject (webhook ticks).
    pub fn audit_change(
        &self,
        now: i64,
        actor: &str,
        action: &str,
        subject: &str,
        answer: &str,
        detail: &serde_json::Value,
    ) {
        let key = (actor.to_string(), action.to_string(), subject.to_string());
        {
            let mut last = self.last_answers.lock();
            if last.get(&key).is_some_and(|a| a == answer) {
                return;
            }
            last.insert(key, answer.to_string());
        }
        self.audit(now, actor, action, subject, detail);
    }

    /// The newest audit entries.
    pub fn audit_log(
        &self,
        subject: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::state::AuditRow>, AnalysisError> {
        Ok(self.state.audit_log(subject, limit)?)
    }

    /// Runs whose key starts with `prefix`, newest first.
    pub fn runs_with_key_prefix(&self, prefix: &str) -> Result<Vec<RunRow>, AnalysisError> {
        Ok(self.state.latest_run_with_key_prefix(prefix)?)
    }

    /// One stored run.
    pub fn run_row(&self, id: &str) -> Result<Option<RunRow>, AnalysisError> {
        Ok(self.state.run(id)?)
    }

    /// Cancels a run (a no-op for finished ones); None if it does not exist.
    pub fn cancel(&self, id: &str, now: i64) -> Result<Option<RunRow>, AnalysisError> {
        let r = self.state.cancel_run(id, now, "cancelled by request")?;
        Ok(r)
    }

    /// The scheduler: once `ready` (the store has its first data after a
    /// start), measures due runs until `token` is cancelled.
    pub async fn run(
        self: Arc<Self>,
        token: CancellationToken,
        ready: impl std::future::Future<Output = ()>,
    ) {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = ready => {}
        }
        loop {
            let now = crate::clock::now_ms();
            let next = match self.tick(now).await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "analysis scheduler cannot read runs");
                    None
                }
            };
            let wait = next
                .map(
                    |t| Duration::from_millis((t - crate::clock::now_ms()).clamp(100, 1000) as u64),
                )
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                _ = token.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Measures every run due at `now`; returns the earliest next due time.
    pub async fn tick(&self, now: i64) -> Result<Option<i64>, AnalysisError> {
        // Only due rows are read; the cap on running runs bounds them.
        let max = self.max_running.load(std::sync::atomic::Ordering::Relaxed);
        let due = self
            .state
            .due_runs(now, usize::try_from(max).unwrap_or(usize::MAX))?;
        for row in due {
            self.step(row, now).await;
        }
        Ok(self.state.next_due()?)
    }

    /// Ends a run this version cannot read, naming what is wrong.
    fn end_unreadable(&self, mut row: RunRow, now: i64, why: String) {
        warn!(run = %row.id, reason = %why, "stored analysis run is unreadable; ending it");
        row.state = RunState::Error.as_str().into();
        row.message = format!("stored run is unreadable: {why}");
        row.finished_at = Some(now);
        row.next_at = None;
        row.updated_at = now;
        if let Err(e) = self.state.record_interval(&row, &[]) {
            warn!(run = %row.id, error = %e, "cannot store run");
        }
    }

    /// One interval of one run.
    async fn step(&self, mut row: RunRow, now: i64) {
        let t = match serde_json::from_str::<Template>(&row.spec) {
            Ok(t) => t,
            Err(e) => return self.end_unreadable(row, now, format!("template: {e}")),
        };
        let mut status = match serde_json::from_str::<RunStatus>(&row.status) {
            Ok(s) => s,
            Err(e) => return self.end_unreadable(row, now, format!("status: {e}")),
        };
        let args = match serde_json::from_str::<BTreeMap<String, String>>(&row.args) {
            Ok(a) => a,
            Err(e) => return self.end_unreadable(row, now, format!("arguments: {e}")),
        };
        if let Err(e) = t.validate_stored() {
            return self.end_unreadable(row, now, e);
        }
        if status.metrics.len() != t.metrics.len() {
            return self.end_unreadable(
                row,
                now,
                format!(
                    "status has {} metrics, the template {}",
                    status.metrics.len(),
                    t.metrics.len()
                ),
            );
        }
        let tracks = match t.track_values(&args) {
            Ok(x) => x,
            Err(e) => return self.end_unreadable(row, now, format!("arguments: {e}")),
        };
        let ds = self.datasource.read().clone();
        let seq = t.sequential_count().max(1) as f64;
        let level = t.alpha / seq;
        let look = status.intervals;
        let mut ms: Vec<Measurement> = Vec::with_capacity(t.metrics.len());
        for (i, m) in t.metrics.iter().enumerate() {
            let fetched = fetch(
                &ds,
                &t,
                &m.queries,
                &args,
                &tracks,
                now,
                m.check_needs_baseline(),
            )
            .await;
            let ev = &mut status.metrics[i].evidence;
            ms.push(measure(m, fetched, ev, look, level));
        }
        // Right after a start (or a restart, with runs resuming) the store
        // is still filling up: while in grace (the run's window, 15s to
        // 10m after the start), an interval without data for every metric
        // is taken again a second later instead of counting as no data.
        let grace = t
            .window
            .clamp(Duration::from_secs(15), Duration::from_secs(600));
        let in_grace = now < later(self.started_at, grace);
        if in_grace && ms.iter().any(Measurement::lacks_data) {
            if let Err(e) = self.state.postpone_run(&row.id, now + 1000) {
                warn!(run = %row.id, error = %e, "cannot postpone a resumed run");
            }
            return;
        }
        let all_error = ms.iter().all(|m| m.phase == Phase::Error);
        let rows: Vec<MeasurementRow> = ms
            .iter()
            .map(|m| MeasurementRow {
                interval: i64::from(status.intervals + 1),
                metric: m.metric.clone(),
                t: now,
                phase: m.phase.as_str().into(),
                baseline: m.baseline,
                canary: m.canary,
                message: m.message.clone(),
                detail: m.detail.to_string(),
            })
            .collect();
        let (state, message) = status.record(&t, ms);
        row.state = state.as_str().into();
        row.message = message;
        row.updated_at = now;
        let mut retry = t.interval;
        if all_error {
            retry = retry.min(ERROR_RETRY);
        }
        if state == RunState::Running {
            row.next_at = Some(later(now, retry));
            row.finished_at = None;
        } else {
            row.next_at = None;
            row.finished_at = Some(now);
            info!(run = %row.id, template = %t.name, state = state.as_str(), message = %row.message, "analysis run finished");
        }
        row.status = match serde_json::to_string(&status) {
            Ok(s) => s,
            Err(e) => {
                warn!(run = %row.id, error = %e, "cannot serialise the run status; retrying");
                return;
            }
        };
        match self.state.record_interval(&row, &rows) {
            Ok(true) => {
                if state != RunState::Running {
                    if let Some(subject) = rollout_subject(&row) {
                        self.audit(
                            now,
                            &format!("analysis:{}", row.id),
                            &format!("analysis.{}", state.as_str()),
                            &subject,
                            &serde_json::json!({"run": row.id, "template": t.name,
                                "reason": row.message, "intervals": status.intervals}),
                        );
                    }
                }
            }
            Ok(false) => {}
            Err(e) => {
                // The row keeps its due time: the next tick measures again.
                warn!(run = %row.id, error = %e, "cannot store the analysis interval; retrying");
            }
        }
    }

    /// A run with its template, status, measurements and verdicts, typed
    /// (for the web pages).
    pub fn run_detail(&self, id: &str) -> Result<Option<RunDetail>, AnalysisError> {
        let Some(row) = self.state.run(id)? else {
            return Ok(None);
        };
        Ok(Some(RunDetail {
            template: serde_json::from_str(&row.spec).ok(),
            status: serde_json::from_str(&row.status).unwrap_or_default(),
            measurements: self.state.measurements(id)?,
            verdicts: self.state.verdicts(id)?,
            row,
        }))
    }

    /// Stored runs, newest first (`state` filters).
    pub fn run_rows(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRow>, AnalysisError> {
        Ok(self.state.runs(state, limit)?)
    }

    /// A run as the API shows it, with measurements and verdicts.
    pub fn view(&self, id: &str) -> Result<Option<serde_json::Value>, AnalysisError> {
        let Some(row) = self.state.run(id)? else {
            return Ok(None);
        };
        let ms = self.state.measurements(id)?;
        let vs = self.state.verdicts(id)?;
        let mut v = summary(&row);
        let status: RunStatus = serde_json::from_str(&row.status).unwrap_or_default();
        v["metrics"] = json!(status
            .metrics
            .iter()
            .map(|m| json!({
                "name": m.name,
                "phase": m.phase.map(|p| p.as_str()).unwrap_or("running"),
                "message": m.message,
                "count": m.count,
                "successful": m.successful,
                "failed": m.failed,
                "inconclusive": m.inconclusive,
                "error": m.error,
                "consecutive_error": m.consecutive_error,
                "consecutive_success": m.consecutive_success,
                "last": m.last.as_ref().map(|l| &l.message),
            }))
            .collect::<Vec<_>>());
        v["measurements"] = json!(ms
            .iter()
            .map(|m| json!({
                "interval": m.interval,
                "metric": m.metric,
                "time": m.t as f64 / 1000.0,
                "phase": m.phase,
                "baseline": m.baseline,
                "canary": m.canary,
                "message": m.message,
                "detail": serde_json::from_str::<serde_json::Value>(&m.detail).unwrap_or_default(),
            }))
            .collect::<Vec<_>>());
        v["verdicts"] = json!(vs
            .iter()
            .map(|x| json!({"time": x.t as f64 / 1000.0, "state": x.state, "message": x.message}))
            .collect::<Vec<_>>());
        Ok(Some(v))
    }

    /// Runs, newest first.
    pub fn list(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, AnalysisError> {
        Ok(self.state.runs(state, limit)?.iter().map(summary).collect())
    }
}

/// Fetches every metric's control and experiment series over its scope
/// (Prometheus range queries at the scope's step, as Kayenta's Prometheus
/// provider does) into metric set pairs. Steps without a sample are NaN,
/// as Kayenta's own data has gaps; several series of one query are
/// concatenated.
async fn fetch_pairs(
    ds: &crate::datasource::Datasource,
    cfg: &kayenta::CanaryConfig,
    scopes: &BTreeMap<String, (kayenta::Scope, kayenta::Scope)>,
) -> Result<Vec<kayenta::MetricSetPair>, String> {
    let mut out = Vec::with_capacity(cfg.metrics.len());
    for (m, q) in cfg.metrics.iter().zip(&cfg.queries) {
        let Some((control, experiment)) = scopes.get(&q.scope_name) else {
            return Err(format!(
                "metric {:?} reads scope {:?}, which the request does not define",
                m.name, q.scope_name
            ));
        };
        let mut series = Vec::new();
        for scope in [control, experiment] {
            let query = kayenta::build_query(cfg, q, scope)?;
            let step = scope
                .step
                .max(1)
                .checked_mul(1000)
                .ok_or_else(|| format!("step: {} seconds is out of range", scope.step))?;
            if scope.end < scope.start {
                return Err("scope end is before its start".into());
            }
            let v = ds
                .range(&query, scope.start, scope.end, step)
                .await
                .map_err(|e| format!("{}: query failed: {e}: {query}", m.name))?;
            let crate::promql::Value::Matrix(ss) = v.value else {
                return Err(format!("{}: expected a range result", m.name));
            };
            // Bounded: the datasource refused more than 11,000 points.
            let steps = ((scope.end - scope.start) / step + 1) as usize;
            let mut values = Vec::with_capacity(steps * ss.len().max(1));
            for s in &ss {
                let mut row = vec![f64::NAN; steps];
                for &(t, v) in &s.points {
                    let i = ((t - scope.start) / step) as usize;
                    if i < steps {
                        row[i] = v;
                    }
                }
                values.extend(row);
            }
            series.push(values);
        }
        let experiment_values = series.pop().unwrap_or_default();
        let control_values = series.pop().unwrap_or_default();
        out.push(kayenta::MetricSetPair {
            name: m.name.clone(),
            id: serde_json::Value::String(format!("{:016x}", rand::random::<u64>())),
            tags: json!({}),
            control: control_values,
            experiment: experiment_values,
        });
    }
    Ok(out)
}

/// `now + d` in ms, saturating instead of wrapping.
fn later(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `namespace/name` of the rollout a run is bound to, if any.
fn rollout_subject(row: &RunRow) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(row.rollout.as_deref()?).ok()?;
    Some(format!(
        "{}/{}",
        v.get("namespace")?.as_str()?,
        v.get("name")?.as_str()?
    ))
}

/// Java's `Duration.toString()` for whole milliseconds: `PT1H`, `PT1H30M`,
/// `PT45S`, `PT0.5S`.
fn iso_duration(ms: i64) -> String {
    if ms == 0 {
        return "PT0S".into();
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let mut s = String::from("PT");
    if h != 0 {
        s += &format!("{h}H");
    }
    if m != 0 {
        s += &format!("{m}M");
    }
    if rest != 0 {
        let secs = rest as f64 / 1000.0;
        s += &format!("{}S", crate::fmtfloat::prom_api(secs));
    }
    s
}

/// The short form of a run.
pub fn summary(row: &RunRow) -> serde_json::Value {
    let status: RunStatus = serde_json::from_str(&row.status).unwrap_or_default();
    let score = serde_json::from_str::<Template>(&row.spec)
        .ok()
        .and_then(|t| status.score(&t));
    json!({
        "rollout": row.rollout.as_deref().and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok()),
        "score": score,
        "id": row.id,
        "template": row.template,
        "args": serde_json::from_str::<serde_json::Value>(&row.args).unwrap_or_default(),
        "key": row.key,
        "state": row.state,
        "message": row.message,
        "intervals": status.intervals,
        "created": row.created_at as f64 / 1000.0,
        "updated": row.updated_at as f64 / 1000.0,
        "finished": row.finished_at.map(|t| t as f64 / 1000.0),
        "next_measurement": row.next_at.map(|t| t as f64 / 1000.0),
    })
}

impl super::template::Metric {
    fn check_needs_baseline(&self) -> bool {
        !matches!(self.check, super::template::Check::Threshold { .. })
    }
}

async fn fetch(
    ds: &Datasource,
    t: &Template,
    q: &Queries,
    args: &BTreeMap<String, String>,
    tracks: &(String, String),
    now: i64,
    needs_baseline: bool,
) -> Result<Fetched, String> {
    let fill = |query: &str, track: &str| {
        substitute(
            query,
            &Vars {
                args,
                track,
                window: t.window,
                interval: t.interval,
            },
        )
    };
    let run = |query: String| async move {
        ds.instant(&query, now)
            .await
            .map(|r| r.value)
            .map_err(|e| format!("query failed: {e}: {query}"))
    };
    match q {
        Queries::Values { baseline, canary } => {
            let c = run(fill(canary, &tracks.1)?).await?;
            let b = if needs_baseline && !baseline.is_empty() {
                Some(run(fill(baseline, &tracks.0)?).await?)
            } else {
                None
            };
            Ok(Fetched::Values {
                baseline: b,
                canary: c,
            })
        }
        Queries::Counts { errors, total } => {
            let be = run(fill(errors, &tracks.0)?).await?;
            let bt = run(fill(total, &tracks.0)?).await?;
            let ce = run(fill(errors, &tracks.1)?).await?;
            let ct = run(fill(total, &tracks.1)?).await?;
            Ok(Fetched::Counts {
                baseline: (be, bt),
                canary: (ce, ct),
            })
        }
    }
}
