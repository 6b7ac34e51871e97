//! Charts as SVG drawn on the server: line charts over interval numbers
//! with a linear or log₁₀ axis, shaded bands, reference lines and markers,
//! and sparklines. Colours come only from CSS classes (so themes and dark
//! mode restyle them); every text goes through maud, which escapes it.
//! Written here rather than with `plotters`, which needs a font backend for
//! text and bakes colours into the output.

use maud::{html, Markup};

/// Width and height of a chart's `viewBox`; CSS scales it.
const W: f64 = 640.0;
const H: f64 = 200.0;
/// Plot area margins: left (y labels), right, top, bottom (x labels).
const ML: f64 = 52.0;
const MR: f64 = 12.0;
const MT: f64 = 10.0;
const MB: f64 = 26.0;

/// The y axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Linear, from the data (and bands, lines) with some headroom.
    Linear,
    /// log₁₀ from 1 down to `floor` (p-values).
    Log {
        /// The lowest value drawn; smaller ones sit on it.
        floor: f64,
    },
}

/// One line.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// CSS class (`s-baseline`, `s-canary`, `s-p`).
    pub class: &'static str,
    /// `(x, y)`; None, NaN and ±∞ break the line.
    pub points: Vec<(f64, Option<f64>)>,
    /// Marker shape: `circle` or `square`.
    pub square: bool,
}

