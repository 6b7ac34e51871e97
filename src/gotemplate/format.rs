//! Go's `fmt.Sprintf`/`Sprint` and Prometheus's humanize functions.

use crate::fmtfloat;

use super::*;

/// Go's fmt.Sprintf for the verbs alert templates use.
pub(super) fn sprintf(format: &str, args: &[TValue]) -> String {
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

pub(super) fn humanize(v: f64) -> String {
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

pub(super) fn humanize1024(v: f64) -> String {
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

pub(super) fn humanize_duration(v: f64) -> String {
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

/// Go's fmt.Sprint: spaces only between operands that are not strings.
pub(super) fn go_sprint(args: &[TValue]) -> String {
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
pub(super) fn split_host_port(s: &str) -> Option<(String, String)> {
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
