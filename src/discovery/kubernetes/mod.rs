//! `kubernetes_sd_configs` (Prometheus's `discovery/kubernetes`): list and
//! watch the role's objects (and those its groups depend on) with kube's
//! runtime watcher (resourceVersion, bookmarks, relist on 410 Gone,
//! backoff on errors), and send one target group per object as
//! [`build`] makes them. While the API server cannot be reached the last
//! groups stay, and the failure is counted and logged.

pub mod build;

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::{Sink, TargetGroup};
use crate::config::{Auth, KubeRole, KubernetesSdConfig, Secret};

/// The in-cluster file naming the pod's namespace (`own_namespace`).
const OWN_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// One watched object of any kind.
#[derive(Clone, Debug)]
enum Obj {
    Pod(Box<Pod>),
    Service(Box<Service>),
    Node(Box<Node>),
    Slice(Box<EndpointSlice>),
    Endpoints(Box<Endpoints>),
    Ingress(Box<Ingress>),
    Namespace(Box<Namespace>),
}

/// Objects are kept to rebuild groups when what they depend on changes;
/// `managedFields` is never read and is most of a real object's size.
fn slim<K: Resource>(mut o: K) -> Box<K> {
    o.meta_mut().managed_fields = None;
    Box::new(o)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Pod,
    Service,
    Node,
    Slice,
    Endpoints,
    Ingress,
    Namespace,
}

impl Obj {
    fn kind(&self) -> Kind {
        match self {
            Obj::Pod(_) => Kind::Pod,
            Obj::Service(_) => Kind::Service,
            Obj::Node(_) => Kind::Node,
            Obj::Slice(_) => Kind::Slice,
            Obj::Endpoints(_) => Kind::Endpoints,
            Obj::Ingress(_) => Kind::Ingress,
            Obj::Namespace(_) => Kind::Namespace,
        }
    }

    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Obj::Pod(o) => &o.metadata,
            Obj::Service(o) => &o.metadata,
            Obj::Node(o) => &o.metadata,
            Obj::Slice(o) => &o.metadata,
            Obj::Endpoints(o) => &o.metadata,
            Obj::Ingress(o) => &o.metadata,
            Obj::Namespace(o) => &o.metadata,
        }
    }

    /// (kind, namespace, name)
    fn key(&self) -> Key {
        let m = self.meta();
        (
            self.kind(),
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    }
}

type Key = (Kind, String, String);

/// What one watch stream covers: a kind, in one namespace or all.
#[derive(Clone, Debug)]
struct Scope {
    kind: Kind,
    namespace: Option<String>,
    path: String,
}

fn api<K>(client: &kube::Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}

type Item = (usize, Result<Event<Obj>, watcher::Error>);

fn watch<K>(
    api: Api<K>,
    wc: watcher::Config,
    idx: usize,
    wrap: fn(K) -> Obj,
) -> BoxStream<'static, Item>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    <K as Resource>::DynamicType: Default,
{
    watcher::watcher(api, wc)
        .default_backoff()
        .map(move |r| {
            let r = r.map(|e| match e {
                Event::Apply(o) => Event::Apply(wrap(o)),
                Event::Delete(o) => Event::Delete(wrap(o)),
                Event::Init => Event::Init,
                Event::InitApply(o) => Event::InitApply(wrap(o)),
                Event::InitDone => Event::InitDone,
            });
            (idx, r)
        })
        .boxed()
}

fn selector(cfg: &KubernetesSdConfig, role: KubeRole) -> watcher::Config {
    let mut wc = watcher::Config::default();
    if let Some(s) = cfg.selectors.iter().find(|s| s.role == role) {
        if !s.label.is_empty() {
            wc = wc.labels(&s.label);
        }
        if !s.field.is_empty() {
            wc = wc.fields(&s.field);
        }
    }
    wc
}

