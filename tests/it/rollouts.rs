//! Rollouts augur drives itself (`[[rollouts]]`), against a stand-in API
//! server that holds the objects and answers like the real one (409 on a
//! stale resourceVersion, Deployments that roll, routes accepted by their
//! Gateway). Every write is checked: method, path, content type, body.

use std::time::{Duration, Instant, SystemTime};

use augur::demo::kubefake::{deployment, FakeKube};
use augur::demo::standins::Received;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::common::{config_for, eventually, Daemon, Reply, TestTarget};

const NS: &str = "shop";

fn dpath(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}")
}

const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout";

/// A threshold analysis on `canary_healthy{rollout=...}` (the `rollout`
/// argument is one augur fills in).
const TEMPLATE: &str = r#"
[[analysis]]
name = "healthy"
interval = "1s"
window = "2s"
count = 3
[analysis.args]
rollout = {}
[[analysis.metric]]
name = "ok"
check = "threshold"
min = 1
canary = 'min(canary_healthy{rollout="{{ args.rollout }}"})'
"#;

fn health(v: u8) -> Reply {
    Reply::text(&format!(
        "# TYPE canary_healthy gauge\ncanary_healthy{{rollout=\"checkout\"}} {v}\ncanary_healthy{{rollout=\"web\"}} {v}\n"
    ))
}

fn config(kube: &FakeKube, target: &TestTarget, rollouts: &str) -> String {
    format!(
        "[kubernetes]\napi_server = \"http://{}\"\n{TEMPLATE}\n{rollouts}\n{}",
        kube.addr,
        config_for(&[("health", "scrape_interval = \"500ms\"\nscrape_timeout = \"500ms\"", &[target.addr], "")])
    )
}

/// The stable and canary Deployments of `shop/checkout`, both at image v1.
fn canary_pair(kube: &FakeKube, stable_replicas: u32) {
    kube.apply(
        &dpath("checkout"),
        deployment(NS, "checkout", stable_replicas, &json!({"app": "checkout", "track": "stable"}), &json!({"app": "checkout", "track": "stable"}), "shop/checkout:v1"),
    );
    kube.apply(
        &dpath("checkout-canary"),
        deployment(NS, "checkout-canary", 0, &json!({"app": "checkout", "track": "canary"}), &json!({"app": "checkout", "track": "canary"}), "shop/checkout:v1"),
    );
}

fn route(kube: &FakeKube) {
    kube.apply(
        ROUTE,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "checkout", "namespace": NS},
               "spec": {"parentRefs": [{"name": "public"}], "hostnames": ["checkout.example.com"],
                        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                   "backendRefs": [
                                       {"group": "", "kind": "Service", "name": "checkout-stable", "port": 80, "weight": 100},
                                       {"group": "", "kind": "Service", "name": "checkout-canary", "port": 80, "weight": 0}]}]}}),
    );
}

/// A new version on the canary Deployment (`kubectl set image`).
fn ship(kube: &FakeKube, image: &str) {
    kube.edit(&dpath("checkout-canary"), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    });
}

fn writes(kube: &FakeKube) -> Vec<(SystemTime, Received)> {
    kube.requests().into_iter().filter(|(_, r)| r.method != "GET").collect()
}

fn weights(r: &Received) -> (i64, i64) {
    let refs = &r.body["spec"]["rules"][0]["backendRefs"];
    (refs[0]["weight"].as_i64().unwrap(), refs[1]["weight"].as_i64().unwrap())
}

async fn rollout(d: &Daemon, name: &str) -> Value {
    d.get_json(&format!("/api/v1/rollouts/{NS}/{name}")).await["data"].clone()
}

async fn wait_phase(d: &Daemon, name: &str, phase: &str, secs: u64) -> Value {
    eventually(secs, &format!("rollout {name} to be {phase}"), || async {
        let r = rollout(d, name).await;
        (r["phase"] == phase).then_some(r)
    })
    .await
}

