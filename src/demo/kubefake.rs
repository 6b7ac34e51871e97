//! A stand-in Kubernetes API server that holds objects and answers like
//! the real one, for `augur demo --strategy` and the rollout tests: GET,
//! PUT (409 Conflict on a stale `metadata.resourceVersion`), merge patch,
//! the Deployment `scale` subresource, POST to a collection; every write
//! bumps `resourceVersion`, a spec change bumps `metadata.generation`. A
//! loop plays the controllers: Deployments become available a moment
//! after their spec changes (unless held back), HTTPRoutes are accepted by
//! their Gateway at the current generation (unless held back). Every
//! request is recorded (method, path, content type, body).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::standins::{merge_patch, received, Received, Recorder};

/// How long a changed Deployment takes to become available.
const ROLL_TIME: Duration = Duration::from_millis(300);

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, Value>,
    changed: HashMap<String, Instant>,
    rv: u64,
    conflicts: HashMap<String, u32>,
    never_available: HashSet<String>,
    hold_routes: bool,
    requests: Vec<(SystemTime, Received)>,
}

/// The stand-in API server.
#[derive(Clone)]
pub struct FakeKube {
    inner: Arc<Mutex<Inner>>,
    rec: Option<Recorder>,
    /// Where it listens.
    pub addr: SocketAddr,
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
        .to_string(),
    )
        .into_response()
}

fn ok(v: &Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// `resource.group "name"` for messages, from an API path.
fn what(path: &str) -> String {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, resource, name) = match parts.as_slice() {
        ["api", _, "namespaces", _, r, n, ..] => (String::new(), *r, *n),
        ["apis", g, _, "namespaces", _, r, n, ..] => (format!(".{g}"), *r, *n),
        _ => (String::new(), "object", "?"),
    };
    format!("{resource}{group} \"{name}\"")
}

impl Inner {
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// Stores `obj` at `path` as a write: new resourceVersion, generation
    /// bumped when the spec changed.
    fn store(&mut self, path: &str, mut obj: Value) -> Value {
        let old = self.objects.get(path).cloned();
        let generation = match &old {
            None => 1,
            Some(o) if o["spec"] != obj["spec"] => {
                o["metadata"]["generation"].as_i64().unwrap_or(1) + 1
            }
            Some(o) => o["metadata"]["generation"].as_i64().unwrap_or(1),
        };
        if old.as_ref().is_none_or(|o| o["spec"] != obj["spec"]) {
            self.changed.insert(path.to_string(), Instant::now());
        }
        if let Some(o) = &old {
            // Writes to the main resource leave status alone.
            obj["status"] = o["status"].clone();
            if obj["status"].is_null() {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        obj["metadata"]["generation"] = json!(generation);
        self.objects.insert(path.to_string(), obj.clone());
        obj
    }

    /// The controllers' part: Deployments roll, routes get accepted.
    fn play_controllers(&mut self) {
        let now = Instant::now();
        let paths: Vec<String> = self.objects.keys().cloned().collect();
        for p in paths {
            let settled = self
                .changed
                .get(&p)
                .is_none_or(|t| now.duration_since(*t) >= ROLL_TIME);
            let hold_routes = self.hold_routes;
            let never = self.never_available.clone();
            let Some(o) = self.objects.get_mut(&p) else {
                continue;
            };
            let generation = o["metadata"]["generation"].clone();
            if p.contains("/deployments/") && settled {
                let n = o["spec"]["replicas"].as_i64().unwrap_or(1);
                let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
                let available = if never.contains(&name) { 0 } else { n };
                let st = json!({"observedGeneration": generation, "replicas": n, "updatedReplicas": n,
                                "readyReplicas": available, "availableReplicas": available});
                if o["status"] != st {
                    o["status"] = st;
                }
            }
            if p.contains("/httproutes/") && settled && !hold_routes {
                let parents: Vec<Value> = o["spec"]["parentRefs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        json!({"parentRef": r, "controllerName": "example.net/gateway-controller",
                        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                                        "observedGeneration": generation}]})
                    })
                    .collect();
                o["status"] = json!({"parents": parents});
            }
        }
    }
}

