//! Go `text/template` for alert labels and annotations, with Prometheus's
//! data and functions (`template/template.go`, prometheus/common
//! `helpers/templates`): parsing (checked at load time, as `promtool check
//! rules` does) and expansion.
//!
//! No Rust crate implements Go's template language, so this module holds a
//! lexer, a parser to a small AST and an interpreter for the subset alert
//! templates use: actions and pipelines, variables, fields, `if`/`else
//! if`/`else`, `range`, `with`, literals, Go's builtins and Prometheus's
//! functions. Values print like Go's `fmt` (`%v`).

use std::collections::BTreeMap;
use std::fmt;

use crate::fmtfloat;

/// Go's builtins plus Prometheus's template functions.
const FUNCTIONS: &[&str] = &[
    "and",
    "call",
    "html",
    "index",
    "slice",
    "js",
    "len",
    "not",
    "or",
    "print",
    "printf",
    "println",
    "urlquery",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ne",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "stripPort",
    "stripDomain",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toDuration",
    "now",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "urlQueryEscape",
];

/// A template error, printed like Go's (`template: NAME:LINE: msg`).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `.a.b` (empty: just `.`)
    Field(Vec<String>),
    /// `$x.a.b`
    Var(String, Vec<String>),
    Str(String),
    Num(String),
    Bool(bool),
    Nil,
    LParen,
    /// `)` possibly followed directly by `.a.b`
    RParen(Vec<String>),
    Pipe,
    Declare,
    Assign,
    Comma,
}

struct PErr {
    line: usize,
    msg: String,
}

fn ident_chars(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
        i += 1;
    }
    i
}

fn field_chain(body: &str, mut i: usize) -> (Vec<String>, usize) {
    let b = body.as_bytes();
    let mut out = Vec::new();
    while i < b.len() && b[i] == b'.' {
        let s = i + 1;
        let e = ident_chars(b, s);
        if e == s {
            break;
        }
        out.push(body[s..e].to_string());
        i = e;
    }
    (out, i)
}

fn unquote_go(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn lex_action(body: &str, line: usize) -> Result<Vec<Tok>, PErr> {
    let err = |msg: String| PErr { line, msg };
    let b = body.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                let (chain, e) = field_chain(body, i + 1);
                out.push(Tok::RParen(chain));
                i = e;
            }
            b'|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            b'=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            b'"' => {
                let s = i + 1;
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some(b'\n') => return Err(err("unterminated quoted string".into())),
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        _ => i += 1,
                    }
                }
                out.push(Tok::Str(unquote_go(&body[s..i])));
                i += 1;
            }
            b'`' => {
                let s = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
                if i >= b.len() {
                    return Err(err("unterminated raw quoted string".into()));
                }
                out.push(Tok::Str(body[s..i].to_string()));
                i += 1;
            }
            b'\'' => {
                let s = i + 1;
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some(b'\n') => {
                            return Err(err("unterminated character constant".into()))
                        }
                        Some(b'\\') => i += 2,
                        Some(b'\'') => break,
                        _ => i += 1,
                    }
                }
                let ch = unquote_go(&body[s..i]).chars().next().unwrap_or('\0');
                out.push(Tok::Num((ch as u32).to_string()));
                i += 1;
            }
            b'.' if b.get(i + 1).is_some_and(|n| n.is_ascii_digit()) => {
                let s = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'_')) {
                    i += 1;
                }
                out.push(Tok::Num(body[s..i].to_string()));
            }
            b'.' => {
                let (chain, e) = field_chain(body, i);
                out.push(Tok::Field(chain));
                i = if e == i { i + 1 } else { e };
            }
            b'$' => {
                let s = i;
                i = ident_chars(b, i + 1);
                let v = body[s..i].to_string();
                let (chain, e) = field_chain(body, i);
                out.push(Tok::Var(v, chain));
                i = e;
            }
            c if c.is_ascii_digit()
                || ((c == b'-' || c == b'+')
                    && b.get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == b'.')) =>
            {
                let s = i;
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'.'
                        || b[i] == b'_'
                        || ((b[i] == b'+' || b[i] == b'-')
                            && matches!(b[i - 1], b'e' | b'E' | b'p' | b'P')))
                {
                    i += 1;
                }
                out.push(Tok::Num(body[s..i].to_string()));
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let s = i;
                i = ident_chars(b, i);
                match &body[s..i] {
                    "true" => out.push(Tok::Bool(true)),
                    "false" => out.push(Tok::Bool(false)),
                    "nil" => out.push(Tok::Nil),
                    w => out.push(Tok::Ident(w.to_string())),
                }
            }
            other => {
                return Err(err(format!(
                    "unexpected {:?} in command",
                    char::from(other)
                )))
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- parser

#[derive(Debug, Clone)]
enum Arg {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Num(f64, bool),
    Bool(bool),
    Nil,
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe, usize),
    If(Pipe, Vec<Node>, Vec<Node>, usize),
    Range(Pipe, Vec<Node>, Vec<Node>, usize),
    With(Pipe, Vec<Node>, Vec<Node>, usize),
    Break,
    Continue,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
}

#[derive(Clone, Copy, PartialEq)]
enum Open {
    If,
    Range,
    With,
}

struct Frame {
    kind: Open,
    pipe: Pipe,
    line: usize,
    body: Vec<Node>,
    els: Option<Vec<Node>>,
    /// `else if` chains nest: this many frames close at the same {{end}}.
    chained: bool,
}

