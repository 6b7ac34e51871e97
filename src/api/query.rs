//! Prometheus-compatible query endpoints over the embedded store:
//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/labels` and
//! `/api/v1/label/<name>/values`, GET or form-encoded POST, with the same
//! JSON shapes and error types as `web/api/v1/api.go`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{bad_data, parse_time, ApiError, ApiState};
use crate::datasource::{run_local, write_data, DatasourceError};
use crate::promql::{self, AnnotationKind, QueryResult};

/// Query parameters from the URL and, for POST, the form body.
pub(super) fn params(
    q: &Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = q
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        p.extend(form_urlencoded::parse(body).into_owned());
    }
    p
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Prometheus's parseDuration: float seconds or a duration string.
fn parse_duration(s: &str) -> Option<Duration> {
    if let Ok(f) = s.parse::<f64>() {
        if (0.0..9.2e15).contains(&f) {
            return Some(Duration::from_secs_f64(f));
        }
        return None;
    }
    crate::duration::parse(s).ok()
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

fn success(data: String, r: &QueryResult) -> Response {
    let mut body = format!("{{\"status\":\"success\",\"data\":{data}");
    for (key, kind) in [
        ("warnings", AnnotationKind::Warning),
        ("infos", AnnotationKind::Info),
    ] {
        let msgs: Vec<String> = r
            .annotations
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| {
                let prefix = if kind == AnnotationKind::Warning {
                    "PromQL warning: "
                } else {
                    "PromQL info: "
                };
                format!("{prefix}{}", a.message)
            })
            .collect();
        if !msgs.is_empty() {
            body.push_str(&format!(",\"{key}\":{}", serde_json::Value::from(msgs)));
        }
    }
    body.push('}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn query_error(e: DatasourceError) -> Response {
    let (status, kind, message) = match e {
        DatasourceError::BadQuery(m) => (
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("invalid parameter \"query\": {m}"),
        ),
        DatasourceError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_data", m),
        DatasourceError::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout", e.to_string()),
        DatasourceError::Execution(m) => (StatusCode::UNPROCESSABLE_ENTITY, "execution", m),
        other => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            other.to_string(),
        ),
    };
    ApiError {
        status,
        kind,
        message,
    }
    .into_response()
}

fn timeout_param(p: &[(String, String)], cfg: Duration) -> Result<Duration, ApiError> {
    match get(p, "timeout") {
        None => Ok(cfg),
        Some(t) => parse_duration(t).map(|d| d.min(cfg)).ok_or_else(|| {
            bad_data(format!(
                "invalid parameter \"timeout\": cannot parse {t:?} to a valid duration"
            ))
        }),
    }
}

/// The query limits for this request.
fn limits(
    st: &ApiState,
    p: &[(String, String)],
) -> Result<crate::config::QueryConfig, Box<Response>> {
    let mut cfg = st.query.read().clone();
    cfg.timeout = timeout_param(p, cfg.timeout).map_err(|e| Box::new(e.into_response()))?;
    Ok(cfg)
}

/// Runs one API query: at most `query.max_concurrency` at once (the rest
/// wait, within their timeout, as in Prometheus's query queue), parsed
/// and evaluated off the async workers.
async fn run_query<F>(
    st: &ApiState,
    cfg: &crate::config::QueryConfig,
    f: F,
) -> Result<QueryResult, DatasourceError>
where
    F: FnOnce(&promql::Engine) -> Result<QueryResult, promql::EvalError> + Send + 'static,
{
    let started = tokio::time::Instant::now();
    let permit =
        match tokio::time::timeout(cfg.timeout, st.query_slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => return Err(DatasourceError::Timeout),
        };
    let mut left = cfg.clone();
    left.timeout = cfg.timeout.saturating_sub(started.elapsed());
    let r = run_local(&left, f).await;
    drop(permit);
    r
}

/// The answer to a query; a large result is serialised off the async
/// workers.
async fn respond(result: Result<QueryResult, DatasourceError>, t: i64) -> Response {
    match result {
        Ok(r) => {
            match tokio::task::spawn_blocking(move || success(write_data(&r.value, t), &r)).await {
                Ok(resp) => resp,
                Err(e) => query_error(DatasourceError::Execution(format!("encoding failed: {e}"))),
            }
        }
        Err(e) => query_error(e),
    }
}

pub(super) async fn instant(
    State(st): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&q, &headers, &body);
    let query = get(&p, "query").unwrap_or("").to_string();
    let t = match get(&p, "time") {
        None => now_ms(),
        Some(s) => match parse_time(s) {
            Some(t) => t,
            None => {
                return bad_data(format!(
                    "invalid parameter \"time\": cannot parse {s:?} to a valid timestamp"
                ))
                .into_response()
            }
        },
    };
    let cfg = match limits(&st, &p) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let store = st.store.clone();
    let result = run_query(&st, &cfg, move |engine| {
        let expr = promql::parse(&query)?;
        engine.instant(&*store, &expr, t)
    })
    .await;
    respond(result, t).await
}

