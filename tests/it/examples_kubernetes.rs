//! The shipped Kubernetes examples: `examples/kubernetes/canaries.toml`
//! compiles, is what `augur.yaml`'s ConfigMap holds, and its relabel rules
//! turn pods as Argo Rollouts, Flagger and plain Deployments label them
//! into the `namespace`, `service` and `track` the analysis templates read
//! (built with the pod role's own label builder, then relabeled).

use augur::discovery::kubernetes::build::pod_group;
use augur::relabel::{populate_labels, public_labels, Finished};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes")
}

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "labels": labels,
                     "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {"containers": [{"name": "app", "ports": [
            {"name": "http-metrics", "containerPort": 9102},
            {"name": "grpc", "containerPort": 9000}]}]},
        "status": {"podIP": "10.1.0.7"}
    }))
    .unwrap()
}

/// (track, service) of the kept target(s) of `pod` under `job`.
fn labels_of(cfg: &augur::config::Config, job: &str, p: &Pod) -> Vec<(String, String, String)> {
    let job = cfg
        .scrape_configs
        .iter()
        .find(|j| j.job_name == job)
        .unwrap();
    let g = pod_group(p, false, None);
    g.targets
        .iter()
        .filter_map(
            |t| match populate_labels(&job.target_defaults(), t, &g.labels) {
                Finished::Active { labels, .. } => {
                    let l = public_labels(&labels);
                    Some((
                        l.get("track").to_string(),
                        l.get("service").to_string(),
                        l.get("namespace").to_string(),
                    ))
                }
                _ => None,
            },
        )
        .collect()
}

fn want(track: &str, service: &str) -> Vec<(String, String, String)> {
    vec![(track.into(), service.into(), "shop".into())]
}

#[test]
fn canary_examples_label_pods_for_the_templates() {
    let path = dir().join("canaries.toml");
    let cfg = augur::config::load(&path).unwrap_or_else(|e| panic!("{e}"));

    // Argo Rollouts with canaryMetadata/stableMetadata.
    let argo = |role: &str, hash: &str| {
        pod(
            &format!("checkout-{hash}-x"),
            json!({"app.kubernetes.io/name": "checkout", "role": role, "rollouts-pod-template-hash": hash}),
        )
    };
    assert_eq!(
        labels_of(&cfg, "argo-rollouts", &argo("canary", "7c9f")),
        want("canary", "checkout")
    );
    assert_eq!(
        labels_of(&cfg, "argo-rollouts", &argo("stable", "5d2a")),
        want("baseline", "checkout")
    );
    let plain_app = pod(
        "x",
        json!({"app": "payments", "role": "canary", "rollouts-pod-template-hash": "1"}),
    );
    assert_eq!(
        labels_of(&cfg, "argo-rollouts", &plain_app),
        want("canary", "payments")
    );

    // Flagger: <app>-primary is the baseline, <app> the canary.
    let fl = |app: &str| pod(&format!("{app}-abc"), json!({"app": app}));
    assert_eq!(
        labels_of(&cfg, "flagger", &fl("checkout-primary")),
        want("baseline", "checkout")
    );
    assert_eq!(
        labels_of(&cfg, "flagger", &fl("checkout")),
        want("canary", "checkout")
    );

    // Two Deployments with a track label.
    let dep = |track: &str| pod("checkout-1", json!({"app": "checkout", "track": track}));
    assert_eq!(
        labels_of(&cfg, "deployments", &dep("canary")),
        want("canary", "checkout")
    );
    assert_eq!(
        labels_of(&cfg, "deployments", &dep("baseline")),
        want("baseline", "checkout")
    );
}

#[test]
fn manifest_configmap_is_the_example_config() {
    let yaml = std::fs::read_to_string(dir().join("augur.yaml")).unwrap();
    let start = yaml
        .find("  augur.toml: |\n")
        .expect("ConfigMap key augur.toml")
        + 16;
    let block: String = yaml[start..]
        .lines()
        .take_while(|l| *l != "---")
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let toml = std::fs::read_to_string(dir().join("canaries.toml")).unwrap();
    assert_eq!(
        block.trim_end(),
        toml.trim_end(),
        "augur.yaml's ConfigMap differs from canaries.toml"
    );
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
    ] {
        assert!(yaml.contains(&format!("kind: {kind}\n")), "missing {kind}");
    }
    assert!(yaml.contains("verbs: [\"get\", \"list\", \"watch\"]"));
}