struct Parser {
    scopes: Vec<Vec<String>>,
}

impl Parser {
    fn defined(&self, v: &str) -> bool {
        self.scopes.iter().any(|s| s.iter().any(|x| x == v))
    }

    fn pipe(&mut self, toks: &[Tok], line: usize) -> Result<Pipe, PErr> {
        let err = |msg: String| PErr { line, msg };
        let mut toks = toks;
        let mut decl = Vec::new();
        let mut assign = false;
        if let Some(d) = toks
            .iter()
            .position(|t| matches!(t, Tok::Declare | Tok::Assign))
        {
            let vars: Vec<&Tok> = toks[..d]
                .iter()
                .filter(|t| !matches!(t, Tok::Comma))
                .collect();
            if !vars.is_empty()
                && vars.len() <= 2
                && vars
                    .iter()
                    .all(|t| matches!(t, Tok::Var(_, f) if f.is_empty()))
            {
                assign = matches!(toks[d], Tok::Assign);
                for v in vars {
                    if let Tok::Var(name, _) = v {
                        if assign && !self.defined(name) {
                            return Err(err(format!("undefined variable \"{name}\"")));
                        }
                        decl.push(name.clone());
                    }
                }
                toks = &toks[d + 1..];
            }
        }
        if toks.is_empty() {
            return Err(err("missing value for command".into()));
        }
        let mut cmds = Vec::new();
        let mut depth = 0i32;
        let mut start = 0;
        for (i, t) in toks.iter().enumerate() {
            match t {
                Tok::LParen => depth += 1,
                Tok::RParen(_) => depth -= 1,
                Tok::Pipe if depth == 0 => {
                    if i == start {
                        return Err(err("missing command".into()));
                    }
                    cmds.push(self.command(&toks[start..i], line)?);
                    start = i + 1;
                }
                _ => {}
            }
        }
        if start >= toks.len() {
            return Err(err("missing command".into()));
        }
        cmds.push(self.command(&toks[start..], line)?);
        // Declared variables are visible after the declaring action.
        if !assign {
            if let Some(s) = self.scopes.last_mut() {
                s.extend(decl.iter().cloned());
            }
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn command(&mut self, toks: &[Tok], line: usize) -> Result<Vec<Arg>, PErr> {
        let err = |msg: String| PErr { line, msg };
        let mut args = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let a = match &toks[i] {
                Tok::Ident(f) => {
                    if !FUNCTIONS.contains(&f.as_str()) {
                        return Err(err(format!("function \"{f}\" not defined")));
                    }
                    Arg::Func(f.clone())
                }
                Tok::Field(c) => Arg::Dot(c.clone()),
                Tok::Var(v, c) => {
                    if !self.defined(v) {
                        return Err(err(format!("undefined variable \"{v}\"")));
                    }
                    Arg::Var(v.clone(), c.clone())
                }
                Tok::Str(s) => Arg::Str(s.clone()),
                Tok::Num(n) => {
                    parse_num(n).ok_or_else(|| err(format!("bad number syntax: {n:?}")))?
                }
                Tok::Bool(b) => Arg::Bool(*b),
                Tok::Nil => Arg::Nil,
                Tok::LParen => {
                    let mut depth = 1;
                    let mut j = i + 1;
                    while j < toks.len() {
                        match toks[j] {
                            Tok::LParen => depth += 1,
                            Tok::RParen(_) => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    if j >= toks.len() {
                        return Err(err("unclosed left paren".into()));
                    }
                    if j == i + 1 {
                        return Err(err("missing value for parenthesized pipeline".into()));
                    }
                    let inner = self.pipe(&toks[i + 1..j], line)?;
                    let chain = match &toks[j] {
                        Tok::RParen(c) => c.clone(),
                        _ => Vec::new(),
                    };
                    i = j;
                    Arg::Sub(Box::new(inner), chain)
                }
                Tok::RParen(_) => return Err(err("unexpected right paren".into())),
                _ => return Err(err("unexpected token in operand".into())),
            };
            args.push(a);
            i += 1;
        }
        if args.len() > 1 && !matches!(args[0], Arg::Func(_)) {
            return Err(err("can't give argument to non-function".into()));
        }
        Ok(args)
    }
}

fn parse_num(n: &str) -> Option<Arg> {
    let clean = n.replace('_', "");
    if let Ok(i) = clean.parse::<i64>() {
        return Some(Arg::Num(i as f64, true));
    }
    if let Some(h) = clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
    {
        return i64::from_str_radix(h, 16)
            .ok()
            .map(|i| Arg::Num(i as f64, true));
    }
    clean.parse::<f64>().ok().map(|f| Arg::Num(f, false))
}

/// Parses a template; the variables Prometheus defines for alert templates
/// (`$labels`, `$externalLabels`, `$externalURL`, `$value`) are known.
pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
    let fail = |e: PErr| TemplateError(format!("template: {name}:{}: {}", e.line, e.msg));
    let mut p = Parser {
        scopes: vec![
            ["$", "$labels", "$externalLabels", "$externalURL", "$value"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ],
    };
    let mut root: Vec<Node> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut rest = text;
    let mut line = 1;
    let mut trim_next = false;
    let push = |stack: &mut Vec<Frame>, root: &mut Vec<Node>, n: Node| match stack.last_mut() {
        Some(f) => match &mut f.els {
            Some(e) => e.push(n),
            None => f.body.push(n),
        },
        None => root.push(n),
    };
    while let Some(open) = rest.find("{{") {
        let mut txt = &rest[..open];
        line += txt.matches('\n').count();
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(fail(PErr {
                line,
                msg: "unclosed action".into(),
            }));
        };
        let mut body = &after[..close];
        let trim_left =
            body.starts_with("- ") || body.starts_with("-\t") || body.starts_with("-\n");
        let trim_right = body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-");
        if trim_left {
            body = &body[1..];
            txt = txt.trim_end();
        }
        if trim_right {
            body = &body[..body.len() - 1];
        }
        if trim_next {
            txt = txt.trim_start();
        }
        if !txt.is_empty() {
            push(&mut stack, &mut root, Node::Text(txt.to_string()));
        }
        trim_next = trim_right;
        let action_line = line;
        line += body.matches('\n').count();
        rest = &after[close + 2..];
        let trimmed = body.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err(fail(PErr {
                    line: action_line,
                    msg: "unclosed comment".into(),
                }));
            }
            continue;
        }
        let toks = lex_action(body, action_line).map_err(fail)?;
        let err = |msg: &str| {
            fail(PErr {
                line: action_line,
                msg: msg.to_string(),
            })
        };
        let kw = match toks.first() {
            Some(Tok::Ident(k)) => k.as_str(),
            Some(_) => "",
            None => return Err(err("missing value for command")),
        };
        match kw {
            "if" | "range" | "with" => {
                p.scopes.push(Vec::new());
                let pipe = p.pipe(&toks[1..], action_line).map_err(fail)?;
                stack.push(Frame {
                    kind: match kw {
                        "if" => Open::If,
                        "range" => Open::Range,
                        _ => Open::With,
                    },
                    pipe,
                    line: action_line,
                    body: Vec::new(),
                    els: None,
                    chained: false,
                });
            }
            "else" => {
                let Some(f) = stack.last_mut() else {
                    return Err(err("unexpected {{else}}"));
                };
                if f.els.is_some() {
                    return Err(err("expected end; found {{else}}"));
                }
                f.els = Some(Vec::new());
                if let Some(Tok::Ident(k)) = toks.get(1) {
                    if k != "if" && k != "with" {
                        return Err(err("unexpected token after else"));
                    }
                    // `else if x` is an `if` nested in the else branch,
                    // closed by the same {{end}}.
                    p.scopes.push(Vec::new());
                    let pipe = p.pipe(&toks[2..], action_line).map_err(fail)?;
                    stack.push(Frame {
                        kind: if k == "if" { Open::If } else { Open::With },
                        pipe,
                        line: action_line,
                        body: Vec::new(),
                        els: None,
                        chained: true,
                    });
                } else if toks.len() > 1 {
                    return Err(err("unexpected token after else"));
                }
            }
            "end" => {
                if toks.len() > 1 {
                    return Err(err("unexpected token in end"));
                }
                loop {
                    let Some(f) = stack.pop() else {
                        return Err(err("unexpected {{end}}"));
                    };
                    p.scopes.pop();
                    let els = f.els.unwrap_or_default();
                    let n = match f.kind {
                        Open::If => Node::If(f.pipe, f.body, els, f.line),
                        Open::Range => Node::Range(f.pipe, f.body, els, f.line),
                        Open::With => Node::With(f.pipe, f.body, els, f.line),
                    };
                    push(&mut stack, &mut root, n);
                    if !f.chained {
                        break;
                    }
                }
            }
            "break" | "continue" => {
                if !stack.iter().any(|f| f.kind == Open::Range) {
                    return Err(err(&format!("{{{{{kw}}}}} outside {{{{range}}}}")));
                }
                push(
                    &mut stack,
                    &mut root,
                    if kw == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    },
                );
            }
            "define" | "block" | "template" => {
                return Err(err(&format!(
                    "{{{{{kw}}}}} is not supported in alert templates"
                )));
            }
            _ => {
                let pipe = p.pipe(&toks, action_line).map_err(fail)?;
                push(&mut stack, &mut root, Node::Action(pipe, action_line));
            }
        }
    }
    if !stack.is_empty() {
        return Err(fail(PErr {
            line,
            msg: "unexpected EOF".into(),
        }));
    }
    let mut txt = rest;
    if trim_next {
        txt = txt.trim_start();
    }
    if !txt.is_empty() {
        root.push(Node::Text(txt.to_string()));
    }
    Ok(Template {
        name: name.to_string(),
        nodes: root,
    })
}

