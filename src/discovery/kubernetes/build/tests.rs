//! Label sets of each role, from the objects and expectations of
//! Prometheus's `discovery/kubernetes/*_test.go`.

use serde_json::json;

use super::*;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

fn ls(p: &[(&str, &str)]) -> LabelSet {
    LabelSet::from_pairs(p.iter().map(|(a, b)| (a.to_string(), b.to_string())))
}

fn test_pod() -> Pod {
    obj(json!({
        "metadata": {"name": "testpod", "namespace": "default", "uid": "abc123",
            "labels": {"test/label": "testvalue"},
            "annotations": {"test/annotation": "testannotationvalue"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "testcontrollerkind",
                "name": "testcontrollername", "uid": "x", "controller": true}]},
        "spec": {"nodeName": "testnode", "containers": [
            {"name": "testcontainer", "image": "testcontainer:latest", "ports": [
                {"name": "testport", "protocol": "TCP", "containerPort": 9000}]},
            {"name": "testcontainer1", "image": "testcontainer1:latest"}],
            "initContainers": [{"name": "initcontainer", "image": "initcontainer:latest"}]},
        "status": {"podIP": "1.2.3.4", "hostIP": "2.3.4.5", "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "testcontainer", "containerID": "docker://a1b2c3d4e5f6",
                "image": "", "imageID": "", "ready": true, "restartCount": 0}]}
    }))
}

#[test]
fn pod_role_targets_and_labels() {
    let tg = pod_group(&test_pod(), false, None);
    assert_eq!(tg.source, "pod/default/testpod");
    assert_eq!(
        tg.targets,
        vec![
            ls(&[
                ("__address__", "1.2.3.4:9000"),
                ("__meta_kubernetes_pod_container_name", "testcontainer"),
                ("__meta_kubernetes_pod_container_port_name", "testport"),
                ("__meta_kubernetes_pod_container_port_number", "9000"),
                ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
                ("__meta_kubernetes_pod_container_init", "false"),
                (
                    "__meta_kubernetes_pod_container_id",
                    "docker://a1b2c3d4e5f6"
                ),
                (
                    "__meta_kubernetes_pod_container_image",
                    "testcontainer:latest"
                ),
            ]),
            ls(&[
                ("__address__", "1.2.3.4"),
                ("__meta_kubernetes_pod_container_name", "testcontainer1"),
                ("__meta_kubernetes_pod_container_init", "false"),
                (
                    "__meta_kubernetes_pod_container_image",
                    "testcontainer1:latest"
                ),
            ]),
            ls(&[
                ("__address__", "1.2.3.4"),
                ("__meta_kubernetes_pod_container_name", "initcontainer"),
                ("__meta_kubernetes_pod_container_init", "true"),
                (
                    "__meta_kubernetes_pod_container_image",
                    "initcontainer:latest"
                ),
            ]),
        ]
    );
    assert_eq!(
        tg.labels,
        ls(&[
            ("__meta_kubernetes_pod_name", "testpod"),
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_pod_label_test_label", "testvalue"),
            ("__meta_kubernetes_pod_labelpresent_test_label", "true"),
            (
                "__meta_kubernetes_pod_annotation_test_annotation",
                "testannotationvalue"
            ),
            (
                "__meta_kubernetes_pod_annotationpresent_test_annotation",
                "true"
            ),
            ("__meta_kubernetes_pod_node_name", "testnode"),
            ("__meta_kubernetes_pod_ip", "1.2.3.4"),
            ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_uid", "abc123"),
            (
                "__meta_kubernetes_pod_controller_kind",
                "testcontrollerkind"
            ),
            (
                "__meta_kubernetes_pod_controller_name",
                "testcontrollername"
            ),
        ])
    );
    // No pod IP: an empty group (removes what the source had).
    let mut p = test_pod();
    p.status.as_mut().unwrap().pod_ip = None;
    assert!(pod_group(&p, false, None).targets.is_empty());
    // attach_metadata.node with the node unknown: left out.
    assert!(pod_group(&test_pod(), true, None).targets.is_empty());
    let node: Node =
        obj(json!({"metadata": {"name": "testnode", "labels": {"kubernetes.io/zone": "a"}}}));
    let g = pod_group(&test_pod(), true, Some(&node));
    assert_eq!(g.labels.get("__meta_kubernetes_node_name"), "testnode");
    assert_eq!(
        g.labels
            .get("__meta_kubernetes_node_label_kubernetes_io_zone"),
        "a"
    );
    // IPv6 addresses are bracketed.
    let mut p = test_pod();
    p.status.as_mut().unwrap().pod_ip = Some("fd00::1".into());
    assert_eq!(
        pod_group(&p, false, None).targets[0].get("__address__"),
        "[fd00::1]:9000"
    );
}

