//! Generic webhook with Alertmanager's webhook payload (version 4), signed
//! with HMAC-SHA256 of the body in `X-Augur-Signature: sha256=<hex>` when
//! a secret is configured.

use std::collections::BTreeMap;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{alert_json, fingerprint, OutgoingAlert, SendError};
use crate::config::Receiver;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Augur-Signature";

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

/// HMAC-SHA256 of `body` as lowercase hex.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // Invariant: HMAC accepts keys of any length.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
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
        req = req.header(
            SIGNATURE_HEADER,
            format!("sha256={}", sign(&secret, payload.as_bytes())),
        );
    }
    let resp = req
        .send()
        .await
        .map_err(|e| SendError::Transport(e.to_string()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(SendError::Status(resp.status().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
