//! HTTP routes (axum), one file per area: health, readiness and augur's own
//! `/metrics` (here); the Prometheus-compatible query API (`query`:
//! `/api/v1/query`, `query_range`, `labels`, `label/*/values`; here:
//! `series`, `targets`, `export`); rules and alerts (`rules`); analysis runs
//! and templates (`analysis`); Flagger's webhooks, gates, Argo's `web`
//! metric, operator decisions, decisions and the audit log (`hooks`); the
//! Kayenta-compatible API (`kayenta`); rollouts augur drives and operator
//! verbs (`rollouts`); who may call what (`auth`).
//! Routes never write state themselves: runs change through the analysis
//! manager, decisions through the dispatcher.

mod analysis;
mod auth;
mod hooks;
mod kayenta;
pub(crate) mod query;
mod rollouts;
mod rules;
mod selector;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

pub use auth::Auth;
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
    /// API queries evaluated at once (`query.max_concurrency`)
    pub query_slots: Arc<tokio::sync::Semaphore>,
    /// rule groups and their alerts
    pub rules: Arc<crate::rules::RuleManager>,
    /// durable state (the outbox)
    pub state: Arc<crate::state::State>,
    /// analysis templates and runs
    pub analysis: Arc<crate::analysis::engine::AnalysisManager>,
    /// who may call mutating and webhook endpoints (updated on reload)
    pub auth: Arc<Auth>,
    /// decisions and their actions
    pub act: Arc<crate::act::Dispatcher>,
    /// rollouts augur drives
    pub rollouts: Arc<crate::rollout::Controller>,
    /// cancelled when the server shuts down (ends open event streams)
    pub shutdown: tokio_util::sync::CancellationToken,
    /// the pages' change mark and when it was taken, shared by every open
    /// page so its cost does not grow with the number of tabs
    pub ui_mark: parking_lot::Mutex<Option<(std::time::Instant, u64)>>,
}

/// All routes.
pub fn router(state: Arc<ApiState>) -> Router {
    // Every route that changes something (starts or cancels runs, webhooks,
    // gates, decisions, Argo and Kayenta calls) goes through one check.
    let auth = || axum::middleware::from_fn_with_state(state.clone(), auth::require_auth);
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
        .route("/api/v1/dora", get(dora))
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
        .route("/api/v1/rollouts", get(rollouts::list))
        .route("/api/v1/rollouts/{namespace}/{name}", get(rollouts::get))
        .route(
            "/api/v1/rollouts/{namespace}/{name}/{decision}",
            post(rollouts::verb).route_layer(auth()),
        )
        .route("/api/v1/decisions", get(hooks::decisions))
        .route("/api/v1/status/ha", get(ha_status))
        .route("/canaryConfig", get(kayenta::list_configs))
        .route("/canaryConfig/{id}", get(kayenta::get_config))
        .route(
            "/canary/{id}",
            get(kayenta::status).merge(post(kayenta::start).route_layer(auth())),
        )
        .merge(crate::ui::router())
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed(method: axum::http::Method) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed here; the Allow header lists those that are\n"),
    )
        .into_response()
}

/// `GET /api/v1/dora?window=30d`: the four keys per rollout and overall
/// over the window ending now.
async fn dora(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let window = query_pairs(&q)
        .into_iter()
        .find(|(k, _)| k == "window")
        .map_or_else(|| "30d".to_string(), |(_, v)| v);
    let ms = match crate::duration::parse(&window) {
        Ok(d) if !d.is_zero() => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"status": "error", "errorType": "bad_data",
                    "error": format!("window: expected a duration such as 30d, found {window:?}")})),
            )
                .into_response()
        }
    };
    let to = crate::clock::now_ms();
    let db = st.state.clone();
    match tokio::task::spawn_blocking(move || db.dora_input(to.saturating_sub(ms), to)).await {
        Ok(Ok(input)) => {
            let mut data = crate::delivery::dora(&input, to.saturating_sub(ms), to);
            data["window"] = json!(window);
            Json(json!({"status": "success", "data": data})).into_response()
        }
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "errorType": "internal", "error": e.to_string()})),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn healthy() -> &'static str {
    "augur is Healthy.\n"
}

