//! Target groups from Kubernetes objects, label for label as Prometheus
//! 3's `discovery/kubernetes/{pod,service,node,ingress,endpoints,
//! endpointslice}.go` build them. Pure: the caller passes the objects a
//! group depends on (the Service of an EndpointSlice, the Pods it points
//! at, the Node of a Pod).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::discovery::TargetGroup;
use crate::relabel::LabelSet;

const P: &str = "__meta_kubernetes_";

/// Prometheus's `strutil.SanitizeLabelName`: every character outside
/// `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Go's `net.JoinHostPort`: IPv6 hosts in brackets.
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn set(ls: &mut LabelSet, name: &str, value: &str) {
    ls.set(&format!("{P}{name}"), value);
}

/// `addObjectAnnotationsAndLabels`: `<resource>_label_*`,
/// `_labelpresent_*`, `_annotation_*`, `_annotationpresent_*`.
fn add_labels_annotations(ls: &mut LabelSet, meta: &ObjectMeta, resource: &str) {
    for (k, v) in meta.labels.iter().flatten() {
        let n = sanitize(k);
        set(ls, &format!("{resource}_label_{n}"), v);
        set(ls, &format!("{resource}_labelpresent_{n}"), "true");
    }
    for (k, v) in meta.annotations.iter().flatten() {
        let n = sanitize(k);
        set(ls, &format!("{resource}_annotation_{n}"), v);
        set(ls, &format!("{resource}_annotationpresent_{n}"), "true");
    }
}

/// `addObjectMetaLabels`: `<role>_name` plus labels and annotations.
fn add_meta(ls: &mut LabelSet, meta: &ObjectMeta, role: &str) {
    set(
        ls,
        &format!("{role}_name"),
        meta.name.as_deref().unwrap_or(""),
    );
    add_labels_annotations(ls, meta, role);
}

fn ns(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("")
}

fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// The group source of an object: `<kind>/<namespace>/<name>`.
pub fn source(kind: &str, meta: &ObjectMeta) -> String {
    format!("{kind}/{}/{}", ns(meta), name(meta))
}

/// Node metadata a pod or endpoint gets with `attach_metadata.node`:
/// the node's name, labels and annotations.
fn add_node_meta(ls: &mut LabelSet, node: Option<&Node>) {
    if let Some(n) = node {
        add_meta(ls, &n.metadata, "node");
    }
}

/// `addNamespaceLabels` (`attach_metadata.namespace`): the namespace's
/// labels and annotations as `namespace_label_*`, `_labelpresent_*`,
/// `_annotation_*`, `_annotationpresent_*` (its name is already there).
pub fn add_namespace_meta(ls: &mut LabelSet, ns: &k8s_openapi::api::core::v1::Namespace) {
    add_labels_annotations(ls, &ns.metadata, "namespace");
}

/// `podLabels`: what every target of a pod carries.
pub fn pod_labels(pod: &Pod) -> LabelSet {
    let mut ls = LabelSet::new();
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    set(
        &mut ls,
        "pod_ip",
        status.and_then(|s| s.pod_ip.as_deref()).unwrap_or(""),
    );
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map_or("unknown".to_string(), |c| c.status.to_lowercase());
    set(&mut ls, "pod_ready", &ready);
    set(
        &mut ls,
        "pod_phase",
        status.and_then(|s| s.phase.as_deref()).unwrap_or(""),
    );
    set(
        &mut ls,
        "pod_node_name",
        spec.and_then(|s| s.node_name.as_deref()).unwrap_or(""),
    );
    set(
        &mut ls,
        "pod_host_ip",
        status.and_then(|s| s.host_ip.as_deref()).unwrap_or(""),
    );
    set(
        &mut ls,
        "pod_uid",
        pod.metadata.uid.as_deref().unwrap_or(""),
    );
    add_meta(&mut ls, &pod.metadata, "pod");
    if let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    {
        set(&mut ls, "pod_controller_kind", &owner.kind);
        set(&mut ls, "pod_controller_name", &owner.name);
    }
    ls
}

fn container_id(pod: &Pod, name: &str, init: bool) -> String {
    let statuses = pod.status.as_ref().and_then(|s| {
        if init {
            s.init_container_statuses.as_ref()
        } else {
            s.container_statuses.as_ref()
        }
    });
    statuses
        .into_iter()
        .flatten()
        .find(|c| c.name == name)
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default()
}

/// All containers, regular first, then init, with an "is init" flag.
fn containers(pod: &Pod) -> Vec<(&k8s_openapi::api::core::v1::Container, bool)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .map(|c| (c, false))
        .chain(spec.init_containers.iter().flatten().map(|c| (c, true)))
        .collect()
}

