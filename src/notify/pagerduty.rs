//! PagerDuty Events API v2, as Alertmanager's `pagerduty_configs` sends
//! it: one event per group (augur groups one rule's alerts by `alertname`,
//! Alertmanager's `{}:{alertname="..."}` group key), `trigger` while any
//! alert fires and `resolve` once all are resolved, `dedup_key` the
//! SHA-256 of the group key, the summary Alertmanager's default subject,
//! `custom_details` its default text. Change events (`/v2/change/enqueue`)
//! carry promote, abort and rollback decisions. The routing key is read
//! from its file at each send and never stored in the outbox.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{Notification, OutgoingAlert, SendError};
use crate::config::{PagerDuty, Receiver};
use crate::timefmt::rfc3339_ms;

/// PagerDuty's limit on `payload.summary`, in characters.
const MAX_SUMMARY: usize = 1024;

/// Alertmanager's limit on a whole event; past it `custom_details` goes.
const MAX_EVENT: usize = 512_000;

/// `Key.Hash()`: hex SHA-256 of the group key.
pub fn dedup_key(group_key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(group_key.as_bytes()))
}

/// A label set's pairs in Alertmanager's `SortedPairs` order: `alertname`
/// first, then by name.
fn sorted_pairs(m: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    v.sort_by_key(|(k, _)| (*k != "alertname", *k));
    v
}

/// Alertmanager's `__subject` template, rendered: `[FIRING:2] Backlog
/// (test page)`; its trailing space when no labels are left is kept.
pub fn subject(
    firing: usize,
    group_labels: &BTreeMap<String, String>,
    common_labels: &BTreeMap<String, String>,
) -> String {
    let status = if firing > 0 {
        format!("FIRING:{firing}")
    } else {
        "RESOLVED".to_string()
    };
    let group: Vec<&str> = sorted_pairs(group_labels)
        .into_iter()
        .map(|p| p.1)
        .collect();
    let rest = if common_labels.len() > group_labels.len() {
        let left: BTreeMap<String, String> = common_labels
            .iter()
            .filter(|(k, _)| !group_labels.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let vals: Vec<&str> = sorted_pairs(&left).into_iter().map(|p| p.1).collect();
        format!("({})", vals.join(" "))
    } else {
        String::new()
    };
    format!("[{status}] {} {rest}", group.join(" "))
}

/// Alertmanager's `__text_alert_list` for some alerts.
fn alert_list<'a>(alerts: impl Iterator<Item = &'a OutgoingAlert>) -> String {
    let mut out = String::new();
    for a in alerts {
        out.push_str("Labels:\n");
        for (k, v) in sorted_pairs(&a.labels) {
            out.push_str(&format!(" - {k} = {v}\n"));
        }
        out.push_str("Annotations:\n");
        for (k, v) in sorted_pairs(&a.annotations) {
            out.push_str(&format!(" - {k} = {v}\n"));
        }
        out.push_str(&format!("Source: {}\n", a.generator_url));
    }
    out
}

/// `notify.TruncateInRunes`: past `n` characters, `n - 1` and "…".
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n - 1).collect();
    t.push('…');
    t
}

