//! End to end: `augur demo` through its CLI, headless (`--json`) and with
//! time compressed by its options (1 s analysis intervals, 250 ms scrapes):
//! the real daemon, real HTTP targets, the stand-in Kubernetes API and
//! webhook. Each scenario checks what an SRE would: the decision, the exact
//! requests the cluster got, and that the audit log tells the story.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ROLLOUT: &str = "/apis/argoproj.io/v1alpha1/namespaces/demo/rollouts/checkout";

fn demo(args: &[&str]) -> (Value, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_augur"))
        .arg("demo")
        .args(args)
        .output()
        .expect("run augur demo");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "augur demo {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if args.contains(&"--json") {
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout))
        });
        (v, took)
    } else {
        (
            Value::String(String::from_utf8_lossy(&out.stdout).into_owned()),
            took,
        )
    }
}

fn fast(scenario: &str) -> Value {
    demo(&[
        "--json",
        "--scenario",
        scenario,
        "--interval",
        "1s",
        "--healthy-for",
        "3s",
        "--count",
        "8",
        "--timeout",
        "45s",
    ])
    .0
}

fn kube_requests(o: &Value) -> Vec<(String, String, String, Value)> {
    o["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["to"] == "kubernetes")
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                r["content_type"].as_str().unwrap().to_string(),
                r["body"].clone(),
            )
        })
        .collect()
}

