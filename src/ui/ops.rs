//! The Prometheus-style pages: `/alerts` (with the outbox: did the page go
//! out?), `/rules`, `/targets`, and `/decisions`. Laid out like Prometheus
//! 3's: one card per group or pool, state colours with words and counts,
//! error rows under the failing item, filters kept in the URL.

use maud::{html, Markup};
use serde_json::Value;

use super::layout::{ago, badge, seconds, slug, time};
use super::Ui;
use crate::rules::group::{Alert, AlertState};
use crate::rules::manager::{GroupView, RuleView};

/// A filter's values from the query string: repeated or comma-separated.
pub fn values(q: &[(String, String)], key: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// One filter value (the first), if given.
pub fn value(q: &[(String, String)], key: &str) -> Option<String> {
    values(q, key).into_iter().next()
}

fn matches(search: &str, texts: &[&str]) -> bool {
    let s = search.to_lowercase();
    s.is_empty() || texts.iter().any(|t| t.to_lowercase().contains(&s))
}

fn graph_href(ui: &Ui, expr: &str, tab: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("g0.expr", expr)
        .append_pair("g0.tab", tab)
        .finish();
    ui.link(&format!("/graph?{q}"))
}

fn label_tags<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Markup {
    html! { @for (k, v) in it { span.tag { (k) "=" (v) } " " } }
}

/// A filter's checkboxes: each value with its badge and count, checked
/// when the URL selects it.
fn checkboxes(name: &str, counts: &[(&str, usize)], selected: &[String]) -> Markup {
    html! {
        @for (v, n) in counts {
            label { input type="checkbox" name=(name) value=(v) checked[selected.iter().any(|x| x == v)]; " " (badge(v)) " (" (n) ")" }
        }
    }
}

fn rule_state(r: &RuleView) -> &'static str {
    if r.alerts.iter().any(|a| a.state == AlertState::Firing) {
        "firing"
    } else if r.alerts.iter().any(|a| a.state == AlertState::Pending) {
        "pending"
    } else {
        "inactive"
    }
}

