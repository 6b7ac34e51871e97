//! The pure parts of a driven rollout: its durable progress, operator
//! verbs, replica arithmetic, Deployment availability, and the edits each
//! traffic router makes to the object it read. No I/O, no clock.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a rollout is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Nothing in flight: the stable (or active) side serves everything.
    Healthy,
    /// Walking the steps.
    Progressing,
    /// Held: an indefinite pause, an inconclusive analysis, an operator pause.
    Paused,
    /// Last step done: the stable Deployment takes the new version.
    Promoting,
    /// Going back to stable.
    Aborting,
    /// Back on stable; waits for a new revision or `retry`.
    Aborted,
}

impl Phase {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::Promoting => "promoting",
            Phase::Aborting => "aborting",
            Phase::Aborted => "aborted",
        }
    }
}

/// What the controller is doing or waiting for inside a phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "stage")]
pub enum Stage {
    /// Nothing to do.
    Idle,
    /// The new side is being scaled up and must become available.
    ScaleUp,
    /// Canary: carrying out step `steps[step]`.
    Step,
    /// Canary promotion: the stable Deployment is taking the new template.
    PromoteStable,
    /// Canary promotion: traffic back to stable, canary to 0.
    Finish,
    /// Blue-green: preview Service, then pre-promotion analysis.
    PrePromotion,
    /// Blue-green: waiting for a promote (`auto_promote = false`).
    AwaitPromotion,
    /// Blue-green: the active Service is switched; post-promotion analysis.
    PostPromotion,
    /// Blue-green: the old side is scaled down after `scale_down_delay`.
    ScaleDownOld,
    /// Abort: traffic back, then the new side scaled down after the delay.
    Abort,
}

/// An operator verb for a driven rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verb {
    /// Past the current pause or analysis step (blue-green: switch now).
    Promote,
    /// Skip the remaining steps and promote.
    PromoteFull,
    /// Go back to stable.
    Abort,
    /// Hold progress (analysis goes on).
    Pause,
    /// Go on after an operator pause.
    Resume,
    /// Start an aborted revision again from the first step.
    Retry,
}

impl Verb {
    /// Every verb.
    pub const ALL: [Verb; 6] = [
        Verb::Promote,
        Verb::PromoteFull,
        Verb::Abort,
        Verb::Pause,
        Verb::Resume,
        Verb::Retry,
    ];

    /// The name in URLs, the CLI and SQLite.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Promote => "promote",
            Verb::PromoteFull => "promote-full",
            Verb::Abort => "abort",
            Verb::Pause => "pause",
            Verb::Resume => "resume",
            Verb::Retry => "retry",
        }
    }
}

impl std::str::FromStr for Verb {
    type Err = String;

    fn from_str(s: &str) -> Result<Verb, String> {
        Verb::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("unknown rollout verb {s:?}; expected promote, promote-full, abort, pause, resume or retry")
            })
    }
}

/// One write (or failed read) the controller sent, for the status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// When (ms).
    pub t: i64,
    /// HTTP method.
    pub method: String,
    /// API path.
    pub path: String,
    /// Status code (0: no answer).
    pub code: u16,
    /// What it did, in words.
    pub what: String,
}

/// The annotation holding a rollout's progress on the object it anchors
/// to (the canary Deployment, or the blue-green active Service) under `[ha]`,
/// so a new leader resumes where the old one was.
pub const PROGRESS_ANNOTATION: &str = "augur.dev/rollout-progress";

/// The commit time (ms) a pod template's `annotation` holds: RFC 3339 or
/// Unix seconds, as CI writes it; None when absent or unreadable.
pub fn commit_time(template: &Value, annotation: &str) -> Option<i64> {
    let v = template["metadata"]["annotations"][annotation].as_str()?;
    crate::timefmt::parse_ms(v.trim())
}

/// How many calls the status keeps.
pub const CALLS_KEPT: usize = 20;

