//! `/runs/{id}`: the verdict sentence, a phase grid (interval × metric),
//! per metric a chart of baseline and canary on the same axes (threshold
//! band or ratio limits), an evidence chart for sequential tests (anytime p
//! on a log axis, the abort level, the crossing), the queries with their
//! arguments filled in and links to `/graph`, the pass requirements, the
//! measurements, and the decision story.

use std::collections::BTreeMap;

use maud::{html, Markup};
use serde_json::Value;

use super::layout::{badge, glyph, json_block, seconds, slug, time};
use super::svg::{self, Chart, Scale, Series};
use super::Ui;
use crate::analysis::engine::RunDetail;
use crate::analysis::template::{substitute, Check, Metric, Queries, Template, Vars};
use crate::state::MeasurementRow;

/// The page's `<title>`: state first, so a background tab shows it.
pub fn title(d: &RunDetail) -> String {
    let (g, _) = glyph(&d.row.state);
    let subject = d
        .row
        .rollout
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
        .map(|r| {
            format!(
                "{}/{}",
                r["namespace"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_else(|| d.row.template.clone());
    format!("{g} {} · {subject} #{}", d.row.state, d.status.intervals)
}

/// The queries of `m` with this run's arguments and tracks filled in:
/// `(what, query)` pairs.
fn filled(t: &Template, m: &Metric, args: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let tracks = t.track_values(args).unwrap_or_default();
    let fill = |q: &str, track: &str| {
        substitute(
            q,
            &Vars {
                args,
                track,
                window: t.window,
                interval: t.interval,
            },
        )
        .unwrap_or_else(|e| format!("{q}  (cannot fill in: {e})"))
    };
    match &m.queries {
        Queries::Values { baseline, canary } => vec![
            ("baseline".into(), fill(baseline, &tracks.0)),
            ("canary".into(), fill(canary, &tracks.1)),
        ],
        Queries::Counts { errors, total } => vec![
            ("baseline errors".into(), fill(errors, &tracks.0)),
            ("baseline total".into(), fill(total, &tracks.0)),
            ("canary errors".into(), fill(errors, &tracks.1)),
            ("canary total".into(), fill(total, &tracks.1)),
        ],
    }
}

/// The query string of a Prometheus-compatible `/graph` link for
/// `queries` over the run's span: `gN.expr`, `gN.tab=0` (graph; Prometheus
/// 2 and 3 both read it), `gN.range_input`, `gN.end_input` as Prometheus
/// 3's query page writes it (`YYYY-MM-DD HH:mm:ss`, UTC).
fn graph_query(queries: &[(String, String)], span_s: i64, end_ms: i64) -> String {
    let end: String = crate::timefmt::rfc3339_ms(end_ms)
        .replace('T', " ")
        .chars()
        .take(19)
        .collect();
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (i, (_, expr)) in queries.iter().enumerate() {
        q.append_pair(&format!("g{i}.expr"), expr);
        q.append_pair(&format!("g{i}.tab"), "0");
        q.append_pair(
            &format!("g{i}.range_input"),
            &format!("{}s", span_s.max(60)),
        );
        q.append_pair(&format!("g{i}.end_input"), &end);
    }
    q.finish()
}

/// One query per arm for links to other tools: counts become
/// `(errors) / (total)`.
fn arm_queries(queries: &[(String, String)]) -> (String, String) {
    let get = |what: &str| {
        queries
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, q)| q.clone())
            .unwrap_or_default()
    };
    if queries.len() == 4 {
        (
            format!("({}) / ({})", get("baseline errors"), get("baseline total")),
            format!("({}) / ({})", get("canary errors"), get("canary total")),
        )
    } else {
        (get("baseline"), get("canary"))
    }
}

/// Whether a `[ui]` link is about one metric (uses its name or queries).
fn per_metric(l: &crate::config::UiLink) -> bool {
    l.url.contains("{{metric}}") || l.url.contains("{{query_")
}

/// The `[ui]` links filled in for this run (and `metric`, with its arm
/// queries, when given).
fn ui_links(ui: &Ui, d: &RunDetail, metric: Option<(&str, &(String, String))>) -> Markup {
    let rollout = d
        .row
        .rollout
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
        .unwrap_or_default();
    let from = d.row.created_at.to_string();
    let to = d
        .row
        .finished_at
        .unwrap_or_else(crate::clock::now_ms)
        .to_string();
    let (m, (qb, qc)) = match metric {
        Some((m, q)) => (m, (q.0.as_str(), q.1.as_str())),
        None => ("", ("", "")),
    };
    let values = [
        ("namespace", rollout["namespace"].as_str().unwrap_or("")),
        ("name", rollout["name"].as_str().unwrap_or("")),
        ("revision", rollout["revision"].as_str().unwrap_or("")),
        ("run", d.row.id.as_str()),
        ("template", d.row.template.as_str()),
        ("metric", m),
        ("from_ms", from.as_str()),
        ("to_ms", to.as_str()),
        ("query_baseline", qb),
        ("query_canary", qc),
    ];
    html! {
        @for l in ui.links.iter().filter(|l| per_metric(l) == metric.is_some()) {
            " · " a.out href=(l.fill(&values)) rel="noopener noreferrer" target="_blank" { (l.name) }
        }
    }
}

fn unit_of(m: &Metric) -> &'static str {
    let n = m.name.to_lowercase();
    if n.contains("rate") || matches!(m.queries, Queries::Counts { .. }) {
        "%"
    } else if n.contains("latency") || m.unit == "s" {
        "s"
    } else {
        ""
    }
}

fn metric_panel(
    ui: &Ui,
    d: &RunDetail,
    t: &Template,
    i: usize,
    m: &Metric,
    args: &BTreeMap<String, String>,
) -> Markup {
    let ms: Vec<&MeasurementRow> = d
        .measurements
        .iter()
        .filter(|x| x.metric == m.name)
        .collect();
    let st = d.status.metrics.get(i);
    let id = format!("metric-{}", slug(&m.name));
    let unit = unit_of(m);
    let finished = d.row.finished_at.is_some();
    let decided_at = finished.then_some(d.status.intervals as f64);
    let mut marks = Vec::new();
    if let Some(x) = decided_at {
        marks.push((
            x,
            "mark-decided",
            format!("{} at #{}", d.row.state, d.status.intervals),
        ));
    }
    let failed: Vec<f64> = ms
        .iter()
        .filter(|x| x.phase == "failed")
        .map(|x| x.interval as f64)
        .collect();
    let values = Chart {
        id: format!("{id}-values"),
        title: format!("{}: baseline and canary per interval", m.name),
        desc: match ms.last() {
            Some(l) => format!(
                "{} intervals; last: canary {} vs baseline {}; {} failed",
                ms.len(),
                svg::label(l.canary.unwrap_or(f64::NAN), unit),
                svg::label(l.baseline.unwrap_or(f64::NAN), unit),
                failed.len()
            ),
            None => "no measurements yet".into(),
        },
        series: vec![
            Series {
                label: "baseline".into(),
                class: "s-baseline",
                points: ms.iter().map(|x| (x.interval as f64, x.baseline)).collect(),
                square: false,
            },
            Series {
                label: "canary".into(),
                class: "s-canary",
                points: ms.iter().map(|x| (x.interval as f64, x.canary)).collect(),
                square: true,
            },
        ],
        scale: Scale::Linear,
        lines: Vec::new(),
        bands: match &m.check {
            Check::Threshold { min, max } => vec![(
                min.unwrap_or(f64::NEG_INFINITY),
                max.unwrap_or(f64::INFINITY),
                "band-pass",
            )],
            _ => Vec::new(),
        },
        marks: marks.clone(),
        unit: unit.into(),
        x_time: false,
    };
    // Relative checks: the ratio (or delta) against its limits.
    let ratio = match &m.check {
        Check::Relative {
            max_ratio,
            min_ratio,
            max_delta,
            min_delta,
        } => {
            let by_ratio = max_ratio.is_some() || min_ratio.is_some();
            let pts: Vec<(f64, Option<f64>)> = ms
                .iter()
                .map(|x| {
                    let v = match (x.baseline, x.canary) {
                        (Some(b), Some(c)) if by_ratio && b != 0.0 => Some(c / b),
                        (Some(b), Some(c)) if !by_ratio => Some(c - b),
                        _ => None,
                    };
                    (x.interval as f64, v)
                })
                .collect();
            let mut lines = Vec::new();
            for (v, name) in [
                (max_ratio, "max_ratio"),
                (min_ratio, "min_ratio"),
                (max_delta, "max_delta"),
                (min_delta, "min_delta"),
            ] {
                if let Some(v) = v {
                    if by_ratio == name.ends_with("ratio") {
                        lines.push((
                            *v,
                            "ref-fail",
                            format!(
                                "{name} {}",
                                svg::label(*v, if by_ratio { "" } else { unit })
                            ),
                        ));
                    }
                }
            }
            Some(Chart {
                id: format!("{id}-ratio"),
                title: format!(
                    "{}: canary {} baseline",
                    m.name,
                    if by_ratio { "/" } else { "−" }
                ),
                desc: format!("{} intervals against {} limit(s)", pts.len(), lines.len()),
                series: vec![Series {
                    label: if by_ratio {
                        "ratio".into()
                    } else {
                        "delta".into()
                    },
                    class: "s-canary",
                    points: pts,
                    square: true,
                }],
                scale: Scale::Linear,
                lines,
                bands: Vec::new(),
                marks: marks.clone(),
                unit: if by_ratio { String::new() } else { unit.into() },
                x_time: false,
            })
        }
        _ => None,
    };
    // Sequential tests: the anytime p-value against the level.
    let evidence = {
        let ps: Vec<(f64, Option<f64>)> = ms
            .iter()
            .map(|x| {
                (
                    x.interval as f64,
                    serde_json::from_str::<Value>(&x.detail)
                        .ok()
                        .and_then(|v| v["p_value"].as_f64()),
                )
            })
            .collect();
        let level = ms.iter().rev().find_map(|x| {
            serde_json::from_str::<Value>(&x.detail)
                .ok()
                .and_then(|v| v["level"].as_f64())
        });
        match (level, ps.iter().any(|p| p.1.is_some())) {
            (Some(level), true) => {
                let smallest = ps.iter().filter_map(|p| p.1).fold(1.0, f64::min);
                let floor = (level / 10.0).min(smallest).max(1e-12);
                let floor = 10f64.powf(floor.log10().floor());
                let crossed = ps
                    .iter()
                    .find(|p| p.1.is_some_and(|v| v < level))
                    .map(|p| p.0);
                let mut marks = Vec::new();
                if let Some(x) = crossed {
                    marks.push((x, "mark-crossed", format!("crossed at #{x}")));
                }
                Some(Chart {
                    id: format!("{id}-evidence"),
                    title: format!("{}: anytime p-value per interval", m.name),
                    desc: match crossed {
                        Some(x) => format!("p fell below the abort level {level} at interval {x}"),
                        None => format!("p stayed above the abort level {level}"),
                    },
                    series: vec![Series {
                        label: "anytime p".into(),
                        class: "s-p",
                        points: ps,
                        square: false,
                    }],
                    scale: Scale::Log { floor },
                    lines: vec![(
                        level,
                        "ref-fail",
                        format!("abort below {}", svg::label(level, "p")),
                    )],
                    bands: Vec::new(),
                    marks,
                    unit: String::new(),
                    x_time: false,
                })
            }
            _ => None,
        }
    };
    let queries = filled(t, m, args);
    let span_s = (d.row.finished_at.unwrap_or(d.row.updated_at) - d.row.created_at) / 1000
        + t.interval.as_secs() as i64;
    let end = d.row.finished_at.unwrap_or(d.row.updated_at);
    // A metric the run ended without (another metric decided) stopped.
    let phase = st
        .and_then(|s| s.phase)
        .map_or(if finished { "stopped" } else { "running" }, |p| p.as_str());
    html! {
        section.metric id=(id) {
            h3 {
                (m.name) " " (badge(phase))
                @if m.critical { " " span.tag { "critical" } }
                @if m.weight != 1.0 { " " span.tag { "weight " (m.weight) } }
                @if !m.group.is_empty() { " " span.tag { "group " (m.group) } }
            }
            @if let Some(s) = st {
                p.counters {
                    (s.successful) " ✓ · " (s.failed) " ✗ · " (s.inconclusive) " ? · " (s.error) " !"
                    @if let Some(l) = &s.last { " — " (l.message) }
                }
            }
            (svg::chart(&values))
            @if let Some(r) = &ratio { (svg::chart(r)) }
            @if let Some(e) = &evidence {
                (svg::chart(e))
                p.note { "This p-value stays valid however often it is checked; the run stops the first time it drops below the line." }
            }
            @if let Check::Test { test, alpha, .. } = &m.check {
                @if evidence.is_none() {
                    p.note { (test.as_str()) ": fixed-horizon p, recomputed each interval (fails below " (alpha) "); not anytime-valid." }
                }
            }
            details.queries {
                summary { "Queries" }
                @for (what, q) in &queries {
                    p { span.what { (what) } code { (q) } }
                }
                @let gq = graph_query(&queries, span_s, end);
                @let arms = arm_queries(&queries);
                p {
                    a href=(ui.link(&format!("/graph?{gq}"))) { "Open in /graph" }
                    @if let Some(p) = &ui.prometheus {
                        " · " a.out href=(format!("{p}/graph?{gq}")) rel="noopener noreferrer" target="_blank" { "Open in Prometheus" }
                    }
                    (ui_links(ui, d, Some((&m.name, &arms))))
                }
            }
            details.measurements id=(format!("{id}-table")) {
                summary { "Measurements (" (ms.len()) ")" }
                // Every measurement that did not pass, and the last 12: the
                // page stays small for long runs; the JSON has them all.
                @let shown: Vec<&&MeasurementRow> = ms.iter().enumerate().filter(|(k, x)| x.phase != "successful" || k + 12 >= ms.len()).map(|(_, x)| x).collect();
                @if shown.len() < ms.len() {
                    p.note { (ms.len() - shown.len()) " earlier passing measurements are in " a href=(ui.link(&format!("/api/v1/analysis/runs/{}", d.row.id))) { "the run's JSON" } "." }
                }
                table {
                    thead { tr { th { "#" } th { "time" } th { "phase" } th { "baseline" } th { "canary" } th { "message" } } }
                    tbody {
                        @for x in &shown {
                            @let (g, class) = glyph(&x.phase);
                            tr {
                                td { (x.interval) } td { (time(x.t)) }
                                td class=(class) { (g) " " (x.phase) }
                                td { (svg::label(x.baseline.unwrap_or(f64::NAN), unit)) }
                                td { (svg::label(x.canary.unwrap_or(f64::NAN), unit)) }
                                td { (x.message) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The pass requirements, Argo's way.
fn requirements(d: &RunDetail, t: &Template) -> Markup {
    let failed: u32 = d.status.metrics.iter().map(|m| m.failed).sum();
    let inconclusive: u32 = d.status.metrics.iter().map(|m| m.inconclusive).sum();
    html! {
        ul.requirements {
            li { "at most " (t.failure_limit) " failed measurements per metric (failed so far: " (failed) ")" }
            li { "at most " (t.inconclusive_limit) " inconclusive (so far: " (inconclusive) ")" }
            li { "fewer than " (t.consecutive_error_limit) " consecutive errors" }
            li { (d.status.intervals) " of " (t.count.map_or("∞".to_string(), |c| c.to_string())) " measurements" }
            @if t.metrics.iter().any(|m| m.critical) { li { "a critical metric's failure fails the run at once" } }
        }
    }
}

/// The phase grid: one row per metric, one cell per interval.
fn grid(d: &RunDetail, t: &Template) -> Markup {
    let n = d.status.intervals as i64;
    let by: BTreeMap<(String, i64), &MeasurementRow> = d
        .measurements
        .iter()
        .map(|m| ((m.metric.clone(), m.interval), m))
        .collect();
    html! {
        table.grid {
            thead { tr { th { "metric" } @for i in 1..=n { th { (i) } } } }
            tbody {
                @for m in &t.metrics {
                    tr {
                        th { a href=(format!("#metric-{}", slug(&m.name))) { (m.name) } }
                        @for i in 1..=n {
                            @match by.get(&(m.name.clone(), i)) {
                                Some(x) => {
                                    @let (g, class) = glyph(&x.phase);
                                    // Passing cells carry no tooltip: long runs stay small.
                                    td class=(format!("c {class}")) title=[(x.phase != "successful").then(|| format!("#{i} {}", x.phase))] { (g) }
                                }
                                None => td.c.muted { "·" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The decision story: the audit of the run and its rollout, decisions
/// with each action's request and response (header values are never stored).
pub fn story(
    ui: &Ui,
    audit: &[crate::state::AuditRow],
    decisions: &[Value],
    started: Option<i64>,
) -> Markup {
    html! {
        ol.story {
            @for a in audit {
                li {
                    @if let Some(s) = started { span.t { "+" (seconds((a.t - s) as f64 / 1000.0)) } " " }
                    (time(a.t)) " "
                    b { (a.action) } " " span.actor { (a.actor) } " "
                    span { (serde_json::from_str::<Value>(&a.detail).ok().and_then(|v| v["reason"].as_str().map(str::to_string)).unwrap_or_default()) }
                }
            }
        }
        @for dcs in decisions {
            div.decision {
                p { (badge(dcs["decision"].as_str().unwrap_or(""))) " by " (super::ops::actor_link(ui, dcs["actor"].as_str().unwrap_or(""))) ": " (dcs["reason"].as_str().unwrap_or("")) }
                @for a in dcs["actions"].as_array().into_iter().flatten() { (action(a)) }
            }
        }
    }
}

/// The curl that sends what a webhook action sends (configured header
/// values are secrets and never stored: they appear as variables; the
/// URL's secrets were redacted by `act`).
pub fn action_curl(a: &Value) -> Option<String> {
    let req = &a["request"];
    let url = req["url"].as_str()?;
    let mut cmd = format!(
        "curl -X {} {} \\\n  -H 'Content-Type: application/json' \\\n  -H {}",
        req["method"].as_str().unwrap_or("POST"),
        super::layout::sh(url),
        super::layout::sh(&format!(
            "Idempotency-Key: {}",
            a["key"].as_str().unwrap_or("")
        ))
    );
    for h in req["headers"].as_array().into_iter().flatten() {
        let h = h.as_str().unwrap_or("");
        let var: String = h
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        cmd.push_str(&format!(" \\\n  -H \"{h}: ${var}\""));
    }
    if let Some(b) = req["body"].as_str() {
        cmd.push_str(&format!(" \\\n  --data-binary {}", super::layout::sh(b)));
    }
    Some(cmd)
}

/// One action: sink, status, attempts, and in `<details>` the request,
/// the response, the last error and the equivalent curl.
pub fn action(a: &Value) -> Markup {
    html! {
        details.action {
            summary {
                (a["sink"].as_str().unwrap_or("")) " " (badge(a["status"].as_str().unwrap_or("")))
                " after " (a["attempts"]) " attempt(s)"
                @if a["held"] == true { " " span.tag { "held: this replica does not lead" } }
            }
            @if let Some(e) = a["last_error"].as_str() { p.error { (e) } }
            p { "request" } (json_block(&a["request"]))
            p { "response" } (json_block(&a["response"]))
            @if let Some(c) = action_curl(a) {
                p { "equivalent curl" } (super::layout::curl(&c))
            }
        }
    }
}

/// While running, why the run has not ended yet; once decided, how long
/// the first failing interval took to become a done action.
fn progress_line(d: &RunDetail, t: &Template, decisions: &[Value]) -> Markup {
    if d.row.state == "running" {
        let mut why = Vec::new();
        if let Some(c) = t.count {
            let left = c.saturating_sub(d.status.intervals);
            why.push(format!(
                "{left} more interval(s) before it can pass (count {c})"
            ));
        } else {
            why.push("no count: it runs until a metric fails or it is cancelled".into());
        }
        // The sequential metric nearest its abort level.
        let nearest = d
            .status
            .metrics
            .iter()
            .filter_map(|m| {
                let det = &m.last.as_ref()?.detail;
                let (p, level) = (det["p_value"].as_f64()?, det["level"].as_f64()?);
                Some((m.name.clone(), p, level))
            })
            .min_by(|a, b| (a.1 / a.2).total_cmp(&(b.1 / b.2)));
        match nearest {
            Some((name, p, level)) => why.push(format!(
                "nearest to aborting: {name}, anytime p {} against its level {}",
                svg::label(p, "p"),
                svg::label(level, "p")
            )),
            None if d.status.intervals == 0 => why.push("no measurement yet".into()),
            None => {}
        }
        let failed: u32 = d.status.metrics.iter().map(|m| m.failed).sum();
        if failed > 0 {
            why.push(format!(
                "{failed} failed measurement(s), within the failure limit {}",
                t.failure_limit
            ));
        }
        return html! { p.why { "Why not decided yet: " (why.join("; ")) "." } };
    }
    let first_bad = d
        .measurements
        .iter()
        .filter(|m| m.phase == "failed")
        .min_by_key(|m| m.t);
    let done = decisions
        .iter()
        .flat_map(|x| x["actions"].as_array().into_iter().flatten())
        .filter_map(|a| a["done"].as_f64())
        .fold(None, |acc: Option<f64>, t| {
            Some(acc.map_or(t, |a| a.max(t)))
        });
    let waiting: Vec<String> = decisions
        .iter()
        .flat_map(|x| x["actions"].as_array().into_iter().flatten())
        .filter(|a| a["done"].is_null())
        .map(|a| {
            format!(
                "{} {} after {} attempt(s)",
                a["sink"].as_str().unwrap_or(""),
                a["status"].as_str().unwrap_or(""),
                a["attempts"]
            )
        })
        .collect();
    match (first_bad, decisions.first()) {
        (Some(b), Some(dc)) => html! {
            p.why {
                "Detection: first failing interval #" (b.interval) " at " (time(b.t)) " → "
                (dc["decision"].as_str().unwrap_or("")) " decided "
                (seconds(dc["time"].as_f64().unwrap_or(0.0) - b.t as f64 / 1000.0)) " later"
                @if let Some(done) = done.filter(|_| waiting.is_empty()) {
                    ", its actions done " (seconds(done - b.t as f64 / 1000.0)) " after the interval."
                } @else if !waiting.is_empty() {
                    "; not carried out yet: " (waiting.join(", ")) "."
                } @else { "; no action sink is configured." }
            }
        },
        _ => html! {},
    }
}

/// The score by group (Kayenta's bar), when the template weighs or groups
/// its metrics: a group is passing when every decisive metric in it passed.
fn score(d: &RunDetail, t: &Template) -> Markup {
    let grouped = t
        .metrics
        .iter()
        .any(|m| !m.group.is_empty() || m.weight != 1.0);
    let Some(total) = d.status.score(t).filter(|_| grouped) else {
        return html! {};
    };
    let mut groups: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    for (st, spec) in d.status.metrics.iter().zip(&t.metrics) {
        let g = groups.entry(spec.group.as_str()).or_insert((0.0, 0.0, 0.0));
        g.0 += spec.weight;
        match st.last.as_ref().map(|l| l.phase) {
            Some(crate::analysis::run::Phase::Successful) => {
                g.1 += spec.weight;
                g.2 += spec.weight;
            }
            Some(crate::analysis::run::Phase::Failed) => g.2 += spec.weight,
            _ => {}
        }
    }
    let items: Vec<(String, f64, &'static str)> = groups
        .iter()
        .map(|(name, (weight, passed, decisive))| {
            let name = if name.is_empty() { "(no group)" } else { name };
            if *decisive == 0.0 {
                (format!("· {name}: no data"), *weight, "muted")
            } else {
                let s = 100.0 * passed / decisive;
                let (g, class) = if s >= 100.0 {
                    ("✓", "ok")
                } else {
                    ("✗", "bad")
                };
                (format!("{g} {name}: {s:.0}"), *weight, class)
            }
        })
        .collect();
    html! {
        section.score {
            h2 { "Score " (format!("{total:.0}")) }
            (svg::blocks(&items))
            p.note { "One block per metric group, as wide as its weight; a group scores the weight of its decisive metrics that passed." }
        }
    }
}

/// The page's main content.
pub fn main(
    ui: &Ui,
    d: &RunDetail,
    audit: &[crate::state::AuditRow],
    decisions: &[Value],
) -> Markup {
    let args: BTreeMap<String, String> = serde_json::from_str(&d.row.args).unwrap_or_default();
    let rollout = d
        .row
        .rollout
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok());
    let (g, class) = glyph(&d.row.state);
    html! {
        section.verdict {
            h1 { span class=(format!("badge big {class}")) { (g) " " (d.row.state) } " " (d.row.template) }
            p.headline { (d.row.message) }
            @if let Some(t) = &d.template { (progress_line(d, t, decisions)) }
            p.facts {
                "run " code { (d.row.id) }
                @if let Some(r) = &rollout {
                    " · rollout " a href=(ui.link(&format!("/rollouts/{}/{}", r["namespace"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or("")))) {
                        (r["namespace"].as_str().unwrap_or("")) "/" (r["name"].as_str().unwrap_or(""))
                    }
                    @if let Some(rev) = r["revision"].as_str() { " @ " (rev) }
                }
                " · started " (time(d.row.created_at))
                @if let Some(f) = d.row.finished_at { " · finished " (time(f)) " after " (seconds((f - d.row.created_at) as f64 / 1000.0)) }
                @else if let Some(n) = d.row.next_at { " · next measurement " (time(n)) }
                (ui_links(ui, d, None))
            }
            @if !args.is_empty() {
                p.facts { "args: " @for (k, v) in &args { code { (k) "=" (v) } " " } }
            }
            @if let Some(t) = &d.template {
                p.facts {
                    "every " (crate::duration::format(t.interval)) " · window " (crate::duration::format(t.window))
                    " · α = " (t.alpha)
                    @let seq = t.sequential_count();
                    @if seq > 1 { " split over " (seq) " sequential metrics: " (svg::label(t.alpha / seq as f64, "p")) " each" }
                }
            }
        }
        @if let Some(t) = &d.template { (score(d, t)) }
        @if d.row.state == "running" {
            details.operate {
                summary { "Cancel this run (equivalent curl)" }
                (super::layout::curl(&format!("curl -X DELETE -H \"Authorization: Bearer $AUGUR_TOKEN\" {}", super::layout::sh(&format!("{}/api/v1/analysis/runs/{}", ui.external, d.row.id)))))
            }
        }
        @match &d.template {
            None => p.error { "The stored template of this run cannot be read; the measurements are below." }
            Some(t) => {
                section { h2 { "Phases" } div.wide { (grid(d, t)) } }
                section { h2 { "Pass requirements" } (requirements(d, t)) }
                section {
                    h2 { "Metrics" }
                    @for (i, m) in t.metrics.iter().enumerate() { (metric_panel(ui, d, t, i, m, &args)) }
                }
            }
        }
        section {
            h2 { "Decision story" }
            (story(ui, audit, decisions, Some(d.row.created_at)))
            @if !d.verdicts.is_empty() {
                details { summary { "Verdict history (" (d.verdicts.len()) ")" }
                    ol { @for v in &d.verdicts { li { (time(v.t)) " " (badge(&v.state)) " " (v.message) } } }
                }
            }
        }
    }
}
