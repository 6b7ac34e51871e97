//! Two replicas, one actor: leader election on a `coordination.k8s.io/v1`
//! Lease with client-go's semantics (`tools/leaderelection`), written on
//! the Lease API directly because the crates either trust the holder's
//! clock or patch without a precondition.
//!
//! - GET the Lease; create it when missing; otherwise PUT it back with the
//!   `resourceVersion` that was read, so a concurrent writer loses with 409.
//! - Expiry is judged from when this replica last saw the record change
//!   (a monotonic clock), never from the timestamps inside it.
//! - Taking over from another holder adds one to `leaseTransitions`: the
//!   epoch stamped on every action this replica carries out.
//! - The leader acts only while `now < last successful renew +
//!   renew_deadline`, measured from before the renewing request was sent;
//!   a rival acquires no sooner than `lease_duration` after it saw that
//!   renewal, so the two never act at once while `lease_duration >
//!   renew_deadline` and the clocks' rates agree.
//! - A clean shutdown releases the lease (empty holder, 1 s duration) after
//!   this replica has stopped acting, so the standby takes over at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::HaConfig;
use crate::metrics::Metrics;

/// Whether this replica may act now, and under which epoch.
pub struct Leadership {
    cfg: Option<HaConfig>,
    inner: Mutex<Inner>,
    metrics: Option<Arc<Metrics>>,
}

#[derive(Default)]
struct Inner {
    leader: bool,
    epoch: i64,
    /// when the last successful acquire/renew was started
    renewed_at: Option<Instant>,
    /// the holder in the last record seen
    holder: String,
    /// the last record seen (its `spec` as JSON) and when it changed
    observed: Option<(String, Instant)>,
}

/// The state shown by the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// `[ha]` is configured
    pub enabled: bool,
    /// this replica's identity
    pub identity: String,
    /// this replica may act now
    pub leader: bool,
    /// the holder last seen in the Lease
    pub holder: String,
    /// `leaseTransitions` while leading
    pub epoch: i64,
}

impl Leadership {
    /// Without `[ha]`: the only replica, always acting, epoch 0.
    pub fn single() -> Arc<Leadership> {
        Arc::new(Leadership {
            cfg: None,
            inner: Mutex::new(Inner::default()),
            metrics: None,
        })
    }

    /// With `[ha]`: a standby until [`Leadership::run`] acquires the lease.
    pub fn elected(cfg: HaConfig, metrics: Arc<Metrics>) -> Arc<Leadership> {
        metrics.ha_leader.set(0);
        Arc::new(Leadership {
            cfg: Some(cfg),
            inner: Mutex::new(Inner::default()),
            metrics: Some(metrics),
        })
    }

    /// Whether leader election is configured.
    pub fn enabled(&self) -> bool {
        self.cfg.is_some()
    }

    /// The epoch to act under, or None on a standby (or a leader past its
    /// renew deadline: it stops acting at once, before its loop notices).
    pub fn may_act(&self) -> Option<i64> {
        let Some(cfg) = &self.cfg else {
            return Some(0);
        };
        let i = self.inner.lock();
        (i.leader
            && i.renewed_at
                .is_some_and(|t| t.elapsed() < cfg.renew_deadline))
        .then_some(i.epoch)
    }

    /// For `/-/ready` and the API.
    pub fn status(&self) -> Status {
        let leader = self.may_act().is_some();
        let i = self.inner.lock();
        Status {
            enabled: self.cfg.is_some(),
            identity: self
                .cfg
                .as_ref()
                .map(|c| c.identity.clone())
                .unwrap_or_default(),
            leader,
            holder: i.holder.clone(),
            epoch: i.epoch,
        }
    }

    /// `/-/ready` answers 503 on a standby when asked to.
    pub fn ready_only_when_leader(&self) -> bool {
        self.cfg.as_ref().is_some_and(|c| c.ready_only_when_leader)
    }

    fn set_leader(&self, leader: bool) {
        let changed = {
            let mut i = self.inner.lock();
            let was = i.leader;
            i.leader = leader;
            was != leader
        };
        if let Some(m) = &self.metrics {
            m.ha_leader.set(i64::from(leader));
            if changed {
                m.ha_transitions.inc();
            }
        }
    }

