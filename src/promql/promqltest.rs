//! Runner for Prometheus's promqltest files (`promql/promqltest/test.go`):
//! `load`, `clear`, `eval instant at`, `eval range from .. to .. step`,
//! `eval_fail`/`eval_warn`/`eval_info`/`eval_ordered`, `expect ...` lines.
//!
//! Each test file starts at Unix time 0 with an empty store. Cases that
//! need native histograms (`{{...}}` values, `load_with_nhcb`) are skipped
//! and counted with the reason. Annotations carry no source positions in
//! augur, so an expected message's trailing `(line:col)` is ignored.

use std::collections::HashSet;
use std::path::Path;

use promql_parser::parser::Expr;
use regex::Regex;

use super::{Engine, EvalError, QueryResult, Value};
use crate::duration;
use crate::labels::{Labels, METRIC_NAME};
use crate::sample::{stale_nan, SeriesData};

/// One value in series notation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeqValue {
    /// a float (possibly NaN/Inf)
    Value(f64),
    /// `_`: no sample
    Omitted,
    /// `stale`: a staleness marker
    Stale,
    /// `{{...}}`: a native histogram (not supported)
    Histogram,
}

/// Outcome of one file.
#[derive(Debug, Default, Clone)]
pub struct FileReport {
    /// evals that matched
    pub passed: usize,
    /// `(line, message)` of evals that did not
    pub failed: Vec<(usize, String)>,
    /// `(line, reason)` of evals not run
    pub skipped: Vec<(usize, String)>,
}

#[derive(Debug, Default)]
struct Expect {
    fail: Option<Matcher>,
    warn: Vec<Matcher>,
    no_warn: bool,
    info: Vec<Matcher>,
    no_info: bool,
    ordered: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
}

#[derive(Debug)]
enum Matcher {
    Any,
    Msg(String),
    Regex(Regex),
}

/// Strips a trailing ` (1:23)` position, which augur does not produce.
fn strip_position(s: &str) -> &str {
    let t = s.trim_end();
    if let Some(open) = t.rfind(" (") {
        let inner = &t[open + 2..];
        if let Some(inner) = inner.strip_suffix(')') {
            if inner.split(':').count() == 2
                && inner
                    .split(':')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                return &t[..open];
            }
        }
    }
    t
}

impl Matcher {
    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Msg(m) => strip_position(m) == s,
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

struct EvalCase {
    line: usize,
    expr: String,
    instant: Option<i64>,
    range: Option<(i64, i64, i64)>,
    fail: bool,
    warn: bool,
    info: bool,
    expect: Expect,
    scalar: Option<SeqValue>,
    series: Vec<(Labels, Vec<SeqValue>, usize)>,
    needs_histograms: bool,
}

fn parse_dur_ms(s: &str) -> Result<i64, String> {
    duration::parse(s.trim())
        .map(|d| d.as_millis() as i64)
        .map_err(|e| e.to_string())
}

fn parse_number(s: &str) -> Option<f64> {
    crate::expfmt::parse_go_float(s.trim())
}

/// Expands series notation values: `1 2 _ stale 1+2x3 5x2 _x3 {{...}}`.
pub fn parse_values(s: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            let mut end = rest.find("}}").ok_or("unterminated {{")? + 2;
            // {{a}}+{{b}}xN and {{a}}-{{b}}xN step histograms.
            if rest[end..].starts_with("+{{") || rest[end..].starts_with("-{{") {
                end += rest[end..].find("}}").ok_or("unterminated {{")? + 2;
            }
            let after = &rest[end..];
            // {{...}}xN repeats a histogram.
            let (times, after) = match after.strip_prefix('x') {
                Some(a) => {
                    let n_end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                    (a[..n_end].parse::<usize>().unwrap_or(0), &a[n_end..])
                }
                None => (0, after),
            };
            for _ in 0..=times {
                out.push(SeqValue::Histogram);
            }
            rest = after.trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..end];
        rest = rest[end..].trim_start();
        if tok == "_" {
            out.push(SeqValue::Omitted);
            continue;
        }
        if tok == "stale" {
            out.push(SeqValue::Stale);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad repetition {tok:?}"))?;
            out.extend(std::iter::repeat_n(SeqValue::Omitted, n));
            continue;
        }
        if let Some(v) = parse_number(tok) {
            out.push(SeqValue::Value(v));
            continue;
        }
        // a+bxn, a-bxn, axn
        let Some(xpos) = tok.rfind('x') else {
            return Err(format!("bad value {tok:?}"));
        };
        let times: usize = tok[xpos + 1..]
            .parse()
            .map_err(|_| format!("bad repetition in {tok:?}"))?;
        let head = &tok[..xpos];
        // Find the operator splitting start and step (not a leading sign
        // or an exponent sign).
        let bytes = head.as_bytes();
        let mut split = None;
        for i in (1..bytes.len()).rev() {
            if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        match split {
            None => {
                let v = parse_number(head).ok_or_else(|| format!("bad value {tok:?}"))?;
                out.extend(std::iter::repeat_n(SeqValue::Value(v), times + 1));
            }
            Some(i) => {
                let mut start =
                    parse_number(&head[..i]).ok_or_else(|| format!("bad value {tok:?}"))?;
                let step = parse_number(&head[i..]).ok_or_else(|| format!("bad step {tok:?}"))?;
                for _ in 0..=times {
                    out.push(SeqValue::Value(start));
                    start += step;
                }
            }
        }
    }
    Ok(out)
}

