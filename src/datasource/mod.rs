//! The query interface analyses and the Kayenta API read through, and rule
//! groups when it is remote (`rules::EvalContext::remote`): PromQL over the
//! embedded store on blocking threads with timeouts and cancellation, or
//! the same queries sent whole to a Prometheus-compatible HTTP API
//! (Prometheus, Thanos, Mimir, VictoriaMetrics). It is also where the
//! engine meets the store (`impl SeriesSource for Store`).

mod json;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use thiserror::Error;

use crate::config::{Auth, DatasourceConfig, QueryConfig};
use crate::fmtfloat;
use crate::promql::{self, Engine, EvalError, QueryResult};
use crate::store::Store;

pub use json::{parse_response, write_data, ResponseError};

/// A plain-text table of a query result, one series per line.
pub fn format_table(v: &crate::promql::Value) -> String {
    use crate::promql::Value;
    let mut out = String::new();
    match v {
        Value::Scalar(f) => out.push_str(&format!("{}\n", fmtfloat::prom_api(*f))),
        Value::String(s) => out.push_str(&format!("{s}\n")),
        Value::Vector(vec) => {
            for s in vec {
                out.push_str(&format!("{} => {}\n", s.labels, fmtfloat::prom_api(s.v)));
            }
        }
        Value::Matrix(m) => {
            for s in m {
                let points: Vec<String> = s
                    .points
                    .iter()
                    .map(|(t, v)| {
                        format!(
                            "{} @{}",
                            fmtfloat::prom_api(*v),
                            fmtfloat::prom_timestamp(*t)
                        )
                    })
                    .collect();
                out.push_str(&format!("{} =>\n  {}\n", s.labels, points.join("\n  ")));
            }
        }
    }
    out
}

/// Why a query failed.
#[derive(Debug, Error)]
pub enum DatasourceError {
    /// The expression does not parse.
    #[error("{0}")]
    BadQuery(String),
    /// The request asks for more than a query may (resolution, time range).
    #[error("{0}")]
    BadRequest(String),
    /// Evaluation failed (Prometheus errorType `execution`).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout.
    #[error("query timed out in expression evaluation")]
    Timeout,
    /// The remote API could not be reached or answered badly.
    #[error("remote query failed: {0}")]
    Remote(String),
    /// The remote API answered with an error.
    #[error("remote {kind} error: {message}")]
    RemoteQuery {
        /// Prometheus errorType
        kind: String,
        /// Prometheus error text
        message: String,
    },
}

/// A data source for queries.
#[derive(Clone)]
pub enum Datasource {
    /// augur's own store.
    Embedded {
        /// the store
        store: Arc<Store>,
        /// engine limits
        query: QueryConfig,
    },
    /// A remote Prometheus-compatible API.
    Remote(RemoteClient),
}

impl Datasource {
    /// Builds the configured datasource.
    pub fn new(
        cfg: &DatasourceConfig,
        query: &QueryConfig,
        store: Arc<Store>,
    ) -> Result<Datasource, DatasourceError> {
        Ok(match cfg {
            DatasourceConfig::Embedded => Datasource::Embedded {
                store,
                query: query.clone(),
            },
            DatasourceConfig::Prometheus {
                url,
                timeout,
                auth,
                headers,
            } => Datasource::Remote(RemoteClient::new(url, *timeout, auth.clone(), headers)?),
        })
    }

    /// An instant query at `t` (ms).
    pub async fn instant(&self, query: &str, t: i64) -> Result<QueryResult, DatasourceError> {
        match self {
            Datasource::Embedded { store, query: q } => {
                let store = store.clone();
                let text = query.to_string();
                run_local(q, move |engine| {
                    let expr = promql::parse(&text)?;
                    engine.instant(&*store, &expr, t)
                })
                .await
            }
            Datasource::Remote(r) => r.instant(query, t).await,
        }
    }

    /// A range query from `start` to `end` every `step` (ms), with the
    /// API's resolution limit whichever datasource answers.
    pub async fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult, DatasourceError> {
        promql::check_range(start, end, step)
            .map_err(|e| DatasourceError::BadRequest(e.to_string()))?;
        match self {
            Datasource::Embedded { store, query: q } => {
                let store = store.clone();
                let text = query.to_string();
                run_local(q, move |engine| {
                    let expr = promql::parse(&text)?;
                    engine.range(&*store, &expr, start, end, step)
                })
                .await
            }
            Datasource::Remote(r) => r.range(query, start, end, step).await,
        }
    }
}