/// The event for one group, without its routing key (added at send time);
/// None for a resolved group when `send_resolved` is off, and for one-shot
/// notices (Flagger's events), which are never resolved: as PagerDuty
/// incidents they would stay open for good (decisions reach PagerDuty as
/// change events instead).
pub(super) fn payload(r: &Receiver, pd: &PagerDuty, n: &Notification<'_>) -> Option<Value> {
    let alerts = n.alerts;
    if alerts.iter().all(|a| a.one_shot) {
        return None;
    }
    let data = super::email::template_data(n);
    let firing = alerts.iter().filter(|a| !a.resolved).count();
    if firing == 0 && !pd.send_resolved {
        return None;
    }
    let render = |what: &str, t: &str| -> String {
        if !t.contains("{{") {
            return t.to_string();
        }
        crate::gotemplate::render(what, t, data.clone()).unwrap_or_else(|e| {
            tracing::warn!(receiver = %r.name, field = what, error = %e, "cannot render a PagerDuty field; left empty");
            String::new()
        })
    };
    let summary = match &pd.description {
        Some(t) => render("description", t),
        None => subject(firing, &n.group_labels, &n.common_labels),
    };
    let client = render("client", &pd.client);
    let source = match &pd.source {
        Some(t) => render("source", t),
        None => client.clone(),
    };
    let mut p = Map::new();
    p.insert("summary".into(), json!(truncate(&summary, MAX_SUMMARY)));
    p.insert("source".into(), json!(source));
    p.insert("severity".into(), json!(render("severity", &pd.severity)));
    for (k, t) in [
        ("class", &pd.class),
        ("component", &pd.component),
        ("group", &pd.group),
    ] {
        let v = render(k, t);
        if !v.is_empty() {
            p.insert(k.into(), json!(v));
        }
    }
    p.insert(
        "custom_details".into(),
        json!({
            "firing": alert_list(alerts.iter().filter(|a| !a.resolved)),
            "resolved": alert_list(alerts.iter().filter(|a| a.resolved)),
            "num_firing": firing.to_string(),
            "num_resolved": (alerts.len() - firing).to_string(),
        }),
    );
    let mut msg = json!({
        "dedup_key": dedup_key(&n.group_key()),
        "event_action": if firing > 0 { "trigger" } else { "resolve" },
        "payload": Value::Object(p),
        "client": client,
        "client_url": render("client_url", &pd.client_url),
    });
    let links: Vec<Value> = pd
        .links
        .iter()
        .map(|(h, t)| (render("links.href", h), render("links.text", t)))
        .filter(|(h, _)| !h.is_empty())
        .map(|(h, t)| json!({"href": h, "text": t}))
        .collect();
    if !links.is_empty() {
        msg["links"] = json!(links);
    }
    if msg.to_string().len() > MAX_EVENT {
        msg["payload"]["custom_details"] = json!({"error": "Custom details have been removed because the original event exceeds the maximum size of 512kB"});
    }
    Some(msg)
}

/// The change event for a promote, abort or rollback decision.
pub(super) fn change_payload(d: &crate::state::DecisionRow, external_url: &str) -> Value {
    let base = external_url.trim_end_matches('/');
    let subject = format!("{}/{}", d.namespace, d.name);
    let revision = if d.revision.is_empty() {
        String::new()
    } else {
        format!("@{}", d.revision)
    };
    let summary = format!("augur: {} {subject}{revision}: {}", d.decision, d.reason);
    let mut links = vec![
        json!({"href": format!("{base}/rollouts/{subject}"), "text": format!("augur: {subject}")}),
    ];
    if let Some(run) = d.actor.strip_prefix("analysis:") {
        links
            .push(json!({"href": format!("{base}/runs/{run}"), "text": "augur: the analysis run"}));
    }
    json!({
        "payload": {
            "summary": truncate(&summary, MAX_SUMMARY),
            "source": "augur",
            "timestamp": rfc3339_ms(d.t),
            "custom_details": {
                "namespace": d.namespace, "name": d.name, "revision": d.revision,
                "decision": d.decision, "actor": d.actor, "reason": d.reason,
            },
        },
        "links": links,
    })
}

fn routing_key(path: &std::path::Path) -> Result<String, SendError> {
    let key = std::fs::read_to_string(path)
        .map_err(|e| SendError::Invalid(format!("routing_key_file {}: {e}", path.display())))?;
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(SendError::Invalid(format!(
            "routing_key_file {}: empty",
            path.display()
        )));
    }
    Ok(key)
}

