//! The lexer: `{{ ... }}` actions into tokens.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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

pub(super) struct PErr {
    pub(super) line: usize,
    pub(super) msg: String,
}

pub(super) fn ident_chars(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
        i += 1;
    }
    i
}

pub(super) fn field_chain(body: &str, mut i: usize) -> (Vec<String>, usize) {
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

pub(super) fn unquote_go(raw: &str) -> String {
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

pub(super) fn lex_action(body: &str, line: usize) -> Result<Vec<Tok>, PErr> {
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
