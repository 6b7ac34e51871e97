//! The HTTP side of a scrape: request headers as Prometheus sends them,
//! credentials, timeout, gzip and the body size limit.

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE, USER_AGENT,
};
use thiserror::Error;

use crate::config::{Auth, ScrapeConfig};
use crate::duration;
use crate::expfmt::ParseError;

/// Prometheus 3's `Accept` header for its default scrape protocols
/// (`scrape/scrape.go` acceptHeader with `config.DefaultScrapeProtocols`).
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// Why a scrape failed. Messages follow Prometheus's where it has one.
#[derive(Debug, Error)]
pub enum ScrapeError {
    /// The HTTP client could not be built (bad TLS settings, ...).
    #[error("cannot create HTTP client: {0}")]
    Client(String),
    /// Credentials could not be read.
    #[error("cannot read credentials: {0}")]
    Credentials(String),
    /// Connecting or reading failed.
    #[error("{0}")]
    Http(String),
    /// Not a 200 response.
    #[error("server returned HTTP status {0}")]
    Status(String),
    /// The scrape took longer than `scrape_timeout`.
    #[error("scrape timed out after {0}")]
    Timeout(String),
    /// The body was larger than `body_size_limit`.
    #[error("body size limit exceeded: read more than {0} bytes")]
    BodySizeLimit(u64),
    /// No Content-Type and no fallback protocol.
    #[error("non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target")]
    BlankContentType,
    /// A Content-Type that is not a text exposition format.
    #[error("received unsupported Content-Type {0:?} and no fallback_scrape_protocol specified for target")]
    UnsupportedContentType(String),
    /// The body is not valid exposition text.
    #[error("parse error: {0}")]
    Parse(ParseError),
    /// More samples than `sample_limit` after metric relabeling
    /// (Prometheus's `errSampleLimit`, word for word).
    #[error("sample limit exceeded")]
    SampleLimit {
        /// configured limit
        limit: u64,
        /// samples in the body
        got: u64,
    },
    /// A series over `label_limit` or a label over a length limit
    /// (Prometheus's `verifyLabelLimits` message).
    #[error("{0}")]
    LabelLimit(String),
    /// Metric relabeling removed `__name__` (Prometheus's `errNameLabelMandatory`).
    #[error("missing metric name (__name__ label)")]
    NameLabelMandatory,
    /// More targets than the job's `target_limit`.
    #[error("target_limit exceeded (number of targets: {got}, limit: {limit})")]
    TargetLimit {
        /// configured limit
        limit: u64,
        /// targets of the job
        got: u64,
    },
}

impl ScrapeError {
    /// Short reason for the failure counter's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Client(_) | ScrapeError::Credentials(_) => "config",
            ScrapeError::Http(_) => "http",
            ScrapeError::Status(_) => "status",
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::BodySizeLimit(_) => "body_size_limit",
            ScrapeError::BlankContentType | ScrapeError::UnsupportedContentType(_) => {
                "content_type"
            }
            ScrapeError::Parse(_) => "parse",
            ScrapeError::SampleLimit { .. } => "sample_limit",
            ScrapeError::LabelLimit(_) => "label_limits",
            ScrapeError::NameLabelMandatory => "metric_relabeling",
            ScrapeError::TargetLimit { .. } => "target_limit",
        }
    }

    /// `scrape_samples_scraped` to report for this failure.
    pub fn samples_scraped(&self) -> u64 {
        match self {
            ScrapeError::SampleLimit { got, .. } => *got,
            _ => 0,
        }
    }
}

/// A fetched body and its Content-Type.
pub struct Body {
    /// uncompressed bytes
    pub bytes: Vec<u8>,
    /// the response's Content-Type, if any
    pub content_type: Option<String>,
}

/// Builds the HTTP client the targets of `job` share (the scrape timeout
/// header is per request: relabeling can give targets their own).
pub fn client(job: &ScrapeConfig) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("augur/", env!("CARGO_PKG_VERSION"))),
    );
    let mut b = reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::limited(10))
        .pool_max_idle_per_host(1);
    if !job.enable_compression {
        b = b.no_gzip();
    }
    job.tls.apply(b)?.build().map_err(|e| e.to_string())
}

/// The `Authorization` header for `auth`, secrets read now.
fn auth_header(auth: &Auth) -> Result<Option<HeaderValue>, ScrapeError> {
    let Some(v) = auth.header_value().map_err(ScrapeError::Credentials)? else {
        return Ok(None);
    };
    let mut h = HeaderValue::from_str(&v).map_err(|_| {
        ScrapeError::Credentials("credentials contain invalid header characters".into())
    })?;
    h.set_sensitive(true);
    Ok(Some(h))
}

/// Fetches the target once, within its `timeout` and `body_size_limit`.
pub async fn fetch(
    client: &reqwest::Client,
    job: &ScrapeConfig,
    url: &str,
    timeout: std::time::Duration,
) -> Result<Body, ScrapeError> {
    let mut req = client.get(url);
    let secs = timeout.as_secs_f64();
    req = req.header("X-Prometheus-Scrape-Timeout-Seconds", format!("{secs}"));
    if !job.enable_compression {
        req = req.header(ACCEPT_ENCODING, "identity");
    }
    if let Some(h) = auth_header(&job.auth)? {
        req = req.header(AUTHORIZATION, h);
    }
    let limit = job.body_size_limit;
    let work = async {
        let mut resp = req
            .send()
            .await
            .map_err(|e| ScrapeError::Http(error_chain(&e)))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(ScrapeError::Status(resp.status().to_string()));
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ScrapeError::Http(error_chain(&e)))?
        {
            if limit > 0 && (bytes.len() + chunk.len()) as u64 > limit {
                return Err(ScrapeError::BodySizeLimit(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Body {
            bytes,
            content_type,
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ScrapeError::Timeout(duration::format(timeout))),
    }
}

/// An error with its sources, `: `-joined (reqwest hides the cause in them).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
