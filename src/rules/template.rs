//! Go `text/template` syntax checking for alert labels and annotations, as
//! `promtool check rules` does (`rulefmt.go` testTemplateParsing): the text
//! is parsed, not run, with `$labels`, `$externalLabels`, `$externalURL`
//! and `$value` defined and Prometheus's function names known.
//!
//! No Rust crate parses Go's template syntax, so this is a small lexer and
//! a structural parser; expansion comes with the rules engine.

/// Go's builtins plus Prometheus's template functions (template/template.go).
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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Field,
    Var(String),
    Literal,
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

struct Err {
    line: usize,
    msg: String,
}

/// Checks `text` as a template named `name`; the error reads like Go's,
/// e.g. `template: __alert_X:1: function "nosuchfunc" not defined`.
pub fn check(name: &str, text: &str) -> Result<(), String> {
    check_inner(text).map_err(|e| format!("template: {name}:{}: {}", e.line, e.msg))
}

fn lex_action(body: &str, line: usize) -> Result<Vec<Tok>, Err> {
    let err = |msg: String| Err { line, msg };
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
                out.push(Tok::RParen);
                i += 1;
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
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some(b'\n') => return Err(err("unterminated quoted string".into())),
                        Some(b'\\') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                out.push(Tok::Literal);
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
                if i >= b.len() {
                    return Err(err("unterminated raw quoted string".into()));
                }
                i += 1;
                out.push(Tok::Literal);
            }
            b'\'' => {
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some(b'\n') => {
                            return Err(err("unterminated character constant".into()))
                        }
                        Some(b'\\') => i += 2,
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                out.push(Tok::Literal);
            }
            b'.' if b.get(i + 1).is_some_and(|n| n.is_ascii_digit()) => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                out.push(Tok::Literal);
            }
            b'.' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.')
                {
                    i += 1;
                }
                out.push(Tok::Field);
            }
            b'$' => {
                let s = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let v = body[s..i].to_string();
                // $x.Field chains are one operand.
                while i < b.len() && b[i] == b'.' {
                    i += 1;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                }
                out.push(Tok::Var(v));
            }
            c if c.is_ascii_digit() || c == b'-' || c == b'+' => {
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'_' | b'+' | b'-'))
                {
                    i += 1;
                }
                out.push(Tok::Literal);
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80)
                {
                    i += 1;
                }
                let word = &body[s..i];
                match word {
                    "true" | "false" | "nil" => out.push(Tok::Literal),
                    _ => out.push(Tok::Ident(word.to_string())),
                }
                // ident.Field chains ((call).Field) are one operand.
                while i < b.len() && b[i] == b'.' {
                    i += 1;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
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

#[derive(Clone, Copy, PartialEq)]
enum Scope {
    If,
    Range,
    With,
    Define,
    Block,
}

fn check_inner(text: &str) -> Result<(), Err> {
    let mut scopes: Vec<Vec<String>> =
        vec![
            ["$", "$labels", "$externalLabels", "$externalURL", "$value"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ];
    let mut stack: Vec<(Scope, bool)> = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while let Some(open) = rest.find("{{") {
        line += rest[..open].matches('\n').count();
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(Err {
                line,
                msg: "unclosed action".into(),
            });
        };
        let mut body = &after[..close];
        let action_line = line;
        line += body.matches('\n').count();
        rest = &after[close + 2..];
        if let Some(b) = body.strip_prefix('-') {
            if b.starts_with([' ', '\t', '\n', '\r']) {
                body = b;
            }
        }
        if let Some(b) = body.strip_suffix('-') {
            if b.ends_with([' ', '\t', '\n', '\r']) {
                body = b;
            }
        }
        let trimmed = body.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err(Err {
                    line: action_line,
                    msg: "unclosed comment".into(),
                });
            }
            continue;
        }
        let toks = lex_action(body, action_line)?;
        action(&toks, action_line, &mut stack, &mut scopes)?;
    }
    if let Some((b, _)) = stack.last() {
        let _ = b;
        return Err(Err {
            line,
            msg: "unexpected EOF".into(),
        });
    }
    Ok(())
}

