//! The frame every page shares (top bar, title carrying the state, footer
//! with the JSON behind the page), state badges with glyphs (never colour
//! alone) and times as `<time>` elements the script can relabel.

use maud::{html, Markup, DOCTYPE};

use super::Ui;

/// A run or measurement phase: its glyph and CSS class.
pub fn glyph(phase: &str) -> (&'static str, &'static str) {
    match phase {
        "passed" | "successful" | "done" | "healthy" | "up" | "promote" | "promote-full" | "ok"
        | "sent" | "inactive" => ("✓", "ok"),
        "failed" | "dead" | "aborted" | "down" | "abort" | "rollback" | "firing" => ("✗", "bad"),
        "inconclusive" | "paused" | "pause" => ("?", "warn"),
        "err" => ("!", "err"),
        "resume" | "retry" => ("▶", "run"),
        "error" => ("!", "err"),
        "running" | "progressing" | "promoting" | "pending" | "aborting" => ("▶", "run"),
        "unknown" => ("?", "muted"),
        "cancelled" => ("■", "muted"),
        _ => ("·", "muted"),
    }
}

/// A name as an HTML id fragment: lower-case letters and digits, `-` for
/// the rest.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
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

/// A time relative to `now` ("3m ago"), the UTC time on hover; the page
/// script keeps it current.
pub fn ago(ms: i64, now: i64) -> Markup {
    let utc = crate::timefmt::rfc3339_ms(ms);
    html! { time.ago datetime=(utc) data-ago=(ms) title=(utc) { (ago_text(now - ms)) } }
}

/// "12s ago", "3m ago", "5h ago", "2d ago"; "in 4s" for the future.
pub fn ago_text(d_ms: i64) -> String {
    let s = d_ms / 1000;
    let (n, unit) = match s.abs() {
        a if a < 60 => (a, "s"),
        a if a < 3600 => (a / 60, "m"),
        a if a < 86_400 => (a / 3600, "h"),
        a => (a / 86_400, "d"),
    };
    if s < 0 {
        format!("in {n}{unit}")
    } else {
        format!("{n}{unit} ago")
    }
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
/// marked (alerts firing and targets down as badges), banners for a failed
/// reload or dead-lettered notifications, `main`, the footer link to the
/// JSON. `live` is the SSE URL of a page that updates itself.
pub fn page(
    ui: &Ui,
    title: &str,
    here: &str,
    json: &str,
    live: Option<&str>,
    main: Markup,
) -> Markup {
    let nav = [
        ("Overview", "/", 0),
        ("Runs", "/runs", 0),
        ("Rollouts", "/rollouts", 0),
        ("Alerts", "/alerts", ui.firing),
        ("Rules", "/rules", 0),
        ("Targets", "/targets", ui.down),
        ("Decisions", "/decisions", 0),
        ("Graph", "/graph", 0),
    ];
    html! {
        (DOCTYPE)
        html lang="en" data-live=(if live.is_some() { "connecting" } else { "off" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · augur" }
                link rel="stylesheet" href=(ui.link(&super::css_path()));
                // Not deferred: it sets the theme before the first paint.
                script src=(ui.link(&super::js_path())) {}
                // Without JS only a running run refreshes itself (every 10 s).
                @if live.is_some_and(|l| l.starts_with("/runs/")) {
                    noscript { meta http-equiv="refresh" content="10"; }
                }
            }
            body data-live-url=[live.map(|l| ui.link(l))] data-prefix=(ui.prefix) {
                header.top {
                    a.brand href=(ui.link("/")) { "augur" }
                    nav {
                        @for (name, path, n) in nav {
                            a href=(ui.link(path)) aria-current=[(name == here).then_some("page")] {
                                (name)
                                @if n > 0 { " " span.count.bad title=(if name == "Alerts" { "firing" } else { "down" }) { (n) } }
                            }
                        }
                    }
                    span.spacer {}
                    @if live.is_some() {
                        button #pause.toggle type="button" title="Pause or resume live updates (?live=0 pauses)" { span #live.live {} }
                    }
                    button #tz.toggle type="button" title="Show times in UTC or local time" { "UTC" }
                    button #theme.toggle type="button" title="Theme: follow the browser, light or dark" { "auto" }
                    span.version { "v" (env!("CARGO_PKG_VERSION")) }
                }
                @if ui.reload_failed {
                    p.banner.bad { "✗ The last configuration reload failed; the previous configuration is still in effect (see augur's log or augur_config_last_reload_successful)." }
                }
                @if ui.dead > 0 {
                    p.banner.bad { "✗ " (ui.dead) " notification(s) were dead-lettered and never delivered: " a href=(ui.link("/alerts#notifications")) { "see Notifications" } }
                }
                // Screen readers hear state changes (not every refresh).
                p #announce.sr aria-live="polite" {}
                main #main { (main) }
                footer {
                    "The data behind this page: " a href=(ui.link(json)) { (json) }
                    " · read-only; changes go through the authenticated API"
                }
            }
        }
    }
}

/// A shell command in a copyable box.
pub fn curl(cmd: &str) -> Markup {
    html! { pre.curl { code { (cmd) } } }
}

/// `s` quoted for a POSIX shell.
pub fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
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
