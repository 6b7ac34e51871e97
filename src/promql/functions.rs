//! PromQL functions over floats (`promql/functions.go`, `promql/quantile.go`).
//! Native histograms are not supported and are rejected upstream.

use std::cmp::Ordering;

use promql_parser::parser::{Call, Expr};

use super::aggregate::{kahan_inc, quantile};
use super::eval::{check_unique, dur_ms, offset_ms, Evaluator};
use super::value::{Sample, Series, Value};
use super::EvalError;
use crate::fmtfloat;
use crate::labels::{Labels, METRIC_NAME};

fn string_arg(e: &Expr) -> Result<String, EvalError> {
    match e {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        Expr::Paren(p) => string_arg(&p.expr),
        _ => Err(EvalError::Type("expected a string literal".into())),
    }
}

/// The matrix argument's window `(start, end]` for rate-like functions.
fn window(ev: &Evaluator<'_>, e: &Expr, t: i64) -> Option<(i64, i64, i64)> {
    match e {
        Expr::MatrixSelector(ms) => {
            let reft = at_or(ev, &ms.vs.at, t) - offset_ms(&ms.vs.offset);
            let r = dur_ms(&ms.range);
            Some((reft - r, reft, r))
        }
        Expr::Subquery(sq) => {
            let reft = at_or(ev, &sq.at, t) - offset_ms(&sq.offset);
            let r = dur_ms(&sq.range);
            Some((reft - r, reft, r))
        }
        Expr::Paren(p) => window(ev, &p.expr, t),
        _ => None,
    }
}

fn at_or(ev: &Evaluator<'_>, at: &Option<promql_parser::parser::AtModifier>, t: i64) -> i64 {
    ev.at_ms_pub(at).unwrap_or(t)
}

fn simple(vec: Vec<Sample>, t: i64, f: impl Fn(f64) -> f64) -> Value {
    Value::Vector(
        vec.into_iter()
            .map(|s| Sample {
                v: f(s.v),
                t,
                drop_name: true,
                labels: s.labels,
            })
            .collect(),
    )
}

