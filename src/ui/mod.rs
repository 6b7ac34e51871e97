//! The web pages: server-rendered HTML (maud, which escapes every value:
//! label values and annotations come from users), SVG charts drawn on the
//! server (`svg`), one CSS and one JS file embedded and served under
//! fingerprinted names, and Server-Sent Events that tell an open run page
//! when to refresh its main section. Read-only: changes stay on the
//! authenticated API. Every link carries `server.external_url`'s path
//! prefix, so the pages work behind a reverse proxy.

pub mod layout;
pub mod pages;
pub mod run;
pub mod svg;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::Markup;

use crate::api::ApiState;

const CSS: &str = include_str!("static/augur.css");
const JS: &str = include_str!("static/augur.js");

fn fingerprint(s: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(s.as_bytes())[..4])
}

/// The stylesheet's path (its name changes with its content).
pub fn css_path() -> String {
    format!("/static/augur.{}.css", fingerprint(CSS))
}

/// The script's path.
pub fn js_path() -> String {
    format!("/static/augur.{}.js", fingerprint(JS))
}

/// What every page needs to know about where it is served.
#[derive(Clone, Debug)]
pub struct Ui {
    /// The path prefix of `server.external_url`, without a trailing `/`.
    pub prefix: String,
}

impl Ui {
    fn of(st: &ApiState) -> Ui {
        let url = st.config.read().server.external_url.clone();
        let path = reqwest::Url::parse(&url)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        Ui { prefix: path }
    }

    /// `path` (absolute within augur) under the prefix.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }
}

/// The page routes (merged into the API router).
pub fn router() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/", get(overview))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/events", get(run_events))
        .route("/rollouts", get(rollouts))
        .route("/rollouts/{namespace}/{name}", get(rollout))
        .route("/graph", get(graph))
        .route("/static/{file}", get(asset))
        .layer(axum::middleware::map_response(headers))
}

/// Security headers on every page and asset.
async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

fn html(m: Markup) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        m.into_string(),
    )
        .into_response()
}

fn pairs(q: &Option<String>) -> Vec<(String, String)> {
    crate::api::query_pairs(q)
}

