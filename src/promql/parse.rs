//! Parsing PromQL safely: the one door every query passes through (the
//! query API, `match[]` selectors, rule files, analysis templates, Kayenta
//! queries, `augur check`), with limits that keep a hostile or careless
//! query from exhausting the stack or the CPU, and Prometheus-style error
//! positions found in O(n log n) parses instead of one per prefix.
//!
//! Prometheus has no such limits because Go stacks grow; augur evaluates
//! recursively on fixed stacks, so it refuses, before evaluation, what it
//! could not evaluate safely. These are deliberate deviations:
//! - a query is at most [`MAX_QUERY_BYTES`] long;
//! - the expression tree is at most [`MAX_DEPTH`] levels deep, counting
//!   brackets and the operators of each bracket level (a chain
//!   `a + b + c ...` of 300 terms nests 300 levels deep);
//! - durations (ranges, offsets, subquery steps) are at most 292 years, the
//!   range of Prometheus's own `time.Duration`, and `@` times are within
//!   [`MAX_TIME_MS`] of 1970.

use std::time::{Duration, UNIX_EPOCH};

use promql_parser::parser::{self, Expr, NumberLiteral, Offset};

use super::EvalError;

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 128 * 1024;
/// Deepest bracket nesting and expression tree accepted.
pub const MAX_DEPTH: usize = 200;
/// Longest duration in a query: Go's `time.Duration` (int64 nanoseconds),
/// which bounds Prometheus's own durations.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);
/// Timestamps a query may evaluate at or refer to with `@`, in ms either
/// side of 1970 (about 146 million years): far beyond any data, and small
/// enough that offsets and ranges added to them cannot overflow.
pub const MAX_TIME_MS: i64 = 1 << 62;

/// Parses a PromQL expression within augur's limits. Errors name the line
/// and column where the query stops making sense, like Prometheus's
/// `1:5: parse error: unexpected identifier "bar"`.
pub fn parse(query: &str) -> Result<Expr, EvalError> {
    if let Err((at, msg)) = prescan(query).and_then(|()| check_numeric_durations(query)) {
        return Err(EvalError::Parse(positioned(query, at, &msg)));
    }
    match guarded_parse(query) {
        Ok(expr) => match validate(&expr) {
            Ok(()) => Ok(expr),
            Err(msg) => {
                dismantle(expr);
                Err(EvalError::Parse(format!("1:1: parse error: {msg}")))
            }
        },
        Err(msg) => Err(EvalError::Parse(locate(query, &msg))),
    }
}

