//! `[ui]`: links from the web pages to other tools (Grafana dashboards or
//! Explore, an incident tool), as URL templates.

use toml::Spanned;

use super::raw::{RawDelivery, RawUi};
use super::Ctx;

/// The placeholders a link template may use; each is URL-escaped when
/// filled in.
pub const LINK_PLACEHOLDERS: &[&str] = &[
    "namespace",
    "name",
    "revision",
    "run",
    "template",
    "metric",
    "from_ms",
    "to_ms",
    "query_baseline",
    "query_canary",
];

/// `[ui]`
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UiConfig {
    /// Links shown on run and rollout pages: `grafana_url` first (named
    /// "Grafana"), then `links` in order.
    pub links: Vec<UiLink>,
}

/// One link template.
#[derive(Debug, Clone, PartialEq)]
pub struct UiLink {
    /// The text shown.
    pub name: String,
    /// `http(s)` URL with `{{placeholder}}`s.
    pub url: String,
}

impl UiLink {
    /// The URL with `values` (placeholder, value) filled in, URL-escaped;
    /// placeholders without a value become empty.
    pub fn fill(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(self.url.len());
        let mut rest = self.url.as_str();
        while let Some(i) = rest.find("{{") {
            let Some(j) = rest[i..].find("}}") else { break };
            out.push_str(&rest[..i]);
            let name = rest[i + 2..i + j].trim();
            let v = values
                .iter()
                .find(|(k, _)| *k == name)
                .map_or("", |(_, v)| *v);
            out.extend(form_urlencoded::byte_serialize(v.as_bytes()));
            rest = &rest[i + j + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// Checks one template: an `http`/`https` URL whose `{{...}}` are all known.
fn check(cx: &mut Ctx<'_>, url: &Spanned<String>, key: &str) -> bool {
    let text = url.get_ref();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            cx.error(url.span(), format!("{key}: \"{{{{\" without \"}}}}\""));
            return false;
        };
        let name = after[..j].trim();
        if !LINK_PLACEHOLDERS.contains(&name) {
            cx.error(
                url.span(),
                format!(
                    "{key}: unknown placeholder {{{{{name}}}}} (expected one of {})",
                    LINK_PLACEHOLDERS.join(", ")
                ),
            );
            return false;
        }
        rest = &after[j + 2..];
    }
    let probe = UiLink {
        name: String::new(),
        url: text.clone(),
    }
    .fill(&[]);
    match reqwest::Url::parse(&probe) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => true,
        Ok(u) => {
            cx.error(
                url.span(),
                format!(
                    "{key}: expected an http or https URL, found scheme {:?}",
                    u.scheme()
                ),
            );
            false
        }
        Err(e) => {
            cx.error(url.span(), format!("{key}: {text:?} is not a URL ({e})"));
            false
        }
    }
}

pub(super) fn compile_ui(cx: &mut Ctx<'_>, raw: &Option<RawUi>) -> UiConfig {
    let Some(r) = raw else {
        return UiConfig::default();
    };
    let mut links = Vec::new();
    if let Some(g) = &r.grafana_url {
        if check(cx, g, "ui.grafana_url") {
            links.push(UiLink {
                name: "Grafana".into(),
                url: g.get_ref().clone(),
            });
        }
    }
    for (i, l) in r.links.iter().enumerate() {
        let l = l.get_ref();
        let key = format!("ui.links[{i}]");
        if l.name.get_ref().trim().is_empty() {
            cx.error(l.name.span(), format!("{key}.name: must not be empty"));
            continue;
        }
        if check(cx, &l.url, &format!("{key}.url")) {
            links.push(UiLink {
                name: l.name.get_ref().clone(),
                url: l.url.get_ref().clone(),
            });
        }
    }
    UiConfig { links }
}

/// `[delivery]`: what the delivery metrics and the DORA report count.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// After a promotion, how long a rollback or a matching alert counts
    /// as an escaped failure.
    pub escape_window: std::time::Duration,
    /// The pod-template annotation holding the commit time (RFC 3339 or
    /// Unix seconds), for lead time.
    pub commit_time_annotation: String,
    /// Labels of a firing alert that may name the rollout (besides
    /// `namespace`, which must match).
    pub alert_labels: Vec<String>,
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            escape_window: std::time::Duration::from_secs(3600),
            commit_time_annotation: "augur.dev/commit-time".into(),
            alert_labels: ["rollout", "canary", "deployment", "app", "service"]
                .map(String::from)
                .to_vec(),
        }
    }
}

pub(super) fn compile_delivery(cx: &mut Ctx<'_>, raw: &Option<RawDelivery>) -> DeliveryConfig {
    let mut out = DeliveryConfig::default();
    let Some(r) = raw else { return out };
    if let Some(w) = &r.escape_window {
        match crate::duration::parse(w.get_ref()) {
            Ok(d) if !d.is_zero() => out.escape_window = d,
            Ok(_) => cx.error(w.span(), "delivery.escape_window: must be greater than 0"),
            Err(e) => cx.error(w.span(), format!("delivery.escape_window: {e}")),
        }
    }
    if let Some(a) = &r.commit_time_annotation {
        if a.get_ref().trim().is_empty() {
            cx.error(
                a.span(),
                "delivery.commit_time_annotation: must not be empty",
            );
        } else {
            out.commit_time_annotation = a.get_ref().clone();
        }
    }
    if let Some(l) = &r.alert_labels {
        if let Some(bad) = l.get_ref().iter().find(|n| !super::valid_label_name(n)) {
            cx.error(
                l.span(),
                format!("delivery.alert_labels: {bad:?} is not a label name"),
            );
        } else {
            out.alert_labels = l.get_ref().clone();
        }
    }
    out
}
