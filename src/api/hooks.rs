//! Rollout-tool endpoints: Flagger webhooks (`/flagger/{hook}`),
//! flagger-loadtester-compatible gates (`/gate/*`, `/rollback/*`, but
//! persisted), and Argo Rollouts' `web` metric (`/api/v1/argo/{template}`).
//! Answers come from [`crate::decide`]; runs are created or continued
//! through the analysis manager, keyed per revision, so repeated calls
//! read the verdict of one background analysis.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiState;
use crate::analysis::engine::{AnalysisError, Overrides};
use crate::analysis::run::{RunState, RunStatus};
use crate::decide::{self, Answer, Hook};

fn text(status: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{body}\n"),
    )
        .into_response()
}

/// Flagger's `CanaryWebhookPayload`; unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct Payload {
    name: String,
    namespace: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    checksum: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

fn payload(body: &[u8], expected: &str) -> Result<Payload, Box<Response>> {
    let p: Payload = serde_json::from_slice(body)
        .map_err(|e| Box::new(text(400, &format!("expected {expected}: {e}"))))?;
    crate::names::check_namespace(&p.namespace)
        .and_then(|()| crate::names::check_name(&p.name))
        .and_then(|()| {
            crate::names::check_revision(&p.checksum).map_err(|e| format!("checksum: {e}"))
        })
        .map_err(|e| Box::new(text(400, &e)))?;
    Ok(p)
}

/// The payload Flagger's webhooks send.
const FLAGGER_PAYLOAD: &str =
    "Flagger's webhook payload {\"name\", \"namespace\", \"phase\", \"checksum\", \"metadata\"}";
/// What the gate endpoints read of it.
const GATE_PAYLOAD: &str = "a JSON object {\"name\", \"namespace\"}";

/// Metadata keys that set the schedule instead of template arguments.
const SCHEDULE_KEYS: [&str; 4] = ["interval", "window", "initial_delay", "count"];

fn overrides(m: &BTreeMap<String, String>) -> Result<Overrides, String> {
    let mut ov = Overrides::default();
    let dur = |k: &str| -> Result<Option<std::time::Duration>, String> {
        m.get(k)
            .map(|v| crate::duration::parse(v).map_err(|e| format!("{k}: {e}")))
            .transpose()
    };
    ov.interval = dur("interval")?;
    ov.window = dur("window")?;
    ov.initial_delay = dur("initial_delay")?;
    ov.count = m
        .get("count")
        .map(|c| match c.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("count: expected a positive integer, found {c:?}")),
        })
        .transpose()?;
    if ov.interval.is_some_and(|d| d.is_zero()) {
        return Err("interval: expected a positive duration".into());
    }
    for (k, d) in [
        ("interval", ov.interval),
        ("window", ov.window),
        ("initial_delay", ov.initial_delay),
    ] {
        if let Some(d) = d {
            crate::analysis::template::check_schedule(k, d)?;
        }
    }
    Ok(ov)
}

/// A stored run's state and status; an unknown state or unreadable
/// status is an error naming it, never a default.
fn read_run(row: &crate::state::RunRow) -> Result<(RunState, RunStatus), String> {
    let state = RunState::parse(&row.state).ok_or_else(|| {
        format!(
            "augur cannot read run {}: unknown state {:?}",
            row.id, row.state
        )
    })?;
    let status = serde_json::from_str(&row.status)
        .map_err(|e| format!("augur cannot read run {}: status: {e}", row.id))?;
    Ok((state, status))
}

/// Starts (or continues) the analysis of one revision: the run keyed by
/// `key` is created on the first call and read on later ones.
fn ensure_run(
    st: &ApiState,
    template: &str,
    given: &BTreeMap<String, String>,
    defaults: &[(&str, &str)],
    key: String,
    ov: &Overrides,
) -> Result<Arc<crate::state::RunRow>, AnalysisError> {
    let templates = st.analysis.templates();
    let Some(t) = templates.get(template) else {
        return Err(AnalysisError::UnknownTemplate(template.to_string()));
    };
    // Only the template's own arguments; the payload fills `namespace`
    // and `name` when the caller did not.
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    for a in &t.args {
        if let Some(v) = given.get(&a.name) {
            args.insert(a.name.clone(), v.clone());
        } else if let Some((_, v)) = defaults.iter().find(|(k, _)| *k == a.name) {
            args.insert(a.name.clone(), (*v).to_string());
        }
    }
    st.analysis
        .create(template, &args, Some(key), ov, crate::clock::now_ms())
}