/// The pod role's group: one target per declared container port, one per
/// container without ports (address = pod IP); none without a pod IP.
/// `node` is given only with `attach_metadata.node`; `None` then means
/// the node is unknown and the pod is left out, as Prometheus does.
pub fn pod_group(pod: &Pod, attach_node: bool, node: Option<&Node>) -> TargetGroup {
    let mut tg = TargetGroup {
        source: source("pod", &pod.metadata),
        ..TargetGroup::default()
    };
    let Some(ip) = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
    else {
        return tg;
    };
    if attach_node && node.is_none() {
        return tg;
    }
    let mut labels = pod_labels(pod);
    set(&mut labels, "namespace", ns(&pod.metadata));
    if attach_node {
        add_node_meta(&mut labels, node);
    }
    tg.labels = labels;
    for (c, init) in containers(pod) {
        let base = [
            (format!("{P}pod_container_name"), c.name.clone()),
            (
                format!("{P}pod_container_id"),
                container_id(pod, &c.name, init),
            ),
            (
                format!("{P}pod_container_image"),
                c.image.clone().unwrap_or_default(),
            ),
            (format!("{P}pod_container_init"), init.to_string()),
        ];
        let ports = c.ports.as_deref().unwrap_or(&[]);
        if ports.is_empty() {
            let mut t = LabelSet::from_pairs(base.clone());
            t.set("__address__", ip);
            tg.targets.push(t);
            continue;
        }
        for p in ports {
            let port = p.container_port.to_string();
            let mut t = LabelSet::from_pairs(base.clone());
            t.set("__address__", &join_host_port(ip, &port));
            set(&mut t, "pod_container_port_number", &port);
            set(
                &mut t,
                "pod_container_port_name",
                p.name.as_deref().unwrap_or(""),
            );
            set(
                &mut t,
                "pod_container_port_protocol",
                p.protocol.as_deref().unwrap_or(""),
            );
            tg.targets.push(t);
        }
    }
    tg
}

/// `serviceLabels`: namespace, name, labels, annotations.
fn service_labels(svc: &Service) -> LabelSet {
    let mut ls = LabelSet::new();
    set(&mut ls, "namespace", ns(&svc.metadata));
    add_meta(&mut ls, &svc.metadata, "service");
    ls
}

/// The service role's group: one target per port at `<name>.<ns>.svc:<port>`.
pub fn service_group(svc: &Service) -> TargetGroup {
    let mut tg = TargetGroup {
        source: source("svc", &svc.metadata),
        labels: service_labels(svc),
        ..TargetGroup::default()
    };
    let spec = svc.spec.as_ref();
    let kind = spec.and_then(|s| s.type_.as_deref()).unwrap_or("");
    for p in spec.and_then(|s| s.ports.as_ref()).into_iter().flatten() {
        let port = p.port.to_string();
        let host = format!("{}.{}.svc", name(&svc.metadata), ns(&svc.metadata));
        let mut t = LabelSet::new();
        t.set("__address__", &join_host_port(&host, &port));
        set(&mut t, "service_port_name", p.name.as_deref().unwrap_or(""));
        set(&mut t, "service_port_number", &port);
        set(
            &mut t,
            "service_port_protocol",
            p.protocol.as_deref().unwrap_or(""),
        );
        set(&mut t, "service_type", kind);
        if kind == "ExternalName" {
            set(
                &mut t,
                "service_external_name",
                spec.and_then(|s| s.external_name.as_deref()).unwrap_or(""),
            );
        } else {
            set(
                &mut t,
                "service_cluster_ip",
                spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or(""),
            );
        }
        if kind == "LoadBalancer" {
            let ips: Vec<&str> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref())
                .filter(|ip| !ip.is_empty())
                .collect();
            let lb = if ips.is_empty() {
                spec.and_then(|s| s.load_balancer_ip.clone())
                    .unwrap_or_default()
            } else {
                ips.join(",")
            };
            set(&mut t, "service_loadbalancer_ip", &lb);
        }
        tg.targets.push(t);
    }
    tg
}

/// Prometheus's `nodeAddress` priority.
const NODE_ADDRESS_ORDER: [&str; 6] = [
    "InternalIP",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
    "LegacyHostIP",
    "Hostname",
];

