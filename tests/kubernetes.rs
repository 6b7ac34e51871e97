//! Kubernetes actions against an in-test API server that answers like the
//! real one (Status objects, 404 for a missing status subresource, 409
//! conflicts) and records every request: method, path, content type and
//! body are the ones `kubectl argo rollouts abort/promote` and kubectl send.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use common::{config_for, eventually, Daemon, TestTarget};
use serde_json::{json, Value};

#[derive(Clone, Debug)]
struct Req {
    method: Method,
    path: String,
    content_type: String,
    body: Value,
}

#[derive(Clone, Default)]
struct ApiServer {
    requests: Arc<Mutex<Vec<Req>>>,
    conflicts: Arc<Mutex<HashMap<String, u32>>>,
}

fn status(code: u16, reason: &str, message: &str) -> axum::response::Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
        .to_string(),
    )
        .into_response()
}

async fn start_api() -> (std::net::SocketAddr, ApiServer) {
    let api = ApiServer::default();
    api.conflicts.lock().unwrap().insert(
        "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/flaky".into(),
        1,
    );
    let a = api.clone();
    let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
        let a = a.clone();
        async move {
            let path = uri.path().to_string();
            a.requests.lock().unwrap().push(Req {
                method: method.clone(),
                path: path.clone(),
                content_type: headers.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default(),
                body: serde_json::from_str(&body).unwrap_or(Value::Null),
            });
            let rollouts = "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/";
            if let Some(rest) = path.strip_prefix(rollouts) {
                let name = rest.split('/').next().unwrap();
                if name == "ghost" {
                    return status(404, "NotFound", "rollouts.argoproj.io \"ghost\" not found");
                }
                if method == Method::GET {
                    let obj = match name {
                        "web" => json!({"kind": "Rollout", "metadata": {"name": "web"}, "spec": {"paused": true}, "status": {"abort": false, "pauseConditions": [{"reason": "CanaryPauseStep"}]}}),
                        "aborted" => json!({"kind": "Rollout", "metadata": {"name": "aborted"}, "spec": {}, "status": {"abort": true}}),
                        _ => return status(404, "NotFound", &format!("rollouts.argoproj.io \"{name}\" not found")),
                    };
                    return (StatusCode::OK, [("content-type", "application/json")], obj.to_string()).into_response();
                }
                if name == "legacy" && rest.ends_with("/status") {
                    return status(404, "NotFound", "the server could not find the requested resource");
                }
                let left = a.conflicts.lock().unwrap().get(&path).copied().unwrap_or(0);
                if left > 0 {
                    a.conflicts.lock().unwrap().insert(path.clone(), left - 1);
                    return status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again");
                }
            }
            (StatusCode::OK, [("content-type", "application/json")], json!({"kind": "Object"}).to_string()).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, api)
}