/// A rollout's durable progress (one JSON document in SQLite).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The revision in flight or last finished (a hash of the new pod template).
    pub revision: String,
    /// Where it is.
    pub phase: Phase,
    /// What it is doing.
    #[serde(flatten)]
    pub stage: Stage,
    /// Canary: the current step index.
    pub step: usize,
    /// The canary's traffic share last applied (blue-green: 100 once switched).
    pub weight: u32,
    /// Replica router: the total replica count the ratio is taken of.
    pub total: u32,
    /// When the current stage (or wait) started, ms.
    pub since: i64,
    /// Background analysis run.
    pub background_run: Option<String>,
    /// The run a blocking step (or blue-green phase) waits for.
    pub step_run: Option<String>,
    /// Held by an operator.
    pub operator_pause: bool,
    /// Promote past the current pause/analysis (taken in, not yet used).
    pub promote: bool,
    /// Skip to promotion.
    pub promote_full: bool,
    /// One line: what is happening or why it ended.
    pub message: String,
    /// Times this revision was retried.
    pub attempt: u32,
    /// The stable template before promotion wrote it (restored if an abort wins).
    pub stable_before: Option<Value>,
    /// Blue-green: the Deployment serving before the switch.
    pub old_active: Option<String>,
    /// Blue-green: the selector value before the switch.
    pub old_selector: Option<String>,
    /// The last requests sent to the API server.
    pub calls: VecDeque<Call>,
    /// Bumped on every change of where the rollout is (not of its message
    /// or call list): under `[ha]` the newer of the local record and the
    /// cluster's annotation wins.
    #[serde(default)]
    pub seq: u64,
    /// The revision's commit time (ms) from its pod template's annotation.
    #[serde(default)]
    pub commit_time_ms: Option<i64>,
}

impl Progress {
    /// Settled on `revision`, nothing in flight.
    pub fn healthy(revision: &str, now: i64, message: &str) -> Progress {
        Progress {
            revision: revision.into(),
            phase: Phase::Healthy,
            stage: Stage::Idle,
            step: 0,
            weight: 0,
            total: 0,
            since: now,
            background_run: None,
            step_run: None,
            operator_pause: false,
            promote: false,
            promote_full: false,
            message: message.into(),
            attempt: 0,
            stable_before: None,
            old_active: None,
            old_selector: None,
            calls: VecDeque::new(),
            seq: 0,
            commit_time_ms: None,
        }
    }

    /// Where the rollout is, without the message, the call list and the
    /// sequence number: what a change of is worth recording.
    pub fn core(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            for k in ["message", "calls", "seq"] {
                m.remove(k);
            }
        }
        v
    }

    /// The annotation a leader mirrors its progress into (under `[ha]`).
    pub fn annotation(&self) -> String {
        let mut v = self.core();
        v["seq"] = json!(self.seq);
        v["message"] = json!(self.message);
        v.to_string()
    }

    /// Progress read back from [`Progress::annotation`].
    pub fn from_annotation(text: &str) -> Result<Progress, String> {
        let mut v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        v["calls"] = json!([]);
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// Moves to `stage` now.
    pub fn enter(&mut self, stage: Stage, now: i64) {
        self.stage = stage;
        self.since = now;
    }

    /// Remembers a request (the newest [`CALLS_KEPT`]).
    pub fn call(&mut self, c: Call) {
        if self.calls.len() >= CALLS_KEPT {
            self.calls.pop_front();
        }
        self.calls.push_back(c);
    }
}

