//! Notifications: alerts that need sending become one message per receiver
//! in the durable outbox (written before any attempt), and a delivery loop
//! sends them with retries, exponential backoff with jitter, per-receiver
//! rate limits and a dead-letter state. One file per sink.

mod alertmanager;
mod email;
mod pagerduty;
mod slack;
mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{json, Value};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{NotifyConfig, Receiver, ReceiverKind};
use crate::rules::{Alert, AlertState};
use crate::state::{OutboxEntry, State, StateError};
use crate::timefmt::rfc3339_ms;

/// Most alerts in one Alertmanager request (Prometheus's maxBatchSize).
const MAX_BATCH: usize = 256;

/// Why a delivery failed.
#[derive(Debug, Error)]
pub enum SendError {
    /// Could not connect, or no answer in time.
    #[error("{0}")]
    Transport(String),
    /// The receiver answered with an error status.
    #[error("receiver answered {0}")]
    Status(String),
    /// The message or the receiver's settings are unusable.
    #[error("{0}")]
    Invalid(String),
    /// The receiver refused the message for good (PagerDuty's 400): not
    /// retried.
    #[error("receiver refused it: {0}")]
    Rejected(String),
}

/// An alert as receivers get it (Alertmanager's postableAlert).
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingAlert {
    /// labels, external labels added where missing
    pub labels: BTreeMap<String, String>,
    /// annotations
    pub annotations: BTreeMap<String, String>,
    /// firing time (ms)
    pub starts_at: i64,
    /// resolve time, or the end of validity while firing (ms)
    pub ends_at: i64,
    /// link back to the expression
    pub generator_url: String,
    /// whether it is resolved
    pub resolved: bool,
    /// a one-shot notice that is never resolved (a forwarded Flagger
    /// event): receivers that open incidents (PagerDuty) skip it
    pub one_shot: bool,
}

/// Builds the outgoing form of an alert (`rules.SendAlerts`): startsAt is
/// the firing time, endsAt the resolve time or ValidUntil.
pub fn outgoing(
    a: &Alert,
    expr: &str,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
) -> OutgoingAlert {
    let mut labels: BTreeMap<String, String> = a
        .labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    for (k, v) in external_labels {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    OutgoingAlert {
        labels,
        annotations: a.annotations.clone(),
        starts_at: a.fired_at.unwrap_or(a.active_at),
        ends_at: a.resolved_at.or(a.valid_until).unwrap_or(a.active_at),
        generator_url: format!(
            "{}/graph?g0.expr={q}&g0.tab=1",
            external_url.trim_end_matches('/')
        ),
        resolved: a.state == AlertState::Inactive,
        one_shot: false,
    }
}

/// How long a forwarded Flagger event stays firing: receivers that group
/// and deduplicate (Alertmanager) see it once, then it expires by itself.
const EVENT_VALIDITY_MS: i64 = 5 * 60 * 1000;

/// A Flagger `event` or `post-rollout` call.
#[derive(Debug, Clone, Copy)]
pub struct FlaggerEvent<'a> {
    /// `event` or `post-rollout`.
    pub hook: &'a str,
    /// Canary namespace.
    pub namespace: &'a str,
    /// Canary name.
    pub name: &'a str,
    /// Canary phase.
    pub phase: &'a str,
    /// The hook's metadata (`eventMessage`, `eventType`, `timestamp`).
    pub metadata: &'a BTreeMap<String, String>,
}

/// A Flagger `event` or `post-rollout` hook as a one-shot alert, so every
/// receiver kind can take it: `alertname` FlaggerEvent or
/// FlaggerPostRollout, labelled with the canary, its phase and the event
/// type (`Warning` events get severity warning), the event message as the
/// summary; it links to the canary's audit log.
pub fn flagger_event(
    e: &FlaggerEvent<'_>,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    now: i64,
) -> OutgoingAlert {
    let FlaggerEvent {
        hook,
        namespace,
        name,
        phase,
        metadata,
    } = *e;
    let event_type = metadata.get("eventType").map_or("Normal", String::as_str);
    let mut labels: BTreeMap<String, String> = [
        (
            "alertname",
            if hook == "event" {
                "FlaggerEvent"
            } else {
                "FlaggerPostRollout"
            },
        ),
        ("namespace", namespace),
        ("canary", name),
        ("phase", phase),
        ("event_type", event_type),
        (
            "severity",
            if event_type == "Warning" || phase == "Failed" {
                "warning"
            } else {
                "info"
            },
        ),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in external_labels {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let summary = metadata
        .get("eventMessage")
        .cloned()
        .unwrap_or_else(|| format!("{namespace}/{name} finished its rollout in phase {phase}"));
    // Flagger's own timestamp (Unix ms) when it sent one.
    let at = metadata
        .get("timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(now);
    let subject: String =
        form_urlencoded::byte_serialize(format!("{namespace}/{name}").as_bytes()).collect();
    OutgoingAlert {
        labels,
        annotations: [("summary".to_string(), summary)].into_iter().collect(),
        starts_at: at,
        ends_at: at.max(now) + EVENT_VALIDITY_MS,
        one_shot: true,
        generator_url: format!(
            "{}/api/v1/audit?subject={subject}",
            external_url.trim_end_matches('/')
        ),
        resolved: false,
    }
}

/// Alertmanager's fingerprint of a label set (FNV-1a 64 over sorted
/// names and values with 0xff separators), as 16 hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for (k, v) in labels {
        k.bytes().for_each(&mut add);
        add(0xff);
        v.bytes().for_each(&mut add);
        add(0xff);
    }
    format!("{h:016x}")
}

fn alert_json(a: &OutgoingAlert) -> Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": rfc3339_ms(a.starts_at),
        "endsAt": rfc3339_ms(a.ends_at),
        "generatorURL": a.generator_url,
    })
}

