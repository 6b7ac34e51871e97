//! Rollouts augur drives (`[[rollouts]]`): their status and the operator
//! verbs (promote, promote-full, abort, pause, resume, retry). A verb for a
//! rollout augur does not drive is an operator decision for the sinks
//! (`hooks::operator_decision`), as before.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;
use crate::rollout::model::Verb;
use crate::rollout::RolloutError;

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"status": "error", "errorType": "bad_data", "error": message})),
    )
        .into_response()
}

/// `GET /api/v1/rollouts`: every driven rollout with its phase.
pub async fn list(State(st): State<Arc<ApiState>>) -> Response {
    match st.rollouts.list() {
        Ok(v) => Json(json!({"status": "success", "data": v})).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `GET /api/v1/rollouts/{namespace}/{name}`: step, weights, analysis and
/// the last requests sent.
pub async fn get(
    State(st): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match st.rollouts.view(&namespace, &name) {
        Ok(Some(v)) => Json(json!({"status": "success", "data": v})).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            &format!("no rollout {namespace}/{name} is configured in [[rollouts]]"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `POST /api/v1/rollouts/{namespace}/{name}/{verb}` with an optional
/// `{"reason": "..."}`.
pub async fn verb(
    State(st): State<Arc<ApiState>>,
    Path((namespace, name, verb)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    if !st.rollouts.drives(&namespace, &name) {
        return super::hooks::operator_decision(State(st), Path((namespace, name, verb)), body)
            .await;
    }
    let verb = match verb.parse::<Verb>() {
        Ok(v) => v,
        Err(e) => return error(StatusCode::NOT_FOUND, &e),
    };
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "request body: expected a JSON object {\"reason\"}",
                )
            }
        }
    };
    if let Some(k) = v
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "reason"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("request body: unknown field {k:?}; expected \"reason\""),
        );
    }
    let reason = match v.get("reason") {
        None | Some(Value::Null) => "operator request".to_string(),
        Some(Value::String(s)) if s.len() <= 1024 => s.clone(),
        Some(Value::String(_)) => {
            return error(StatusCode::BAD_REQUEST, "reason: at most 1024 characters")
        }
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("reason: expected a string, found {other}"),
            )
        }
    };
    let now = crate::clock::now_ms();
    match st
        .rollouts
        .command(&namespace, &name, verb, "operator:api", &reason, now)
    {
        Ok(id) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "success", "data": {"command": id, "verb": verb.as_str()}})),
        )
            .into_response(),
        Err(RolloutError::Refused(m)) => error(StatusCode::CONFLICT, &m),
        Err(RolloutError::NotDriven(m)) => error(StatusCode::NOT_FOUND, &m),
        Err(e @ RolloutError::State(_)) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
