//! HTTP routes (axum): health and readiness, augur's own `/metrics`, and the
//! Prometheus-compatible `/api/v1/targets` and `/api/v1/series`, plus
//! `/api/v1/export` for raw samples, and `/api/v1/analysis/*` for analysis
//! runs. Routes never write state themselves: run changes go through the
//! analysis manager.

mod analysis;
mod hooks;
mod kayenta;
mod query;
mod rules;
mod selector;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::fmtfloat;
use crate::labels::Labels;
use crate::metrics::Metrics;
use crate::scrape::ScrapeManager;
use crate::store::{is_stale_nan, Store};

pub use selector::{parse_selector, SelectorError};

/// What the routes read.
pub struct ApiState {
    /// the configuration in effect (replaced on reload)
    pub config: Arc<parking_lot::RwLock<crate::config::Config>>,
    /// the series store
    pub store: Arc<Store>,
    /// the scrape loops and their targets
    pub scrape: Arc<ScrapeManager>,
    /// augur's own metrics
    pub metrics: Arc<Metrics>,
    /// set once config, snapshot and the first scrape round are done
    pub ready: Arc<AtomicBool>,
    /// query limits (updated by the app on reload)
    pub query: Arc<parking_lot::RwLock<crate::config::QueryConfig>>,
    /// rule groups and their alerts
    pub rules: Arc<crate::rules::RuleManager>,
    /// durable state (the outbox)
    pub state: Arc<crate::state::State>,
    /// analysis templates and runs
    pub analysis: Arc<crate::analysis::engine::AnalysisManager>,
    /// who may call mutating and webhook endpoints (updated on reload)
    pub auth: Arc<parking_lot::RwLock<crate::config::ApiAuth>>,
    /// decisions and their actions
    pub act: Arc<crate::act::Dispatcher>,
}

/// Checks a mutating or webhook request against `[server]` auth: a bearer
/// token (header, or `token` query parameter for clients such as Flagger
/// that cannot set headers) or an HMAC-SHA256 signature of the body in
/// `X-Augur-Signature: sha256=<hex>`. Without either file configured every
/// request passes (the listen address defaults to loopback). Secrets are
/// never echoed or logged.
/// Most bytes a guarded request body may have (axum's default limit).
const MAX_GUARDED_BODY: usize = 2 << 20;

/// Middleware: [`check_auth`] on the whole request; the body is buffered to
/// verify its signature and handed on unchanged.
async fn require_auth(
    State(st): State<Arc<ApiState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_GUARDED_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read the request body: {e}\n"),
            )
                .into_response()
        }
    };
    if let Err(r) = check_auth(&st, &parts.headers, parts.uri.query(), &bytes) {
        return *r;
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

fn check_auth(
    st: &ApiState,
    headers: &axum::http::HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<(), Box<Response>> {
    let auth = st.auth.read().clone();
    if auth.token_file.is_none() && auth.hmac_secret_file.is_none() {
        return Ok(());
    }
    let deny = |why: &str| {
        Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{why}\n"),
            )
                .into_response(),
        )
    };
    let read = |p: &std::path::Path| match std::fs::read(p) {
        Ok(b) => Some(String::from_utf8_lossy(&b).trim().to_string()),
        Err(e) => {
            tracing::warn!(file = %p.display(), error = %e, "cannot read an auth secret file");
            None
        }
    };
    if let Some(token) = auth
        .token_file
        .as_deref()
        .and_then(read)
        .filter(|t| !t.is_empty())
    {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let from_query = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        });
        if bearer.is_some_and(|b| same(b.as_bytes(), token.as_bytes()))
            || from_query.is_some_and(|q| same(q.as_bytes(), token.as_bytes()))
        {
            return Ok(());
        }
    }
    if let Some(secret) = auth
        .hmac_secret_file
        .as_deref()
        .and_then(read)
        .filter(|t| !t.is_empty())
    {
        let want = crate::notify::sign_webhook(secret.as_bytes(), body);
        let got = headers
            .get("x-augur-signature")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256="));
        if got.is_some_and(|g| same(g.to_ascii_lowercase().as_bytes(), want.as_bytes())) {
            return Ok(());
        }
    }
    Err(deny(
        "unauthorized: send Authorization: Bearer <token> (or ?token=) or X-Augur-Signature: sha256=<HMAC of the body>",
    ))
}

/// Constant-time comparison, so a wrong token's prefix length does not leak.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// All routes.
pub fn router(state: Arc<ApiState>) -> Router {
    // Every route that changes something (starts or cancels runs, webhooks,
    // gates, decisions, Argo and Kayenta calls) goes through one check.
    let auth = || axum::middleware::from_fn_with_state(state.clone(), require_auth);
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/series", get(series).post(series_post))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/labels", get(query::labels).post(query::labels))
        .route("/api/v1/label/{name}/values", get(query::label_values))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/notifications", get(rules::notifications))
        .route("/api/v1/export", get(export))
        .route(
            "/api/v1/analysis/runs",
            get(analysis::list).merge(post(analysis::create).route_layer(auth())),
        )
        .route(
            "/api/v1/analysis/runs/{id}",
            get(analysis::get).merge(delete(analysis::cancel).route_layer(auth())),
        )
        .route("/api/v1/analysis/templates", get(analysis::templates))
        .route("/flagger/{hook}", post(hooks::flagger).route_layer(auth()))
        .route("/gate/{op}", post(hooks::gate).route_layer(auth()))
        .route("/rollback/{op}", post(hooks::gate).route_layer(auth()))
        .route("/api/v1/gates", get(hooks::gates))
        .route("/api/v1/audit", get(hooks::audit))
        .route(
            "/api/v1/argo/{template}",
            get(hooks::argo).post(hooks::argo).route_layer(auth()),
        )
        .route(
            "/api/v1/rollouts/{namespace}/{name}/{decision}",
            post(hooks::operator_decision).route_layer(auth()),
        )
        .route("/api/v1/decisions", get(hooks::decisions))
        .route("/canaryConfig", get(kayenta::list_configs))
        .route("/canaryConfig/{id}", get(kayenta::get_config))
        .route(
            "/canary/{id}",
            get(kayenta::status).merge(post(kayenta::start).route_layer(auth())),
        )
        .with_state(state)
}