/// Checks `text` as a template named `name`, as `promtool check rules` does.
pub fn check(name: &str, text: &str) -> Result<(), String> {
    parse(name, text).map(|_| ()).map_err(|e| e.0)
}

// ------------------------------------------------------------- values

/// One sample of a `query` result.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    /// labels, `__name__` included
    pub labels: BTreeMap<String, String>,
    /// value
    pub value: f64,
}

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum TValue {
    /// string
    Str(String),
    /// float64
    Float(f64),
    /// int
    Int(i64),
    /// bool
    Bool(bool),
    /// map[string]string or map[string]any
    Map(BTreeMap<String, TValue>),
    /// query result
    Samples(Vec<QuerySample>),
    /// a list ([]any)
    List(Vec<TValue>),
    /// one sample
    Sample(QuerySample),
    /// time.Time as Unix seconds
    Time(f64),
    /// time.Duration in seconds
    Duration(f64),
    /// nil
    Nil,
}

impl TValue {
    fn truthy(&self) -> bool {
        match self {
            TValue::Str(s) => !s.is_empty(),
            TValue::Float(f) => *f != 0.0,
            TValue::Int(i) => *i != 0,
            TValue::Bool(b) => *b,
            TValue::Map(m) => !m.is_empty(),
            TValue::Samples(s) => !s.is_empty(),
            TValue::List(l) => !l.is_empty(),
            TValue::Sample(_) | TValue::Time(_) => true,
            TValue::Duration(d) => *d != 0.0,
            TValue::Nil => false,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            TValue::Str(_) => "string",
            TValue::Float(_) => "float64",
            TValue::Int(_) => "int",
            TValue::Bool(_) => "bool",
            TValue::Map(_) => "map[string]string",
            TValue::Samples(_) => "template.queryResult",
            TValue::List(_) => "[]interface {}",
            TValue::Sample(_) => "*template.sample",
            TValue::Time(_) => "*time.Time",
            TValue::Duration(_) => "*time.Duration",
            TValue::Nil => "<nil>",
        }
    }

