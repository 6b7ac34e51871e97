//! `/api/v1/analysis/*`: start, read and cancel analysis runs, list
//! templates. Runs are created and cancelled through the
//! [`AnalysisManager`](crate::analysis::engine::AnalysisManager), which owns
//! their persistence.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;
use crate::analysis::engine::{summary, AnalysisError, Overrides};
use crate::analysis::template::{Check, Queries};

fn error(code: StatusCode, kind: &str, msg: impl Into<String>) -> Response {
    (
        code,
        Json(json!({"status": "error", "errorType": kind, "error": msg.into()})),
    )
        .into_response()
}

fn success(code: StatusCode, data: Value) -> Response {
    (code, Json(json!({"status": "success", "data": data}))).into_response()
}

fn analysis_error(e: AnalysisError) -> Response {
    match e {
        AnalysisError::UnknownTemplate(_) => {
            error(StatusCode::NOT_FOUND, "not_found", e.to_string())
        }
        AnalysisError::BadArgs(_) => error(StatusCode::BAD_REQUEST, "bad_data", e.to_string()),
        AnalysisError::TooManyRunning(_) => {
            error(StatusCode::TOO_MANY_REQUESTS, "unavailable", e.to_string())
        }
        AnalysisError::State(_) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}

/// `POST /api/v1/analysis/runs` with `{"template": …, "args": {…}, "key": …}`.
pub async fn create(State(st): State<Arc<ApiState>>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!(
                    "request body: expected JSON {{\"template\": \"name\", \"args\": {{…}}}}: {e}"
                ),
            )
        }
    };
    let Some(template) = v.get("template").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "request body: expected a \"template\" string",
        );
    };
    let mut args = BTreeMap::new();
    match v.get("args") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, x) in m {
                let s = match x {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad_data",
                            format!(
                                "args.{k}: expected a string, number or boolean, found {other}"
                            ),
                        )
                    }
                };
                args.insert(k.clone(), s);
            }
        }
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("args: expected an object of name: value, found {other}"),
            )
        }
    }
    let key = match v.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("key: expected a string, found {other}"),
            )
        }
    };
    let mut ov = Overrides::default();
    for (name, slot) in [
        ("interval", &mut ov.interval),
        ("window", &mut ov.window),
        ("initial_delay", &mut ov.initial_delay),
    ] {
        match v.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => match crate::duration::parse(s) {
                Ok(d) => *slot = Some(d),
                Err(e) => {
                    return error(StatusCode::BAD_REQUEST, "bad_data", format!("{name}: {e}"))
                }
            },
            Some(other) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    format!("{name}: expected a duration like \"30s\", found {other}"),
                )
            }
        }
    }
    match v.get("count") {
        None | Some(Value::Null) => {}
        Some(c) => match c.as_u64().and_then(|c| u32::try_from(c).ok()) {
            Some(c) => ov.count = Some(c),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    format!("count: expected a positive integer, found {c}"),
                )
            }
        },
    }
    match v.get("rollout") {
        None | Some(Value::Null) => {}
        Some(r) => {
            if let Err(e) = crate::act::RolloutBinding::from_json(r) {
                return error(StatusCode::BAD_REQUEST, "bad_data", e);
            }
            ov.rollout = Some(r.clone());
        }
    }
    match st
        .analysis
        .create(template, &args, key, &ov, crate::clock::now_ms())
    {
        Ok(row) => success(StatusCode::CREATED, summary(&row)),
        Err(e) => analysis_error(e),
    }
}

/// `GET /api/v1/analysis/runs[?state=…&limit=…]`.
pub async fn list(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let params = super::query_pairs(&q);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let state = get("state");
    if let Some(s) = &state {
        if crate::analysis::run::RunState::parse(s).is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                format!("state: expected running, passed, failed, inconclusive, error or cancelled, found {s:?}"),
            );
        }
    }
    let limit = match super::limit_param(&q) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_data", e),
    };
    match st.analysis.list(state.as_deref(), limit) {
        Ok(runs) => success(StatusCode::OK, json!(runs)),
        Err(e) => analysis_error(e),
    }
}

/// `GET /api/v1/analysis/runs/{id}`.
pub async fn get(State(st): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    match st.analysis.view(&id) {
        Ok(Some(v)) => success(StatusCode::OK, v),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no analysis run {id:?}"),
        ),
        Err(e) => analysis_error(e),
    }
}

/// `DELETE /api/v1/analysis/runs/{id}`: cancels a running run.
pub async fn cancel(State(st): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    match st.analysis.cancel(&id, crate::clock::now_ms()) {
        Ok(Some(row)) => success(StatusCode::OK, summary(&row)),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no analysis run {id:?}"),
        ),
        Err(e) => analysis_error(e),
    }
}

/// `GET /api/v1/analysis/templates`.
pub async fn templates(State(st): State<Arc<ApiState>>) -> Response {
    let ts = st.analysis.templates();
    let data: Vec<Value> = ts
        .values()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "source": t.source,
                "interval": crate::duration::format(t.interval),
                "window": crate::duration::format(t.window),
                "initial_delay": crate::duration::format(t.initial_delay),
                "count": t.count,
                "failure_limit": t.failure_limit,
                "inconclusive_limit": t.inconclusive_limit,
                "consecutive_error_limit": t.consecutive_error_limit,
                "consecutive_success_limit": t.consecutive_success_limit,
                "threshold": t.threshold,
                "alpha": t.alpha,
                "args": t.args.iter().map(|a| json!({"name": a.name, "default": a.default, "required": a.default.is_none()})).collect::<Vec<_>>(),
                "metrics": t.metrics.iter().map(|m| {
                    let (check, test) = match &m.check {
                        Check::Threshold { .. } => ("threshold", None),
                        Check::Relative { .. } => ("relative", None),
                        Check::Test { test, .. } => ("test", Some(test.as_str())),
                    };
                    let queries = match &m.queries {
                        Queries::Values { baseline, canary } => json!({"baseline": baseline, "canary": canary}),
                        Queries::Counts { errors, total } => json!({"errors": errors, "total": total}),
                    };
                    json!({
                        "name": m.name, "check": check, "test": test, "direction": m.direction,
                        "critical": m.critical, "weight": m.weight, "group": m.group,
                        "no_data": m.no_data, "queries": queries,
                    })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    success(StatusCode::OK, json!(data))
}