/// The node role's group: one target at the preferred address and the
/// kubelet port; None when the node has no address (Prometheus then
/// sends nothing, keeping what it had).
pub fn node_group(node: &Node) -> Option<TargetGroup> {
    let mut labels = LabelSet::new();
    let status = node.status.as_ref();
    set(
        &mut labels,
        "node_provider_id",
        node.spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .unwrap_or(""),
    );
    for c in status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        let n = sanitize(&c.type_.to_lowercase());
        set(
            &mut labels,
            &format!("node_condition_{n}"),
            &c.status.to_lowercase(),
        );
    }
    add_meta(&mut labels, &node.metadata, "node");
    let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in status
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
    {
        by_type.entry(&a.type_).or_default().push(&a.address);
    }
    let addr = NODE_ADDRESS_ORDER
        .iter()
        .find_map(|t| by_type.get(t).map(|v| v[0]))?;
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(0, |e| e.port);
    let mut t = LabelSet::new();
    t.set("__address__", &join_host_port(addr, &port.to_string()));
    t.set("instance", name(&node.metadata));
    for (ty, a) in &by_type {
        t.set(&sanitize(&format!("{P}node_address_{ty}")), a[0]);
    }
    Some(TargetGroup {
        source: format!("node/{}", name(&node.metadata)),
        targets: vec![t],
        labels,
    })
}

/// Prometheus's `matchesHostnamePattern` (`*.example.com`).
fn matches_host(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    if p.first() != Some(&"*") || p.len() != h.len() {
        return false;
    }
    (1..p.len()).all(|i| p[i] == h[i])
}

/// The ingress role's group: one target per rule and path.
pub fn ingress_group(ing: &Ingress) -> TargetGroup {
    let mut labels = LabelSet::new();
    set(&mut labels, "namespace", ns(&ing.metadata));
    let spec = ing.spec.as_ref();
    if let Some(c) = spec.and_then(|s| s.ingress_class_name.as_deref()) {
        set(&mut labels, "ingress_class_name", c);
    }
    add_meta(&mut labels, &ing.metadata, "ingress");
    let mut tg = TargetGroup {
        source: source("ingress", &ing.metadata),
        labels,
        ..TargetGroup::default()
    };
    let tls_hosts: Vec<&str> = spec
        .and_then(|s| s.tls.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten().map(String::as_str))
        .collect();
    for rule in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten() {
        let host = rule.host.as_deref().unwrap_or("");
        let scheme = if tls_hosts.iter().any(|p| matches_host(p, host)) {
            "https"
        } else {
            "http"
        };
        // No `http` section: one target at "/"; `http: {}`: none.
        let paths: Vec<String> = match &rule.http {
            None => vec!["/".to_string()],
            Some(h) => h
                .paths
                .iter()
                .map(|p| match p.path.as_deref() {
                    None | Some("") => "/".to_string(),
                    Some(p) => p.to_string(),
                })
                .collect(),
        };
        for path in paths {
            let mut t = LabelSet::new();
            t.set("__address__", host);
            set(&mut t, "ingress_scheme", scheme);
            set(&mut t, "ingress_host", host);
            set(&mut t, "ingress_path", &path);
            tg.targets.push(t);
        }
    }
    tg
}

/// Pods by namespace/name, for the endpoint roles.
pub type PodIndex<'a> = &'a dyn Fn(&str, &str) -> Option<&'a Pod>;

/// What the endpoint roles add for a target that points at a pod, and the
/// pod's ports not served by any endpoint port (extra targets).
struct PodTargets<'a> {
    seen: Vec<(&'a Pod, Vec<i32>)>,
}

impl<'a> PodTargets<'a> {
    fn note(&mut self, pod: &'a Pod, port: Option<i32>) {
        let key = (ns(&pod.metadata), name(&pod.metadata));
        match self
            .seen
            .iter_mut()
            .find(|(p, _)| (ns(&p.metadata), name(&p.metadata)) == key)
        {
            Some((_, ports)) => ports.extend(port),
            None => self.seen.push((pod, port.into_iter().collect())),
        }
    }

    /// Prometheus's extra targets: every container port of a seen pod
    /// that no endpoint port covered.
    fn extra(&self, out: &mut Vec<LabelSet>) {
        for (pod, ports) in &self.seen {
            let Some(ip) = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .filter(|ip| !ip.is_empty())
            else {
                continue;
            };
            for (c, init) in containers(pod) {
                for cp in c.ports.iter().flatten() {
                    if ports.contains(&cp.container_port) {
                        continue;
                    }
                    let port = cp.container_port.to_string();
                    let mut t = pod_labels(pod);
                    t.set("__address__", &join_host_port(ip, &port));
                    set(&mut t, "pod_container_name", &c.name);
                    set(
                        &mut t,
                        "pod_container_image",
                        c.image.as_deref().unwrap_or(""),
                    );
                    set(
                        &mut t,
                        "pod_container_port_name",
                        cp.name.as_deref().unwrap_or(""),
                    );
                    set(&mut t, "pod_container_port_number", &port);
                    set(
                        &mut t,
                        "pod_container_port_protocol",
                        cp.protocol.as_deref().unwrap_or(""),
                    );
                    set(&mut t, "pod_container_init", &init.to_string());
                    out.push(t);
                }
            }
        }
    }
}