/// Replica counts `(canary, stable)` for `weight` percent of `total` pods,
/// as Argo's basic canary (`utils/replicaset/canary.go`
/// `approximateWeightedCanaryStableReplicaCounts`): the closer of floor and
/// ceiling, ties up; never 0 canary pods for 1-99% with two or more pods,
/// and never all of them; with `surge` (a non-zero maxSurge) a total of
/// `total + 1` is considered too when it comes closer to the weight.
pub fn replica_counts(total: u32, weight: u32, surge: bool) -> (u32, u32) {
    if total == 0 {
        return (0, 0);
    }
    let weight = weight.min(100);
    let exact = u64::from(total) * u64::from(weight);
    let floor = (exact / 100) as u32;
    let ceil = exact.div_ceil(100) as u32;
    let tied = |n: u32| (u64::from(n) * u64::from(weight)) % 100 == 50;
    let zero_allowed = weight == 0 || weight == 100 || (total == 1 && !surge);
    let mut options = Vec::new();
    if ceil < total || zero_allowed {
        options.push((ceil, total));
    }
    if !tied(total) && (floor != 0 || zero_allowed) {
        options.push((floor, total));
    }
    if surge {
        options.push((ceil, total + 1));
        if !tied(total + 1) && (floor != 0 || zero_allowed) {
            options.push((floor, total + 1));
        }
    }
    let delta =
        |(c, t): (u32, u32)| (f64::from(weight) - 100.0 * f64::from(c) / f64::from(t)).abs();
    // The first of the closest, as Argo keeps the first on equal deltas.
    let mut best = match options.first() {
        Some(o) => *o,
        None => return (0, total),
    };
    for o in options.into_iter().skip(1) {
        if delta(o) < delta(best) {
            best = o;
        }
    }
    (best.0, best.1 - best.0)
}

/// Whether a Deployment may surge above its replica count:
/// `spec.strategy.rollingUpdate.maxSurge` other than 0 (the API's default
/// is 25%; `Recreate` has none).
pub fn surges(d: &Value) -> bool {
    let st = &d["spec"]["strategy"];
    if st["type"] == "Recreate" {
        return false;
    }
    match &st["rollingUpdate"]["maxSurge"] {
        Value::Null => true,
        Value::Number(n) => n.as_i64() != Some(0),
        Value::String(s) => !matches!(s.trim_end_matches('%').trim(), "0" | ""),
        _ => true,
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Whether a Deployment has rolled out its current spec, as `kubectl
/// rollout status` judges it (`polymorphichelpers/rollout_status.go`):
/// the controller saw this generation, every replica is updated, no old
/// replica is left, and every updated one is available. An error says
/// what it waits for.
pub fn deployment_available(d: &Value) -> Result<(), String> {
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &d["status"];
    let name = d["metadata"]["name"].as_str().unwrap_or("?");
    if int(&st["observedGeneration"]) < int(&d["metadata"]["generation"]) {
        return Err(format!(
            "deployment {name:?}: waiting for the controller to observe the new spec"
        ));
    }
    let (updated, replicas, available) = (
        int(&st["updatedReplicas"]),
        int(&st["replicas"]),
        int(&st["availableReplicas"]),
    );
    if updated < want {
        return Err(format!(
            "deployment {name:?}: {updated} of {want} updated replicas"
        ));
    }
    if replicas > updated {
        return Err(format!(
            "deployment {name:?}: {} old replicas pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return Err(format!(
            "deployment {name:?}: {available} of {updated} updated replicas available"
        ));
    }
    Ok(())
}

/// A Deployment's `spec.replicas` (1 when unset, as the API defaults it).
pub fn replicas(d: &Value) -> u32 {
    d["spec"]["replicas"]
        .as_u64()
        .unwrap_or(1)
        .min(u64::from(u32::MAX)) as u32
}

/// The revision of a pod template: the first 10 hex digits of the SHA-256
/// of its JSON (keys sorted by serde_json's map).
pub fn revision(template: &Value) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(template.to_string().as_bytes())[..5])
}

/// The stable Deployment's template after promotion: the canary's, with
/// the stable's own values for its selector labels (as Flagger promotes its
/// primary, so the stable's pods stay selected by the stable's selector).
pub fn promoted_template(stable: &Value, canary: &Value) -> Value {
    let mut t = canary["spec"]["template"].clone();
    if let Some(sel) = stable["spec"]["selector"]["matchLabels"].as_object() {
        for (k, v) in sel {
            t["metadata"]["labels"][k] = v.clone();
        }
    }
    t
}

/// Whether two pod templates run the same thing (their pod specs match).
pub fn same_pod_spec(a: &Value, b: &Value) -> bool {
    a["spec"]["template"]["spec"] == b["spec"]["template"]["spec"]
}

