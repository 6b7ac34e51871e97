//! Aggregation operators (`engine.go` aggregation, aggregationK,
//! aggregationCountValues), including Prometheus's float summation
//! (Kahan-Neumaier) and the exact heap behaviour of topk/bottomk.

use hashbrown::HashMap;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::eval::Evaluator;
use super::value::{Sample, Value};
use super::EvalError;
use crate::fmtfloat;
use crate::labels::Labels;

/// Kahan-Neumaier compensated addition (`util/kahansum.Inc`).
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Agg {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Quantile,
}

struct Group {
    labels: Labels,
    seen: bool,
    value: f64,
    mean: f64,
    kahan_c: f64,
    count: f64,
    incremental_mean: bool,
    drop_name: bool,
    heap: Vec<Sample>,
}

/// The group a series falls in, as a 64-bit hash of its grouping labels
/// (engine.go generateGroupingKey does the same).
fn grouping_key(l: &Labels, grouping: &[String], without: bool) -> u64 {
    if without {
        l.hash_selected(|n| n != crate::labels::METRIC_NAME && !grouping.iter().any(|g| g == n))
    } else {
        l.hash_selected(|n| grouping.iter().any(|g| g == n))
    }
}

/// Go's `sort.Interface`-style less for topk heaps: NaN always sorts first.
fn less_topk(a: f64, b: f64) -> bool {
    a.is_nan() || a < b
}

fn less_bottomk(a: f64, b: f64) -> bool {
    a.is_nan() || a > b
}

