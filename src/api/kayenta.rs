//! A Kayenta-compatible API (`kayenta-web` controllers), enough for Argo
//! Rollouts' built-in `kayenta` metric provider to point at augur
//! unchanged: `GET /canaryConfig` (lookup by name), `POST
//! /canary/{configId}` (start; answers `{"canaryExecutionId"}`), `GET
//! /canary/{id}` (`complete`, `status`, `result.judgeResult.score`). Canary
//! configs are Kayenta JSON files listed by `kayenta_configs`; metrics are
//! fetched from augur's datasource and judged by augur's port of
//! NetflixACAJudge-v1.0.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;
use crate::analysis::kayenta::Scope;

fn params(q: Option<String>) -> BTreeMap<String, String> {
    super::query_pairs(&q).into_iter().collect()
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    (
        code,
        Json(json!({"error": code.canonical_reason(), "message": msg, "status": code.as_u16()})),
    )
        .into_response()
}

/// `GET /canaryConfig[?application=…]`.
pub async fn list_configs(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let app = p.get("application");
    let list: Vec<Value> = st
        .analysis
        .kayenta_configs()
        .iter()
        .filter(|c| app.is_none_or(|a| c.config.applications.iter().any(|x| x == a)))
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.config.name,
                "updatedTimestamp": c.updated_ms,
                "updatedTimestampIso": crate::timefmt::rfc3339_ms(c.updated_ms),
                "applications": c.config.applications,
            })
        })
        .collect();
    Json(Value::Array(list)).into_response()
}

/// `GET /canaryConfig/{id}`.
pub async fn get_config(State(st): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    match st.analysis.kayenta_configs().iter().find(|c| c.id == id) {
        Some(c) => Json(c.raw.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("No canary config with id '{id}' found."),
        ),
    }
}

fn scope(v: &Value, what: &str) -> Result<Scope, String> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let time = |k: &str| -> Result<i64, String> {
        let t = v.get(k).and_then(Value::as_str).filter(|t| !t.is_empty());
        let Some(t) = t else {
            return Err(format!(
                "{what}.{k}: {} time is required.",
                if k == "start" { "Start" } else { "End" }
            ));
        };
        humantime::parse_rfc3339_weak(t)
            .map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64)
            })
            .map_err(|e| format!("{what}.{k}: expected an ISO-8601 instant, found {t:?}: {e}"))
    };
    let step = match v.get("step") {
        None | Some(Value::Null) => 60,
        Some(x) => x
            .as_i64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            .filter(|s| *s > 0)
            .ok_or_else(|| format!("{what}.step: expected seconds, found {x}"))?,
    };
    let extended = v
        .get("extendedScopeParams")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| {
                    (
                        k.clone(),
                        x.as_str().map_or_else(|| x.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut location = s("location");
    if location.is_empty() {
        // Argo Rollouts sent `region` before PR #4465.
        location = s("region");
    }
    Ok(Scope {
        scope: s("scope"),
        location,
        start: time("start")?,
        end: time("end")?,
        step,
        extended,
    })
}

/// `POST /canary/{configId}` with Kayenta's `CanaryExecutionRequest`.
pub async fn start(
    State(st): State<Arc<ApiState>>,
    Path(config_id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let p = params(q);
    let configs = st.analysis.kayenta_configs();
    let Some(config) = configs.iter().find(|c| c.id == config_id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("No canary config with id '{config_id}' found."),
        );
    };
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("request body is not JSON: {e}"),
            )
        }
    };
    let th = &req["thresholds"];
    let (Some(pass), Some(marginal)) = (th["pass"].as_f64(), th["marginal"].as_f64()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Execution request must contain thresholds",
        );
    };
    let Some(scopes) = req["scopes"].as_object() else {
        return error(
            StatusCode::BAD_REQUEST,
            "Execution request must contain scopes",
        );
    };
    let mut parsed = BTreeMap::new();
    for (name, s) in scopes {
        let pair =
            scope(&s["controlScope"], &format!("scopes.{name}.controlScope")).and_then(|c| {
                Ok((
                    c,
                    scope(
                        &s["experimentScope"],
                        &format!("scopes.{name}.experimentScope"),
                    )?,
                ))
            });
        match pair {
            Ok(p) => {
                parsed.insert(name.clone(), p);
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        }
    }
    match st
        .analysis
        .kayenta_execute(
            config,
            &req,
            &parsed,
            (pass, marginal),
            &p,
            crate::clock::now_ms(),
        )
        .await
    {
        Ok(id) => Json(json!({"canaryExecutionId": id})).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /canary/{id}`.
pub async fn status(State(st): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    match st.analysis.kayenta_execution(&id) {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("No canary execution with id '{id}' found."),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