/// Splits `metric{a="b"} values` into labels and the values text.
pub fn parse_series_desc(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut depth = 0;
    let mut end = line.len();
    for (i, c) in line.char_indices() {
        if in_quotes {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = i + 1;
                    break;
                }
            }
            c if c.is_whitespace() && depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let (sel, rest) = line.split_at(end);
    Ok((selector_labels(sel)?, rest))
}

fn selector_labels(sel: &str) -> Result<Labels, String> {
    let sel = sel.trim();
    if sel == "{}" {
        return Ok(Labels::default());
    }
    let expr = super::parse(sel).map_err(|e| format!("bad series {sel:?}: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("bad series {sel:?}"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = vs.name {
        pairs.push((METRIC_NAME.to_string(), n));
    }
    for m in vs.matchers.matchers {
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

fn parse_expect(line: &str) -> Result<(String, Matcher), String> {
    let rest = line.trim().strip_prefix("expect").unwrap_or("").trim();
    let (kind, tail) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let m = if tail.is_empty() {
        Matcher::Any
    } else if let Some(m) = tail.strip_prefix("msg:") {
        Matcher::Msg(m.trim().to_string())
    } else if let Some(r) = tail.strip_prefix("regex:") {
        // Drop a trailing position pattern such as ` \(1:21\)`: augur's
        // annotations carry no positions.
        let r = r.trim();
        let pos = Regex::new(r"\s*\\\([^()]*:[^()]*\\\)\$?$").map_err(|e| e.to_string())?;
        let r = pos.replace(r, "");
        Matcher::Regex(Regex::new(&r).map_err(|e| format!("bad regex: {e}"))?)
    } else {
        return Err(format!("invalid expect statement {line:?}"));
    };
    Ok((kind.to_string(), m))
}

/// Go's strconv.Unquote for "..." and `...`.
fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
        return Some(inner.to_string());
    }
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// Runs every command of a promqltest file.
pub fn run_file(path: &Path) -> Result<FileReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    run_text(&text)
}

/// Runs promqltest text.
pub fn run_text(text: &str) -> Result<FileReport, String> {
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect();
    let mut report = FileReport::default();
    let mut store = MemSource::default();
    let mut histogram_series: Vec<Labels> = Vec::new();
    let engine = Engine::default();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let cmd = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if cmd == "clear" {
            store = MemSource::default();
            histogram_series.clear();
            i += 1;
        } else if cmd.starts_with("load") {
            let nhcb = cmd == "load_with_nhcb";
            let step = parse_dur_ms(l.split_whitespace().nth(1).ok_or("load needs a step")?)
                .map_err(|e| format!("line {}: {e}", i + 1))?;
            i += 1;
            // A series defined twice in one block keeps the last definition.
            let mut defs: Vec<(Labels, Vec<SeqValue>)> = Vec::new();
            while i < lines.len() && !lines[i].is_empty() {
                let (labels, vals) =
                    parse_series_desc(&lines[i]).map_err(|e| format!("line {}: {e}", i + 1))?;
                let vals = parse_values(vals).map_err(|e| format!("line {}: {e}", i + 1))?;
                defs.retain(|(l, _)| *l != labels);
                defs.push((labels, vals));
                i += 1;
            }
            for (labels, vals) in defs {
                if vals.contains(&SeqValue::Histogram) {
                    histogram_series.push(labels.clone());
                }
                if nhcb {
                    // The converted native histogram is named after the
                    // classic family, without `le`.
                    if let Some(name) = labels.get(METRIC_NAME) {
                        for suffix in ["_bucket", "_count", "_sum"] {
                            if let Some(base) = name.strip_suffix(suffix) {
                                let mut l = labels.drop(&["le"], false);
                                l.set(METRIC_NAME, base);
                                histogram_series.push(l);
                            }
                        }
                    }
                }
                for (k, v) in vals.iter().enumerate() {
                    let t = k as i64 * step;
                    match v {
                        SeqValue::Value(f) => store.append(&labels, t, *f),
                        SeqValue::Stale => store.append(&labels, t, stale_nan()),
                        _ => continue,
                    };
                }
            }
        } else if cmd.starts_with("eval") {
            let (case, next) = parse_eval(&lines, i)?;
            i = next;
            run_case(&engine, &store, &histogram_series, case, &mut report);
        } else {
            return Err(format!("line {}: invalid command {l:?}", i + 1));
        }
    }
    Ok(report)
}

