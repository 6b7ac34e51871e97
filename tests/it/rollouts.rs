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

# The same check for as long as the rollout lasts (background analysis).
[[analysis]]
name = "watch"
interval = "1s"
window = "2s"
count = 10000
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
        config_for(&[(
            "health",
            "scrape_interval = \"500ms\"\nscrape_timeout = \"500ms\"",
            &[target.addr],
            ""
        )])
    )
}

/// The stable and canary Deployments of `shop/checkout`, both at image v1.
fn canary_pair(kube: &FakeKube, stable_replicas: u32) {
    kube.apply(
        &dpath("checkout"),
        deployment(
            NS,
            "checkout",
            stable_replicas,
            &json!({"app": "checkout", "track": "stable"}),
            &json!({"app": "checkout", "track": "stable"}),
            "shop/checkout:v1",
        ),
    );
    kube.apply(
        &dpath("checkout-canary"),
        deployment(
            NS,
            "checkout-canary",
            0,
            &json!({"app": "checkout", "track": "canary"}),
            &json!({"app": "checkout", "track": "canary"}),
            "shop/checkout:v1",
        ),
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
    kube.requests()
        .into_iter()
        .filter(|(_, r)| r.method != "GET")
        .collect()
}

fn weights(r: &Received) -> (i64, i64) {
    let refs = &r.body["spec"]["rules"][0]["backendRefs"];
    (
        refs[0]["weight"].as_i64().unwrap(),
        refs[1]["weight"].as_i64().unwrap(),
    )
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

/// The gateway-api canary pair with `rollouts`, the daemon started and
/// the rollout healthy.
async fn gateway_canary(
    rollouts: &str,
) -> (
    CancellationToken,
    FakeKube,
    TestTarget,
    tempfile::TempDir,
    Daemon,
) {
    let token = CancellationToken::new();
    let kube = FakeKube::start(None, token.clone()).await.unwrap();
    canary_pair(&kube, 4);
    route(&kube);
    let target = TestTarget::start(health(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &config(&kube, &target, rollouts));
    wait_phase(&d, "checkout", "healthy", 20).await;
    (token, kube, target, dir, d)
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
template = "watch"
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
    assert!(
        writes(&kube).is_empty(),
        "nothing to do while stable runs the canary's template"
    );
    // The first route write meets another writer (409): re-read and retry.
    kube.conflict_next(ROUTE, 1);
    // The Gateway does not accept the route for a while: the step waits.
    kube.hold_routes(true);
    let started = Instant::now();
    ship(&kube, "shop/checkout:v2");
    let r = eventually(20, "the step to wait for the gateway", || async {
        let r = rollout(&d, "checkout").await;
        r["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("httproute: ")
            .then_some(r)
    })
    .await;
    assert_eq!(r["phase"], "progressing");
    assert_eq!(r["step"], 0);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        rollout(&d, "checkout").await["step"],
        0,
        "a step is not judged before the route is accepted"
    );
    kube.hold_routes(false);
    let done = wait_phase(&d, "checkout", "healthy", 60).await;
    let took = started.elapsed();
    eprintln!(
        "healthy rollout of 4 steps + promotion: {:.1} s",
        took.as_secs_f64()
    );
    assert!(
        done["message"].as_str().unwrap().contains("promoted"),
        "{done}"
    );

    let w = writes(&kube);
    let shown: Vec<String> = w
        .iter()
        .map(|(_, r)| format!("{} {} {}", r.method, r.path, r.content_type))
        .collect();
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
    assert_eq!(
        w[2].1.body["spec"]["hostnames"],
        json!(["checkout.example.com"])
    );
    assert_eq!(
        w[2].1.body["spec"]["rules"][0]["backendRefs"][1]["port"],
        80
    );
    assert_eq!(weights(&w[3].1), (50, 50));
    let promoted = &w[4].1.body;
    assert_eq!(
        promoted["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/checkout:v2"
    );
    assert_eq!(
        promoted["spec"]["template"]["metadata"]["labels"],
        json!({"app": "checkout", "track": "stable"}),
        "the stable keeps its selector labels"
    );
    assert_eq!(
        promoted["spec"]["selector"]["matchLabels"]["track"],
        "stable"
    );
    assert_eq!(weights(&w[5].1), (100, 0));
    assert_eq!(w[6].1.body, json!({"spec": {"replicas": 0}}));
    // The stable serves v2; the canary sits at 0; the decision is recorded.
    let stable = kube.get(&dpath("checkout")).unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/checkout:v2"
    );
    assert_eq!(
        kube.get(&dpath("checkout-canary")).unwrap()["spec"]["replicas"],
        0
    );
    let ds = d.get_json("/api/v1/decisions").await;
    let ds = ds["data"].as_array().unwrap();
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(ds[0]["decision"], "promote");
    assert_eq!(ds[0]["actor"], "rollout");
    let audit = d.get_json("/api/v1/audit?limit=200").await.to_string();
    for a in [
        "rollout.started",
        "rollout.weight",
        "rollout.promoting",
        "rollout.promoted",
    ] {
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
    let (token, kube, target, _dir, d) =
        gateway_canary(&GATEWAY_ROLLOUT.replace("pause = \"1s\"", "pause = \"\"")).await;
    ship(&kube, "shop/checkout:v2");
    // Paused (indefinitely) after 10%; then the canary goes bad and the
    // background analysis fails.
    let r = wait_phase(&d, "checkout", "paused", 30).await;
    assert_eq!(r["step"], 1, "{r}");
    assert_eq!(r["weights"], json!({"canary": 10, "stable": 90}));
    target.set(health(0));
    let r = wait_phase(&d, "checkout", "aborted", 60).await;
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("background analysis failed"),
        "{r}"
    );
    let w = writes(&kube);
    let routes: Vec<&(SystemTime, Received)> = w.iter().filter(|(_, r)| r.path == ROUTE).collect();
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert_eq!(weights(&routes[0].1), (90, 10));
    assert_eq!(weights(&routes[1].1), (100, 0));
    // The weight goes back within a second of the verdict.
    let runs = d.get_json("/api/v1/analysis/runs").await;
    let run = runs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "failed")
        .cloned()
        .unwrap();
    let finished = run["finished"].as_f64().unwrap();
    let sent = routes[1]
        .0
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    eprintln!(
        "failed analysis to the weight-0 request: {:.0} ms",
        (sent - finished) * 1000.0
    );
    // Speed is the bench's business; this checks the order: the weight goes
    // back on the verdict, well before the canary's scale-down delay.
    assert!(
        sent - finished < 5.0,
        "weight 0 on the verdict: {:.3} s",
        sent - finished
    );
    let last = w.last().unwrap();
    assert_eq!(last.1.path, format!("{}/scale", dpath("checkout-canary")));
    assert_eq!(last.1.body, json!({"spec": {"replicas": 0}}));
    let delay = last.0.duration_since(routes[1].0).unwrap();
    assert!(
        delay >= Duration::from_millis(900),
        "the canary stays up for abort_scale_down_delay: {delay:?}"
    );
    let ds = d.get_json("/api/v1/decisions").await;
    assert_eq!(ds["data"][0]["decision"], "abort");
    assert!(ds["data"][0]["actor"]
        .as_str()
        .unwrap()
        .starts_with("analysis:"));
    // Promote after an abort is refused; retry starts over.
    let (code, v) = verb(&d, "checkout", "promote").await;
    assert_eq!(code, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("is aborted"), "{v}");
    token.cancel();
}

fn scales(kube: &FakeKube) -> Vec<(String, i64)> {
    writes(kube)
        .into_iter()
        .filter_map(|(_, r)| {
            let name = r
                .path
                .strip_suffix("/scale")?
                .rsplit('/')
                .next()?
                .to_string();
            assert_eq!(r.method, "PATCH");
            assert_eq!(r.content_type, "application/merge-patch+json");
            Some((name, r.body["spec"]["replicas"].as_i64().unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_router_scales_by_argos_arithmetic_and_resumes_after_kill_9() {
    let token = CancellationToken::new();
    let kube = FakeKube::start(None, token.clone()).await.unwrap();
    canary_pair(&kube, 10);
    let target = TestTarget::start(health(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let rollouts = r#"
[[rollouts]]
namespace = "shop"
name = "checkout"
stable_deployment = "checkout"
canary_deployment = "checkout-canary"
[[rollouts.steps]]
set_weight = 10
[[rollouts.steps]]
pause = "3s"
[[rollouts.steps]]
set_weight = 33
[[rollouts.steps]]
pause = ""
"#;
    let mut d = Daemon::start(dir.path(), &config(&kube, &target, rollouts));
    wait_phase(&d, "checkout", "healthy", 20).await;
    ship(&kube, "shop/checkout:v2");
    // In the 3 s pause after 10%: kill -9, start again.
    let r = eventually(20, "the pause after 10%", || async {
        let r = rollout(&d, "checkout").await;
        (r["step"] == 1).then_some(r)
    })
    .await;
    assert_eq!(r["weights"]["canary"], 10);
    let before = writes(&kube).len();
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let d = Daemon::start_with(dir.path(), &d.config.clone());
    let r = wait_phase(&d, "checkout", "paused", 30).await;
    assert_eq!(r["step"], 3, "resumed after the pause, through 33%: {r}");
    assert_eq!(r["weights"]["canary"], 33);
    // Canary up before stable down, at 1/9 then 3/7; nothing repeated
    // across the restart.
    assert_eq!(
        scales(&kube),
        vec![
            ("checkout-canary".into(), 1),
            ("checkout".into(), 9),
            ("checkout-canary".into(), 3),
            ("checkout".into(), 7),
        ]
    );
    assert_eq!(before, 2, "two scale writes before the kill");
    // Promote past the indefinite pause: the stable takes the template,
    // then grows back to 10 before the canary goes to 0.
    // Through the CLI, as an operator would.
    let cli = |args: &[&str]| {
        let mut all = vec!["rollout"];
        all.extend_from_slice(args);
        let url = d.url("");
        all.extend_from_slice(&["-n", "shop", "--url", url.trim_end_matches('/')]);
        let out = std::process::Command::new(crate::common::bin())
            .args(&all)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = cli(&["status", "checkout"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("shop/checkout  canary  paused"), "{out}");
    assert!(
        out.contains("step 3/4  weights canary 33 / stable 67"),
        "{out}"
    );
    assert!(out.contains("> 3: pause until promoted"), "{out}");
    assert!(
        out.contains("PATCH /apis/apps/v1/namespaces/shop/deployments/checkout/scale -> 200"),
        "{out}"
    );
    let (code, _, err) = cli(&["retry", "checkout"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("409: rollout shop/checkout is paused: retry does not apply"),
        "{err}"
    );
    let (code, out, err) = cli(&["promote", "checkout"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("promote accepted"), "{out}");
    wait_phase(&d, "checkout", "healthy", 30).await;
    let s = scales(&kube);
    assert_eq!(
        &s[4..],
        &[("checkout".into(), 10), ("checkout-canary".into(), 0)]
    );
    let stable = kube.get(&dpath("checkout")).unwrap();
    assert_eq!(stable["spec"]["replicas"], 10);
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/checkout:v2"
    );
    let audit = d.get_json("/api/v1/audit?limit=200").await.to_string();
    assert!(audit.contains("rollout.command.taken"), "{audit}");
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_never_becomes_available_aborts_at_the_progress_deadline() {
    let token = CancellationToken::new();
    let kube = FakeKube::start(None, token.clone()).await.unwrap();
    canary_pair(&kube, 4);
    route(&kube);
    kube.never_available("checkout-canary", true);
    let target = TestTarget::start(health(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &kube,
        &target,
        &GATEWAY_ROLLOUT.replace(
            "abort_scale_down_delay = \"1s\"",
            "abort_scale_down_delay = \"0s\"\nprogress_deadline = \"3s\"",
        ),
    );
    let d = Daemon::start(dir.path(), &cfg);
    wait_phase(&d, "checkout", "healthy", 20).await;
    ship(&kube, "shop/checkout:v2");
    let r = eventually(20, "the rollout to wait for the canary's pods", || async {
        let r = rollout(&d, "checkout").await;
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("0 of 1 updated replicas available")
            .then_some(r)
    })
    .await;
    assert_eq!(r["phase"], "progressing");
    let r = wait_phase(&d, "checkout", "aborted", 20).await;
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("progress deadline 3s exceeded"),
        "{r}"
    );
    // No weight ever went to it: the route was never written.
    assert!(writes(&kube).iter().all(|(_, r)| r.path != ROUTE));
    assert_eq!(
        kube.get(&dpath("checkout-canary")).unwrap()["spec"]["replicas"],
        0
    );
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_abort_racing_a_promote_wins() {
    let (token, kube, _target, _dir, d) =
        gateway_canary(&GATEWAY_ROLLOUT.replace("pause = \"1s\"", "pause = \"\"")).await;
    // Verbs on a healthy rollout are refused, naming the phase.
    let (code, v) = verb(&d, "checkout", "abort").await;
    assert_eq!(code, 409, "{v}");
    ship(&kube, "shop/checkout:v2");
    wait_phase(&d, "checkout", "paused", 30).await;
    let (a, b) = tokio::join!(
        verb(&d, "checkout", "promote"),
        verb(&d, "checkout", "abort")
    );
    assert_eq!((a.0, b.0), (202, 202), "{a:?} {b:?}");
    let r = wait_phase(&d, "checkout", "aborted", 20).await;
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("aborted by operator:api"),
        "{r}"
    );
    let stable = kube.get(&dpath("checkout")).unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/checkout:v1"
    );
    let ds = d.get_json("/api/v1/decisions").await;
    let ds = ds["data"].as_array().unwrap();
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(ds[0]["decision"], "abort");
    assert_eq!(ds[0]["actor"], "operator:api");
    // An unknown verb names the known ones; a rollout augur does not drive
    // still takes operator decisions for the sinks.
    let (code, v) = verb(&d, "checkout", "rollback").await;
    assert_eq!(code, 404);
    assert!(v["error"].as_str().unwrap().contains("promote-full"), "{v}");
    let (code, _) = verb(&d, "other", "abort").await;
    assert_eq!(code, 202);
    // Retry starts the same revision over.
    let (code, v) = verb(&d, "checkout", "retry").await;
    assert_eq!(code, 202, "{v}");
    let r = wait_phase(&d, "checkout", "paused", 30).await;
    assert_eq!(r["attempt"], 1);
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_and_nginx_routers_send_what_argo_and_flagger_send() {
    let token = CancellationToken::new();
    let kube = FakeKube::start(None, token.clone()).await.unwrap();
    canary_pair(&kube, 4);
    let vs = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/checkout";
    kube.apply(
        vs,
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "checkout", "namespace": NS},
               "spec": {"hosts": ["checkout"], "http": [
                   {"name": "primary", "route": [
                       {"destination": {"host": "checkout-stable.shop.svc.cluster.local"}, "weight": 100},
                       {"destination": {"host": "checkout-canary"}, "weight": 0}]},
                   {"name": "admin", "route": [{"destination": {"host": "admin"}}]}]}}),
    );
    // A second app behind NGINX, in the same namespace.
    kube.apply(
        &dpath("web"),
        deployment(
            NS,
            "web",
            2,
            &json!({"app": "web", "track": "stable"}),
            &json!({"app": "web", "track": "stable"}),
            "shop/web:v1",
        ),
    );
    kube.apply(
        &dpath("web-canary"),
        deployment(
            NS,
            "web-canary",
            0,
            &json!({"app": "web", "track": "canary"}),
            &json!({"app": "web", "track": "canary"}),
            "shop/web:v1",
        ),
    );
    let ing = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses";
    kube.apply(
        &format!("{ing}/web"),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "web", "namespace": NS, "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
               "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example.com", "http": {"paths": [
                   {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-stable", "port": {"number": 80}}}}]}}]}}),
    );
    let target = TestTarget::start(health(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let rollouts = r#"
[[rollouts]]
namespace = "shop"
name = "checkout"
stable_deployment = "checkout"
canary_deployment = "checkout-canary"
[rollouts.traffic]
router = "istio"
virtual_service = "checkout"
routes = ["primary"]
stable_service = "checkout-stable"
canary_service = "checkout-canary"
[[rollouts.steps]]
set_weight = 20
[[rollouts.steps]]
pause = ""

[[rollouts]]
namespace = "shop"
name = "web"
stable_deployment = "web"
canary_deployment = "web-canary"
[rollouts.traffic]
router = "nginx"
stable_ingress = "web"
stable_service = "web-stable"
canary_service = "web-canary"
[[rollouts.steps]]
set_weight = 20
[[rollouts.steps]]
set_weight = 40
[[rollouts.steps]]
pause = ""
"#;
    let d = Daemon::start(dir.path(), &config(&kube, &target, rollouts));
    wait_phase(&d, "checkout", "healthy", 20).await;
    wait_phase(&d, "web", "healthy", 20).await;
    ship(&kube, "shop/checkout:v2");
    kube.edit(&dpath("web-canary"), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("shop/web:v2");
    });
    wait_phase(&d, "checkout", "paused", 30).await;
    wait_phase(&d, "web", "paused", 30).await;
    let w = writes(&kube);
    let put: Vec<&Received> = w.iter().map(|(_, r)| r).filter(|r| r.path == vs).collect();
    assert_eq!(put.len(), 1);
    assert_eq!(put[0].method, "PUT");
    assert_eq!(put[0].content_type, "application/json");
    assert_eq!(
        put[0].body["spec"]["http"][0]["route"],
        json!([{"destination": {"host": "checkout-stable.shop.svc.cluster.local"}, "weight": 80},
               {"destination": {"host": "checkout-canary"}, "weight": 20}])
    );
    assert_eq!(
        put[0].body["spec"]["http"][1]["route"],
        json!([{"destination": {"host": "admin"}}])
    );
    assert!(put[0].body["metadata"]["resourceVersion"].is_string());
    // NGINX: the canary Ingress is created from the stable one at 20%,
    // then the weight annotation is merge-patched.
    let ings: Vec<&Received> = w
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.path.starts_with(ing))
        .collect();
    assert_eq!(ings.len(), 2, "{ings:?}");
    assert_eq!(
        (ings[0].method.as_str(), ings[0].path.as_str()),
        ("POST", ing)
    );
    let created = &ings[0].body;
    assert_eq!(created["metadata"]["name"], "web-canary");
    assert_eq!(
        created["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"],
        "true"
    );
    assert_eq!(
        created["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"],
        "20"
    );
    assert_eq!(
        created["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-canary"
    );
    assert_eq!(created["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        (ings[1].method.as_str(), ings[1].path.as_str()),
        ("PATCH", format!("{ing}/web-canary").as_str())
    );
    assert_eq!(ings[1].content_type, "application/merge-patch+json");
    assert_eq!(
        ings[1].body,
        json!({"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "40"}}})
    );
    token.cancel();
}

const BLUE_GREEN: &str = r#"
[[rollouts]]
namespace = "shop"
name = "web"
strategy = "blue-green"
active_service = "web"
preview_service = "web-preview"
deployments = ["web-blue", "web-green"]
selector_label = "version"
pre_promotion_analysis = "healthy"
post_promotion_analysis = { template = "watch", args = {} }
auto_promote = false
scale_down_delay = "2s"
abort_scale_down_delay = "1s"
"#;

/// web-blue (serving, `replicas`) and web-green (0) at v1, and the
/// Service `web` selecting blue.
fn blue_green_pair(kube: &FakeKube, replicas: u32) {
    for (name, version, n) in [("web-blue", "blue", replicas), ("web-green", "green", 0)] {
        let labels = json!({"app": "web", "version": version});
        kube.apply(
            &dpath(name),
            deployment(NS, name, n, &labels, &labels, "shop/web:v1"),
        );
    }
    kube.apply(
        &format!("/api/v1/namespaces/{NS}/services/web"),
        service("web", "blue"),
    );
}

fn service(name: &str, version: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
           "spec": {"selector": {"app": "web", "version": version}, "ports": [{"port": 80, "targetPort": 8080}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_on_promote_and_switches_back_when_post_promotion_fails_even_across_kill_9(
) {
    let token = CancellationToken::new();
    let kube = FakeKube::start(None, token.clone()).await.unwrap();
    let svc = |n: &str| format!("/api/v1/namespaces/{NS}/services/{n}");
    blue_green_pair(&kube, 3);
    kube.apply(&svc("web-preview"), service("web-preview", "blue"));
    let target = TestTarget::start(health(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), &config(&kube, &target, BLUE_GREEN));
    wait_phase(&d, "web", "healthy", 20).await;
    // The new version goes to the inactive side.
    kube.edit(&dpath("web-green"), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("shop/web:v2");
    });
    let r = wait_phase(&d, "web", "paused", 40).await;
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("waiting for a promote"),
        "{r}"
    );
    let w = writes(&kube);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w[0].1.path, format!("{}/scale", dpath("web-green")));
    assert_eq!(w[0].1.body, json!({"spec": {"replicas": 3}}));
    assert_eq!(w[1].1.path, svc("web-preview"));
    assert_eq!(
        (w[1].1.method.as_str(), w[1].1.content_type.as_str()),
        ("PATCH", "application/merge-patch+json")
    );
    assert_eq!(
        w[1].1.body,
        json!({"spec": {"selector": {"version": "green"}}})
    );
    // Promote: the active Service switches to green.
    let (code, v) = verb(&d, "web", "promote").await;
    assert_eq!(code, 202, "{v}");
    eventually(20, "the switch", || async {
        (kube.get(&svc("web")).unwrap()["spec"]["selector"]["version"] == "green").then_some(())
    })
    .await;
    // kill -9 after the switch, during post-promotion analysis.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    target.set(health(0));
    let d = Daemon::start_with(dir.path(), &d.config.clone());
    let r = wait_phase(&d, "web", "aborted", 60).await;
    assert!(
        r["message"].as_str().unwrap().contains("post-promotion"),
        "{r}"
    );
    let switches: Vec<Value> = writes(&kube)
        .into_iter()
        .filter(|(_, r)| r.path == svc("web"))
        .map(|(_, r)| r.body)
        .collect();
    assert_eq!(
        switches,
        vec![
            json!({"spec": {"selector": {"version": "green"}}}),
            json!({"spec": {"selector": {"version": "blue"}}})
        ],
        "one switch and one switch back, none repeated by the restart"
    );
    // Blue stayed up the whole time; green goes to 0 after the delay.
    assert_eq!(kube.get(&dpath("web-blue")).unwrap()["spec"]["replicas"], 3);
    assert_eq!(
        kube.get(&dpath("web-green")).unwrap()["spec"]["replicas"],
        0
    );
    let ds = d.get_json("/api/v1/decisions").await;
    assert_eq!(ds["data"][0]["decision"], "abort");
    token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_promotes_by_itself_and_scales_the_old_side_down_after_the_delay() {
    let token = CancellationToken::new();
    let kube = FakeKube::start(None, token.clone()).await.unwrap();
    let svc = |n: &str| format!("/api/v1/namespaces/{NS}/services/{n}");
    blue_green_pair(&kube, 2);
    let target = TestTarget::start(health(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = r#"
[[rollouts]]
namespace = "shop"
name = "web"
strategy = "blue-green"
active_service = "web"
deployments = ["web-blue", "web-green"]
selector_label = "version"
scale_down_delay = "1s"
"#;
    let d = Daemon::start(dir.path(), &config(&kube, &target, cfg));
    wait_phase(&d, "web", "healthy", 20).await;
    // CI stamps the commit time on the pod template: the promotion's lead time.
    let committed = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 600;
    kube.edit(&dpath("web-green"), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("shop/web:v2");
        d["spec"]["template"]["metadata"]["annotations"]["augur.dev/commit-time"] =
            json!(committed.to_string());
    });
    eventually(30, "green to serve and blue to go to 0", || async {
        (kube.get(&dpath("web-blue")).unwrap()["spec"]["replicas"] == 0).then_some(())
    })
    .await;
    let r = wait_phase(&d, "web", "healthy", 10).await;
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("web-green promoted"),
        "{r}"
    );
    assert_eq!(
        kube.get(&svc("web")).unwrap()["spec"]["selector"]["version"],
        "green"
    );
    let ds = d.get_json("/api/v1/decisions").await;
    assert_eq!(ds["data"][0]["decision"], "promote");
    let (_, m) = d.get_text("/metrics").await;
    let sample = |name: &str| {
        m.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains("name=\"web\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(sample("augur_lead_time_seconds_count"), Some(1.0), "{m}");
    let lead = sample("augur_lead_time_seconds_sum").unwrap();
    assert!(
        lead >= 600.0,
        "lead time {lead} s from a commit 10 minutes old"
    );
    assert_eq!(
        m.lines()
            .find(
                |l| l.starts_with("augur_decisions_total{") && l.contains("actor_kind=\"rollout\"")
            )
            .and_then(|l| l.rsplit(' ').next()),
        Some("1"),
        "the promotion counted as the rollout controller's"
    );
    // The next version goes to blue, now the inactive side.
    kube.edit(&dpath("web-blue"), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("shop/web:v3");
    });
    eventually(30, "blue to serve again", || async {
        (kube.get(&svc("web")).unwrap()["spec"]["selector"]["version"] == "blue"
            && kube.get(&dpath("web-green")).unwrap()["spec"]["replicas"] == 0)
            .then_some(())
    })
    .await;
    token.cancel();
}

/// `(apiGroup, resource, verb)` of an API request.
fn rbac_need(r: &Received) -> (String, String, String) {
    let verb = match r.method.as_str() {
        "GET" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "POST" => "create",
        m => panic!("unexpected method {m}"),
    };
    let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _, rest @ ..] => ("", rest),
        ["apis", g, _, rest @ ..] => (*g, rest),
        _ => panic!("unexpected path {}", r.path),
    };
    let resource = match rest {
        ["namespaces", _, res, _, sub] => format!("{res}/{sub}"),
        ["namespaces", _, res, ..] => res.to_string(),
        _ => panic!("unexpected path {}", r.path),
    };
    (group.to_string(), resource, verb.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_examples_roll_out_against_their_own_manifests_within_their_rbac() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for example in ["gateway-api", "istio"] {
        let toml_path = root.join(format!("examples/rollouts/{example}.toml"));
        augur::config::load(&toml_path).unwrap_or_else(|e| panic!("{example}.toml: {e}"));
        let yaml = std::fs::read_to_string(root.join(format!("examples/rollouts/{example}.yaml")))
            .unwrap();
        let objects: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        let token = CancellationToken::new();
        let kube = FakeKube::start(None, token.clone()).await.unwrap();
        let mut rules = Vec::new();
        for o in &objects {
            let (api, kind) = (
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
            );
            let (ns, name) = (
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            );
            let resource = match kind {
                "Role" => {
                    rules = o["rules"].as_array().unwrap().clone();
                    continue;
                }
                "RoleBinding" => {
                    assert_eq!(o["roleRef"]["name"], "augur-rollouts");
                    continue;
                }
                k => format!("{}s", k.to_lowercase()),
            };
            let prefix = if api == "v1" {
                "/api/v1".to_string()
            } else {
                format!("/apis/{api}")
            };
            kube.apply(
                &format!("{prefix}/namespaces/{ns}/{resource}/{name}"),
                o.clone(),
            );
        }
        // The example as shipped, with its cluster connection pointed at the
        // stand-in, no background analysis (its template measures every
        // minute) and second-long pauses.
        let text = std::fs::read_to_string(&toml_path).unwrap();
        let text = text[..text.find("# --- scraping").unwrap()].to_string();
        let a = text.find("# Runs across the steps").unwrap();
        let text = format!(
            "{}{}",
            &text[..a],
            &text[text.find("args = {").unwrap()..]
                .split_once('\n')
                .unwrap()
                .1
        );
        let text = text.replace("pause = \"5m\"", "pause = \"1s\"").replace(
            "../../rules/analyses/",
            &format!("{}/rules/analyses/", root.display()),
        );
        let cfg = format!(
            "{text}\n[kubernetes]\napi_server = \"http://{}\"\n{}",
            kube.addr,
            config_for(&[])
        );
        let dir = tempfile::tempdir().unwrap();
        let d = Daemon::start(dir.path(), &cfg);
        wait_phase(&d, "checkout", "healthy", 20).await;
        ship(&kube, "shop/checkout:v2");
        eventually(40, &format!("{example}: promotion"), || async {
            let r = rollout(&d, "checkout").await;
            (r["message"].as_str().unwrap_or("").contains("promoted")).then_some(())
        })
        .await;
        let stable = kube.get(&dpath("checkout")).unwrap();
        assert_eq!(
            stable["spec"]["template"]["spec"]["containers"][0]["image"],
            "shop/checkout:v2"
        );
        assert_eq!(
            stable["spec"]["template"]["metadata"]["labels"]["track"],
            "baseline"
        );
        // Every request augur sent is one the example's Role allows.
        let granted = |(g, r, v): &(String, String, String)| {
            rules.iter().any(|rule| {
                rule["apiGroups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == g.as_str())
                    && rule["resources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x == r.as_str())
                    && rule["verbs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x == v.as_str())
            })
        };
        let needs: std::collections::BTreeSet<_> =
            kube.requests().iter().map(|(_, r)| rbac_need(r)).collect();
        for n in &needs {
            assert!(granted(n), "{example}: the Role does not grant {n:?}");
        }
        assert!(needs.len() >= 4, "{needs:?}");
        token.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_ha_only_the_leader_drives_and_a_new_leader_resumes_from_the_cluster() {
    let token = CancellationToken::new();
    let kube = FakeKube::start(None, token.clone()).await.unwrap();
    canary_pair(&kube, 4);
    route(&kube);
    let target = TestTarget::start(health(1)).await;
    let rollout_cfg = GATEWAY_ROLLOUT.replace("pause = \"1s\"", "pause = \"\"");
    let with_ha = |id: &str| {
        format!(
            "{}\n[ha]\nlease = \"shop/augur\"\nidentity = \"{id}\"\nlease_duration = \"3s\"\nrenew_deadline = \"2s\"\nretry_period = \"1s\"\n",
            config(&kube, &target, &rollout_cfg)
        )
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Daemon::start(da.path(), &with_ha("a"));
    eventually(20, "a to lead", || async {
        (a.get_json("/api/v1/status/ha").await["data"]["leader"] == true).then_some(())
    })
    .await;
    let b = Daemon::start(db.path(), &with_ha("b"));
    wait_phase(&a, "checkout", "healthy", 20).await;
    ship(&kube, "shop/checkout:v2");
    let r = wait_phase(&a, "checkout", "paused", 30).await;
    assert_eq!(r["step"], 1);
    // The standby drives nothing: it has not even looked.
    assert_eq!(rollout(&b, "checkout").await["phase"], "unknown");
    // The leader mirrored its progress into the canary Deployment.
    let ann = kube.get(&dpath("checkout-canary")).unwrap()["metadata"]["annotations"]
        ["augur.dev/rollout-progress"]
        .as_str()
        .map(str::to_string)
        .expect("progress annotation");
    let ann: Value = serde_json::from_str(&ann).unwrap();
    assert_eq!(
        (ann["phase"].as_str(), ann["step"].as_u64()),
        (Some("paused"), Some(1))
    );
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let r = eventually(20, "b to take over where a was", || async {
        let r = rollout(&b, "checkout").await;
        (r["phase"] == "paused").then_some(r)
    })
    .await;
    assert_eq!(r["step"], 1, "resumed at the same step: {r}");
    assert_eq!(r["weights"]["canary"], 10);
    // The background analysis goes on here, under the same key.
    let bg = eventually(10, "b's background run", || async {
        let r = rollout(&b, "checkout").await;
        r["analysis"]["background"]["id"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    let run = b.get_json(&format!("/api/v1/analysis/runs/{bg}")).await;
    assert!(
        run["data"]["key"]
            .as_str()
            .unwrap()
            .ends_with("/0/background"),
        "{run}"
    );
    let (code, v) = verb(&b, "checkout", "promote").await;
    assert_eq!(code, 202, "{v}");
    wait_phase(&b, "checkout", "healthy", 40).await;
    let w = writes(&kube);
    let routes: Vec<(i64, i64)> = w
        .iter()
        .filter(|(_, r)| r.path == ROUTE)
        .map(|(_, r)| weights(r))
        .collect();
    assert_eq!(
        routes,
        vec![(90, 10), (50, 50), (100, 0)],
        "nothing repeated after the failover"
    );
    let scale = format!("{}/scale", dpath("checkout-canary"));
    assert_eq!(
        w.iter().filter(|(_, r)| r.path == scale).count(),
        2,
        "canary up once, down once"
    );
    let mirrors: Vec<&Received> = w
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.path == dpath("checkout-canary") && r.method == "PATCH")
        .collect();
    assert!(mirrors.len() >= 3, "{mirrors:?}");
    assert!(mirrors
        .iter()
        .all(|r| r.content_type == "application/merge-patch+json"
            && r.body["metadata"]["annotations"]["augur.dev/rollout-progress"].is_string()));
    token.cancel();
}