fn common(
    alerts: &[OutgoingAlert],
    f: impl Fn(&OutgoingAlert) -> &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = alerts.first().map(|a| f(a).clone()).unwrap_or_default();
    for a in alerts.iter().skip(1) {
        out.retain(|k, v| f(a).get(k) == Some(v));
    }
    out
}

/// One group of alerts for one receiver, with what every receiver kind
/// derives from it (Alertmanager's notification data).
pub(super) struct Notification<'a> {
    /// receiver name
    receiver: &'a str,
    /// `firing` while any alert fires, else `resolved`
    status: &'static str,
    /// the alerts
    alerts: &'a [OutgoingAlert],
    /// augur groups one rule's alerts by `alertname`
    group_labels: BTreeMap<String, String>,
    /// labels every alert has with the same value
    common_labels: BTreeMap<String, String>,
    /// annotations every alert has with the same value
    common_annotations: BTreeMap<String, String>,
    /// `server.external_url`
    external_url: &'a str,
}

impl<'a> Notification<'a> {
    fn new(receiver: &'a str, alerts: &'a [OutgoingAlert], external_url: &'a str) -> Self {
        let common_labels = common(alerts, |a| &a.labels);
        Notification {
            receiver,
            status: if alerts.iter().any(|a| !a.resolved) {
                "firing"
            } else {
                "resolved"
            },
            alerts,
            group_labels: common_labels
                .get("alertname")
                .map(|a| ("alertname".to_string(), a.clone()))
                .into_iter()
                .collect(),
            common_annotations: common(alerts, |a| &a.annotations),
            common_labels,
            external_url,
        }
    }

    /// Alertmanager's group key for a root route grouping by the group
    /// labels: `{}:{alertname="X"}` (`LabelSet.String()`, values in Go's
    /// `%q`).
    fn group_key(&self) -> String {
        let pairs: Vec<String> = self
            .group_labels
            .iter()
            .map(|(k, v)| format!("{k}={}", go_quote(v)))
            .collect();
        format!("{{}}:{{{}}}", pairs.join(", "))
    }
}

/// Go's `%q` of a string.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The message for one receiver, as stored in the outbox (None: nothing
/// to send this receiver).
fn payload(r: &Receiver, alerts: &[OutgoingAlert], external_url: &str) -> Option<String> {
    let n = Notification::new(&r.name, alerts, external_url);
    Some(match &r.kind {
        ReceiverKind::Alertmanager => {
            Value::Array(alerts.iter().map(alert_json).collect()).to_string()
        }
        ReceiverKind::PagerDuty(pd) => pagerduty::payload(r, pd, &n)?.to_string(),
        ReceiverKind::Webhook { .. } => webhook::payload(&n).to_string(),
        ReceiverKind::Slack => slack::payload(n.status, alerts, &n.common_labels).to_string(),
        ReceiverKind::Email { subject, body, .. } => {
            let fallback = |what: &str, e: crate::gotemplate::TemplateError| {
                // A message that cannot be rendered is still sent, plainly.
                warn!(receiver = %r.name, error = %e, "cannot render the email {what}, using the default");
            };
            let data = email::template_data(&n);
            let s =
                crate::gotemplate::render("subject", subject, data.clone()).unwrap_or_else(|e| {
                    fallback("subject", e);
                    let name = n.common_labels.get("alertname").map(String::as_str);
                    format!("[{}] {}", n.status.to_uppercase(), name.unwrap_or("alerts"))
                });
            let b = crate::gotemplate::render("body", body, data).unwrap_or_else(|e| {
                fallback("body", e);
                Value::Array(alerts.iter().map(alert_json).collect()).to_string()
            });
            json!({"subject": s, "body": b}).to_string()
        }
    })
}

