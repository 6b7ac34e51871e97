//! `[notify]`: notification receivers and delivery settings.

use super::*;

/// How a receiver is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// Alertmanager API v2 at this base URL.
    Alertmanager,
    /// Alertmanager-webhook-shaped JSON, optionally HMAC-signed.
    Webhook {
        /// file holding the HMAC-SHA256 key
        hmac_secret_file: Option<PathBuf>,
    },
    /// A Slack-compatible incoming webhook.
    Slack,
    /// Email over SMTP.
    Email {
        /// `none`, `starttls` or `tls`
        tls: String,
        /// sender
        from: String,
        /// recipients
        to: Vec<String>,
        /// SMTP user
        username: Option<String>,
        /// file holding the SMTP password
        password_file: Option<PathBuf>,
        /// subject template
        subject: String,
        /// body template
        body: String,
    },
    /// PagerDuty Events API v2 (alerts) and change events.
    PagerDuty(Box<PagerDuty>),
}

/// A `[[notify.pagerduty]]` receiver: Alertmanager's `pagerduty_configs`
/// field for field; text fields are notification templates.
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDuty {
    /// file holding the routing (integration) key, read at each send
    pub routing_key_file: PathBuf,
    /// `payload.severity` (default `error`, as Alertmanager's)
    pub severity: String,
    /// `payload.class`
    pub class: String,
    /// `payload.component`
    pub component: String,
    /// `payload.group`
    pub group: String,
    /// `payload.source` (default: `client`)
    pub source: Option<String>,
    /// `client`
    pub client: String,
    /// `client_url`
    pub client_url: String,
    /// `payload.summary`; None: Alertmanager's default subject
    pub description: Option<String>,
    /// `links` as (href, text) templates
    pub links: Vec<(String, String)>,
    /// send `resolve` events (Alertmanager's default: true)
    pub send_resolved: bool,
    /// send a change event for every promote, abort and rollback
    pub change_events: bool,
    /// routing key of change events (default: `routing_key_file`)
    pub change_routing_key_file: PathBuf,
    /// where change events go
    pub change_url: String,
}

/// PagerDuty's Events API v2 endpoint (Alertmanager's default).
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A notification receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    /// unique name (outbox entries refer to it)
    pub name: String,
    /// URL, or `host:port` for SMTP
    pub url: String,
    /// per-attempt timeout
    pub timeout: Duration,
    /// most deliveries per minute (0 = unlimited)
    pub rate_limit_per_minute: u32,
    /// the protocol
    pub kind: ReceiverKind,
}

/// `[notify]`
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// attempts before a notification is dead-lettered
    pub max_attempts: u32,
    /// longest wait between attempts
    pub max_backoff: Duration,
    /// all receivers
    pub receivers: Vec<Receiver>,
}

