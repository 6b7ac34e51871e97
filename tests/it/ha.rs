//! Two replicas, one actor: two real daemons elect a leader on a Lease held
//! by an in-test API server with the real one's semantics (404 then
//! create, PUT conditional on `resourceVersion` with 409 on a stale one,
//! `resourceVersion` bumped on every write), and act on an Argo Rollout
//! served by the same test. Each replica reaches the Lease through its own
//! listener, so a test can cut one replica off (a network partition).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::{json, Value};

use crate::common::{eventually, Daemon};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/augur/leases/augur";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/augur/leases";
const ROLLOUTS: &str = "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/";

#[derive(Default)]
struct World {
    lease: Option<Value>,
    rv: u64,
    /// (holder, when) each time a write changed the holder
    holders: Vec<(String, Instant)>,
    /// listeners cut off from the lease ("a", "b")
    down: Vec<&'static str>,
    /// rollout name -> status.abort
    aborted: HashMap<String, bool>,
    /// abort patches received, per rollout
    abort_patches: HashMap<String, usize>,
    /// lease requests that broke the rules (e.g. a PUT without resourceVersion)
    problems: Vec<String>,
}

type Shared = Arc<Mutex<World>>;

fn status(code: u16, reason: &str) -> axum::response::Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": reason, "reason": reason, "code": code})
        .to_string(),
    )
        .into_response()
}

