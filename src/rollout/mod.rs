//! Rollouts augur drives itself (`[[rollouts]]`): a reconcile loop per
//! rollout that reads the Deployments, compares with its durable progress
//! (SQLite), and sends at most the writes the next stage needs, each one
//! read-compare-write so a restart (kill -9) resumes the same stage
//! without repeating a switch. Canary: scale up, walk the steps over a
//! traffic router ([`model`] has the routers' edits), promote the stable
//! Deployment as Flagger promotes its primary, or abort back to it.
//! Blue-green: scale the new side, preview, pre-promotion analysis, switch
//! the active Service's selector, post-promotion analysis, scale the old
//! side down, or switch back. Only the replica that may act (`ha`) writes.

pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::act::{Dispatcher, RolloutDecision};
use crate::analysis::engine::{AnalysisManager, Overrides};
use crate::analysis::run::RunState;
use crate::config::{
    AnalysisRef, BlueGreenSpec, CanarySpec, KubeConnection, RolloutConfig, Router, Step, Strategy,
    BUILTIN_ARGS,
};
use crate::decide::Decision;
use crate::state::State;
use model::{Call, Phase, Progress, Stage, Verb};

/// Why an operator verb was not taken.
#[derive(Debug, Error)]
pub enum RolloutError {
    /// No `[[rollouts]]` entry has this namespace and name.
    #[error("no rollout {0} is configured in [[rollouts]]")]
    NotDriven(String),
    /// The verb makes no sense in the rollout's phase.
    #[error("{0}")]
    Refused(String),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// How often each rollout is reconciled (and how soon a verb is taken in).
const TICK: Duration = Duration::from_millis(500);

/// Drives every configured rollout.
pub struct Controller {
    state: Arc<State>,
    analysis: Arc<AnalysisManager>,
    act: Arc<Dispatcher>,
    rollouts: RwLock<Arc<Vec<RolloutConfig>>>,
    /// `[delivery] commit_time_annotation`
    commit_annotation: RwLock<String>,
    clients: Mutex<HashMap<String, kube::Client>>,
    wake: tokio::sync::Notify,
}

/// One reconcile's view of the API server: requests go through here so
/// each write lands in the progress's call list.
struct Kube {
    client: kube::Client,
    ns: String,
    calls: Vec<Call>,
}

/// Why a reconcile step failed: a transient failure (no answer, 409
/// after retries, 429, 5xx) is retried on the next tick; anything else
/// means the step cannot be applied, and the rollout aborts.
#[derive(Debug)]
struct Fail {
    retry: bool,
    message: String,
}

impl From<String> for Fail {
    fn from(message: String) -> Fail {
        Fail {
            retry: false,
            message,
        }
    }
}

fn api_fail(method: &str, path: &str, code: u16, e: &str) -> Fail {
    Fail {
        retry: code == 0 || code == 409 || code == 429 || code >= 500,
        message: if code == 0 {
            format!("{method} {path}: {e}")
        } else {
            format!("{method} {path}: {code} {e}")
        },
    }
}

/// A reconcile that failed: the progress as far as it got (None when
/// nothing is known yet) and why.
type Unsettled = (Option<Box<Progress>>, String);

/// The result of a step that may take several ticks.
enum Wait {
    Done,
    Waiting(String),
}

const MERGE: &str = "application/merge-patch+json";

impl Kube {
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&Value, &str)>,
        what: &str,
    ) -> Result<Value, (u16, String)> {
        let r = crate::kubeapi::request(&self.client, method, path, body).await;
        if method != "GET" || r.is_err() {
            self.calls.push(Call {
                t: crate::clock::now_ms(),
                method: method.into(),
                path: path.into(),
                code: match &r {
                    Ok(_) => 200,
                    Err((c, _)) => *c,
                },
                what: what.into(),
            });
        }
        r
    }

    async fn get(&mut self, path: &str) -> Result<Value, Fail> {
        self.send("GET", path, None, "read")
            .await
            .map_err(|(c, e)| api_fail("GET", path, c, &e))
    }

    fn deploy_path(&self, name: &str) -> String {
        format!("/apis/apps/v1/namespaces/{}/deployments/{name}", self.ns)
    }

    async fn deployment(&mut self, name: &str) -> Result<Value, Fail> {
        let p = self.deploy_path(name);
        self.get(&p).await
    }

    /// `kubectl scale`: a merge patch of the scale subresource.
    async fn scale(&mut self, name: &str, replicas: u32) -> Result<(), Fail> {
        let p = format!("{}/scale", self.deploy_path(name));
        self.send(
            "PATCH",
            &p,
            Some((&json!({"spec": {"replicas": replicas}}), MERGE)),
            &format!("scale deployment {name} to {replicas}"),
        )
        .await
        .map(|_| ())
        .map_err(|(c, e)| api_fail("PATCH", &p, c, &e))
    }

    /// GET, edit, PUT with the read `resourceVersion`; a 409 re-reads and
    /// edits again (client-go's `RetryOnConflict`, 5 tries). `edit`
    /// answers whether it changed anything; nothing changed, nothing sent.
    async fn update<F>(&mut self, path: &str, what: &str, mut edit: F) -> Result<bool, Fail>
    where
        F: FnMut(&mut Value) -> Result<bool, String>,
    {
        for _ in 0..5 {
            let mut obj = self.get(path).await?;
            if !edit(&mut obj)? {
                return Ok(false);
            }
            if let Some(m) = obj.as_object_mut() {
                // The API server ignores status on the main resource.
                m.remove("status");
            }
            match self
                .send("PUT", path, Some((&obj, "application/json")), what)
                .await
            {
                Ok(_) => return Ok(true),
                Err((409, _)) => continue,
                Err((c, e)) => return Err(api_fail("PUT", path, c, &e)),
            }
        }
        Err(api_fail(
            "PUT",
            path,
            409,
            "still conflicting after 5 tries",
        ))
    }

    /// Points a Service's selector label at `value` (a merge patch of
    /// `spec.selector`), unless it already is.
    async fn select(&mut self, service: &str, label: &str, value: &str) -> Result<bool, Fail> {
        let p = format!("/api/v1/namespaces/{}/services/{service}", self.ns);
        let svc = self.get(&p).await?;
        if svc["spec"]["selector"][label].as_str() == Some(value) {
            return Ok(false);
        }
        let body = json!({"spec": {"selector": {label: value}}});
        self.send(
            "PATCH",
            &p,
            Some((&body, MERGE)),
            &format!("service {service}: selector {label}={value}"),
        )
        .await
        .map(|_| true)
        .map_err(|(c, e)| api_fail("PATCH", &p, c, &e))
    }
}

fn label_of(d: &Value, label: &str) -> Option<String> {
    d["spec"]["template"]["metadata"]["labels"][label]
        .as_str()
        .map(str::to_string)
}