fn audit_actions(o: &Value) -> Vec<String> {
    o["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

fn decision_webhook(o: &Value) -> Value {
    o["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["to"] == "webhook" && r["path"] == "/hooks/deploy")
        .cloned()
        .expect("the decision webhook was called")
}

#[test]
fn a_regression_is_aborted_and_the_audit_log_tells_the_story() {
    let o = fast("regression");
    assert_eq!(o["run_state"], "failed", "{o:#}");
    assert_eq!(o["decision"]["decision"], "abort");
    assert!(o["decision"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status"] == "done"));
    // Exactly what `kubectl argo rollouts abort` sends, once.
    assert_eq!(
        kube_requests(&o),
        vec![(
            "PATCH".into(),
            format!("{ROLLOUT}/status"),
            "application/merge-patch+json".into(),
            json!({"status": {"abort": true}})
        )]
    );
    let hook = decision_webhook(&o);
    assert_eq!(
        hook["idempotency_key"],
        "demo/checkout/7b9f8c5d4f/abort/deployer"
    );
    assert_eq!(hook["body"]["decision"], "abort");
    // Caught after the regression, not before it.
    let after = o["regression_to_action"].as_f64().expect("timed");
    assert!(after > 0.0 && after < 15.0, "{after}");
    assert_eq!(
        audit_actions(&o),
        [
            "analysis.started",
            "analysis.failed",
            "decision.abort",
            "action.done",
            "action.done"
        ]
    );
    // The reason names the metric that failed and its numbers.
    let failed = o["audit"][1]["detail"]["reason"].as_str().unwrap();
    assert!(
        failed.contains("\"errors\" failed: errors: canary error rate")
            || failed.contains("assessed Failed"),
        "{failed}"
    );
}

#[test]
fn a_healthy_canary_is_promoted() {
    let o = fast("healthy");
    assert_eq!(o["run_state"], "passed", "{o:#}");
    assert_eq!(o["intervals"], 8);
    assert_eq!(o["decision"]["decision"], "promote");
    // `kubectl argo rollouts promote`: read, then clear the pause
    // conditions through the status subresource.
    assert_eq!(
        kube_requests(&o),
        vec![
            ("GET".into(), ROLLOUT.into(), "".into(), Value::Null),
            (
                "PATCH".into(),
                format!("{ROLLOUT}/status"),
                "application/merge-patch+json".into(),
                json!({"status": {"pauseConditions": null}})
            ),
        ]
    );
    assert_eq!(
        audit_actions(&o),
        [
            "analysis.started",
            "analysis.passed",
            "decision.promote",
            "action.done",
            "action.done"
        ]
    );
}

#[test]
fn a_flapping_canary_target_does_not_cause_an_abort() {
    let o = fast("flapping");
    assert_ne!(o["decision"]["decision"], "abort", "{o:#}");
    assert_eq!(o["run_state"], "passed", "{o:#}");
    assert!(kube_requests(&o)
        .iter()
        .all(|r| r.3 != json!({"status": {"abort": true}})));
}

#[test]
fn a_canary_without_data_ends_inconclusive_and_pauses() {
    let o = fast("no-data");
    assert_eq!(o["run_state"], "inconclusive", "{o:#}");
    assert!(o["run_message"]
        .as_str()
        .unwrap()
        .contains("inconclusiveLimit"));
    assert_eq!(o["decision"]["decision"], "pause");
    assert_eq!(
        kube_requests(&o),
        vec![(
            "PATCH".into(),
            ROLLOUT.into(),
            "application/merge-patch+json".into(),
            json!({"spec": {"paused": true}})
        )]
    );
    assert_eq!(
        audit_actions(&o),
        [
            "analysis.started",
            "analysis.inconclusive",
            "decision.pause",
            "action.done",
            "action.done"
        ]
    );
}

/// The README's first command, as a newcomer runs it: default timings,
/// live output, the abort within a minute.
#[test]
fn the_default_demo_shows_the_abort_within_a_minute() {
    let (out, took) = demo(&[]);
    let out = out.as_str().unwrap().to_string();
    assert!(took < Duration::from_secs(60), "took {took:?}");
    for want in [
        "the canary regresses now",
        "verdict: failed",
        "→ Kubernetes API  PATCH /apis/argoproj.io/v1alpha1/namespaces/demo/rollouts/checkout/status",
        "{\"status\":{\"abort\":true}}",
        "decision: abort demo/checkout",
        "audit log",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    // One status line per interval, with traffic, error rates, p99s and
    // the sequential evidence.
    let status = out
        .lines()
        .find(|l| l.contains("#3 "))
        .unwrap_or_else(|| panic!("no status line for interval 3:\n{out}"));
    for part in ["traffic b", "5xx b", "p99 b", "errors p", "latency p"] {
        assert!(status.contains(part), "{part:?} missing from {status:?}");
    }
}

fn driven(strategy: &str, scenario: &str) -> (Value, Duration) {
    demo(&[
        "--json",
        "--strategy",
        strategy,
        "--scenario",
        scenario,
        "--interval",
        "1s",
        "--healthy-for",
        "3s",
        "--count",
        "8",
        "--timeout",
        "90s",
    ])
}

fn writes(o: &Value) -> Vec<(String, String, String, Value)> {
    kube_requests(o)
        .into_iter()
        .filter(|(m, ..)| m != "GET")
        .collect()
}

const ROUTE_PATH: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/demo/httproutes/checkout";

fn route_weights(body: &Value) -> Vec<i64> {
    body["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["weight"].as_i64().unwrap())
        .collect()
}

#[test]
fn canary_steps_walk_10_50_100_on_a_healthy_canary_and_promote() {
    let (o, took) = driven("canary-steps", "healthy");
    eprintln!(
        "canary-steps healthy demo (6 steps, 1 s intervals): {:.1} s",
        took.as_secs_f64()
    );
    assert_eq!(o["strategy"], "canary-steps");
    assert_eq!(o["weights"], json!([0, 10, 50, 100, 0]));
    assert_eq!(o["decision"]["decision"], "promote");
    assert_eq!(o["decision"]["actor"], "rollout");
    let w = writes(&o);
    let routes: Vec<Vec<i64>> = w
        .iter()
        .filter(|(m, p, ct, _)| m == "PUT" && p == ROUTE_PATH && ct == "application/json")
        .map(|(.., b)| route_weights(b))
        .collect();
    assert_eq!(
        routes,
        vec![vec![90, 10], vec![50, 50], vec![0, 100], vec![100, 0]]
    );
    let promoted = w
        .iter()
        .find(|(m, p, ..)| m == "PUT" && p == "/apis/apps/v1/namespaces/demo/deployments/checkout")
        .expect("the stable takes the new template");
    assert_eq!(
        promoted.3["spec"]["template"]["spec"]["containers"][0]["image"],
        "demo/checkout:v2"
    );
    assert_eq!(
        promoted.3["spec"]["template"]["metadata"]["labels"]["track"],
        "baseline"
    );
    // Every request the stand-in got is listed, reads too.
    assert!(kube_requests(&o)
        .iter()
        .any(|(m, p, ..)| m == "GET" && p == ROUTE_PATH));
}

#[test]
fn canary_steps_snap_back_to_0_on_a_bad_canary() {
    let (o, _) = driven("canary-steps", "regression");
    assert_eq!(o["decision"]["decision"], "abort");
    assert!(
        o["decision"]["actor"]
            .as_str()
            .unwrap()
            .starts_with("analysis:"),
        "{}",
        o["decision"]
    );
    let weights: Vec<u64> = o["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap())
        .collect();
    assert_eq!(weights.last(), Some(&0));
    assert!(
        !weights.contains(&100),
        "aborted before full traffic: {weights:?}"
    );
    let w = writes(&o);
    let last_route = w.iter().rev().find(|(_, p, ..)| p == ROUTE_PATH).unwrap();
    assert_eq!(route_weights(&last_route.3), vec![100, 0]);
    assert_eq!(w.last().unwrap().3, json!({"spec": {"replicas": 0}}));
    assert!(o["rollout"]["phase"] == "aborted", "{}", o["rollout"]);
    eprintln!(
        "canary-steps: regression to weight 0: {:?} s",
        o["regression_to_action"]
    );
}

#[test]
fn blue_green_switches_then_switches_back_on_a_bad_green() {
    let (o, _) = driven("blue-green", "regression");
    assert_eq!(o["strategy"], "blue-green");
    assert_eq!(o["decision"]["decision"], "abort");
    let switches: Vec<Value> = writes(&o)
        .into_iter()
        .filter(|(m, p, ct, _)| {
            m == "PATCH"
                && p == "/api/v1/namespaces/demo/services/checkout"
                && ct == "application/merge-patch+json"
        })
        .map(|(.., b)| b)
        .collect();
    assert_eq!(
        switches,
        vec![
            json!({"spec": {"selector": {"version": "green"}}}),
            json!({"spec": {"selector": {"version": "blue"}}})
        ]
    );
    assert!(
        o["run_message"].as_str().unwrap().contains("failed"),
        "{}",
        o["run_message"]
    );
}