/// `POST /flagger/{hook}`: Flagger's webhooks.
pub async fn flagger(
    State(st): State<Arc<ApiState>>,
    Path(hook): Path<String>,
    body: Bytes,
) -> Response {
    let Some(h) = Hook::parse(&hook) else {
        return text(
            404,
            &format!("unknown Flagger hook {hook:?}; expected confirm-rollout, pre-rollout, rollout, confirm-traffic-increase, confirm-promotion, post-rollout, rollback or event"),
        );
    };
    let p = match payload(&body, FLAGGER_PAYLOAD) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let subject = format!("{}/{}", p.namespace, p.name);
    let answer = match flagger_answer(&st, h, &p) {
        Ok(a) => a,
        Err(a) => a,
    };
    let detail = json!({
        "phase": p.phase, "checksum": p.checksum, "metadata": p.metadata,
        "status": answer.status, "reason": answer.reason,
    });
    let action = format!("flagger.{}", h.as_str());
    if matches!(h, Hook::Event | Hook::PostRollout) {
        let now = crate::clock::now_ms();
        st.analysis
            .audit(now, "flagger", &action, &subject, &detail);
        let (ncfg, ext, url) = {
            let c = st.config.read();
            (
                c.notify.clone(),
                c.global.external_labels_map(),
                c.server.external_url.clone(),
            )
        };
        let event = crate::notify::FlaggerEvent {
            hook: h.as_str(),
            namespace: &p.namespace,
            name: &p.name,
            phase: &p.phase,
            metadata: &p.metadata,
        };
        let alert = crate::notify::flagger_event(&event, &ext, &url, now);
        if let Err(e) = crate::notify::enqueue(&st.state, &ncfg, &[alert], &url, now) {
            tracing::warn!(error = %e, "cannot queue a Flagger event notification");
        }
    } else {
        // Ticks repeat every interval: record answers when they change.
        let answer_key = format!("{}|{}|{}", p.checksum, answer.status, answer.reason);
        st.analysis.audit_change(
            crate::clock::now_ms(),
            "flagger",
            &action,
            &subject,
            &answer_key,
            &detail,
        );
    }
    text(answer.status, &answer.reason)
}

fn flagger_answer(st: &ApiState, h: Hook, p: &Payload) -> Result<Answer, Answer> {
    let bad = |status: u16, reason: String| Answer { status, reason };
    let internal = |e: AnalysisError| bad(403, format!("augur cannot read its state: {e}"));
    match h {
        Hook::PreRollout | Hook::Rollout => {
            let Some(template) = p.metadata.get("template") else {
                return Err(bad(
                    400,
                    "metadata.template: expected the name of an analysis template".into(),
                ));
            };
            let mut ov = overrides(&p.metadata).map_err(|e| bad(400, format!("metadata.{e}")))?;
            // A new revision's run ends the previous revision's.
            ov.supersede = Some((
                format!("flagger/{}/{}/", p.namespace, p.name),
                format!("flagger/{}/{}/{}/", p.namespace, p.name, p.checksum),
            ));
            let given: BTreeMap<String, String> = p
                .metadata
                .iter()
                .filter(|(k, _)| *k != "template" && !SCHEDULE_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let key = format!(
                "flagger/{}/{}/{}/{}",
                p.namespace, p.name, p.checksum, template
            );
            let defaults = [
                ("namespace", p.namespace.as_str()),
                ("name", p.name.as_str()),
                ("target", p.name.as_str()),
            ];
            let row =
                ensure_run(st, template, &given, &defaults, key, &ov).map_err(|e| match e {
                    AnalysisError::State(_) => internal(e),
                    // Flagger counts a 403 as a failed check and retries.
                    AnalysisError::TooManyRunning(_) => bad(403, e.to_string()),
                    other => bad(400, other.to_string()),
                })?;
            let (state, status) = read_run(&row).map_err(|e| bad(403, e))?;
            Ok(decide::flagger_analysis(state, status.seen(), &row.message))
        }
        Hook::Rollback => {
            let prefix = format!("flagger/{}/{}/{}/", p.namespace, p.name, p.checksum);
            let runs = st
                .analysis
                .runs_with_key_prefix(&prefix)
                .map_err(internal)?;
            let failed = runs
                .iter()
                .find(|r| r.state == "failed")
                .map(|r| format!("analysis {} failed: {}", r.template, r.message));
            let open = st
                .analysis
                .gate(&p.namespace, &p.name, "rollback")
                .map_err(internal)?;
            Ok(decide::flagger_rollback(failed.as_deref(), open))
        }
        Hook::ConfirmRollout | Hook::ConfirmTrafficIncrease | Hook::ConfirmPromotion => {
            let open = st
                .analysis
                .gate(&p.namespace, &p.name, "confirm")
                .map_err(internal)?;
            Ok(decide::flagger_gate(h, open))
        }
        Hook::PostRollout | Hook::Event => Ok(Answer {
            status: 200,
            reason: "recorded".into(),
        }),
    }
}

/// `POST /gate/{open|close|check|approve|halt}` and `/rollback/{open|close|check}`
/// with `{"name", "namespace"}`, as flagger-loadtester answers them, but
/// persisted: a restart keeps every gate as it was.
pub async fn gate(
    State(st): State<Arc<ApiState>>,
    uri: axum::http::Uri,
    Path(op): Path<String>,
    body: Bytes,
) -> Response {
    let kind = if uri.path().starts_with("/rollback/") {
        "rollback"
    } else {
        "confirm"
    };
    gate_op(&st, kind, op, body)
}

fn gate_op(st: &ApiState, kind: &str, op: String, body: Bytes) -> Response {
    match op.as_str() {
        "approve" if kind == "confirm" => return text(200, "OK"),
        "halt" if kind == "confirm" => return text(403, "Forbidden"),
        _ => {}
    }
    let p = match payload(&body, GATE_PAYLOAD) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    match op.as_str() {
        "open" | "close" => {
            let open = op == "open";
            match st.analysis.set_gate(
                &p.namespace,
                &p.name,
                kind,
                open,
                "api",
                crate::clock::now_ms(),
            ) {
                Ok(()) => text(202, if open { "Gate opened" } else { "Gate closed" }),
                Err(e) => text(500, &e.to_string()),
            }
        }
        "check" => match st.analysis.gate(&p.namespace, &p.name, kind) {
            Ok(true) => text(200, "Approved"),
            Ok(false) => text(403, "Forbidden"),
            Err(e) => text(500, &e.to_string()),
        },
        _ => text(404, "not found"),
    }
}

/// `GET /api/v1/gates`.
pub async fn gates(State(st): State<Arc<ApiState>>) -> Response {
    match st.analysis.gates() {
        Ok(gs) => Json(
            json!({"status": "success", "data": gs.iter().map(|g| json!({
            "namespace": g.namespace, "name": g.name, "kind": g.kind, "open": g.open,
            "updated": g.updated_at as f64 / 1000.0, "actor": g.actor,
        })).collect::<Vec<_>>()}),
        )
        .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"status": "error", "error": e.to_string()})),
        )
            .into_response(),
    }
}