/// Pod labels merged into an endpoint target, plus the labels of the
/// container whose port equals the endpoint port (the last such). The
/// endpoints role labels the protocol with the endpoint port's
/// (`endpoint_protocol`), the endpointslice role with the container's.
fn merge_pod(t: &mut LabelSet, pod: &Pod, port: Option<i32>, endpoint_protocol: Option<&str>) {
    for (n, v) in pod_labels(pod).iter() {
        t.set(n, v);
    }
    let Some(port) = port else { return };
    for (c, init) in containers(pod) {
        if let Some(cp) = c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.container_port == port)
        {
            set(t, "pod_container_name", &c.name);
            set(t, "pod_container_image", c.image.as_deref().unwrap_or(""));
            set(
                t,
                "pod_container_port_name",
                cp.name.as_deref().unwrap_or(""),
            );
            set(t, "pod_container_port_number", &port.to_string());
            let proto = endpoint_protocol.unwrap_or(cp.protocol.as_deref().unwrap_or(""));
            set(t, "pod_container_port_protocol", proto);
            set(t, "pod_container_init", &init.to_string());
        }
    }
}

/// `<prefix>_address_target_kind` and `_name` of an endpoint's target.
fn target_ref_labels(
    t: &mut LabelSet,
    prefix: &str,
    r: &k8s_openapi::api::core::v1::ObjectReference,
) {
    set(
        t,
        &format!("{prefix}_address_target_kind"),
        r.kind.as_deref().unwrap_or(""),
    );
    set(
        t,
        &format!("{prefix}_address_target_name"),
        r.name.as_deref().unwrap_or(""),
    );
}

fn target_pod<'a>(
    r: Option<&k8s_openapi::api::core::v1::ObjectReference>,
    pods: PodIndex<'a>,
) -> Option<&'a Pod> {
    let r = r?;
    if r.kind.as_deref() != Some("Pod") {
        return None;
    }
    pods(
        r.namespace.as_deref().unwrap_or(""),
        r.name.as_deref().unwrap_or(""),
    )
}

/// The endpointslice role's group. `svc` is the Service named by the
/// slice's `kubernetes.io/service-name` label, if known.
pub fn endpointslice_group<'a>(
    eps: &EndpointSlice,
    svc: Option<&Service>,
    pods: PodIndex<'a>,
    nodes: &dyn Fn(&str) -> Option<&'a Node>,
    attach_node: bool,
) -> TargetGroup {
    let mut labels = LabelSet::new();
    set(&mut labels, "namespace", ns(&eps.metadata));
    set(&mut labels, "endpointslice_address_type", &eps.address_type);
    add_meta(&mut labels, &eps.metadata, "endpointslice");
    if let Some(s) = svc {
        for (n, v) in service_labels(s).iter() {
            labels.set(n, v);
        }
    }
    let mut tg = TargetGroup {
        source: source("endpointslice", &eps.metadata),
        labels,
        ..TargetGroup::default()
    };
    // A dual-stack Service's slice of its secondary family: labels only.
    if let Some(spec) = svc.and_then(|s| s.spec.as_ref()) {
        let dual = matches!(
            spec.ip_family_policy.as_deref(),
            Some("PreferDualStack" | "RequireDualStack")
        );
        if let (true, Some(first)) = (dual, spec.ip_families.as_ref().and_then(|f| f.first())) {
            if *first != eps.address_type {
                return tg;
            }
        }
    }
    let mut seen = PodTargets { seen: Vec::new() };
    for ep in &eps.endpoints {
        for port in eps.ports.iter().flatten() {
            for addr in &ep.addresses {
                let mut t = LabelSet::new();
                let a = match port.port {
                    Some(p) => join_host_port(addr, &p.to_string()),
                    None => addr.clone(),
                };
                t.set("__address__", &a);
                if let Some(n) = &port.name {
                    set(&mut t, "endpointslice_port_name", n);
                }
                if let Some(p) = &port.protocol {
                    set(&mut t, "endpointslice_port_protocol", p);
                }
                if let Some(p) = port.port {
                    set(&mut t, "endpointslice_port", &p.to_string());
                }
                if let Some(p) = &port.app_protocol {
                    set(&mut t, "endpointslice_port_app_protocol", p);
                }
                if let Some(c) = &ep.conditions {
                    for (k, v) in [
                        ("ready", c.ready),
                        ("serving", c.serving),
                        ("terminating", c.terminating),
                    ] {
                        if let Some(v) = v {
                            set(
                                &mut t,
                                &format!("endpointslice_endpoint_conditions_{k}"),
                                &v.to_string(),
                            );
                        }
                    }
                }
                if let Some(h) = &ep.hostname {
                    set(&mut t, "endpointslice_endpoint_hostname", h);
                }
                if let Some(r) = &ep.target_ref {
                    target_ref_labels(&mut t, "endpointslice", r);
                }
                if let Some(n) = &ep.node_name {
                    set(&mut t, "endpointslice_endpoint_node_name", n);
                }
                if let Some(z) = &ep.zone {
                    set(&mut t, "endpointslice_endpoint_zone", z);
                }
                for (k, v) in ep.deprecated_topology.iter().flatten() {
                    let n = sanitize(k);
                    set(&mut t, &format!("endpointslice_endpoint_topology_{n}"), v);
                    set(
                        &mut t,
                        &format!("endpointslice_endpoint_topology_present_{n}"),
                        "true",
                    );
                }
                if attach_node {
                    let node_name = match &ep.target_ref {
                        Some(r) if r.kind.as_deref() == Some("Node") => r.name.clone(),
                        _ => ep.node_name.clone(),
                    };
                    if let Some(n) = node_name.and_then(|n| nodes(&n)) {
                        add_node_meta(&mut t, Some(n));
                    }
                }
                if let Some(pod) = target_pod(ep.target_ref.as_ref(), pods) {
                    merge_pod(&mut t, pod, port.port, None);
                    seen.note(pod, port.port);
                }
                tg.targets.push(t);
            }
        }
    }
    seen.extra(&mut tg.targets);
    tg
}

