//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus's JSON shape
//! (`web/api/v1/api.go` rules and alerts handlers).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::ApiState;
use crate::rules::{Alert, AlertState, RuleView};

fn time(ms: Option<i64>) -> String {
    crate::timefmt::rfc3339_nano(ms.map(|m| UNIX_EPOCH + Duration::from_millis(m.max(0) as u64)))
}

fn string_map<'a>(m: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Object(
        m.map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect::<Map<_, _>>(),
    )
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as the API prints alert values.
fn value_e(v: f64) -> String {
    if !v.is_finite() {
        return crate::fmtfloat::prom_api(v);
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

fn alert_json(a: &Alert) -> Value {
    let mut v = json!({
        "labels": string_map(a.labels.iter().map(|l| (&*l.name, &*l.value))),
        "annotations": string_map(a.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        "state": a.state.as_str(),
        "activeAt": time(Some(a.active_at)),
        "value": value_e(a.value),
    });
    if let Some(k) = a.keep_firing_since {
        v["keepFiringSince"] = Value::String(time(Some(k)));
    }
    v
}

fn rule_json(r: &RuleView) -> Value {
    let common = |mut v: Value| {
        v["health"] = json!(r.health.as_str());
        v["evaluationTime"] = json!(r.eval_seconds);
        v["lastEvaluation"] = json!(time(r.last_evaluation));
        if let Some(e) = &r.last_error {
            v["lastError"] = json!(e);
        }
        v
    };
    let labels = string_map(r.rule.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match &r.rule.alert {
        Some(name) => {
            let alerts: Vec<Value> = r.alerts.iter().map(alert_json).collect();
            let state = r
                .alerts
                .iter()
                .map(|a| a.state)
                .max()
                .unwrap_or(AlertState::Inactive);
            common(json!({
                "state": state.as_str(),
                "name": name,
                "query": r.rule.expr,
                "duration": r.rule.for_.as_secs_f64(),
                "keepFiringFor": r.rule.keep_firing_for.as_secs_f64(),
                "labels": labels,
                "annotations": string_map(r.rule.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                "alerts": alerts,
                "type": "alerting",
            }))
        }
        None => common(json!({
            "name": r.rule.record.clone().unwrap_or_default(),
            "query": r.rule.expr,
            "labels": labels,
            "type": "recording",
        })),
    }
}

pub(super) async fn rules(State(st): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Response {
    let params = super::query_pairs(&q);
    let kind = params
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.as_str());
    // Views published after each evaluation: a slow rule never blocks this.
    let groups: Vec<Value> = st
        .rules
        .views()
        .iter()
        .map(|g| {
            let rules: Vec<Value> = g
                .rules
                .iter()
                .filter(|r| match kind {
                    Some("alert") => r.is_alerting(),
                    Some("record") => !r.is_alerting(),
                    _ => true,
                })
                .map(rule_json)
                .collect();
            json!({
                "name": g.name,
                "file": g.file,
                "rules": rules,
                "interval": g.interval.as_secs_f64(),
                "limit": g.limit,
                "evaluationTime": g.last_eval_seconds,
                "lastEvaluation": time(g.last_evaluation),
            })
        })
        .collect();
    Json(json!({"status": "success", "data": {"groups": groups}})).into_response()
}

pub(super) async fn alerts(State(st): State<Arc<ApiState>>) -> Response {
    let mut alerts = Vec::new();
    for g in st.rules.views() {
        for r in &g.rules {
            alerts.extend(r.alerts.iter().map(alert_json));
        }
    }
    Json(json!({"status": "success", "data": {"alerts": alerts}})).into_response()
}

/// The outbox: counts per status and the newest entries (`?status=`).
pub(super) async fn notifications(
    State(st): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = super::query_pairs(&q);
    let status = params
        .iter()
        .find(|(k, _)| k == "status")
        .map(|(_, v)| v.clone());
    if let Some(s) = status.as_deref() {
        if !matches!(s, "pending" | "sent" | "dead") {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({"status": "error", "errorType": "bad_data",
                    "error": format!("status: expected pending, sent or dead, found {s:?}")})),
            )
                .into_response();
        }
    }
    let db = st.state.clone();
    let res = tokio::task::spawn_blocking(move || {
        let counts = db.outbox_counts()?;
        let entries = db.outbox(status.as_deref(), 500)?;
        Ok::<_, crate::state::StateError>((counts, entries))
    })
    .await;
    match res {
        Ok(Ok((counts, entries))) => {
            let counts: Map<String, Value> = counts.into_iter().map(|(k, n)| (k, json!(n))).collect();
            let items: Vec<Value> = entries
                .into_iter()
                .map(|e| {
                    json!({
                        "id": e.id,
                        "receiver": e.receiver,
                        "kind": e.kind,
                        "status": e.status,
                        "attempts": e.attempts,
                        "createdAt": time(Some(e.created_at)),
                        "nextAttemptAt": time(Some(e.next_attempt_at)),
                        "lastError": e.last_error.as_deref().map(crate::redact::urls_in),
                        "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::String(e.payload)),
                    })
                })
                .collect();
            Json(json!({"status": "success", "data": {"counts": counts, "notifications": items}})).into_response()
        }
        _ => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"status": "error", "errorType": "internal", "error": "cannot read the outbox"})),
        )
            .into_response(),
    }
}
