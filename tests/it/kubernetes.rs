//! Kubernetes actions against an in-test API server that answers like the
//! real one (Status objects, 404 for a missing status subresource, 409
//! conflicts) and records every request: method, path, content type and
//! body are the ones `kubectl argo rollouts abort/promote` and kubectl send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::common::{config_for, eventually, Daemon, TestTarget};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
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
                        // Mid-way through an analysis step: no pause conditions.
                        "stepping" => json!({"kind": "Rollout", "metadata": {"name": "stepping"}, "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"analysis": {}}, {"setWeight": 50}]}}}, "status": {"currentStepIndex": 1, "currentPodHash": "abc", "stableRS": "old"}}),
                        "stable" => json!({"kind": "Rollout", "metadata": {"name": "stable"}, "spec": {}, "status": {"currentPodHash": "abc", "stableRS": "abc"}}),
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
            if let Some(name) = path.strip_prefix("/apis/flagger.app/v1beta1/namespaces/shop/canaries/") {
                if method == Method::GET {
                    let obj = match name {
                        "podinfo" => json!({"kind": "Canary", "metadata": {"name": "podinfo"}, "spec": {"analysis": {"threshold": 5, "interval": "1m"}}, "status": {"phase": "Progressing", "failedChecks": 2}}),
                        "legacyc" => json!({"kind": "Canary", "metadata": {"name": "legacyc"}, "spec": {"canaryAnalysis": {"threshold": 3}}, "status": {"phase": "Progressing", "failedChecks": 0}}),
                        "nothreshold" => json!({"kind": "Canary", "metadata": {"name": "nothreshold"}, "spec": {"analysis": {}}, "status": {"phase": "WaitingPromotion"}}),
                        _ => return status(404, "NotFound", &format!("canaries.flagger.app \"{name}\" not found")),
                    };
                    return (StatusCode::OK, [("content-type", "application/json")], obj.to_string()).into_response();
                }
            }
            if path == "/apis/apps/v1/namespaces/shop/deployments/api-undone" && method == Method::GET {
                // Rolled back already by a previous leader (under [ha]).
                let mut d = deployment();
                d["metadata"]["annotations"]["augur.dev/undone-by"] = json!("shop/api-undone/r1/rollback/deploy");
                return (StatusCode::OK, [("content-type", "application/json")], d.to_string()).into_response();
            }
            if path == "/apis/apps/v1/namespaces/shop/deployments/api" && method == Method::GET {
                return (StatusCode::OK, [("content-type", "application/json")], deployment().to_string()).into_response();
            }
            if path == "/apis/apps/v1/namespaces/shop/replicasets" {
                let q = uri.query().unwrap_or("");
                let want: String = form_urlencoded::Serializer::new(String::new()).append_pair("labelSelector", "app=api,tier in (web)").finish();
                if q != want {
                    return status(400, "BadRequest", &format!("unexpected query {q}"));
                }
                return (StatusCode::OK, [("content-type", "application/json")], replicasets().to_string()).into_response();
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

fn template(image: &str, hash: Option<&str>) -> Value {
    let mut labels = json!({"app": "api", "tier": "web"});
    if let Some(h) = hash {
        labels["pod-template-hash"] = json!(h);
    }
    json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "api", "image": image}]}})
}

/// A Deployment at revision 3 (image v3) whose history is v1 (revision 1),
/// v2 (revision 2) and an orphan ReplicaSet that must be ignored.
fn deployment() -> Value {
    json!({"kind": "Deployment", "metadata": {"name": "api", "uid": "dep-uid",
        "annotations": {"deployment.kubernetes.io/revision": "3", "team": "checkout"}},
        "spec": {"selector": {"matchLabels": {"app": "api"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]},
            "template": template("shop/api:v3", None)}})
}

