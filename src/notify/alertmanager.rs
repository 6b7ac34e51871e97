//! Alertmanager API v2: `POST <url>/api/v2/alerts` with a JSON array of
//! postable alerts; any 2xx is success (Prometheus's `notifier/`).

use super::SendError;
use crate::config::Receiver;

pub(super) async fn send(
    http: &reqwest::Client,
    r: &Receiver,
    payload: &str,
) -> Result<(), SendError> {
    let resp = http
        .post(format!("{}/api/v2/alerts", r.url))
        .timeout(r.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload.to_string())
        .send()
        .await
        .map_err(|e| SendError::Transport(crate::redact::reqwest_error(e)))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        let status = resp.status().to_string();
        let body = resp.text().await.unwrap_or_default();
        Err(SendError::Status(format!("{status}: {}", body.trim())))
    }
}