/// container/heap up/down with a Less function, as Go implements them.
fn heap_up(h: &mut [Sample], mut j: usize, less: fn(f64, f64) -> bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        if i == j || !less(h[j].v, h[i].v) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_down(h: &mut [Sample], i0: usize, n: usize, less: fn(f64, f64) -> bool) -> bool {
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && less(h[j2].v, h[j1].v) {
            j = j2;
        }
        if !less(h[j].v, h[i].v) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
    i > i0
}

fn heap_push(h: &mut Vec<Sample>, s: Sample, less: fn(f64, f64) -> bool) {
    h.push(s);
    let n = h.len();
    heap_up(h, n - 1, less);
}

fn heap_fix(h: &mut [Sample], i: usize, less: fn(f64, f64) -> bool) {
    let n = h.len();
    if !heap_down(h, i, n, less) {
        heap_up(h, i, less);
    }
}

/// Go's insertion sort (what sort.Sort runs for up to 12 elements), with
/// the reversed Less, so ties land where Prometheus puts them.
fn sort_reverse(h: &mut [Sample], less: fn(f64, f64) -> bool) {
    for i in 1..h.len() {
        let mut j = i;
        while j > 0 && less(h[j - 1].v, h[j].v) {
            h.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// Quantile of values as `promql/quantile.go` quantile().
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, like vectorByValueHeap.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

pub(crate) fn aggregate(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    t: i64,
) -> Result<Value, EvalError> {
    let op = a.op.to_string();
    let (mut grouping, without) = match &a.modifier {
        None => (Vec::new(), false),
        Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
        Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
    };
    grouping.sort();

    if op == "count_values" {
        let label = match a.param.as_deref() {
            Some(Expr::StringLiteral(s)) => s.val.clone(),
            _ => match a.param.as_deref().map(|p| ev.eval(p, t)).transpose()? {
                Some(Value::String(s)) => s,
                _ => {
                    return Err(EvalError::Type(
                        "count_values needs a string parameter".into(),
                    ))
                }
            },
        };
        if label.is_empty() {
            return Err(EvalError::Exec(format!("invalid label name {label:?}")));
        }
        let input = ev.eval_vector(&a.expr, t)?;
        return count_values(input, &label, grouping, without, t);
    }

    let param = match a.param.as_deref() {
        None => None,
        Some(p) => Some(ev.eval_scalar(p, t)?),
    };
    if a.param.is_none() {
        if let Some((tid, k)) = ev.table_step(&a.expr, t) {
            if let Some(agg) = simple_agg(&op) {
                return Ok(Value::Vector(aggregate_table(
                    ev, a, tid, k, agg, &grouping, without, t,
                )));
            }
        }
    }
    let input = ev.eval_vector(&a.expr, t)?;

    match op.as_str() {
        "topk" | "bottomk" | "limitk" | "limit_ratio" => {
            return aggregate_k(ev, &op, param.unwrap_or(0.0), input, &grouping, without, t);
        }
        "quantile" => {
            let q = param.unwrap_or(f64::NAN);
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                ev.warn(format!(
                    "quantile value should be between 0 and 1, got {}",
                    fmtfloat::go_g(q)
                ));
            }
        }
        _ => {}
    }

    let agg = match simple_agg(&op) {
        Some(a) => a,
        None if op == "quantile" => Agg::Quantile,
        None => return Err(EvalError::Unsupported(format!("aggregation {op}"))),
    };
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    // Range queries aggregate the same label sets at every step: remember
    // their keys by storage address (verified, so a reused address is safe).
    let mut cache = std::mem::take(ev.group_cache(a));
    for s in input {
        let id = s.labels.storage_id();
        let key = match cache.get(&id) {
            Some((l, k)) if l.same_storage(&s.labels) => *k,
            _ => {
                let k = grouping_key(&s.labels, &grouping, without);
                if cache.len() < 1 << 20 {
                    cache.insert(id, (s.labels.clone(), k));
                }
                k
            }
        };
        let gi = match index.get(&key) {
            Some(i) => *i,
            None => {
                let labels = if without {
                    s.labels.drop(&grouping, true)
                } else {
                    s.labels.keep(&grouping)
                };
                groups.push(new_group(labels));
                index.insert(key, groups.len() - 1);
                groups.len() - 1
            }
        };
        let g = &mut groups[gi];
        let f = s.v;
        let drop_name = s.drop_name;
        if agg == Agg::Quantile {
            g.heap.push(s);
        }
        accumulate(g, agg, f, drop_name);
    }

    *ev.group_cache(a) = cache;
    let out = groups
        .into_iter()
        .map(|g| finish(g, agg, param, t))
        .collect();
    Ok(Value::Vector(out))
}

/// Adds one value to a group (engine.go aggregation).
fn accumulate(g: &mut Group, agg: Agg, f: f64, drop_name: bool) {
    if !g.seen {
        g.seen = true;
        g.value = f;
        g.mean = f;
        g.count = 1.0;
        g.drop_name = drop_name;
        match agg {
            Agg::Stddev | Agg::Stdvar => {
                g.value = if f.is_nan() || f.is_infinite() {
                    f64::NAN
                } else {
                    0.0
                };
            }
            Agg::Group => g.value = 1.0,
            _ => {}
        }
        return;
    }
    if drop_name {
        g.drop_name = true;
    }
    match agg {
        Agg::Sum => {
            let (v, c) = kahan_inc(f, g.value, g.kahan_c);
            g.value = v;
            g.kahan_c = c;
        }
        Agg::Avg => {
            g.count += 1.0;
            if !g.incremental_mean {
                let (nv, nc) = kahan_inc(f, g.value, g.kahan_c);
                if !nv.is_infinite() {
                    g.value = nv;
                    g.kahan_c = nc;
                    return;
                }
                // The sum would overflow: switch to an incremental mean.
                g.incremental_mean = true;
                g.mean = g.value / (g.count - 1.0);
                g.kahan_c /= g.count - 1.0;
            }
            let q = (g.count - 1.0) / g.count;
            let (m, c) = kahan_inc(f / g.count, q * g.mean, q * g.kahan_c);
            g.mean = m;
            g.kahan_c = c;
        }
        Agg::Group | Agg::Quantile => {}
        Agg::Max => {
            if g.value < f || g.value.is_nan() {
                g.value = f;
            }
        }
        Agg::Min => {
            if g.value > f || g.value.is_nan() {
                g.value = f;
            }
        }
        Agg::Count => g.count += 1.0,
        Agg::Stddev | Agg::Stdvar => {
            g.count += 1.0;
            let delta = f - g.mean;
            g.mean += delta / g.count;
            g.value += delta * (f - g.mean);
        }
    }
}

/// The group's result.
fn finish(g: Group, agg: Agg, param: Option<f64>, t: i64) -> Sample {
    let v = match agg {
        Agg::Avg if g.incremental_mean => g.mean + g.kahan_c,
        Agg::Avg => g.value / g.count + g.kahan_c / g.count,
        Agg::Count => g.count,
        Agg::Stdvar => g.value / g.count,
        Agg::Stddev => (g.value / g.count).sqrt(),
        Agg::Quantile => {
            let mut vals: Vec<f64> = g.heap.iter().map(|s| s.v).collect();
            quantile(param.unwrap_or(f64::NAN), &mut vals)
        }
        Agg::Sum => g.value + g.kahan_c,
        _ => g.value,
    };
    Sample {
        labels: g.labels,
        t,
        v,
        drop_name: g.drop_name,
    }
}

fn simple_agg(op: &str) -> Option<Agg> {
    Some(match op {
        "sum" => Agg::Sum,
        "avg" => Agg::Avg,
        "count" => Agg::Count,
        "min" => Agg::Min,
        "max" => Agg::Max,
        "group" => Agg::Group,
        "stddev" => Agg::Stddev,
        "stdvar" => Agg::Stdvar,
        _ => return None,
    })
}

/// Aggregates one step of a precomputed range-query node: each series'
/// group is worked out once per query instead of once per step.
#[allow(clippy::too_many_arguments)]
fn aggregate_table(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    tid: usize,
    k: usize,
    agg: Agg,
    grouping: &[String],
    without: bool,
    t: i64,
) -> Vec<Sample> {
    let map = ev.table_grouping(
        a,
        tid,
        |l| grouping_key(l, grouping, without),
        |l| {
            if without {
                l.drop(grouping, true)
            } else {
                l.keep(grouping)
            }
        },
    );
    let tb = ev.table(tid);
    let n = tb.series.len();
    let mut groups: Vec<Option<Group>> = (0..map.labels.len()).map(|_| None).collect();
    let mut order: Vec<usize> = Vec::new();
    for i in 0..n {
        if !tb.present[k * n + i] {
            continue;
        }
        let gi = map.group_of[i];
        let g = groups[gi].get_or_insert_with(|| {
            order.push(gi);
            new_group(map.labels[gi].clone())
        });
        accumulate(g, agg, tb.values[k * n + i], tb.drop_name);
    }
    order
        .into_iter()
        .filter_map(|gi| groups[gi].take())
        .map(|g| finish(g, agg, None, t))
        .collect()
}

fn new_group(labels: Labels) -> Group {
    Group {
        labels,
        seen: false,
        value: 0.0,
        mean: 0.0,
        kahan_c: 0.0,
        count: 0.0,
        incremental_mean: false,
        drop_name: false,
        heap: Vec::new(),
    }
}

fn count_values(
    input: Vec<Sample>,
    label: &str,
    mut grouping: Vec<String>,
    without: bool,
    t: i64,
) -> Result<Value, EvalError> {
    if !without {
        grouping.push(label.to_string());
        grouping.sort();
    }
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<Sample> = Vec::new();
    for s in input {
        let mut l = s.labels.clone();
        l.set(label, &format_f(s.v));
        let key = grouping_key(&l, &grouping, without);
        match index.get(&key) {
            Some(i) => out[*i].v += 1.0,
            None => {
                let labels = if without {
                    l.drop(&grouping, true)
                } else {
                    l.keep(&grouping)
                };
                index.insert(key, out.len());
                out.push(Sample {
                    labels,
                    t,
                    v: 1.0,
                    drop_name: false,
                });
            }
        }
    }
    Ok(Value::Vector(out))
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
fn format_f(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    // Rust's Display prints the shortest round-trip digits without exponent.
    format!("{f}")
}

fn aggregate_k(
    ev: &mut Evaluator<'_>,
    op: &str,
    param: f64,
    input: Vec<Sample>,
    grouping: &[String],
    without: bool,
    t: i64,
) -> Result<Value, EvalError> {
    let mut k: i64 = 0;
    let mut ratio = 0.0;
    match op {
        "limit_ratio" => {
            if param == 0.0 {
                return Ok(Value::Vector(Vec::new()));
            }
            if param.is_nan() {
                return Err(EvalError::Exec("Ratio value is NaN".into()));
            }
            if param > 1.0 {
                ev.warn(format!(
                    "ratio value should be between -1 and 1, got {}, capping to 1",
                    fmtfloat::go_g(param)
                ));
            }
            if param < -1.0 {
                ev.warn(format!(
                    "ratio value should be between -1 and 1, got {}, capping to -1",
                    fmtfloat::go_g(param)
                ));
            }
            ratio = param.clamp(-1.0, 1.0);
        }
        _ => {
            if param.is_nan() {
                return Err(EvalError::Exec("Parameter value is NaN".into()));
            }
            if param < 1.0 {
                return Ok(Value::Vector(Vec::new()));
            }
            if param >= 9.223372036854776e18 {
                return Err(EvalError::Exec(format!(
                    "Scalar value {} overflows int64",
                    fmtfloat::go_g(param)
                )));
            }
            k = (param as i64).min(input.len() as i64);
        }
    }
    let less = if op == "bottomk" {
        less_bottomk
    } else {
        less_topk
    };
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut heaps: Vec<Vec<Sample>> = Vec::new();
    for s in input {
        let key = grouping_key(&s.labels, grouping, without);
        let gi = *index.entry(key).or_insert_with(|| {
            heaps.push(Vec::new());
            heaps.len() - 1
        });
        let h = &mut heaps[gi];
        match op {
            "topk" | "bottomk" => {
                if (h.len() as i64) < k {
                    heap_push(h, s, less);
                } else if (op == "topk" && (h[0].v < s.v || (h[0].v.is_nan() && !s.v.is_nan())))
                    || (op == "bottomk" && (h[0].v > s.v || (h[0].v.is_nan() && !s.v.is_nan())))
                {
                    h[0] = s;
                    if k > 1 {
                        heap_fix(h, 0, less);
                    }
                }
            }
            "limitk" => {
                if (h.len() as i64) < k {
                    h.push(s);
                }
            }
            _ => {
                if ratio_sample(ratio, &s.labels) {
                    h.push(s);
                }
            }
        }
    }
    let mut out = Vec::new();
    for mut h in heaps {
        if matches!(op, "topk" | "bottomk") && h.len() > 1 {
            sort_reverse(&mut h, less);
        }
        for mut s in h {
            s.t = t;
            out.push(s);
        }
    }
    Ok(Value::Vector(out))
}

/// `limit_ratio` sampling: a stable pseudo-random offset per label set,
/// compared with the ratio (`util/ratiosampler`).
fn ratio_sample(ratio: f64, labels: &Labels) -> bool {
    let offset = labels_hash(labels) as f64 / u64::MAX as f64;
    if ratio >= 0.0 {
        offset < ratio
    } else {
        offset >= 1.0 + ratio
    }
}

/// Prometheus's `labels.Labels.Hash()`: xxHash64 over name, 0xff, value,
/// 0xff for each label.
pub(crate) fn labels_hash(labels: &Labels) -> u64 {
    let mut buf = Vec::with_capacity(256);
    for l in labels.iter() {
        buf.extend_from_slice(l.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(l.value.as_bytes());
        buf.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&buf, 0)
}