fn replicasets() -> Value {
    let rs = |name: &str, rev: &str, image: &str, hash: &str, owner: &str| {
        json!({"metadata": {"name": name,
            "annotations": {"deployment.kubernetes.io/revision": rev, "deployment.kubernetes.io/desired-replicas": "3", "team": "payments", "note": name},
            "ownerReferences": [{"kind": "Deployment", "name": "api", "uid": owner, "controller": true}]},
            "spec": {"template": template(image, Some(hash))}})
    };
    json!({"kind": "ReplicaSetList", "items": [
        rs("api-1", "1", "shop/api:v1", "h1", "dep-uid"),
        rs("api-3", "3", "shop/api:v3", "h3", "dep-uid"),
        rs("api-2", "2", "shop/api:v2", "h2", "dep-uid"),
        rs("other-9", "9", "shop/other:v9", "h9", "another-uid"),
    ]})
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
    let t = TestTarget::start(crate::common::Reply::text("up 1\n")).await;
    let cfg = format!(
        r#"[actions]
max_backoff = "100ms"
rate_limit_per_minute = 600
[[actions.kubernetes]]
name = "argo"
target = "argo-rollout"
api_server = "http://{addr}"
[[actions.kubernetes]]
name = "deploy"
target = "deployment"
api_server = "http://{addr}"
decisions = ["abort", "promote", "rollback"]
[[actions.kubernetes]]
name = "elsewhere"
target = "deployment"
api_server = "http://{addr}"
rollouts = ["prod/*", "*/checkout"]
[[actions.kubernetes]]
name = "rolling"
target = "deployment"
api_server = "http://{addr}"
decisions = ["abort"]
abort_with = "rollback"
[[actions.kubernetes]]
name = "flagger"
target = "flagger-canary"
api_server = "http://{addr}"
decisions = ["abort", "promote", "rollback"]
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
    // A sink limited to other rollouts gets no action at all.
    assert!(acts.iter().all(|a| a["sink"] != "elsewhere"), "{acts:#?}");
    // (the "rolling" sink finds no history for web: checked below for api)
    assert!(
        acts.iter()
            .filter(|a| a["sink"] != "rolling")
            .all(|a| a["status"] == "done"),
        "{acts:#?}"
    );
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

    // promote: read, clear pause conditions (status first), then unpause
    // the spec, in kubectl-argo-rollouts' order.
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
                "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web/status".into(),
                json!({"status": {"pauseConditions": null}})
            ),
            (
                "PATCH".into(),
                "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web".into(),
                json!({"spec": {"paused": false}})
            ),
        ]
    );
    // promote during an analysis step: no pause condition, so the next
    // step; promote-full: promoteFull unless already stable; retry.
    decide(&d, "shop", "stepping", "promote").await;
    settled(&d, "shop/stepping/r1/promote").await;
    decide(&d, "shop", "stepping", "promote-full").await;
    settled(&d, "shop/stepping/r1/promote-full").await;
    decide(&d, "shop", "stable", "promote-full").await;
    settled(&d, "shop/stable/r1/promote-full").await;
    decide(&d, "shop", "stepping", "retry").await;
    settled(&d, "shop/stepping/r1/retry").await;
    let patches: Vec<(String, Value)> = reqs("/rollouts/st")
        .into_iter()
        .filter(|x| x.method == Method::PATCH)
        .map(|x| (x.path, x.body))
        .collect();
    let base = "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts";
    assert_eq!(
        patches,
        vec![
            (
                format!("{base}/stepping/status"),
                json!({"status": {"pauseConditions": null, "currentStepIndex": 2}})
            ),
            (
                format!("{base}/stepping/status"),
                json!({"status": {"promoteFull": true}})
            ),
            (
                format!("{base}/stepping/status"),
                json!({"status": {"abort": false}})
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

    // rollback of a Deployment = kubectl rollout undo: the ReplicaSets it
    // controls, the second-highest revision's template without the hash
    // label, its annotations except kubectl's skip list, one JSON patch.
    decide(&d, "shop", "api", "rollback").await;
    let acts = settled(&d, "shop/api/r1/rollback").await;
    let dep_act = acts.iter().find(|a| a["sink"] == "deploy").unwrap();
    assert_eq!(dep_act["status"], "done", "{acts:#?}");
    let argo_act = acts.iter().find(|a| a["sink"] == "argo").unwrap();
    assert_eq!(argo_act["status"], "dead", "Argo has no rollback decision");
    let r = reqs("/namespaces/shop/");
    // (earlier requests: the "rolling" sink looking up other rollouts)
    let undo: Vec<&Req> = r
        .iter()
        .filter(|x| x.path.contains("/deployments/api") || x.path.ends_with("/replicasets"))
        .collect();
    let undo = &undo[undo.len() - 3..];
    assert_eq!(
        undo.iter()
            .map(|x| (x.method.to_string(), x.path.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (
                "GET".into(),
                "/apis/apps/v1/namespaces/shop/deployments/api"
            ),
            ("GET".into(), "/apis/apps/v1/namespaces/shop/replicasets"),
            (
                "PATCH".into(),
                "/apis/apps/v1/namespaces/shop/deployments/api"
            ),
        ]
    );
    assert_eq!(undo[2].content_type, "application/json-patch+json");
    assert_eq!(
        undo[2].body,
        json!([
            {"op": "replace", "path": "/spec/template", "value": template("shop/api:v2", None)},
            {"op": "replace", "path": "/metadata/annotations", "value": {
                "deployment.kubernetes.io/revision": "3", "team": "payments", "note": "api-2"}},
        ])
    );
    // A sink with abort_with = "rollback" undoes on abort; the plain
    // Deployment sink still scales its canary to 0.
    decide(&d, "shop", "api", "abort").await;
    let acts = settled(&d, "shop/api/r1/abort").await;
    assert!(
        acts.iter()
            .filter(|a| a["sink"] != "argo")
            .all(|a| a["status"] == "done"),
        "{acts:#?}"
    );
    let r = reqs("/deployments/api");
    let undos: Vec<&Req> = r
        .iter()
        .filter(|x| x.content_type == "application/json-patch+json")
        .collect();
    assert_eq!(undos.len(), 2);
    assert_eq!(undos[0].body, undos[1].body);
    assert!(r.iter().any(|x| x.path.ends_with("/deployments/api/scale")));

    // The Flagger sink rolls back through its gate, as for abort.
    let gates = d.get_json("/api/v1/gates").await;
    assert!(
        gates["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "api" && g["kind"] == "rollback" && g["open"] == true),
        "{gates}"
    );

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_rate_limited_per_rollout() {
    let (addr, api) = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    let t = TestTarget::start(crate::common::Reply::text("up 1\n")).await;
    let cfg = format!(
        r#"[actions]
rate_limit_per_minute = 2
[[actions.kubernetes]]
name = "argo"
target = "argo-rollout"
api_server = "http://{addr}"
{}"#,
        config_for(&[("x", "", &[t.addr], "")])
    );
    let d = Daemon::start(dir.path(), &cfg);
    // Three decisions on one rollout within a second: the governor lets
    // two through (a burst of rate_limit_per_minute) and holds the third
    // for a refill (30 s at 2/min); another rollout is not held up.
    for dec in ["pause", "resume", "abort"] {
        decide(&d, "shop", "busy", dec).await;
    }
    decide(&d, "shop", "quiet", "pause").await;
    settled(&d, "shop/quiet/r1/pause").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let v = d.get_json("/api/v1/decisions").await;
    let status = |key: &str| -> (String, i64) {
        let dec = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == key)
            .unwrap();
        let a = &dec["actions"][0];
        (
            a["status"].as_str().unwrap().to_string(),
            a["attempts"].as_i64().unwrap(),
        )
    };
    let busy: Vec<(String, i64)> = ["pause", "resume", "abort"]
        .iter()
        .map(|x| status(&format!("shop/busy/r1/{x}")))
        .collect();
    assert_eq!(busy.iter().filter(|s| s.0 == "done").count(), 2, "{busy:?}");
    assert!(
        busy.contains(&("pending".to_string(), 0)),
        "held without using an attempt: {busy:?}"
    );
    assert_eq!(
        api.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.contains("/rollouts/busy"))
            .count(),
        2
    );
}

/// Flagger without the rollback webhook: `abort_with = "failed-checks"`
/// reads the Canary and raises `status.failedChecks` to its analysis
/// threshold (1 when unset), which Flagger's scheduler turns into a
/// rollback. The sink names no API server: the `[kubernetes]` connection
/// is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagger_abort_through_failed_checks_on_the_shared_connection() {
    let (addr, api) = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"[kubernetes]
api_server = "http://{addr}"
[actions]
max_backoff = "100ms"
[[actions.kubernetes]]
name = "flagger"
target = "flagger-canary"
abort_with = "failed-checks"
"#
    );
    let d = Daemon::start(dir.path(), &cfg);
    for (name, decision, want) in [
        ("podinfo", "abort", 5),
        ("legacyc", "rollback", 3),
        ("nothreshold", "abort", 1),
    ] {
        decide(&d, "shop", name, decision).await;
        let acts = settled(&d, &format!("shop/{name}/r1/{decision}")).await;
        assert_eq!(acts[0]["status"], "done", "{acts:#?}");
        let reqs: Vec<Req> = api
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.contains(&format!("/canaries/{name}")))
            .cloned()
            .collect();
        assert_eq!(reqs.len(), 2, "{reqs:#?}");
        assert_eq!(reqs[0].method, Method::GET);
        assert_eq!(
            reqs[0].path,
            format!("/apis/flagger.app/v1beta1/namespaces/shop/canaries/{name}")
        );
        assert_eq!(reqs[1].method, Method::PATCH);
        assert_eq!(
            reqs[1].path,
            format!("/apis/flagger.app/v1beta1/namespaces/shop/canaries/{name}/status")
        );
        assert_eq!(reqs[1].content_type, "application/merge-patch+json");
        assert_eq!(reqs[1].body, json!({"status": {"failedChecks": want}}));
    }
    // The rollback gate was not used.
    let r = reqwest::Client::new()
        .post(d.url("/flagger/rollback"))
        .body(r#"{"name":"podinfo","namespace":"shop","phase":"Progressing","checksum":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status().as_u16(), 200);
    // abort_with is checked per target.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[actions.kubernetes]]\ntarget = \"flagger-canary\"\nabort_with = \"rollback\"\n[[actions.kubernetes]]\nname = \"a\"\ntarget = \"argo-rollout\"\nabort_with = \"failed-checks\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:14: actions.kubernetes.abort_with: expected \"rollback-gate\" or \"failed-checks\" for target = \"flagger-canary\", found \"rollback\""), "{err}");
    assert!(
        err.contains(
            "actions.kubernetes.abort_with: only for target = \"deployment\" or \"flagger-canary\""
        ),
        "{err}"
    );
}

/// Under `[ha]` a Deployment rollback marks the Deployment with the
/// action's key, and a new leader repeating the action finds the mark and
/// sends nothing (an undo is not idempotent: a second one would go back
/// another revision). The lease lives on the same stand-in, which grants it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_rollback_is_marked_and_not_repeated() {
    let (addr, api) = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"[kubernetes]
api_server = "http://{addr}"
[ha]
lease = "augur/augur"
identity = "only"
lease_duration = "3s"
renew_deadline = "2s"
retry_period = "500ms"
[actions]
max_backoff = "100ms"
[[actions.kubernetes]]
name = "deploy"
target = "deployment"
abort_with = "rollback"
"#
    );
    let d = Daemon::start(dir.path(), &cfg);
    eventually(10, "leading", || async {
        (d.get_json("/api/v1/status/ha").await["data"]["leader"] == true).then_some(())
    })
    .await;
    decide(&d, "shop", "api", "rollback").await;
    let acts = settled(&d, "shop/api/r1/rollback").await;
    assert_eq!(acts[0]["status"], "done", "{acts:#?}");
    let patch = api
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.method == Method::PATCH && r.path.ends_with("/deployments/api"))
        .cloned()
        .expect("the undo patch");
    assert_eq!(patch.content_type, "application/json-patch+json");
    assert_eq!(
        patch.body[1]["value"]["augur.dev/undone-by"],
        "shop/api/r1/rollback/deploy"
    );
    decide(&d, "shop", "api-undone", "rollback").await;
    let acts = settled(&d, "shop/api-undone/r1/rollback").await;
    assert_eq!(acts[0]["status"], "done", "{acts:#?}");
    let calls: Vec<Req> = api
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.contains("/deployments/api-undone") || r.path.contains("/replicasets"))
        .cloned()
        .collect();
    assert_eq!(
        calls.len(),
        2,
        "only the fresh read of api-undone: {calls:#?}"
    );
    assert_eq!(
        calls[1].path,
        "/apis/apps/v1/namespaces/shop/deployments/api-undone"
    );
    assert_eq!(calls[1].method, Method::GET);
}
