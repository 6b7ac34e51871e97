//! The web pages: server-rendered HTML (maud, which escapes every value:
//! label values and annotations come from users), SVG charts drawn on the
//! server (`svg`), one CSS and one JS file embedded and served under
//! fingerprinted names, and Server-Sent Events that tell an open run page
//! when to refresh its main section. Read-only: changes stay on the
//! authenticated API. Every link carries `server.external_url`'s path
//! prefix, so the pages work behind a reverse proxy.

pub mod layout;
pub mod ops;
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

/// What every page needs to know: where it is served, the links to other
/// tools, and the counts the frame shows (nav badges, banners).
#[derive(Clone, Debug, Default)]
pub struct Ui {
    /// The path prefix of `server.external_url`, without a trailing `/`.
    pub prefix: String,
    /// `server.external_url` without a trailing `/` (for curl lines).
    pub external: String,
    /// `[ui]` link templates.
    pub links: Vec<crate::config::UiLink>,
    /// The Prometheus-compatible datasource's URL, when queries go there.
    pub prometheus: Option<String>,
    /// Alerts firing now.
    pub firing: usize,
    /// Targets down now.
    pub down: usize,
    /// Whether the last config reload failed.
    pub reload_failed: bool,
    /// Dead-lettered notifications.
    pub dead: i64,
}

impl Ui {
    fn of(st: &ApiState) -> Ui {
        let (external, links, prometheus) = {
            let c = st.config.read();
            let prometheus = match &c.datasource {
                crate::config::DatasourceConfig::Prometheus { url, .. } => {
                    Some(url.trim_end_matches('/').to_string())
                }
                crate::config::DatasourceConfig::Embedded => None,
            };
            (
                c.server.external_url.clone(),
                c.ui.links.clone(),
                prometheus,
            )
        };
        let prefix = reqwest::Url::parse(&external)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let firing = st
            .rules
            .views()
            .iter()
            .flat_map(|g| g.rules.iter())
            .flat_map(|r| r.alerts.iter())
            .filter(|a| a.state == crate::rules::group::AlertState::Firing)
            .count();
        let down = st
            .scrape
            .targets()
            .iter()
            .filter(|t| t.status().health == crate::scrape::Health::Down)
            .count();
        let dead = st
            .state
            .outbox_counts()
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == "dead")
            .map_or(0, |(_, n)| n);
        Ui {
            prefix,
            external: external.trim_end_matches('/').to_string(),
            links,
            prometheus,
            firing,
            down,
            reload_failed: st.metrics.config_last_reload_successful.get() == 0,
            dead,
        }
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
        .route("/query", get(graph))
        .route("/alerts", get(alerts))
        .route("/rules", get(rules))
        .route("/targets", get(targets))
        .route("/decisions", get(decisions))
        .route("/-/ui/events", get(events))
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
    let title = match st.analysis.run_rows(Some("running"), 100).map(|r| r.len()) {
        Ok(n) if n > 0 => format!("▶ {n} running · Overview"),
        _ => "Overview".to_string(),
    };
    respond(
        &ui,
        &q,
        &title,
        "Overview",
        "/api/v1/analysis/runs",
        Some(GLOBAL_EVENTS),
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
    respond(
        &ui,
        &q,
        "Runs",
        "Runs",
        "/api/v1/analysis/runs",
        Some(GLOBAL_EVENTS),
        main,
    )
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
        Some(GLOBAL_EVENTS),
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
        Some(GLOBAL_EVENTS),
        main,
    )
}

/// The change stream of every page but a run's.
const GLOBAL_EVENTS: &str = "/-/ui/events";

/// A live listing page: `body` renders it, `title` states what is wrong.
fn listing(
    st: &ApiState,
    q: Option<String>,
    here: &str,
    json: &str,
    title: impl Fn(&Ui) -> String,
    body: impl Fn(&Ui, &ApiState, &[(String, String)]) -> Markup,
) -> Response {
    let ui = Ui::of(st);
    let q = pairs(&q);
    let main = body(&ui, st, &q);
    respond(&ui, &q, &title(&ui), here, json, Some(GLOBAL_EVENTS), main)
}