fn parse_eval(lines: &[String], start: usize) -> Result<(EvalCase, usize), String> {
    let l = &lines[start];
    let err = |m: String| format!("line {}: {m}", start + 1);
    let mut words = l.splitn(2, char::is_whitespace);
    let head = words.next().unwrap_or("");
    let rest = words.next().unwrap_or("").trim();
    let modifier = head
        .strip_prefix("eval")
        .unwrap_or("")
        .trim_start_matches('_');
    let mut case = EvalCase {
        line: start + 1,
        expr: String::new(),
        instant: None,
        range: None,
        fail: modifier == "fail",
        warn: modifier == "warn",
        info: modifier == "info",
        expect: Expect {
            ordered: modifier == "ordered",
            ..Expect::default()
        },
        scalar: None,
        series: Vec::new(),
        needs_histograms: false,
    };
    if let Some(r) = rest.strip_prefix("instant") {
        let r = r.trim();
        let r = r
            .strip_prefix("at")
            .ok_or_else(|| err("expected 'at'".into()))?
            .trim();
        let (at, expr) = r
            .split_once(char::is_whitespace)
            .ok_or_else(|| err("missing expression".into()))?;
        case.instant = Some(parse_dur_ms(at).map_err(&err)?);
        case.expr = expr.trim().to_string();
    } else if let Some(r) = rest.strip_prefix("range") {
        let re = Regex::new(r"^\s*from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.+)$")
            .map_err(|e| e.to_string())?;
        let c = re
            .captures(r)
            .ok_or_else(|| err("invalid range eval".into()))?;
        case.range = Some((
            parse_dur_ms(&c[1]).map_err(&err)?,
            parse_dur_ms(&c[2]).map_err(&err)?,
            parse_dur_ms(&c[3]).map_err(&err)?,
        ));
        case.expr = c[4].trim().to_string();
    } else {
        return Err(err(format!("invalid evaluation command {l:?}")));
    }
    let range_re =
        Regex::new(r"^\s*from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)$").map_err(|e| e.to_string())?;
    let mut i = start + 1;
    let mut pos = 0;
    while i < lines.len() && !lines[i].is_empty() {
        let d = &lines[i];
        i += 1;
        if case.fail
            && (d.starts_with("expected_fail_message") || d.starts_with("expected_fail_regexp"))
        {
            let (kw, tail) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
            case.expect.fail = Some(if kw == "expected_fail_message" {
                Matcher::Msg(tail.trim().to_string())
            } else {
                Matcher::Regex(Regex::new(tail.trim()).map_err(|e| err(e.to_string()))?)
            });
            continue;
        }
        if let Some(r) = d.strip_prefix("expect range vector") {
            let c = range_re
                .captures(r)
                .ok_or_else(|| err("invalid range vector".into()))?;
            case.expect.range_vector = Some((
                parse_dur_ms(&c[1]).map_err(&err)?,
                parse_dur_ms(&c[2]).map_err(&err)?,
                parse_dur_ms(&c[3]).map_err(&err)?,
            ));
            continue;
        }
        if let Some(s) = d.strip_prefix("expect string") {
            case.expect.string = Some(unquote(s).ok_or_else(|| err("bad expected string".into()))?);
            continue;
        }
        if d.split(' ').next() == Some("expect") {
            let (kind, m) = parse_expect(d).map_err(&err)?;
            match kind.as_str() {
                "fail" => {
                    case.fail = true;
                    case.expect.fail = Some(m);
                }
                "warn" => case.expect.warn.push(m),
                "no_warn" => case.expect.no_warn = true,
                "info" => case.expect.info.push(m),
                "no_info" => case.expect.no_info = true,
                "ordered" => case.expect.ordered = true,
                other => return Err(err(format!("invalid expect type {other}"))),
            }
            continue;
        }
        if d.contains("{{") {
            case.needs_histograms = true;
        }
        pos += 1;
        if let Some(v) = parse_number(d) {
            case.scalar = Some(SeqValue::Value(v));
            continue;
        }
        let (labels, vals) = parse_series_desc(d).map_err(&err)?;
        let vals = parse_values(vals).map_err(&err)?;
        case.series.push((labels, vals, pos));
    }
    Ok((case, i))
}