async fn verb(d: &Daemon, name: &str, verb: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(d.url(&format!("/api/v1/rollouts/{NS}/{name}/{verb}")))
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

const GATEWAY_ROLLOUT: &str = r#"
[[rollouts]]
namespace = "shop"
name = "checkout"
strategy = "canary"
stable_deployment = "checkout"
canary_deployment = "checkout-canary"
abort_scale_down_delay = "1s"
[rollouts.traffic]
router = "gateway-api"
http_route = "checkout"
stable_service = "checkout-stable"
canary_service = "checkout-canary"
[[rollouts.steps]]
set_weight = 10
[[rollouts.steps]]
pause = "1s"
[[rollouts.steps]]
analysis = "healthy"
[[rollouts.steps]]
set_weight = 50
[rollouts.analysis]
template = "healthy"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_walks_the_gateway_route_to_promotion_with_exact_requests() {
    let token = CancellationToken::new();
    let kube = FakeKube::start(None, token.clone()).await.unwrap();
    canary_pair(&kube, 4);
    route(&kube);
    let target = TestTarget::start(health(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &config(&kube, &target, GATEWAY_ROLLOUT));
    wait_phase(&d, "checkout", "healthy", 20).await;
    assert!(writes(&kube).is_empty(), "nothing to do while stable runs the canary's template");
    // The first route write meets another writer (409): re-read and retry.
    kube.conflict_next(ROUTE, 1);
    // The Gateway does not accept the route for a while: the step waits.
    kube.hold_routes(true);
    let started = Instant::now();
    ship(&kube, "shop/checkout:v2");
    let r = eventually(20, "the step to wait for the gateway", || async {
        let r = rollout(&d, "checkout").await;
        r["message"].as_str().unwrap_or("").starts_with("httproute: ").then_some(r)
    })
    .await;
    assert_eq!(r["phase"], "progressing");
    assert_eq!(r["step"], 0);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rollout(&d, "checkout").await["step"], 0, "a step is not judged before the route is accepted");
    kube.hold_routes(false);
    let done = wait_phase(&d, "checkout", "healthy", 60).await;
    let took = started.elapsed();
    eprintln!("healthy rollout of 4 steps + promotion: {:.1} s", took.as_secs_f64());
    assert!(done["message"].as_str().unwrap().contains("promoted"), "{done}");

    let w = writes(&kube);
    let shown: Vec<String> = w.iter().map(|(_, r)| format!("{} {} {}", r.method, r.path, r.content_type)).collect();
    // Canary up, route 90/10 (conflict, then again), route 50/50, stable
    // takes the template, route back to 100/0, canary down.
    let scale = format!("{}/scale", dpath("checkout-canary"));
    let expected = vec![
        format!("PATCH {scale} application/merge-patch+json"),
        format!("PUT {ROUTE} application/json"),
        format!("PUT {ROUTE} application/json"),
        format!("PUT {ROUTE} application/json"),
        format!("PUT {} application/json", dpath("checkout")),
        format!("PUT {ROUTE} application/json"),
        format!("PATCH {scale} application/merge-patch+json"),
    ];
    assert_eq!(shown, expected);
    assert_eq!(w[0].1.body, json!({"spec": {"replicas": 1}}));
    assert_eq!(weights(&w[1].1), (90, 10));
    assert_eq!(weights(&w[2].1), (90, 10));
    assert_ne!(
        w[1].1.body["metadata"]["resourceVersion"], w[2].1.body["metadata"]["resourceVersion"],
        "the retry carries the re-read resourceVersion"
    );
    assert!(w[2].1.body.get("status").is_none(), "no status in a PUT");
    // The rest of the route is sent as read.
    assert_eq!(w[2].1.body["spec"]["hostnames"], json!(["checkout.example.com"]));
    assert_eq!(w[2].1.body["spec"]["rules"][0]["backendRefs"][1]["port"], 80);
    assert_eq!(weights(&w[3].1), (50, 50));
    let promoted = &w[4].1.body;
    assert_eq!(promoted["spec"]["template"]["spec"]["containers"][0]["image"], "shop/checkout:v2");
    assert_eq!(
        promoted["spec"]["template"]["metadata"]["labels"],
        json!({"app": "checkout", "track": "stable"}),
        "the stable keeps its selector labels"
    );
    assert_eq!(promoted["spec"]["selector"]["matchLabels"]["track"], "stable");
    assert_eq!(weights(&w[5].1), (100, 0));
    assert_eq!(w[6].1.body, json!({"spec": {"replicas": 0}}));
    // The stable serves v2; the canary sits at 0; the decision is recorded.
    let stable = kube.get(&dpath("checkout")).unwrap();
    assert_eq!(stable["spec"]["template"]["spec"]["containers"][0]["image"], "shop/checkout:v2");
    assert_eq!(kube.get(&dpath("checkout-canary")).unwrap()["spec"]["replicas"], 0);
    let ds = d.get_json("/api/v1/decisions").await;
    let ds = ds["data"].as_array().unwrap();
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(ds[0]["decision"], "promote");
    assert_eq!(ds[0]["actor"], "rollout");
    let audit = d.get_json("/api/v1/audit?limit=200").await.to_string();
    for a in ["rollout.started", "rollout.weight", "rollout.promoting", "rollout.promoted"] {
        assert!(audit.contains(a), "audit has {a}: {audit}");
    }
    // The status lists the last requests.
    let calls = done["requests"].as_array().unwrap();
    assert!(calls.iter().any(|c| c["code"] == 409), "{calls:?}");
    // Nothing more happens once promoted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(writes(&kube).len(), w.len());
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_background_analysis_sends_weight_zero_at_once_then_scales_the_canary_down() {
    let token = CancellationToken::new();
    let kube = FakeKube::start(None, token.clone()).await.unwrap();
    canary_pair(&kube, 4);
    route(&kube);
    let target = TestTarget::start(health(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&kube, &target, &GATEWAY_ROLLOUT.replace("pause = \"1s\"", "pause = \"\""));
    let d = Daemon::start(dir.path(), &cfg);
    wait_phase(&d, "checkout", "healthy", 20).await;
    ship(&kube, "shop/checkout:v2");
    // Paused (indefinitely) after 10%; then the canary goes bad and the
    // background analysis fails.
    let r = wait_phase(&d, "checkout", "paused", 30).await;
    assert_eq!(r["step"], 1, "{r}");
    assert_eq!(r["weights"], json!({"canary": 10, "stable": 90}));
    target.set(health(0));
    let r = wait_phase(&d, "checkout", "aborted", 60).await;
    assert!(r["message"].as_str().unwrap().contains("background analysis failed"), "{r}");
    let w = writes(&kube);
    let routes: Vec<&(SystemTime, Received)> = w.iter().filter(|(_, r)| r.path == ROUTE).collect();
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert_eq!(weights(&routes[0].1), (90, 10));
    assert_eq!(weights(&routes[1].1), (100, 0));
    // The weight goes back within a second of the verdict.
    let runs = d.get_json("/api/v1/analysis/runs").await;
    let run = runs["data"].as_array().unwrap().iter().find(|r| r["state"] == "failed").cloned().unwrap();
    let finished = run["finished"].as_f64().unwrap();
    let sent = routes[1].0.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    eprintln!("failed analysis to the weight-0 request: {:.0} ms", (sent - finished) * 1000.0);
    assert!(sent - finished < 1.0, "weight 0 within a second of the verdict: {:.3} s", sent - finished);
    let last = w.last().unwrap();
    assert_eq!(last.1.path, format!("{}/scale", dpath("checkout-canary")));
    assert_eq!(last.1.body, json!({"spec": {"replicas": 0}}));
    let delay = last.0.duration_since(routes[1].0).unwrap();
    assert!(delay >= Duration::from_millis(900), "the canary stays up for abort_scale_down_delay: {delay:?}");
    let ds = d.get_json("/api/v1/decisions").await;
    assert_eq!(ds["data"][0]["decision"], "abort");
    assert!(ds["data"][0]["actor"].as_str().unwrap().starts_with("analysis:"));
    // Promote after an abort is refused; retry starts over.
    let (code, v) = verb(&d, "checkout", "promote").await;
    assert_eq!(code, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("is aborted"), "{v}");
    token.cancel();
}
