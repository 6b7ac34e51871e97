//! The frame every page shares (top bar, title carrying the state, footer
//! with the JSON behind the page), state badges with glyphs (never colour
//! alone) and times as `<time>` elements the script can relabel.

use maud::{html, Markup, DOCTYPE};

use super::Ui;

/// A run or measurement phase: its glyph and CSS class.
pub fn glyph(phase: &str) -> (&'static str, &'static str) {
    match phase {
        "passed" | "successful" | "done" | "healthy" | "up" | "promote" | "promote-full" => {
            ("✓", "ok")
        }
        "failed" | "dead" | "aborted" | "down" | "abort" | "rollback" => ("✗", "bad"),
        "inconclusive" | "paused" | "pause" => ("?", "warn"),
        "resume" | "retry" => ("▶", "run"),
        "error" => ("!", "err"),
        "running" | "progressing" | "promoting" | "pending" | "aborting" => ("▶", "run"),
        "cancelled" => ("■", "muted"),
        _ => ("·", "muted"),
    }
}

/// A badge: glyph and word, coloured by class.
pub fn badge(state: &str) -> Markup {
    let (g, class) = glyph(state);
    html! { span class=(format!("badge {class}")) { (g) " " (state) } }
}

/// A time (ms since the epoch) in UTC, with the instant in `datetime` and
/// `data-t` so the page script can show local or relative time.
pub fn time(ms: i64) -> Markup {
    let text = crate::timefmt::rfc3339_ms(ms);
    let shown: String = text.replace('T', " ").chars().take(19).collect();
    html! { time datetime=(text) data-t=(ms) { (shown) "Z" } }
}

/// Seconds as "4.1 s", "2m05s".
pub fn seconds(s: f64) -> String {
    if !s.is_finite() {
        "—".into()
    } else if s < 100.0 {
        format!("{s:.1} s")
    } else {
        crate::duration::format(std::time::Duration::from_secs_f64(s.max(0.0)))
    }
}

/// The whole page: `title` (carrying the state), the nav with `here`
/// marked, `main`, the footer link to the JSON. `live` is the SSE URL of a
/// page that updates itself.
pub fn page(
    ui: &Ui,
    title: &str,
    here: &str,
    json: &str,
    live: Option<&str>,
    main: Markup,
) -> Markup {
    let nav = [
        ("Overview", "/"),
        ("Runs", "/runs"),
        ("Rollouts", "/rollouts"),
        ("Alerts", "/alerts"),
        ("Graph", "/graph"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" data-live=(if live.is_some() { "connecting" } else { "off" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · augur" }
                link rel="stylesheet" href=(ui.link(&super::css_path()));
                script src=(ui.link(&super::js_path())) defer {}
                @if live.is_some() {
                    noscript { meta http-equiv="refresh" content="10"; }
                }
            }
            body data-live-url=[live.map(|l| ui.link(l))] data-prefix=(ui.prefix) {
                header.top {
                    a.brand href=(ui.link("/")) { "augur" }
                    nav {
                        @for (name, path) in nav {
                            a href=(ui.link(path)) aria-current=[(name == here).then_some("page")] { (name) }
                        }
                    }
                    span.spacer {}
                    span #live.live { "" }
                    button #tz.toggle type="button" title="Show times in UTC or local time" { "UTC" }
                    span.version { "v" (env!("CARGO_PKG_VERSION")) }
                }
                main #main { (main) }
                footer {
                    "The data behind this page: " a href=(ui.link(json)) { (json) }
                    " · read-only; changes go through the authenticated API"
                }
            }
        }
    }
}

/// Just `main`'s content, for a live page's refresh (`?fragment=main`).
pub fn fragment(main: Markup) -> Markup {
    html! { (main) }
}

/// A JSON value shown in a `<pre>` (escaped).
pub fn json_block(v: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre.json { (text) } }
}