fn selectors_hit_histograms(e: &Expr, hist: &[Labels]) -> bool {
    let mut hit = false;
    walk(e, &mut |vs| {
        if let Ok(ms) = super::eval::selector_matchers(vs) {
            if hist
                .iter()
                .any(|l| ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
            {
                hit = true;
            }
        }
    });
    hit
}

fn walk(e: &Expr, f: &mut dyn FnMut(&promql_parser::parser::VectorSelector)) {
    match e {
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&ms.vs),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::Aggregate(a) => {
            walk(&a.expr, f);
            if let Some(p) = &a.param {
                walk(p, f);
            }
        }
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, f);
            }
        }
        _ => {}
    }
}

/// The series of a test file, in memory: the runner needs no store.
#[derive(Default)]
struct MemSource {
    series: std::collections::BTreeMap<Labels, std::collections::BTreeMap<i64, f64>>,
}

impl MemSource {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) {
        self.series.entry(labels.clone()).or_default().insert(t, v);
    }
}

impl super::SeriesSource for MemSource {
    fn select(
        &self,
        matchers: &[crate::labels::Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, super::SourceError> {
        if mint > maxt {
            return Ok(Vec::new());
        }
        Ok(self
            .series
            .iter()
            .filter(|(l, _)| {
                matchers
                    .iter()
                    .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
            })
            .filter_map(|(l, samples)| {
                let samples: Vec<(i64, f64)> =
                    samples.range(mint..=maxt).map(|(t, v)| (*t, *v)).collect();
                (!samples.is_empty()).then(|| SeriesData {
                    labels: l.clone(),
                    samples,
                })
            })
            .collect())
    }
}

fn run_case(
    engine: &Engine,
    store: &MemSource,
    hist: &[Labels],
    case: EvalCase,
    report: &mut FileReport,
) {
    let parsed = super::parse(&case.expr);
    if let Ok(e) = &parsed {
        if case.needs_histograms || selectors_hit_histograms(e, hist) {
            report
                .skipped
                .push((case.line, "needs native histograms".to_string()));
            return;
        }
    }
    match check_case(engine, store, &case, parsed) {
        Ok(()) => report.passed += 1,
        Err(m) => report
            .failed
            .push((case.line, format!("{}: {m}", case.expr))),
    }
}

fn check_case(
    engine: &Engine,
    store: &MemSource,
    case: &EvalCase,
    parsed: Result<Expr, EvalError>,
) -> Result<(), String> {
    let result: Result<QueryResult, EvalError> =
        parsed.and_then(
            |e| match (case.instant, case.range, case.expect.range_vector) {
                (Some(_), _, Some((_, end, _))) => engine.instant(store, &e, end),
                (Some(t), _, None) => engine.instant(store, &e, t),
                (None, Some((s, en, st)), _) => engine.range(store, &e, s, en, st),
                _ => Err(EvalError::Exec("no evaluation time".into())),
            },
        );
    let res = match result {
        Err(e) => {
            if !case.fail {
                return Err(format!("unexpected error: {e}"));
            }
            if let Some(m) = &case.expect.fail {
                if !m.matches(&e.to_string()) {
                    return Err(format!("error {:?} does not match {m:?}", e.to_string()));
                }
            }
            return Ok(());
        }
        Ok(r) => r,
    };
    if case.fail {
        return Err("expected an error, got none".into());
    }
    check_annotations(case, &res)?;
    compare(case, &res.value)
}

fn check_annotations(case: &EvalCase, res: &QueryResult) -> Result<(), String> {
    let warns: Vec<String> = res
        .annotations
        .iter()
        .filter(|a| a.kind == super::AnnotationKind::Warning)
        .map(|a| format!("PromQL warning: {}", a.message))
        .collect();
    let infos: Vec<String> = res
        .annotations
        .iter()
        .filter(|a| a.kind == super::AnnotationKind::Info)
        .map(|a| format!("PromQL info: {}", a.message))
        .collect();
    if case.warn && warns.is_empty() {
        return Err("expected warnings, got none".into());
    }
    if case.info && infos.is_empty() {
        return Err("expected info annotations, got none".into());
    }
    for (expected, actual, what) in [
        (&case.expect.warn, &warns, "warn"),
        (&case.expect.info, &infos, "info"),
    ] {
        if expected.is_empty() {
            continue;
        }
        if actual.is_empty() {
            return Err(format!("expected {what} annotations but none were found"));
        }
        for e in expected.iter() {
            if !actual.iter().any(|a| e.matches(a)) {
                return Err(format!(
                    "expected {what} annotation {e:?}, found {actual:?}"
                ));
            }
        }
        for a in actual.iter() {
            if !expected.iter().any(|e| e.matches(a)) {
                return Err(format!("unexpected {what} annotation {a:?}"));
            }
        }
    }
    if case.expect.no_warn && !warns.is_empty() {
        return Err(format!("unexpected warnings: {warns:?}"));
    }
    if case.expect.no_info && !infos.is_empty() {
        return Err(format!("unexpected infos: {infos:?}"));
    }
    Ok(())
}

/// `util/almost.Equal` with the promqltest epsilon.
fn almost_equal(a: f64, b: f64) -> bool {
    super::almost_equal(a, b, 1e-6)
}

fn compare(case: &EvalCase, v: &Value) -> Result<(), String> {
    match v {
        Value::String(s) => match &case.expect.string {
            Some(e) if e == s => Ok(()),
            e => Err(format!("expected string {e:?}, got {s:?}")),
        },
        Value::Scalar(f) => match case.scalar {
            Some(SeqValue::Value(e)) if almost_equal(e, *f) => Ok(()),
            e => Err(format!("expected scalar {e:?}, got {f}")),
        },
        Value::Vector(vec) => {
            if case.scalar.is_some() {
                return Err("expected scalar, got vector".into());
            }
            let mut seen = HashSet::new();
            for (idx, s) in vec.iter().enumerate() {
                let Some((_, vals, pos)) = case.series.iter().find(|(l, _, _)| *l == s.labels)
                else {
                    return Err(format!(
                        "unexpected metric {} in result, has value {}",
                        s.labels, s.v
                    ));
                };
                if case.expect.ordered && *pos != idx + 1 {
                    return Err(format!(
                        "expected {} at position {pos} but was at {}",
                        s.labels,
                        idx + 1
                    ));
                }
                match vals.first() {
                    Some(SeqValue::Value(e)) if almost_equal(*e, s.v) => {}
                    e => return Err(format!("expected {e:?} for {} but got {}", s.labels, s.v)),
                }
                seen.insert(s.labels.clone());
            }
            for (l, _, _) in &case.series {
                if !seen.contains(l) {
                    return Err(format!("expected metric {l} not found"));
                }
            }
            Ok(())
        }
        Value::Matrix(m) => {
            if case.expect.ordered {
                return Err("expected ordered result, but query returned a matrix".into());
            }
            if case.scalar.is_some() {
                return Err("expected scalar, got matrix".into());
            }
            let (start, end, step) = match (case.range, case.expect.range_vector) {
                (_, Some(r)) => r,
                (Some(r), None) => r,
                (None, None) => {
                    // A range selector in an instant query without
                    // `expect range vector`: compare the points as listed.
                    (0, i64::MAX, 0)
                }
            };
            let mut seen = HashSet::new();
            for s in m {
                let Some((_, vals, _)) = case.series.iter().find(|(l, _, _)| *l == s.labels) else {
                    return Err(format!("unexpected metric {} in result", s.labels));
                };
                let expected: Vec<(i64, f64)> = vals
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        SeqValue::Value(f) => Some((start + i as i64 * step, *f)),
                        SeqValue::Stale => Some((start + i as i64 * step, stale_nan())),
                        _ => None,
                    })
                    .filter(|(t, _)| *t <= end)
                    .collect();
                if expected.len() != s.points.len() {
                    return Err(format!(
                        "expected {} points for {}, got {:?}",
                        expected.len(),
                        s.labels,
                        s.points
                    ));
                }
                for ((et, ev), (at, av)) in expected.iter().zip(s.points.iter()) {
                    if step != 0 && et != at {
                        return Err(format!(
                            "expected timestamp {et} for {}, got {at}",
                            s.labels
                        ));
                    }
                    if !almost_equal(*ev, *av) {
                        return Err(format!("expected {ev} at {at} for {}, got {av}", s.labels));
                    }
                }
                seen.insert(s.labels.clone());
            }
            for (l, _, _) in &case.series {
                if !seen.contains(l) {
                    return Err(format!("expected metric {l} not found"));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_notation_expands_like_prometheus() {
        let v = parse_values("-2+4x3 1 _x2 stale 5x1 1-2x2").unwrap();
        let f = |x: f64| SeqValue::Value(x);
        assert_eq!(
            v,
            vec![
                f(-2.0),
                f(2.0),
                f(6.0),
                f(10.0),
                f(1.0),
                SeqValue::Omitted,
                SeqValue::Omitted,
                SeqValue::Stale,
                f(5.0),
                f(5.0),
                f(1.0),
                f(-1.0),
                f(-3.0)
            ]
        );
        assert_eq!(parse_values("1e3 Inf -Inf").unwrap()[0], f(1000.0));
        assert_eq!(parse_values("{{schema:0 sum:1}}x2 3").unwrap().len(), 4);
    }

    #[test]
    fn series_descriptions() {
        let (l, rest) = parse_series_desc(r#"m{a="x y}",b="2"} 1 2"#).unwrap();
        assert_eq!(l.get("a"), Some("x y}"));
        assert_eq!(rest.trim(), "1 2");
        let (l, _) = parse_series_desc("{} 3").unwrap();
        assert!(l.is_empty());
    }

    #[test]
    fn a_small_file_runs() {
        let r = run_text(
            "load 1m\n  http_requests_total{code=\"200\"} 0+60x10\n  http_requests_total{code=\"500\"} 0+6x10\n\neval instant at 10m sum(rate(http_requests_total{code=\"500\"}[5m])) / sum(rate(http_requests_total[5m]))\n  {} 0.09090909090909091\n\neval instant at 10m nope\n  {} 1\n",
        )
        .unwrap();
        assert_eq!(r.passed, 1, "{:?}", r.failed);
        assert_eq!(r.failed.len(), 1);
    }
}