/// Builds the client: a kubeconfig file, `api_server` with the job-style
/// credentials and TLS (expressed as a kubeconfig, so kube reads the
/// files and re-reads token files), or the in-cluster service account.
async fn client(cfg: &KubernetesSdConfig) -> Result<kube::Client, String> {
    let kc = if let Some(f) = &cfg.kubeconfig_file {
        let k = kube::config::Kubeconfig::read_from(f)
            .map_err(|e| format!("kubeconfig {}: {e}", f.display()))?;
        kube::Config::from_custom_kubeconfig(k, &Default::default())
            .await
            .map_err(|e| e.to_string())?
    } else if let Some(url) = &cfg.api_server {
        let mut user = serde_json::Map::new();
        match &cfg.auth {
            Auth::None => {}
            Auth::Authorization { kind, credentials } => {
                if !kind.eq_ignore_ascii_case("bearer") {
                    return Err(format!(
                        "authorization type {kind:?}: only Bearer is supported for the Kubernetes API"
                    ));
                }
                match credentials {
                    Secret::Inline(t) => {
                        user.insert("token".into(), t.clone().into());
                    }
                    Secret::File(p) => {
                        user.insert("tokenFile".into(), p.display().to_string().into());
                    }
                }
            }
            Auth::Basic { username, password } => {
                user.insert(
                    "username".into(),
                    username.read().map_err(|e| e.to_string())?.into(),
                );
                user.insert(
                    "password".into(),
                    password.read().map_err(|e| e.to_string())?.into(),
                );
            }
        }
        let t = &cfg.tls;
        if let Some(c) = &t.cert_file {
            user.insert("client-certificate".into(), c.display().to_string().into());
        }
        if let Some(k) = &t.key_file {
            user.insert("client-key".into(), k.display().to_string().into());
        }
        let mut cluster = serde_json::Map::new();
        if let Some(ca) = &t.ca_file {
            cluster.insert(
                "certificate-authority".into(),
                ca.display().to_string().into(),
            );
        }
        if t.insecure_skip_verify {
            cluster.insert("insecure-skip-tls-verify".into(), true.into());
        }
        if let Some(sn) = &t.server_name {
            cluster.insert("tls-server-name".into(), sn.clone().into());
        }
        return crate::kubeapi::client(url, user, cluster).await;
    } else {
        kube::Config::incluster().map_err(|e| e.to_string())?
    };
    kube::Client::try_from(kc).map_err(|e| e.to_string())
}

fn namespaces(cfg: &KubernetesSdConfig) -> Result<Vec<Option<String>>, String> {
    let mut names: Vec<Option<String>> = cfg.namespaces.iter().cloned().map(Some).collect();
    if cfg.own_namespace {
        let own = std::fs::read_to_string(OWN_NAMESPACE_FILE)
            .map_err(|e| format!("could not determine the pod's namespace: {e}"))?;
        if own.is_empty() {
            return Err("could not read own namespace name (empty file)".into());
        }
        names.push(Some(own));
    }
    if names.is_empty() {
        names.push(None);
    }
    Ok(names)
}

/// The watch streams a role needs: its own objects per namespace, the
/// Services and Pods endpoint groups merge in, and Nodes for the node
/// role or `attach_metadata.node`.
fn streams(
    client: &kube::Client,
    cfg: &KubernetesSdConfig,
    nss: &[Option<String>],
) -> (Vec<BoxStream<'static, Item>>, Vec<Scope>) {
    let mut scopes: Vec<Scope> = Vec::new();
    let mut push = |kind: Kind, ns: &Option<String>| {
        let res = match kind {
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::Node => "nodes",
            Kind::Slice => "endpointslices",
            Kind::Endpoints => "endpoints",
            Kind::Ingress => "ingresses",
            Kind::Namespace => "namespaces",
        };
        let path = match ns {
            Some(n) => format!("{res} in namespace {n}"),
            None => res.to_string(),
        };
        scopes.push(Scope {
            kind,
            namespace: ns.clone(),
            path,
        });
    };
    let role = cfg.role;
    for ns in nss {
        match role {
            KubeRole::Pod => push(Kind::Pod, ns),
            KubeRole::Service => push(Kind::Service, ns),
            KubeRole::Ingress => push(Kind::Ingress, ns),
            KubeRole::EndpointSlice | KubeRole::Endpoints => {
                push(role_kind(role), ns);
                push(Kind::Service, ns);
                push(Kind::Pod, ns);
            }
            KubeRole::Node => {}
        }
    }
    let wants_nodes = matches!(
        role,
        KubeRole::Pod | KubeRole::Endpoints | KubeRole::EndpointSlice
    ) && cfg.attach_node;
    if role == KubeRole::Node || wants_nodes {
        push(Kind::Node, &None);
    }
    // Prometheus watches every namespace for this, unfiltered.
    if cfg.attach_namespace && role != KubeRole::Node {
        push(Kind::Namespace, &None);
    }
    let out = scopes
        .iter()
        .enumerate()
        .map(|(i, sc)| {
            let ns = &sc.namespace;
            match sc.kind {
                Kind::Pod => watch(
                    api::<Pod>(client, ns),
                    selector(cfg, KubeRole::Pod),
                    i,
                    |o| Obj::Pod(slim(o)),
                ),
                Kind::Service => watch(
                    api::<Service>(client, ns),
                    selector(cfg, KubeRole::Service),
                    i,
                    |o| Obj::Service(slim(o)),
                ),
                Kind::Ingress => watch(
                    api::<Ingress>(client, ns),
                    selector(cfg, KubeRole::Ingress),
                    i,
                    |o| Obj::Ingress(slim(o)),
                ),
                Kind::Slice => watch(
                    api::<EndpointSlice>(client, ns),
                    selector(cfg, KubeRole::EndpointSlice),
                    i,
                    |o| Obj::Slice(slim(o)),
                ),
                Kind::Endpoints => watch(
                    api::<Endpoints>(client, ns),
                    selector(cfg, KubeRole::Endpoints),
                    i,
                    |o| Obj::Endpoints(slim(o)),
                ),
                Kind::Node => watch(
                    Api::<Node>::all(client.clone()),
                    selector(cfg, KubeRole::Node),
                    i,
                    |o| Obj::Node(slim(o)),
                ),
                Kind::Namespace => watch(
                    Api::<Namespace>::all(client.clone()),
                    watcher::Config::default(),
                    i,
                    |o| Obj::Namespace(slim(o)),
                ),
            }
        })
        .collect();
    (out, scopes)
}