    fn field(&self, name: &str) -> Result<TValue, String> {
        match self {
            // missingkey=zero: a missing label is "".
            TValue::Map(m) => Ok(m.get(name).cloned().unwrap_or(TValue::Str(String::new()))),
            TValue::Sample(s) => match name {
                "Labels" => Ok(labels_map(&s.labels)),
                "Value" => Ok(TValue::Float(s.value)),
                _ => Err(format!(
                    "can't evaluate field {name} in type *template.sample"
                )),
            },
            TValue::Nil => Ok(TValue::Nil),
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }
}

fn labels_map(l: &BTreeMap<String, String>) -> TValue {
    TValue::Map(
        l.iter()
            .map(|(k, v)| (k.clone(), TValue::Str(v.clone())))
            .collect(),
    )
}

/// Go's time.Time.String() in UTC: `1970-01-12 13:46:40 +0000 UTC`, at the
/// millisecond precision of Prometheus's model.Time (FloatToTime goes
/// through model.TimeFromUnixNano).
fn go_time(secs: f64) -> String {
    let millis = ((secs * 1e9) as i64).div_euclid(1_000_000);
    let s = millis.div_euclid(1000);
    let frac = millis.rem_euclid(1000) * 1_000_000;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(s.max(0) as u64);
    let base = humantime::format_rfc3339_seconds(t).to_string();
    let (date, time) = base
        .trim_end_matches('Z')
        .split_once('T')
        .unwrap_or((&base, ""));
    let mut out = format!("{date} {time}");
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Go's time.Duration.String(): `1h2m3.5s`, `300ms`, `0s`.
fn go_duration(secs: f64) -> String {
    let d = (secs * 1e9) as i64;
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let s = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", trim_frac(u as f64 / 1e3))
    } else if u < 1_000_000_000 {
        format!("{}ms", trim_frac(u as f64 / 1e6))
    } else {
        let h = u / 3_600_000_000_000;
        let m = (u / 60_000_000_000) % 60;
        let sec = (u % 60_000_000_000) as f64 / 1e9;
        let mut o = String::new();
        if h > 0 {
            o.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            o.push_str(&format!("{m}m"));
        }
        o.push_str(&format!("{}s", trim_frac(sec)));
        o
    };
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

fn trim_frac(f: f64) -> String {
    let s = format!("{f:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Go's fmt `%v`.
fn print_value(v: &TValue) -> String {
    match v {
        TValue::Str(s) => s.clone(),
        TValue::List(l) => format!(
            "[{}]",
            l.iter().map(print_value).collect::<Vec<_>>().join(" ")
        ),
        TValue::Float(f) => fmtfloat::go_g(*f),
        TValue::Int(i) => i.to_string(),
        TValue::Bool(b) => b.to_string(),
        TValue::Map(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", print_value(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        TValue::Samples(s) => {
            let parts: Vec<String> = s
                .iter()
                .map(|x| print_value(&TValue::Sample(x.clone())))
                .collect();
            format!("[{}]", parts.join(" "))
        }
        TValue::Sample(s) => format!(
            "{{{} {}}}",
            print_value(&labels_map(&s.labels)),
            fmtfloat::go_g(s.value)
        ),
        TValue::Time(t) => go_time(*t),
        TValue::Duration(d) => go_duration(*d),
        TValue::Nil => "<no value>".into(),
    }
}

fn to_float(v: &TValue) -> Result<f64, String> {
    match v {
        TValue::Float(f) => Ok(*f),
        TValue::Int(i) => Ok(*i as f64),
        TValue::Duration(d) => Ok(*d),
        TValue::Str(s) => crate::expfmt::parse_go_float(s)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

fn to_str(v: &TValue, func: &str) -> Result<String, String> {
    match v {
        TValue::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {} (in {func})",
            other.type_name()
        )),
    }
}

// ------------------------------------------------------------- printf

/// Go's fmt.Sprintf for the verbs alert templates use.
fn sprintf(format: &str, args: &[TValue]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut argi = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if matches!(f, '-' | '+' | '#' | ' ' | '0') {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let s = match (verb, a) {
            ('v', _) | ('s', TValue::Str(_)) => print_value(a),
            ('d', TValue::Int(i)) => i.to_string(),
            ('d', TValue::Float(f)) => format!("%!d(float64={})", fmtfloat::go_g(*f)),
            ('f' | 'F', _) => match to_float(a) {
                Ok(f) if f.is_finite() => format!("{:.*}", prec.unwrap_or(6), f),
                Ok(f) => fmtfloat::go_g(f),
                Err(_) => format!("%!f({}={})", a.type_name(), print_value(a)),
            },
            ('e', _) => match to_float(a) {
                Ok(f) => {
                    let s = format!("{:.*e}", prec.unwrap_or(6), f);
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                }
                Err(_) => format!("%!e({}={})", a.type_name(), print_value(a)),
            },
            ('g', _) => match to_float(a) {
                Ok(f) => match prec {
                    Some(p) => fmtfloat::go_g_prec(f, p),
                    None => fmtfloat::go_g(f),
                },
                Err(_) => format!("%!g({}={})", a.type_name(), print_value(a)),
            },
            ('q', TValue::Str(s)) => format!("{s:?}"),
            ('t', TValue::Bool(b)) => b.to_string(),
            ('x', TValue::Int(i)) => format!("{i:x}"),
            ('x', TValue::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('s', other) => print_value(other),
            (v, other) => format!("%!{v}({}={})", other.type_name(), print_value(other)),
        };
        let w: usize = width.parse().unwrap_or(0);
        let pad = w.saturating_sub(s.chars().count());
        if flags.contains('-') {
            out.push_str(&s);
            out.push_str(&" ".repeat(pad));
        } else if flags.contains('0') && !matches!(a, TValue::Str(_)) {
            out.push_str(&"0".repeat(pad));
            out.push_str(&s);
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&s);
        }
    }
    out
}

// ------------------------------------------------------------- humanize

fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return fmtfloat::go_g_prec(v, 4);
    }
    let mut v = v;
    if v.abs() >= 1.0 {
        let mut prefix = "";
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
        return format!("{}{prefix}", fmtfloat::go_g_prec(v, 4));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}", fmtfloat::go_g_prec(v, 4))
}

fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return fmtfloat::go_g_prec(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", fmtfloat::go_g_prec(v, 4))
}

fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return fmtfloat::go_g_prec(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", fmtfloat::go_g_prec(v, 4));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", fmtfloat::go_g_prec(v, 4));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", fmtfloat::go_g_prec(v, 4))
}

// ------------------------------------------------------------- execution

/// What an alert template sees, and how it runs `query`.
pub struct Context<'a> {
    /// `$labels`
    pub labels: BTreeMap<String, String>,
    /// `$externalLabels`
    pub external_labels: BTreeMap<String, String>,
    /// `$externalURL`
    pub external_url: String,
    /// `$value`
    pub value: f64,
    /// evaluation time (ms), for `now` and `query`
    pub time_ms: i64,
    /// runs an instant query at the evaluation time
    pub query: &'a dyn Fn(&str) -> Result<Vec<QuerySample>, String>,
}