/// Gateway API: sets `weight` on every backendRef named `canary` and
/// `100 - weight` on those named `stable`, in every rule (as the Argo
/// Gateway API plugin's `setHTTPRouteWeight`). Both must appear.
pub fn gateway_set_weights(
    route: &mut Value,
    stable: &str,
    canary: &str,
    weight: u32,
) -> Result<(), String> {
    let Some(rules) = route["spec"]["rules"].as_array_mut() else {
        return Err("httproute has no spec.rules".into());
    };
    let (mut found_s, mut found_c) = (false, false);
    for rule in rules.iter_mut() {
        let Some(refs) = rule["backendRefs"].as_array_mut() else {
            continue;
        };
        for r in refs.iter_mut() {
            match r["name"].as_str() {
                Some(n) if n == canary => {
                    r["weight"] = json!(weight);
                    found_c = true;
                }
                Some(n) if n == stable => {
                    r["weight"] = json!(100 - weight.min(100));
                    found_s = true;
                }
                _ => {}
            }
        }
    }
    match (found_s, found_c) {
        (true, true) => Ok(()),
        (false, _) => Err(format!("httproute: backendRef {stable:?} was not found")),
        (_, false) => Err(format!("httproute: backendRef {canary:?} was not found")),
    }
}

/// The canary's weight in a route (the first backendRef named `canary`).
pub fn gateway_weight(route: &Value, canary: &str) -> Option<u32> {
    route["spec"]["rules"].as_array()?.iter().find_map(|r| {
        r["backendRefs"].as_array()?.iter().find_map(|b| {
            (b["name"].as_str() == Some(canary)).then(|| b["weight"].as_u64().unwrap_or(1) as u32)
        })
    })
}

/// Flagger's readiness check before trusting a route (`pkg/router/
/// gateway_api.go` `GetRoutes`): every parent in `status.parents` has
/// `Accepted=True` observed at the route's current generation.
pub fn route_accepted(route: &Value) -> Result<(), String> {
    let generation = int(&route["metadata"]["generation"]);
    let parents = route["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if parents.is_empty() {
        return Err("httproute: no parent has reported status yet".into());
    }
    for p in &parents {
        let parent = p["parentRef"]["name"].as_str().unwrap_or("?");
        let accepted = p["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Accepted"));
        match accepted {
            Some(c) if c["status"] == "True" && int(&c["observedGeneration"]) >= generation => {}
            Some(c) if c["status"] == "True" => {
                return Err(format!(
                    "httproute: parent {parent:?} has not accepted generation {generation} yet (observed {})",
                    int(&c["observedGeneration"])
                ))
            }
            Some(c) => {
                return Err(format!(
                    "httproute: parent {parent:?} does not accept the route: {} {}",
                    c["reason"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or("")
                ))
            }
            None => return Err(format!("httproute: parent {parent:?} reports no Accepted condition")),
        }
    }
    Ok(())
}

/// The part of a destination host before the first `.` (Argo compares
/// `svc.ns.svc.cluster.local` and `svc` alike).
fn short_host(h: &str) -> &str {
    h.split('.').next().unwrap_or(h)
}

/// Istio: in the HTTP routes named in `routes` (or, with none named, the
/// only route, else the first unnamed one), the canary destination gets
/// `weight`, the stable one `100 - weight`, and any other destination is
/// removed, as Argo Rollouts' `istio.go` (`getHttpRouteIndexesToPatch`,
/// `processRoutes`).
pub fn istio_set_weights(
    vs: &mut Value,
    routes: &[String],
    stable: &str,
    canary: &str,
    weight: u32,
) -> Result<(), String> {
    let Some(http) = vs["spec"]["http"].as_array_mut() else {
        return Err("virtualservice has no spec.http".into());
    };
    let indexes: Vec<usize> = if routes.is_empty() {
        if http.len() == 1 {
            vec![0]
        } else {
            match http.iter().position(|r| r["name"].as_str().unwrap_or("").is_empty()) {
                Some(i) => vec![i],
                None => return Err("virtualservice: no unnamed HTTP route; name the routes to set in traffic.routes".into()),
            }
        }
    } else {
        let mut out = Vec::new();
        for n in routes {
            match http
                .iter()
                .position(|r| r["name"].as_str() == Some(n.as_str()))
            {
                Some(i) => out.push(i),
                None => {
                    return Err(format!(
                        "HTTP Route '{n}' is not found in the defined Virtual Service."
                    ))
                }
            }
        }
        out
    };
    for i in indexes {
        let Some(dests) = http[i]["route"].as_array_mut() else {
            return Err(format!(
                "virtualservice: HTTP route {i} has no destinations"
            ));
        };
        let host =
            |d: &Value| short_host(d["destination"]["host"].as_str().unwrap_or("")).to_string();
        if !dests.iter().any(|d| host(d) == short_host(stable))
            || !dests.iter().any(|d| host(d) == short_host(canary))
        {
            return Err(format!(
                "virtualservice: HTTP route {i} must have destinations {stable:?} and {canary:?}"
            ));
        }
        dests.retain(|d| host(d) == short_host(stable) || host(d) == short_host(canary));
        for d in dests.iter_mut() {
            d["weight"] = json!(if host(d) == short_host(canary) {
                weight
            } else {
                100 - weight.min(100)
            });
        }
    }
    Ok(())
}