pub(super) async fn range(
    State(st): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&q, &headers, &body);
    let query = get(&p, "query").unwrap_or("").to_string();
    let mut times = [0i64; 2];
    for (i, name) in ["start", "end"].iter().enumerate() {
        match get(&p, name).map(|s| (s, parse_time(s))) {
            Some((_, Some(t))) => times[i] = t,
            Some((s, None)) => {
                return bad_data(format!(
                    "invalid parameter \"{name}\": cannot parse {s:?} to a valid timestamp"
                ))
                .into_response()
            }
            None => {
                return bad_data(format!(
                    "invalid parameter \"{name}\": cannot parse \"\" to a valid timestamp"
                ))
                .into_response()
            }
        }
    }
    let [start, end] = times;
    if end < start {
        return bad_data("invalid parameter \"end\": end timestamp must not be before start time")
            .into_response();
    }
    let step = match get(&p, "step").and_then(parse_duration) {
        Some(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        None => {
            return bad_data(format!(
                "invalid parameter \"step\": cannot parse {:?} to a valid duration",
                get(&p, "step").unwrap_or("")
            ))
            .into_response()
        }
    };
    // Step and resolution checks with checked arithmetic, shared with
    // every other caller of range queries.
    if let Err(e) = promql::check_range(start, end, step) {
        return bad_data(e.to_string()).into_response();
    }
    let cfg = match limits(&st, &p) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let store = st.store.clone();
    let result = run_query(&st, &cfg, move |engine| {
        let expr = promql::parse(&query)?;
        engine.range(&*store, &expr, start, end, step)
    })
    .await;
    respond(result, end).await
}

/// A range query over augur's own store with the API's limits (for the
/// `/graph` page).
pub(crate) async fn range_local(
    st: &ApiState,
    query: String,
    start: i64,
    end: i64,
    step: i64,
) -> Result<QueryResult, DatasourceError> {
    promql::check_range(start, end, step).map_err(|e| DatasourceError::Execution(e.to_string()))?;
    let cfg = st.query.read().clone();
    let store = st.store.clone();
    run_query(st, &cfg, move |engine| {
        let expr = promql::parse(&query)?;
        engine.range(&*store, &expr, start, end, step)
    })
    .await
}

/// An instant query over augur's own store with the API's limits.
pub(crate) async fn instant_local(
    st: &ApiState,
    query: String,
    t: i64,
) -> Result<QueryResult, DatasourceError> {
    let cfg = st.query.read().clone();
    let store = st.store.clone();
    run_query(st, &cfg, move |engine| {
        let expr = promql::parse(&query)?;
        engine.instant(&*store, &expr, t)
    })
    .await
}

fn label_selection(
    p: &[(String, String)],
) -> Result<(Vec<Vec<crate::labels::Matcher>>, i64, i64), ApiError> {
    let mut sets = Vec::new();
    for (k, v) in p {
        if k == "match[]" {
            sets.extend(super::parse_selector(v).map_err(|e| bad_data(e.to_string()))?);
        }
    }
    let time = |name: &str, default: i64| match get(p, name) {
        None => Ok(default),
        Some(v) => parse_time(v).ok_or_else(|| {
            bad_data(format!(
                "invalid parameter \"{name}\": cannot parse {v:?} to a valid timestamp"
            ))
        }),
    };
    Ok((sets, time("start", i64::MIN)?, time("end", i64::MAX)?))
}

fn string_list(v: Vec<String>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"status\":\"success\",\"data\":{}}}",
            serde_json::Value::from(v)
        ),
    )
        .into_response()
}

/// A store scan off the async workers, answered as a string list.
async fn blocking_list<F>(f: F) -> Response
where
    F: FnOnce() -> Vec<String> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => string_list(v),
        Err(e) => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: format!("label lookup failed: {e}"),
        }
        .into_response(),
    }
}

pub(super) async fn labels(
    State(st): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&q, &headers, &body);
    match label_selection(&p) {
        Ok((sets, mint, maxt)) => {
            let store = st.store.clone();
            blocking_list(move || store.label_names(&sets, mint, maxt)).await
        }
        Err(e) => e.into_response(),
    }
}

pub(super) async fn label_values(
    State(st): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&q, &headers, &body);
    match label_selection(&p) {
        Ok((sets, mint, maxt)) => {
            let store = st.store.clone();
            blocking_list(move || store.label_values(&name, &sets, mint, maxt)).await
        }
        Err(e) => e.into_response(),
    }
}