/// Every object the role's groups are built from.
#[derive(Default)]
struct Stores {
    objs: BTreeMap<Key, Obj>,
}

impl Stores {
    fn pod(&self, ns: &str, name: &str) -> Option<&Pod> {
        match self
            .objs
            .get(&(Kind::Pod, ns.to_string(), name.to_string()))
        {
            Some(Obj::Pod(p)) => Some(p),
            _ => None,
        }
    }

    fn node(&self, name: &str) -> Option<&Node> {
        match self
            .objs
            .get(&(Kind::Node, String::new(), name.to_string()))
        {
            Some(Obj::Node(n)) => Some(n),
            _ => None,
        }
    }

    fn service(&self, ns: &str, name: &str) -> Option<&Service> {
        match self
            .objs
            .get(&(Kind::Service, ns.to_string(), name.to_string()))
        {
            Some(Obj::Service(s)) => Some(s),
            _ => None,
        }
    }

    /// The group of one object of the role's own kind, with its
    /// namespace's metadata when asked.
    fn group(&self, o: &Obj, cfg: &KubernetesSdConfig) -> Option<TargetGroup> {
        let mut g = self.own_group(o, cfg)?;
        if cfg.attach_namespace && !matches!(o, Obj::Node(_)) {
            let ns = o.meta().namespace.clone().unwrap_or_default();
            if let Some(Obj::Namespace(n)) = self.objs.get(&(Kind::Namespace, String::new(), ns)) {
                build::add_namespace_meta(&mut g.labels, n);
            }
        }
        Some(g)
    }

    /// The group of one object of the role's own kind; None when the
    /// object gives no group (a node without an address).
    fn own_group(&self, o: &Obj, cfg: &KubernetesSdConfig) -> Option<TargetGroup> {
        let pods = |ns: &str, name: &str| self.pod(ns, name);
        let nodes = |name: &str| self.node(name);
        Some(match o {
            Obj::Pod(p) => {
                let node = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .and_then(|n| self.node(n));
                build::pod_group(p, cfg.attach_node, node)
            }
            Obj::Service(s) => build::service_group(s),
            Obj::Node(n) => return build::node_group(n),
            Obj::Ingress(i) => build::ingress_group(i),
            Obj::Slice(s) => {
                let svc = s
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    .and_then(|n| self.service(s.metadata.namespace.as_deref().unwrap_or(""), n));
                build::endpointslice_group(s, svc, &pods, &nodes, cfg.attach_node)
            }
            Obj::Endpoints(e) => {
                let m = &e.metadata;
                let svc = self.service(
                    m.namespace.as_deref().unwrap_or(""),
                    m.name.as_deref().unwrap_or(""),
                );
                build::endpoints_group(e, svc, &pods, &nodes, cfg.attach_node)
            }
            Obj::Namespace(_) => return None,
        })
    }

    /// The groups of every object of `kind`.
    /// The groups of every object of `kind`, or of those in namespace
    /// `ns`.
    fn groups(&self, kind: Kind, ns: Option<&str>, cfg: &KubernetesSdConfig) -> Vec<TargetGroup> {
        let start = (kind, ns.unwrap_or("").to_string(), String::new());
        self.objs
            .range(start..)
            .take_while(|(k, _)| k.0 == kind && ns.is_none_or(|n| k.1 == n))
            .filter_map(|(_, o)| self.group(o, cfg))
            .collect()
    }
}

fn role_kind(r: KubeRole) -> Kind {
    match r {
        KubeRole::Pod => Kind::Pod,
        KubeRole::Service => Kind::Service,
        KubeRole::Node => Kind::Node,
        KubeRole::Ingress => Kind::Ingress,
        KubeRole::EndpointSlice => Kind::Slice,
        KubeRole::Endpoints => Kind::Endpoints,
    }
}

