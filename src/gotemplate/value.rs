//! Template values and how Go prints them (`%v`, times, durations).

use std::collections::BTreeMap;

use crate::fmtfloat;

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
    /// `map[string]string` or `map[string]any`
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
    pub(super) fn truthy(&self) -> bool {
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

    pub(super) fn type_name(&self) -> &'static str {
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

    pub(super) fn field(&self, name: &str) -> Result<TValue, String> {
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

pub(super) fn labels_map(l: &BTreeMap<String, String>) -> TValue {
    TValue::Map(
        l.iter()
            .map(|(k, v)| (k.clone(), TValue::Str(v.clone())))
            .collect(),
    )
}

/// Go's time.Time.String() in UTC: `1970-01-12 13:46:40 +0000 UTC`, at the
/// millisecond precision of Prometheus's model.Time (FloatToTime goes
/// through model.TimeFromUnixNano).
pub(super) fn go_time(secs: f64) -> String {
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
pub(super) fn go_duration(secs: f64) -> String {
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

pub(super) fn trim_frac(f: f64) -> String {
    let s = format!("{f:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Go's fmt `%v`.
pub(super) fn print_value(v: &TValue) -> String {
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

pub(super) fn to_float(v: &TValue) -> Result<f64, String> {
    match v {
        TValue::Float(f) => Ok(*f),
        TValue::Int(i) => Ok(*i as f64),
        TValue::Duration(d) => Ok(*d),
        TValue::Str(s) => crate::expfmt::parse_go_float(s)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

pub(super) fn to_str(v: &TValue, func: &str) -> Result<String, String> {
    match v {
        TValue::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {} (in {func})",
            other.type_name()
        )),
    }
}
