//! Generic webhook with Alertmanager's webhook payload (version 4), signed
//! as [`crate::signing`] describes (`X-Augur-Timestamp` and
//! `X-Augur-Signature` over time, method, path and body) when a secret is
//! configured.

use std::path::Path;

use serde_json::{json, Value};

use super::{alert_json, fingerprint, Notification, SendError};
use crate::config::Receiver;

pub(super) fn payload(n: &Notification<'_>) -> Value {
    let items: Vec<Value> = n
        .alerts
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
        "groupKey": n.group_key(),
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": n.common_labels,
        "commonAnnotations": n.common_annotations,
        "externalURL": n.external_url,
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