    /// Acquires, renews and, at shutdown, releases the lease until `token`
    /// is cancelled; `on_leader` runs each time this replica starts leading.
    pub async fn run(self: Arc<Self>, token: CancellationToken, on_leader: impl Fn()) {
        let Some(cfg) = self.cfg.clone() else {
            return;
        };
        let client = loop {
            match cfg.connection.client().await {
                Ok(c) => break c,
                Err(e) => {
                    warn!(error = %e, "HA: cannot build the Kubernetes client; retrying");
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(cfg.retry_period) => {}
                    }
                }
            }
        };
        let lease = LeaseApi {
            client,
            cfg: cfg.clone(),
        };
        loop {
            // Standby: try every retry period, with client-go's jitter.
            loop {
                match tokio::time::timeout(cfg.retry_period, self.try_acquire_or_renew(&lease))
                    .await
                {
                    Ok(Ok(true)) => break,
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => warn!(error = %e, "HA: cannot read or write the lease"),
                    Err(_) => warn!("HA: lease request timed out"),
                }
                let jitter = rand::random::<f64>() * 0.2;
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(cfg.retry_period.mul_f64(1.0 + jitter)) => {}
                }
            }
            self.set_leader(true);
            let epoch = self.inner.lock().epoch;
            info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), identity = %cfg.identity, epoch, "HA: became leader");
            on_leader();
            // Leader: renew every retry period until a renewal misses the
            // deadline.
            let lost = loop {
                tokio::select! {
                    _ = token.cancelled() => break false,
                    _ = tokio::time::sleep(cfg.retry_period) => {}
                }
                let renewed = loop {
                    let deadline = self
                        .inner
                        .lock()
                        .renewed_at
                        .map_or(Instant::now(), |t| t + cfg.renew_deadline);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break false;
                    }
                    match tokio::time::timeout(left, self.try_acquire_or_renew(&lease)).await {
                        Ok(Ok(true)) => break true,
                        Ok(Ok(false)) => {}
                        Ok(Err(e)) => warn!(error = %e, "HA: lease renewal failed"),
                        Err(_) => {}
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    tokio::select! {
                        _ = token.cancelled() => break true,
                        _ = tokio::time::sleep(cfg.retry_period.min(left)) => {}
                    }
                };
                if !renewed {
                    break true;
                }
            };
            self.set_leader(false);
            if lost {
                warn!(identity = %cfg.identity, "HA: could not renew the lease before the deadline; stopped leading");
                continue;
            }
            // Shutdown: acting has stopped; hand the lease over now.
            match tokio::time::timeout(cfg.retry_period, lease.release(&cfg.identity)).await {
                Ok(Ok(())) => info!("HA: lease released"),
                Ok(Err(e)) => warn!(error = %e, "HA: cannot release the lease"),
                Err(_) => warn!("HA: releasing the lease timed out"),
            }
            return;
        }
    }

    /// client-go's `tryAcquireOrRenew`: true when this replica holds the
    /// lease after the call.
    async fn try_acquire_or_renew(&self, lease: &LeaseApi) -> Result<bool, String> {
        let cfg = &lease.cfg;
        let started = Instant::now();
        let now = micro_time();
        let secs = cfg.lease_duration.as_secs() as i64;
        let Some(mut obj) = lease.get().await? else {
            let spec = json!({
                "holderIdentity": cfg.identity, "leaseDurationSeconds": secs,
                "acquireTime": now, "renewTime": now, "leaseTransitions": 0,
            });
            return match lease.create(spec).await? {
                Some(created) => {
                    self.observe(&created["spec"], Instant::now());
                    let mut i = self.inner.lock();
                    i.epoch = 0;
                    i.renewed_at = Some(started);
                    Ok(true)
                }
                None => Ok(false),
            };
        };
        let spec = obj["spec"].clone();
        self.observe(&spec, Instant::now());
        let holder = spec["holderIdentity"].as_str().unwrap_or("").to_string();
        let duration = Duration::from_secs(spec["leaseDurationSeconds"].as_u64().unwrap_or(0));
        {
            let i = self.inner.lock();
            let observed_at = i.observed.as_ref().map_or(started, |o| o.1);
            if !holder.is_empty() && holder != cfg.identity && observed_at.elapsed() < duration {
                return Ok(false);
            }
        }
        let transitions = spec["leaseTransitions"].as_i64().unwrap_or(0);
        let ours = holder == cfg.identity;
        let new_spec = json!({
            "holderIdentity": cfg.identity,
            "leaseDurationSeconds": secs,
            "acquireTime": if ours { spec["acquireTime"].clone() } else { json!(now) },
            "renewTime": now,
            "leaseTransitions": if ours { transitions } else { transitions + 1 },
        });
        obj["spec"] = new_spec;
        match lease.update(&obj).await? {
            Some(updated) => {
                self.observe(&updated["spec"], Instant::now());
                let mut i = self.inner.lock();
                i.epoch = updated["spec"]["leaseTransitions"].as_i64().unwrap_or(0);
                i.renewed_at = Some(started);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Notes the record seen; its change time is the expiry clock.
    fn observe(&self, spec: &Value, at: Instant) {
        let raw = spec.to_string();
        let mut i = self.inner.lock();
        i.holder = spec["holderIdentity"].as_str().unwrap_or("").to_string();
        if i.observed.as_ref().is_none_or(|o| o.0 != raw) {
            i.observed = Some((raw, at));
        }
    }
}

/// A Lease's `MicroTime`: RFC 3339 in UTC with microseconds.
fn micro_time() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// Raw requests on one Lease.
struct LeaseApi {
    client: kube::Client,
    cfg: HaConfig,
}

impl LeaseApi {
    fn path(&self) -> String {
        format!(
            "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
            self.cfg.namespace, self.cfg.name
        )
    }

    /// The answer (an object), 404/409 as `Err(code)`, anything else an
    /// error naming it.
    async fn send(
        &self,
        method: &str,
        path: String,
        body: Option<&Value>,
    ) -> Result<Result<Value, u16>, String> {
        let body = body.map(|b| (b, "application/json"));
        match crate::kubeapi::request(&self.client, method, &path, body).await {
            Ok(v) if v.is_object() => Ok(Ok(v)),
            Ok(_) => Err("the API server's answer is not a JSON object".into()),
            Err((code @ (404 | 409), _)) => Ok(Err(code)),
            Err((0, e)) => Err(e),
            Err((code, e)) => Err(format!("HTTP {code}: {e}")),
        }
    }

    /// The Lease, or None when it does not exist.
    async fn get(&self) -> Result<Option<Value>, String> {
        match self.send("GET", self.path(), None).await? {
            Ok(v) => Ok(Some(v)),
            Err(404) => Ok(None),
            Err(code) => Err(format!("GET lease: HTTP {code}")),
        }
    }

    /// Creates the Lease; None when another replica created it first.
    async fn create(&self, spec: Value) -> Result<Option<Value>, String> {
        let body = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
            "spec": spec,
        });
        let path = format!(
            "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
            self.cfg.namespace
        );
        match self.send("POST", path, Some(&body)).await? {
            Ok(v) => Ok(Some(v)),
            Err(409) => Ok(None),
            Err(code) => Err(format!("create lease: HTTP {code}")),
        }
    }

    /// PUTs the object as read (its `resourceVersion` makes the write
    /// conditional); None on 409, when someone else wrote first.
    async fn update(&self, obj: &Value) -> Result<Option<Value>, String> {
        match self.send("PUT", self.path(), Some(obj)).await? {
            Ok(v) => Ok(Some(v)),
            Err(409) => Ok(None),
            Err(code) => Err(format!("update lease: HTTP {code}")),
        }
    }

    /// client-go's release: empty holder, 1 s duration, transitions kept;
    /// only while this identity still holds it.
    async fn release(&self, identity: &str) -> Result<(), String> {
        let Some(mut obj) = self.get().await? else {
            return Ok(());
        };
        if obj["spec"]["holderIdentity"].as_str() != Some(identity) {
            return Ok(());
        }
        let now = micro_time();
        let transitions = obj["spec"]["leaseTransitions"].clone();
        obj["spec"] = json!({
            "holderIdentity": "", "leaseDurationSeconds": 1,
            "acquireTime": now, "renewTime": now, "leaseTransitions": transitions,
        });
        match self.update(&obj).await? {
            Some(_) => Ok(()),
            None => Err("the lease changed while releasing it (409)".into()),
        }
    }
}
