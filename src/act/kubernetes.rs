//! The Kubernetes sink: the requests `kubectl argo rollouts` and kubectl
//! send, through the `kube` client (kubeconfig, in-cluster service account,
//! or an explicit API server URL). All patches are JSON merge patches
//! (`application/merge-patch+json`).
//!
//! - Argo Rollouts (`pkg/kubectl-argo-rollouts/cmd/abort`, `retry`,
//!   `promote`): abort/retry = `{"status":{"abort":true|false}}` on the
//!   `status` subresource, falling back to the main resource only on 404;
//!   promote = refuse when `status.abort` is set, then the status patch
//!   (clear `pauseConditions`, or step past a running analysis step) and
//!   `{"spec":{"paused":false}}` when paused, the unified patch when the
//!   status subresource is missing; promote-full =
//!   `{"status":{"promoteFull":true}}` unless already stable; pause/resume
//!   = `spec.paused` on the main resource.
//! - Flagger Canaries: promote = `spec.skipAnalysis: true`; pause/resume =
//!   `spec.suspend`; abort/rollback go through augur's `rollback` webhook
//!   answer (the dispatcher opens the rollback gate), or with
//!   `abort_with = "failed-checks"` raise `status.failedChecks` to the
//!   analysis threshold (GET, then a merge patch of the status
//!   subresource), which Flagger's scheduler turns into a rollback.
//! - Deployments: pause/resume = `spec.paused`; abort = scale the canary
//!   Deployment to 0 through the `scale` subresource; rollback = `kubectl
//!   rollout undo` (previous ReplicaSet's template, JSON patch); promote =
//!   unpause.

use axum::http::Method;
use serde_json::{json, Value};

use crate::config::{AbortWith, KubeTarget, KubernetesSink};
use crate::decide::Decision;

/// Why a Kubernetes action failed, and whether a retry can help.
#[derive(Debug)]
pub struct KubeFailure {
    /// What happened.
    pub message: String,
    /// 409, 429, 5xx and transport errors are worth retrying.
    pub retryable: bool,
}

/// The client for a sink: its connection, else kubeconfig or the
/// in-cluster service account.
pub async fn client(sink: &KubernetesSink) -> Result<kube::Client, KubeFailure> {
    match &sink.connection {
        Some(conn) => conn.client().await.map_err(|e| KubeFailure {
            message: format!("cannot build a Kubernetes client: {e}"),
            retryable: false,
        }),
        None => {
            let cfg = kube::Config::infer().await.map_err(|e| KubeFailure {
                message: format!("no Kubernetes configuration (kubeconfig or in-cluster): {e}"),
                retryable: true,
            })?;
            kube::Client::try_from(cfg).map_err(|e| KubeFailure {
                message: format!("cannot build a Kubernetes client: {e}"),
                retryable: false,
            })
        }
    }
}

/// One API call as recorded in the action's response.
#[derive(Debug, Clone)]
pub struct Call {
    /// HTTP method.
    pub method: &'static str,
    /// Path (with the query string, if any).
    pub path: String,
    /// Patch body, if any.
    pub body: Option<Value>,
    /// Answer code (200 on success).
    pub code: u16,
}

const MERGE_PATCH: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

struct Api<'a> {
    client: &'a kube::Client,
    calls: Vec<Call>,
}

impl Api<'_> {
    async fn call(
        &mut self,
        method: Method,
        path: String,
        body: Option<(Value, &str)>,
    ) -> Result<Value, (u16, String)> {
        let m: &'static str = if method == Method::PATCH {
            "PATCH"
        } else {
            "GET"
        };
        let result =
            crate::kubeapi::request(self.client, m, &path, body.as_ref().map(|(b, t)| (b, *t)))
                .await;
        let code = match &result {
            Ok(_) => 200,
            Err((c, _)) => *c,
        };
        let body = body.map(|(b, _)| b);
        self.calls.push(Call {
            method: m,
            path,
            body,
            code,
        });
        result
    }

    async fn get(&mut self, path: String) -> Result<Value, KubeFailure> {
        self.call(Method::GET, path, None).await.map_err(failure)
    }

    async fn patch(&mut self, path: String, body: Value) -> Result<Value, (u16, String)> {
        self.call(Method::PATCH, path, Some((body, MERGE_PATCH)))
            .await
    }

    /// kubectl-argo-rollouts' status-first patch: the status subresource,
    /// and `fallback` on the main resource only when the subresource does
    /// not exist (Argo Rollouts before v0.10).
    async fn patch_status_first(
        &mut self,
        path: &str,
        body: Value,
        fallback: Option<Value>,
    ) -> Result<bool, KubeFailure> {
        match self.patch(format!("{path}/status"), body).await {
            Ok(_) => Ok(true),
            Err((404, _)) => {
                if let Some(f) = fallback {
                    self.patch(path.to_string(), f).await.map_err(failure)?;
                }
                Ok(false)
            }
            Err(e) => Err(failure(e)),
        }
    }
}