/// The embedded store as the engine's data: the store knows nothing of
/// PromQL and PromQL nothing of the store, so they meet here.
impl promql::SeriesSource for Store {
    fn select(
        &self,
        matchers: &[crate::labels::Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<crate::sample::SeriesData>, promql::SourceError> {
        Ok(Store::select(self, matchers, mint, maxt))
    }
}

/// The engine with the configured limits.
pub fn engine(q: &QueryConfig) -> Engine {
    Engine {
        cancel: None,
        timeout: Some(q.timeout),
        lookback: q.lookback_delta,
        default_subquery_step: Duration::from_secs(60),
        max_samples: q.max_samples,
    }
}

/// Sets a query's cancel flag when dropped: when the HTTP client goes
/// away, axum drops the handler's future, and with it this guard, so the
/// evaluation on the blocking thread stops at its next check.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs a query (parse and evaluation, both CPU work) on a blocking
/// thread, never on the async workers. It stops at the timeout, when the
/// caller's future is dropped, or when `shutdown` is set.
pub async fn run_local<F>(q: &QueryConfig, f: F) -> Result<QueryResult, DatasourceError>
where
    F: FnOnce(&Engine) -> Result<QueryResult, EvalError> + Send + 'static,
{
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let mut engine = engine(q);
    engine.cancel = Some(cancel.clone());
    let task = tokio::task::spawn_blocking(move || f(&engine));
    match tokio::time::timeout(q.timeout, task).await {
        Err(_) => Err(DatasourceError::Timeout),
        Ok(Err(e)) => Err(DatasourceError::Execution(format!(
            "query task failed: {e}"
        ))),
        Ok(Ok(Err(EvalError::Parse(m)))) => Err(DatasourceError::BadQuery(m)),
        Ok(Ok(Err(EvalError::Limit(m)))) => Err(DatasourceError::BadRequest(m)),
        Ok(Ok(Err(EvalError::Cancelled))) => Err(DatasourceError::Timeout),
        Ok(Ok(Err(e))) => Err(DatasourceError::Execution(e.to_string())),
        Ok(Ok(Ok(r))) => Ok(r),
    }
}

/// A client for a Prometheus-compatible query API.
#[derive(Clone)]
pub struct RemoteClient {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    auth: Auth,
}

impl RemoteClient {
    /// A client for `url` (e.g. `http://127.0.0.1:9090`).
    pub fn new(
        url: &str,
        timeout: Duration,
        auth: Auth,
        headers: &[(String, String)],
    ) -> Result<RemoteClient, DatasourceError> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| DatasourceError::Remote(format!("header {k}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| DatasourceError::Remote(format!("header {k}: {e}")))?;
            h.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(h)
            .user_agent(concat!("augur/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DatasourceError::Remote(e.to_string()))?;
        Ok(RemoteClient {
            client,
            url: url.trim_end_matches('/').to_string(),
            timeout,
            auth,
        })
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<QueryResult, DatasourceError> {
        let mut req = self
            .client
            .post(format!("{}{}", self.url, path))
            .timeout(self.timeout)
            .form(form);
        if let Some(v) = self.auth.header_value().map_err(DatasourceError::Remote)? {
            let mut h = reqwest::header::HeaderValue::from_str(&v)
                .map_err(|e| DatasourceError::Remote(format!("authorization: {e}")))?;
            h.set_sensitive(true);
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                DatasourceError::Timeout
            } else {
                DatasourceError::Remote(e.to_string())
            }
        })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| DatasourceError::Remote(e.to_string()))?;
        match parse_response(&body) {
            Ok(r) => Ok(r),
            Err(ResponseError::Api { kind, message }) => {
                Err(DatasourceError::RemoteQuery { kind, message })
            }
            Err(ResponseError::Malformed(m)) => {
                Err(DatasourceError::Remote(format!("HTTP {status}: {m}")))
            }
        }
    }

    /// Instant query, sent whole to `/api/v1/query`.
    pub async fn instant(&self, query: &str, t: i64) -> Result<QueryResult, DatasourceError> {
        self.post(
            "/api/v1/query",
            &[
                ("query", query.to_string()),
                ("time", fmtfloat::prom_timestamp(t)),
                ("timeout", format!("{}", self.timeout.as_secs_f64())),
            ],
        )
        .await
    }

    /// Range query, sent whole to `/api/v1/query_range`.
    pub async fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult, DatasourceError> {
        self.post(
            "/api/v1/query_range",
            &[
                ("query", query.to_string()),
                ("start", fmtfloat::prom_timestamp(start)),
                ("end", fmtfloat::prom_timestamp(end)),
                ("step", fmtfloat::prom_timestamp(step)),
                ("timeout", format!("{}", self.timeout.as_secs_f64())),
            ],
        )
        .await
    }
}