/// `GET /api/v1/audit[?subject=ns/name&limit=N]`: the append-only log.
pub async fn audit(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let params = super::query_pairs(&q);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit = match super::limit_param(&q) {
        Ok(l) => l,
        Err(e) => return text(400, &e),
    };
    match st.analysis.audit_log(get("subject").as_deref(), limit) {
        Ok(rows) => Json(json!({"status": "success", "data": rows.iter().map(|r| json!({
            "id": r.id, "time": r.t as f64 / 1000.0, "actor": r.actor, "action": r.action,
            "subject": r.subject, "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or_default(),
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"status": "error", "error": e.to_string()}))).into_response(),
    }
}

/// `GET|POST /api/v1/argo/{template}`: Argo Rollouts' `web` metric. Args
/// come from the query string and, for POST, a JSON object body; the
/// answer is always 200 JSON `{"verdict": "pass"|"fail"|"inconclusive",
/// "state", "score", "reason", "run", "metrics": [...]}` so that
/// `successCondition: result.verdict == "pass"` and `failureCondition:
/// result.verdict == "fail"` give Argo all three phases.
pub async fn argo(
    State(st): State<Arc<ApiState>>,
    method: axum::http::Method,
    Path(template): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    // axum answers HEAD with the GET handler; a HEAD must not start a run.
    if method == axum::http::Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, POST")],
            "HEAD is not allowed here: a GET starts or reads an analysis run\n",
        )
            .into_response();
    }
    let mut given: BTreeMap<String, String> = super::query_pairs(&q).into_iter().collect();
    let verdict =
        |v: decide::Verdict, state: &str, reason: String, run: Option<&str>, extra: Value| {
            let mut out = json!({
                "verdict": v.as_str(), "state": state, "reason": reason, "run": run,
                "score": Value::Null, "metrics": [],
            });
            if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
                o.extend(e);
            }
            (StatusCode::OK, Json(out)).into_response()
        };
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => {
                for (k, v) in m {
                    let s = match v {
                        Value::String(s) => s,
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    given.insert(k, s);
                }
            }
            _ => {
                return verdict(
                    decide::Verdict::Inconclusive,
                    "error",
                    "request body: expected a JSON object of arguments".into(),
                    None,
                    json!({}),
                )
            }
        }
    }
    let ov = match overrides(&given) {
        Ok(o) => o,
        Err(e) => return verdict(decide::Verdict::Inconclusive, "error", e, None, json!({})),
    };
    let args: BTreeMap<String, String> = given
        .iter()
        .filter(|(k, _)| !SCHEDULE_KEYS.contains(&k.as_str()) && *k != "key" && *k != "token")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // One run per template and argument set (e.g. per canary pod hash),
    // unless the caller names its own key.
    let key = given.get("key").cloned().unwrap_or_else(|| {
        format!(
            "argo/{template}/{}",
            serde_json::to_string(&args).unwrap_or_default()
        )
    });
    let row = match ensure_run(&st, &template, &args, &[], key, &ov) {
        Ok(r) => r,
        Err(e) => {
            return verdict(
                decide::Verdict::Inconclusive,
                "error",
                e.to_string(),
                None,
                json!({}),
            )
        }
    };
    let (state, status) = match read_run(&row) {
        Ok(x) => x,
        Err(e) => {
            return verdict(
                decide::Verdict::Inconclusive,
                "error",
                e,
                Some(&row.id),
                json!({}),
            )
        }
    };
    let score = serde_json::from_str::<crate::analysis::template::Template>(&row.spec)
        .ok()
        .and_then(|t| status.score(&t));
    let metrics: Vec<Value> = status
        .metrics
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "phase": m.last.as_ref().map(|l| l.phase.as_str()),
                "message": m.last.as_ref().map(|l| l.message.clone()),
                "baseline": m.last.as_ref().and_then(|l| l.baseline),
                "canary": m.last.as_ref().and_then(|l| l.canary),
            })
        })
        .collect();
    let v = decide::argo_verdict(state, status.seen());
    st.analysis.audit_change(
        crate::clock::now_ms(),
        "argo",
        "argo.measure",
        &template,
        &format!("{}|{}|{}", row.id, v.as_str(), row.state),
        &json!({"run": row.id, "args": args, "verdict": v.as_str(), "state": row.state}),
    );
    verdict(
        v,
        &row.state,
        row.message.clone(),
        Some(&row.id),
        json!({"score": score, "metrics": metrics, "intervals": status.intervals}),
    )
}

