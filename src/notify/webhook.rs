//! Generic webhook with Alertmanager's webhook payload (version 4), signed
//! as [`crate::signing`] describes (`X-Augur-Timestamp` and
//! `X-Augur-Signature` over time, method, path and body) when a secret is
//! configured.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::{alert_json, fingerprint, OutgoingAlert, SendError};
use crate::config::Receiver;

pub(super) fn payload(
    receiver: &str,
    status: &str,
    alerts: &[OutgoingAlert],
    common_labels: &BTreeMap<String, String>,
    common_annotations: &BTreeMap<String, String>,
    external_url: &str,
) -> Value {
    let group_labels: BTreeMap<&str, &str> = common_labels
        .get("alertname")
        .map(|a| ("alertname", a.as_str()))
        .into_iter()
        .collect();
    let items: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let mut v = alert_json(a);
            v["status"] = json!(if a.resolved { "resolved" } else { "firing" });
            v["fingerprint"] = json!(fingerprint(&a.labels));
            v
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname={:?}}}", common_labels.get("alertname").map(String::as_str).unwrap_or("")),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": external_url,
        "alerts": items,
    })
}

pub(super) async fn send(
    http: &reqwest::Client,
    r: &Receiver,
    secret_file: Option<&Path>,
    payload: &str,
) -> Result<(), SendError> {
    let mut req = http
        .post(&r.url)
        .timeout(r.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload.to_string());
    if let Some(f) = secret_file {
        let secret = std::fs::read(f)
            .map_err(|e| SendError::Invalid(format!("cannot read {}: {e}", f.display())))?;
        let secret = String::from_utf8_lossy(&secret)
            .trim_end()
            .as_bytes()
            .to_vec();
        let url = reqwest::Url::parse(&r.url)
            .map_err(|e| SendError::Invalid(format!("url {:?}: {e}", r.url)))?;
        let now = crate::clock::now_ms().div_euclid(1000);
        for (k, v) in crate::signing::headers(&secret, "POST", &url, payload.as_bytes(), now) {
            req = req.header(k, v);
        }
    }
    let resp = req
        .send()
        .await
        .map_err(|e| SendError::Transport(crate::redact::reqwest_error(e)))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(SendError::Status(resp.status().to_string()))
    }
}