pub(super) fn compile_notify(cx: &mut Ctx<'_>, n: raw::RawNotify) -> NotifyConfig {
    let mut receivers: Vec<Receiver> = Vec::new();
    let mut names = HashSet::new();
    let mut add = |cx: &mut Ctx<'_>, r: Receiver, span: Range<usize>| {
        if !names.insert(r.name.clone()) {
            cx.error(
                span,
                format!("notify: receiver name {:?} is used twice", r.name),
            );
        }
        receivers.push(r);
    };
    for (kind, list) in [
        ("alertmanager", &n.alertmanager),
        ("webhook", &n.webhook),
        ("slack", &n.slack),
    ] {
        for (i, r) in list.iter().enumerate() {
            let v = r.get_ref();
            if reqwest::Url::parse(v.url.get_ref())
                .map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
            {
                cx.error(
                    v.url.span(),
                    format!(
                        "notify.{kind}: url {:?} is not an http(s) URL",
                        v.url.get_ref()
                    ),
                );
            }
            let name = v.name.clone().unwrap_or_else(|| format!("{kind}-{i}"));
            let timeout = cx.duration(
                &v.timeout,
                &format!("notify.{kind}.timeout"),
                Duration::from_secs(10),
            );
            if kind != "webhook" && v.hmac_secret_file.is_some() {
                // Silently ignoring it would let people believe the
                // requests are signed.
                cx.error(
                    r.span(),
                    format!("notify.{kind}: hmac_secret_file applies to [[notify.webhook]] receivers only"),
                );
            }
            let rk = match kind {
                "alertmanager" => ReceiverKind::Alertmanager,
                "webhook" => ReceiverKind::Webhook {
                    hmac_secret_file: v.hmac_secret_file.as_ref().map(PathBuf::from),
                },
                _ => ReceiverKind::Slack,
            };
            add(
                cx,
                Receiver {
                    name,
                    url: v.url.get_ref().trim_end_matches('/').to_string(),
                    timeout,
                    rate_limit_per_minute: v.rate_limit_per_minute.unwrap_or(0),
                    kind: rk,
                },
                r.span(),
            );
        }
    }
    for (i, e) in n.email.iter().enumerate() {
        let v = e.get_ref();
        let tls = v
            .tls
            .as_ref()
            .map_or("starttls".to_string(), |t| t.get_ref().clone());
        if !matches!(tls.as_str(), "none" | "starttls" | "tls") {
            let span = v.tls.as_ref().map_or(e.span(), |t| t.span());
            cx.error(
                span,
                format!("notify.email.tls: {tls:?} (expected none, starttls or tls)"),
            );
        }
        if v.to.is_empty() {
            cx.error(e.span(), "notify.email: `to` needs at least one address");
        }
        let subject = v.subject.as_ref().map_or(
            "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}".to_string(),
            |s| s.get_ref().clone(),
        );
        let body = v.body.as_ref().map_or(
            "{{ range .Alerts }}{{ .Status }}: {{ .Labels }}\n{{ .Annotations }}\n{{ end }}"
                .to_string(),
            |s| s.get_ref().clone(),
        );
        for (what, t) in [("subject", &v.subject), ("body", &v.body)] {
            if let Some(t) = t {
                if let Err(err) = crate::gotemplate::check_notification(t.get_ref()) {
                    cx.error(t.span(), format!("notify.email.{what}: {err}"));
                }
            }
        }
        let name = v.name.clone().unwrap_or_else(|| format!("email-{i}"));
        let timeout = cx.duration(&v.timeout, "notify.email.timeout", Duration::from_secs(10));
        add(
            cx,
            Receiver {
                name,
                url: v.smtp.get_ref().clone(),
                timeout,
                rate_limit_per_minute: v.rate_limit_per_minute.unwrap_or(0),
                kind: ReceiverKind::Email {
                    tls,
                    from: v.from.get_ref().clone(),
                    to: v.to.iter().map(|t| t.get_ref().clone()).collect(),
                    username: v.username.clone(),
                    password_file: v.password_file.as_ref().map(PathBuf::from),
                    subject,
                    body,
                },
            },
            e.span(),
        );
    }
    for (i, p) in n.pagerduty.iter().enumerate() {
        let v = p.get_ref();
        let url = v
            .url
            .as_ref()
            .map_or(PAGERDUTY_URL.to_string(), |u| u.get_ref().clone());
        let http =
            |u: &str| reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !http(&url) {
            let span = v.url.as_ref().map_or(p.span(), |u| u.span());
            cx.error(
                span,
                format!("notify.pagerduty.url: {url:?} is not an http(s) URL"),
            );
        }
        // Change events live beside the enqueue endpoint.
        let change_url = v.change_url.as_ref().map_or_else(
            || match url.trim_end_matches('/').strip_suffix("/v2/enqueue") {
                Some(base) => format!("{base}/v2/change/enqueue"),
                None => format!("{}/v2/change/enqueue", url.trim_end_matches('/')),
            },
            |u| u.get_ref().clone(),
        );
        if let Some(u) = &v.change_url {
            if !http(u.get_ref()) {
                cx.error(
                    u.span(),
                    format!(
                        "notify.pagerduty.change_url: {:?} is not an http(s) URL",
                        u.get_ref()
                    ),
                );
            }
        }
        for f in [
            Some(&v.routing_key_file),
            v.change_routing_key_file.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if f.get_ref().trim().is_empty() {
                cx.error(
                    f.span(),
                    "notify.pagerduty: a routing key file path must not be empty",
                );
            }
        }
        let mut template = |t: &Option<Spanned<String>>, key: &str| -> Option<String> {
            let t = t.as_ref()?;
            if let Err(err) = crate::gotemplate::check_notification(t.get_ref()) {
                cx.error(t.span(), format!("notify.pagerduty.{key}: {err}"));
            }
            Some(t.get_ref().clone())
        };
        let severity = template(&v.severity, "severity").unwrap_or_else(|| "error".into());
        let class = template(&v.class, "class").unwrap_or_default();
        let component = template(&v.component, "component").unwrap_or_default();
        let group = template(&v.group, "group").unwrap_or_default();
        let source = template(&v.source, "source");
        let client = template(&v.client, "client").unwrap_or_else(|| "augur".into());
        let client_url = template(&v.client_url, "client_url")
            .unwrap_or_else(|| "{{ .ExternalURL }}/alerts".into());
        let description = template(&v.description, "description");
        let mut links = Vec::new();
        for l in &v.links {
            let l = l.get_ref();
            if let Err(err) = crate::gotemplate::check_notification(l.href.get_ref()) {
                cx.error(l.href.span(), format!("notify.pagerduty.links.href: {err}"));
            }
            links.push((l.href.get_ref().clone(), l.text.clone().unwrap_or_default()));
        }
        let name = v.name.clone().unwrap_or_else(|| format!("pagerduty-{i}"));
        let timeout = cx.duration(
            &v.timeout,
            "notify.pagerduty.timeout",
            Duration::from_secs(10),
        );
        let key = PathBuf::from(v.routing_key_file.get_ref());
        add(
            cx,
            Receiver {
                name,
                url,
                timeout,
                rate_limit_per_minute: v.rate_limit_per_minute.unwrap_or(0),
                kind: ReceiverKind::PagerDuty(Box::new(PagerDuty {
                    change_routing_key_file: v
                        .change_routing_key_file
                        .as_ref()
                        .map_or(key.clone(), |f| PathBuf::from(f.get_ref())),
                    routing_key_file: key,
                    severity,
                    class,
                    component,
                    group,
                    source,
                    client,
                    client_url,
                    description,
                    links,
                    send_resolved: v.send_resolved.unwrap_or(true),
                    change_events: v.change_events.unwrap_or(true),
                    change_url,
                })),
            },
            p.span(),
        );
    }
    NotifyConfig {
        max_attempts: n.max_attempts.unwrap_or(10).max(1),
        max_backoff: cx.duration(
            &n.max_backoff,
            "notify.max_backoff",
            Duration::from_secs(300),
        ),
        receivers,
    }
}
