//! `kubernetes_sd_configs` against an in-test Kubernetes API server that
//! answers list and watch as the real one does (JSON lists with a
//! resourceVersion, chunked watch streams of ADDED/MODIFIED/DELETED
//! events, 410 Gone for a too old resourceVersion, dropped connections,
//! outages and garbage), while real HTTP targets serve the pods' metrics.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::common::{eventually, Daemon, Reply, TestTarget};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Ok,
    Down,
    Garbage,
}

struct FakeState {
    rv: u64,
    /// collection ("pods", "services", ...) -> "ns/name" -> object
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    /// (rv, collection, type, object)
    history: Vec<(u64, String, String, Value)>,
    /// watches from before this resourceVersion get 410 Gone
    oldest: u64,
    mode: Mode,
    requests: Vec<String>,
}

#[derive(Clone)]
struct Fake {
    st: Arc<Mutex<FakeState>>,
    events: broadcast::Sender<(u64, String, String, Value)>,
    /// closes every open watch when sent
    drop_all: broadcast::Sender<()>,
}

fn collection(path: &str) -> Option<(String, Option<String>)> {
    let rest = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix("/apis/discovery.k8s.io/v1/"))
        .or_else(|| path.strip_prefix("/apis/networking.k8s.io/v1/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [c] => Some((c.to_string(), None)),
        ["namespaces", ns, c] => Some((c.to_string(), Some(ns.to_string()))),
        _ => None,
    }
}

fn kind_of(c: &str) -> (&'static str, &'static str) {
    match c {
        "pods" => ("v1", "Pod"),
        "services" => ("v1", "Service"),
        "nodes" => ("v1", "Node"),
        "endpoints" => ("v1", "Endpoints"),
        "endpointslices" => ("discovery.k8s.io/v1", "EndpointSlice"),
        "ingresses" => ("networking.k8s.io/v1", "Ingress"),
        "namespaces" => ("v1", "Namespace"),
        _ => ("v1", "Unknown"),
    }
}

impl Fake {
    fn new() -> Fake {
        Fake {
            st: Arc::new(Mutex::new(FakeState {
                rv: 100,
                objects: BTreeMap::new(),
                history: Vec::new(),
                oldest: 0,
                mode: Mode::Ok,
                requests: Vec::new(),
            })),
            events: broadcast::channel(1024).0,
            drop_all: broadcast::channel(4).0,
        }
    }

    /// Adds or replaces an object; `kind` is ADDED or MODIFIED as it was
    /// known before.
    fn put(&self, c: &str, mut obj: Value) {
        let mut st = self.st.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let (api, kind) = kind_of(c);
        obj["apiVersion"] = json!(api);
        obj["kind"] = json!(kind);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = format!(
            "{}/{}",
            obj["metadata"]["namespace"].as_str().unwrap_or(""),
            obj["metadata"]["name"].as_str().unwrap()
        );
        let coll = st.objects.entry(c.to_string()).or_default();
        let ty = if coll.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        coll.insert(key, obj.clone());
        st.history.push((rv, c.into(), ty.into(), obj.clone()));
        let _ = self.events.send((rv, c.into(), ty.into(), obj));
    }

    fn delete(&self, c: &str, ns: &str, name: &str) {
        let mut st = self.st.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let Some(mut obj) = st
            .objects
            .get_mut(c)
            .and_then(|m| m.remove(&format!("{ns}/{name}")))
        else {
            return;
        };
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.history
            .push((rv, c.into(), "DELETED".into(), obj.clone()));
        let _ = self.events.send((rv, c.into(), "DELETED".into(), obj));
    }

    /// Forgets history (the next watch from an old version gets 410) and
    /// closes every open watch.
    fn expire_and_drop(&self) {
        {
            let mut st = self.st.lock().unwrap();
            st.oldest = st.rv + 1;
            st.history.clear();
        }
        let _ = self.drop_all.send(());
    }

    fn set_mode(&self, m: Mode) {
        self.st.lock().unwrap().mode = m;
        if m != Mode::Ok {
            let _ = self.drop_all.send(());
        }
    }

    fn requests(&self) -> Vec<String> {
        self.st.lock().unwrap().requests.clone()
    }