fn alert_texts(a: &Alert) -> String {
    a.labels
        .iter()
        .map(|l| format!("{}={}", l.name, l.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `/alerts[?state=firing,pending&search=]`.
pub fn alerts(ui: &Ui, st: &crate::api::ApiState, q: &[(String, String)]) -> Markup {
    let states = values(q, "state");
    let search = value(q, "search").unwrap_or_default();
    let groups = st.rules.views();
    let now = crate::clock::now_ms();
    let mut counts = [("inactive", 0usize), ("pending", 0), ("firing", 0)];
    for r in groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter(|r| r.is_alerting())
    {
        let s = rule_state(r);
        if let Some(c) = counts.iter_mut().find(|(k, _)| *k == s) {
            c.1 += 1;
        }
    }
    let shown = |r: &RuleView| {
        r.is_alerting()
            && (states.is_empty() || states.iter().any(|s| s == rule_state(r)))
            && (matches(&search, &[r.rule.name()])
                || r.alerts
                    .iter()
                    .any(|a| matches(&search, &[&alert_texts(a)])))
    };
    html! {
        h1 { "Alerts" }
        form.filters method="get" action=(ui.link("/alerts")) {
            (checkboxes("state", &counts, &states))
            input type="search" name="search" value=(search) placeholder="alert name or label";
            button type="submit" { "filter" }
        }
        (notifications(ui, st, now))
        @let any = groups.iter().any(|g| g.rules.iter().any(shown));
        @if !any { p.muted { @if groups.iter().any(|g| g.rules.iter().any(|r| r.is_alerting())) { "No alerting rule matches the filter." } @else { "No alerting rules are loaded (rule_files)." } } }
        @for g in groups.iter().filter(|g| g.rules.iter().any(shown)) {
            section.group {
                h2 { (g.name) }
                p.muted { (g.file) }
                @for r in g.rules.iter().filter(|r| shown(r)) {
                    @let state = rule_state(r);
                    @let firing = r.alerts.iter().filter(|a| a.state == AlertState::Firing).count();
                    @let pending = r.alerts.iter().filter(|a| a.state == AlertState::Pending).count();
                    details.rule class=(state) id=(format!("alert-{}-{}-{}", slug(&g.file), slug(&g.name), slug(r.rule.name()))) open[state != "inactive"] {
                        summary {
                            (badge(state)) " " b { (r.rule.name()) }
                            @if firing > 0 { " " span.tag.bad { "firing (" (firing) ")" } }
                            @if pending > 0 { " " span.tag.warn { "pending (" (pending) ")" } }
                        }
                        dl.def {
                            dt { "expr" } dd { a href=(graph_href(ui, &r.rule.expr, "0")) { code { (r.rule.expr) } } }
                            @if !r.rule.for_.is_zero() { dt { "for" } dd { (crate::duration::format(r.rule.for_)) } }
                            @if !r.rule.keep_firing_for.is_zero() { dt { "keep_firing_for" } dd { (crate::duration::format(r.rule.keep_firing_for)) } }
                            @if !r.rule.labels.is_empty() { dt { "labels" } dd { (label_tags(r.rule.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))) } }
                            @for (k, v) in &r.rule.annotations { dt { (k) } dd { (v) } }
                        }
                        @if let Some(e) = &r.last_error { p.error { "Rule failed to evaluate: " (e) } }
                        @if !r.alerts.is_empty() {
                            table {
                                thead { tr { th { "labels" } th { "state" } th { "active since" } th { "value" } } }
                                tbody {
                                    @for a in &r.alerts {
                                        tr {
                                            td { (label_tags(a.labels.iter().map(|l| (&*l.name, &*l.value)))) }
                                            td { (badge(a.state.as_str())) }
                                            td { (ago(a.active_at, now)) }
                                            td { (crate::fmtfloat::prom_api(a.value)) }
                                        }
                                        @if let Some(s) = a.annotations.get("summary").or(a.annotations.get("description")) {
                                            tr { td.muted colspan="4" { (s) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The outbox card: counts per status and the newest failures.
fn notifications(ui: &Ui, st: &crate::api::ApiState, now: i64) -> Markup {
    let counts = st.state.outbox_counts().unwrap_or_default();
    let count = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    let failures: Vec<crate::state::OutboxEntry> = st
        .state
        .outbox(None, 200)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.status != "sent" && e.last_error.is_some())
        .take(10)
        .collect();
    html! {
        section.group id="notifications" {
            h2 { "Notifications" }
            p {
                span.stat { "pending " b { (count("pending")) } } " · "
                span.stat { "sent " b { (count("sent")) } } " · "
                span.stat { "dead " b class=[(count("dead") > 0).then_some("bad")] { (count("dead")) } }
                " · " a href=(ui.link("/api/v1/notifications")) { "the outbox as JSON" }
            }
            @if failures.is_empty() { p.muted { "No delivery is failing." } }
            @else {
                table {
                    thead { tr { th { "receiver" } th { "kind" } th { "status" } th { "attempts" } th { "queued" } th { "last error" } } }
                    tbody {
                        @for e in &failures {
                            tr {
                                td { (e.receiver) } td { (e.kind) } td { (badge(&e.status)) } td { (e.attempts) }
                                td { (ago(e.created_at, now)) }
                                td.bad { (crate::redact::urls_in(e.last_error.as_deref().unwrap_or(""))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/rules[?health=ok|unknown|err&type=alerting|recording&search=]`.
pub fn rules(ui: &Ui, st: &crate::api::ApiState, q: &[(String, String)]) -> Markup {
    let health = values(q, "health");
    let kind = value(q, "type");
    let search = value(q, "search").unwrap_or_default();
    let groups = st.rules.views();
    let now = crate::clock::now_ms();
    let mut counts = [("ok", 0usize), ("unknown", 0), ("err", 0)];
    for r in groups.iter().flat_map(|g| g.rules.iter()) {
        if let Some(c) = counts.iter_mut().find(|(k, _)| *k == r.health.as_str()) {
            c.1 += 1;
        }
    }
    let shown = |r: &RuleView| {
        (health.is_empty() || health.iter().any(|h| h == r.health.as_str()))
            && match kind.as_deref() {
                Some("alerting") => r.is_alerting(),
                Some("recording") => !r.is_alerting(),
                _ => true,
            }
            && matches(&search, &[r.rule.name(), &r.rule.expr])
    };
    html! {
        h1 { "Rules" }
        form.filters method="get" action=(ui.link("/rules")) {
            (checkboxes("health", &counts, &health))
            label { "type " select name="type" {
                option value="" { "any" }
                @for t in ["alerting", "recording"] { option value=(t) selected[kind.as_deref() == Some(t)] { (t) } }
            } }
            input type="search" name="search" value=(search) placeholder="rule name or expression";
            button type="submit" { "filter" }
        }
        @if groups.is_empty() { p.muted { "No rule files are loaded (rule_files)." } }
        @for g in groups.iter().filter(|g| g.rules.iter().any(shown)) {
            (rule_group(ui, g, now, &shown))
        }
    }
}

fn rule_group(ui: &Ui, g: &GroupView, now: i64, shown: &dyn Fn(&RuleView) -> bool) -> Markup {
    html! {
        section.group {
            h2 { (g.name) }
            p.muted {
                (g.file) " · every " (crate::duration::format(g.interval))
                " · last run " @match g.last_evaluation { Some(t) => (ago(t, now)), None => "never" }
                " · took " (seconds_ms(g.last_eval_seconds))
                @if g.limit > 0 { " · limit " (g.limit) }
            }
            table {
                thead { tr { th { "rule" } th { "expression" } th { "health" } th { "last evaluation" } th { "took" } } }
                tbody {
                    @for r in g.rules.iter().filter(|r| shown(r)) {
                        tr {
                            td { span.tag { (if r.is_alerting() { "alert" } else { "record" }) } " " b { (r.rule.name()) } }
                            td { a href=(graph_href(ui, &r.rule.expr, "1")) { code { (r.rule.expr) } } }
                            td { (badge(r.health.as_str())) }
                            td { @match r.last_evaluation { Some(t) => (ago(t, now)), None => "never" } }
                            td { (seconds_ms(r.eval_seconds)) }
                        }
                        @if let Some(e) = &r.last_error {
                            tr.errrow { td colspan="5" { "! Rule failed to evaluate: " (e) } }
                        }
                    }
                }
            }
        }
    }
}

fn seconds_ms(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        seconds(s)
    }
}

/// `/targets[?health=up|down|unknown&pool=&search=]`.
pub fn targets(ui: &Ui, st: &crate::api::ApiState, q: &[(String, String)]) -> Markup {
    let health = values(q, "health");
    let pool = value(q, "pool");
    let search = value(q, "search").unwrap_or_default();
    let targets = st.scrape.targets();
    let now = crate::clock::now_ms();
    let mut pools: std::collections::BTreeMap<&str, Vec<_>> = std::collections::BTreeMap::new();
    for t in &targets {
        pools.entry(t.job.as_str()).or_default().push(t);
    }
    let mut counts = [("up", 0usize), ("down", 0), ("unknown", 0)];
    for t in &targets {
        let h = t.status().health.as_str();
        if let Some(c) = counts.iter_mut().find(|(k, _)| *k == h) {
            c.1 += 1;
        }
    }
    html! {
        h1 { "Targets" }
        form.filters method="get" action=(ui.link("/targets")) {
            (checkboxes("health", &counts, &health))
            label { "pool " select name="pool" {
                option value="" { "any" }
                @for p in pools.keys() { option value=(p) selected[pool.as_deref() == Some(*p)] { (p) } }
            } }
            input type="search" name="search" value=(search) placeholder="endpoint or label";
            button type="submit" { "filter" }
        }
        @if targets.is_empty() { p.muted { "No scrape targets (scrape_configs)." } }
        @for (job, ts) in &pools {
            @if pool.as_deref().is_none_or(|p| p == *job) {
                @let up = ts.iter().filter(|t| t.status().health == crate::scrape::Health::Up).count();
                @let rows: Vec<_> = ts.iter().filter(|t| {
                    let s = t.status();
                    (health.is_empty() || health.iter().any(|h| h == s.health.as_str()))
                        && matches(&search, &[&t.url, &t.labels.to_string()])
                }).collect();
                @if !rows.is_empty() {
                    details.pool open id=(format!("pool-{}", slug(job))) {
                        summary { (job) " " span class=(format!("badge {}", if up == ts.len() { "ok" } else { "bad" })) { (up) " / " (ts.len()) " up" } }
                        table {
                            thead { tr { th { "endpoint" } th { "labels" } th { "last scrape" } th { "state" } } }
                            tbody {
                                @for t in rows {
                                    @let s = t.status();
                                    tr {
                                        td { a.out href=(t.url) rel="noopener noreferrer" { (t.url) } }
                                        td title=(t.discovered_labels().to_string()) { (label_tags(t.labels.iter().map(|l| (&*l.name, &*l.value)))) }
                                        td {
                                            @match s.last_scrape.and_then(|x| x.duration_since(std::time::UNIX_EPOCH).ok()) {
                                                Some(d) => { (ago(d.as_millis() as i64, now)) " (" (seconds_ms(s.last_scrape_duration.as_secs_f64())) ")" }
                                                None => "never",
                                            }
                                        }
                                        td { (badge(s.health.as_str())) }
                                    }
                                    @if !s.last_error.is_empty() {
                                        tr.errrow { td colspan="4" { "✗ Error scraping target: " (s.last_error) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/decisions[?decision=&search=]`: every decision with its actions.
pub fn decisions(ui: &Ui, st: &crate::api::ApiState, q: &[(String, String)]) -> Markup {
    let kind = value(q, "decision");
    let search = value(q, "search").unwrap_or_default();
    let all = st.act.list(500).unwrap_or_default();
    let rows: Vec<&Value> = all
        .iter()
        .filter(|d| kind.as_deref().is_none_or(|k| d["decision"] == k))
        .filter(|d| {
            let subject = format!(
                "{}/{}",
                d["namespace"].as_str().unwrap_or(""),
                d["name"].as_str().unwrap_or("")
            );
            matches(
                &search,
                &[
                    &subject,
                    d["actor"].as_str().unwrap_or(""),
                    d["reason"].as_str().unwrap_or(""),
                ],
            )
        })
        .collect();
    html! {
        h1 { "Decisions" }
        form.filters method="get" action=(ui.link("/decisions")) {
            label { "decision " select name="decision" {
                option value="" { "any" }
                @for k in ["promote", "abort", "pause", "rollback"] { option value=(k) selected[kind.as_deref() == Some(k)] { (k) } }
            } }
            input type="search" name="search" value=(search) placeholder="namespace/name, actor or reason";
            button type="submit" { "filter" }
        }
        @if rows.is_empty() { p.muted { "No decision matches." } }
        @else {
            div.wide { table {
                thead { tr { th { "time" } th { "rollout" } th { "revision" } th { "decision" } th { "actor" } th { "reason" } th { "actions" } } }
                tbody {
                    @for d in rows {
                        @let ns = d["namespace"].as_str().unwrap_or("");
                        @let name = d["name"].as_str().unwrap_or("");
                        tr {
                            td { (time((d["time"].as_f64().unwrap_or(0.0) * 1000.0) as i64)) }
                            td { a href=(ui.link(&format!("/rollouts/{ns}/{name}"))) { (ns) "/" (name) } }
                            td { code { (d["revision"].as_str().unwrap_or("")) } }
                            td { (badge(d["decision"].as_str().unwrap_or(""))) }
                            td { (actor_link(ui, d["actor"].as_str().unwrap_or(""))) }
                            td.msg title=(d["reason"].as_str().unwrap_or("")) { (d["reason"].as_str().unwrap_or("")) }
                            td {
                                @if d["actions"].as_array().is_none_or(|a| a.is_empty()) { span.muted { "no sink configured" } }
                                @for a in d["actions"].as_array().into_iter().flatten() { (super::run::action(a)) }
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// An actor, linked to its run when it is an analysis.
pub fn actor_link(ui: &Ui, actor: &str) -> Markup {
    match actor.strip_prefix("analysis:") {
        Some(id) => html! { a href=(ui.link(&format!("/runs/{id}"))) { (actor) } },
        None => html! { (actor) },
    }
}