async fn alerts(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let title = |ui: &Ui| match ui.firing {
        0 => "Alerts".to_string(),
        n => format!("✗ {n} firing · Alerts"),
    };
    listing(
        &st,
        q,
        "Alerts",
        "/api/v1/rules?type=alert",
        title,
        ops::alerts,
    )
}

async fn rules(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let title = |_: &Ui| "Rules".to_string();
    listing(&st, q, "Rules", "/api/v1/rules", title, ops::rules)
}

async fn targets(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let title = |ui: &Ui| match ui.down {
        0 => "Targets".to_string(),
        n => format!("✗ {n} down · Targets"),
    };
    listing(&st, q, "Targets", "/api/v1/targets", title, ops::targets)
}

async fn decisions(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let title = |_: &Ui| "Decisions".to_string();
    listing(
        &st,
        q,
        "Decisions",
        "/api/v1/decisions",
        title,
        ops::decisions,
    )
}

/// [`compute_mark`], taken at most every 400 ms whatever the number of
/// open pages polling it.
fn global_mark(st: &ApiState) -> u64 {
    let mut cached = st.ui_mark.lock();
    match *cached {
        Some((at, mark)) if at.elapsed() < Duration::from_millis(400) => mark,
        _ => {
            let mark = compute_mark(st);
            *cached = Some((std::time::Instant::now(), mark));
            mark
        }
    }
}

/// What the pages other than a run's show, as one mark: SQLite's (runs,
/// audit, outbox, rollouts, actions), alert states and target health.
fn compute_mark(st: &ApiState) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    st.state.change_mark().unwrap_or_default().hash(&mut h);
    for g in st.rules.views() {
        for r in &g.rules {
            (r.health.as_str(), r.last_error.as_deref()).hash(&mut h);
            for a in &r.alerts {
                (a.labels.to_string(), a.state.as_str()).hash(&mut h);
            }
        }
    }
    for t in st.scrape.targets() {
        let s = t.status();
        (&t.url, s.health.as_str(), s.last_error).hash(&mut h);
    }
    h.finish()
}

/// `GET /-/ui/events`: `changed` when anything the overview, alerts,
/// rules, targets, rollouts or decisions pages show has changed (checked
/// every 500 ms, at most one event a second). Ends when the server shuts
/// down.
async fn events(State(st): State<Arc<ApiState>>) -> Response {
    let shutdown = st.shutdown.clone();
    let first = global_mark(&st);
    let stream =
        futures_util::stream::unfold((st, first, true), move |(st, last, hello)| async move {
            if hello {
                let ev = Event::default()
                    .event("hello")
                    .data("{}")
                    .retry(Duration::from_secs(3));
                return Some((Ok::<Event, Infallible>(ev), (st, last, false)));
            }
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = global_mark(&st);
                if now != last {
                    let ev = Event::default()
                        .event("changed")
                        .data("{\"scope\":\"global\"}");
                    // Coalesce: a burst of changes is one refresh.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return Some((Ok(ev), (st.clone(), global_mark(&st), false)));
                }
            }
        });
    sse(stream, shutdown)
}

/// An event stream that ends on shutdown, with the headers proxies need.
fn sse(
    stream: impl futures_util::Stream<Item = Result<Event, Infallible>> + Send + 'static,
    shutdown: tokio_util::sync::CancellationToken,
) -> Response {
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
    let decisions = st
        .act
        .list_only(50, crate::state::DecisionFilter::Actor(&actor))
        .unwrap_or_default();
    let live = (detail.row.state == "running").then(|| format!("/runs/{id}/events"));
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
    sse(stream, shutdown)
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
        // Prometheus 3's query page writes `YYYY-MM-DD HH:mm:ss` (UTC).
        let end = p.end.trim();
        let iso = (end.len() == 19 && end.as_bytes()[10] == b' ')
            .then(|| format!("{}T{}Z", &end[..10], &end[11..]));
        match crate::timefmt::parse_ms(iso.as_deref().unwrap_or(end)) {
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