/// The NGINX annotation prefix (ingress-nginx's default, Flagger's and Argo's).
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// A canary Ingress cloned from the stable one (as Argo's
/// `utils/ingress` does): rules whose backends name the stable Service,
/// switched to the canary Service; `ingressClassName` and TLS kept; the
/// stable's canary annotations dropped; `canary: "true"` and the weight.
pub fn nginx_canary_ingress(
    stable_ing: &Value,
    name: &str,
    stable: &str,
    canary: &str,
    weight: u32,
) -> Result<Value, String> {
    let mut rules = Vec::new();
    for r in stable_ing["spec"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let mut r = r;
        let mut keep = false;
        if let Some(paths) = r["http"]["paths"].as_array_mut() {
            paths.retain(|p| p["backend"]["service"]["name"].as_str() == Some(stable));
            for p in paths.iter_mut() {
                p["backend"]["service"]["name"] = json!(canary);
                keep = true;
            }
        }
        if keep {
            rules.push(r);
        }
    }
    if rules.is_empty() {
        return Err(format!(
            "ingress {:?}: no backend names service {stable:?}",
            stable_ing["metadata"]["name"].as_str().unwrap_or("?")
        ));
    }
    let mut annotations = serde_json::Map::new();
    if let Some(a) = stable_ing["metadata"]["annotations"].as_object() {
        for (k, v) in a {
            if !k.starts_with(&format!("{NGINX_PREFIX}/canary"))
                && k != "kubectl.kubernetes.io/last-applied-configuration"
            {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    annotations.insert(format!("{NGINX_PREFIX}/canary"), json!("true"));
    annotations.insert(
        format!("{NGINX_PREFIX}/canary-weight"),
        json!(weight.to_string()),
    );
    let mut spec = json!({"rules": rules});
    for k in ["ingressClassName", "tls"] {
        if !stable_ing["spec"][k].is_null() {
            spec[k] = stable_ing["spec"][k].clone();
        }
    }
    Ok(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": stable_ing["metadata"]["namespace"],
            "annotations": annotations,
        },
        "spec": spec,
    }))
}

