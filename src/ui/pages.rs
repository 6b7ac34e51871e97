//! The overview (`/`), the runs list, the rollout pages and `/graph`
//! (URL-compatible with Prometheus's: `g0.expr`, `g0.tab`, `g0.range_input`,
//! `g0.end_input`, `g1...`, so alert `generatorURL` links open here).

use maud::{html, Markup};
use serde_json::Value;

use super::layout::{badge, seconds, time};
use super::svg::{self, Chart, Scale, Series};
use super::Ui;
use crate::state::RunRow;

fn rollout_of(r: &RunRow) -> Option<(String, String, String)> {
    let v: Value = serde_json::from_str(r.rollout.as_deref()?).ok()?;
    Some((
        v["namespace"].as_str()?.to_string(),
        v["name"].as_str()?.to_string(),
        v["revision"].as_str().unwrap_or("").to_string(),
    ))
}

/// One run as a table row.
fn run_row(ui: &Ui, r: &RunRow, spark: Option<Markup>) -> Markup {
    let status: crate::analysis::run::RunStatus =
        serde_json::from_str(&r.status).unwrap_or_default();
    let count = serde_json::from_str::<crate::analysis::template::Template>(&r.spec)
        .ok()
        .and_then(|t| t.count);
    html! {
        tr {
            td { (badge(&r.state)) }
            td { a href=(ui.link(&format!("/runs/{}", r.id))) { (r.template) } }
            td {
                @if let Some((ns, name, rev)) = rollout_of(r) {
                    a href=(ui.link(&format!("/rollouts/{ns}/{name}"))) { (ns) "/" (name) } @if !rev.is_empty() { "@" (rev) }
                } @else { "—" }
            }
            td {
                @if let Some(c) = count {
                    meter min="0" max=(c) value=(status.intervals) { (status.intervals) "/" (c) } " " (status.intervals) "/" (c)
                } @else { (status.intervals) }
            }
            td { @if let Some(s) = spark { (s) } }
            td { (time(r.created_at)) }
            td.msg title=(r.message) { (r.message.chars().take(160).collect::<String>()) }
        }
    }
}

/// The smallest anytime p per interval of a running run (its worst metric).
fn worst_p(ms: &[crate::state::MeasurementRow]) -> Vec<Option<f64>> {
    let mut by: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
    for m in ms {
        if let Some(p) = serde_json::from_str::<Value>(&m.detail)
            .ok()
            .and_then(|d| d["p_value"].as_f64())
        {
            let e = by.entry(m.interval).or_insert(1.0);
            *e = e.min(p);
        }
    }
    by.into_values().map(Some).collect()
}