    async fn serve(self) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = Router::new().fallback(move |uri: Uri| {
            let f = self.clone();
            async move { f.handle(uri) }
        });
        tokio::spawn(async move {
            axum::serve(l, app).await.unwrap();
        });
        addr
    }

    fn handle(&self, uri: Uri) -> Response {
        let q: BTreeMap<String, String> =
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut st = self.st.lock().unwrap();
        st.requests.push(format!("GET {uri}"));
        match st.mode {
            Mode::Down => {
                return Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .header("content-type", "application/json")
                    .body(Body::from(
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "message": "apiserver is shutting down", "code": 503})
                        .to_string(),
                    ))
                    .unwrap()
            }
            Mode::Garbage => {
                return Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(
                        "{\"kind\": \"PodList\", \"items\": [ {{{ not json",
                    ))
                    .unwrap()
            }
            Mode::Ok => {}
        }
        let Some((c, ns)) = collection(uri.path()) else {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Body::from("{}"))
                .unwrap();
        };
        let in_ns = |o: &Value| {
            ns.as_ref()
                .is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n))
        };
        if q.get("watch").map(String::as_str) != Some("true") {
            let (api, kind) = kind_of(&c);
            let items: Vec<Value> = st
                .objects
                .get(&c)
                .map(|m| m.values().filter(|o| in_ns(o)).cloned().collect())
                .unwrap_or_default();
            let body = json!({"kind": format!("{kind}List"), "apiVersion": api,
                "metadata": {"resourceVersion": st.rv.to_string()}, "items": items});
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
        }
        let from: u64 = q
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let line = |ty: &str, o: &Value| format!("{}\n", json!({"type": ty, "object": o}));
        if from < st.oldest {
            let gone = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {from} ({})", st.oldest),
                "reason": "Expired", "code": 410});
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(line("ERROR", &gone)))
                .unwrap();
        }
        let backlog: Vec<String> = st
            .history
            .iter()
            .filter(|(rv, hc, _, o)| *rv > from && *hc == c && in_ns(o))
            .map(|(_, _, ty, o)| line(ty, o))
            .collect();
        drop(st);
        let events = self.events.subscribe();
        let stop = self.drop_all.subscribe();
        let ns2 = ns.clone();
        let s = futures_util::stream::unfold(
            (backlog.into_iter(), events, stop, c, ns2),
            move |(mut backlog, mut events, mut stop, c, ns)| async move {
                if let Some(l) = backlog.next() {
                    return Some((Ok::<_, Infallible>(l), (backlog, events, stop, c, ns)));
                }
                loop {
                    tokio::select! {
                        _ = stop.recv() => return None,
                        e = events.recv() => match e {
                            Ok((_, ec, ty, o)) => {
                                let ok_ns = ns.as_ref().is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n));
                                if ec == c && ok_ns {
                                    let l = format!("{}\n", json!({"type": ty, "object": o}));
                                    return Some((Ok(l), (backlog, events, stop, c, ns)));
                                }
                            }
                            Err(_) => return None,
                        },
                    }
                }
            },
        );
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(s))
            .unwrap()
    }
}