/// One linear pass over the text before the parser sees it: the length,
/// and an upper bound of the expression tree's depth (brackets plus the
/// operators at each bracket level, since `a + b + c` nests to the left).
/// promql-parser recurses along that depth while building the tree (and
/// does quadratic work on long operator chains), so the bound must hold
/// before it runs.
fn prescan(q: &str) -> Result<(), (usize, String)> {
    if q.len() > MAX_QUERY_BYTES {
        return Err((
            0,
            format!(
                "query is {} bytes long; augur accepts at most {MAX_QUERY_BYTES}",
                q.len()
            ),
        ));
    }
    struct Frame {
        brace: bool,
        ops: usize,
        child: usize,
    }
    let too_deep = || {
        format!(
            "expression nests deeper than {MAX_DEPTH} levels (brackets and operators); split it into recording rules"
        )
    };
    let fold = |stack: &mut Vec<Frame>| {
        if stack.len() > 1 {
            if let Some(f) = stack.pop() {
                let bound = f.ops + f.child + 1;
                if let Some(top) = stack.last_mut() {
                    top.child = top.child.max(bound);
                }
            }
        }
    };
    let b = q.as_bytes();
    let mut stack = vec![Frame {
        brace: false,
        ops: 0,
        child: 0,
    }];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let in_brace = stack.last().is_some_and(|f| f.brace);
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                stack.push(Frame {
                    brace: c == b'{',
                    ops: 0,
                    child: 0,
                });
                if stack.len() > MAX_DEPTH {
                    return Err((i, too_deep()));
                }
            }
            b')' | b']' | b'}' => fold(&mut stack),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'!' | b'=' | b'@'
                if !in_brace =>
            {
                if matches!(c, b'<' | b'>' | b'!' | b'=')
                    && matches!(b.get(i + 1), Some(b'=' | b'~'))
                {
                    i += 1;
                }
                if let Some(top) = stack.last_mut() {
                    top.ops += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i + 1 < b.len()
                    && (b[i + 1].is_ascii_alphanumeric() || b[i + 1] == b'_' || b[i + 1] == b':')
                {
                    i += 1;
                }
                let w = &q[start..=i];
                if !in_brace && WORD_OPERATORS.contains(&w) {
                    if let Some(top) = stack.last_mut() {
                        top.ops += 1;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    while stack.len() > 1 {
        fold(&mut stack);
    }
    let bound = stack.first().map_or(0, |f| f.ops + f.child + 1);
    if bound > MAX_DEPTH {
        return Err((0, too_deep()));
    }
    Ok(())
}

/// promql-parser, with a panic inside it (a bug we have not seen yet)
/// turned into a parse error instead of unwinding into the caller.
fn guarded_parse(q: &str) -> Result<Expr, String> {
    std::panic::catch_unwind(|| parser::parse(q)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "internal parser error".into());
        Err(format!("cannot parse this query: {why}"))
    })
}

/// A number used as a duration (`x[300]`, `offset 1e3`) becomes a
/// `Duration` inside promql-parser, which panics on a negative, infinite
/// or huge value: those are refused here, with Prometheus's words.
fn check_numeric_durations(q: &str) -> Result<(), (usize, String)> {
    let toks = tokens(q);
    let text = |i: usize| &q[toks[i].start..toks[i].end];
    for (i, t) in toks.iter().enumerate() {
        if t.kind != Kind::Number {
            continue;
        }
        let prev = i.checked_sub(1).map(text);
        let prev2 = i.checked_sub(2).map(text);
        let duration = t.in_brackets
            || prev == Some("offset")
            || (matches!(prev, Some("-" | "+")) && prev2 == Some("offset"));
        if !duration {
            continue;
        }
        if let Some(v) = number_value(text(i)) {
            if !(v.is_finite() && (0.0..=MAX_DURATION.as_secs_f64()).contains(&v)) {
                return Err((t.start, format!("duration out of range: {}", text(i))));
            }
        }
    }
    Ok(())
}

/// A number literal's value as PromQL reads it (hex `0x..`, octal `0..`,
/// decimal and exponent forms, `Inf`, `NaN`); None when it is no number.
/// (promql-parser's own `parse_str_radix` panics on some malformed text,
/// found by fuzzing, so it is not called on unchecked input.)
fn number_value(text: &str) -> Option<f64> {
    let t = text.to_ascii_lowercase();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    if let Some(hex) = body.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(|v| sign * v as f64);
    }
    if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return i64::from_str_radix(&body[1..], 8)
            .ok()
            .map(|v| sign * v as f64);
    }
    t.parse().ok()
}

/// Child expressions of a node.
fn children(e: &Expr) -> impl Iterator<Item = &Expr> {
    let (a, b): (Option<&Expr>, Option<&Expr>) = match e {
        Expr::Aggregate(a) => (Some(&a.expr), a.param.as_deref()),
        Expr::Unary(u) => (Some(&u.expr), None),
        Expr::Binary(x) => (Some(&x.lhs), Some(&x.rhs)),
        Expr::Paren(p) => (Some(&p.expr), None),
        Expr::Subquery(s) => (Some(&s.expr), None),
        _ => (None, None),
    };
    let args: &[Box<Expr>] = match e {
        Expr::Call(c) => &c.args.args,
        _ => &[],
    };
    a.into_iter()
        .chain(b)
        .chain(args.iter().map(|x| x.as_ref()))
}

