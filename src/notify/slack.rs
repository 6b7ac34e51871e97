//! Slack-compatible incoming webhooks: `{"text": ...}` with one line per alert.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{OutgoingAlert, SendError};
use crate::config::Receiver;

pub(super) fn payload(
    status: &str,
    alerts: &[OutgoingAlert],
    common_labels: &BTreeMap<String, String>,
) -> Value {
    let name = common_labels
        .get("alertname")
        .map(String::as_str)
        .unwrap_or("alerts");
    let mut text = format!("[{}:{}] {name}", status.to_uppercase(), alerts.len());
    for a in alerts {
        let labels: Vec<String> = a
            .labels
            .iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let summary = a
            .annotations
            .get("summary")
            .or(a.annotations.get("description"))
            .map(String::as_str)
            .unwrap_or("");
        text.push_str(&format!(
            "\n• {}{} ({})",
            if a.resolved { "resolved: " } else { "" },
            summary,
            labels.join(", ")
        ));
    }
    json!({ "text": text })
}

pub(super) async fn send(
    http: &reqwest::Client,
    r: &Receiver,
    payload: &str,
) -> Result<(), SendError> {
    let resp = http
        .post(&r.url)
        .timeout(r.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload.to_string())
        .send()
        .await
        .map_err(|e| SendError::Transport(crate::redact::reqwest_error(e)))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(SendError::Status(resp.status().to_string()))
    }
}