fn pod(name: &str, ip: &str, port: u16, hash: &str, app: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "labels": {"app": app, "rollouts-pod-template-hash": hash},
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{app}-{hash}"), "uid": "rs", "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": [
            {"name": "app", "image": "shop/app:1", "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}]}]},
        "status": {"podIP": ip, "hostIP": "10.0.0.1", "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

const BODY: &str = "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 5\n";

use crate::common::active_targets as active;

/// The pod role following a rollout: Argo's `rollouts-pod-template-hash`
/// becomes `track`, pods come, change and go through watch events; a
/// relist after 410 Gone and dropped connections converges; an outage
/// and garbage keep the last targets and are reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_role_follows_watch_events_and_survives_outages() {
    let stable = TestTarget::start(Reply::text(BODY)).await;
    let canary = TestTarget::start(Reply::text(BODY)).await;
    let canary2 = TestTarget::start(Reply::text(BODY)).await;
    let fake = Fake::new();
    fake.put(
        "pods",
        pod(
            "checkout-5d2a-a",
            "127.0.0.1",
            stable.addr.port(),
            "5d2a",
            "checkout",
        ),
    );
    fake.put(
        "pods",
        pod(
            "checkout-7c9f-a",
            "127.0.0.1",
            canary.addr.port(),
            "7c9f",
            "checkout",
        ),
    );
    fake.put("pods", pod("other-1", "127.0.0.1", 1, "1111", "other"));
    let api = fake.clone().serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"[global]
scrape_interval = "1s"
scrape_timeout = "1s"
[[scrape_configs]]
job_name = "pods"
[[scrape_configs.kubernetes_sd_configs]]
role = "pod"
api_server = "http://{api}"
namespaces = {{ names = ["shop"] }}
selectors = [{{ role = "pod", label = "app=checkout" }}]
[[scrape_configs.relabel_configs]]
source_labels = ["__meta_kubernetes_pod_label_rollouts_pod_template_hash"]
regex = "7c9f"
target_label = "track"
replacement = "canary"
[[scrape_configs.relabel_configs]]
source_labels = ["track"]
regex = ""
target_label = "track"
replacement = "stable"
[[scrape_configs.relabel_configs]]
source_labels = ["__meta_kubernetes_pod_name"]
target_label = "pod"
"#
    );
    let mut d = Daemon::start(dir.path(), &cfg);
    // The fake server does not filter by label selector; the selector is
    // checked on the requests instead, and `other-1` is still listed.
    let t = eventually(20, "pods discovered and scraped", || async {
        let t = d.get_json("/api/v1/targets").await;
        let a = active(&t);
        let up = a.iter().filter(|x| x["health"] == "up").count();
        (a.len() == 3 && up == 2).then_some(t)
    })
    .await;
    let a = active(&t);
    let c = a
        .iter()
        .find(|x| x["labels"]["pod"] == "checkout-7c9f-a")
        .unwrap();
    assert_eq!(c["labels"]["track"], "canary");
    assert_eq!(c["labels"]["instance"], canary.addr.to_string());
    let dl = &c["discoveredLabels"];
    assert_eq!(dl["__meta_kubernetes_namespace"], "shop");
    assert_eq!(dl["__meta_kubernetes_pod_label_app"], "checkout");
    assert_eq!(
        dl["__meta_kubernetes_pod_labelpresent_rollouts_pod_template_hash"],
        "true"
    );
    assert_eq!(
        dl["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
        "true"
    );
    assert_eq!(dl["__meta_kubernetes_pod_ready"], "true");
    assert_eq!(dl["__meta_kubernetes_pod_controller_kind"], "ReplicaSet");
    assert_eq!(
        dl["__meta_kubernetes_pod_container_port_number"],
        canary.addr.port().to_string()
    );
    let s = a
        .iter()
        .find(|x| x["labels"]["pod"] == "checkout-5d2a-a")
        .unwrap();
    assert_eq!(s["labels"]["track"], "stable");
    eventually(10, "canary series", || async {
        let s = d
            .export("http_requests_total{track=\"canary\",pod=\"checkout-7c9f-a\"}")
            .await;
        (s.len() == 1).then_some(())
    })
    .await;
    // The requests kubectl's client would send: list then watch, in the
    // namespace, with the label selector.
    let reqs = fake.requests();
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/shop/pods?")
                && r.contains("labelSelector=app%3Dcheckout")
                && !r.contains("watch=true")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter().any(|r| r.contains("watch=true")
            && r.contains("resourceVersion=")
            && r.contains("allowWatchBookmarks=true")),
        "{reqs:?}"
    );

    // Watch events: a new canary pod, the other pod deleted, the stable
    // pod losing its IP (evicted).
    fake.put(
        "pods",
        pod(
            "checkout-7c9f-b",
            "127.0.0.1",
            canary2.addr.port(),
            "7c9f",
            "checkout",
        ),
    );
    fake.delete("pods", "shop", "other-1");
    let mut evicted = pod(
        "checkout-5d2a-a",
        "",
        stable.addr.port(),
        "5d2a",
        "checkout",
    );
    evicted["status"]["podIP"] = Value::Null;
    fake.put("pods", evicted);
    eventually(15, "watch events applied", || async {
        let a = active(&d.get_json("/api/v1/targets").await);
        let pods: Vec<&str> = a
            .iter()
            .filter_map(|x| x["labels"]["pod"].as_str())
            .collect();
        (a.len() == 2 && pods.contains(&"checkout-7c9f-a") && pods.contains(&"checkout-7c9f-b"))
            .then_some(())
    })
    .await;

    // 410 Gone and dropped connections: changes made meanwhile arrive by
    // the relist.
    fake.expire_and_drop();
    fake.put(
        "pods",
        pod(
            "checkout-5d2a-a",
            "127.0.0.1",
            stable.addr.port(),
            "5d2a",
            "checkout",
        ),
    );
    eventually(20, "relisted after 410", || async {
        let a = active(&d.get_json("/api/v1/targets").await);
        (a.len() == 3).then_some(())
    })
    .await;

    // Outage: targets kept, reported in a metric and the log.
    fake.set_mode(Mode::Down);
    eventually(30, "outage reported", || async {
        (d.own_metric("augur_sd_up", "kubernetes").await == 0.0).then_some(())
    })
    .await;
    assert!(
        d.own_metric("augur_sd_refresh_failures_total", "kubernetes")
            .await
            >= 1.0
    );
    assert_eq!(active(&d.get_json("/api/v1/targets").await).len(), 3);
    assert!(d.log_text().contains("keeping the last known targets"));
    // Garbage from the API server: still kept.
    fake.set_mode(Mode::Garbage);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(active(&d.get_json("/api/v1/targets").await).len(), 3);
    // Back: a change made during the outage shows up.
    fake.delete("pods", "shop", "checkout-7c9f-b");
    fake.set_mode(Mode::Ok);
    // kube's watcher backs off up to 30 s (client-go's bound too).
    let mut last = (0, 0.0);
    for _ in 0..450 {
        let a = active(&d.get_json("/api/v1/targets").await);
        let up = d.own_metric("augur_sd_up", "kubernetes").await;
        last = (a.len(), up);
        if last == (2, 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last,
        (2, 1.0),
        "(targets, sd_up) after recovery; requests: {:?}",
        fake.requests().iter().rev().take(5).collect::<Vec<_>>()
    );
    assert_eq!(d.stop(), 0);
}

/// Every other role against the same fake server, label for label on a
/// few labels each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_node_ingress_endpoint_roles() {
    let fake = Fake::new();
    fake.put("services", json!({"metadata": {"name": "checkout", "namespace": "shop", "labels": {"app": "checkout"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}}));
    fake.put(
        "namespaces",
        json!({"metadata": {"name": "shop", "labels": {"team": "payments"},
        "annotations": {"owner": "sre"}}}),
    );
    fake.put("nodes", json!({"metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "eu-1a"}},
        "status": {"addresses": [{"type": "Hostname", "address": "node-a"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}));
    fake.put("ingresses", json!({"metadata": {"name": "web", "namespace": "shop"},
        "spec": {"tls": [{"hosts": ["shop.example.com"]}],
                 "rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/api", "pathType": "Prefix",
                     "backend": {"service": {"name": "checkout", "port": {"number": 8080}}}}]}}]}}));
    fake.put(
        "pods",
        pod("checkout-7c9f-a", "10.1.0.5", 8080, "7c9f", "checkout"),
    );
    fake.put("endpointslices", json!({"metadata": {"name": "checkout-abc", "namespace": "shop",
            "labels": {"kubernetes.io/service-name": "checkout"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}, "nodeName": "node-a",
                       "targetRef": {"kind": "Pod", "name": "checkout-7c9f-a", "namespace": "shop"}}]}));
    fake.put("endpoints", json!({"metadata": {"name": "checkout", "namespace": "shop"},
        "subsets": [{"addresses": [{"ip": "10.1.0.5", "targetRef": {"kind": "Pod", "name": "checkout-7c9f-a", "namespace": "shop"}}],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}));
    let api = fake.clone().serve().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::from("[global]\nscrape_interval = \"1m\"\n");
    for role in ["service", "node", "ingress", "endpointslice", "endpoints"] {
        cfg += &format!(
            "[[scrape_configs]]\njob_name = \"{role}\"\n[[scrape_configs.kubernetes_sd_configs]]\nrole = \"{role}\"\napi_server = \"http://{api}\"\n{}",
            match role {
                "endpointslice" => "attach_metadata = { node = true }\n",
                "service" => "attach_metadata = { namespace = true }\n",
                _ => "",
            }
        );
    }
    let mut d = Daemon::start(dir.path(), &cfg);
    let t = eventually(20, "every role discovered", || async {
        let t = d.get_json("/api/v1/targets").await;
        let a = active(&t);
        let pools: std::collections::BTreeSet<&str> =
            a.iter().filter_map(|x| x["scrapePool"].as_str()).collect();
        (pools.len() == 5).then_some(t)
    })
    .await;
    let a = active(&t);
    let pool = |p: &str| -> Vec<&Value> { a.iter().filter(|x| x["scrapePool"] == p).collect() };
    let svc = pool("service");
    assert_eq!(svc.len(), 1);
    assert_eq!(
        svc[0]["discoveredLabels"]["__address__"],
        "checkout.shop.svc:8080"
    );
    assert_eq!(
        svc[0]["discoveredLabels"]["__meta_kubernetes_service_cluster_ip"],
        "10.96.0.10"
    );
    assert_eq!(
        svc[0]["discoveredLabels"]["__meta_kubernetes_service_label_app"],
        "checkout"
    );
    let node = pool("node");
    assert_eq!(node[0]["discoveredLabels"]["__address__"], "10.0.0.1:10250");
    assert_eq!(node[0]["labels"]["instance"], "node-a");
    assert_eq!(
        node[0]["discoveredLabels"]["__meta_kubernetes_node_address_Hostname"],
        "node-a"
    );
    assert_eq!(
        node[0]["discoveredLabels"]["__meta_kubernetes_node_label_topology_kubernetes_io_zone"],
        "eu-1a"
    );
    let ing = pool("ingress");
    assert_eq!(
        ing[0]["discoveredLabels"]["__meta_kubernetes_ingress_scheme"],
        "https"
    );
    assert_eq!(
        ing[0]["discoveredLabels"]["__meta_kubernetes_ingress_path"],
        "/api"
    );
    let es = pool("endpointslice");
    assert_eq!(es.len(), 1);
    let el = &es[0]["discoveredLabels"];
    assert_eq!(el["__address__"], "10.1.0.5:8080");
    assert_eq!(
        el["__meta_kubernetes_endpointslice_endpoint_conditions_ready"],
        "true"
    );
    assert_eq!(el["__meta_kubernetes_service_name"], "checkout");
    assert_eq!(el["__meta_kubernetes_pod_name"], "checkout-7c9f-a");
    assert_eq!(
        el["__meta_kubernetes_pod_label_rollouts_pod_template_hash"],
        "7c9f"
    );
    assert_eq!(
        el["__meta_kubernetes_node_label_topology_kubernetes_io_zone"],
        "eu-1a"
    );
    let ep = pool("endpoints");
    assert_eq!(
        ep[0]["discoveredLabels"]["__meta_kubernetes_endpoint_ready"],
        "true"
    );
    assert_eq!(
        ep[0]["discoveredLabels"]["__meta_kubernetes_endpoints_name"],
        "checkout"
    );
    assert_eq!(
        ep[0]["discoveredLabels"]["__meta_kubernetes_pod_container_name"],
        "app"
    );

    // A Service change reaches the endpointslice groups built from it.
    fake.put("services", json!({"metadata": {"name": "checkout", "namespace": "shop", "labels": {"app": "checkout", "tier": "web"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}}));
    eventually(15, "service labels on the slice target", || async {
        let a = active(&d.get_json("/api/v1/targets").await);
        a.iter()
            .any(|x| {
                x["scrapePool"] == "endpointslice"
                    && x["discoveredLabels"]["__meta_kubernetes_service_label_tier"] == "web"
            })
            .then_some(())
    })
    .await;
    assert_eq!(d.stop(), 0);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// 100,000 pods (`AUGUR_K8S_PODS` to change): all discovered, listed and
/// held to `target_limit` (every target down with Prometheus's message,
/// nothing scraped), with the daemon's memory bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pods_bounded_memory_and_target_limit() {
    let n: usize = std::env::var("AUGUR_K8S_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let fake = Fake::new();
    {
        // Built directly: `put` per pod would also record history.
        let mut st = fake.st.lock().unwrap();
        let pods = st.objects.entry("pods".into()).or_default();
        for i in 0..n {
            let name = format!("p-{i}");
            pods.insert(
                format!("big/{name}"),
                json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "big", "labels": {"app": "big"}},
                    "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 9}]}]},
                    "status": {"podIP": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)}}),
            );
        }
    }
    let api = fake.clone().serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[global]\nscrape_interval = \"10s\"\nscrape_timeout = \"1s\"\n[[scrape_configs]]\njob_name = \"big\"\ntarget_limit = 1000\n[[scrape_configs.kubernetes_sd_configs]]\nrole = \"pod\"\napi_server = \"http://{api}\"\n"
    );
    let mut d = Daemon::start(dir.path(), &cfg);
    let started = std::time::Instant::now();
    eventually(120, "all pods became targets", || async {
        (d.own_metric("augur_targets", "big").await == n as f64).then_some(())
    })
    .await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let rss_discovered = rss_kib(d.pid()) / 1024;
    eprintln!("RSS after discovery and one interval: {rss_discovered} MiB");
    // Every target is held by the limit: `up` is 0 with the message.
    let t = d
        .get_json("/api/v1/targets?scrapePool=big&state=active")
        .await;
    let a = active(&t);
    assert_eq!(a.len(), n);
    eventually(30, "limit errors reported", || async {
        let t = d
            .get_json("/api/v1/targets?scrapePool=big&state=active")
            .await;
        let msg = format!("target_limit exceeded (number of targets: {n}, limit: 1000)");
        let down = active(&t)
            .iter()
            .filter(|x| x["lastError"] == msg.as_str())
            .count();
        (down > n / 2).then_some(())
    })
    .await;
    let rss_mb = rss_kib(d.pid()) / 1024;
    eprintln!("{n} pods: discovered in {took:?}, daemon RSS {rss_mb} MiB");
    assert!(
        rss_mb < 2048,
        "{n} pods took {rss_mb} MiB of memory (bound: 2048 MiB)"
    );
    assert_eq!(d.stop(), 0);
}