/// Tree depth, durations and `@` times, walked with an explicit stack so
/// that a tree too deep to recurse over is still measured safely.
fn validate(root: &Expr) -> Result<(), String> {
    let mut stack = vec![(root, 1usize)];
    while let Some((e, d)) = stack.pop() {
        if d > MAX_DEPTH {
            return Err(format!(
                "expression nests deeper than {MAX_DEPTH} levels; split it into recording rules"
            ));
        }
        let (range, step, offset, at) = match e {
            Expr::VectorSelector(vs) => (None, None, vs.offset.as_ref(), vs.at.as_ref()),
            Expr::MatrixSelector(ms) => (
                Some(ms.range),
                None,
                ms.vs.offset.as_ref(),
                ms.vs.at.as_ref(),
            ),
            Expr::Subquery(sq) => (Some(sq.range), sq.step, sq.offset.as_ref(), sq.at.as_ref()),
            _ => (None, None, None, None),
        };
        let off = offset.map(|o| match o {
            Offset::Pos(d) | Offset::Neg(d) => *d,
        });
        for d in [range, step, off].into_iter().flatten() {
            if d > MAX_DURATION {
                return Err(format!(
                    "duration out of range: {} (at most 292y)",
                    crate::duration::format(d)
                ));
            }
        }
        if let Some(parser::AtModifier::At(t)) = at {
            let ms = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_millis(),
                Err(e) => e.duration().as_millis(),
            };
            if ms > MAX_TIME_MS as u128 {
                return Err("timestamp out of bounds for @ modifier".into());
            }
        }
        stack.extend(children(e).map(|c| (c, d + 1)));
    }
    Ok(())
}

/// Drops a tree without recursion: dropping a `Box<Expr>` chain thousands
/// deep would overflow the stack, so children are moved out one by one.
fn dismantle(root: Expr) {
    let placeholder = || Box::new(Expr::NumberLiteral(NumberLiteral { val: 0.0 }));
    let mut stack = vec![root];
    while let Some(mut e) = stack.pop() {
        match &mut e {
            Expr::Aggregate(a) => {
                stack.push(*std::mem::replace(&mut a.expr, placeholder()));
                if let Some(p) = a.param.take() {
                    stack.push(*p);
                }
            }
            Expr::Unary(u) => stack.push(*std::mem::replace(&mut u.expr, placeholder())),
            Expr::Binary(b) => {
                stack.push(*std::mem::replace(&mut b.lhs, placeholder()));
                stack.push(*std::mem::replace(&mut b.rhs, placeholder()));
            }
            Expr::Paren(p) => stack.push(*std::mem::replace(&mut p.expr, placeholder())),
            Expr::Subquery(s) => stack.push(*std::mem::replace(&mut s.expr, placeholder())),
            Expr::Call(c) => stack.extend(c.args.args.drain(..).map(|b| *b)),
            _ => {}
        }
    }
}

/// A token of the query as Prometheus's lexer would see it, enough to
/// cut the query at token boundaries and to describe a token in an error.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Ident,
    Number,
    Duration,
    Str,
    Punct,
    Op,
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
    /// inside `{...}`, where words are label names, not keywords
    in_braces: bool,
    /// inside `[...]`, where numbers are durations
    in_brackets: bool,
}

const AGGREGATORS: &[&str] = &[
    "avg",
    "bottomk",
    "count",
    "count_values",
    "group",
    "max",
    "min",
    "quantile",
    "stddev",
    "stdvar",
    "sum",
    "topk",
    "limitk",
    "limit_ratio",
];
const KEYWORDS: &[&str] = &[
    "bool",
    "by",
    "group_left",
    "group_right",
    "fill",
    "fill_left",
    "fill_right",
    "ignoring",
    "offset",
    "smoothed",
    "anchored",
    "on",
    "without",
];
const WORD_OPERATORS: &[&str] = &["and", "or", "unless", "atan2"];
const PREPROCESSORS: &[&str] = &["start", "end", "step", "range", "max_of", "min_of"];