/// The canary weight an NGINX canary Ingress carries.
pub fn nginx_weight(ing: &Value) -> Option<u32> {
    ing["metadata"]["annotations"][format!("{NGINX_PREFIX}/canary-weight")]
        .as_str()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_counts_follow_argos_basic_canary() {
        for surge in [false, true] {
            assert_eq!(replica_counts(10, 10, surge), (1, 9));
            assert_eq!(replica_counts(10, 33, surge), (3, 7));
            assert_eq!(replica_counts(10, 50, surge), (5, 5));
            assert_eq!(replica_counts(10, 100, surge), (10, 0));
            assert_eq!(replica_counts(10, 0, surge), (0, 10));
            assert_eq!(replica_counts(0, 50, surge), (0, 0));
        }
        // 1-99% never leaves the canary without a pod, nor the stable; with
        // surge a fifth pod comes closer to 1%.
        assert_eq!(replica_counts(4, 1, false), (1, 3));
        assert_eq!(replica_counts(4, 1, true), (1, 4));
        assert_eq!(replica_counts(4, 99, false), (3, 1));
        // Ties round up: 5 x 50% = 2.5 ...
        assert_eq!(replica_counts(5, 50, false), (3, 2));
        // ... unless one more pod hits the weight exactly.
        assert_eq!(replica_counts(5, 50, true), (3, 3));
        assert_eq!(replica_counts(10, 15, false), (2, 8));
        assert_eq!(replica_counts(10, 15, true), (2, 9));
        assert_eq!(replica_counts(3, 20, false), (1, 2));
        assert_eq!(replica_counts(1, 10, false), (0, 1));
        assert_eq!(replica_counts(1, 60, false), (1, 0));
        // One pod that may surge: canary and stable side by side.
        assert_eq!(replica_counts(1, 50, true), (1, 1));
    }

    #[test]
    fn surge_follows_the_deployments_strategy() {
        assert!(surges(&json!({"spec": {}})));
        assert!(surges(
            &json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "25%"}}}})
        ));
        assert!(!surges(
            &json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0}}}})
        ));
        assert!(!surges(
            &json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "0%"}}}})
        ));
        assert!(!surges(
            &json!({"spec": {"strategy": {"type": "Recreate"}}})
        ));
    }

    #[test]
    fn availability_is_kubectl_rollout_status() {
        let d = |gen: i64, obs: i64, upd: i64, rep: i64, avail: i64| {
            json!({"metadata": {"name": "w", "generation": gen}, "spec": {"replicas": 3},
                   "status": {"observedGeneration": obs, "updatedReplicas": upd, "replicas": rep, "availableReplicas": avail}})
        };
        assert!(deployment_available(&d(2, 2, 3, 3, 3)).is_ok());
        assert!(deployment_available(&d(2, 1, 3, 3, 3))
            .unwrap_err()
            .contains("observe"));
        assert!(deployment_available(&d(2, 2, 2, 3, 2))
            .unwrap_err()
            .contains("2 of 3 updated"));
        assert!(deployment_available(&d(2, 2, 3, 4, 3))
            .unwrap_err()
            .contains("1 old replicas"));
        assert!(deployment_available(&d(2, 2, 3, 3, 1))
            .unwrap_err()
            .contains("1 of 3 updated replicas available"));
    }

    #[test]
    fn gateway_weights_go_to_every_rule_and_missing_backends_are_errors() {
        let mut r = json!({"spec": {"rules": [
            {"backendRefs": [{"name": "s", "port": 80, "weight": 100}, {"name": "c", "port": 80, "weight": 0}]},
            {"backendRefs": [{"name": "s", "port": 80}, {"name": "c", "port": 80}, {"name": "other", "weight": 7}]}]}});
        gateway_set_weights(&mut r, "s", "c", 25).unwrap();
        assert_eq!(r["spec"]["rules"][0]["backendRefs"][0]["weight"], 75);
        assert_eq!(r["spec"]["rules"][1]["backendRefs"][1]["weight"], 25);
        assert_eq!(r["spec"]["rules"][1]["backendRefs"][2]["weight"], 7);
        assert_eq!(gateway_weight(&r, "c"), Some(25));
        let e = gateway_set_weights(&mut r, "s", "nope", 5).unwrap_err();
        assert!(e.contains("\"nope\" was not found"), "{e}");
    }

    #[test]
    fn route_acceptance_needs_every_parent_at_the_current_generation() {
        let r = |status: &str, obs: i64| {
            json!({"metadata": {"generation": 3}, "status": {"parents": [
            {"parentRef": {"name": "gw"}, "conditions": [{"type": "Accepted", "status": status, "observedGeneration": obs, "reason": "NotAllowedByListeners"}]}]}})
        };
        assert!(route_accepted(&r("True", 3)).is_ok());
        assert!(route_accepted(&r("True", 2))
            .unwrap_err()
            .contains("generation 3"));
        assert!(route_accepted(&r("False", 3))
            .unwrap_err()
            .contains("NotAllowedByListeners"));
        assert!(route_accepted(&json!({"metadata": {"generation": 1}})).is_err());
    }

    #[test]
    fn istio_weights_follow_argo_route_lookup_and_drop_strangers() {
        let mut vs = json!({"spec": {"http": [
            {"name": "primary", "route": [
                {"destination": {"host": "s.shop.svc.cluster.local"}, "weight": 100},
                {"destination": {"host": "c"}, "weight": 0},
                {"destination": {"host": "old"}, "weight": 0}]},
            {"name": "other", "route": [{"destination": {"host": "x"}}]}]}});
        istio_set_weights(&mut vs, &["primary".into()], "s", "c", 10).unwrap();
        let dests = vs["spec"]["http"][0]["route"].as_array().unwrap();
        assert_eq!(dests.len(), 2);
        assert_eq!(dests[0]["weight"], 90);
        assert_eq!(dests[1]["weight"], 10);
        assert_eq!(
            vs["spec"]["http"][1]["route"][0]["destination"]["host"],
            "x"
        );
        let e = istio_set_weights(&mut vs, &["nope".into()], "s", "c", 10).unwrap_err();
        assert_eq!(
            e,
            "HTTP Route 'nope' is not found in the defined Virtual Service."
        );
        // No names: two routes, both named: refused.
        assert!(istio_set_weights(&mut vs, &[], "s", "c", 10).is_err());
    }

    #[test]
    fn promotion_keeps_the_stables_selector_labels() {
        let stable =
            json!({"spec": {"selector": {"matchLabels": {"app": "web", "track": "stable"}}}});
        let canary = json!({"spec": {"template": {"metadata": {"labels": {"app": "web", "track": "canary", "v": "2"}},
                                                   "spec": {"containers": [{"image": "web:2"}]}}}});
        let t = promoted_template(&stable, &canary);
        assert_eq!(
            t["metadata"]["labels"],
            json!({"app": "web", "track": "stable", "v": "2"})
        );
        assert_eq!(t["spec"]["containers"][0]["image"], "web:2");
    }

    #[test]
    fn nginx_canary_ingress_switches_the_stable_backends() {
        let ing = json!({"metadata": {"name": "web", "namespace": "shop", "annotations": {
            "nginx.ingress.kubernetes.io/canary-weight": "5", "nginx.ingress.kubernetes.io/rewrite-target": "/"}},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "web", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-stable", "port": {"number": 80}}}},
                {"path": "/x", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}]}}]}});
        let c = nginx_canary_ingress(&ing, "web-canary", "web-stable", "web-canary", 0).unwrap();
        assert_eq!(
            c["spec"]["rules"][0]["http"]["paths"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            c["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
            "web-canary"
        );
        assert_eq!(
            c["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"],
            "true"
        );
        assert_eq!(
            c["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"],
            "0"
        );
        assert_eq!(
            c["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"],
            "/"
        );
        assert_eq!(c["spec"]["ingressClassName"], "nginx");
        assert_eq!(nginx_weight(&c), Some(0));
    }

    #[test]
    fn progress_round_trips_through_its_annotation_without_calls() {
        let mut p = Progress::healthy("abc", 5, "ok");
        p.step = 3;
        p.seq = 7;
        p.enter(Stage::Step, 9);
        p.call(Call {
            t: 1,
            method: "PUT".into(),
            path: "/x".into(),
            code: 200,
            what: "w".into(),
        });
        let back = Progress::from_annotation(&p.annotation()).unwrap();
        assert_eq!(back.core(), p.core());
        assert_eq!((back.seq, back.message.as_str()), (7, "ok"));
        assert!(back.calls.is_empty());
        assert!(Progress::from_annotation("{\"phase\": \"sideways\"}")
            .unwrap_err()
            .contains("sideways"));
    }

    #[test]
    fn verbs_round_trip_and_unknown_ones_are_named() {
        for v in Verb::ALL {
            assert_eq!(v.as_str().parse::<Verb>(), Ok(v));
        }
        assert!("rollback"
            .parse::<Verb>()
            .unwrap_err()
            .contains("\"rollback\""));
    }
}
