//! Email over SMTP with `lettre`: plain, STARTTLS or implicit TLS, optional
//! login with the password read from a file; subject and body are
//! templates rendered when the message is queued.

use std::collections::BTreeMap;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::SendError;
use crate::config::{Receiver, ReceiverKind};
use crate::gotemplate::TValue;
use crate::timefmt::rfc3339_ms;

fn map(m: &BTreeMap<String, String>) -> TValue {
    TValue::Map(
        m.iter()
            .map(|(k, v)| (k.clone(), TValue::Str(v.clone())))
            .collect(),
    )
}

/// What subject and body templates see, like Alertmanager's template data.
pub(super) fn template_data(n: &super::Notification<'_>) -> TValue {
    let items = n
        .alerts
        .iter()
        .map(|a| {
            TValue::Map(
                [
                    (
                        "Status".to_string(),
                        TValue::Str(if a.resolved { "resolved" } else { "firing" }.into()),
                    ),
                    ("Labels".to_string(), map(&a.labels)),
                    ("Annotations".to_string(), map(&a.annotations)),
                    ("StartsAt".to_string(), TValue::Str(rfc3339_ms(a.starts_at))),
                    ("EndsAt".to_string(), TValue::Str(rfc3339_ms(a.ends_at))),
                    (
                        "GeneratorURL".to_string(),
                        TValue::Str(a.generator_url.clone()),
                    ),
                ]
                .into_iter()
                .collect(),
            )
        })
        .collect();
    TValue::Map(
        [
            ("Receiver".to_string(), TValue::Str(n.receiver.into())),
            ("Status".to_string(), TValue::Str(n.status.into())),
            ("Alerts".to_string(), TValue::List(items)),
            ("CommonLabels".to_string(), map(&n.common_labels)),
            ("GroupLabels".to_string(), map(&n.group_labels)),
            ("CommonAnnotations".to_string(), map(&n.common_annotations)),
            (
                "ExternalURL".to_string(),
                TValue::Str(n.external_url.into()),
            ),
        ]
        .into_iter()
        .collect(),
    )
}

pub(super) async fn send(r: &Receiver, payload: &str) -> Result<(), SendError> {
    let ReceiverKind::Email {
        tls,
        from,
        to,
        username,
        password_file,
        ..
    } = &r.kind
    else {
        return Err(SendError::Invalid("not an email receiver".into()));
    };
    let msg: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| SendError::Invalid(e.to_string()))?;
    let invalid = |e: String| SendError::Invalid(e);
    let mut b = Message::builder()
        .from(
            from.parse::<Mailbox>()
                .map_err(|e| invalid(format!("from {from:?}: {e}")))?,
        )
        .subject(msg["subject"].as_str().unwrap_or(""));
    for t in to {
        b = b.to(t
            .parse::<Mailbox>()
            .map_err(|e| invalid(format!("to {t:?}: {e}")))?);
    }
    let email = b
        .body(msg["body"].as_str().unwrap_or("").to_string())
        .map_err(|e| invalid(e.to_string()))?;
    let (host, port) = r
        .url
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| invalid(format!("smtp {:?} is not host:port", r.url)))?;
    let mut t = match tls.as_str() {
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
            .map_err(|e| invalid(e.to_string()))?,
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
            .map_err(|e| invalid(e.to_string()))?,
    }
    .port(port)
    .timeout(Some(r.timeout));
    if let Some(u) = username {
        let pw = match password_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| invalid(format!("cannot read {}: {e}", f.display())))?
                .trim_end()
                .to_string(),
            None => String::new(),
        };
        t = t.credentials(Credentials::new(u.clone(), pw));
    }
    t.build()
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| SendError::Transport(e.to_string()))
}