/// Splits a query into tokens (whitespace and comments dropped). Never
/// fails: text the real lexer would reject becomes an `Other` token.
fn tokens(q: &str) -> Vec<Tok> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut braces = 0usize;
    let mut brackets = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                Kind::Str
            }
            b'0'..=b'9' | b'.' => {
                let mut duration = false;
                while i < b.len() {
                    let x = b[i];
                    let exp_sign = (x == b'+' || x == b'-')
                        && matches!(b[i - 1], b'e' | b'E')
                        && !q[start..i].starts_with("0x");
                    if x.is_ascii_alphanumeric() || x == b'.' || x == b'_' || exp_sign {
                        if matches!(x, b's' | b'm' | b'h' | b'd' | b'w' | b'y') {
                            duration = true;
                        }
                        i += 1;
                    } else {
                        break;
                    }
                }
                if duration {
                    Kind::Duration
                } else {
                    Kind::Number
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || (c == b':' && brackets == 0) => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let w = &q[start..i];
                if w.eq_ignore_ascii_case("inf") || w.eq_ignore_ascii_case("nan") {
                    Kind::Number
                } else {
                    Kind::Ident
                }
            }
            b'=' | b'!' | b'<' | b'>' if b.get(i + 1).is_some_and(|n| matches!(n, b'=' | b'~')) => {
                i += 2;
                Kind::Op
            }
            b'=' => {
                i += 1;
                Kind::Punct
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'@' => {
                i += 1;
                Kind::Op
            }
            b'[' => {
                brackets += 1;
                i += 1;
                Kind::Punct
            }
            b']' => {
                brackets = brackets.saturating_sub(1);
                i += 1;
                Kind::Punct
            }
            b'(' | b')' | b',' | b':' | b';' => {
                i += 1;
                Kind::Punct
            }
            b'{' => {
                braces += 1;
                i += 1;
                Kind::Punct
            }
            b'}' => {
                braces = braces.saturating_sub(1);
                i += 1;
                Kind::Punct
            }
            _ => {
                i += q[i..].chars().next().map_or(1, char::len_utf8);
                Kind::Other
            }
        };
        let in_braces = braces > 0 && !(c == b'{' && braces == 1);
        out.push(Tok {
            kind,
            start,
            end: i,
            in_braces,
            in_brackets: brackets > 0,
        });
    }
    out
}

/// Go's `%q`, near enough: Rust's debug quoting.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// How Prometheus's parser names a token in "unexpected ..." errors
/// (`Item.desc` in promql/parser/lex.go).
fn describe(q: &str, t: &Tok) -> String {
    let text = &q[t.start..t.end];
    let short = |s: &str| {
        if s.chars().count() > 10 {
            format!("{}...", quoted(&s.chars().take(10).collect::<String>()))
        } else {
            quoted(s)
        }
    };
    match t.kind {
        Kind::Ident if !t.in_braces => {
            if WORD_OPERATORS.contains(&text) {
                format!("<op:{text}>")
            } else if AGGREGATORS.contains(&text) {
                format!("<aggr:{text}>")
            } else if KEYWORDS.contains(&text) {
                format!("<{text}>")
            } else if PREPROCESSORS.contains(&text) {
                short(text)
            } else if text.contains(':') {
                format!("metric identifier {}", quoted(text))
            } else {
                format!("identifier {}", quoted(text))
            }
        }
        Kind::Ident => format!("identifier {}", quoted(text)),
        Kind::Number => format!("number {}", short(text)),
        Kind::Duration => format!("duration {}", short(text)),
        Kind::Str => format!("string {}", short(text)),
        Kind::Op => format!("<op:{text}>"),
        Kind::Punct | Kind::Other => short(text),
    }
}

/// The brackets (and an open string) a prefix leaves open, closed in order.
fn closers(q: &str, toks: &[Tok]) -> String {
    let mut open = Vec::new();
    for t in toks {
        match (t.kind, &q[t.start..t.end]) {
            (Kind::Punct, "(") => open.push(')'),
            (Kind::Punct, "[") => open.push(']'),
            (Kind::Punct, "{") => open.push('}'),
            (Kind::Punct, ")" | "]" | "}") => {
                open.pop();
            }
            _ => {}
        }
    }
    let mut s = String::new();
    if let Some(last) = toks.last() {
        let text = &q[last.start..last.end];
        if last.kind == Kind::Str {
            let quote = text.chars().next().unwrap_or('"');
            let escaped_end = text.len() >= 2
                && text.ends_with(quote)
                && !(quote != '`' && text.ends_with(&format!("\\{quote}")[..]));
            if !escaped_end {
                s.push(quote);
            }
        }
    }
    s.extend(open.iter().rev());
    s
}