struct Exec<'a, 'b> {
    ctx: &'a Context<'b>,
    vars: Vec<(String, TValue)>,
    out: String,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

impl Template {
    /// Expands the template with `data` as `.` and `$`.
    fn execute_with(&self, ctx: &Context<'_>, data: TValue) -> Result<String, TemplateError> {
        let mut ex = Exec {
            ctx,
            vars: vec![("$".into(), data.clone())],
            out: String::new(),
        };
        ex.nodes(&self.nodes, &data).map_err(|(line, m)| {
            TemplateError(format!(
                "template: {}:{line}: executing \"{}\": {m}",
                self.name, self.name
            ))
        })?;
        Ok(ex.out)
    }

    /// Expands the template. Errors read like Go's execution errors.
    pub fn execute(&self, ctx: &Context<'_>) -> Result<String, TemplateError> {
        let data = TValue::Map(
            [
                ("Labels".to_string(), labels_map(&ctx.labels)),
                (
                    "ExternalLabels".to_string(),
                    labels_map(&ctx.external_labels),
                ),
                (
                    "ExternalURL".to_string(),
                    TValue::Str(ctx.external_url.clone()),
                ),
                ("Value".to_string(), TValue::Float(ctx.value)),
            ]
            .into_iter()
            .collect(),
        );
        let mut ex = Exec {
            ctx,
            vars: vec![
                ("$".into(), data.clone()),
                ("$labels".into(), labels_map(&ctx.labels)),
                ("$externalLabels".into(), labels_map(&ctx.external_labels)),
                ("$externalURL".into(), TValue::Str(ctx.external_url.clone())),
                ("$value".into(), TValue::Float(ctx.value)),
            ],
            out: String::new(),
        };
        ex.nodes(&self.nodes, &data).map_err(|(line, m)| {
            TemplateError(format!(
                "template: {}:{line}: executing \"{}\": {m}",
                self.name, self.name
            ))
        })?;
        Ok(ex.out)
    }
}

/// Checks a notification template (email subject and body).
pub fn check_notification(text: &str) -> Result<(), String> {
    check("notification", text)
}

/// Renders a notification template with `data` as `.`.
pub fn render(name: &str, text: &str, data: TValue) -> Result<String, TemplateError> {
    let t = parse(name, text)?;
    let no_query = |_: &str| -> Result<Vec<QuerySample>, String> {
        Err("query is not available in notifications".into())
    };
    let ctx = Context {
        labels: BTreeMap::new(),
        external_labels: BTreeMap::new(),
        external_url: String::new(),
        value: 0.0,
        time_ms: 0,
        query: &no_query,
    };
    t.execute_with(&ctx, data)
}

/// Expands `text` for an alert, the way Prometheus does for labels and
/// annotations: a failure becomes `<error expanding template: ...>`.
pub fn expand_alert(alert: &str, text: &str, ctx: &Context<'_>) -> String {
    let name = format!("__alert_{alert}");
    match parse(&name, text).and_then(|t| t.execute(ctx)) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

type ExecResult<T> = Result<T, (usize, String)>;

impl Exec<'_, '_> {
    fn nodes(&mut self, nodes: &[Node], dot: &TValue) -> ExecResult<Flow> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p, line) => {
                    let v = self.pipe(p, dot, *line)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&print_value(&v));
                    }
                }
                Node::If(p, body, els, line) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot, *line)?;
                    let flow = if v.truthy() {
                        self.nodes(body, dot)?
                    } else {
                        self.nodes(els, dot)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With(p, body, els, line) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot, *line)?;
                    let flow = if v.truthy() {
                        self.nodes(body, &v)?
                    } else {
                        self.nodes(els, dot)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(p, body, els, line) => {
                    let mark = self.vars.len();
                    let decl = p.decl.clone();
                    let bare = Pipe {
                        decl: Vec::new(),
                        assign: false,
                        cmds: p.cmds.clone(),
                    };
                    let v = self.pipe(&bare, dot, *line)?;
                    let items: Vec<(TValue, TValue)> = match v {
                        TValue::Map(m) => m.into_iter().map(|(k, v)| (TValue::Str(k), v)).collect(),
                        TValue::Samples(s) => s
                            .into_iter()
                            .enumerate()
                            .map(|(i, x)| (TValue::Int(i as i64), TValue::Sample(x)))
                            .collect(),
                        TValue::Int(n) => {
                            (0..n).map(|i| (TValue::Int(i), TValue::Int(i))).collect()
                        }
                        TValue::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, x)| (TValue::Int(i as i64), x))
                            .collect(),
                        TValue::Nil => Vec::new(),
                        other => {
                            return Err((
                                *line,
                                format!("range can't iterate over {}", print_value(&other)),
                            ))
                        }
                    };
                    if items.is_empty() {
                        self.nodes(els, dot)?;
                    }
                    for (k, v) in items {
                        let inner = self.vars.len();
                        match decl.len() {
                            1 => self.vars.push((decl[0].clone(), v.clone())),
                            2 => {
                                self.vars.push((decl[0].clone(), k));
                                self.vars.push((decl[1].clone(), v.clone()));
                            }
                            _ => {}
                        }
                        let flow = self.nodes(body, &v)?;
                        self.vars.truncate(inner);
                        if matches!(flow, Flow::Break) {
                            break;
                        }
                    }
                    self.vars.truncate(mark);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn var(&self, name: &str) -> TValue {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(TValue::Nil, |(_, v)| v.clone())
    }

    fn pipe(&mut self, p: &Pipe, dot: &TValue, line: usize) -> ExecResult<TValue> {
        let mut prev: Option<TValue> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev, line)?);
        }
        let v = prev.unwrap_or(TValue::Nil);
        for name in &p.decl {
            if p.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn chain(v: TValue, fields: &[String], line: usize) -> ExecResult<TValue> {
        let mut v = v;
        for f in fields {
            v = v.field(f).map_err(|e| (line, e))?;
        }
        Ok(v)
    }

    fn operand(&mut self, a: &Arg, dot: &TValue, line: usize) -> ExecResult<TValue> {
        Ok(match a {
            Arg::Dot(chain) => Self::chain(dot.clone(), chain, line)?,
            Arg::Var(name, chain) => Self::chain(self.var(name), chain, line)?,
            Arg::Str(s) => TValue::Str(s.clone()),
            Arg::Num(f, true) => TValue::Int(*f as i64),
            Arg::Num(f, false) => TValue::Float(*f),
            Arg::Bool(b) => TValue::Bool(*b),
            Arg::Nil => TValue::Nil,
            Arg::Sub(p, chain) => {
                let v = self.pipe(p, dot, line)?;
                Self::chain(v, chain, line)?
            }
            Arg::Func(f) => self.call(f, Vec::new(), line)?,
        })
    }

    fn command(
        &mut self,
        cmd: &[Arg],
        dot: &TValue,
        prev: Option<TValue>,
        line: usize,
    ) -> ExecResult<TValue> {
        match &cmd[0] {
            Arg::Func(f) => {
                let mut args = Vec::with_capacity(cmd.len());
                for a in &cmd[1..] {
                    args.push(self.operand(a, dot, line)?);
                }
                if let Some(p) = prev {
                    args.push(p);
                }
                self.call(f, args, line)
            }
            other => {
                if prev.is_some() {
                    return Err((line, "can't give argument to non-function".into()));
                }
                self.operand(other, dot, line)
            }
        }
    }

    fn call(&mut self, f: &str, args: Vec<TValue>, line: usize) -> ExecResult<TValue> {
        let fail = |m: String| (line, format!("error calling {f}: {m}"));
        let want = |n: usize| -> ExecResult<()> {
            if args.len() != n {
                return Err((
                    line,
                    format!("wrong number of args for {f}: want {n} got {}", args.len()),
                ));
            }
            Ok(())
        };
        Ok(match f {
            "and" => args
                .iter()
                .find(|a| !a.truthy())
                .or(args.last())
                .cloned()
                .unwrap_or(TValue::Nil),
            "or" => args
                .iter()
                .find(|a| a.truthy())
                .or(args.last())
                .cloned()
                .unwrap_or(TValue::Nil),
            "not" => {
                want(1)?;
                TValue::Bool(!args[0].truthy())
            }
            "len" => {
                want(1)?;
                TValue::Int(match &args[0] {
                    TValue::Str(s) => s.len() as i64,
                    TValue::Map(m) => m.len() as i64,
                    TValue::Samples(s) => s.len() as i64,
                    TValue::List(l) => l.len() as i64,
                    other => return Err(fail(format!("len of type {}", other.type_name()))),
                })
            }
            "index" => {
                let mut v = args.first().cloned().unwrap_or(TValue::Nil);
                for k in &args[1.min(args.len())..] {
                    v = match (&v, k) {
                        (TValue::Map(m), TValue::Str(key)) => {
                            m.get(key).cloned().unwrap_or(TValue::Str(String::new()))
                        }
                        (TValue::Samples(s), TValue::Int(i)) => s
                            .get(*i as usize)
                            .cloned()
                            .map(TValue::Sample)
                            .ok_or_else(|| fail(format!("index out of range: {i}")))?,
                        _ => return Err(fail("cannot index".into())),
                    };
                }
                v
            }
            "print" => TValue::Str(go_sprint(&args)),
            "println" => {
                let parts: Vec<String> = args.iter().map(print_value).collect();
                TValue::Str(format!("{}\n", parts.join(" ")))
            }
            "printf" => {
                let Some(TValue::Str(fmt_s)) = args.first() else {
                    return Err(fail("printf needs a format string".into()));
                };
                TValue::Str(sprintf(fmt_s, &args[1..]))
            }
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
                if args.len() < 2 {
                    return Err((line, "missing argument for comparison".to_string()));
                }
                let cmp = |a: &TValue, b: &TValue| -> ExecResult<std::cmp::Ordering> {
                    match (a, b) {
                        (TValue::Float(x), TValue::Float(y)) => {
                            x.partial_cmp(y).ok_or_else(|| fail("incomparable".into()))
                        }
                        (TValue::Int(x), TValue::Int(y)) => Ok(x.cmp(y)),
                        (TValue::Str(x), TValue::Str(y)) => Ok(x.cmp(y)),
                        (TValue::Bool(x), TValue::Bool(y)) if f == "eq" || f == "ne" => {
                            Ok(x.cmp(y))
                        }
                        _ => Err(fail("incompatible types for comparison".into())),
                    }
                };
                let o = cmp(&args[0], &args[1]);
                let r = match f {
                    "eq" => {
                        // eq a b c ... is a == b || a == c ...
                        let mut any = false;
                        for b in &args[1..] {
                            if cmp(&args[0], b)? == std::cmp::Ordering::Equal {
                                any = true;
                            }
                        }
                        any
                    }
                    "ne" => o? != std::cmp::Ordering::Equal,
                    "lt" => o? == std::cmp::Ordering::Less,
                    "le" => o? != std::cmp::Ordering::Greater,
                    "gt" => o? == std::cmp::Ordering::Greater,
                    _ => o? != std::cmp::Ordering::Less,
                };
                TValue::Bool(r)
            }
            "html" | "safeHtml" => {
                TValue::Str(args.iter().map(print_value).collect::<Vec<_>>().join(""))
            }
            "js" => TValue::Str(go_sprint(&args)),
            "urlquery" | "urlQueryEscape" => {
                TValue::Str(form_urlencoded::byte_serialize(go_sprint(&args).as_bytes()).collect())
            }
            "query" => {
                want(1)?;
                let q = to_str(&args[0], f).map_err(fail)?;
                TValue::Samples((self.ctx.query)(&q).map_err(fail)?)
            }
            "first" => {
                want(1)?;
                match &args[0] {
                    TValue::Samples(s) if !s.is_empty() => TValue::Sample(s[0].clone()),
                    TValue::Samples(_) => {
                        return Err(fail("first() called on vector with no elements".into()))
                    }
                    other => {
                        return Err(fail(format!(
                            "wrong type for value; expected template.queryResult; got {}",
                            other.type_name()
                        )))
                    }
                }
            }
            "label" => {
                want(2)?;
                let name = to_str(&args[0], f).map_err(fail)?;
                match &args[1] {
                    TValue::Sample(s) => {
                        TValue::Str(s.labels.get(&name).cloned().unwrap_or_default())
                    }
                    _ => return Err(fail("label needs a sample".into())),
                }
            }
            "value" => {
                want(1)?;
                match &args[0] {
                    TValue::Sample(s) => TValue::Float(s.value),
                    _ => return Err(fail("value needs a sample".into())),
                }
            }
            "strvalue" => {
                want(1)?;
                match &args[0] {
                    TValue::Sample(s) => {
                        TValue::Str(s.labels.get("__value__").cloned().unwrap_or_default())
                    }
                    _ => return Err(fail("strvalue needs a sample".into())),
                }
            }
            "args" => TValue::Map(
                args.into_iter()
                    .enumerate()
                    .map(|(i, a)| (format!("arg{i}"), a))
                    .collect(),
            ),
            "reReplaceAll" => {
                want(3)?;
                let pat = to_str(&args[0], f).map_err(fail)?;
                let repl = to_str(&args[1], f).map_err(fail)?;
                let text = to_str(&args[2], f).map_err(fail)?;
                let re = regex::Regex::new(&pat).map_err(|e| fail(e.to_string()))?;
                TValue::Str(re.replace_all(&text, repl.as_str()).into_owned())
            }
            "match" => {
                want(2)?;
                let pat = to_str(&args[0], f).map_err(fail)?;
                let text = to_str(&args[1], f).map_err(fail)?;
                let re = regex::Regex::new(&pat).map_err(|e| fail(e.to_string()))?;
                TValue::Bool(re.is_match(&text))
            }
            "title" => {
                want(1)?;
                let s = to_str(&args[0], f).map_err(fail)?;
                let mut out = String::with_capacity(s.len());
                let mut start = true;
                for c in s.chars() {
                    if start && c.is_alphabetic() {
                        out.extend(c.to_uppercase());
                    } else {
                        out.push(c);
                    }
                    start = !c.is_alphanumeric() && c != '\'';
                }
                TValue::Str(out)
            }
            "toUpper" => {
                want(1)?;
                TValue::Str(to_str(&args[0], f).map_err(fail)?.to_uppercase())
            }
            "toLower" => {
                want(1)?;
                TValue::Str(to_str(&args[0], f).map_err(fail)?.to_lowercase())
            }
            "graphLink" | "tableLink" => {
                want(1)?;
                let e = to_str(&args[0], f).map_err(fail)?;
                let q: String = form_urlencoded::byte_serialize(e.as_bytes()).collect();
                let tab = if f == "graphLink" { 0 } else { 1 };
                TValue::Str(format!("/graph?g0.expr={q}&g0.tab={tab}"))
            }
            "sortByLabel" => {
                want(2)?;
                let l = to_str(&args[0], f).map_err(fail)?;
                match &args[1] {
                    TValue::Samples(s) => {
                        let mut s = s.clone();
                        s.sort_by(|a, b| a.labels.get(&l).cmp(&b.labels.get(&l)));
                        TValue::Samples(s)
                    }
                    _ => return Err(fail("sortByLabel needs a query result".into())),
                }
            }
            "stripPort" => {
                want(1)?;
                let s = to_str(&args[0], f).map_err(fail)?;
                TValue::Str(split_host_port(&s).map_or(s.clone(), |(h, _)| h))
            }
            "stripDomain" => {
                want(1)?;
                let s = to_str(&args[0], f).map_err(fail)?;
                let (host, port) = split_host_port(&s).unwrap_or((s.clone(), String::new()));
                if host.parse::<std::net::IpAddr>().is_ok() {
                    TValue::Str(s)
                } else {
                    let short = host.split('.').next().unwrap_or("").to_string();
                    TValue::Str(if port.is_empty() {
                        short
                    } else if short.contains(':') {
                        format!("[{short}]:{port}")
                    } else {
                        format!("{short}:{port}")
                    })
                }
            }
            "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage"
            | "humanizeTimestamp" | "toTime" | "toDuration" => {
                want(1)?;
                let v = to_float(&args[0]).map_err(fail)?;
                match f {
                    "humanize" => TValue::Str(humanize(v)),
                    "humanize1024" => TValue::Str(humanize1024(v)),
                    "humanizeDuration" => TValue::Str(humanize_duration(v)),
                    "humanizePercentage" => {
                        TValue::Str(format!("{}%", fmtfloat::go_g_prec(v * 100.0, 4)))
                    }
                    "humanizeTimestamp" | "toTime" => {
                        if !v.is_finite() {
                            return Err(fail("value is NaN or Inf".into()));
                        }
                        if f == "toTime" {
                            TValue::Time(v)
                        } else {
                            TValue::Str(go_time(v))
                        }
                    }
                    _ => TValue::Duration(v),
                }
            }
            "now" => TValue::Float(self.ctx.time_ms as f64 / 1000.0),
            "pathPrefix" => TValue::Str(
                reqwest::Url::parse(&self.ctx.external_url)
                    .map(|u| u.path().trim_end_matches('/').to_string())
                    .unwrap_or_default(),
            ),
            "externalURL" => TValue::Str(self.ctx.external_url.clone()),
            "parseDuration" => {
                want(1)?;
                let s = to_str(&args[0], f).map_err(fail)?;
                let (neg, body) = match s.strip_prefix('-') {
                    Some(b) => (true, b),
                    None => (false, s.as_str()),
                };
                let d = crate::duration::parse(body).map_err(|e| fail(e.to_string()))?;
                TValue::Float(if neg {
                    -d.as_secs_f64()
                } else {
                    d.as_secs_f64()
                })
            }
            other => return Err((line, format!("function {other:?} not defined"))),
        })
    }
}

/// Go's fmt.Sprint: spaces only between operands that are not strings.
fn go_sprint(args: &[TValue]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, TValue::Str(_)) && !matches!(args[i - 1], TValue::Str(_)) {
            out.push(' ');
        }
        out.push_str(&print_value(a));
    }
    out
}

/// Go's net.SplitHostPort for the common forms.
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        return Some((h.to_string(), p.to_string()));
    }
    let (h, p) = s.rsplit_once(':')?;
    if h.contains(':') {
        return None;
    }
    Some((h.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests;