/// A chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Element id prefix (unique in the page).
    pub id: String,
    /// `<title>`: what it shows.
    pub title: String,
    /// `<desc>`: the numbers in one sentence.
    pub desc: String,
    /// The lines.
    pub series: Vec<Series>,
    /// The y axis.
    pub scale: Scale,
    /// Horizontal lines `(y, class, label)`.
    pub lines: Vec<(f64, &'static str, String)>,
    /// Shaded bands `(y0, y1, class)`; an open end is ±∞.
    pub bands: Vec<(f64, f64, &'static str)>,
    /// Vertical markers `(x, class, label)`.
    pub marks: Vec<(f64, &'static str, String)>,
    /// How y values are written (`%`, `s`, plain).
    pub unit: String,
    /// x values are Unix seconds (labelled `HH:MM:SS` UTC), not interval numbers.
    pub x_time: bool,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// "Nice" 1-2-5 ticks covering `[lo, hi]`, about `n` of them.
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut out = Vec::new();
    let mut t = first;
    while t <= hi + step * 1e-9 && out.len() < 50 {
        // -0 and float dust read badly on an axis.
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// A value as an axis or tooltip label in `unit`.
pub fn label(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    match unit {
        "%" => {
            let p = v * 100.0;
            if p.abs() >= 10.0 || p == 0.0 {
                format!("{p:.0}%")
            } else if p.abs() >= 1.0 {
                format!("{p:.1}%")
            } else {
                format!("{p:.2}%")
            }
        }
        "s" if v.abs() < 1.0 && v != 0.0 => format!("{:.0}ms", v * 1000.0),
        "s" => format!("{v:.2}s"),
        "p" if v < 1e-3 && v > 0.0 => format!("{v:.0e}"),
        _ if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) => format!("{v:.2e}"),
        _ => {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// The y range `[lo, hi]` a chart needs.
fn y_range(c: &Chart) -> (f64, f64) {
    if let Scale::Log { floor } = c.scale {
        return (floor.log10(), 0.0);
    }
    let mut vals: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| finite(p.1)))
        .collect();
    vals.extend(c.lines.iter().map(|l| l.0).filter(|x| x.is_finite()));
    vals.extend(
        c.bands
            .iter()
            .flat_map(|b| [b.0, b.1])
            .filter(|x| x.is_finite()),
    );
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = if hi - lo < 1e-12 {
        (lo - lo.abs().max(1e-3) * 0.5, hi + hi.abs().max(1e-3) * 0.5)
    } else {
        (lo, hi)
    };
    let pad = (hi - lo) * 0.08;
    // Non-negative data keeps 0 as its floor (rates, latencies).
    let lo = if lo >= 0.0 {
        (lo - pad).max(0.0)
    } else {
        lo - pad
    };
    (lo, hi + pad)
}

/// A chart as SVG markup (or "no data" text when nothing is finite).
pub fn chart(c: &Chart) -> Markup {
    let xs: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(c.marks.iter().map(|m| m.0))
        .collect();
    let has_data = c
        .series
        .iter()
        .any(|s| s.points.iter().any(|p| finite(p.1).is_some()));
    if !has_data {
        return html! { p.nodata { "no data for " (c.title) } };
    }
    let x_lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let x_hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (x_lo, x_hi) = if x_hi - x_lo < 1e-9 {
        (x_lo - 1.0, x_hi + 1.0)
    } else {
        (x_lo, x_hi)
    };
    let (y_lo, y_hi) = y_range(c);
    let log = matches!(c.scale, Scale::Log { .. });
    let ty = |y: f64| -> f64 {
        let v = if log {
            let floor = 10f64.powf(y_lo);
            y.max(floor).min(1.0).log10()
        } else {
            y
        };
        let f = (v - y_lo) / (y_hi - y_lo);
        MT + (1.0 - f.clamp(-0.05, 1.05)) * (H - MT - MB)
    };
    let tx = |x: f64| ML + (x - x_lo) / (x_hi - x_lo) * (W - ML - MR);
    let y_ticks: Vec<f64> = if log {
        (y_lo.ceil() as i32..=0).map(|e| 10f64.powi(e)).collect()
    } else {
        ticks(y_lo, y_hi, 5)
    };
    let x_ticks: Vec<f64> = if c.x_time {
        time_ticks(x_lo, x_hi)
    } else {
        ticks(x_lo, x_hi, 8)
            .into_iter()
            .filter(|x| x.fract() == 0.0)
            .collect()
    };
    let x_label = |x: f64| -> String {
        if c.x_time {
            let s = x.rem_euclid(86_400.0) as i64;
            format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        } else {
            format!("#{x}")
        }
    };
    // A marker's label sits on the side with room.
    let mark_x = |x: f64| -> (f64, &'static str) {
        if tx(x) > W / 2.0 {
            (tx(x) - 3.0, "end")
        } else {
            (tx(x) + 3.0, "start")
        }
    };
    let unit = if log { "p" } else { c.unit.as_str() };
    let title_id = format!("{}-t", c.id);
    let desc_id = format!("{}-d", c.id);
    html! {
        p.caption { (c.title) }
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby=(format!("{title_id} {desc_id}")) {
            title id=(title_id) { (c.title) }
            desc id=(desc_id) { (c.desc) }
            @for (y0, y1, class) in &c.bands {
                @let (a, b) = (ty(y1.min(if log { 1.0 } else { y_hi })), ty(y0.max(if log { 10f64.powf(y_lo) } else { y_lo })));
                @if b > a {
                    rect class=(format!("band {class}")) x=(fmt(ML)) y=(fmt(a)) width=(fmt(W - ML - MR)) height=(fmt(b - a)) {}
                }
            }
            @for t in &y_ticks {
                line.grid x1=(fmt(ML)) x2=(fmt(W - MR)) y1=(fmt(ty(*t))) y2=(fmt(ty(*t))) {}
                text.ylabel x=(fmt(ML - 4.0)) y=(fmt(ty(*t) + 4.0)) text-anchor="end" { (label(*t, unit)) }
            }
            @for t in &x_ticks {
                text.xlabel x=(fmt(tx(*t))) y=(fmt(H - 8.0)) text-anchor="middle" { (x_label(*t)) }
            }
            @for (y, class, text) in &c.lines {
                @if y.is_finite() {
                    line class=(format!("ref {class}")) x1=(fmt(ML)) x2=(fmt(W - MR)) y1=(fmt(ty(*y))) y2=(fmt(ty(*y))) {}
                    text class=(format!("reflabel {class}")) x=(fmt(W - MR - 2.0)) y=(fmt(ty(*y) - 3.0)) text-anchor="end" { (text) }
                }
            }
            @for (x, class, text) in &c.marks {
                line class=(format!("mark {class}")) x1=(fmt(tx(*x))) x2=(fmt(tx(*x))) y1=(fmt(MT)) y2=(fmt(H - MB)) {}
                @let (lx, anchor) = mark_x(*x);
                text class=(format!("marklabel {class}")) x=(fmt(lx)) y=(fmt(MT + 10.0)) text-anchor=(anchor) { (text) }
            }
            @for s in &c.series {
                @for seg in segments(&s.points) {
                    @if seg.len() > 1 {
                        path class=(format!("line {}", s.class)) d=(path_d(seg.iter().map(|(x, y)| (tx(*x), ty(*y))))) {}
                    }
                }
                // Past 60 points markers crowd the line and weigh the page:
                // the line alone, the numbers are in the table.
                @for (x, y) in s.points.iter().filter(|_| s.points.len() <= 60).filter_map(|(x, y)| finite(*y).map(|y| (*x, y))) {
                    @if s.square {
                        rect class=(format!("pt {}", s.class)) x=(fmt(tx(x) - 3.0)) y=(fmt(ty(y) - 3.0)) width="6" height="6" {
                            title { (s.label) " " (x_label(x)) ": " (label(y, unit)) }
                        }
                    } @else {
                        circle class=(format!("pt {}", s.class)) cx=(fmt(tx(x))) cy=(fmt(ty(y))) r="3" {
                            title { (s.label) " " (x_label(x)) ": " (label(y, unit)) }
                        }
                    }
                }
            }
        }
        @if c.series.len() > 1 {
            p.legend {
                @for s in &c.series {
                    span class=(format!("key {}", s.class)) { (if s.square { "■ " } else { "● " }) (s.label) }
                    " "
                }
            }
        }
    }
}

/// Time ticks (Unix seconds) at a round step, at most 7 of them.
fn time_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let step = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0, 86400.0,
    ]
    .into_iter()
    .find(|s| span / s <= 6.0)
    .unwrap_or(86400.0);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi && out.len() < 12 {
        out.push(t);
        t += step;
    }
    out
}

/// An SVG path through `points` in whole units with relative steps
/// (`M x y l dx dy ...`): the viewBox is 640 wide, so a unit is a pixel,
/// and relative steps keep long series small.
fn path_d(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut out = String::new();
    let mut last: Option<(i64, i64)> = None;
    for (x, y) in points {
        let (x, y) = (x.round() as i64, y.round() as i64);
        match last {
            None => out.push_str(&format!("M{x} {y}")),
            Some((lx, ly)) => out.push_str(&format!("l{} {}", x - lx, y - ly)),
        }
        last = Some((x, y));
    }
    out
}

/// Runs of consecutive finite points.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for (x, y) in points {
        match finite(*y) {
            Some(y) => out.last_mut().map_or((), |s| s.push((*x, y))),
            None => {
                if out.last().is_some_and(|s| !s.is_empty()) {
                    out.push(Vec::new());
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// A 120×24 sparkline of `values` (log₁₀ axis from 1 down, for p-values).
pub fn sparkline(values: &[Option<f64>], log: bool, class: &str) -> Markup {
    let (w, h) = (120.0, 24.0);
    let pts: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| finite(*v).map(|v| (i, v)))
        .map(|(i, v)| (i, if log { v.clamp(1e-12, 1.0).log10() } else { v }))
        .collect();
    if pts.is_empty() {
        return html! { span.nodata { "—" } };
    }
    let lo = if log {
        pts.iter().map(|p| p.1).fold(0.0, f64::min).min(-2.0)
    } else {
        pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min)
    };
    let hi = if log {
        0.0
    } else {
        pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max)
    };
    let span = if hi - lo < 1e-12 { 1.0 } else { hi - lo };
    let n = values.len().max(2) - 1;
    let line: Vec<String> = pts
        .iter()
        .map(|(i, v)| {
            format!(
                "{},{}",
                fmt(*i as f64 / n as f64 * (w - 2.0) + 1.0),
                fmt(h - 1.0 - (v - lo) / span * (h - 2.0))
            )
        })
        .collect();
    html! {
        svg.spark viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(format!("{} values", pts.len())) {
            polyline class=(format!("line {class}")) points=(line.join(" ")) {}
        }
    }
}

/// Kayenta's score bar: one block per group, its width the group's
/// weight, its class (ok, bad, muted) and text saying how it stands.
pub fn blocks(items: &[(String, f64, &'static str)]) -> Markup {
    let (w, h) = (640.0, 28.0);
    let total: f64 = items.iter().map(|i| i.1.max(0.0)).sum();
    if total <= 0.0 {
        return html! {};
    }
    // Each block starts where the ones before it end.
    let placed: Vec<(f64, f64, &str, &str)> = items
        .iter()
        .scan(0.0, |x, (text, weight, class)| {
            let bw = weight.max(0.0) / total * w;
            let at = *x;
            *x += bw;
            Some((at, bw, text.as_str(), *class))
        })
        .collect();
    html! {
        svg.blocks viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(items.iter().map(|i| i.0.clone()).collect::<Vec<_>>().join("; ")) {
            @for (x, bw, text, class) in placed {
                rect class=(class) x=(fmt(x + 1.0)) y="1" width=(fmt((bw - 2.0).max(1.0))) height=(fmt(h - 2.0)) rx="3" { title { (text) } }
                text x=(fmt(x + 6.0)) y="18" { (text) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart_of(points: Vec<(f64, Option<f64>)>, scale: Scale) -> String {
        chart(&Chart {
            id: "c".into(),
            title: "errors <b>".into(),
            desc: "d".into(),
            series: vec![Series {
                label: "canary".into(),
                class: "s-canary",
                points,
                square: true,
            }],
            scale,
            lines: vec![(0.025, "ref-fail", "abort below 0.025".into())],
            bands: vec![],
            marks: vec![(3.0, "ph-failed", "crossed at #3".into())],
            unit: "%".into(),
            x_time: false,
        })
        .into_string()
    }

    #[test]
    fn ticks_are_nice() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(ticks(0.0, 100.0, 4), vec![0.0, 50.0, 100.0]);
        assert_eq!(ticks(3.0, 3.0, 5), vec![3.0]);
    }

    #[test]
    fn gaps_break_lines_and_text_is_escaped() {
        let s = chart_of(
            vec![
                (1.0, Some(0.1)),
                (2.0, Some(0.2)),
                (3.0, None),
                (4.0, Some(f64::NAN)),
                (5.0, Some(0.3)),
                (6.0, Some(0.4)),
            ],
            Scale::Linear,
        );
        assert_eq!(s.matches("<path class=\"line").count(), 2, "{s}");
        assert_eq!(s.matches("<rect class=\"pt s-canary\"").count(), 4);
        assert!(s.contains("errors &lt;b&gt;"));
        assert!(s.contains("crossed at #3"));
    }

    #[test]
    fn one_point_is_a_marker_and_nothing_is_no_data() {
        let s = chart_of(vec![(1.0, Some(0.5))], Scale::Linear);
        assert_eq!(s.matches("<path class=\"line").count(), 0);
        assert_eq!(s.matches("<rect class=\"pt").count(), 1);
        let s = chart_of(vec![(1.0, None), (2.0, Some(f64::INFINITY))], Scale::Linear);
        assert!(s.contains("no data"), "{s}");
    }

    #[test]
    fn log_axis_has_decades_and_a_floor() {
        let s = chart_of(
            vec![(1.0, Some(1.0)), (2.0, Some(0.2)), (3.0, Some(1e-30))],
            Scale::Log { floor: 1e-4 },
        );
        for d in ["1e-4", "1e-3", "0.01", "0.1", ">1<"] {
            assert!(s.contains(d), "{d} in {s}");
        }
        assert!(s.contains("abort below 0.025"));
    }

    #[test]
    fn paths_step_relatively_in_whole_units() {
        assert_eq!(
            path_d([(1.2, 2.6), (4.0, 1.0), (4.4, 5.0)].into_iter()),
            "M1 3l3 -2l0 4"
        );
    }

    #[test]
    fn time_ticks_are_round() {
        assert_eq!(time_ticks(0.0, 120.0), vec![0.0, 30.0, 60.0, 90.0, 120.0]);
        assert_eq!(
            time_ticks(100.0, 3700.0),
            vec![600.0, 1200.0, 1800.0, 2400.0, 3000.0, 3600.0]
        );
    }

    #[test]
    fn labels_read_like_the_unit() {
        assert_eq!(label(0.0381, "%"), "3.8%");
        assert_eq!(label(0.00344, "%"), "0.34%");
        assert_eq!(label(0.256, "s"), "256ms");
        assert_eq!(label(f64::NAN, "%"), "—");
        assert_eq!(label(0.5, ""), "0.5");
    }
}
