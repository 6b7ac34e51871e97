//! The parser: tokens into a small AST, with Go's errors.

use super::*;

#[derive(Debug, Clone)]
pub(super) enum Arg {
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
pub(super) struct Pipe {
    pub(super) decl: Vec<String>,
    pub(super) assign: bool,
    pub(super) cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
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
    pub(super) name: String,
    pub(super) nodes: Vec<Node>,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Open {
    If,
    Range,
    With,
}

pub(super) struct Frame {
    pub(super) kind: Open,
    pub(super) pipe: Pipe,
    pub(super) line: usize,
    pub(super) body: Vec<Node>,
    pub(super) els: Option<Vec<Node>>,
    /// `else if` chains nest: this many frames close at the same {{end}}.
    pub(super) chained: bool,
}

pub(super) struct Parser {
    pub(super) scopes: Vec<Vec<String>>,
}

impl Parser {
    pub(super) fn defined(&self, v: &str) -> bool {
        self.scopes.iter().any(|s| s.iter().any(|x| x == v))
    }

    pub(super) fn pipe(&mut self, toks: &[Tok], line: usize) -> Result<Pipe, PErr> {
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

    pub(super) fn command(&mut self, toks: &[Tok], line: usize) -> Result<Vec<Arg>, PErr> {
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

pub(super) fn parse_num(n: &str) -> Option<Arg> {
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