fn failure((code, msg): (u16, String)) -> KubeFailure {
    KubeFailure {
        retryable: code == 0 || code == 409 || code == 429 || code >= 500,
        message: if code == 0 {
            msg
        } else {
            format!("HTTP {code}: {msg}")
        },
    }
}

fn refuse(message: String) -> KubeFailure {
    KubeFailure {
        message,
        retryable: false,
    }
}

/// Carries out `decision` on `namespace/name`; returns the calls made.
/// With `ha_key` (two replicas under `[ha]`: the action's idempotency key)
/// a repeat by a new leader changes nothing: an Argo abort first reads the
/// Rollout and sends nothing when it is already aborted; a Deployment
/// rollback marks the Deployment with the key (annotation
/// [`UNDO_ANNOTATION`]) and is skipped when the mark is there.
pub async fn act(
    client: &kube::Client,
    sink: &KubernetesSink,
    namespace: &str,
    name: &str,
    decision: Decision,
    ha_key: Option<&str>,
) -> Result<Vec<Call>, (Vec<Call>, KubeFailure)> {
    let fresh_read = ha_key.is_some();
    // Paths are built from these: only checked names reach a URL.
    if let Err(e) =
        crate::names::check_namespace(namespace).and_then(|()| crate::names::check_name(name))
    {
        return Err((Vec::new(), refuse(e)));
    }
    let mut api = Api {
        client,
        calls: Vec::new(),
    };
    // A rolling Deployment has no canary to scale away: undo it instead.
    let decision = if sink.target == KubeTarget::Deployment
        && decision == Decision::Abort
        && sink.abort_with == AbortWith::Rollback
    {
        Decision::Rollback
    } else {
        decision
    };
    let r = match sink.target {
        KubeTarget::ArgoRollout => {
            argo_rollout(&mut api, namespace, name, decision, fresh_read).await
        }
        KubeTarget::FlaggerCanary => flagger_canary(&mut api, namespace, name, decision).await,
        KubeTarget::Deployment => deployment(&mut api, namespace, name, decision, ha_key).await,
    };
    match r {
        Ok(()) => Ok(api.calls),
        Err(f) => Err((api.calls, f)),
    }
}

async fn argo_rollout(
    api: &mut Api<'_>,
    ns: &str,
    name: &str,
    decision: Decision,
    fresh_read: bool,
) -> Result<(), KubeFailure> {
    let path = format!("/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}");
    match decision {
        Decision::Abort if fresh_read => {
            let ro = api.get(path.clone()).await?;
            if ro["status"]["abort"] != json!(true) {
                let body = json!({"status": {"abort": true}});
                api.patch_status_first(&path, body.clone(), Some(body))
                    .await?;
            }
        }
        Decision::Abort | Decision::Retry => {
            // `kubectl argo rollouts abort` / `retry rollout`.
            let body = json!({"status": {"abort": decision == Decision::Abort}});
            api.patch_status_first(&path, body.clone(), Some(body))
                .await?;
        }
        Decision::Promote | Decision::PromoteFull => {
            let ro = api.get(path.clone()).await?;
            if ro["status"]["abort"] == json!(true) {
                return Err(refuse(
                    "refusing to promote an aborted rollout (status.abort is true); retry it first"
                        .into(),
                ));
            }
            if decision == Decision::PromoteFull {
                // `promote --full`: nothing to do once the stable hash is
                // already the current one; no main-resource fallback.
                if ro["status"]["currentPodHash"] != ro["status"]["stableRS"] {
                    api.patch_status_first(&path, json!({"status": {"promoteFull": true}}), None)
                        .await?;
                }
                return Ok(());
            }
            let (status, unified) = promote_patches(&ro);
            let mut spec =
                (ro["spec"]["paused"] == json!(true)).then(|| json!({"spec": {"paused": false}}));
            if let Some(status) = status {
                if !api.patch_status_first(&path, status, None).await? {
                    spec = Some(unified);
                }
            }
            if let Some(spec) = spec {
                api.patch(path, spec).await.map_err(failure)?;
            }
        }
        Decision::Pause | Decision::Resume => {
            api.patch(
                path,
                json!({"spec": {"paused": decision == Decision::Pause}}),
            )
            .await
            .map_err(failure)?;
        }
        other => {
            return Err(refuse(format!(
            "an Argo Rollout cannot {other}; use abort (Argo rolls back to the stable ReplicaSet)"
        )))
        }
    }
    Ok(())
}