async fn healthy() -> &'static str {
    "augur is Healthy.\n"
}

async fn ready(State(st): State<Arc<ApiState>>) -> Response {
    if st.ready.load(Ordering::SeqCst) && st.scrape.first_round_done() {
        (StatusCode::OK, "augur is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn metrics(State(st): State<Arc<ApiState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|l| (l.name.to_string(), Value::String(l.value.to_string())))
            .collect(),
    )
}

pub(crate) fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// An error answer in the Prometheus API's shape.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"status": "error", "errorType": self.kind, "error": self.message})),
        )
            .into_response()
    }
}

fn bad_data(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        kind: "bad_data",
        message: message.into(),
    }
}

async fn targets(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let params = query_pairs(&q);
    let state = params
        .iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_else(|| "any".to_string());
    let pool = params
        .iter()
        .find(|(k, _)| k == "scrapePool")
        .map(|(_, v)| v.clone());
    let show_active = state == "active" || state == "any" || state.is_empty();
    let show_dropped = state == "dropped" || state == "any" || state.is_empty();
    let active: Vec<Value> = if show_active {
        st.scrape
            .targets()
            .iter()
            .filter(|t| pool.as_ref().is_none_or(|p| *p == t.job))
            .map(|t| {
                let s = t.status();
                json!({
                    "discoveredLabels": labels_json(&t.discovered_labels),
                    "labels": labels_json(&t.labels),
                    "scrapePool": t.job,
                    "scrapeUrl": t.url,
                    "globalUrl": t.url,
                    "lastError": s.last_error,
                    "lastScrape": crate::timefmt::rfc3339_nano(s.last_scrape),
                    "lastScrapeDuration": s.last_scrape_duration.as_secs_f64(),
                    "health": s.health.as_str(),
                    "scrapeInterval": crate::duration::format(t.interval),
                    "scrapeTimeout": crate::duration::format(t.timeout),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    // Static configs have no relabelling, so nothing is ever dropped.
    let mut data = json!({"activeTargets": active, "droppedTargets": []});
    if show_dropped {
        data["droppedTargetCounts"] = json!({});
    }
    Json(json!({"status": "success", "data": data})).into_response()
}

/// Parses a time given as RFC 3339 or Unix seconds, as the API accepts it.
pub fn parse_time_param(s: &str) -> Option<i64> {
    parse_time(s)
}

/// Parses a Prometheus API time: Unix seconds (float) or RFC 3339.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            return Some((f * 1000.0).round() as i64);
        }
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Some(d.as_millis() as i64)
}

struct Selection {
    sets: Vec<Vec<crate::labels::Matcher>>,
    mint: i64,
    maxt: i64,
}

fn selection(q: &Option<String>) -> Result<Selection, ApiError> {
    let params = query_pairs(q);
    let mut sets = Vec::new();
    for (k, v) in &params {
        if k == "match[]" {
            let parsed = parse_selector(v).map_err(|e| bad_data(e.to_string()))?;
            sets.extend(parsed);
        }
    }
    if sets.is_empty() {
        return Err(bad_data("no match[] parameter provided"));
    }
    let time = |name: &str, default: i64| -> Result<i64, ApiError> {
        match params.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => parse_time(v).ok_or_else(|| {
                bad_data(format!(
                    "invalid parameter \"{name}\": cannot parse {v:?} to a valid timestamp"
                ))
            }),
        }
    };
    Ok(Selection {
        sets,
        mint: time("start", i64::MIN)?,
        maxt: time("end", i64::MAX)?,
    })
}

async fn series_post(
    State(st): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let p = query::params(&q, &headers, &body);
    let joined: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(p.iter())
        .finish();
    series(State(st), RawQuery(Some(joined))).await
}

async fn series(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let sel = match selection(&q) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut all: Vec<Labels> = Vec::new();
    for set in &sel.sets {
        all.extend(st.store.series(set, sel.mint, sel.maxt));
    }
    all.sort();
    all.dedup();
    let data: Vec<Value> = all.iter().map(labels_json).collect();
    Json(json!({"status": "success", "data": data})).into_response()
}

/// Raw samples in the query API's matrix shape; staleness markers appear
/// as the value `"stale"` so they can be told apart from a real NaN.
async fn export(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let sel = match selection(&q) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut all = Vec::new();
    for set in &sel.sets {
        all.extend(st.store.select(set, sel.mint, sel.maxt));
    }
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    all.dedup_by(|a, b| a.labels == b.labels);
    let result: Vec<Value> = all
        .iter()
        .map(|s| {
            let values: Vec<Value> = s
                .samples
                .iter()
                .map(|(t, v)| {
                    let text = if is_stale_nan(*v) {
                        "stale".to_string()
                    } else {
                        fmtfloat::go_g(*v)
                    };
                    json!([*t as f64 / 1000.0, text])
                })
                .collect();
            json!({"metric": labels_json(&s.labels), "values": values})
        })
        .collect();
    Json(json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