#[test]
fn service_role_per_port() {
    let svc: Service = obj(json!({
        "metadata": {"name": "testservice", "namespace": "default",
            "labels": {"test-label": "testvalue"}, "annotations": {"test-annotation": "testannotationvalue"}},
        "spec": {"ports": [{"name": "testport", "protocol": "TCP", "port": 30900},
                           {"name": "testport1", "protocol": "UDP", "port": 31900}],
                 "type": "ClusterIP", "clusterIP": "10.0.0.1"}
    }));
    let tg = service_group(&svc);
    assert_eq!(tg.source, "svc/default/testservice");
    assert_eq!(
        tg.targets[0],
        ls(&[
            ("__meta_kubernetes_service_port_protocol", "TCP"),
            ("__address__", "testservice.default.svc:30900"),
            ("__meta_kubernetes_service_type", "ClusterIP"),
            ("__meta_kubernetes_service_cluster_ip", "10.0.0.1"),
            ("__meta_kubernetes_service_port_name", "testport"),
            ("__meta_kubernetes_service_port_number", "30900"),
        ])
    );
    assert_eq!(
        tg.targets[1].get("__meta_kubernetes_service_port_protocol"),
        "UDP"
    );
    assert_eq!(
        tg.labels,
        ls(&[
            ("__meta_kubernetes_service_name", "testservice"),
            ("__meta_kubernetes_namespace", "default"),
            ("__meta_kubernetes_service_label_test_label", "testvalue"),
            ("__meta_kubernetes_service_labelpresent_test_label", "true"),
            (
                "__meta_kubernetes_service_annotation_test_annotation",
                "testannotationvalue"
            ),
            (
                "__meta_kubernetes_service_annotationpresent_test_annotation",
                "true"
            ),
        ])
    );
    let ext: Service = obj(json!({"metadata": {"name": "e", "namespace": "n"},
        "spec": {"type": "ExternalName", "externalName": "FooExternalName",
                 "ports": [{"protocol": "TCP", "port": 30900}]}}));
    let t = &service_group(&ext).targets[0];
    assert_eq!(
        t.get("__meta_kubernetes_service_external_name"),
        "FooExternalName"
    );
    assert_eq!(t.get("__meta_kubernetes_service_cluster_ip"), "");
    let lb: Service = obj(json!({"metadata": {"name": "l", "namespace": "n"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1", "loadBalancerIP": "9.9.9.9",
                 "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}, {"ip": "2.2.2.2"}]}}}));
    assert_eq!(
        service_group(&lb).targets[0].get("__meta_kubernetes_service_loadbalancer_ip"),
        "1.1.1.1,2.2.2.2"
    );
}

#[test]
fn node_role_address_priority() {
    let node: Node = obj(json!({
        "metadata": {"name": "test", "labels": {"test-label": "testvalue"},
            "annotations": {"test-annotation": "testannotationvalue"}},
        "spec": {"providerID": "aws:///de"},
        "status": {"addresses": [{"type": "ExternalIP", "address": "1.2.3.5"},
                                 {"type": "InternalIP", "address": "1.2.3.4"}],
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}
    }));
    let tg = node_group(&node).unwrap();
    assert_eq!(tg.source, "node/test");
    assert_eq!(
        tg.targets[0],
        ls(&[
            ("__address__", "1.2.3.4:10250"),
            ("instance", "test"),
            ("__meta_kubernetes_node_address_InternalIP", "1.2.3.4"),
            ("__meta_kubernetes_node_address_ExternalIP", "1.2.3.5"),
        ])
    );
    assert_eq!(
        tg.labels.get("__meta_kubernetes_node_provider_id"),
        "aws:///de"
    );
    assert_eq!(
        tg.labels.get("__meta_kubernetes_node_condition_ready"),
        "true"
    );
    assert_eq!(
        tg.labels.get("__meta_kubernetes_node_label_test_label"),
        "testvalue"
    );
    let bare: Node = obj(json!({"metadata": {"name": "x"}}));
    assert!(node_group(&bare).is_none());
}

#[test]
fn ingress_role_rules_paths_and_tls() {
    let ing: Ingress = obj(json!({
        "metadata": {"name": "testingress", "namespace": "default", "labels": {"test/label": "testvalue"}},
        "spec": {"ingressClassName": "testclass",
            "tls": [{"hosts": ["*.example.com"]}],
            "rules": [
                {"host": "example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {}},
                                                            {"path": "/foo", "pathType": "Prefix", "backend": {}}]}},
                {"host": "test.example.com", "http": {"paths": [{"pathType": "Prefix", "backend": {}}]}},
                {"host": "nohttp.example.com"},
                {"host": "empty.example.com", "http": {"paths": []}}
            ]}
    }));
    let tg = ingress_group(&ing);
    let got: Vec<(String, String, String)> = tg
        .targets
        .iter()
        .map(|t| {
            (
                t.get("__address__").to_string(),
                t.get("__meta_kubernetes_ingress_scheme").to_string(),
                t.get("__meta_kubernetes_ingress_path").to_string(),
            )
        })
        .collect();
    let want = [
        ("example.com", "http", "/"),
        ("example.com", "http", "/foo"),
        ("test.example.com", "https", "/"),
        ("nohttp.example.com", "https", "/"),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        tg.labels.get("__meta_kubernetes_ingress_class_name"),
        "testclass"
    );
    assert_eq!(
        tg.labels.get("__meta_kubernetes_ingress_name"),
        "testingress"
    );
}

#[test]
fn endpointslice_role_with_service_and_pod() {
    let slice: EndpointSlice = obj(json!({
        "metadata": {"name": "testendpoints", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "testendpoints"}},
        "addressType": "IPv4",
        "ports": [{"name": "testport", "port": 9000, "protocol": "TCP", "appProtocol": "http"}],
        "endpoints": [
            {"addresses": ["1.2.3.4"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "hostname": "testendpoint1", "nodeName": "foobar", "zone": "us-east-1a",
             "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"}},
            {"addresses": ["2.3.4.5"], "conditions": {"ready": false}}
        ]
    }));
    let svc: Service = obj(
        json!({"metadata": {"name": "testendpoints", "namespace": "default",
        "labels": {"app/name": "test"}}}),
    );
    let mut pod = test_pod();
    pod.spec.as_mut().unwrap().containers[0]
        .ports
        .as_mut()
        .unwrap()
        .push(obj(json!(
        {"name": "other", "protocol": "TCP", "containerPort": 9001})));
    let pods = |n: &str, name: &str| (n == "default" && name == "testpod").then_some(&pod);
    let tg = endpointslice_group(&slice, Some(&svc), &pods, &|_| None, false);
    assert_eq!(tg.source, "endpointslice/default/testendpoints");
    assert_eq!(tg.targets.len(), 3, "{:#?}", tg.targets);
    let t = &tg.targets[0];
    assert_eq!(t.get("__address__"), "1.2.3.4:9000");
    assert_eq!(
        t.get("__meta_kubernetes_endpointslice_endpoint_conditions_ready"),
        "true"
    );
    assert_eq!(
        t.get("__meta_kubernetes_endpointslice_endpoint_conditions_terminating"),
        "false"
    );
    assert_eq!(
        t.get("__meta_kubernetes_endpointslice_endpoint_zone"),
        "us-east-1a"
    );
    assert_eq!(
        t.get("__meta_kubernetes_endpointslice_port_app_protocol"),
        "http"
    );
    assert_eq!(
        t.get("__meta_kubernetes_endpointslice_address_target_kind"),
        "Pod"
    );
    assert_eq!(t.get("__meta_kubernetes_pod_name"), "testpod");
    assert_eq!(
        t.get("__meta_kubernetes_pod_container_name"),
        "testcontainer"
    );
    assert_eq!(
        t.get("__meta_kubernetes_pod_container_id"),
        "",
        "not set by endpoint roles"
    );
    let t2 = &tg.targets[1];
    assert_eq!(t2.get("__address__"), "2.3.4.5:9000");
    assert_eq!(
        t2.get("__meta_kubernetes_endpointslice_endpoint_conditions_serving"),
        ""
    );
    // The pod's port 9001 served by no endpoint port: an extra target.
    let extra = &tg.targets[2];
    assert_eq!(extra.get("__address__"), "1.2.3.4:9001");
    assert_eq!(
        extra.get("__meta_kubernetes_pod_container_port_name"),
        "other"
    );
    assert_eq!(extra.get("__meta_kubernetes_endpointslice_port"), "");
    assert_eq!(
        tg.labels.get("__meta_kubernetes_service_name"),
        "testendpoints"
    );
    assert_eq!(
        tg.labels.get("__meta_kubernetes_service_label_app_name"),
        "test"
    );
    assert_eq!(
        tg.labels
            .get("__meta_kubernetes_endpointslice_label_kubernetes_io_service_name"),
        "testendpoints"
    );
    assert_eq!(
        tg.labels
            .get("__meta_kubernetes_endpointslice_address_type"),
        "IPv4"
    );
}

#[test]
fn endpoints_role_ready_and_not_ready() {
    let eps: Endpoints = obj(json!({
        "metadata": {"name": "testendpoints", "namespace": "default"},
        "subsets": [{
            "addresses": [{"ip": "1.2.3.4", "hostname": "testendpoint1", "nodeName": "foobar"}],
            "notReadyAddresses": [{"ip": "2.3.4.5"}],
            "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"}]
        }]
    }));
    let none = |_: &str, _: &str| None;
    let tg = endpoints_group(&eps, None, &none, &|_| None, false);
    assert_eq!(
        tg.targets[0],
        ls(&[
            ("__address__", "1.2.3.4:9000"),
            ("__meta_kubernetes_endpoint_hostname", "testendpoint1"),
            ("__meta_kubernetes_endpoint_node_name", "foobar"),
            ("__meta_kubernetes_endpoint_port_name", "testport"),
            ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
            ("__meta_kubernetes_endpoint_ready", "true"),
        ])
    );
    assert_eq!(
        tg.targets[1].get("__meta_kubernetes_endpoint_ready"),
        "false"
    );
    assert_eq!(
        tg.labels.get("__meta_kubernetes_endpoints_name"),
        "testendpoints"
    );
}

#[test]
fn sanitize_is_prometheus() {
    assert_eq!(sanitize("app.kubernetes.io/name"), "app_kubernetes_io_name");
    assert_eq!(sanitize("é-x"), "__x");
}