fn ok(code: u16, v: &Value) -> axum::response::Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn handle(
    w: &Shared,
    who: &'static str,
    method: &Method,
    path: &str,
    body: &str,
) -> axum::response::Response {
    let mut w = w.lock().unwrap();
    if path.starts_with(LEASES) {
        if w.down.contains(&who) {
            return status(503, "ServiceUnavailable");
        }
        let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        match (method.as_str(), path) {
            ("GET", LEASE) => {
                return match &w.lease {
                    Some(l) => ok(200, l),
                    None => status(404, "NotFound"),
                }
            }
            ("POST", LEASES) => {
                if w.lease.is_some() {
                    return status(409, "AlreadyExists");
                }
                if body["metadata"]["name"] != "augur" || body["kind"] != "Lease" {
                    w.problems.push(format!("bad create {body}"));
                    return status(400, "BadRequest");
                }
                w.rv += 1;
                let mut l = body;
                l["metadata"]["resourceVersion"] = json!(w.rv.to_string());
                let holder = l["spec"]["holderIdentity"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                w.holders.push((holder, Instant::now()));
                w.lease = Some(l.clone());
                return ok(201, &l);
            }
            ("PUT", LEASE) => {
                let Some(cur) = w.lease.clone() else {
                    return status(404, "NotFound");
                };
                let Some(rv) = body["metadata"]["resourceVersion"].as_str() else {
                    w.problems
                        .push(format!("PUT without resourceVersion: {body}"));
                    return status(422, "Invalid");
                };
                if rv != cur["metadata"]["resourceVersion"].as_str().unwrap() {
                    return status(409, "Conflict");
                }
                for k in ["renewTime", "acquireTime"] {
                    let t = body["spec"][k].as_str().unwrap_or("");
                    // MicroTime: RFC 3339 with microseconds, UTC.
                    if t.len() != 27 || !t.ends_with('Z') {
                        w.problems.push(format!("{k} {t:?} is not a MicroTime"));
                    }
                }
                w.rv += 1;
                let mut l = body;
                l["metadata"]["resourceVersion"] = json!(w.rv.to_string());
                let holder = l["spec"]["holderIdentity"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if w.holders.last().is_none_or(|h| h.0 != holder) {
                    w.holders.push((holder, Instant::now()));
                }
                w.lease = Some(l.clone());
                return ok(200, &l);
            }
            _ => return status(405, "MethodNotAllowed"),
        }
    }
    if let Some(rest) = path.strip_prefix(ROLLOUTS) {
        let name = rest.split('/').next().unwrap().to_string();
        if *method == Method::GET {
            let aborted = w.aborted.get(&name).copied().unwrap_or(false);
            return ok(
                200,
                &json!({"kind": "Rollout", "metadata": {"name": name}, "status": {"abort": aborted}}),
            );
        }
        if *method == Method::PATCH && rest.ends_with("/status") {
            let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            if body == json!({"status": {"abort": true}}) {
                *w.abort_patches.entry(name.clone()).or_default() += 1;
                w.aborted.insert(name, true);
            }
            return ok(200, &json!({"kind": "Rollout"}));
        }
    }
    status(404, "NotFound")
}

/// The API server on three listeners: the lease for replica a, for b, and
/// the rollouts (never cut off).
async fn start_world() -> (Shared, SocketAddr, SocketAddr, SocketAddr) {
    let w: Shared = Arc::default();
    let mut addrs = Vec::new();
    for who in ["a", "b", "sink"] {
        let w2 = w.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri, body: String| {
            let w = w2.clone();
            async move { handle(&w, who, &method, uri.path(), &body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    (w, addrs[0], addrs[1], addrs[2])
}

fn config(id: &str, lease: SocketAddr, sink: SocketAddr) -> String {
    format!(
        r#"[global]
scrape_interval = "1s"
[ha]
lease = "augur/augur"
identity = "{id}"
lease_duration = "3s"
renew_deadline = "2s"
retry_period = "500ms"
api_server = "http://{lease}"
ready_only_when_leader = true
[[actions.kubernetes]]
name = "argo"
target = "argo-rollout"
api_server = "http://{sink}"
decisions = ["abort"]
"#
    )
}

async fn ha(d: &Daemon) -> Value {
    d.get_json("/api/v1/status/ha").await["data"].clone()
}

async fn decide(d: &Daemon, rollout: &str) {
    let r = reqwest::Client::new()
        .post(d.url(&format!("/api/v1/rollouts/shop/{rollout}/abort")))
        .json(&json!({"revision": "r1", "reason": "canary failed"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

fn patches(w: &Shared, rollout: &str) -> usize {
    w.lock()
        .unwrap()
        .abort_patches
        .get(rollout)
        .copied()
        .unwrap_or(0)
}

/// The world, then replica a (leading) and b (standby, seeing a).
async fn start_pair() -> (Shared, Daemon, Daemon, [tempfile::TempDir; 2]) {
    let (w, lease_a, lease_b, sink) = start_world().await;
    let dir_a = tempfile::tempdir().unwrap();
    let a = Daemon::start(dir_a.path(), &config("a", lease_a, sink));
    eventually(10, "a leads", || async {
        (ha(&a).await["leader"] == true).then_some(())
    })
    .await;
    let dir_b = tempfile::tempdir().unwrap();
    let b = Daemon::start(dir_b.path(), &config("b", lease_b, sink));
    eventually(10, "b sees a holding the lease", || async {
        (ha(&b).await["holder"] == "a").then_some(())
    })
    .await;
    (w, a, b, [dir_a, dir_b])
}

/// kill -9 the leader with an abort decided on both replicas and another
/// held only by the standby: the standby takes over within the lease
/// duration and the rollouts receive exactly one abort request each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_after_kill_and_acts_exactly_once() {
    let (w, a, b, _dirs) = start_pair().await;
    let st = ha(&b).await;
    assert_eq!(st["leader"], false);
    assert_eq!(
        b.get_text("/-/ready").await.0,
        503,
        "a standby is not ready"
    );
    assert_eq!(a.get_text("/-/ready").await.0, 200);
    assert_eq!(a.own_metric("augur_ha_leader", "").await, 1.0);
    assert_eq!(b.own_metric("augur_ha_leader", "").await, 0.0);

    // Both replicas decide "both"; only the leader acts.
    decide(&a, "both").await;
    decide(&b, "both").await;
    eventually(10, "a aborted both", || async {
        (patches(&w, "both") == 1).then_some(())
    })
    .await;
    // The standby holds "held" and its own decision.
    decide(&b, "onlyb").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(patches(&w, "onlyb"), 0, "a standby acted");
    assert_eq!(patches(&w, "both"), 1);
    let held = b.get_json("/api/v1/decisions").await;
    let held: Vec<&Value> = held["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["actions"].as_array().unwrap())
        .collect();
    assert_eq!(held.len(), 2);
    assert!(
        held.iter()
            .all(|a| a["held"] == true && a["status"] == "pending"),
        "{held:?}"
    );
    let audit = b.get_json("/api/v1/audit?subject=shop/onlyb").await;
    assert!(audit.to_string().contains("decision.held"), "{audit}");

    // kill -9 the leader.
    a.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    eventually(10, "b takes over", || async {
        (ha(&b).await["leader"] == true).then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    // Expired 3 s after b last saw a's renewal (at most 500 ms before the
    // kill), found within one jittered retry period (0.6 s); the rest is
    // slack for a loaded CI machine.
    assert!(
        takeover < Duration::from_millis(5000),
        "takeover took {takeover:?}"
    );
    eventually(10, "b aborted onlyb", || async {
        (patches(&w, "onlyb") == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(patches(&w, "both"), 1, "the new leader repeated an abort");
    assert_eq!(patches(&w, "onlyb"), 1);
    assert_eq!(b.get_text("/-/ready").await.0, 200);
    // The actions carry the epoch they ran under: a created the lease (0),
    // b took it over (1).
    let ds = b.get_json("/api/v1/decisions").await;
    for d in ds["data"].as_array().unwrap() {
        let act = &d["actions"][0];
        assert_eq!(act["status"], "done", "{d}");
        assert_eq!(act["response"]["lease_epoch"], 1, "{d}");
    }
    let world = w.lock().unwrap();
    assert!(world.problems.is_empty(), "{:?}", world.problems);
    let lease = world.lease.as_ref().unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 3);
    println!("takeover after kill -9: {takeover:?}");
}

/// A leader cut off from the API server stops acting before the standby
/// starts; a clean shutdown releases the lease so the other takes over at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_stops_before_the_standby_starts() {
    let (w, mut a, mut b, _dirs) = start_pair().await;

    w.lock().unwrap().down.push("a");
    let cut = Instant::now();
    let (mut a_stopped, mut b_started) = (None, None);
    while a_stopped.is_none() || b_started.is_none() {
        assert!(cut.elapsed() < Duration::from_secs(10), "no failover");
        if a_stopped.is_none() && ha(&a).await["leader"] == false {
            a_stopped = Some(cut.elapsed());
        }
        if b_started.is_none() && ha(&b).await["leader"] == true {
            b_started = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (a_stopped, b_started) = (a_stopped.unwrap(), b_started.unwrap());
    assert!(
        a_stopped < b_started,
        "a stopped acting at {a_stopped:?}, b started at {b_started:?}"
    );
    assert!(
        a_stopped <= Duration::from_millis(3000),
        "renew deadline 2 s: {a_stopped:?}"
    );
    // The cut-off replica no longer acts.
    decide(&a, "late").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(patches(&w, "late"), 0, "a replica without the lease acted");
    assert!(a.own_metric("augur_ha_transitions_total", "").await >= 2.0);

    // Heal a; b shuts down cleanly and releases; a takes over at once.
    w.lock().unwrap().down.clear();
    eventually(10, "a sees b", || async {
        (ha(&a).await["holder"] == "b").then_some(())
    })
    .await;
    let stop = Instant::now();
    assert_eq!(b.stop(), 0);
    eventually(10, "a leads again", || async {
        (ha(&a).await["leader"] == true).then_some(())
    })
    .await;
    let back = stop.elapsed();
    // Without the release a would wait the full 3 s lease duration.
    assert!(
        back < Duration::from_millis(2500),
        "takeover after release: {back:?}"
    );
    // a now carries out the abort it held.
    eventually(10, "a aborts late", || async {
        (patches(&w, "late") == 1).then_some(())
    })
    .await;
    let world = w.lock().unwrap();
    assert!(world.problems.is_empty(), "{:?}", world.problems);
    let holders: Vec<&str> = world.holders.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(holders, ["a", "b", "", "a"], "lease history");
    drop(world);
    assert_eq!(a.stop(), 0);
    println!("partition: a stopped at {a_stopped:?}, b started at {b_started:?}; release handover {back:?}");
}