async fn ready(State(st): State<Arc<ApiState>>) -> Response {
    let l = st.act.leadership();
    if l.ready_only_when_leader() && l.may_act().is_none() {
        // A Service then sends Flagger's and Argo's calls to the leader.
        let holder = l.status().holder;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("standby: the lease is held by {holder:?}\n"),
        )
            .into_response();
    }
    if st.ready.load(Ordering::SeqCst) && st.scrape.first_round_done() {
        (StatusCode::OK, "augur is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

/// Leader election as this replica sees it.
async fn ha_status(State(st): State<Arc<ApiState>>) -> Response {
    Json(json!({"status": "success", "data": st.act.leadership().status()})).into_response()
}

async fn metrics(State(st): State<Arc<ApiState>>) -> Response {
    st.metrics.delivery.fold(&st.state);
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

/// The `limit` query parameter: an integer from 1 to 10,000 (default 100).
pub(crate) fn limit_param(q: &Option<String>) -> Result<usize, String> {
    match query_pairs(q).into_iter().find(|(k, _)| k == "limit") {
        None => Ok(100),
        Some((_, v)) => match v.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
            _ => Err(format!(
                "limit: expected an integer from 1 to 10000, found {v:?}"
            )),
        },
    }
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

/// A label set as a JSON object, written without building a tree.
struct LabelsOut(Labels);

impl serde::Serialize for LabelsOut {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for l in self.0.iter() {
            m.serialize_entry(&*l.name, &*l.value)?;
        }
        m.end()
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ActiveOut {
    discovered_labels: LabelsOut,
    labels: LabelsOut,
    scrape_pool: String,
    scrape_url: String,
    global_url: String,
    last_error: String,
    last_scrape: String,
    last_scrape_duration: f64,
    health: &'static str,
    scrape_interval: String,
    scrape_timeout: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct DroppedOut {
    discovered_labels: LabelsOut,
    scrape_pool: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetsOut {
    active_targets: Vec<ActiveOut>,
    dropped_targets: Vec<DroppedOut>,
    dropped_target_counts: Option<std::collections::BTreeMap<String, usize>>,
}

/// Prometheus's `/api/v1/targets` (`web/api/v1/api.go`, 3.x shape:
/// dropped targets carry `scrapePool`, counts cover every pool). Encoded
/// straight from the targets on a blocking thread: 100k targets are
/// hundreds of megabytes as a JSON tree.
async fn targets(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let params = query_pairs(&q);
    let state = params
        .iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let pool = params
        .iter()
        .find(|(k, _)| k == "scrapePool")
        .map(|(_, v)| v.clone())
        .filter(|p| !p.is_empty());
    // Other values are ignored: both lists come back empty.
    let show_active = state == "active" || state == "any" || state.is_empty();
    let show_dropped = state == "dropped" || state == "any" || state.is_empty();
    let scrape = st.scrape.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let in_pool = |job: &str| pool.as_ref().is_none_or(|p| p == job);
        let active_targets = if show_active {
            scrape
                .targets()
                .iter()
                .filter(|t| in_pool(&t.job))
                .map(|t| {
                    let s = t.status();
                    ActiveOut {
                        discovered_labels: LabelsOut(t.discovered_labels()),
                        labels: LabelsOut(t.labels.clone()),
                        scrape_pool: t.job.clone(),
                        scrape_url: t.url.clone(),
                        global_url: t.url.clone(),
                        last_error: s.last_error,
                        last_scrape: crate::timefmt::rfc3339_nano(s.last_scrape),
                        last_scrape_duration: s.last_scrape_duration.as_secs_f64(),
                        health: s.health.as_str(),
                        scrape_interval: t
                            .raw_labels
                            .get("__scrape_interval__")
                            .unwrap_or("")
                            .to_string(),
                        scrape_timeout: t
                            .raw_labels
                            .get("__scrape_timeout__")
                            .unwrap_or("")
                            .to_string(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let (dropped_targets, dropped_target_counts) = if show_dropped {
            let d = scrape
                .dropped_targets()
                .into_iter()
                .filter(|t| in_pool(&t.job))
                .map(|t| DroppedOut {
                    discovered_labels: LabelsOut(t.discovered_labels),
                    scrape_pool: t.job,
                })
                .collect();
            (d, Some(scrape.dropped_counts()))
        } else {
            (Vec::new(), None)
        };
        #[derive(serde::Serialize)]
        struct Envelope {
            status: &'static str,
            data: TargetsOut,
        }
        serde_json::to_vec(&Envelope {
            status: "success",
            data: TargetsOut {
                active_targets,
                dropped_targets,
                dropped_target_counts,
            },
        })
    })
    .await;
    match encoded {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        _ => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: "could not encode the targets".into(),
        }
        .into_response(),
    }
}

/// Parses a time given as RFC 3339 or Unix seconds, as the API accepts it.
pub fn parse_time_param(s: &str) -> Option<i64> {
    parse_time(s)
}

/// Parses a Prometheus API time: Unix seconds (float) or RFC 3339.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    crate::timefmt::parse_ms(s)
}

#[derive(Clone)]
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
    // Index scans over many series are CPU work: off the async workers.
    let store = st.store.clone();
    let found = tokio::task::spawn_blocking(move || {
        let mut all: Vec<Labels> = Vec::new();
        for set in &sel.sets {
            all.extend(store.series(set, sel.mint, sel.maxt));
        }
        all.sort();
        all.dedup();
        all
    })
    .await;
    match found {
        Ok(all) => {
            let data: Vec<Value> = all.iter().map(labels_json).collect();
            Json(json!({"status": "success", "data": data})).into_response()
        }
        Err(e) => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: format!("series lookup failed: {e}"),
        }
        .into_response(),
    }
}

/// Bytes per chunk of a streamed answer.
const CHUNK: usize = 64 << 10;

/// Raw samples in the query API's matrix shape; staleness markers appear
/// as the value `"stale"` so they can be told apart from a real NaN.
/// Refused (422, like a query) when the selection holds more than
/// `query.max_samples` samples; otherwise written out in chunks as it is
/// formatted, at most `query.max_concurrency` exports at once.
async fn export(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let sel = match selection(&q) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let cfg = st.query.read().clone();
    let permit =
        match tokio::time::timeout(cfg.timeout, st.query_slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                return ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    kind: "timeout",
                    message: "too many queries and exports running; try again".into(),
                }
                .into_response()
            }
        };
    let store = st.store.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(4);
    let limit = cfg.max_samples;
    let counted = tokio::task::spawn_blocking({
        let store = store.clone();
        let sets = sel.sets.clone();
        move || {
            sets.iter()
                .map(|set| store.count_samples(set, sel.mint, sel.maxt))
                .fold(0usize, usize::saturating_add)
        }
    })
    .await
    .unwrap_or(usize::MAX);
    if counted > limit {
        return ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "execution",
            message: format!(
                "query processing would load too many samples into memory in query execution ({counted} samples, query.max_samples is {limit}); narrow match[] or start/end"
            ),
        }
        .into_response();
    }
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut all = Vec::new();
        for set in &sel.sets {
            all.extend(store.select(set, sel.mint, sel.maxt));
        }
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        all.dedup_by(|a, b| a.labels == b.labels);
        let mut buf = String::with_capacity(CHUNK + 1024);
        buf.push_str(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
        for (i, s) in all.iter().enumerate() {
            if i > 0 {
                buf.push(',');
            }
            buf.push_str(r#"{"metric":"#);
            buf.push_str(&labels_json(&s.labels).to_string());
            buf.push_str(r#","values":["#);
            for (j, (t, v)) in s.samples.iter().enumerate() {
                if j > 0 {
                    buf.push(',');
                }
                let text = if is_stale_nan(*v) {
                    "stale".to_string()
                } else {
                    fmtfloat::go_g(*v)
                };
                buf.push('[');
                buf.push_str(&fmtfloat::prom_timestamp(*t));
                buf.push_str(",\"");
                buf.push_str(&text);
                buf.push_str("\"]");
                if buf.len() >= CHUNK {
                    let chunk = axum::body::Bytes::from(std::mem::take(&mut buf));
                    // The client went away: stop formatting.
                    if tx.blocking_send(chunk).is_err() {
                        return;
                    }
                }
            }
            buf.push_str("]}");
        }
        buf.push_str("]}}");
        let _ = tx.blocking_send(axum::body::Bytes::from(buf));
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(stream),
    )
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