/// Sends an alert event (`change` false) or a change event. PagerDuty's
/// rules: 2xx done; 429 and 5xx retried; any other answer is final.
pub(super) async fn send(
    http: &reqwest::Client,
    r: &Receiver,
    pd: &PagerDuty,
    payload: &str,
    change: bool,
) -> Result<(), SendError> {
    let (url, key_file) = if change {
        (&pd.change_url, &pd.change_routing_key_file)
    } else {
        (&r.url, &pd.routing_key_file)
    };
    let mut msg: Value =
        serde_json::from_str(payload).map_err(|e| SendError::Invalid(e.to_string()))?;
    // The key goes first, as Alertmanager writes it.
    let mut body = Map::new();
    body.insert("routing_key".into(), json!(routing_key(key_file)?));
    if let Some(o) = msg.as_object_mut() {
        body.append(o);
    }
    let resp = http
        .post(url)
        .timeout(r.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(Value::Object(body).to_string())
        .send()
        .await
        .map_err(|e| SendError::Transport(crate::redact::reqwest_error(e)))?;
    let code = resp.status();
    if code.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    // PagerDuty's 400 says why: `{status, message, errors[]}`.
    let why = serde_json::from_str::<Value>(&text)
        .ok()
        .map(|v| {
            let errs: Vec<String> = v["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect();
            format!(
                "{}{}",
                v["message"].as_str().unwrap_or(""),
                if errs.is_empty() {
                    String::new()
                } else {
                    format!(": {}", errs.join("; "))
                }
            )
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| text.trim().chars().take(512).collect());
    let msg = format!("{code}: {why}");
    if code.as_u16() == 429 || code.is_server_error() {
        Err(SendError::Status(msg))
    } else {
        Err(SendError::Rejected(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_and_subjects_match_alertmanager_0_25() {
        // Captured from Debian's prometheus-alertmanager 0.25.0.
        let alert = |l: &[(&str, &str)]| OutgoingAlert {
            labels: labels(l),
            annotations: BTreeMap::new(),
            starts_at: 0,
            ends_at: 0,
            generator_url: String::new(),
            resolved: false,
            one_shot: false,
        };
        let pair = [
            alert(&[("alertname", "Backlog"), ("queue", "a")]),
            alert(&[("alertname", "Backlog"), ("queue", "b")]),
        ];
        let n = Notification::new("pd", &pair, "http://augur");
        assert_eq!(n.group_key(), "{}:{alertname=\"Backlog\"}");
        assert_eq!(
            dedup_key(&n.group_key()),
            "355826198cbdc7877bed2de46464c460809e9c69ee7ffb14579492d8312be78c"
        );
        let g = labels(&[("alertname", "Backlog")]);
        let common = labels(&[
            ("alertname", "Backlog"),
            ("cluster", "test"),
            ("severity", "page"),
        ]);
        assert_eq!(subject(2, &g, &common), "[FIRING:2] Backlog (test page)");
        assert_eq!(subject(0, &g, &common), "[RESOLVED] Backlog (test page)");
        let two = labels(&[("alertname", "Solo"), ("severity", "page")]);
        assert_eq!(subject(1, &two, &two), "[FIRING:1] Solo page ");
        let mut n = Notification::new("pd", &pair, "http://augur");
        n.group_labels = labels(&[("alertname", "Backlog2"), ("severity", "page")]);
        assert_eq!(
            n.group_key(),
            "{}:{alertname=\"Backlog2\", severity=\"page\"}"
        );
    }

    #[test]
    fn the_alert_list_is_alertmanagers_text() {
        let a = OutgoingAlert {
            labels: labels(&[
                ("alertname", "Backlog"),
                ("cluster", "test"),
                ("queue", "orders"),
                ("severity", "page"),
            ]),
            annotations: labels(&[
                ("description", "queue depth 500"),
                ("summary", "Orders backlog high"),
            ]),
            starts_at: 0,
            ends_at: 0,
            generator_url: "http://prom.example/graph?g0.expr=x".into(),
            resolved: false,
            one_shot: false,
        };
        assert_eq!(
            alert_list([&a].into_iter()),
            "Labels:\n - alertname = Backlog\n - cluster = test\n - queue = orders\n - severity = page\nAnnotations:\n - description = queue depth 500\n - summary = Orders backlog high\nSource: http://prom.example/graph?g0.expr=x\n"
        );
        assert_eq!(truncate(&"x".repeat(1030), 1024).chars().count(), 1024);
    }
}
