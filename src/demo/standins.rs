//! The demo's stand-ins for the outside world: a Kubernetes API server that
//! holds one Argo Rollout and records every request (answering like the
//! real one), and a webhook receiver for decisions and alerts. Both print
//! what they receive as it arrives.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One request a stand-in received.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Received {
    /// `kubernetes` or `webhook`.
    pub to: &'static str,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `Content-Type`.
    pub content_type: String,
    /// `Idempotency-Key`, if sent.
    pub idempotency_key: Option<String>,
    /// Body (JSON when it parses, else the text).
    pub body: Value,
}

/// What the stand-ins received, in order; each request is also sent on
/// the channel for live printing.
#[derive(Clone)]
pub struct Recorder {
    /// Every request so far.
    pub all: Arc<Mutex<Vec<Received>>>,
    tx: mpsc::UnboundedSender<Received>,
}

impl Recorder {
    /// A recorder and the receiving end of its live feed.
    pub fn new() -> (Recorder, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Recorder {
                all: Arc::default(),
                tx,
            },
            rx,
        )
    }

    pub(crate) fn record(&self, r: Received) {
        self.all.lock().push(r.clone());
        let _ = self.tx.send(r);
    }
}

pub(crate) fn received(
    to: &'static str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &str,
) -> Received {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Received {
        to,
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or(uri.path().to_string(), |p| p.to_string()),
        content_type: header("content-type").unwrap_or_default(),
        idempotency_key: header("idempotency-key"),
        body: serde_json::from_str(body).unwrap_or_else(|_| {
            if body.is_empty() {
                Value::Null
            } else {
                Value::String(body.to_string())
            }
        }),
    }
}

/// The Argo Rollout the demo's canary belongs to: paused at its analysis
/// step, canary pods at `canary_hash`, stable at `stable_hash`.
pub fn rollout(namespace: &str, name: &str, stable_hash: &str, canary_hash: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "generation": 2},
        "spec": {"replicas": 4, "paused": false, "strategy": {"canary": {"steps": [
            {"setWeight": 25}, {"pause": {}}, {"setWeight": 100}]}}},
        "status": {"abort": false, "currentStepIndex": 1,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}],
            "currentPodHash": canary_hash, "stableRS": stable_hash, "phase": "Paused"},
    })
}

/// A Kubernetes API server holding `object` at `path` (and its `status`
/// subresource): GET returns it, merge-patches apply to it, anything else
/// is 404 with a Status object, as the real API server answers.
pub async fn kubernetes(
    path: String,
    object: Value,
    rec: Recorder,
    token: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let object = Arc::new(Mutex::new(object));
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let (rec, object, path) = (rec.clone(), object.clone(), path.clone());
            async move {
                rec.record(received("kubernetes", &method, &uri, &headers, &body));
                let p = uri.path();
                if p != path && p != format!("{path}/status") {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": format!("the server could not find the requested resource ({p})"),
                        "reason": "NotFound", "code": 404});
                    return (
                        StatusCode::NOT_FOUND,
                        [("content-type", "application/json")],
                        status.to_string(),
                    )
                        .into_response();
                }
                let mut o = object.lock();
                if method == Method::PATCH {
                    if let Ok(patch) = serde_json::from_str::<Value>(&body) {
                        merge_patch(&mut o, &patch);
                    }
                }
                (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    o.to_string(),
                )
                    .into_response()
            }
        },
    );
    super::listen(app, token).await
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// A webhook receiver that answers 200 to everything.
pub async fn webhook(rec: Recorder, token: CancellationToken) -> std::io::Result<SocketAddr> {
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let rec = rec.clone();
            async move {
                rec.record(received("webhook", &method, &uri, &headers, &body));
                StatusCode::OK
            }
        },
    );
    super::listen(app, token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut o =
            json!({"spec": {"paused": true, "replicas": 4}, "status": {"pauseConditions": [1]}});
        merge_patch(
            &mut o,
            &json!({"spec": {"paused": false}, "status": {"pauseConditions": null}}),
        );
        assert_eq!(
            o,
            json!({"spec": {"paused": false, "replicas": 4}, "status": {}})
        );
    }
}