/// `kubectl argo rollouts promote`'s status patch and the unified patch
/// used when the status subresource is missing: clear the pause
/// conditions, or, for a canary in the middle of an analysis or
/// experiment step without pause conditions, move to the next step (never
/// both).
fn promote_patches(ro: &Value) -> (Option<Value>, Value) {
    let unpaused = json!({"spec": {"paused": false}, "status": {"pauseConditions": null}});
    let has_conditions = ro["status"]["pauseConditions"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    if has_conditions {
        return (Some(json!({"status": {"pauseConditions": null}})), unpaused);
    }
    let steps = ro["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .map_or(0, |s| s.len() as i64);
    if steps == 0 {
        return (None, unpaused);
    }
    let mut index = ro["status"]["currentStepIndex"].as_i64().unwrap_or(0);
    if index < steps {
        index += 1;
    }
    (
        Some(json!({"status": {"pauseConditions": null, "currentStepIndex": index}})),
        json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": index}}),
    )
}

async fn flagger_canary(
    api: &mut Api<'_>,
    ns: &str,
    name: &str,
    decision: Decision,
) -> Result<(), KubeFailure> {
    let path = format!("/apis/flagger.app/v1beta1/namespaces/{ns}/canaries/{name}");
    if matches!(decision, Decision::Abort | Decision::Rollback) {
        // `abort_with = "failed-checks"` (the gate needs no API call): the
        // fluxcd/flagger#1467 answer. Flagger's scheduler rolls back a
        // Progressing or WaitingPromotion canary once `status.failedChecks`
        // reaches GetAnalysisThreshold() (`threshold`, 1 when unset).
        let cd = api.get(path.clone()).await?;
        let analysis = if cd["spec"]["analysis"].is_object() {
            &cd["spec"]["analysis"]
        } else {
            &cd["spec"]["canaryAnalysis"]
        };
        let threshold = analysis["threshold"]
            .as_i64()
            .filter(|t| *t > 0)
            .unwrap_or(1);
        let current = cd["status"]["failedChecks"].as_i64().unwrap_or(0);
        api.patch(
            format!("{path}/status"),
            json!({"status": {"failedChecks": threshold.max(current)}}),
        )
        .await
        .map_err(failure)?;
        return Ok(());
    }
    let body = match decision {
        Decision::Promote | Decision::PromoteFull => json!({"spec": {"skipAnalysis": true}}),
        Decision::Pause => json!({"spec": {"suspend": true}}),
        Decision::Resume => json!({"spec": {"suspend": false}}),
        other => {
            return Err(refuse(format!(
                "a Flagger Canary cannot {other} through the API; Flagger retries by itself on the next revision"
            )))
        }
    };
    api.patch(path, body).await.map_err(failure)?;
    Ok(())
}

async fn deployment(
    api: &mut Api<'_>,
    ns: &str,
    name: &str,
    decision: Decision,
    ha_key: Option<&str>,
) -> Result<(), KubeFailure> {
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
    match decision {
        Decision::Abort => {
            api.patch(format!("{path}/scale"), json!({"spec": {"replicas": 0}}))
                .await
                .map_err(failure)?;
        }
        Decision::Rollback => undo(api, ns, name, &path, ha_key).await?,
        Decision::Pause => {
            api.patch(path, json!({"spec": {"paused": true}}))
                .await
                .map_err(failure)?;
        }
        Decision::Promote | Decision::PromoteFull | Decision::Resume => {
            api.patch(path, json!({"spec": {"paused": false}}))
                .await
                .map_err(failure)?;
        }
        other => {
            return Err(refuse(format!(
                "a Deployment cannot {other}; use rollback (kubectl rollout undo) or abort (scale to 0)"
            )))
        }
    }
    Ok(())
}

/// Annotations kept from the Deployment, never copied from the ReplicaSet
/// (kubectl's `annotationsToSkip`).
const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

const HASH_LABEL: &str = "pod-template-hash";

/// What `kubectl rollout undo deployment/NAME` does: find the ReplicaSet
/// with the second-highest revision among those the Deployment controls,
/// and put its pod template (without the hash label) and annotations back
/// with a JSON patch.
/// Marks a Deployment rolled back by an action under `[ha]` (the value is
/// the action's idempotency key), so a new leader does not undo twice.
pub const UNDO_ANNOTATION: &str = "augur.dev/undone-by";

async fn undo(
    api: &mut Api<'_>,
    ns: &str,
    name: &str,
    path: &str,
    ha_key: Option<&str>,
) -> Result<(), KubeFailure> {
    let dep = api.get(path.to_string()).await?;
    if ha_key.is_some() && dep["metadata"]["annotations"][UNDO_ANNOTATION].as_str() == ha_key {
        // The previous leader made this very rollback.
        return Ok(());
    }
    let selector = label_selector(&dep["spec"]["selector"]);
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("labelSelector", &selector)
        .finish();
    let list = api
        .get(format!("/apis/apps/v1/namespaces/{ns}/replicasets?{q}"))
        .await?;
    let uid = &dep["metadata"]["uid"];
    let owned = list["items"].as_array().into_iter().flatten().filter(|rs| {
        rs["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["controller"] == json!(true) && &o["uid"] == uid)
    });
    type Revision<'a> = (i64, Option<&'a Value>);
    let (mut latest, mut previous): (Revision, Revision) = ((-1, None), (-1, None));
    for rs in owned {
        let revision =
            match rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str() {
                None => 0,
                Some(v) => match v.parse::<i64>() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
        if latest.0 < revision {
            previous = latest;
            latest = (revision, Some(rs));
        } else if previous.0 < revision {
            previous = (revision, Some(rs));
        }
    }
    let Some(rs) = previous.1 else {
        return Err(refuse(format!(
            "no rollout history found for deployment {name:?}"
        )));
    };
    if dep["spec"]["paused"] == json!(true) {
        return Err(refuse(format!(
            "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume deployment/{name}' and try again"
        )));
    }
    let without_hash = |t: &Value| {
        let mut t = t.clone();
        if let Some(l) = t["metadata"]["labels"].as_object_mut() {
            l.remove(HASH_LABEL);
        }
        t
    };
    let template = without_hash(&rs["spec"]["template"]);
    if template == without_hash(&dep["spec"]["template"]) {
        // kubectl reports "skipped rollback": nothing to send.
        return Ok(());
    }
    let mut annotations = serde_json::Map::new();
    for k in ANNOTATIONS_TO_SKIP {
        if let Some(v) = dep["metadata"]["annotations"].get(k) {
            annotations.insert(k.to_string(), v.clone());
        }
    }
    if let Some(a) = rs["metadata"]["annotations"].as_object() {
        for (k, v) in a {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(k) = ha_key {
        annotations.insert(UNDO_ANNOTATION.to_string(), json!(k));
    }
    let patch = json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    api.call(Method::PATCH, path.to_string(), Some((patch, JSON_PATCH)))
        .await
        .map_err(failure)?;
    Ok(())
}

/// A `metav1.LabelSelector` as the `labelSelector` query parameter.
fn label_selector(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

/// The calls as JSON for the action's response and the audit log.
pub fn calls_json(calls: &[Call]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| json!({"method": c.method, "path": c.path, "body": c.body, "code": c.code}))
            .collect(),
    )
}