/// Whether some simple continuation turns the prefix into a valid query:
/// a cheap stand-in for "the parser had not yet seen an error", which
/// promql-parser does not report with a position.
fn viable(q: &str, toks: &[Tok]) -> bool {
    const COMPLETIONS: &[&str] = &[
        "",
        " 1",
        " x",
        " (x)",
        " (x) (x)",
        " x[1m]",
        "[1m]",
        " 1m",
        " \"s\"",
        "=\"s\"",
        " 1, x",
        "()",
        " x, \"s\", \"s\", \"s\", \"s\"",
    ];
    let Some(last) = toks.last() else {
        return true;
    };
    let prefix = &q[..last.end];
    let close = closers(q, toks);
    // The completion goes before the closers, and a range may follow the
    // first closer (`x{code` -> `x{code="s"}[1m]`); a grouping clause
    // closed by the closers still needs its operand (`sum by (` ->
    // `sum by (x) (x)`).
    let split = close.chars().next().map_or(0, char::len_utf8);
    let ranges: &[&str] = if split == 0 { &[""] } else { &["", "[1m]"] };
    let tails: &[&str] = if close.is_empty() {
        &[""]
    } else {
        &["", " (x)"]
    };
    let in_string = last.kind == Kind::Str && close.starts_with(['"', '\'', '`']);
    COMPLETIONS.iter().any(|c| {
        // A completion after an open string would land inside it.
        let c = if in_string { "" } else { c };
        ranges.iter().any(|range| {
            tails.iter().any(|tail| {
                let mut s = String::with_capacity(
                    prefix.len() + c.len() + close.len() + range.len() + tail.len(),
                );
                s.push_str(prefix);
                s.push_str(c);
                s.push_str(&close[..split]);
                s.push_str(range);
                s.push_str(&close[split..]);
                s.push_str(tail);
                count_parse();
                match guarded_parse(&s) {
                    // A valid prefix can still be a tree too deep to drop
                    // by recursion (a long `a + b + ...` chain).
                    Ok(e) => {
                        dismantle(e);
                        true
                    }
                    Err(_) => false,
                }
            })
        })
    })
}