async fn decide(d: &Daemon, ns: &str, name: &str, decision: &str) {
    let r = reqwest::Client::new()
        .post(d.url(&format!("/api/v1/rollouts/{ns}/{name}/{decision}")))
        .json(&json!({"revision": "r1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
}

async fn settled(d: &Daemon, key_prefix: &str) -> Vec<Value> {
    eventually(20, &format!("actions of {key_prefix}"), || async {
        let v = d.get_json("/api/v1/decisions").await;
        let ds = v["data"].as_array().unwrap().clone();
        let dec = ds
            .into_iter()
            .find(|x| x["key"].as_str().unwrap().starts_with(key_prefix))?;
        let acts = dec["actions"].as_array().unwrap().clone();
        acts.iter()
            .all(|a| a["status"] != "pending")
            .then_some(acts)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_canaries_and_deployments_get_kubectls_patches() {
    let (addr, api) = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(common::Reply::text("up 1\n")).await;
    let cfg = format!(
        r#"[actions]
max_backoff = "100ms"
[[actions.kubernetes]]
name = "argo"
target = "argo-rollout"
api_server = "http://{addr}"
[[actions.kubernetes]]
name = "deploy"
target = "deployment"
api_server = "http://{addr}"
decisions = ["abort", "promote"]
[[actions.kubernetes]]
name = "flagger"
target = "flagger-canary"
api_server = "http://{addr}"
decisions = ["abort", "promote"]
{}"#,
        config_for(&[("x", "", &[t.addr], "")])
    );
    let d = Daemon::start(dir.path(), &cfg);
    let reqs = |path_part: &str| -> Vec<Req> {
        api.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.contains(path_part))
            .cloned()
            .collect()
    };

    // abort: status subresource first; the Deployment scaled to 0 through
    // its scale subresource; Flagger through the rollback gate.
    decide(&d, "shop", "web", "abort").await;
    let acts = settled(&d, "shop/web/r1/abort").await;
    assert!(acts.iter().all(|a| a["status"] == "done"), "{acts:#?}");
    let r = reqs("/rollouts/web");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].method, Method::PATCH);
    assert_eq!(
        r[0].path,
        "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web/status"
    );
    assert_eq!(r[0].content_type, "application/merge-patch+json");
    assert_eq!(r[0].body, json!({"status": {"abort": true}}));
    let s = reqs("/deployments/web");
    assert_eq!(
        (s[0].method.clone(), s[0].path.as_str()),
        (
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop/deployments/web/scale"
        )
    );
    assert_eq!(s[0].content_type, "application/merge-patch+json");
    assert_eq!(s[0].body, json!({"spec": {"replicas": 0}}));
    assert!(
        reqs("/canaries/").is_empty(),
        "Flagger aborts through the rollback hook"
    );
    let r = reqwest::Client::new()
        .post(d.url("/flagger/rollback"))
        .body(r#"{"name":"web","namespace":"shop","phase":"Progressing","checksum":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "Flagger's rollback hook now says roll back"
    );

    // A Rollout without the status subresource: main resource on 404.
    decide(&d, "shop", "legacy", "abort").await;
    settled(&d, "shop/legacy/r1/abort").await;
    let r = reqs("/rollouts/legacy");
    let paths: Vec<&str> = r.iter().map(|x| x.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/legacy/status",
            "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/legacy"
        ]
    );
    assert_eq!(r[1].body, json!({"status": {"abort": true}}));

    // promote: read, unpause the spec, clear pause conditions (status first).
    decide(&d, "shop", "web", "promote").await;
    settled(&d, "shop/web/r1/promote").await;
    let r = reqs("/rollouts/web");
    let calls: Vec<(String, String, Value)> = r[1..]
        .iter()
        .map(|x| (x.method.to_string(), x.path.clone(), x.body.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                "GET".into(),
                "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web".into(),
                Value::Null
            ),
            (
                "PATCH".into(),
                "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web".into(),
                json!({"spec": {"paused": false}})
            ),
            (
                "PATCH".into(),
                "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web/status".into(),
                json!({"status": {"pauseConditions": null}})
            ),
        ]
    );
    let c = reqs("/canaries/web");
    assert_eq!(
        c[0].path,
        "/apis/flagger.app/v1beta1/namespaces/shop/canaries/web"
    );
    assert_eq!(c[0].body, json!({"spec": {"skipAnalysis": true}}));
    assert_eq!(c[0].content_type, "application/merge-patch+json");
    let dep = reqs("/deployments/web");
    assert_eq!(dep.last().unwrap().body, json!({"spec": {"paused": false}}));

    // Never promote an aborted Rollout.
    decide(&d, "shop", "aborted", "promote").await;
    let acts = settled(&d, "shop/aborted/r1/promote").await;
    let argo = acts.iter().find(|a| a["sink"] == "argo").unwrap();
    assert_eq!(argo["status"], "dead");
    assert!(argo["last_error"]
        .as_str()
        .unwrap()
        .contains("refusing to promote an aborted rollout"));
    assert!(reqs("/rollouts/aborted")
        .iter()
        .all(|r| r.method == Method::GET));

    // 409 Conflict is retried.
    decide(&d, "shop", "flaky", "pause").await;
    let acts = settled(&d, "shop/flaky/r1/pause").await;
    let argo = acts.iter().find(|a| a["sink"] == "argo").unwrap();
    assert_eq!(
        (argo["status"].as_str(), argo["attempts"].as_i64()),
        (Some("done"), Some(2))
    );
    let r = reqs("/rollouts/flaky");
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(
        |x| x.body == json!({"spec": {"paused": true}}) && x.path.ends_with("/rollouts/flaky")
    ));
    // A missing Rollout is final.
    decide(&d, "shop", "ghost", "abort").await;
    let acts = settled(&d, "shop/ghost/r1/abort").await;
    let argo = acts.iter().find(|a| a["sink"] == "argo").unwrap();
    assert_eq!(argo["status"], "dead");
    assert!(
        argo["last_error"].as_str().unwrap().starts_with("HTTP 404"),
        "{argo}"
    );
}