/// The endpoints role's group. `svc` is the Service of the same name.
pub fn endpoints_group<'a>(
    eps: &Endpoints,
    svc: Option<&Service>,
    pods: PodIndex<'a>,
    nodes: &dyn Fn(&str) -> Option<&'a Node>,
    attach_node: bool,
) -> TargetGroup {
    let mut labels = LabelSet::new();
    set(&mut labels, "namespace", ns(&eps.metadata));
    if let Some(s) = svc {
        for (n, v) in service_labels(s).iter() {
            labels.set(n, v);
        }
    }
    add_meta(&mut labels, &eps.metadata, "endpoints");
    let mut tg = TargetGroup {
        source: source("endpoints", &eps.metadata),
        labels,
        ..TargetGroup::default()
    };
    let mut seen = PodTargets { seen: Vec::new() };
    for ss in eps.subsets.iter().flatten() {
        for port in ss.ports.iter().flatten() {
            let ready = ss.addresses.iter().flatten().map(|a| (a, "true"));
            let not_ready = ss
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, "false"));
            for (addr, r) in ready.chain(not_ready) {
                let mut t = LabelSet::new();
                t.set(
                    "__address__",
                    &join_host_port(&addr.ip, &port.port.to_string()),
                );
                set(
                    &mut t,
                    "endpoint_port_name",
                    port.name.as_deref().unwrap_or(""),
                );
                set(
                    &mut t,
                    "endpoint_port_protocol",
                    port.protocol.as_deref().unwrap_or(""),
                );
                set(&mut t, "endpoint_ready", r);
                if let Some(tr) = &addr.target_ref {
                    target_ref_labels(&mut t, "endpoint", tr);
                }
                if let Some(n) = &addr.node_name {
                    set(&mut t, "endpoint_node_name", n);
                }
                if let Some(h) = addr.hostname.as_deref().filter(|h| !h.is_empty()) {
                    set(&mut t, "endpoint_hostname", h);
                }
                if attach_node {
                    let node_name = match (&addr.node_name, &addr.target_ref) {
                        (Some(n), _) => Some(n.clone()),
                        (None, Some(r)) if r.kind.as_deref() == Some("Node") => r.name.clone(),
                        _ => None,
                    };
                    if let Some(n) = node_name.and_then(|n| nodes(&n)) {
                        add_node_meta(&mut t, Some(n));
                    }
                }
                if let Some(pod) = target_pod(addr.target_ref.as_ref(), pods) {
                    let proto = port.protocol.as_deref().unwrap_or("");
                    merge_pod(&mut t, pod, Some(port.port), Some(proto));
                    seen.note(pod, Some(port.port));
                }
                tg.targets.push(t);
            }
        }
    }
    seen.extra(&mut tg.targets);
    tg
}

#[cfg(test)]
mod tests;