#[cfg(test)]
thread_local! {
    static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count_parse() {
    #[cfg(test)]
    PARSES.with(|p| p.set(p.get() + 1));
}

/// The first token whose prefix cannot be completed, found by bisection
/// (O(log n) parses) above a few dozen tokens and by a scan below, where
/// the scan is cheap and exact even where completions misjudge.
fn first_bad_token(q: &str, toks: &[Tok]) -> Option<usize> {
    const SCAN: usize = 48;
    if toks.len() <= SCAN {
        return (0..toks.len()).find(|&k| !viable(q, &toks[..=k]));
    }
    if viable(q, toks) {
        return None;
    }
    // Invariant: prefix ..lo is viable, prefix ..=hi is not.
    let (mut lo, mut hi) = (0usize, toks.len() - 1);
    if !viable(q, &toks[..1]) {
        return Some(0);
    }
    lo += 1;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if viable(q, &toks[..=mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

/// A message with Prometheus's `line:col: parse error:` prefix for a byte
/// offset into the query.
fn positioned(q: &str, at: usize, msg: &str) -> String {
    let at = at.min(q.len());
    let before = &q[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{col}: parse error: {msg}")
}

/// Places promql-parser's error (which has no position) where the query
/// stops being completable, replaces its generic "invalid promql query"
/// with Prometheus's "unexpected <token>", and words type errors as
/// Prometheus does.
fn locate(q: &str, msg: &str) -> String {
    let toks = tokens(q);
    let generic = msg == "invalid promql query";
    let msg = prometheus_wording(msg);
    let Some(k) = first_bad_token(q, &toks) else {
        let msg = if generic {
            "unexpected end of input".to_string()
        } else {
            msg
        };
        // End of input is where Prometheus's lexer stands: after any
        // trailing whitespace.
        return positioned(q, q.len(), &msg);
    };
    let t = &toks[k];
    if generic {
        return positioned(q, t.start, &format!("unexpected {}", describe(q, t)));
    }
    let at = if msg.starts_with("unexpected right parenthesis") {
        // Prometheus's lexer emits the parenthesis before it notices the
        // depth went negative, so its error stands just after it.
        t.end
    } else if msg.contains("argument(s) in call to")
        || msg.starts_with("wrong number of arguments for aggregate")
        || msg.starts_with("unknown function with name")
    {
        // Errors about a whole call are placed at its name.
        call_name(q, &toks, k).unwrap_or(t.start)
    } else if msg.starts_with("expected type") && msg.contains("in call to function") {
        // ... and errors about an argument at the argument.
        argument_start(q, &toks, k).unwrap_or(t.start)
    } else if msg.starts_with("binary expression must contain") {
        level_start(q, &toks, k)
    } else {
        t.start
    };
    positioned(q, at, &msg)
}

/// Index of the `(` that encloses token `k` (or is token `k`).
fn open_paren(q: &str, toks: &[Tok], k: usize) -> Option<usize> {
    let text = |i: usize| &q[toks[i].start..toks[i].end];
    let mut depth = 0usize;
    let mut i = k;
    loop {
        match text(i) {
            ")" | "]" | "}" if i != k => depth += 1,
            "(" | "[" | "{" => {
                if depth == 0 {
                    return (text(i) == "(").then_some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
        i = i.checked_sub(1)?;
    }
}

/// Start of the function or aggregation name of the call around token `k`.
fn call_name(q: &str, toks: &[Tok], k: usize) -> Option<usize> {
    let open = if &q[toks[k].start..toks[k].end] == ")" {
        open_paren(q, toks, k.checked_sub(1)?)?
    } else {
        open_paren(q, toks, k)?
    };
    let name = toks.get(open.checked_sub(1)?)?;
    (name.kind == Kind::Ident).then_some(name.start)
}

/// Start of the call argument that token `k` ends or belongs to.
fn argument_start(q: &str, toks: &[Tok], k: usize) -> Option<usize> {
    let text = |i: usize| &q[toks[i].start..toks[i].end];
    let inner = if text(k) == ")" { k.checked_sub(1)? } else { k };
    let open = open_paren(q, toks, inner)?;
    let mut start = open + 1;
    let mut depth = 0usize;
    for i in open + 1..=inner {
        match text(i) {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => depth = depth.saturating_sub(1),
            "," if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    toks.get(start).map(|t| t.start)
}

/// Start of the bracketed level (or the whole query) around token `k`.
fn level_start(q: &str, toks: &[Tok], k: usize) -> usize {
    let text = |i: usize| &q[toks[i].start..toks[i].end];
    let mut depth = 0usize;
    let mut i = k;
    while i > 0 {
        i -= 1;
        match text(i) {
            ")" | "]" | "}" => depth += 1,
            "(" | "[" | "{" if depth == 0 => return toks[i + 1].start,
            "(" | "[" | "{" => depth -= 1,
            _ => {}
        }
    }
    toks.first().map_or(0, |t| t.start)
}

/// promql-parser's type names and quotes, as Prometheus words them
/// (`matrix` is a "range vector", names are in double quotes).
fn prometheus_wording(msg: &str) -> String {
    let mut m = msg.to_string();
    if let Some(rest) = m.strip_prefix("expected type ") {
        let ty = |t: &str| match t {
            "matrix" => "range vector".to_string(),
            "vector" => "instant vector".to_string(),
            other => other.to_string(),
        };
        if let Some((want, tail)) = rest.split_once(" in ") {
            if let Some((context, got)) = tail.rsplit_once(", got ") {
                m = format!("expected type {} in {context}, got {}", ty(want), ty(got));
            }
        }
    }
    // 'name' -> "name" in function names.
    for marker in ["call to function '", "in call to '", "function with name '"] {
        if let Some(i) = m.find(marker) {
            let open = i + marker.len() - 1;
            if let Some(close) = m[open + 1..].find('\'') {
                let close = open + 1 + close;
                m.replace_range(close..=close, "\"");
                m.replace_range(open..=open, "\"");
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> String {
        parse(q).unwrap_err().to_string()
    }

    #[test]
    fn errors_are_placed_where_prometheus_places_them() {
        for (q, want) in [
            ("foo bar", "1:5: parse error: unexpected identifier \"bar\""),
            ("1+1+)", "1:6: parse error: unexpected right parenthesis ')'"),
            ("sum by (job) (up", "1:17: parse error: unclosed left parenthesis"),
            ("1 +", "1:4: parse error: unexpected end of input"),
            ("sum(x) by (a) )", "1:16: parse error: unexpected right parenthesis ')'"),
            ("topk(3)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"),
            ("time(1)", "1:1: parse error: expected 0 argument(s) in call to \"time\", got 1"),
            ("nosuchfunc(up)", "1:1: parse error: unknown function with name \"nosuchfunc\""),
            ("rate(x)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"),
            ("\"str\" + 1", "1:1: parse error: binary expression must contain only scalar and instant vector types"),
            ("up @ ", "1:6: parse error: unexpected end of input in @, expected timestamp"),
            ("sum(rate(x{code=~\"5..\"}[5m])\n  / 2\n", "3:1: parse error: unclosed left parenthesis"),
            ("max_over_time(up[5m:1m:2m])", "1:23: parse error: unexpected second colon(:) in brackets"),
            ("a > on (x) group_left (b + 1)", "1:26: parse error: unexpected <op:+>"),
            ("up offset", "1:10: parse error: unexpected end of input in offset, expected duration"),
            ("up == == up", "1:7: parse error: unexpected <op:==>"),
            ("sum(rate(x[5m]) by", "1:17: parse error: unclosed left parenthesis"),
        ] {
            assert_eq!(err(q), want, "{q}");
        }
        let e = err("up{a=\"x\"} and\n  foo bar");
        assert!(
            e.starts_with("2:7: parse error: unexpected identifier"),
            "{e}"
        );
    }

    #[test]
    fn deep_long_and_signed_queries_are_refused_without_recursion() {
        let n = 20_000;
        for q in [
            format!("up{}", "+up".repeat(n)),
            format!("up{}", "^up".repeat(n)),
            format!("{}up{}", "abs(".repeat(1500), ")".repeat(1500)),
            format!("{}up", "-".repeat(30_000)),
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}up{}", "sum(".repeat(150), "+up)".repeat(150)),
        ] {
            let e = err(&q);
            assert!(
                e.contains(": parse error: expression nests deeper than"),
                "{e}"
            );
        }
        let long = format!("up{{a=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES));
        assert!(err(&long).contains("bytes long"));
        // The deepest accepted shapes parse.
        let ok = format!(
            "{}up{}",
            "abs(".repeat(MAX_DEPTH - 2),
            ")".repeat(MAX_DEPTH - 2)
        );
        parse(&ok).unwrap();
        let ok = format!("up{}", " or up".repeat(MAX_DEPTH - 1));
        parse(&ok).unwrap();
        let ok = format!("{}up", "- ".repeat(MAX_DEPTH - 1));
        parse(&ok).unwrap();
        assert!(err(&format!("up{}", " or up".repeat(MAX_DEPTH))).contains("nests deeper"));
    }

    #[test]
    fn numbers_as_durations_never_reach_the_parser_out_of_range() {
        // Found by the promql fuzz target: promql-parser panicked.
        for q in [
            "(rate((rx[111111111111111111111",
            "rate(x[1e30])",
            "x[Inf]",
            "x[NaN]",
            "max_over_time(x[5m:1e300])",
            "x offset 1e300",
            "x offset -1e300",
        ] {
            let e = err(q);
            assert!(e.contains("duration out of range"), "{q}: {e}");
        }
        parse("rate(x[300])").unwrap();
        parse("x offset 60").unwrap();
        // Found by the fuzzer: text that is no number must not panic.
        let e = err("histogram_quantile(5.991 sum by (le) (rate(lat_bucket[5oX)_b");
        assert!(e.contains("parse error"), "{e}");
        assert_eq!(number_value("0x1F"), Some(31.0));
        assert_eq!(number_value("017"), Some(15.0));
        assert_eq!(number_value("1e3"), Some(1000.0));
        assert_eq!(number_value("5ox"), None);
    }

    #[test]
    fn durations_and_at_times_are_bounded() {
        assert!(err("up offset 300y").contains("duration out of range"));
        assert!(err("up @ 1e300").contains("out of bounds"));
        parse("max_over_time(up[100y:1ms])").unwrap();
        parse("up @ 1700000000 offset 5m").unwrap();
    }

    #[test]
    fn locating_an_error_in_a_large_query_is_fast() {
        // Every prefix of this query is unfinished: a per-prefix search
        // would parse it 150,000 times.
        let q = format!("up{{a=\"{}\"}}}}", "x".repeat(120_000));
        PARSES.with(|p| p.set(0));
        let e = err(&q);
        assert!(e.starts_with("1:120009: parse error: unexpected"), "{e}");
        // 20,000 tokens, all fine but the last.
        let matchers: Vec<String> = (0..5000).map(|i| format!("l{i}=\"v\"")).collect();
        let many = format!("up{{{}}} offset 5m bar", matchers.join(","));
        let e2 = err(&many);
        let col = many.len() - 2;
        assert_eq!(
            e2,
            format!("1:{col}: parse error: unexpected identifier \"bar\"")
        );
        // Bisection: a few parses per halving, not one per prefix.
        let n = PARSES.with(|p| p.get());
        assert!(n < 400, "{n} parses");
    }
}