fn action(
    toks: &[Tok],
    line: usize,
    stack: &mut Vec<(Scope, bool)>,
    scopes: &mut Vec<Vec<String>>,
) -> Result<(), Err> {
    let err = |msg: &str| Err {
        line,
        msg: msg.to_string(),
    };
    let Some(first) = toks.first() else {
        return Err(err("missing value for command"));
    };
    if let Tok::Ident(kw) = first {
        match kw.as_str() {
            "if" | "range" | "with" => {
                let b = match kw.as_str() {
                    "if" => Scope::If,
                    "range" => Scope::Range,
                    _ => Scope::With,
                };
                scopes.push(Vec::new());
                pipeline(&toks[1..], line, scopes)?;
                stack.push((b, false));
                return Ok(());
            }
            "else" => {
                match stack.last_mut() {
                    Some((Scope::If | Scope::Range | Scope::With, seen_else)) if !*seen_else => {
                        if toks.len() > 1 {
                            // else if / else with: a new pipeline
                            match &toks[1] {
                                Tok::Ident(k) if k == "if" || k == "with" => {
                                    pipeline(&toks[2..], line, scopes)?;
                                }
                                _ => return Err(err("unexpected token after else")),
                            }
                        } else {
                            *seen_else = true;
                        }
                    }
                    _ => return Err(err("unexpected {{else}}")),
                }
                return Ok(());
            }
            "end" => {
                if toks.len() > 1 {
                    return Err(err("unexpected token in end"));
                }
                if stack.pop().is_none() {
                    return Err(err("unexpected {{end}}"));
                }
                scopes.pop();
                return Ok(());
            }
            "define" | "block" => {
                if !matches!(toks.get(1), Some(Tok::Literal)) {
                    return Err(err(&format!("unexpected token in {kw} clause")));
                }
                if kw == "block" {
                    pipeline(&toks[2..], line, scopes)?;
                }
                scopes.push(Vec::new());
                stack.push((
                    if kw == "define" {
                        Scope::Define
                    } else {
                        Scope::Block
                    },
                    false,
                ));
                return Ok(());
            }
            "template" => {
                if !matches!(toks.get(1), Some(Tok::Literal)) {
                    return Err(err("unexpected token in template clause"));
                }
                if toks.len() > 2 {
                    pipeline(&toks[2..], line, scopes)?;
                }
                return Ok(());
            }
            "break" | "continue" => {
                if !stack.iter().any(|(b, _)| *b == Scope::Range) {
                    return Err(err(&format!("{{{{{kw}}}}} outside {{{{range}}}}")));
                }
                return Ok(());
            }
            _ => {}
        }
    }
    pipeline(toks, line, scopes)
}

/// `[$x[, $y] :=|=] command [| command ...]`
fn pipeline(toks: &[Tok], line: usize, scopes: &mut [Vec<String>]) -> Result<(), Err> {
    let err = |msg: String| Err { line, msg };
    let mut toks = toks;
    // Declarations.
    let decl_end = toks
        .iter()
        .position(|t| matches!(t, Tok::Declare | Tok::Assign));
    if let Some(d) = decl_end {
        let vars: Vec<&Tok> = toks[..d]
            .iter()
            .filter(|t| !matches!(t, Tok::Comma))
            .collect();
        if !vars.is_empty() && vars.iter().all(|t| matches!(t, Tok::Var(_))) && vars.len() <= 2 {
            let declare = matches!(toks[d], Tok::Declare);
            for v in &vars {
                if let Tok::Var(name) = v {
                    if declare {
                        if let Some(s) = scopes.last_mut() {
                            s.push(name.clone());
                        }
                    } else if !defined(scopes, name) {
                        return Err(err(format!("undefined variable \"{name}\"")));
                    }
                }
            }
            toks = &toks[d + 1..];
        }
    }
    if toks.is_empty() {
        return Err(err("missing value for command".into()));
    }
    // Split on pipes outside parentheses; inner pipelines are checked as
    // operands.
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::LParen => depth += 1,
            Tok::RParen => depth -= 1,
            Tok::Pipe if depth == 0 => {
                if i == start {
                    return Err(err("missing command".into()));
                }
                operands(&toks[start..i], line, scopes)?;
                start = i + 1;
            }
            _ => {}
        }
    }
    if start >= toks.len() {
        return Err(err("missing command".into()));
    }
    operands(&toks[start..], line, scopes)
}

