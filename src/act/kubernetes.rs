//! The Kubernetes sink: the requests `kubectl argo rollouts` and kubectl
//! send, through the `kube` client (kubeconfig, in-cluster service account,
//! or an explicit API server URL). All patches are JSON merge patches
//! (`application/merge-patch+json`).
//!
//! - Argo Rollouts (`pkg/kubectl-argo-rollouts/cmd/abort`, `promote`):
//!   abort = `{"status":{"abort":true}}` on the `status` subresource,
//!   falling back to the main resource only on 404; promote = refuse when
//!   `status.abort` is set, `{"spec":{"paused":false}}` when paused, then
//!   `{"status":{"pauseConditions":null}}` (status first); pause/resume =
//!   `spec.paused` on the main resource.
//! - Flagger Canaries: promote = `spec.skipAnalysis: true`; pause/resume =
//!   `spec.suspend`; abort goes through augur's `rollback` webhook answer
//!   (the dispatcher opens the rollback gate).
//! - Deployments: pause/resume = `spec.paused`; abort = scale the canary
//!   Deployment to 0 through the `scale` subresource; promote = unpause.

use axum::http::{Method, Request};
use serde_json::{json, Value};

use crate::config::KubernetesSink;

/// Why a Kubernetes action failed, and whether a retry can help.
#[derive(Debug)]
pub struct KubeFailure {
    /// What happened.
    pub message: String,
    /// 409, 429, 5xx and transport errors are worth retrying.
    pub retryable: bool,
}

/// The client for a sink.
pub async fn client(sink: &KubernetesSink) -> Result<kube::Client, KubeFailure> {
    let cfg = match &sink.api_server {
        Some(url) => {
            let uri: axum::http::Uri = url.parse().map_err(|e| KubeFailure {
                message: format!("api_server {url:?}: {e}"),
                retryable: false,
            })?;
            let mut c = kube::Config::new(uri);
            c.default_namespace = "default".into();
            c.accept_invalid_certs = sink.insecure;
            if let Some(f) = &sink.token_file {
                c.auth_info.token_file = Some(f.display().to_string());
            }
            c
        }
        None => kube::Config::infer().await.map_err(|e| KubeFailure {
            message: format!("no Kubernetes configuration (kubeconfig or in-cluster): {e}"),
            retryable: true,
        })?,
    };
    kube::Client::try_from(cfg).map_err(|e| KubeFailure {
        message: format!("cannot build a Kubernetes client: {e}"),
        retryable: false,
    })
}

/// One API call as recorded in the action's response.
#[derive(Debug, Clone)]
pub struct Call {
    /// HTTP method.
    pub method: &'static str,
    /// Path.
    pub path: String,
    /// Patch body, if any.
    pub body: Option<Value>,
    /// Answer code (200 on success).
    pub code: u16,
}

struct Api<'a> {
    client: &'a kube::Client,
    calls: Vec<Call>,
}

impl Api<'_> {
    async fn call(
        &mut self,
        method: Method,
        path: String,
        body: Option<Value>,
    ) -> Result<Value, (u16, String)> {
        let mut req = Request::builder().method(method.clone()).uri(&path);
        let bytes = match &body {
            Some(b) => {
                req = req.header("Content-Type", "application/merge-patch+json");
                serde_json::to_vec(b).unwrap_or_default()
            }
            None => Vec::new(),
        };
        let m: &'static str = if method == Method::PATCH {
            "PATCH"
        } else {
            "GET"
        };
        let req = req.body(bytes).map_err(|e| (0, e.to_string()))?;
        match self.client.request_text(req).await {
            Ok(text) => {
                self.calls.push(Call {
                    method: m,
                    path,
                    body,
                    code: 200,
                });
                Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(kube::Error::Api(e)) => {
                self.calls.push(Call {
                    method: m,
                    path,
                    body,
                    code: e.code,
                });
                Err((
                    e.code,
                    format!("{} {}", e.reason, e.message).trim().to_string(),
                ))
            }
            Err(e) => {
                self.calls.push(Call {
                    method: m,
                    path,
                    body,
                    code: 0,
                });
                Err((0, e.to_string()))
            }
        }
    }

    async fn patch(&mut self, path: String, body: Value) -> Result<Value, (u16, String)> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// kubectl-argo-rollouts' status-first patch: the status subresource,
    /// and the main resource only when the subresource does not exist.
    async fn patch_status_first(
        &mut self,
        path: &str,
        body: Value,
    ) -> Result<Value, (u16, String)> {
        match self.patch(format!("{path}/status"), body.clone()).await {
            Err((404, _)) => self.patch(path.to_string(), body).await,
            other => other,
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

/// Carries out `decision` on `namespace/name`; returns the calls made.
pub async fn act(
    client: &kube::Client,
    target: &str,
    namespace: &str,
    name: &str,
    decision: &str,
) -> Result<Vec<Call>, (Vec<Call>, KubeFailure)> {
    let mut api = Api {
        client,
        calls: Vec::new(),
    };
    let r = run(&mut api, target, namespace, name, decision).await;
    match r {
        Ok(()) => Ok(api.calls),
        Err(f) => Err((api.calls, f)),
    }
}

async fn run(
    api: &mut Api<'_>,
    target: &str,
    ns: &str,
    name: &str,
    decision: &str,
) -> Result<(), KubeFailure> {
    match target {
        "argo-rollout" => {
            let path = format!("/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}");
            match decision {
                "abort" => {
                    api.patch_status_first(&path, json!({"status": {"abort": true}}))
                        .await
                        .map_err(failure)?;
                }
                "promote" => {
                    let ro = api
                        .call(Method::GET, path.clone(), None)
                        .await
                        .map_err(failure)?;
                    if ro["status"]["abort"] == json!(true) {
                        return Err(KubeFailure {
                            message:
                                "refusing to promote an aborted rollout (status.abort is true)"
                                    .into(),
                            retryable: false,
                        });
                    }
                    if ro["spec"]["paused"] == json!(true) {
                        api.patch(path.clone(), json!({"spec": {"paused": false}}))
                            .await
                            .map_err(failure)?;
                    }
                    api.patch_status_first(&path, json!({"status": {"pauseConditions": null}}))
                        .await
                        .map_err(failure)?;
                }
                "pause" => {
                    api.patch(path, json!({"spec": {"paused": true}}))
                        .await
                        .map_err(failure)?;
                }
                _ => {
                    api.patch(path, json!({"spec": {"paused": false}}))
                        .await
                        .map_err(failure)?;
                }
            }
        }
        "flagger-canary" => {
            let path = format!("/apis/flagger.app/v1beta1/namespaces/{ns}/canaries/{name}");
            let body = match decision {
                "promote" => json!({"spec": {"skipAnalysis": true}}),
                "pause" => json!({"spec": {"suspend": true}}),
                "resume" => json!({"spec": {"suspend": false}}),
                _ => unreachable!("abort goes through the rollback gate"),
            };
            api.patch(path, body).await.map_err(failure)?;
        }
        "deployment" => {
            let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
            match decision {
                "abort" => {
                    api.patch(format!("{path}/scale"), json!({"spec": {"replicas": 0}}))
                        .await
                        .map_err(failure)?;
                }
                "pause" => {
                    api.patch(path, json!({"spec": {"paused": true}}))
                        .await
                        .map_err(failure)?;
                }
                _ => {
                    api.patch(path, json!({"spec": {"paused": false}}))
                        .await
                        .map_err(failure)?;
                }
            }
        }
        other => {
            return Err(KubeFailure {
                message: format!("unknown Kubernetes target {other:?}"),
                retryable: false,
            })
        }
    }
    Ok(())
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