/// Calls the function `c` at time `t`.
pub(crate) fn call(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Value, EvalError> {
    let name = c.func.name;
    let args = &c.args.args;
    match name {
        "time" => return Ok(Value::Scalar(t as f64 / 1000.0)),
        // Query-context functions (experimental upstream, engine.go
        // foldQueryContextFunctions).
        "start" => return Ok(Value::Scalar(ev.query_start() as f64 / 1000.0)),
        "end" => return Ok(Value::Scalar(ev.query_end() as f64 / 1000.0)),
        "range" => {
            return Ok(Value::Scalar(
                (ev.query_end() - ev.query_start()) as f64 / 1000.0,
            ))
        }
        "step" => return Ok(Value::Scalar(ev.query_step() as f64 / 1000.0)),
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(&args[0], t)?;
            let b = ev.eval_scalar(&args[1], t)?;
            // Go's math.Min/Max: NaN wins.
            let v = if a.is_nan() || b.is_nan() {
                f64::NAN
            } else if name == "min_of" {
                a.min(b)
            } else {
                a.max(b)
            };
            return Ok(Value::Scalar(v));
        }
        "pi" => return Ok(Value::Scalar(std::f64::consts::PI)),
        "vector" => {
            let v = ev.eval_scalar(&args[0], t)?;
            return Ok(Value::Vector(vec![Sample {
                labels: Labels::default(),
                t,
                v,
                drop_name: false,
            }]));
        }
        "scalar" => {
            let v = ev.eval_vector(&args[0], t)?;
            return Ok(Value::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }));
        }
        "label_replace" => return label_replace(ev, args, t),
        "label_join" => return label_join(ev, args, t),
        "absent" => {
            let v = ev.eval_vector(&args[0], t)?;
            if !v.is_empty() {
                return Ok(Value::Vector(Vec::new()));
            }
            return Ok(Value::Vector(vec![absent_sample(&args[0], t)]));
        }
        "absent_over_time" => {
            let m = eval_matrix(ev, &args[0], t)?;
            if !m.is_empty() {
                return Ok(Value::Vector(Vec::new()));
            }
            return Ok(Value::Vector(vec![absent_sample(&args[0], t)]));
        }
        "timestamp" => {
            // A plain selector reports its samples' own timestamps.
            let vec = ev.eval_vector(&args[0], t)?;
            return Ok(Value::Vector(
                vec.into_iter()
                    .map(|s| Sample {
                        v: s.t as f64 / 1000.0,
                        t,
                        drop_name: true,
                        labels: s.labels,
                    })
                    .collect(),
            ));
        }
        "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            return date_function(ev, name, args, t);
        }
        _ => {}
    }

    if let Some(f) = simple_math(name) {
        let v = ev.eval_vector(&args[0], t)?;
        return Ok(simple(v, t, f));
    }
    match name {
        "round" => {
            let v = ev.eval_vector(&args[0], t)?;
            let to = match args.get(1) {
                Some(a) => ev.eval_scalar(a, t)?,
                None => 1.0,
            };
            let inv = 1.0 / to;
            Ok(simple(v, t, move |f| (f * inv + 0.5).floor() / inv))
        }
        "clamp" => {
            let v = ev.eval_vector(&args[0], t)?;
            let lo = ev.eval_scalar(&args[1], t)?;
            let hi = ev.eval_scalar(&args[2], t)?;
            if hi < lo {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(simple(v, t, move |f| lo.max(hi.min(f))))
        }
        "clamp_min" => {
            let v = ev.eval_vector(&args[0], t)?;
            let lo = ev.eval_scalar(&args[1], t)?;
            Ok(simple(v, t, move |f| lo.max(f)))
        }
        "clamp_max" => {
            let v = ev.eval_vector(&args[0], t)?;
            let hi = ev.eval_scalar(&args[1], t)?;
            Ok(simple(v, t, move |f| hi.min(f)))
        }
        "sort" | "sort_desc" => {
            sort_in_range_warning(ev);
            let mut v = ev.eval_vector(&args[0], t)?;
            let desc = name == "sort_desc";
            // NaN last in both directions, like Prometheus's heap sorters.
            v.sort_by(|a, b| {
                let o = match (a.v.is_nan(), b.v.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => return Ordering::Greater,
                    (false, true) => return Ordering::Less,
                    _ => a.v.partial_cmp(&b.v).unwrap_or(Ordering::Equal),
                };
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
            Ok(Value::Vector(v))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            sort_in_range_warning(ev);
            let mut v = ev.eval_vector(&args[0], t)?;
            let names: Vec<String> = args[1..]
                .iter()
                .map(|a| string_arg(a))
                .collect::<Result<_, _>>()?;
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                for n in &names {
                    let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if x == y {
                        continue;
                    }
                    let o = natural_cmp(x, y);
                    return if desc { o.reverse() } else { o };
                }
                let o = a.labels.cmp(&b.labels);
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
            Ok(Value::Vector(v))
        }
        "histogram_quantile" => histogram_quantile(ev, args, t),
        "histogram_fraction" => histogram_fraction(ev, args, t),
        "histogram_quantiles" => histogram_quantiles(ev, args, t),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // These read native histograms only; float samples give nothing.
            ev.eval_vector(&args[0], t)?;
            Ok(Value::Vector(Vec::new()))
        }
        _ => range_function(ev, name, args, t),
    }
}

fn sort_in_range_warning(ev: &mut Evaluator<'_>) {
    if ev.query_start() != ev.query_end() {
        ev.warn("sort is ineffective for range queries since results are always ordered by labels");
    }
}

fn simple_math(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |f| f * 180.0 / std::f64::consts::PI,
        "rad" => |f| f * std::f64::consts::PI / 180.0,
        "sgn" => |f| {
            if f < 0.0 {
                -1.0
            } else if f > 0.0 {
                1.0
            } else {
                f
            }
        },
        _ => return None,
    })
}

fn eval_matrix(ev: &mut Evaluator<'_>, e: &Expr, t: i64) -> Result<Vec<Series>, EvalError> {
    match ev.eval(e, t)? {
        Value::Matrix(m) => Ok(m),
        other => Err(EvalError::Type(format!(
            "expected range vector, got {}",
            other.type_name()
        ))),
    }
}