fn defined(scopes: &[Vec<String>], name: &str) -> bool {
    scopes.iter().any(|s| s.iter().any(|v| v == name))
}

fn operands(cmd: &[Tok], line: usize, scopes: &mut [Vec<String>]) -> Result<(), Err> {
    let err = |msg: String| Err { line, msg };
    let mut depth = 0i32;
    let mut i = 0;
    while i < cmd.len() {
        match &cmd[i] {
            Tok::Ident(f) => {
                if !FUNCTIONS.contains(&f.as_str()) {
                    return Err(err(format!("function \"{f}\" not defined")));
                }
            }
            Tok::Var(v) => {
                if !defined(scopes, v) {
                    return Err(err(format!("undefined variable \"{v}\"")));
                }
            }
            Tok::LParen => {
                depth += 1;
                // A parenthesised pipeline must not be empty.
                if matches!(cmd.get(i + 1), Some(Tok::RParen)) {
                    return Err(err("missing value for parenthesized pipeline".into()));
                }
            }
            Tok::RParen => {
                depth -= 1;
                if depth < 0 {
                    return Err(err("unexpected right paren".into()));
                }
            }
            Tok::Declare | Tok::Assign | Tok::Comma => {
                return Err(err("unexpected token in operand".into()));
            }
            Tok::Field | Tok::Literal | Tok::Pipe => {}
        }
        i += 1;
    }
    if depth != 0 {
        return Err(err("unclosed left paren".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_prometheus_style_templates() {
        for t in [
            "plain text",
            "{{ $labels.instance }} is down",
            "{{ $value | humanize }} req/s on {{ $labels.job }}",
            "{{ printf \"%.2f\" $value }}%",
            "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
            "{{ if gt $value 0.5 }}high{{ else if gt $value 0.1 }}mid{{ else }}low{{ end }}",
            "{{ range $i, $e := $labels }}{{ $i }}={{ $e }}{{ end }}",
            "{{- $x := 1 -}}{{ $x }}",
            "{{/* a comment */}}",
            "{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}",
            "{{ $externalLabels.cluster }} {{ $externalURL }}",
            "{{ (query \"up\" | first).Labels.job }}",
        ] {
            assert!(check("t", t).is_ok(), "{t}: {:?}", check("t", t));
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        let cases = [
            ("{{ $labels.x ", "unclosed action"),
            ("{{ nosuchfunc 1 }}", "function \"nosuchfunc\" not defined"),
            ("{{ if true }}x", "unexpected EOF"),
            ("{{ end }}", "unexpected {{end}}"),
            ("{{ $nope }}", "undefined variable \"$nope\""),
            ("{{ }}", "missing value for command"),
            ("{{ \"abc }}", "unterminated quoted string"),
        ];
        for (t, want) in cases {
            let e = check("__alert_X", t).unwrap_err();
            assert!(e.starts_with("template: __alert_X:1: "), "{e}");
            assert!(e.contains(want), "{t}: {e}");
        }
        // Variables declared in a block end with it.
        assert!(check("t", "{{ if true }}{{ $a := 1 }}{{ end }}{{ $a }}").is_err());
    }
}
