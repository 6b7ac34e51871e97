//! `http_sd_configs` (Prometheus's `discovery/http`): a JSON list of target
//! groups fetched every `refresh_interval`. Any failure keeps the previous
//! targets; a shorter list removes the groups past its end.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use tokio_util::sync::CancellationToken;

use super::{RawGroup, Sink, TargetGroup};
use crate::config::HttpSdConfig;

/// Prometheus's `matchContentType`: JSON, optionally with a UTF-8 charset.
fn json_content_type(ct: &str) -> bool {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"^(?i:application/json(;[\t\n\x0C\r ]*charset=("utf-8"|utf-8))?)$"#)
            .expect("constant regex")
    });
    RE.is_match(ct.trim())
}

/// The longest answer accepted: a target list is small; this keeps a
/// broken endpoint from filling memory.
const MAX_BODY: usize = 64 << 20;

async fn fetch(client: &reqwest::Client, cfg: &HttpSdConfig) -> Result<Vec<TargetGroup>, String> {
    let mut headers = HeaderMap::new();
    if let Some(v) = cfg.auth.header_value()? {
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&v).map_err(|e| e.to_string())?,
        );
    }
    let mut resp = client
        .get(&cfg.url)
        .headers(headers)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("server returned HTTP status {}", resp.status()));
    }
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !json_content_type(&ct) {
        return Err(format!("unsupported content type {ct:?}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("answer larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    let raw: Vec<Option<RawGroup>> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    super::groups_from_raw(raw, &cfg.url, "__meta_url")
}

fn client(cfg: &HttpSdConfig) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("augur/", env!("CARGO_PKG_VERSION"))),
    );
    let secs = cfg.refresh_interval.as_secs_f64();
    if let Ok(v) = HeaderValue::from_str(&format!("{secs}")) {
        headers.insert("X-Prometheus-Refresh-Interval-Seconds", v);
    }
    let b = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(cfg.refresh_interval);
    cfg.tls.apply(b)?.build().map_err(|e| e.to_string())
}

pub(super) async fn run(cfg: HttpSdConfig, sink: Sink, cancel: CancellationToken) {
    let client = match client(&cfg) {
        Ok(c) => c,
        Err(e) => {
            sink.failed("http", &cfg.url, &e);
            return;
        }
    };
    let mut last_len = 0usize;
    loop {
        let res = tokio::select! {
            _ = cancel.cancelled() => return,
            r = fetch(&client, &cfg) => r,
        };
        match res {
            Ok(mut groups) => {
                let n = groups.len();
                groups.extend(super::removed(&cfg.url, n, last_len));
                last_len = n;
                sink.ok("http");
                sink.send(groups);
            }
            Err(e) => sink.failed("http", &cfg.url, &e),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(cfg.refresh_interval.max(Duration::from_millis(100))) => {}
        }
    }
}