impl FakeKube {
    /// Starts the server on loopback; requests are also sent to `rec`.
    pub async fn start(
        rec: Option<Recorder>,
        token: CancellationToken,
    ) -> std::io::Result<FakeKube> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let handler_inner = inner.clone();
        let handler_rec = rec.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                let (inner, rec) = (handler_inner.clone(), handler_rec.clone());
                async move {
                    let r = received("kubernetes", &method, &uri, &headers, &body);
                    if let Some(rec) = &rec {
                        rec.record(r.clone());
                    }
                    let mut i = inner.lock();
                    i.requests.push((SystemTime::now(), r.clone()));
                    Self::answer(&mut i, &method, uri.path(), &r.content_type, &r.body)
                }
            },
        );
        let addr = super::listen(app, token.clone()).await?;
        let play = inner.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => play.lock().play_controllers(),
                }
            }
        });
        Ok(FakeKube { inner, rec, addr })
    }

    fn answer(
        i: &mut Inner,
        method: &Method,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> Response {
        let json_types = ["application/json"];
        let patch_types = [
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ];
        if *method == Method::GET {
            return match i.objects.get(path) {
                Some(o) => ok(o),
                None => status(404, "NotFound", &format!("{} not found", what(path))),
            };
        }
        if *method == Method::PUT {
            if !json_types.contains(&content_type) {
                return status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/json (got {content_type:?})"));
            }
            let Some(stored) = i.objects.get(path).cloned() else {
                return status(404, "NotFound", &format!("{} not found", what(path)));
            };
            let left = i.conflicts.get(path).copied().unwrap_or(0);
            let stale =
                body["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"];
            if left > 0 || stale {
                if left > 0 {
                    i.conflicts.insert(path.to_string(), left - 1);
                    // Someone else wrote in between: the version moves on.
                    let rv = i.next_rv();
                    if let Some(o) = i.objects.get_mut(path) {
                        o["metadata"]["resourceVersion"] = json!(rv);
                    }
                }
                return status(409, "Conflict", &format!("Operation cannot be fulfilled on {}: the object has been modified; please apply your changes to the latest version and try again", what(path)));
            }
            let stored = i.store(path, body.clone());
            return ok(&stored);
        }
        if *method == Method::PATCH {
            if !patch_types.contains(&content_type) {
                return status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"));
            }
            if let Some(parent) = path.strip_suffix("/scale") {
                let Some(mut d) = i.objects.get(parent).cloned() else {
                    return status(404, "NotFound", &format!("{} not found", what(parent)));
                };
                let Some(n) = body["spec"]["replicas"].as_i64() else {
                    return status(
                        422,
                        "Invalid",
                        "Scale.autoscaling \"\" is invalid: spec.replicas: Required value",
                    );
                };
                d["spec"]["replicas"] = json!(n);
                let d = i.store(parent, d);
                return ok(&json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {"name": d["metadata"]["name"], "namespace": d["metadata"]["namespace"],
                                 "resourceVersion": d["metadata"]["resourceVersion"]},
                    "spec": {"replicas": n}, "status": {"replicas": d["status"]["replicas"]}}));
            }
            let Some(mut o) = i.objects.get(path).cloned() else {
                return status(404, "NotFound", &format!("{} not found", what(path)));
            };
            merge_patch(&mut o, body);
            let o = i.store(path, o);
            return ok(&o);
        }
        if *method == Method::POST {
            let name = body["metadata"]["name"].as_str().unwrap_or("");
            let target = format!("{path}/{name}");
            if name.is_empty() {
                return status(
                    422,
                    "Invalid",
                    "metadata.name: Required value: name or generateName is required",
                );
            }
            if i.objects.contains_key(&target) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("{} already exists", what(&target)),
                );
            }
            let o = i.store(&target, body.clone());
            return (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                o.to_string(),
            )
                .into_response();
        }
        status(
            405,
            "MethodNotAllowed",
            &format!("{method} is not supported here"),
        )
    }

    /// Creates or replaces an object as a user would (`kubectl apply`).
    pub fn apply(&self, path: &str, obj: Value) {
        self.inner.lock().store(path, obj);
    }

    /// Changes an object as a user would (`kubectl edit`).
    pub fn edit(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut i = self.inner.lock();
        if let Some(mut o) = i.objects.get(path).cloned() {
            f(&mut o);
            i.store(path, o);
        }
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.inner.lock().objects.get(path).cloned()
    }

    /// The next `n` PUTs to `path` get 409 (another writer got there first).
    pub fn conflict_next(&self, path: &str, n: u32) {
        self.inner.lock().conflicts.insert(path.to_string(), n);
    }

    /// Holds a Deployment's pods unavailable (or lets them come up).
    pub fn never_available(&self, deployment: &str, never: bool) {
        let mut i = self.inner.lock();
        if never {
            i.never_available.insert(deployment.to_string());
        } else {
            i.never_available.remove(deployment);
        }
    }

    /// Holds HTTPRoutes unaccepted by their Gateway (or lets it accept them).
    pub fn hold_routes(&self, hold: bool) {
        self.inner.lock().hold_routes = hold;
    }

    /// Every request so far, with when it arrived.
    pub fn requests(&self) -> Vec<(SystemTime, Received)> {
        self.inner.lock().requests.clone()
    }

    /// Whether requests are also printed live.
    pub fn recording(&self) -> bool {
        self.rec.is_some()
    }
}

/// A Deployment `name` with `replicas`, pod labels `labels` (its selector
/// too, unless `selector` names fewer) and container image `image`.
pub fn deployment(
    namespace: &str,
    name: &str,
    replicas: u32,
    labels: &Value,
    selector: &Value,
    image: &str,
) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    })
}