/// Labels for absent(): the equality matchers of a plain selector.
fn absent_sample(e: &Expr, t: i64) -> Sample {
    let vs = match e {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(ms) => Some(&ms.vs),
        _ => None,
    };
    let mut labels = Labels::default();
    if let Some(vs) = vs {
        let mut seen: Vec<&str> = Vec::new();
        for m in &vs.matchers.matchers {
            if m.name == METRIC_NAME {
                continue;
            }
            let eq = matches!(m.op, promql_parser::label::MatchOp::Equal);
            if eq && !seen.contains(&m.name.as_str()) {
                labels.set(&m.name, &m.value);
                seen.push(&m.name);
            } else {
                labels.set(&m.name, "");
            }
        }
    }
    Sample {
        labels,
        t,
        v: 1.0,
        drop_name: false,
    }
}

fn date_function(
    ev: &mut Evaluator<'_>,
    name: &str,
    args: &[Box<Expr>],
    t: i64,
) -> Result<Value, EvalError> {
    let f = |secs: f64| -> f64 {
        let ts = secs as i64;
        let days = ts.div_euclid(86_400);
        let sod = ts.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        match name {
            "minute" => ((sod / 60) % 60) as f64,
            "hour" => (sod / 3600) as f64,
            "day_of_week" => ((days + 4).rem_euclid(7)) as f64,
            "day_of_month" => d as f64,
            "day_of_year" => (days - days_from_civil(y, 1, 1) + 1) as f64,
            "days_in_month" => days_in_month(y, m) as f64,
            "month" => m as f64,
            _ => y as f64,
        }
    };
    if args.is_empty() {
        return Ok(Value::Vector(vec![Sample {
            labels: Labels::default(),
            t,
            v: f((t / 1000) as f64),
            drop_name: false,
        }]));
    }
    let v = ev.eval_vector(&args[0], t)?;
    Ok(simple(v, t, f))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Natural ordering (digits compared as numbers), like facette/natsort.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[i - 1].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        if x == y {
            continue;
        }
        let xd = x.bytes().all(|c| c.is_ascii_digit());
        let yd = y.bytes().all(|c| c.is_ascii_digit());
        if xd && yd {
            let (xn, yn) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            let o = xn.len().cmp(&yn.len()).then_with(|| xn.cmp(yn));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            return x.cmp(y);
        }
    }
    ca.len().cmp(&cb.len())
}