/// A page, or only its main section when `?fragment=main` (a live refresh).
fn respond(
    ui: &Ui,
    q: &[(String, String)],
    title: &str,
    here: &str,
    json: &str,
    live: Option<&str>,
    main: Markup,
) -> Response {
    if q.iter().any(|(k, v)| k == "fragment" && v == "main") {
        // The title carries the state too: the script sets it from here.
        let mut r = html(layout::fragment(main));
        let t: String =
            form_urlencoded::byte_serialize(format!("{title} · augur").as_bytes()).collect();
        if let Ok(v) = HeaderValue::from_str(&t) {
            r.headers_mut().insert("x-augur-title", v);
        }
        return r;
    }
    html(layout::page(ui, title, here, json, live, main))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, ct) = if format!("/static/{file}") == css_path() {
        (CSS, "text/css; charset=utf-8")
    } else if format!("/static/{file}") == js_path() {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

async fn overview(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let ui = Ui::of(&st);
    let q = pairs(&q);
    let main = pages::overview(&ui, &st);
    respond(
        &ui,
        &q,
        "Overview",
        "Overview",
        "/api/v1/analysis/runs",
        None,
        main,
    )
}

async fn runs(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let ui = Ui::of(&st);
    let q = pairs(&q);
    let state = q
        .iter()
        .find(|(k, v)| k == "state" && !v.is_empty())
        .map(|(_, v)| v.clone());
    let main = pages::runs(&ui, &st, state.as_deref());
    respond(&ui, &q, "Runs", "Runs", "/api/v1/analysis/runs", None, main)
}

async fn rollouts(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let ui = Ui::of(&st);
    let q = pairs(&q);
    let main = pages::rollouts(&ui, &st);
    respond(
        &ui,
        &q,
        "Rollouts",
        "Rollouts",
        "/api/v1/rollouts",
        None,
        main,
    )
}

async fn rollout(
    State(st): State<Arc<ApiState>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let ui = Ui::of(&st);
    let q = pairs(&q);
    let title = match st.rollouts.view(&ns, &name).ok().flatten() {
        Some(v) => format!(
            "{} {} · {ns}/{name}",
            layout::glyph(v["phase"].as_str().unwrap_or("")).0,
            v["phase"].as_str().unwrap_or("")
        ),
        None => format!("{ns}/{name}"),
    };
    let main = pages::rollout(&ui, &st, &ns, &name);
    respond(
        &ui,
        &q,
        &title,
        "Rollouts",
        &format!("/api/v1/rollouts/{ns}/{name}"),
        None,
        main,
    )
}

async fn run_page(
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let ui = Ui::of(&st);
    let q = pairs(&q);
    let detail = match st.analysis.run_detail(&id) {
        Ok(Some(d)) => d,
        Ok(None) => {
            let main = maud::html! { h1 { "No run " code { (id) } } p { "It may have been pruned by retention." } };
            let mut r = respond(
                &ui,
                &q,
                "no such run",
                "Runs",
                "/api/v1/analysis/runs",
                None,
                main,
            );
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let subject = detail
        .row
        .rollout
        .as_deref()
        .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
        .map(|r| {
            format!(
                "{}/{}",
                r["namespace"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )
        });
    let mut audit: Vec<crate::state::AuditRow> = match &subject {
        Some(s) => st.state.audit_log(Some(s), 200).unwrap_or_default(),
        None => Vec::new(),
    };
    audit.retain(|a| a.t >= detail.row.created_at - 1000);
    audit.reverse();
    let actor = format!("analysis:{}", detail.row.id);
    let decisions: Vec<serde_json::Value> = st
        .act
        .list(500)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d["actor"] == actor.as_str())
        .collect();
    let live = (detail.row.state == "running" && !q.iter().any(|(k, v)| k == "live" && v == "0"))
        .then(|| format!("/runs/{id}/events"));
    let main = run::main(&ui, &detail, &audit, &decisions);
    respond(
        &ui,
        &q,
        &run::title(&detail),
        "Runs",
        &format!("/api/v1/analysis/runs/{id}"),
        live.as_deref(),
        main,
    )
}

/// `GET /runs/{id}/events`: `changed` when the run has a new interval or
/// state (checked every 250 ms, coalesced), `end` when it is final; a
/// final run answers 204 (the SSE "stop reconnecting"). Every stream ends
/// when the server shuts down.
async fn run_events(State(st): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    let final_state = |st: &ApiState| -> Option<(i64, bool)> {
        let r = st.analysis.run_row(&id).ok().flatten()?;
        Some((r.updated_at, r.state != "running"))
    };
    match final_state(&st) {
        None | Some((_, true)) => return StatusCode::NO_CONTENT.into_response(),
        Some(_) => {}
    }
    let shutdown = st.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (st, id, None::<i64>, false),
        move |(st, id, last, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let Some(r) = st.analysis.run_row(&id).ok().flatten() else {
                    return Some((
                        Ok::<Event, Infallible>(Event::default().event("end").data("gone")),
                        (st, id, last, true),
                    ));
                };
                if r.state != "running" {
                    let ev = Event::default().event("end").data(r.state.clone());
                    return Some((Ok(ev), (st, id, Some(r.updated_at), true)));
                }
                if last.is_some_and(|l| l != r.updated_at) {
                    let ev = Event::default()
                        .event("changed")
                        .id(r.updated_at.to_string())
                        .data(format!("{{\"scope\":\"run:{id}\"}}"));
                    return Some((Ok(ev), (st, id, Some(r.updated_at), false)));
                }
                let last_now = Some(r.updated_at);
                tokio::time::sleep(Duration::from_millis(250)).await;
                if last.is_none() {
                    return Some((
                        Ok(Event::default()
                            .event("hello")
                            .data("{}")
                            .retry(Duration::from_secs(3))),
                        (st, id, last_now, false),
                    ));
                }
            }
        },
    );
    use futures_util::StreamExt;
    let stream = stream.take_until(async move { shutdown.cancelled().await });
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

async fn graph(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let ui = Ui::of(&st);
    let q = pairs(&q);
    let panels = pages::graph_panels(&q);
    let mut out = Vec::new();
    for p in panels {
        let e = evaluate(&st, &p).await;
        out.push((p, e));
    }
    let title = out
        .first()
        .map(|(p, _)| {
            if p.expr.is_empty() {
                "Graph".to_string()
            } else {
                p.expr.chars().take(60).collect()
            }
        })
        .unwrap_or_default();
    let main = pages::graph(&ui, &out);
    respond(&ui, &q, &title, "Graph", "/api/v1/query_range", None, main)
}

async fn evaluate(st: &ApiState, p: &pages::GraphPanel) -> pages::Evaluated {
    use pages::Evaluated;
    if p.expr.trim().is_empty() {
        return Evaluated::Empty;
    }
    let end = if p.end.trim().is_empty() {
        crate::clock::now_ms()
    } else {
        match crate::api::parse_time_param(&p.end) {
            Some(t) => t,
            None => {
                return Evaluated::Error(format!(
                    "end: cannot parse {:?} to a valid timestamp",
                    p.end
                ))
            }
        }
    };
    if p.tab == 1 {
        return match crate::api::query::instant_local(st, p.expr.clone(), end).await {
            Ok(r) => Evaluated::Table(match r.value {
                crate::promql::Value::Vector(v) => v
                    .iter()
                    .map(|s| (s.labels.to_string(), crate::fmtfloat::prom_api(s.v)))
                    .collect(),
                crate::promql::Value::Scalar(x) => {
                    vec![("scalar".into(), crate::fmtfloat::prom_api(x))]
                }
                crate::promql::Value::String(s) => vec![("string".into(), s)],
                crate::promql::Value::Matrix(m) => m
                    .iter()
                    .map(|s| (s.labels.to_string(), format!("{} points", s.points.len())))
                    .collect(),
            }),
            Err(e) => Evaluated::Error(e.to_string()),
        };
    }
    let range = if p.range.trim().is_empty() {
        "1h"
    } else {
        p.range.trim()
    };
    let range_ms = match crate::duration::parse(range) {
        Ok(d) if !d.is_zero() => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        _ => return Evaluated::Error(format!("range: cannot parse {range:?} to a duration")),
    };
    let start = end.saturating_sub(range_ms);
    // Prometheus's graph: about 250 points across the range, at least 1 s.
    let step = (range_ms / 250).max(1000);
    match crate::api::query::range_local(st, p.expr.clone(), start, end, step).await {
        Ok(r) => match r.value {
            crate::promql::Value::Matrix(m) => Evaluated::Range(
                m.into_iter()
                    .map(|s| (s.labels.to_string(), s.points))
                    .collect(),
                start,
                end,
            ),
            other => Evaluated::Error(format!(
                "expected a range result, got {}",
                other.type_name()
            )),
        },
        Err(e) => Evaluated::Error(e.to_string()),
    }
}