/// `POST /api/v1/rollouts/{namespace}/{name}/{decision}` (a
/// [`crate::decide::Decision`])
/// with optional `{"revision": …, "reason": …}`: an operator's decision,
/// carried out by the same dispatcher as automatic ones. 202 when new, 200
/// when this decision for this revision was already taken (nothing is sent
/// twice).
pub async fn operator_decision(
    State(st): State<Arc<ApiState>>,
    Path((namespace, name, decision)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let decision = match decision.parse::<decide::Decision>() {
        Ok(d) => d,
        Err(e) => return text(404, &e),
    };
    if let Err(e) =
        crate::names::check_namespace(&namespace).and_then(|()| crate::names::check_name(&name))
    {
        return text(400, &e);
    }
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return text(
                    400,
                    "request body: expected a JSON object {\"revision\", \"reason\"}",
                )
            }
        }
    };
    let field = |k: &str| -> Result<Option<String>, String> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("{k}: expected a string, found {other}")),
        }
    };
    let (revision, reason) = match (field("revision"), field("reason")) {
        (Ok(r), Ok(why)) => (r.unwrap_or_default(), why),
        (Err(e), _) | (_, Err(e)) => return text(400, &e),
    };
    if let Some(unknown) = v.as_object().and_then(|o| {
        o.keys()
            .find(|k| !matches!(k.as_str(), "revision" | "reason"))
    }) {
        return text(
            400,
            &format!(
                "request body: unknown field {unknown:?}; expected \"revision\" and \"reason\""
            ),
        );
    }
    if let Err(e) = crate::names::check_revision(&revision) {
        return text(400, &e);
    }
    let d = crate::act::RolloutDecision {
        namespace,
        name,
        revision,
        decision,
        actor: "api".into(),
        reason: reason.unwrap_or_else(|| "operator request".to_string()),
        detail: json!({"request": v}),
    };
    match st.act.submit(&d, crate::clock::now_ms()) {
        Ok((row, new)) => (
            if new {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            },
            Json(json!({"status": "success", "data": {"id": row.id, "key": row.key, "new": new}})),
        )
            .into_response(),
        Err(e) => text(500, &e.to_string()),
    }
}

/// `GET /api/v1/decisions[?limit=N]`: decisions with every action's
/// status, request (without secrets) and response.
pub async fn decisions(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let limit = match super::limit_param(&q) {
        Ok(l) => l,
        Err(e) => return text(400, &e),
    };
    match st.act.list(limit) {
        Ok(v) => Json(json!({"status": "success", "data": v})).into_response(),
        Err(e) => text(500, &e.to_string()),
    }
}