/// `/`: active runs, recent verdicts with the decision taken, alerts and
/// the health strip.
pub fn overview(ui: &Ui, st: &crate::api::ApiState) -> Markup {
    let running = st
        .analysis
        .run_rows(Some("running"), 100)
        .unwrap_or_default();
    let recent: Vec<RunRow> = st
        .analysis
        .run_rows(None, 50)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.state != "running")
        .take(20)
        .collect();
    let decisions = st.act.list(200).unwrap_or_default();
    let decision_of = |id: &str| {
        decisions
            .iter()
            .find(|d| d["actor"].as_str() == Some(&format!("analysis:{id}")))
            .cloned()
    };
    let targets = st.scrape.targets();
    let up = targets
        .iter()
        .filter(|t| t.status().health.as_str() == "up")
        .count();
    let views = st.rules.views();
    let rules = views.iter().flat_map(|g| g.rules.iter());
    let rule_errors = rules.clone().filter(|r| r.health.as_str() == "err").count();
    let alerts: Vec<&crate::rules::group::Alert> = rules.flat_map(|r| r.alerts.iter()).collect();
    let firing = alerts
        .iter()
        .filter(|a| a.state == crate::rules::group::AlertState::Firing)
        .count();
    let pending_alerts = alerts
        .iter()
        .filter(|a| a.state == crate::rules::group::AlertState::Pending)
        .count();
    let outbox = st.state.outbox_counts().unwrap_or_default();
    // The last 30 days as DORA counts them.
    let to = crate::clock::now_ms();
    let from = to - 30 * 86_400_000;
    let dora = st
        .state
        .dora_input(from, to)
        .ok()
        .map(|i| crate::delivery::dora(&i, from, to)["overall"].clone());
    let count = |s: &str| outbox.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    html! {
        section.health {
            span.stat { "targets up " b { (up) "/" (targets.len()) } }
            span.stat { "rule errors " b { (rule_errors) } }
            span.stat { a href=(ui.link("/alerts")) { "alerts firing " b { (firing) } " pending " b { (pending_alerts) } } }
            span.stat { "outbox pending " b { (count("pending")) } " dead " b class=[(count("dead") > 0).then_some("bad")] { (count("dead")) } }
            @if let Some(o) = &dora {
                span.stat {
                    a href=(ui.link("/api/v1/dora?window=30d")) {
                        "deployments (30d) " b { (o["deployments"]) }
                        " change failure rate " b { (o["change_failure_rate"].as_f64().map_or("n/a".to_string(), |r| format!("{:.0}%", r * 100.0))) }
                    }
                }
            }
        }
        section {
            h2 { "Active runs (" (running.len()) ")" }
            @if running.is_empty() { p.muted { "No analysis is running." } }
            @else {
                table.runs {
                    thead { tr { th { "state" } th { "template" } th { "rollout" } th { "progress" } th { "worst anytime p" } th { "started" } th { "now" } } }
                    tbody {
                        @for r in &running {
                            @let ms = st.state.measurements(&r.id).unwrap_or_default();
                            (run_row(ui, r, Some(svg::sparkline(&worst_p(&ms), true, "s-p"))))
                        }
                    }
                }
            }
        }
        section {
            h2 { "Recent verdicts" }
            @if recent.is_empty() { p.muted { "No run has finished yet." } }
            @else {
                table.runs {
                    thead { tr { th { "verdict" } th { "template" } th { "rollout" } th { "decision" } th { "first bad interval → action done" } th { "finished" } th { "why" } } }
                    tbody {
                        @for r in &recent {
                            @let d = decision_of(&r.id);
                            tr {
                                td { (badge(&r.state)) }
                                td { a href=(ui.link(&format!("/runs/{}", r.id))) { (r.template) } }
                                td { @if let Some((ns, name, _)) = rollout_of(r) { a href=(ui.link(&format!("/rollouts/{ns}/{name}"))) { (ns) "/" (name) } } @else { "—" } }
                                td { @if let Some(d) = &d { (badge(d["decision"].as_str().unwrap_or(""))) } @else { "—" } }
                                td { (detection(st, r, d.as_ref())) }
                                td { @if let Some(f) = r.finished_at { (time(f)) } }
                                td.msg title=(r.message) { (r.message.chars().take(160).collect::<String>()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// From the first failing interval of `r` to its decision's last action done.
fn detection(st: &crate::api::ApiState, r: &RunRow, d: Option<&Value>) -> String {
    let Some(d) = d else { return "—".into() };
    let first_bad = st
        .state
        .measurements(&r.id)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.phase == "failed")
        .map(|m| m.t)
        .min();
    let done = d["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["done"].as_f64())
        .fold(None, |acc: Option<f64>, t| {
            Some(acc.map_or(t, |a| a.max(t)))
        });
    match (first_bad, done) {
        (Some(b), Some(done)) => seconds(done - b as f64 / 1000.0),
        _ => "—".into(),
    }
}

/// `/runs`: every run, newest first, filtered by `state`.
pub fn runs(ui: &Ui, st: &crate::api::ApiState, state: Option<&str>) -> Markup {
    let rows = st.analysis.run_rows(state, 500).unwrap_or_default();
    html! {
        h1 { "Runs" }
        form.filters method="get" action=(ui.link("/runs")) {
            label { "state " select name="state" {
                option value="" { "any" }
                @for s in ["running", "passed", "failed", "inconclusive", "error", "cancelled"] {
                    option value=(s) selected[state == Some(s)] { (s) }
                }
            } }
            button type="submit" { "filter" }
        }
        table.runs {
            thead { tr { th { "state" } th { "template" } th { "rollout" } th { "intervals" } th {} th { "started" } th { "message" } } }
            tbody { @for r in &rows { (run_row(ui, r, None)) } }
        }
    }
}

/// `/rollouts/{ns}/{name}`: a driven rollout's status, the runs bound to it,
/// its decisions and audit log.
pub fn rollout(ui: &Ui, st: &crate::api::ApiState, ns: &str, name: &str) -> Markup {
    let driven = st.rollouts.view(ns, name).ok().flatten();
    let runs: Vec<RunRow> = st
        .analysis
        .run_rows(None, 2000)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            rollout_of(r).is_some_and(|(a, b, _)| a == ns && b == name)
                || r.key
                    .as_deref()
                    .is_some_and(|k| k.starts_with(&format!("rollout/{ns}/{name}/")))
        })
        .collect();
    let decisions = st
        .act
        .list_only(500, crate::state::DecisionFilter::Rollout(ns, name))
        .unwrap_or_default();
    let audit = st
        .state
        .audit_log(Some(&format!("{ns}/{name}")), 200)
        .unwrap_or_default();
    let gates: Vec<crate::state::GateRow> = st
        .state
        .gates()
        .unwrap_or_default()
        .into_iter()
        .filter(|g| g.namespace == ns && g.name == name)
        .collect();
    // Newest revision first (by its latest run or decision).
    type Revision<'a> = (Vec<&'a RunRow>, Vec<&'a Value>);
    let mut by_rev: std::collections::BTreeMap<String, (i64, Revision)> =
        std::collections::BTreeMap::new();
    for r in &runs {
        let rev = rollout_of(r).map(|x| x.2).unwrap_or_default();
        let e = by_rev.entry(rev).or_default();
        e.0 = e.0.max(r.created_at);
        e.1 .0.push(r);
    }
    for d in &decisions {
        let e = by_rev
            .entry(d["revision"].as_str().unwrap_or("").to_string())
            .or_default();
        e.0 = e.0.max((d["time"].as_f64().unwrap_or(0.0) * 1000.0) as i64);
        e.1 .1.push(d);
    }
    let mut revisions: Vec<(String, (i64, Revision))> = by_rev.into_iter().collect();
    revisions.sort_by_key(|(_, (t, _))| std::cmp::Reverse(*t));
    let revisions: Vec<(String, Revision)> =
        revisions.into_iter().map(|(k, (_, v))| (k, v)).collect();
    html! {
        h1 { (ns) "/" (name) }
        @if let Some(v) = &driven {
            section.verdict {
                p { (badge(v["phase"].as_str().unwrap_or(""))) " " (v["strategy"].as_str().unwrap_or("")) " · step " (v["step"]) " · canary " (v["weights"]["canary"]) "% / stable " (v["weights"]["stable"]) "%" }
                p.headline { (v["message"].as_str().unwrap_or("")) }
                @if let Some(steps) = v["spec"]["step_list"].as_array() {
                    ol.steps start="0" {
                        @for (i, s) in steps.iter().enumerate() {
                            li class=[(v["step"].as_u64() == Some(i as u64)).then_some("here")] { (s.as_str().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        details.operate id="operate" {
            summary { "Operate (the equivalent commands; the pages are read-only)" }
            p { code { "augur rollout promote|abort" @if driven.is_some() { "|pause|resume|retry|promote-full" } " " (name) " -n " (ns) } }
            @for verb in verbs(driven.is_some()) {
                (super::layout::curl(&format!(
                    "curl -X POST -H \"Authorization: Bearer $AUGUR_TOKEN\" -H 'Content-Type: application/json' \\\n  --data '{{\"reason\":\"...\"}}' {}",
                    super::layout::sh(&format!("{}/api/v1/rollouts/{ns}/{name}/{verb}", ui.external))
                )))
            }
            @if driven.is_none() {
                p.note { "augur does not drive this rollout: promote and abort here are operator decisions sent to the configured sinks." }
            }
        }
        @if !ui.links.is_empty() {
            p.facts {
                "Elsewhere:"
                @for l in ui.links.iter().filter(|l| !l.url.contains("{{metric}}") && !l.url.contains("{{query_")) {
                    " " a.out href=(l.fill(&[("namespace", ns), ("name", name)])) rel="noopener noreferrer" target="_blank" { (l.name) }
                }
            }
        }
        section {
            h2 { "Revisions" }
            @if revisions.is_empty() { p.muted { "No run or decision names this rollout yet." } }
            @else {
                table {
                    thead { tr { th { "revision" } th { "analysis runs" } th { "decisions" } } }
                    tbody {
                        @for (rev, (rs, ds)) in &revisions {
                            tr {
                                td { code { @if rev.is_empty() { "—" } @else { (rev) } } }
                                td.pills { @for r in rs { a href=(ui.link(&format!("/runs/{}", r.id))) title=(r.message) { (badge(&r.state)) " " (r.template) } " " } }
                                td {
                                    @for d in ds {
                                        div {
                                            (badge(d["decision"].as_str().unwrap_or(""))) " " (time((d["time"].as_f64().unwrap_or(0.0) * 1000.0) as i64))
                                            @for a in d["actions"].as_array().into_iter().flatten() {
                                                " · " (a["sink"].as_str().unwrap_or("")) " " (badge(a["status"].as_str().unwrap_or("")))
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
        @if !gates.is_empty() {
            section {
                h2 { "Gates" }
                table {
                    thead { tr { th { "gate" } th { "state" } th { "set by" } th { "updated" } } }
                    tbody { @for g in &gates { tr {
                        td { (g.kind) } td { (badge(if g.open { "open" } else { "closed" })) } td { (g.actor) } td { (time(g.updated_at)) }
                    } } }
                }
            }
        }
        section {
            h2 { "Decisions and audit" }
            (super::run::story(ui, &audit.into_iter().rev().collect::<Vec<_>>(), &decisions, None))
        }
    }
}

/// The operator verbs that apply to a rollout.
fn verbs(driven: bool) -> &'static [&'static str] {
    if driven {
        &[
            "promote",
            "abort",
            "pause",
            "resume",
            "retry",
            "promote-full",
        ]
    } else {
        &["promote", "abort"]
    }
}

/// `/rollouts`: the rollouts augur drives.
pub fn rollouts(ui: &Ui, st: &crate::api::ApiState) -> Markup {
    let list = st.rollouts.list().unwrap_or_default();
    html! {
        h1 { "Rollouts" }
        @if list.is_empty() { p.muted { "No rollout is configured in [[rollouts]]; rollouts named by Flagger, Argo and operator decisions show up under their runs." } }
        table.runs {
            thead { tr { th { "phase" } th { "rollout" } th { "strategy" } th { "step" } th { "weights" } th { "message" } } }
            tbody {
                @for v in &list {
                    tr {
                        td { (badge(v["phase"].as_str().unwrap_or(""))) }
                        td { a href=(ui.link(&format!("/rollouts/{}/{}", v["namespace"].as_str().unwrap_or(""), v["name"].as_str().unwrap_or("")))) { (v["namespace"].as_str().unwrap_or("")) "/" (v["name"].as_str().unwrap_or("")) } }
                        td { (v["strategy"].as_str().unwrap_or("")) }
                        td { (v["step"]) }
                        td { (v["weights"]["canary"]) "% / " (v["weights"]["stable"]) "%" }
                        td.msg { (v["message"].as_str().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// One `/graph` panel's parameters, as Prometheus names them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphPanel {
    /// `gN.expr`
    pub expr: String,
    /// `gN.tab`: 0 graph, 1 table.
    pub tab: u8,
    /// `gN.range_input`, e.g. `1h`.
    pub range: String,
    /// `gN.end_input` (RFC 3339 or Unix seconds), empty = now.
    pub end: String,
}

/// The panels named in a `/graph` query string (`g0.*`, `g1.*`, ...).
pub fn graph_panels(pairs: &[(String, String)]) -> Vec<GraphPanel> {
    let mut out: std::collections::BTreeMap<usize, GraphPanel> = std::collections::BTreeMap::new();
    for (k, v) in pairs {
        let Some(rest) = k.strip_prefix('g') else {
            continue;
        };
        let Some((n, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else { continue };
        if n >= 20 {
            continue;
        }
        let p = out.entry(n).or_default();
        match field {
            "expr" => p.expr = v.clone(),
            // Prometheus 3 writes `graph`/`table`, older links `0`/`1`.
            "tab" => p.tab = u8::from(v == "1" || v == "table"),
            "range_input" => p.range = v.clone(),
            "end_input" => p.end = v.clone(),
            _ => {}
        }
    }
    let mut v: Vec<GraphPanel> = out.into_values().collect();
    if v.is_empty() {
        v.push(GraphPanel {
            range: "1h".into(),
            ..GraphPanel::default()
        });
    }
    v
}

/// One evaluated panel.
pub enum Evaluated {
    /// Nothing asked.
    Empty,
    /// The query's error, as the API words it.
    Error(String),
    /// Range result: series `(labels, points)` with the range's ends (ms).
    Range(Vec<(String, Vec<(i64, f64)>)>, i64, i64),
    /// Instant result rows `(labels, value)`.
    Table(Vec<(String, String)>),
}

/// `/graph`'s main content.
pub fn graph(ui: &Ui, panels: &[(GraphPanel, Evaluated)]) -> Markup {
    html! {
        h1 { "Graph" }
        @for (i, (p, e)) in panels.iter().enumerate() {
            section.panel {
                form.query method="get" action=(ui.link("/graph")) {
                    textarea name=(format!("g{i}.expr")) rows="2" { (p.expr) }
                    label { "range " input name=(format!("g{i}.range_input")) value=(p.range) size="6"; }
                    label { "end " input name=(format!("g{i}.end_input")) value=(p.end) size="22" placeholder="now"; }
                    label { "view " select name=(format!("g{i}.tab")) {
                        option value="0" selected[p.tab == 0] { "graph" }
                        option value="1" selected[p.tab == 1] { "table" }
                    } }
                    button type="submit" { "Execute" }
                }
                @match e {
                    Evaluated::Empty => p.muted { "Enter a PromQL expression." }
                    Evaluated::Error(m) => p.error { (m) }
                    Evaluated::Table(rows) => {
                        @if rows.is_empty() { p.muted { "Empty query result" } }
                        table.results { tbody { @for (l, v) in rows { tr { td { code { (l) } } td { (v) } } } } }
                    }
                    Evaluated::Range(series, start, end) => {
                        @if series.is_empty() { p.muted { "Empty query result" } }
                        @else {
                            (svg::chart(&Chart {
                                id: format!("g{i}"),
                                title: p.expr.clone(),
                                desc: format!("{} series from {} to {}", series.len(), crate::timefmt::rfc3339_ms(*start), crate::timefmt::rfc3339_ms(*end)),
                                series: series.iter().take(20).enumerate().map(|(k, (l, pts))| Series {
                                    label: l.clone(),
                                    class: ["s-c0", "s-c1", "s-c2", "s-c3", "s-c4", "s-c5"][k % 6],
                                    points: pts.iter().map(|(t, v)| (*t as f64 / 1000.0, Some(*v))).collect(),
                                    square: k % 2 == 1,
                                }).collect(),
                                scale: Scale::Linear,
                                lines: Vec::new(),
                                bands: Vec::new(),
                                marks: Vec::new(),
                                unit: String::new(),
                                x_time: true,
                            }))
                            p.muted { "from " (time(*start)) " to " (time(*end)) " (UTC)" }
                            @if series.len() > 20 { p.muted { (series.len()) " series; the chart shows the first 20, the table all." } }
                            details { summary { "Series (" (series.len()) ")" }
                                table.results { tbody { @for (l, pts) in series { tr { td { code { (l) } } td { (pts.last().map(|(_, v)| crate::fmtfloat::prom_api(*v)).unwrap_or_default()) } } } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_parameters_follow_prometheus() {
        let p = graph_panels(&[
            ("g0.expr".into(), "up".into()),
            ("g0.tab".into(), "table".into()),
            ("g1.expr".into(), "rate(x[5m])".into()),
            ("g1.range_input".into(), "30m".into()),
            ("g1.end_input".into(), "2026-01-01T00:00:00Z".into()),
            ("g99.expr".into(), "ignored".into()),
        ]);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].expr.as_str(), p[0].tab), ("up", 1));
        assert_eq!(
            (p[1].range.as_str(), p[1].end.as_str(), p[1].tab),
            ("30m", "2026-01-01T00:00:00Z", 0)
        );
        assert_eq!(graph_panels(&[]).len(), 1);
    }
}