fn source_of(o: &Obj) -> String {
    match o {
        Obj::Pod(p) => build::source("pod", &p.metadata),
        Obj::Service(s) => build::source("svc", &s.metadata),
        Obj::Node(n) => format!("node/{}", n.metadata.name.as_deref().unwrap_or("")),
        Obj::Ingress(i) => build::source("ingress", &i.metadata),
        Obj::Slice(s) => build::source("endpointslice", &s.metadata),
        Obj::Endpoints(e) => build::source("endpoints", &e.metadata),
        Obj::Namespace(n) => format!("namespace/{}", n.metadata.name.as_deref().unwrap_or("")),
    }
}

pub(super) async fn run(cfg: KubernetesSdConfig, sink: Sink, cancel: CancellationToken) {
    let what = cfg
        .api_server
        .clone()
        .or_else(|| {
            cfg.kubeconfig_file
                .as_ref()
                .map(|f| f.display().to_string())
        })
        .unwrap_or_else(|| "in-cluster".to_string());
    let (client, nss) = match (client(&cfg).await, namespaces(&cfg)) {
        (Ok(c), Ok(n)) => (c, n),
        (Err(e), _) | (_, Err(e)) => {
            sink.failed("kubernetes", &what, &e);
            return;
        }
    };
    let (streams, scopes) = streams(&client, &cfg, &nss);
    let mut events = stream::select_all(streams);
    let own = role_kind(cfg.role);
    let mut stores = Stores::default();
    let mut pending: BTreeMap<usize, Vec<Obj>> = BTreeMap::new();
    let mut synced = vec![false; scopes.len()];
    let mut failing = vec![false; scopes.len()];
    // Sources sent with targets, so a relist can remove what vanished.
    let mut sent: BTreeSet<String> = BTreeSet::new();
    loop {
        let (idx, ev) = tokio::select! {
            _ = cancel.cancelled() => return,
            e = events.next() => match e {
                Some(e) => e,
                None => return,
            },
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                failing[idx] = true;
                sink.failed("kubernetes", &scopes[idx].path, &e.to_string());
                continue;
            }
        };
        if failing[idx] && !matches!(ev, Event::Init | Event::InitApply(_)) {
            // The stream answers again (a resumed watch or a finished
            // relist).
            failing[idx] = false;
            tracing::info!(job = %sink.job, resource = %scopes[idx].path, "Kubernetes watch recovered");
        }
        let ready_before = synced.iter().all(|s| *s);
        let mut changed: Vec<Obj> = Vec::new();
        let mut resend = false;
        match ev {
            Event::Init => {
                pending.insert(idx, Vec::new());
            }
            Event::InitApply(o) => pending.entry(idx).or_default().push(o),
            Event::InitDone => {
                let scope = &scopes[idx];
                stores.objs.retain(|k, _| {
                    !(k.0 == scope.kind && scope.namespace.as_ref().is_none_or(|n| *n == k.1))
                });
                for o in pending.remove(&idx).unwrap_or_default() {
                    stores.objs.insert(o.key(), o);
                }
                synced[idx] = true;
                resend = true;
            }
            Event::Apply(o) => {
                stores.objs.insert(o.key(), o.clone());
                changed.push(o);
            }
            Event::Delete(o) => {
                stores.objs.remove(&o.key());
                changed.push(o);
            }
        }
        if !synced.iter().all(|s| *s) {
            continue;
        }
        if !failing.iter().any(|f| *f) {
            sink.ok("kubernetes");
        }
        let mut groups: Vec<TargetGroup> = Vec::new();
        let others: Vec<&Obj> = changed.iter().filter(|o| o.kind() != own).collect();
        let cluster_wide = others
            .iter()
            .any(|o| matches!(o.kind(), Kind::Node | Kind::Namespace));
        if resend || !ready_before || cluster_wide {
            // A (re)list, or a Node or Namespace other groups carry: rebuild
            // the role's groups; the sink passes on only what changed.
            groups = stores.groups(own, None, &cfg);
            let now: BTreeSet<String> = groups.iter().map(|g| g.source.clone()).collect();
            for gone in sent.difference(&now) {
                groups.push(TargetGroup {
                    source: gone.clone(),
                    ..TargetGroup::default()
                });
            }
        } else {
            // A Service or Pod reaches only groups of its namespace.
            let nss: BTreeSet<&str> = others
                .iter()
                .map(|o| o.meta().namespace.as_deref().unwrap_or(""))
                .collect();
            for ns in nss {
                groups.extend(stores.groups(own, Some(ns), &cfg));
            }
        }
        for o in changed.iter().filter(|o| o.kind() == own) {
            let src = source_of(o);
            match stores.objs.get(&o.key()) {
                Some(cur) => groups.extend(stores.group(cur, &cfg)),
                None => groups.push(TargetGroup {
                    source: src,
                    ..TargetGroup::default()
                }),
            }
        }
        for g in &groups {
            if g.targets.is_empty() {
                sent.remove(&g.source);
            } else {
                sent.insert(g.source.clone());
            }
        }
        if !groups.is_empty() {
            sink.send(groups);
        }
    }
}