fn label_replace(ev: &mut Evaluator<'_>, args: &[Box<Expr>], t: i64) -> Result<Value, EvalError> {
    let dst = string_arg(&args[1])?;
    let repl = string_arg(&args[2])?;
    let src = string_arg(&args[3])?;
    let re_str = string_arg(&args[4])?;
    let re = regex::Regex::new(&format!("^(?s:{re_str})$")).map_err(|_| {
        EvalError::Exec(format!(
            "invalid regular expression in label_replace(): {re_str}"
        ))
    })?;
    if dst.is_empty() || dst.contains('\u{fffd}') {
        return Err(EvalError::Exec(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut v = ev.eval_vector(&args[0], t)?;
    for s in &mut v {
        let sv = s.labels.get(&src).unwrap_or("").to_string();
        if let Some(caps) = re.captures(&sv) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            s.labels.set(&dst, &res);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
    }
    check_unique(&v)?;
    Ok(Value::Vector(v))
}

fn label_join(ev: &mut Evaluator<'_>, args: &[Box<Expr>], t: i64) -> Result<Value, EvalError> {
    let dst = string_arg(&args[1])?;
    let sep = string_arg(&args[2])?;
    let srcs: Vec<String> = args[3..]
        .iter()
        .map(|a| string_arg(a))
        .collect::<Result<_, _>>()?;
    if dst.is_empty() {
        return Err(EvalError::Exec(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut v = ev.eval_vector(&args[0], t)?;
    for s in &mut v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let val = joined.join(&sep);
        s.labels.set(&dst, &val);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    check_unique(&v)?;
    Ok(Value::Vector(v))
}

/// Classic histogram_quantile over `le` buckets (quantile.go BucketQuantile).
fn histogram_quantile(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    t: i64,
) -> Result<Value, EvalError> {
    let q = ev.eval_scalar(&args[0], t)?;
    let v = ev.eval_vector(&args[1], t)?;
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        ev.warn(format!(
            "quantile value should be between 0 and 1, got {}",
            fmtfloat::go_g(q)
        ));
    }
    let groups = bucket_groups(ev, v);
    let mut out = Vec::new();
    for (labels, mut buckets) in groups {
        let (v, forced, min_b, max_b, max_diff) = bucket_quantile(q, &mut buckets);
        if forced {
            monotonicity_info(ev, &labels, min_b, max_b, max_diff, t);
        }
        out.push(Sample {
            labels,
            t,
            v,
            drop_name: true,
        });
    }
    Ok(Value::Vector(out))
}

/// histogram_quantiles(v, "label", q...): one output series per quantile,
/// labelled with the quantile (experimental upstream).
fn histogram_quantiles(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    t: i64,
) -> Result<Value, EvalError> {
    let v = ev.eval_vector(&args[0], t)?;
    let label = string_arg(&args[1])?;
    let mut qs = Vec::new();
    for a in &args[2..] {
        let q = ev.eval_scalar(a, t)?;
        if q.is_nan() || !(0.0..=1.0).contains(&q) {
            ev.warn(format!(
                "quantile value should be between 0 and 1, got {}",
                fmtfloat::go_g(q)
            ));
        }
        qs.push(q);
    }
    let groups = bucket_groups(ev, v);
    let mut out = Vec::new();
    for q in qs {
        for (labels, buckets) in &groups {
            let mut b = buckets.clone();
            let (v, forced, min_b, max_b, max_diff) = bucket_quantile(q, &mut b);
            if forced {
                monotonicity_info(ev, labels, min_b, max_b, max_diff, t);
            }
            let mut l = labels.clone();
            l.set(&label, &fmtfloat::openmetrics(q));
            out.push(Sample {
                labels: l,
                t,
                v,
                drop_name: true,
            });
        }
    }
    Ok(Value::Vector(out))
}

fn monotonicity_info(
    ev: &mut Evaluator<'_>,
    labels: &Labels,
    min_b: f64,
    max_b: f64,
    max_diff: f64,
    t: i64,
) {
    ev.info(format!(
        "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name \"{}\", from buckets {} to {}, with a max diff of {}, over {}",
        labels.get(METRIC_NAME).unwrap_or(""),
        fmtfloat::go_g(min_b),
        fmtfloat::go_g(max_b),
        fmtfloat::go_g(max_diff),
        t
    ));
}

/// Classic histogram_fraction over `le` buckets (quantile.go BucketFraction).
fn histogram_fraction(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    t: i64,
) -> Result<Value, EvalError> {
    let lower = ev.eval_scalar(&args[0], t)?;
    let upper = ev.eval_scalar(&args[1], t)?;
    let v = ev.eval_vector(&args[2], t)?;
    let groups = bucket_groups(ev, v);
    let out = groups
        .into_iter()
        .map(|(labels, mut buckets)| Sample {
            labels,
            t,
            v: bucket_fraction(lower, upper, &mut buckets),
            drop_name: true,
        })
        .collect();
    Ok(Value::Vector(out))
}

fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let merged = coalesce(buckets);
    let count = merged[merged.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if merged[0].0 <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in merged.iter().enumerate() {
        if i > 0 {
            lower_bound = merged[i - 1].0;
        }
        let upper_bound = b.0;
        let interp = |v: f64, rank: f64| {
            if lower_bound == f64::NEG_INFINITY {
                b.1
            } else {
                rank + (b.1 - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interp(lower, rank);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interp(upper, rank);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.1;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Groups classic buckets by their labels without `le`
/// (engine.go resetHistograms); bad `le` values are warned about.
fn bucket_groups(ev: &mut Evaluator<'_>, v: Vec<Sample>) -> Vec<(Labels, Vec<(f64, f64)>)> {
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    for s in v {
        let le = s.labels.get("le").unwrap_or("");
        let Some(upper) = crate::expfmt::parse_go_float(le) else {
            ev.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of \"{le}\" for metric name \"{}\"",
                s.labels.get(METRIC_NAME).unwrap_or("")
            ));
            continue;
        };
        let key = s.labels.drop(&["le"], false);
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((upper, s.v));
    }
    groups
}

/// Buckets sorted by upper bound with equal bounds added together
/// (quantile.go coalesceBuckets); `buckets` must already be sorted.
fn coalesce(buckets: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => merged.push(*b),
        }
    }
    merged
}

/// Returns (quantile, forced monotonic, min bucket, max bucket, max diff).
pub(crate) fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> (f64, bool, f64, f64, f64) {
    let none = (0.0, false, f64::INFINITY, f64::NEG_INFINITY, 0.0);
    if q.is_nan() {
        return (f64::NAN, none.1, none.2, none.3, none.4);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, none.1, none.2, none.3, none.4);
    }
    if q > 1.0 {
        return (f64::INFINITY, none.1, none.2, none.3, none.4);
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return (f64::NAN, none.1, none.2, none.3, none.4);
    }
    let mut merged = coalesce(buckets);
    let (mut forced, mut min_b, mut max_b, mut max_diff) =
        (false, f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if super::almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            min_b = min_b.min(b.0);
            max_b = max_b.max(b.0);
            max_diff = max_diff.max(prev - curr);
            continue;
        }
        prev = curr;
    }
    if merged.len() < 2 {
        return (f64::NAN, forced, min_b, max_b, max_diff);
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced, min_b, max_b, max_diff);
    }
    let mut rank = q * observations;
    let n = merged.len();
    let b = merged[..n - 1].partition_point(|x| x.1 < rank);
    let v = if b == n - 1 {
        merged[n - 2].0
    } else if b == 0 && merged[0].0 <= 0.0 {
        merged[0].0
    } else {
        let mut start = 0.0;
        let end = merged[b].0;
        let mut count = merged[b].1;
        if b > 0 {
            start = merged[b - 1].0;
            count -= merged[b - 1].1;
            rank -= merged[b - 1].1;
        }
        start + (end - start) * (rank / count)
    };
    (v, forced, min_b, max_b, max_diff)
}

/// One series' samples in a function's window: borrowed from the fetched
/// data when the argument is a plain range selector (the hot path of range
/// queries), owned otherwise.
struct Window<'a> {
    labels: Labels,
    points: std::borrow::Cow<'a, [(i64, f64)]>,
    drop_name: bool,
}

enum Windows {
    Fetched(super::eval::Fetched, i64, i64),
    Owned(Vec<Series>),
}

impl Windows {
    fn is_empty(&self) -> bool {
        match self {
            Windows::Owned(m) => m.is_empty(),
            Windows::Fetched(..) => self.iter().next().is_none(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = Window<'_>> + '_> {
        match self {
            Windows::Owned(m) => Box::new(m.iter().map(|s| Window {
                labels: s.labels.clone(),
                points: std::borrow::Cow::Borrowed(&s.points[..]),
                drop_name: s.drop_name,
            })),
            Windows::Fetched(data, mint, maxt) => Box::new(data.iter().filter_map(move |s| {
                let lo = s.samples.partition_point(|(ts, _)| *ts <= *mint);
                let hi = s.samples.partition_point(|(ts, _)| *ts <= *maxt);
                let w = &s.samples[lo..hi];
                let points = if w.iter().any(|(_, v)| crate::sample::is_stale_nan(*v)) {
                    std::borrow::Cow::Owned(
                        w.iter()
                            .filter(|(_, v)| !crate::sample::is_stale_nan(*v))
                            .copied()
                            .collect(),
                    )
                } else {
                    std::borrow::Cow::Borrowed(w)
                };
                (!points.is_empty()).then(|| Window {
                    labels: s.labels.clone(),
                    points,
                    drop_name: false,
                })
            })),
        }
    }
}

fn window_series(ev: &mut Evaluator<'_>, e: &Expr, t: i64) -> Result<Windows, EvalError> {
    match e {
        Expr::MatrixSelector(ms) => {
            let reft = at_or(ev, &ms.vs.at, t) - offset_ms(&ms.vs.offset);
            let data = ev.series_of(&ms.vs)?;
            Ok(Windows::Fetched(data, reft - dur_ms(&ms.range), reft))
        }
        Expr::Paren(p) => window_series(ev, &p.expr, t),
        other => Ok(Windows::Owned(eval_matrix(ev, other, t)?)),
    }
}

/// Functions over a range vector, one output sample per input series.
fn range_function(
    ev: &mut Evaluator<'_>,
    name: &str,
    args: &[Box<Expr>],
    t: i64,
) -> Result<Value, EvalError> {
    // Position of the range-vector argument.
    let mi = match name {
        "quantile_over_time" => 1,
        _ => 0,
    };
    let mut factors = (0.0, 0.0);
    if name == "double_exponential_smoothing" {
        let sf = ev.eval_scalar(&args[1], t)?;
        let tf = ev.eval_scalar(&args[2], t)?;
        if sf <= 0.0 || sf >= 1.0 {
            return Err(EvalError::Exec(format!(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
            )));
        }
        if tf <= 0.0 || tf >= 1.0 {
            return Err(EvalError::Exec(format!(
                "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
            )));
        }
        factors = (sf, tf);
    }
    let Some(marg) = args.get(mi) else {
        return Err(EvalError::Unsupported(format!("function {name}")));
    };
    let win = window(ev, marg, t);
    let scalar = match name {
        "quantile_over_time" => Some(ev.eval_scalar(&args[0], t)?),
        "predict_linear" => Some(ev.eval_scalar(&args[1], t)?),
        _ => None,
    };
    let matrix = window_series(ev, marg, t)?;
    if name == "quantile_over_time" {
        let q = scalar.unwrap_or(f64::NAN);
        if (q.is_nan() || !(0.0..=1.0).contains(&q)) && !matrix.is_empty() {
            ev.warn(format!(
                "quantile value should be between 0 and 1, got {}",
                fmtfloat::go_g(q)
            ));
        }
    }
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let counter_fn = matches!(name, "rate" | "increase" | "irate");
    let mut out = Vec::new();
    for s in matrix.iter() {
        if counter_fn {
            if let Some(n) = s.labels.get(METRIC_NAME) {
                if !["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .any(|suf| n.ends_with(suf))
                {
                    ev.info(format!(
                        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"{n}\""
                    ));
                }
            }
        }
        let v = apply_window(name, &s.points, win, scalar, factors, t)?;
        if let Some(v) = v {
            out.push(Sample {
                labels: s.labels,
                t,
                v,
                drop_name: !keep_name || s.drop_name,
            });
        }
    }
    Ok(Value::Vector(out))
}

/// A range function over one series' window. `win` is the window
/// `(start, end, range)` in ms, needed by rate/increase/delta.
pub(crate) fn apply_window(
    name: &str,
    p: &[(i64, f64)],
    win: Option<(i64, i64, i64)>,
    scalar: Option<f64>,
    factors: (f64, f64),
    t: i64,
) -> Result<Option<f64>, EvalError> {
    let v = match name {
        "rate" | "increase" | "delta" => {
            let Some((start, end, range)) = win else {
                return Err(EvalError::Type(format!(
                    "{name} needs a range vector selector"
                )));
            };
            extrapolated_rate(p, start, end, range, name != "delta", name == "rate")
        }
        "irate" | "idelta" => instant_value(p, name == "irate"),
        "deriv" => {
            if p.len() < 2 {
                None
            } else {
                Some(linear_regression(p, p[0].0).0)
            }
        }
        "predict_linear" => {
            if p.len() < 2 {
                None
            } else {
                let (slope, intercept) = linear_regression(p, t);
                Some(slope * scalar.unwrap_or(0.0) + intercept)
            }
        }
        "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
        "changes" => Some(
            p.windows(2)
                .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                .count() as f64,
        ),
        "avg_over_time" => Some(avg_over_time(p)),
        "sum_over_time" => {
            let (mut sum, mut c) = (0.0, 0.0);
            for (_, v) in p {
                (sum, c) = kahan_inc(*v, sum, c);
            }
            Some(if sum.is_infinite() { sum } else { sum + c })
        }
        "count_over_time" => Some(p.len() as f64),
        "min_over_time" | "max_over_time" => {
            let mut m = p[0].1;
            for (_, v) in p {
                let better = if name == "max_over_time" {
                    *v > m
                } else {
                    *v < m
                };
                if better || m.is_nan() {
                    m = *v;
                }
            }
            Some(m)
        }
        "last_over_time" => p.last().map(|x| x.1),
        "ts_of_last_over_time" => p.last().map(|x| x.0 as f64 / 1000.0),
        "ts_of_first_over_time" => p.first().map(|x| x.0 as f64 / 1000.0),
        "ts_of_max_over_time" | "ts_of_min_over_time" => {
            let (mut m, mut at) = (p[0].1, p[0].0);
            for (ts, v) in p {
                let better = if name == "ts_of_max_over_time" {
                    *v >= m
                } else {
                    *v <= m
                };
                if better || m.is_nan() {
                    m = *v;
                    at = *ts;
                }
            }
            Some(at as f64 / 1000.0)
        }
        "double_exponential_smoothing" => {
            if p.len() < 2 {
                None
            } else {
                let (sf, tf) = factors;
                let (mut s0, mut s1, mut b) = (0.0, p[0].1, p[1].1 - p[0].1);
                for (i, (_, v)) in p.iter().enumerate().skip(1) {
                    let x = sf * v;
                    if i > 1 {
                        b = tf * (s1 - s0) + (1.0 - tf) * b;
                    }
                    let y = (1.0 - sf) * (s1 + b);
                    s0 = s1;
                    s1 = x + y;
                }
                Some(s1)
            }
        }
        "first_over_time" => p.first().map(|x| x.1),
        "present_over_time" => Some(1.0),
        "quantile_over_time" => {
            let mut vals: Vec<f64> = p.iter().map(|x| x.1).collect();
            Some(quantile(scalar.unwrap_or(f64::NAN), &mut vals))
        }
        "stddev_over_time" | "stdvar_over_time" => {
            let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (_, f) in p {
                count += 1.0;
                let delta = f - (mean + c_mean);
                (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
                (aux, c_aux) = kahan_inc(delta * (f - (mean + c_mean)), aux, c_aux);
            }
            let var = (aux + c_aux) / count;
            Some(if name == "stddev_over_time" {
                var.sqrt()
            } else {
                var
            })
        }
        "mad_over_time" => {
            if p.iter().any(|x| x.1.is_nan()) {
                Some(f64::NAN)
            } else {
                let mut vals: Vec<f64> = p.iter().map(|x| x.1).collect();
                let median = quantile(0.5, &mut vals);
                for v in vals.iter_mut() {
                    *v = (*v - median).abs();
                }
                Some(quantile(0.5, &mut vals))
            }
        }
        other => return Err(EvalError::Unsupported(format!("function {other}"))),
    };
    Ok(v)
}

fn avg_over_time(p: &[(i64, f64)]) -> f64 {
    let (mut sum, mut count) = (p[0].1, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, (_, f)) in p[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(*f, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(f / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// rate/increase/delta with Prometheus's extrapolation (functions.go
/// extrapolatedRate).
fn extrapolated_rate(
    p: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: i64,
    counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let n1 = p.len() - 1;
    let (first_t, last_t) = (p[0].0, p[n1].0);
    let mut result = p[n1].1 - p[0].1;
    if counter {
        for w in p.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / n1 as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter {
        let mut to_zero = to_start;
        if result > 0.0 && p[0].1 >= 0.0 {
            to_zero = sampled * (p[0].1 / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_value(p: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev, last) = (p[p.len() - 2], p[p.len() - 1]);
    let mut v = if is_rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    if is_rate {
        let dt = last.0 - prev.0;
        if dt == 0 {
            return None;
        }
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares slope and intercept at `intercept_t` (functions.go
/// linearRegression, with Kahan sums).
fn linear_regression(p: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, (t, y)) in p.iter().enumerate() {
        if const_y && i > 0 && *y != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(*y, sy, cy);
        (sxy, cxy) = kahan_inc(x * y, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("b", "a10"), Ordering::Greater);
        assert_eq!(natural_cmp("10", "9"), Ordering::Greater);
    }
}