/// Puts the alerts of one rule evaluation into the outbox, one message per
/// receiver (Alertmanager in batches of 256). Returns the entries written.
pub fn enqueue(
    state: &State,
    cfg: &NotifyConfig,
    alerts: &[OutgoingAlert],
    external_url: &str,
    now: i64,
) -> Result<usize, StateError> {
    let mut n = 0;
    if alerts.is_empty() {
        return Ok(0);
    }
    for r in &cfg.receivers {
        let kind = kind_name(&r.kind);
        for chunk in alerts.chunks(if matches!(r.kind, ReceiverKind::Alertmanager) {
            MAX_BATCH
        } else {
            usize::MAX
        }) {
            if let Some(p) = payload(r, chunk, external_url) {
                state.enqueue(&r.name, kind, &p, now)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Outbox kind of a PagerDuty change event.
const CHANGE_KIND: &str = "pagerduty-change";

/// Puts a PagerDuty change event for a promote, abort or rollback decision
/// into the outbox of every PagerDuty receiver that sends them.
pub fn enqueue_change(
    state: &State,
    cfg: &NotifyConfig,
    d: &crate::state::DecisionRow,
    external_url: &str,
    now: i64,
) -> Result<usize, StateError> {
    if !matches!(
        d.decision.as_str(),
        "promote" | "promote-full" | "abort" | "rollback"
    ) {
        return Ok(0);
    }
    let mut n = 0;
    for r in &cfg.receivers {
        if let ReceiverKind::PagerDuty(pd) = &r.kind {
            if pd.change_events {
                let p = pagerduty::change_payload(d, external_url).to_string();
                state.enqueue(&r.name, CHANGE_KIND, &p, now)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn kind_name(k: &ReceiverKind) -> &'static str {
    match k {
        ReceiverKind::PagerDuty(_) => "pagerduty",
        ReceiverKind::Alertmanager => "alertmanager",
        ReceiverKind::Webhook { .. } => "webhook",
        ReceiverKind::Slack => "slack",
        ReceiverKind::Email { .. } => "email",
    }
}

/// Wait before attempt `attempts + 1`: 1s doubling, capped, with up to
/// 20% jitter so receivers coming back are not hit all at once.
pub fn backoff(attempts: i64, max: Duration) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << attempts.clamp(0, 20) as u32);
    let d = base.min(max);
    let jitter = rand::random::<f64>() * 0.2;
    d.mul_f64(1.0 + jitter)
        .min(max.max(Duration::from_millis(1)))
}

/// Sends outbox entries until cancelled.
pub struct Deliverer {
    state: Arc<State>,
    cfg: Arc<parking_lot::RwLock<NotifyConfig>>,
    http: reqwest::Client,
    limiters: parking_lot::Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Deliverer {
    /// A deliverer over the outbox in `state`.
    pub fn new(
        state: Arc<State>,
        cfg: Arc<parking_lot::RwLock<NotifyConfig>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Deliverer {
        Deliverer {
            state,
            cfg,
            http: reqwest::Client::builder()
                .user_agent(concat!("augur/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            limiters: parking_lot::Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn limiter(&self, r: &Receiver) -> Option<Arc<DefaultDirectRateLimiter>> {
        let per_min = NonZeroU32::new(r.rate_limit_per_minute)?;
        let mut l = self.limiters.lock();
        Some(
            l.entry(r.name.clone())
                .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_minute(per_min))))
                .clone(),
        )
    }

    /// Delivers due entries every half second until `token` is cancelled;
    /// then one last pass, so shutdown drains what it can.
    pub async fn run(self, token: CancellationToken) {
        loop {
            let stop = tokio::select! {
                _ = token.cancelled() => true,
                _ = tokio::time::sleep(Duration::from_millis(500)) => false,
            };
            self.pass().await;
            if stop {
                return;
            }
        }
    }

    /// One delivery pass over due entries.
    pub async fn pass(&self) {
        let now = crate::clock::now_ms();
        let st = self.state.clone();
        let due = match tokio::task::spawn_blocking(move || st.due(now, 128)).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                warn!(error = %e, "cannot read the outbox");
                return;
            }
            Err(_) => return,
        };
        for e in due {
            self.deliver(e).await;
        }
    }

    async fn deliver(&self, e: OutboxEntry) {
        let (receiver, cfg) = {
            let c = self.cfg.read();
            (
                c.receivers.iter().find(|r| r.name == e.receiver).cloned(),
                (c.max_attempts, c.max_backoff),
            )
        };
        let st = self.state.clone();
        let Some(r) = receiver else {
            let _ = tokio::task::spawn_blocking(move || {
                st.mark_failed(e.id, "receiver is no longer configured", None)
            })
            .await;
            self.metrics.notifications_dead.inc();
            return;
        };
        if let Some(l) = self.limiter(&r) {
            if l.check().is_err() {
                // Over the rate limit: stays pending for a later pass.
                return;
            }
        }
        let result = match &r.kind {
            ReceiverKind::Alertmanager => alertmanager::send(&self.http, &r, &e.payload).await,
            ReceiverKind::Webhook { hmac_secret_file } => {
                webhook::send(&self.http, &r, hmac_secret_file.as_deref(), &e.payload).await
            }
            ReceiverKind::Slack => slack::send(&self.http, &r, &e.payload).await,
            ReceiverKind::Email { .. } => email::send(&r, &e.payload).await,
            ReceiverKind::PagerDuty(pd) => {
                pagerduty::send(&self.http, &r, pd, &e.payload, e.kind == CHANGE_KIND).await
            }
        };
        let now = crate::clock::now_ms();
        let labels = crate::metrics::ReceiverLabel {
            receiver: r.name.clone(),
        };
        match result {
            Ok(()) => {
                self.metrics.notifications_sent.get_or_create(&labels).inc();
                let _ = tokio::task::spawn_blocking(move || st.mark_sent(e.id, now)).await;
            }
            Err(err) => {
                self.metrics
                    .notifications_failed
                    .get_or_create(&labels)
                    .inc();
                let (max_attempts, max_backoff) = cfg;
                let msg = err.to_string();
                let final_answer = matches!(err, SendError::Rejected(_));
                let retry = (!final_answer && e.attempts + 1 < i64::from(max_attempts))
                    .then(|| now + backoff(e.attempts, max_backoff).as_millis() as i64);
                if retry.is_none() {
                    self.metrics.notifications_dead.inc();
                    warn!(receiver = %r.name, id = e.id, error = %msg, "notification dead-lettered");
                } else {
                    info!(receiver = %r.name, id = e.id, attempt = e.attempts + 1, error = %msg, "notification failed, will retry");
                }
                let _ =
                    tokio::task::spawn_blocking(move || st.mark_failed(e.id, &msg, retry)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_alertmanager() {
        // model.LabelSet{"alertname":"A"}.Fingerprint() in prometheus/common.
        let l: BTreeMap<String, String> = [("alertname".to_string(), "A".to_string())]
            .into_iter()
            .collect();
        assert_eq!(fingerprint(&l).len(), 16);
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        assert_ne!(fingerprint(&l), fingerprint(&BTreeMap::new()));
    }

    #[test]
    fn pagerduty_gets_alerts_but_not_flaggers_one_shot_events() {
        let pd = Receiver {
            name: "pd".into(),
            url: crate::config::PAGERDUTY_URL.into(),
            timeout: Duration::from_secs(1),
            rate_limit_per_minute: 0,
            kind: ReceiverKind::PagerDuty(Box::new(crate::config::PagerDuty {
                routing_key_file: "k".into(),
                severity: "{{ .CommonLabels.severity }}".into(),
                class: String::new(),
                component: String::new(),
                group: String::new(),
                source: None,
                client: "augur".into(),
                client_url: "{{ .ExternalURL }}/alerts".into(),
                description: None,
                links: Vec::new(),
                send_resolved: true,
                change_events: true,
                change_routing_key_file: "k".into(),
                change_url: "http://x/v2/change/enqueue".into(),
            })),
        };
        let md: BTreeMap<String, String> = BTreeMap::new();
        let ev = flagger_event(
            &FlaggerEvent {
                hook: "event",
                namespace: "shop",
                name: "web",
                phase: "Progressing",
                metadata: &md,
            },
            &BTreeMap::new(),
            "http://augur",
            0,
        );
        assert_eq!(
            payload(&pd, std::slice::from_ref(&ev), "http://augur"),
            None
        );
        // A rule's alert with the same labels is paged.
        let mut alert = ev;
        alert.one_shot = false;
        alert.labels.insert("alertname".into(), "Backlog".into());
        let p: Value =
            serde_json::from_str(&payload(&pd, &[alert], "http://augur").unwrap()).unwrap();
        assert_eq!(p["event_action"], "trigger");
        assert_eq!(
            p["payload"]["severity"], "info",
            "templated from the labels"
        );
        assert_eq!(p["client_url"], "http://augur/alerts");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let max = Duration::from_secs(60);
        let b0 = backoff(0, max);
        assert!(b0 >= Duration::from_secs(1) && b0 <= Duration::from_millis(1200));
        let b3 = backoff(3, max);
        assert!(b3 >= Duration::from_secs(8) && b3 <= Duration::from_millis(9600));
        assert!(backoff(30, max) <= max);
    }
}