fn elapsed(now: i64, since: i64, d: Duration) -> bool {
    now.saturating_sub(since) >= i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Controller {
    /// A controller writing through `act`'s leadership and decisions.
    pub fn new(
        state: Arc<State>,
        analysis: Arc<AnalysisManager>,
        act: Arc<Dispatcher>,
    ) -> Controller {
        Controller {
            state,
            analysis,
            act,
            rollouts: RwLock::new(Arc::new(Vec::new())),
            commit_annotation: RwLock::new(
                crate::config::DeliveryConfig::default().commit_time_annotation,
            ),
            clients: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The rollouts to drive (config load and reload).
    /// The pod-template annotation read for the commit time.
    pub fn set_commit_annotation(&self, name: &str) {
        *self.commit_annotation.write() = name.to_string();
    }

    /// Replaces the rollouts driven.
    pub fn set_rollouts(&self, rs: &[RolloutConfig]) {
        *self.rollouts.write() = Arc::new(rs.to_vec());
        self.clients.lock().clear();
        self.wake.notify_one();
    }

    fn find(&self, namespace: &str, name: &str) -> Option<RolloutConfig> {
        self.rollouts
            .read()
            .iter()
            .find(|r| r.namespace == namespace && r.name == name)
            .cloned()
    }

    /// Whether augur drives `namespace/name`.
    pub fn drives(&self, namespace: &str, name: &str) -> bool {
        self.find(namespace, name).is_some()
    }

    fn progress(&self, namespace: &str, name: &str) -> Result<Option<Progress>, RolloutError> {
        Ok(self
            .state
            .rollout_progress(namespace, name)?
            .and_then(|s| match serde_json::from_str::<Progress>(&s) {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(rollout = %format!("{namespace}/{name}"), error = %e, "stored rollout progress is unreadable; starting over from the cluster's state");
                    None
                }
            }))
    }

    /// Queues an operator verb (durable once this returns); the
    /// controller takes it in on its next tick. A verb that cannot apply
    /// in the current phase is refused, naming the phase.
    pub fn command(
        &self,
        namespace: &str,
        name: &str,
        verb: Verb,
        actor: &str,
        reason: &str,
        now: i64,
    ) -> Result<i64, RolloutError> {
        let subject = format!("{namespace}/{name}");
        if self.find(namespace, name).is_none() {
            return Err(RolloutError::NotDriven(subject));
        }
        let phase = self
            .progress(namespace, name)?
            .map_or(Phase::Healthy, |p| p.phase);
        use Phase::*;
        let ok = match verb {
            Verb::Abort => matches!(phase, Progressing | Paused | Promoting | Aborting),
            Verb::Promote | Verb::PromoteFull | Verb::Pause | Verb::Resume => {
                matches!(phase, Progressing | Paused)
            }
            Verb::Retry => phase == Aborted,
        };
        if !ok {
            return Err(RolloutError::Refused(format!(
                "rollout {subject} is {}: {} does not apply",
                phase.as_str(),
                verb.as_str()
            )));
        }
        let id = self
            .state
            .rollout_command(namespace, name, verb.as_str(), actor, reason, now)?;
        self.state.audit(
            now,
            actor,
            "rollout.command",
            &subject,
            &json!({"verb": verb.as_str(), "reason": reason, "command": id}).to_string(),
        )?;
        self.wake.notify_one();
        Ok(id)
    }

    /// One rollout as the API shows it.
    pub fn view(&self, namespace: &str, name: &str) -> Result<Option<Value>, RolloutError> {
        let Some(cfg) = self.find(namespace, name) else {
            return Ok(None);
        };
        let p = self.progress(namespace, name)?;
        let run = |id: &Option<String>| -> Value {
            id.as_ref()
                .and_then(|id| self.analysis.run_row(id).ok().flatten())
                .map_or(Value::Null, |r| json!({"id": r.id, "template": r.template, "state": r.state, "message": r.message}))
        };
        let (strategy, extra) = match &cfg.strategy {
            Strategy::Canary(c) => (
                "canary",
                json!({"stable_deployment": c.stable_deployment, "canary_deployment": c.canary_deployment,
                       "router": c.router.as_str(), "steps": c.steps.len(),
                       "step_list": c.steps.iter().map(step_text).collect::<Vec<_>>()}),
            ),
            Strategy::BlueGreen(b) => (
                "blue-green",
                json!({"active_service": b.active_service, "preview_service": b.preview_service,
                       "deployments": b.deployments, "auto_promote": b.auto_promote}),
            ),
        };
        let mut v = json!({
            "namespace": namespace, "name": name, "strategy": strategy, "spec": extra,
        });
        match p {
            None => {
                v["phase"] = json!("unknown");
                v["message"] = json!("not reconciled yet");
            }
            Some(p) => {
                v["phase"] = json!(p.phase.as_str());
                v["stage"] = serde_json::to_value(&p.stage).unwrap_or_default()["stage"].clone();
                v["revision"] = json!(p.revision);
                v["step"] = json!(p.step);
                v["weights"] = json!({"canary": p.weight, "stable": 100 - p.weight.min(100)});
                v["message"] = json!(p.message);
                v["operator_paused"] = json!(p.operator_pause);
                v["attempt"] = json!(p.attempt);
                v["since"] = json!(p.since as f64 / 1000.0);
                v["analysis"] =
                    json!({"background": run(&p.background_run), "step": run(&p.step_run)});
                v["requests"] = serde_json::to_value(&p.calls).unwrap_or_default();
            }
        }
        Ok(Some(v))
    }

    /// Every configured rollout with its phase.
    pub fn list(&self) -> Result<Vec<Value>, RolloutError> {
        let rs = self.rollouts.read().clone();
        let mut out = Vec::new();
        for r in rs.iter() {
            if let Some(v) = self.view(&r.namespace, &r.name)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    async fn client(&self, c: &KubeConnection) -> Result<kube::Client, String> {
        let key = format!("{c:?}");
        if let Some(k) = self.clients.lock().get(&key) {
            return Ok(k.clone());
        }
        let k = c.client().await?;
        self.clients.lock().insert(key, k.clone());
        Ok(k)
    }

    /// Reconciles every rollout each tick until `token` is cancelled.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        loop {
            // A standby (or a leader past its renew deadline) writes nothing.
            if self.act.leadership().may_act().is_some() {
                let rs = self.rollouts.read().clone();
                for r in rs.iter() {
                    if token.is_cancelled() {
                        return;
                    }
                    self.reconcile(r).await;
                }
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    async fn reconcile(&self, cfg: &RolloutConfig) {
        let now = crate::clock::now_ms();
        let subject = format!("{}/{}", cfg.namespace, cfg.name);
        let client = match self.client(&cfg.connection).await {
            Ok(c) => c,
            Err(e) => {
                warn!(rollout = %subject, error = %e, "no Kubernetes client for the rollout");
                return;
            }
        };
        let mut k = Kube {
            client,
            ns: cfg.namespace.clone(),
            calls: Vec::new(),
        };
        let before = match self.progress(&cfg.namespace, &cfg.name) {
            Ok(p) => p,
            Err(e) => {
                warn!(rollout = %subject, error = %e, "cannot read rollout progress");
                return;
            }
        };
        let cmds = match self
            .state
            .pending_rollout_commands(&cfg.namespace, &cfg.name)
        {
            Ok(c) => c,
            Err(e) => {
                warn!(rollout = %subject, error = %e, "cannot read rollout commands");
                return;
            }
        };
        let mut p = before.clone();
        let ha = self.act.leadership().enabled();
        let anchor = match &cfg.strategy {
            Strategy::Canary(spec) => k.deploy_path(&spec.canary_deployment),
            Strategy::BlueGreen(spec) => format!(
                "/api/v1/namespaces/{}/services/{}",
                cfg.namespace, spec.active_service
            ),
        };
        if ha {
            // Under [ha] the cluster holds the leader's progress too: a new
            // leader (whose own record is older or missing) resumes from it.
            if let Ok(obj) = k.get(&anchor).await {
                if let Some(text) =
                    obj["metadata"]["annotations"][model::PROGRESS_ANNOTATION].as_str()
                {
                    match Progress::from_annotation(text) {
                        Ok(theirs) if p.as_ref().is_none_or(|mine| theirs.seq > mine.seq) => {
                            info!(rollout = %subject, seq = theirs.seq, "resuming the rollout from the progress the previous leader left in the cluster");
                            let calls = p.take().map(|mine| mine.calls).unwrap_or_default();
                            p = Some(Progress { calls, ..theirs });
                        }
                        Ok(_) => {}
                        Err(e) => {
                            warn!(rollout = %subject, error = %e, "the progress annotation is unreadable; keeping this replica's own record")
                        }
                    }
                }
            }
        }
        let before_core = p.as_ref().map(Progress::core);
        let before_seq = p.as_ref().map_or(0, |p| p.seq);
        let mut consumed = Vec::new();
        if let Some(p) = p.as_mut() {
            // Abort wins over a promote in the same batch, whatever the order.
            let abort = cmds.iter().any(|c| c.verb == "abort");
            for c in &cmds {
                consumed.push(c.id);
                let verb = match c.verb.parse::<Verb>() {
                    Ok(v) => v,
                    Err(e) => {
                        warn!(rollout = %subject, error = %e, "stored rollout command is unreadable; skipped");
                        continue;
                    }
                };
                if abort && matches!(verb, Verb::Promote | Verb::PromoteFull) {
                    self.audit(
                        now,
                        &c.actor,
                        "rollout.command.ignored",
                        &subject,
                        json!({"verb": verb.as_str(), "reason": "an abort in the same batch wins"}),
                    );
                    continue;
                }
                self.take(p, verb, &c.actor, &c.reason, cfg, now);
            }
        }
        let outcome = match &cfg.strategy {
            Strategy::Canary(spec) => self.canary(cfg, spec, &mut k, p, now).await,
            Strategy::BlueGreen(spec) => self.blue_green(cfg, spec, &mut k, p, now).await,
        };
        let mut p = match outcome {
            Ok(p) => p,
            Err((p, e)) => {
                warn!(rollout = %subject, error = %e, "rollout reconcile failed; retrying");
                match p {
                    Some(p) => {
                        let mut p = *p;
                        p.message = e;
                        p
                    }
                    None => {
                        // Nothing known yet (a Deployment is missing): keep
                        // no progress; the error is logged each tick.
                        return;
                    }
                }
            }
        };
        if Some(p.core()) != before_core {
            p.seq = before_seq + 1;
            if ha {
                let body = json!({"metadata": {"annotations": {model::PROGRESS_ANNOTATION: p.annotation()}}});
                if let Err((c, e)) = k
                    .send(
                        "PATCH",
                        &anchor,
                        Some((&body, MERGE)),
                        &format!("progress seq {}", p.seq),
                    )
                    .await
                {
                    warn!(rollout = %subject, code = c, error = %e, "cannot mirror the rollout's progress into the cluster");
                }
            }
        }
        for c in k.calls.drain(..) {
            p.call(c);
        }
        if Some(&p) != before.as_ref() || !consumed.is_empty() {
            match serde_json::to_string(&p) {
                Ok(text) => {
                    if let Err(e) =
                        self.state
                            .save_rollout(&cfg.namespace, &cfg.name, &text, &consumed, now)
                    {
                        warn!(rollout = %subject, error = %e, "cannot store rollout progress");
                    }
                }
                Err(e) => {
                    warn!(rollout = %subject, error = %e, "cannot serialise rollout progress")
                }
            }
        }
    }

    fn audit(&self, now: i64, actor: &str, action: &str, subject: &str, detail: Value) {
        if let Err(e) = self
            .state
            .audit(now, actor, action, subject, &detail.to_string())
        {
            warn!(error = %e, "cannot write the audit log");
        }
    }

    /// Folds an operator verb into the progress.
    fn take(
        &self,
        p: &mut Progress,
        verb: Verb,
        actor: &str,
        reason: &str,
        cfg: &RolloutConfig,
        now: i64,
    ) {
        let subject = format!("{}/{}", cfg.namespace, cfg.name);
        let applied = match verb {
            Verb::Abort
                if matches!(
                    p.phase,
                    Phase::Progressing | Phase::Paused | Phase::Promoting
                ) =>
            {
                let why = format!("aborted by {actor}: {reason}");
                self.begin_abort(cfg, p, &why, actor, now);
                true
            }
            Verb::Promote if matches!(p.phase, Phase::Progressing | Phase::Paused) => {
                p.promote = true;
                true
            }
            Verb::PromoteFull if matches!(p.phase, Phase::Progressing | Phase::Paused) => {
                p.promote_full = true;
                true
            }
            Verb::Pause if matches!(p.phase, Phase::Progressing | Phase::Paused) => {
                p.operator_pause = true;
                p.phase = Phase::Paused;
                p.message = format!("paused by {actor}");
                true
            }
            Verb::Resume if matches!(p.phase, Phase::Progressing | Phase::Paused) => {
                p.operator_pause = false;
                if p.phase == Phase::Paused {
                    p.phase = Phase::Progressing;
                }
                true
            }
            Verb::Retry if p.phase == Phase::Aborted => {
                p.attempt += 1;
                p.phase = Phase::Progressing;
                p.step = 0;
                p.step_run = None;
                p.background_run = None;
                p.stable_before = None;
                p.operator_pause = false;
                p.promote = false;
                p.promote_full = false;
                p.message = format!("retried by {actor}");
                p.enter(Stage::ScaleUp, now);
                true
            }
            _ => false,
        };
        self.audit(
            now,
            actor,
            if applied {
                "rollout.command.taken"
            } else {
                "rollout.command.ignored"
            },
            &subject,
            json!({"verb": verb.as_str(), "phase": p.phase.as_str()}),
        );
    }

    fn decision_revision(p: &Progress) -> String {
        if p.attempt == 0 {
            p.revision.clone()
        } else {
            format!("{}.retry{}", p.revision, p.attempt)
        }
    }

    fn decide(
        &self,
        cfg: &RolloutConfig,
        p: &Progress,
        decision: Decision,
        actor: &str,
        reason: &str,
        now: i64,
    ) {
        let d = RolloutDecision {
            namespace: cfg.namespace.clone(),
            name: cfg.name.clone(),
            revision: Self::decision_revision(p),
            decision,
            actor: actor.to_string(),
            reason: reason.to_string(),
            detail: json!({"step": p.step, "weight": p.weight, "stage": serde_json::to_value(&p.stage).unwrap_or_default(),
                           "commit_time_ms": p.commit_time_ms}),
        };
        if let Err(e) = self.act.submit(&d, now) {
            warn!(rollout = %format!("{}/{}", cfg.namespace, cfg.name), error = %e, "cannot record the rollout's decision");
        }
    }

    /// Enters the abort: runs cancelled, decision recorded; the writes
    /// follow in the `Abort` stage.
    fn begin_abort(&self, cfg: &RolloutConfig, p: &mut Progress, why: &str, actor: &str, now: i64) {
        let subject = format!("{}/{}", cfg.namespace, cfg.name);
        for id in [p.background_run.take(), p.step_run.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = self.analysis.cancel(&id, now) {
                warn!(run = %id, error = %e, "cannot cancel the rollout's analysis");
            }
        }
        p.phase = Phase::Aborting;
        p.message = why.to_string();
        p.promote = false;
        p.promote_full = false;
        p.enter(Stage::Abort, now);
        info!(rollout = %subject, reason = %why, "rollout aborting");
        self.audit(
            now,
            actor,
            "rollout.abort",
            &subject,
            json!({"revision": p.revision, "reason": why, "step": p.step}),
        );
        self.decide(cfg, p, Decision::Abort, actor, why, now);
    }

    /// The abort is over: traffic is back and the new side scaled down.
    fn aborted(&self, subject: &str, p: &mut Progress, now: i64) {
        p.phase = Phase::Aborted;
        p.enter(Stage::Idle, now);
        info!(rollout = %subject, revision = %p.revision, "rollout aborted");
        self.audit(
            now,
            "rollout",
            "rollout.aborted",
            subject,
            json!({"revision": p.revision, "reason": p.message}),
        );
    }

    /// Starts `revision`, whose pod template is `template` (its commit-time
    /// annotation, when present, gives the promotion's lead time).
    fn start(
        &self,
        cfg: &RolloutConfig,
        p: &mut Progress,
        revision: &str,
        template: &Value,
        now: i64,
    ) {
        let subject = format!("{}/{}", cfg.namespace, cfg.name);
        p.commit_time_ms = model::commit_time(template, &self.commit_annotation.read());
        for id in [p.background_run.take(), p.step_run.take()]
            .into_iter()
            .flatten()
        {
            let _ = self.analysis.cancel(&id, now);
        }
        p.revision = revision.to_string();
        p.phase = Phase::Progressing;
        p.step = 0;
        p.attempt = 0;
        p.operator_pause = false;
        p.promote = false;
        p.promote_full = false;
        p.stable_before = None;
        p.message = format!("revision {revision} started");
        p.enter(Stage::ScaleUp, now);
        info!(rollout = %subject, revision, "rollout started");
        self.audit(
            now,
            "rollout",
            "rollout.started",
            &subject,
            json!({"revision": revision}),
        );
    }

    /// Starts (or finds, by key) the run for `what` of this revision.
    fn run_for(
        &self,
        cfg: &RolloutConfig,
        p: &Progress,
        r: &AnalysisRef,
        what: &str,
        builtins: &BTreeMap<&str, String>,
        now: i64,
    ) -> Result<String, Fail> {
        let mut args = r.args.clone();
        if let Some(t) = self.analysis.templates().get(&r.template) {
            for b in BUILTIN_ARGS {
                if t.args.iter().any(|a| a.name == b) && !args.contains_key(b) {
                    if let Some(v) = builtins.get(b) {
                        args.insert(b.to_string(), v.clone());
                    }
                }
            }
        }
        let key = format!(
            "rollout/{}/{}/{}/{}/{what}",
            cfg.namespace, cfg.name, p.revision, p.attempt
        );
        self.analysis
            .create(&r.template, &args, Some(key), &Overrides::default(), now)
            .map(|row| row.id.clone())
            .map_err(|e| Fail {
                retry: matches!(
                    e,
                    crate::analysis::engine::AnalysisError::TooManyRunning(_)
                        | crate::analysis::engine::AnalysisError::State(_)
                ),
                message: format!("analysis {}: {e}", r.template),
            })
    }

    /// Whether this replica's database has the run.
    fn holds(&self, id: &str) -> bool {
        !matches!(self.analysis.run_row(id), Ok(None))
    }

    fn run_state(&self, id: &str) -> Result<(RunState, String), String> {
        match self.analysis.run_row(id) {
            Ok(Some(r)) => RunState::parse(&r.state)
                .map(|s| (s, r.message.clone()))
                .ok_or_else(|| format!("run {id}: unknown state {:?}", r.state)),
            Ok(None) => Err(format!("run {id} is gone")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Waits for a blocking run: Done when it passed; an abort on failure;
    /// a pause when inconclusive (a promote goes on).
    fn wait_run(
        &self,
        cfg: &RolloutConfig,
        p: &mut Progress,
        r: &AnalysisRef,
        what: &str,
        builtins: &BTreeMap<&str, String>,
        now: i64,
    ) -> Result<Wait, Fail> {
        // A run this replica does not hold (a new leader took over) is
        // started here under the same key.
        if p.step_run.as_ref().is_some_and(|id| !self.holds(id)) {
            p.step_run = None;
        }
        let id = match &p.step_run {
            Some(id) => id.clone(),
            None => {
                let id = self.run_for(cfg, p, r, what, builtins, now)?;
                p.step_run = Some(id.clone());
                id
            }
        };
        if p.promote {
            p.promote = false;
            let _ = self.analysis.cancel(&id, now);
            p.step_run = None;
            return Ok(Wait::Done);
        }
        let (state, message) = self.run_state(&id)?;
        match state {
            RunState::Running => Ok(Wait::Waiting(format!(
                "analysis {} ({what}) running: {message}",
                r.template
            ))),
            RunState::Passed => {
                p.step_run = None;
                Ok(Wait::Done)
            }
            RunState::Inconclusive => {
                p.phase = Phase::Paused;
                Ok(Wait::Waiting(format!(
                    "analysis {} ({what}) inconclusive: {message}; promote to go on or abort",
                    r.template
                )))
            }
            _ => {
                let why = format!(
                    "analysis {} ({what}) {}: {message}",
                    r.template,
                    state.as_str()
                );
                self.begin_abort(cfg, p, &why, &format!("analysis:{id}"), now);
                Ok(Wait::Waiting(why))
            }
        }
    }

    /// Whether a blue-green gate's analysis (if any) has passed; while it
    /// runs the message says why not yet (an abort keeps its own).
    fn analysis_passed(
        &self,
        cfg: &RolloutConfig,
        p: &mut Progress,
        r: Option<&AnalysisRef>,
        what: &str,
        builtins: &BTreeMap<&str, String>,
        now: i64,
    ) -> Result<bool, Fail> {
        let Some(r) = r else {
            return Ok(true);
        };
        match self.wait_run(cfg, p, r, what, builtins, now)? {
            Wait::Done => Ok(true),
            Wait::Waiting(why) => {
                if p.phase != Phase::Aborting {
                    p.message = why;
                }
                Ok(false)
            }
        }
    }

    /// Sets the canary's traffic share through the router.
    async fn set_weight(
        &self,
        spec: &CanarySpec,
        k: &mut Kube,
        p: &Progress,
        weight: u32,
    ) -> Result<Wait, Fail> {
        let ns = k.ns.clone();
        match &spec.router {
            Router::GatewayApi {
                http_route,
                stable_service,
                canary_service,
            } => {
                let path = format!(
                    "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/{http_route}"
                );
                k.update(
                    &path,
                    &format!("httproute {http_route}: canary weight {weight}"),
                    |r| {
                        if model::gateway_weight(r, canary_service) == Some(weight)
                            && model::gateway_weight(r, stable_service) == Some(100 - weight)
                        {
                            return Ok(false);
                        }
                        model::gateway_set_weights(r, stable_service, canary_service, weight)
                            .map(|()| true)
                    },
                )
                .await?;
                let route = k.get(&path).await?;
                match model::route_accepted(&route) {
                    Ok(()) => Ok(Wait::Done),
                    Err(e) => Ok(Wait::Waiting(e)),
                }
            }
            Router::Istio {
                virtual_service,
                routes,
                stable_service,
                canary_service,
            } => {
                let path = format!("/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/{virtual_service}");
                k.update(
                    &path,
                    &format!("virtualservice {virtual_service}: canary weight {weight}"),
                    |vs| {
                        let before = vs.clone();
                        model::istio_set_weights(
                            vs,
                            routes,
                            stable_service,
                            canary_service,
                            weight,
                        )?;
                        Ok(*vs != before)
                    },
                )
                .await?;
                Ok(Wait::Done)
            }
            Router::Nginx {
                stable_ingress,
                canary_ingress,
                stable_service,
                canary_service,
            } => {
                let base = format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses");
                let path = format!("{base}/{canary_ingress}");
                match k.send("GET", &path, None, "read").await {
                    Ok(ing) => {
                        if model::nginx_weight(&ing) != Some(weight) {
                            let body = json!({"metadata": {"annotations": {
                                format!("{}/canary-weight", model::NGINX_PREFIX): weight.to_string()}}});
                            k.send(
                                "PATCH",
                                &path,
                                Some((&body, MERGE)),
                                &format!("ingress {canary_ingress}: canary-weight {weight}"),
                            )
                            .await
                            .map_err(|(c, e)| api_fail("PATCH", &path, c, &e))?;
                        }
                    }
                    Err((404, _)) => {
                        let stable = k.get(&format!("{base}/{stable_ingress}")).await?;
                        let obj = model::nginx_canary_ingress(
                            &stable,
                            canary_ingress,
                            stable_service,
                            canary_service,
                            weight,
                        )?;
                        k.send(
                            "POST",
                            &base,
                            Some((&obj, "application/json")),
                            &format!("create canary ingress {canary_ingress} at weight {weight}"),
                        )
                        .await
                        .map_err(|(c, e)| api_fail("POST", &base, c, &e))?;
                    }
                    Err((c, e)) => return Err(api_fail("GET", &path, c, &e)),
                }
                Ok(Wait::Done)
            }
            Router::Replicas => {
                let stable = k.deployment(&spec.stable_deployment).await?;
                let (want_c, want_s) =
                    model::replica_counts(p.total, weight, model::surges(&stable));
                let canary = k.deployment(&spec.canary_deployment).await?;
                let (have_c, have_s) = (model::replicas(&canary), model::replicas(&stable));
                if want_c >= have_c {
                    // Going up: the canary grows first, the stable shrinks once it is available.
                    if have_c != want_c {
                        k.scale(&spec.canary_deployment, want_c).await?;
                        return Ok(Wait::Waiting(format!("canary scaled to {want_c}")));
                    }
                    if let Err(e) = model::deployment_available(&canary) {
                        return Ok(Wait::Waiting(e));
                    }
                    if have_s != want_s {
                        k.scale(&spec.stable_deployment, want_s).await?;
                        return Ok(Wait::Waiting(format!("stable scaled to {want_s}")));
                    }
                    Ok(match model::deployment_available(&stable) {
                        Ok(()) => Wait::Done,
                        Err(e) => Wait::Waiting(e),
                    })
                } else {
                    // Going down: the stable grows first (Argo scales stable up before canary down).
                    if have_s < want_s {
                        k.scale(&spec.stable_deployment, want_s).await?;
                        return Ok(Wait::Waiting(format!("stable scaled to {want_s}")));
                    }
                    if let Err(e) = model::deployment_available(&stable) {
                        return Ok(Wait::Waiting(e));
                    }
                    k.scale(&spec.canary_deployment, want_c).await?;
                    Ok(Wait::Waiting(format!("canary scaled to {want_c}")))
                }
            }
        }
    }

    fn builtins(
        cfg: &RolloutConfig,
        p: &Progress,
        stable: &str,
        canary: &str,
    ) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("namespace", cfg.namespace.clone()),
            ("rollout", cfg.name.clone()),
            ("revision", p.revision.clone()),
            ("stable_deployment", stable.to_string()),
            ("canary_deployment", canary.to_string()),
        ])
    }

    /// A wait that has lasted past the progress deadline aborts.
    fn waiting(&self, cfg: &RolloutConfig, p: &mut Progress, why: String, now: i64) {
        if elapsed(now, p.since, cfg.progress_deadline)
            && !matches!(p.phase, Phase::Aborting | Phase::Paused)
        {
            let why = format!(
                "progress deadline {} exceeded: {why}",
                crate::duration::format(cfg.progress_deadline)
            );
            self.begin_abort(cfg, p, &why, "rollout", now);
        } else {
            p.message = why;
        }
    }

    async fn canary(
        &self,
        cfg: &RolloutConfig,
        spec: &CanarySpec,
        k: &mut Kube,
        p: Option<Progress>,
        now: i64,
    ) -> Result<Progress, Unsettled> {
        let stable = match k.deployment(&spec.stable_deployment).await {
            Ok(d) => d,
            Err(e) => return Err((p.map(Box::new), e.message)),
        };
        let canary = match k.deployment(&spec.canary_deployment).await {
            Ok(d) => d,
            Err(e) => return Err((p.map(Box::new), e.message)),
        };
        let rev = model::revision(&canary["spec"]["template"]);
        let mut p = match p {
            None if model::same_pod_spec(&stable, &canary) => {
                return Ok(Progress::healthy(
                    &rev,
                    now,
                    "stable runs the canary's pod template",
                ))
            }
            None => {
                let mut p = Progress::healthy(&rev, now, "");
                p.total = model::replicas(&stable).max(1);
                self.start(cfg, &mut p, &rev, &canary["spec"]["template"], now);
                p
            }
            Some(p) => p,
        };
        if p.revision != rev && !matches!(p.phase, Phase::Aborting | Phase::Promoting) {
            if model::same_pod_spec(&stable, &canary) {
                p.revision = rev.clone();
                p.phase = Phase::Healthy;
                p.enter(Stage::Idle, now);
                p.message = "stable runs the canary's pod template".into();
            } else {
                if p.total == 0 || matches!(p.phase, Phase::Healthy | Phase::Aborted) {
                    p.total = model::replicas(&stable).max(1);
                }
                self.start(cfg, &mut p, &rev, &canary["spec"]["template"], now);
            }
        }
        let r = self
            .canary_stage(cfg, spec, k, &mut p, &stable, &canary, now)
            .await;
        self.settle(cfg, p, r, now)
    }

    /// A stage's failure: one that cannot be applied aborts the rollout
    /// (unless it is already going back); a transient one is retried.
    fn settle(
        &self,
        cfg: &RolloutConfig,
        mut p: Progress,
        r: Result<(), Fail>,
        now: i64,
    ) -> Result<Progress, Unsettled> {
        match r {
            Ok(()) => Ok(p),
            Err(e)
                if !e.retry
                    && matches!(
                        p.phase,
                        Phase::Progressing | Phase::Paused | Phase::Promoting
                    ) =>
            {
                let why = format!("step cannot be applied: {}", e.message);
                self.begin_abort(cfg, &mut p, &why, "rollout", now);
                Ok(p)
            }
            Err(e) => Err((Some(Box::new(p)), e.message)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn canary_stage(
        &self,
        cfg: &RolloutConfig,
        spec: &CanarySpec,
        k: &mut Kube,
        p: &mut Progress,
        stable: &Value,
        canary: &Value,
        now: i64,
    ) -> Result<(), Fail> {
        let subject = format!("{}/{}", cfg.namespace, cfg.name);
        let builtins = Self::builtins(cfg, p, &spec.stable_deployment, &spec.canary_deployment);
        if let (Some(a), Some(id)) = (&spec.analysis, p.background_run.clone()) {
            if !self.holds(&id) && matches!(p.phase, Phase::Progressing | Phase::Paused) {
                p.background_run = Some(self.run_for(cfg, p, a, "background", &builtins, now)?);
            }
        }
        // Background analysis: a failure aborts from any stage before the end.
        if let (Some(id), Phase::Progressing | Phase::Paused) = (p.background_run.clone(), p.phase)
        {
            match self.run_state(&id) {
                Ok((RunState::Failed | RunState::Error, message)) => {
                    let why = format!("background analysis failed: {message}");
                    self.begin_abort(cfg, p, &why, &format!("analysis:{id}"), now);
                }
                Ok((RunState::Inconclusive, message)) if !p.promote => {
                    p.phase = Phase::Paused;
                    p.message = format!(
                        "background analysis inconclusive: {message}; promote to go on or abort"
                    );
                    return Ok(());
                }
                Ok((RunState::Inconclusive, _)) => {
                    p.promote = false;
                    p.background_run = None;
                    p.phase = Phase::Progressing;
                }
                _ => {}
            }
        }
        if p.operator_pause && p.phase != Phase::Aborting {
            p.phase = Phase::Paused;
            return Ok(());
        }
        match p.stage.clone() {
            Stage::Idle => Ok(()),
            Stage::ScaleUp => {
                if spec.router != Router::Replicas {
                    if model::replicas(canary) == 0 {
                        k.scale(&spec.canary_deployment, spec.canary_replicas)
                            .await?;
                        p.message = format!("canary scaled to {}", spec.canary_replicas);
                        return Ok(());
                    }
                    if let Err(e) = model::deployment_available(canary) {
                        self.waiting(cfg, p, e, now);
                        return Ok(());
                    }
                }
                if let Some(a) = &spec.analysis {
                    if p.background_run.is_none() {
                        p.background_run =
                            Some(self.run_for(cfg, p, a, "background", &builtins, now)?);
                    }
                }
                p.phase = Phase::Progressing;
                p.message = "canary available; walking the steps".into();
                p.enter(Stage::Step, now);
                Ok(())
            }
            Stage::Step => {
                if p.promote_full {
                    p.step = spec.steps.len();
                }
                let Some(step) = spec.steps.get(p.step).cloned() else {
                    p.phase = Phase::Promoting;
                    p.promote = false;
                    p.promote_full = false;
                    p.message = format!(
                        "steps done; {} takes the new pod template",
                        spec.stable_deployment
                    );
                    self.audit(
                        now,
                        "rollout",
                        "rollout.promoting",
                        &subject,
                        json!({"revision": p.revision}),
                    );
                    p.enter(Stage::PromoteStable, now);
                    return Ok(());
                };
                let done = match &step {
                    Step::SetWeight(w) => {
                        if *w > 0 && spec.router != Router::Replicas {
                            if let Err(e) = model::deployment_available(canary) {
                                self.waiting(
                                    cfg,
                                    p,
                                    format!("no weight to a canary that is not available: {e}"),
                                    now,
                                );
                                return Ok(());
                            }
                        }
                        let r = self.set_weight(spec, k, p, *w).await?;
                        if let Wait::Done = r {
                            if p.weight != *w {
                                self.audit(
                                    now,
                                    "rollout",
                                    "rollout.weight",
                                    &subject,
                                    json!({"revision": p.revision, "canary": w, "stable": 100 - w}),
                                );
                            }
                            p.weight = *w;
                        }
                        r
                    }
                    Step::Pause(Some(d)) => {
                        if p.promote {
                            p.promote = false;
                            Wait::Done
                        } else if elapsed(now, p.since, *d) {
                            Wait::Done
                        } else {
                            p.phase = Phase::Progressing;
                            p.message =
                                format!("step {}: pause {}", p.step, crate::duration::format(*d));
                            return Ok(());
                        }
                    }
                    Step::Pause(None) => {
                        if p.promote {
                            p.promote = false;
                            p.phase = Phase::Progressing;
                            Wait::Done
                        } else {
                            p.phase = Phase::Paused;
                            p.message = format!("step {}: paused until a promote", p.step);
                            return Ok(());
                        }
                    }
                    Step::Analysis(r) => {
                        self.wait_run(cfg, p, r, &format!("step{}", p.step), &builtins, now)?
                    }
                };
                match done {
                    Wait::Done => {
                        p.step += 1;
                        if p.phase == Phase::Paused {
                            p.phase = Phase::Progressing;
                        }
                        p.message = format!("step {} of {} done", p.step, spec.steps.len());
                        p.enter(Stage::Step, now);
                    }
                    Wait::Waiting(why) => {
                        if p.phase != Phase::Aborting {
                            self.waiting(cfg, p, why, now);
                        }
                    }
                }
                Ok(())
            }
            Stage::PromoteStable => {
                if !model::same_pod_spec(stable, canary) {
                    if p.stable_before.is_none() {
                        p.stable_before = Some(stable["spec"]["template"].clone());
                    }
                    let path = k.deploy_path(&spec.stable_deployment);
                    let c = canary.clone();
                    k.update(
                        &path,
                        &format!(
                            "deployment {}: promote the canary's pod template",
                            spec.stable_deployment
                        ),
                        |d| {
                            let t = model::promoted_template(d, &c);
                            if d["spec"]["template"] == t {
                                return Ok(false);
                            }
                            d["spec"]["template"] = t;
                            Ok(true)
                        },
                    )
                    .await?;
                    p.message = format!("{} takes the new pod template", spec.stable_deployment);
                    return Ok(());
                }
                match model::deployment_available(stable) {
                    Ok(()) => {
                        p.message =
                            "stable available with the new version; traffic back to stable".into();
                        p.enter(Stage::Finish, now);
                    }
                    Err(e) => self.waiting(cfg, p, e, now),
                }
                Ok(())
            }
            Stage::Finish => {
                match self.set_weight(spec, k, p, 0).await? {
                    Wait::Waiting(why) => {
                        p.message = why;
                        return Ok(());
                    }
                    Wait::Done => p.weight = 0,
                }
                if model::replicas(canary) != 0 {
                    k.scale(&spec.canary_deployment, 0).await?;
                }
                if let Some(id) = p.background_run.take() {
                    let _ = self.analysis.cancel(&id, now);
                }
                p.phase = Phase::Healthy;
                p.stable_before = None;
                p.message = format!("revision {} promoted", p.revision);
                p.enter(Stage::Idle, now);
                info!(rollout = %subject, revision = %p.revision, "rollout promoted");
                self.audit(
                    now,
                    "rollout",
                    "rollout.promoted",
                    &subject,
                    json!({"revision": p.revision}),
                );
                self.decide(
                    cfg,
                    p,
                    Decision::Promote,
                    "rollout",
                    &format!("all {} steps passed", spec.steps.len()),
                    now,
                );
                Ok(())
            }
            Stage::Abort => {
                // An abort that wins over a promotion puts the stable's template back.
                if let Some(before) = p.stable_before.clone() {
                    let path = k.deploy_path(&spec.stable_deployment);
                    k.update(
                        &path,
                        &format!(
                            "deployment {}: restore its pod template",
                            spec.stable_deployment
                        ),
                        |d| {
                            if d["spec"]["template"] == before {
                                return Ok(false);
                            }
                            d["spec"]["template"] = before.clone();
                            Ok(true)
                        },
                    )
                    .await?;
                    p.stable_before = None;
                }
                if p.weight != 0 || spec.router == Router::Replicas {
                    match self.set_weight(spec, k, p, 0).await? {
                        Wait::Done => {
                            if p.weight != 0 {
                                self.audit(
                                    now,
                                    "rollout",
                                    "rollout.weight",
                                    &subject,
                                    json!({"revision": p.revision, "canary": 0, "stable": 100}),
                                );
                            }
                            p.weight = 0;
                        }
                        Wait::Waiting(_) if spec.router == Router::Replicas => {
                            // The stable must be back before the canary goes.
                            if !elapsed(now, p.since, cfg.progress_deadline) {
                                return Ok(());
                            }
                        }
                        Wait::Waiting(_) => p.weight = 0,
                    }
                }
                if !elapsed(now, p.since, cfg.abort_scale_down_delay) {
                    return Ok(());
                }
                if model::replicas(canary) != 0 {
                    k.scale(&spec.canary_deployment, 0).await?;
                }
                self.aborted(&subject, p, now);
                Ok(())
            }
            other => Err(format!("stage {other:?} does not belong to a canary").into()),
        }
    }

    async fn blue_green(
        &self,
        cfg: &RolloutConfig,
        spec: &BlueGreenSpec,
        k: &mut Kube,
        p: Option<Progress>,
        now: i64,
    ) -> Result<Progress, Unsettled> {
        let mut ds = Vec::new();
        for n in &spec.deployments {
            match k.deployment(n).await {
                Ok(d) => ds.push(d),
                Err(e) => return Err((p.map(Box::new), e.message)),
            }
        }
        let svc_path = format!(
            "/api/v1/namespaces/{}/services/{}",
            cfg.namespace, spec.active_service
        );
        let svc = match k.get(&svc_path).await {
            Ok(s) => s,
            Err(e) => return Err((p.map(Box::new), e.message)),
        };
        let selected = svc["spec"]["selector"][&spec.selector_label]
            .as_str()
            .map(str::to_string);
        let labels: Vec<Option<String>> = ds
            .iter()
            .map(|d| label_of(d, &spec.selector_label))
            .collect();
        let Some(active_i) = (0..2).find(|i| labels[*i].is_some() && labels[*i] == selected) else {
            return Err((p.map(Box::new), format!(
                "service {} selects {}={:?}, which neither {} nor {} carries in its pod template",
                spec.active_service, spec.selector_label, selected, spec.deployments[0], spec.deployments[1]
            )));
        };
        let mut p = match p {
            None => {
                let rev = model::revision(&ds[1 - active_i]["spec"]["template"]);
                let mut p = Progress::healthy(
                    &rev,
                    now,
                    &format!("{} is active", spec.deployments[active_i]),
                );
                p.old_active = Some(spec.deployments[active_i].clone());
                return Ok(p);
            }
            Some(p) => p,
        };
        if matches!(p.phase, Phase::Healthy | Phase::Aborted) {
            let inactive = 1 - active_i;
            let rev = model::revision(&ds[inactive]["spec"]["template"]);
            if rev != p.revision {
                p.old_active = Some(spec.deployments[active_i].clone());
                self.start(cfg, &mut p, &rev, &ds[inactive]["spec"]["template"], now);
            } else {
                p.old_active = Some(spec.deployments[active_i].clone());
                return Ok(p);
            }
        }
        let old_i = spec
            .deployments
            .iter()
            .position(|d| Some(d) == p.old_active.as_ref())
            .unwrap_or(active_i);
        let new_i = 1 - old_i;
        // A new template on the new side while in flight starts over.
        let rev = model::revision(&ds[new_i]["spec"]["template"]);
        if rev != p.revision
            && matches!(p.phase, Phase::Progressing | Phase::Paused)
            && p.old_selector.is_none()
        {
            self.start(cfg, &mut p, &rev, &ds[new_i]["spec"]["template"], now);
        }
        let r = self
            .blue_green_stage(cfg, spec, k, &mut p, &ds, old_i, now)
            .await;
        self.settle(cfg, p, r, now)
    }

    #[allow(clippy::too_many_arguments)]
    async fn blue_green_stage(
        &self,
        cfg: &RolloutConfig,
        spec: &BlueGreenSpec,
        k: &mut Kube,
        p: &mut Progress,
        ds: &[Value],
        old_i: usize,
        now: i64,
    ) -> Result<(), Fail> {
        let subject = format!("{}/{}", cfg.namespace, cfg.name);
        let new_i = 1 - old_i;
        let (old, new) = (&ds[old_i], &ds[new_i]);
        let (old_name, new_name) = (&spec.deployments[old_i], &spec.deployments[new_i]);
        let label = &spec.selector_label;
        let new_value = label_of(new, label)
            .ok_or_else(|| format!("deployment {new_name} has no pod label {label:?}"))?;
        let old_value = label_of(old, label)
            .ok_or_else(|| format!("deployment {old_name} has no pod label {label:?}"))?;
        let builtins = Self::builtins(cfg, p, old_name, new_name);
        if p.operator_pause && p.phase != Phase::Aborting {
            p.phase = Phase::Paused;
            return Ok(());
        }
        match p.stage.clone() {
            Stage::Idle => Ok(()),
            Stage::ScaleUp => {
                let want = model::replicas(old).max(1);
                if model::replicas(new) < want {
                    k.scale(new_name, want).await?;
                    p.message = format!("{new_name} scaled to {want}");
                    return Ok(());
                }
                match model::deployment_available(new) {
                    Ok(()) => {
                        if let Some(pv) = &spec.preview_service {
                            k.select(pv, label, &new_value).await?;
                        }
                        p.message = format!("{new_name} available");
                        p.enter(Stage::PrePromotion, now);
                    }
                    Err(e) => self.waiting(cfg, p, e, now),
                }
                Ok(())
            }
            Stage::PrePromotion => {
                if !self.analysis_passed(
                    cfg,
                    p,
                    spec.pre_promotion_analysis.as_ref(),
                    "pre-promotion",
                    &builtins,
                    now,
                )? {
                    return Ok(());
                }
                if spec.auto_promote || std::mem::take(&mut p.promote) || p.promote_full {
                    p.phase = Phase::Progressing;
                    return self
                        .switch(cfg, spec, k, p, new, &new_value, &old_value, now)
                        .await;
                }
                p.phase = Phase::Paused;
                p.message = format!(
                    "{new_name} ready; waiting for a promote to switch {}",
                    spec.active_service
                );
                p.enter(Stage::AwaitPromotion, now);
                Ok(())
            }
            Stage::AwaitPromotion => {
                if std::mem::take(&mut p.promote) || p.promote_full {
                    p.phase = Phase::Progressing;
                    return self
                        .switch(cfg, spec, k, p, new, &new_value, &old_value, now)
                        .await;
                }
                p.phase = Phase::Paused;
                Ok(())
            }
            Stage::PostPromotion => {
                if !self.analysis_passed(
                    cfg,
                    p,
                    spec.post_promotion_analysis.as_ref(),
                    "post-promotion",
                    &builtins,
                    now,
                )? {
                    return Ok(());
                }
                p.phase = Phase::Progressing;
                p.message = format!(
                    "{old_name} scaled down after {}",
                    crate::duration::format(spec.scale_down_delay)
                );
                p.enter(Stage::ScaleDownOld, now);
                Ok(())
            }
            Stage::ScaleDownOld => {
                if !elapsed(now, p.since, spec.scale_down_delay) {
                    return Ok(());
                }
                if model::replicas(old) != 0 {
                    k.scale(old_name, 0).await?;
                }
                let promoted = Self::decision_revision(p);
                // The next revision goes to the side that just stopped serving.
                p.revision = model::revision(&old["spec"]["template"]);
                p.phase = Phase::Healthy;
                // The new side is now the stable one: it has all the traffic.
                p.weight = 0;
                p.old_active = Some(new_name.clone());
                p.old_selector = None;
                p.message = format!("{new_name} promoted");
                p.enter(Stage::Idle, now);
                info!(rollout = %subject, active = %new_name, "blue-green rollout promoted");
                self.audit(
                    now,
                    "rollout",
                    "rollout.promoted",
                    &subject,
                    json!({"active": new_name, "revision": promoted}),
                );
                let mut shown = p.clone();
                shown.revision = promoted;
                shown.attempt = 0;
                self.decide(
                    cfg,
                    &shown,
                    Decision::Promote,
                    "rollout",
                    &format!("{new_name} serves {}", spec.active_service),
                    now,
                );
                Ok(())
            }
            Stage::Abort => {
                if p.old_selector.is_some() {
                    if k.select(&spec.active_service, label, &old_value).await? {
                        self.audit(now, "rollout", "rollout.switch", &subject, json!({"service": spec.active_service, "from": new_value, "to": old_value}));
                    }
                    p.old_selector = None;
                    p.weight = 0;
                }
                if !elapsed(now, p.since, cfg.abort_scale_down_delay) {
                    return Ok(());
                }
                if model::replicas(new) != 0 {
                    k.scale(new_name, 0).await?;
                }
                self.aborted(&subject, p, now);
                Ok(())
            }
            other => Err(format!("stage {other:?} does not belong to a blue-green rollout").into()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn switch(
        &self,
        cfg: &RolloutConfig,
        spec: &BlueGreenSpec,
        k: &mut Kube,
        p: &mut Progress,
        new: &Value,
        new_value: &str,
        old_value: &str,
        now: i64,
    ) -> Result<(), Fail> {
        // Argo switches only to a fully available ReplicaSet.
        if let Err(e) = model::deployment_available(new) {
            self.waiting(cfg, p, e, now);
            return Ok(());
        }
        p.promote_full = false;
        p.old_selector = Some(old_value.to_string());
        if k.select(&spec.active_service, &spec.selector_label, new_value)
            .await?
        {
            let subject = format!("{}/{}", cfg.namespace, cfg.name);
            self.audit(
                now,
                "rollout",
                "rollout.switch",
                &subject,
                json!({"service": spec.active_service, "from": old_value, "to": new_value}),
            );
        }
        p.weight = 100;
        p.message = format!(
            "{} switched to {}={new_value}",
            spec.active_service, spec.selector_label
        );
        p.enter(Stage::PostPromotion, now);
        Ok(())
    }
}

/// A step in words, for the API.
pub fn step_text(s: &Step) -> String {
    match s {
        Step::SetWeight(w) => format!("set_weight {w}"),
        Step::Pause(Some(d)) => format!("pause {}", crate::duration::format(*d)),
        Step::Pause(None) => "pause until promoted".into(),
        Step::Analysis(a) => format!("analysis {}", a.template),
    }
}
