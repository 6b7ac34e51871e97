//! The Kayenta-compatible API, driven the way Argo Rollouts' `kayenta`
//! metric provider drives Kayenta (`metricproviders/kayenta/kayenta.go`):
//! look the config up by name in `GET /canaryConfig`, `POST /canary/{id}`
//! with the scopes and thresholds (only 200 accepted, `canaryExecutionId`
//! read), poll `GET /canary/{id}` until `complete`, read
//! `result.judgeResult.score.score`, truncate it, and compare with the
//! thresholds. The daemon scrapes a simulated service.

use std::time::Duration;

use crate::common::{config_for, eventually, simulated, Arm, Daemon};
use serde_json::{json, Value};

fn canary_config(name: &str) -> Value {
    let q = |promql: &str| json!({"type": "prometheus", "customInlineTemplate": format!("PromQL:{promql}")});
    json!({
        "name": name,
        "applications": ["shop"],
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "metrics": [
            {"name": "error rate", "groups": ["errors"], "scopeName": "default",
             "query": q(r#"sum(rate(http_requests_total{service="${location}",track="${scope}",code="500"}[3s])) / sum(rate(http_requests_total{service="${location}",track="${scope}"}[3s]))"#),
             "analysisConfigurations": {"canary": {"direction": "increase", "critical": true}}},
            {"name": "p99 latency", "groups": ["latency"], "scopeName": "default",
             "query": q(r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="${location}",track="${scope}"}[3s])))"#),
             "analysisConfigurations": {"canary": {"direction": "increase"}}},
        ],
        "classifier": {"groupWeights": {"errors": 50, "latency": 50}},
    })
}

#[derive(Debug, PartialEq)]
enum Phase {
    Successful,
    Inconclusive,
    Failed,
    Error(String),
}

/// Argo Rollouts' kayenta provider, step by step.
async fn argo_kayenta(
    d: &Daemon,
    config_name: &str,
    service: &str,
    pass: i64,
    marginal: i64,
) -> (Phase, Value) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let list: Value = http
        .get(d.url("/canaryConfig?application=shop&configurationAccountName=storage"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let Some(id) = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == config_name)
        .map(|c| c["id"].as_str().unwrap().to_string())
    else {
        return (Phase::Error("Canary config not found".into()), Value::Null);
    };
    let end = std::time::SystemTime::now() - Duration::from_secs(1);
    let start = end - Duration::from_secs(10);
    let ts = |t| humantime::format_rfc3339_seconds(t).to_string();
    let scope = |track: &str| json!({"scope": track, "location": service, "step": 1, "start": ts(start), "end": ts(end)});
    let body = json!({
        "scopes": {"default": {"controlScope": scope("baseline"), "experimentScope": scope("canary")}},
        "thresholds": {"pass": pass, "marginal": marginal},
    });
    let r = http
        .post(d.url(&format!("/canary/{id}?application=shop&metricsAccountName=m&configurationAccountName=c&storageAccountName=s")))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    if r.status().as_u16() != 200 {
        return (Phase::Error(format!("status {}", r.status())), Value::Null);
    }
    let started: Value = r.json().await.unwrap();
    let exec = started["canaryExecutionId"].as_str().unwrap().to_string();
    loop {
        let r = http
            .get(d.url(&format!("/canary/{exec}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        let Some(complete) = v["complete"].as_bool() else {
            return (Phase::Error("missing complete".into()), v);
        };
        if !complete {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let Some(score) = v["result"]["judgeResult"]["score"]["score"].as_f64() else {
            return (Phase::Error("Missing Score".into()), v);
        };
        let score = score as i64;
        let phase = if score >= pass {
            Phase::Successful
        } else if score >= marginal {
            Phase::Inconclusive
        } else {
            Phase::Failed
        };
        return (phase, v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_kayenta_provider_gets_augurs_verdicts() {
    let (healthy, broken) = (Arm::HEALTHY, Arm::BROKEN);
    let t = simulated(vec![
        ("bad", healthy, Some(broken)),
        ("good", healthy, Some(healthy)),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("kayenta")).unwrap();
    std::fs::write(
        dir.path().join("kayenta/web.json"),
        canary_config("web-canary").to_string(),
    )
    .unwrap();
    let mut broken_cfg = canary_config("broken-config");
    broken_cfg["metrics"][0]["scopeName"] = json!("missing");
    std::fs::write(
        dir.path().join("kayenta/broken.json"),
        broken_cfg.to_string(),
    )
    .unwrap();
    let cfg = format!(
        "kayenta_configs = [\"kayenta/*.json\"]\n{}",
        config_for(&[(
            "shop",
            "scrape_interval = \"500ms\"\nscrape_timeout = \"500ms\"",
            &[t.addr],
            ""
        )])
    );
    let d = Daemon::start(dir.path(), &cfg);
    // The judged window is the 10 s ending 1 s ago: wait until scrapes
    // every 500 ms cover it (23 of the 24 slots in 12 s).
    eventually(40, "12 s of scraped data", || async {
        let v = d
            .get_json("/api/v1/query?query=min(count_over_time(up%5B12s%5D))")
            .await;
        let n: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        (n >= 23.0).then_some(())
    })
    .await;

    let (phase, v) = argo_kayenta(&d, "web-canary", "bad", 90, 75).await;
    assert_eq!(phase, Phase::Failed, "{v:#}");
    let jr = &v["result"]["judgeResult"];
    assert_eq!(jr["judgeName"], "NetflixACAJudge-v1.0");
    assert_eq!(jr["results"][0]["classification"], "High", "{jr:#}");
    assert_eq!(jr["results"][0]["critical"], true);
    assert_eq!(jr["score"]["score"], 0.0);
    assert!(jr["score"]["classificationReason"]
        .as_str()
        .unwrap()
        .starts_with("Canary Failed: The metric error rate was classified as High (Critical)"));
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["canaryConfigId"], "web");
    assert_eq!(v["result"]["canaryDuration"], "PT10S");
    assert!(
        jr["results"][0]["experimentMetadata"]["stats"]["count"]
            .as_u64()
            .unwrap()
            >= 8
    );

    let (phase, v) = argo_kayenta(&d, "web-canary", "good", 90, 75).await;
    assert_eq!(phase, Phase::Successful, "{v:#}");
    assert_eq!(v["result"]["judgeResult"]["score"]["score"], 100.0);

    // Unknown config: Argo's "Canary config not found".
    let (phase, _) = argo_kayenta(&d, "nope", "good", 90, 75).await;
    assert_eq!(phase, Phase::Error("Canary config not found".into()));
    // A config whose metric reads a scope the request lacks ends terminal,
    // without a result: Argo reports "Missing Score" (an Error).
    let (phase, v) = argo_kayenta(&d, "broken-config", "good", 90, 75).await;
    assert_eq!(phase, Phase::Error("Missing Score".into()), "{v:#}");
    assert_eq!(v["status"], "terminal");
    assert!(v["exception"]["details"]["error"]
        .as_str()
        .unwrap()
        .contains("scope \"missing\""));

    // Requests without thresholds are refused as Kayenta refuses them.
    let r = reqwest::Client::new()
        .post(d.url("/canary/web"))
        .json(&json!({"scopes": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "Execution request must contain thresholds");
    // The config itself is served as written.
    let c: Value = reqwest::get(d.url("/canaryConfig/web"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["name"], "web-canary");
}
