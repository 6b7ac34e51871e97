//! Execution: pipelines, control flow and functions over a context.

use std::collections::BTreeMap;

use crate::fmtfloat;

use super::*;

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

pub(super) struct Exec<'a, 'b> {
    pub(super) ctx: &'a Context<'b>,
    pub(super) vars: Vec<(String, TValue)>,
    pub(super) out: String,
}

pub(super) enum Flow {
    Normal,
    Break,
    Continue,
}

impl Template {
    /// Expands the template with `data` as `.` and `$`.
    pub(super) fn execute_with(
        &self,
        ctx: &Context<'_>,
        data: TValue,
    ) -> Result<String, TemplateError> {
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

pub(super) type ExecResult<T> = Result<T, (usize, String)>;

impl Exec<'_, '_> {
    pub(super) fn nodes(&mut self, nodes: &[Node], dot: &TValue) -> ExecResult<Flow> {
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

    pub(super) fn var(&self, name: &str) -> TValue {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(TValue::Nil, |(_, v)| v.clone())
    }

    pub(super) fn pipe(&mut self, p: &Pipe, dot: &TValue, line: usize) -> ExecResult<TValue> {
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

    pub(super) fn chain(v: TValue, fields: &[String], line: usize) -> ExecResult<TValue> {
        let mut v = v;
        for f in fields {
            v = v.field(f).map_err(|e| (line, e))?;
        }
        Ok(v)
    }

    pub(super) fn operand(&mut self, a: &Arg, dot: &TValue, line: usize) -> ExecResult<TValue> {
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

    pub(super) fn command(
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

    pub(super) fn call(&mut self, f: &str, args: Vec<TValue>, line: usize) -> ExecResult<TValue> {
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
