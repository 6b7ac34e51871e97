//! The tree-walking evaluator: selectors with lookback and staleness,
//! offsets, `@`, subqueries, binary operators and aggregations, with
//! Prometheus 3 semantics (`promql/engine.go`).
//!
//! Each step of a range query is evaluated as an instant query; selector
//! data is fetched once per query for the whole time range it needs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};

use super::functions;
use super::value::{Annotation, AnnotationKind, Sample, Series, Value};
use super::{EvalError, SeriesSource};
use crate::labels::{Labels, MatchOp, Matcher, METRIC_NAME};
use crate::sample::{is_stale_nan, SeriesData};

pub(crate) fn dur_ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => dur_ms(d),
        Some(Offset::Neg(d)) => -dur_ms(d),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Data fetched for one selector node.
pub(crate) type Fetched = Arc<Vec<SeriesData>>;

/// Evaluates one query over a [`SeriesSource`].
pub(crate) struct Evaluator<'a> {
    source: &'a dyn SeriesSource,
    pub(crate) lookback: i64,
    /// Query start and end, for `@ start()` / `@ end()`.
    start: i64,
    end: i64,
    /// Default subquery step (the global evaluation interval).
    subquery_step: i64,
    /// The query's step (0 for instant queries).
    query_step: i64,
    fetched: HashMap<usize, Fetched>,
    ranges: HashMap<usize, (i64, i64)>,
    pub(crate) annotations: Vec<Annotation>,
    pub(crate) max_samples: usize,
    pub(crate) cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// When the query times out (monotonic clock).
    pub(crate) deadline: Option<std::time::Instant>,
    /// Cancellation checks since the clock was last read.
    checks: std::cell::Cell<u32>,
    /// Nodes of a range query computed for every step up front.
    tables: HashMap<usize, StepTable>,
    /// Per aggregation node: label storage address -> grouping key.
    group_caches: HashMap<usize, GroupCache>,
    /// Per aggregation node over a step table: each series' group.
    table_groupings: HashMap<usize, Arc<TableGrouping>>,
}

/// The group of every series of a step table, and each group's labels.
pub(crate) struct TableGrouping {
    pub(crate) group_of: Vec<usize>,
    pub(crate) labels: Vec<Labels>,
}

/// Grouping keys remembered across steps, keyed by label storage address.
pub(crate) type GroupCache = hashbrown::HashMap<usize, (Labels, u64)>;

/// One node's values at every step of a range query, computed series by
/// series (cache-friendly, like Prometheus's rangeEval) and read back one
/// step at a time. Values are stored step-major.
pub(crate) struct StepTable {
    start: i64,
    step: i64,
    nsteps: usize,
    pub(crate) series: Vec<Labels>,
    pub(crate) drop_name: bool,
    pub(crate) values: Vec<f64>,
    pub(crate) present: Vec<bool>,
    /// Sample timestamps, for plain selectors (timestamp() reads them).
    times: Option<Vec<i64>>,
}

impl StepTable {
    fn step_index(&self, t: i64) -> Option<usize> {
        if t < self.start || (t - self.start) % self.step != 0 {
            return None;
        }
        let k = ((t - self.start) / self.step) as usize;
        (k < self.nsteps).then_some(k)
    }
}

/// Range functions that can be computed series by series when their
/// range argument is a plain selector and every other argument a literal.
const SERIES_MAJOR: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "mad_over_time",
];

fn node_id<T>(n: &T) -> usize {
    n as *const T as usize
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(
        source: &'a dyn SeriesSource,
        lookback: i64,
        start: i64,
        end: i64,
        subquery_step: i64,
        max_samples: usize,
    ) -> Evaluator<'a> {
        Evaluator {
            source,
            lookback,
            start,
            end,
            subquery_step,
            query_step: 0,
            fetched: HashMap::new(),
            ranges: HashMap::new(),
            annotations: Vec::new(),
            max_samples,
            cancel: None,
            deadline: None,
            checks: std::cell::Cell::new(0),
            tables: HashMap::new(),
            group_caches: HashMap::new(),
            table_groupings: HashMap::new(),
        }
    }

    pub(crate) fn warn(&mut self, msg: impl Into<String>) {
        self.annotate(AnnotationKind::Warning, msg.into());
    }

    pub(crate) fn info(&mut self, msg: impl Into<String>) {
        self.annotate(AnnotationKind::Info, msg.into());
    }

    fn annotate(&mut self, kind: AnnotationKind, message: String) {
        let a = Annotation { kind, message };
        if !self.annotations.contains(&a) {
            self.annotations.push(a);
        }
    }

    pub(crate) fn set_query_step(&mut self, step: i64) {
        self.query_step = step;
    }

    pub(crate) fn query_start(&self) -> i64 {
        self.start
    }

    pub(crate) fn query_end(&self) -> i64 {
        self.end
    }

    pub(crate) fn query_step(&self) -> i64 {
        if self.start == self.end {
            0
        } else {
            self.query_step
        }
    }

    pub(crate) fn at_ms_pub(&self, at: &Option<AtModifier>) -> Option<i64> {
        self.at_ms(at)
    }

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.start),
            Some(AtModifier::End) => Some(self.end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    /// Records, for every selector, the time range the query will read
    /// (like Prometheus's FindMinMaxTime), so each is fetched once.
    pub(crate) fn plan(&mut self, e: &Expr, start: i64, end: i64) {
        match e {
            Expr::VectorSelector(vs) => {
                let (s, en) = self.ref_range(&vs.at, &vs.offset, start, end);
                self.extend_range(node_id(vs), s - self.lookback, en);
            }
            Expr::MatrixSelector(ms) => {
                let (s, en) = self.ref_range(&ms.vs.at, &ms.vs.offset, start, end);
                self.extend_range(node_id(&ms.vs), s - dur_ms(&ms.range), en);
            }
            Expr::Subquery(sq) => {
                let (s, en) = self.ref_range(&sq.at, &sq.offset, start, end);
                self.plan(&sq.expr, s - dur_ms(&sq.range), en);
            }
            Expr::Aggregate(a) => {
                self.plan(&a.expr, start, end);
                if let Some(p) = &a.param {
                    self.plan(p, start, end);
                }
            }
            Expr::Unary(u) => self.plan(&u.expr, start, end),
            Expr::Binary(b) => {
                self.plan(&b.lhs, start, end);
                self.plan(&b.rhs, start, end);
            }
            Expr::Paren(p) => self.plan(&p.expr, start, end),
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.plan(a, start, end);
                }
            }
            _ => {}
        }
    }

    fn ref_range(
        &self,
        at: &Option<AtModifier>,
        off: &Option<Offset>,
        start: i64,
        end: i64,
    ) -> (i64, i64) {
        let o = offset_ms(off);
        match self.at_ms(at) {
            Some(a) => (a - o, a - o),
            None => (start - o, end - o),
        }
    }

    fn extend_range(&mut self, id: usize, mint: i64, maxt: i64) {
        let r = self.ranges.entry(id).or_insert((mint, maxt));
        r.0 = r.0.min(mint);
        r.1 = r.1.max(maxt);
    }

    /// The data fetched for a selector (fetched on first use).
    pub(crate) fn series_of(&mut self, vs: &VectorSelector) -> Result<Fetched, EvalError> {
        let id = node_id(vs);
        if let Some(f) = self.fetched.get(&id) {
            return Ok(f.clone());
        }
        let (mint, maxt) = self
            .ranges
            .get(&id)
            .copied()
            .unwrap_or((i64::MIN, i64::MAX));
        let matchers = selector_matchers(vs)?;
        let data = self
            .source
            .select(&matchers, mint, maxt)
            .map_err(|e| EvalError::Source(e.to_string()))?;
        let total: usize = data.iter().map(|s| s.samples.len()).sum();
        if total > self.max_samples {
            return Err(EvalError::TooManySamples);
        }
        let f = Arc::new(data);
        self.fetched.insert(id, f.clone());
        Ok(f)
    }

    /// The precomputed table and step index for `e` at `t`, if any.
    pub(crate) fn table_step(&self, e: &Expr, t: i64) -> Option<(usize, usize)> {
        let id = match e {
            Expr::VectorSelector(vs) => node_id(vs),
            Expr::Call(c) => node_id(c),
            Expr::Paren(p) => return self.table_step(&p.expr, t),
            _ => return None,
        };
        let k = self.tables.get(&id)?.step_index(t)?;
        Some((id, k))
    }

    pub(crate) fn table(&self, id: usize) -> &StepTable {
        // Invariant: ids come from table_step, which found the table.
        &self.tables[&id]
    }

    /// Groups of a table's series for an aggregation, worked out once.
    pub(crate) fn table_grouping(
        &mut self,
        a: &AggregateExpr,
        tid: usize,
        key: impl Fn(&Labels) -> u64,
        group_labels: impl Fn(&Labels) -> Labels,
    ) -> Arc<TableGrouping> {
        if let Some(g) = self.table_groupings.get(&node_id(a)) {
            return g.clone();
        }
        let tb = &self.tables[&tid];
        let mut index: hashbrown::HashMap<u64, usize> = hashbrown::HashMap::new();
        let mut g = TableGrouping {
            group_of: Vec::with_capacity(tb.series.len()),
            labels: Vec::new(),
        };
        for l in &tb.series {
            let next = g.labels.len();
            let gi = *index.entry(key(l)).or_insert(next);
            if gi == next {
                g.labels.push(group_labels(l));
            }
            g.group_of.push(gi);
        }
        let g = Arc::new(g);
        self.table_groupings.insert(node_id(a), g.clone());
        g
    }

    pub(crate) fn group_cache(&mut self, a: &AggregateExpr) -> &mut GroupCache {
        self.group_caches.entry(node_id(a)).or_default()
    }

    pub(crate) fn check_cancel(&self) -> Result<(), EvalError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(EvalError::Cancelled);
        }
        if let Some(d) = self.deadline {
            // Reading the clock costs more than a step of most loops.
            let n = self.checks.get().wrapping_add(1);
            self.checks.set(n);
            if n % 64 == 0 && std::time::Instant::now() >= d {
                return Err(EvalError::Cancelled);
            }
        }
        Ok(())
    }

    /// Refuses a step table of `n` series by `nsteps` steps that would
    /// hold more values than the query may load.
    fn check_table(&self, n: usize, nsteps: usize) -> Result<(), EvalError> {
        match n.checked_mul(nsteps) {
            Some(cells) if cells <= self.max_samples => Ok(()),
            _ => Err(EvalError::TooManySamples),
        }
    }

    /// Precomputes, for a range query over `[start, end]`, the nodes that
    /// can be evaluated series by series. Subqueries keep their own grids
    /// and are not entered.
    pub(crate) fn precompute(
        &mut self,
        e: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<(), EvalError> {
        let nsteps = ((end - start) / step + 1) as usize;
        match e {
            Expr::VectorSelector(vs) if vs.at.is_none() => {
                let t = self.selector_table(vs, start, step, nsteps)?;
                self.tables.insert(node_id(vs), t);
            }
            Expr::Call(c) => {
                if let Some(t) = self.call_table(c, start, step, nsteps)? {
                    self.tables.insert(node_id(c), t);
                } else {
                    for a in &c.args.args {
                        self.precompute(a, start, end, step)?;
                    }
                }
            }
            Expr::Aggregate(a) => {
                self.precompute(&a.expr, start, end, step)?;
                if let Some(p) = &a.param {
                    self.precompute(p, start, end, step)?;
                }
            }
            Expr::Unary(u) => self.precompute(&u.expr, start, end, step)?,
            Expr::Binary(b) => {
                self.precompute(&b.lhs, start, end, step)?;
                self.precompute(&b.rhs, start, end, step)?;
            }
            Expr::Paren(p) => self.precompute(&p.expr, start, end, step)?,
            _ => {}
        }
        Ok(())
    }

    fn selector_table(
        &mut self,
        vs: &VectorSelector,
        start: i64,
        step: i64,
        nsteps: usize,
    ) -> Result<StepTable, EvalError> {
        let data = self.series_of(vs)?;
        let off = offset_ms(&vs.offset);
        let n = data.len();
        self.check_table(n, nsteps)?;
        let mut values = vec![0.0; n * nsteps];
        let mut present = vec![false; n * nsteps];
        let mut times = vec![0i64; n * nsteps];
        for (i, s) in data.iter().enumerate() {
            self.check_cancel()?;
            let mut j = 0;
            for k in 0..nsteps {
                let reft = start + k as i64 * step - off;
                while j < s.samples.len() && s.samples[j].0 <= reft {
                    j += 1;
                }
                if j == 0 {
                    continue;
                }
                let (ts, v) = s.samples[j - 1];
                if ts <= reft - self.lookback || is_stale_nan(v) {
                    continue;
                }
                values[k * n + i] = v;
                present[k * n + i] = true;
                times[k * n + i] = ts;
            }
        }
        Ok(StepTable {
            start,
            step,
            nsteps,
            series: data.iter().map(|s| s.labels.clone()).collect(),
            drop_name: false,
            values,
            present,
            times: Some(times),
        })
    }

    fn call_table(
        &mut self,
        c: &Call,
        start: i64,
        step: i64,
        nsteps: usize,
    ) -> Result<Option<StepTable>, EvalError> {
        let name = c.func.name;
        if !SERIES_MAJOR.contains(&name) {
            return Ok(None);
        }
        let mi = if name == "quantile_over_time" { 1 } else { 0 };
        let Some(Expr::MatrixSelector(ms)) = c.args.args.get(mi).map(|a| a.as_ref()) else {
            return Ok(None);
        };
        if ms.vs.at.is_some() {
            return Ok(None);
        }
        let mut scalar = None;
        for (i, a) in c.args.args.iter().enumerate() {
            if i == mi {
                continue;
            }
            match a.as_ref() {
                Expr::NumberLiteral(n) => scalar = Some(n.val),
                _ => return Ok(None),
            }
        }
        if name == "quantile_over_time" {
            let q = scalar.unwrap_or(f64::NAN);
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                // Leave it to the per-step path, which also warns.
                return Ok(None);
            }
        }
        let data = self.series_of(&ms.vs)?;
        let off = offset_ms(&ms.vs.offset);
        let range = dur_ms(&ms.range);
        let n = data.len();
        self.check_table(n, nsteps)?;
        let mut values = vec![0.0; n * nsteps];
        let mut present = vec![false; n * nsteps];
        let counter_fn = matches!(name, "rate" | "increase" | "irate");
        let mut filtered: Vec<(i64, f64)> = Vec::new();
        for (i, s) in data.iter().enumerate() {
            self.check_cancel()?;
            let (mut lo, mut hi) = (0usize, 0usize);
            let mut warned = false;
            for k in 0..nsteps {
                let t = start + k as i64 * step;
                let reft = t - off;
                while lo < s.samples.len() && s.samples[lo].0 <= reft - range {
                    lo += 1;
                }
                hi = hi.max(lo);
                while hi < s.samples.len() && s.samples[hi].0 <= reft {
                    hi += 1;
                }
                let w = &s.samples[lo..hi];
                let p: &[(i64, f64)] = if w.iter().any(|(_, v)| is_stale_nan(*v)) {
                    filtered.clear();
                    filtered.extend(w.iter().filter(|(_, v)| !is_stale_nan(*v)));
                    &filtered
                } else {
                    w
                };
                if p.is_empty() {
                    continue;
                }
                if counter_fn && !warned {
                    warned = true;
                    if let Some(mn) = s.labels.get(METRIC_NAME) {
                        if !["_total", "_sum", "_count", "_bucket"]
                            .iter()
                            .any(|suf| mn.ends_with(suf))
                        {
                            self.info(format!(
                                "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"{mn}\""
                            ));
                        }
                    }
                }
                let win = Some((reft - range, reft, range));
                if let Some(v) = functions::apply_window(name, p, win, scalar, (0.0, 0.0), t)? {
                    values[k * n + i] = v;
                    present[k * n + i] = true;
                }
            }
        }
        Ok(Some(StepTable {
            start,
            step,
            nsteps,
            series: data.iter().map(|s| s.labels.clone()).collect(),
            drop_name: !matches!(name, "last_over_time" | "first_over_time"),
            values,
            present,
            times: None,
        }))
    }

    fn read_table(&self, id: usize, t: i64) -> Option<Value> {
        let tb = self.tables.get(&id)?;
        let k = tb.step_index(t)?;
        let n = tb.series.len();
        let row = k * n..(k + 1) * n;
        let mut out = Vec::new();
        for (i, (v, p)) in tb.values[row.clone()]
            .iter()
            .zip(&tb.present[row])
            .enumerate()
        {
            if *p {
                out.push(Sample {
                    labels: tb.series[i].clone(),
                    t: tb.times.as_ref().map_or(t, |ts| ts[k * n + i]),
                    v: *v,
                    drop_name: tb.drop_name,
                });
            }
        }
        Some(Value::Vector(out))
    }

    /// Evaluates `e` at time `t` (ms).
    pub(crate) fn eval(&mut self, e: &Expr, t: i64) -> Result<Value, EvalError> {
        self.check_cancel()?;
        if !self.tables.is_empty() {
            let id = match e {
                Expr::VectorSelector(vs) => Some(node_id(vs)),
                Expr::Call(c) => Some(node_id(c)),
                _ => None,
            };
            if let Some(v) = id.and_then(|id| self.read_table(id, t)) {
                return Ok(v);
            }
        }
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(vec) => Ok(Value::Vector(
                    vec.into_iter()
                        .map(|s| Sample {
                            v: -s.v,
                            t,
                            drop_name: true,
                            labels: s.labels,
                        })
                        .collect(),
                )),
                other => Err(EvalError::Unsupported(format!(
                    "unary minus on {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.vector_selector(vs, t)?)),
            Expr::MatrixSelector(ms) => {
                let reft = self.at_ms(&ms.vs.at).unwrap_or(t) - offset_ms(&ms.vs.offset);
                Ok(Value::Matrix(self.matrix_selector(
                    &ms.vs,
                    reft - dur_ms(&ms.range),
                    reft,
                )?))
            }
            Expr::Subquery(sq) => Ok(Value::Matrix(self.subquery(sq, t)?)),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Call(c) => self.call(c, t),
            Expr::Extension(_) => Err(EvalError::Unsupported("extension expressions".into())),
        }
    }

    fn vector_selector(&mut self, vs: &VectorSelector, t: i64) -> Result<Vec<Sample>, EvalError> {
        let reft = self.at_ms(&vs.at).unwrap_or(t) - offset_ms(&vs.offset);
        let data = self.series_of(vs)?;
        let mut out = Vec::new();
        for s in data.iter() {
            // Latest sample at or before reft, within the left-open lookback
            // window (reft - lookback, reft] (Prometheus 3).
            let i = s.samples.partition_point(|(ts, _)| *ts <= reft);
            if i == 0 {
                continue;
            }
            let (ts, v) = s.samples[i - 1];
            if ts <= reft - self.lookback || is_stale_nan(v) {
                continue;
            }
            out.push(Sample {
                labels: s.labels.clone(),
                t: ts,
                v,
                drop_name: false,
            });
        }
        Ok(out)
    }

    /// Samples in the left-open window `(mint, maxt]`, staleness markers dropped.
    fn matrix_selector(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, EvalError> {
        let data = self.series_of(vs)?;
        let mut out = Vec::new();
        for s in data.iter() {
            let lo = s.samples.partition_point(|(ts, _)| *ts <= mint);
            let hi = s.samples.partition_point(|(ts, _)| *ts <= maxt);
            let points: Vec<(i64, f64)> = s.samples[lo..hi]
                .iter()
                .filter(|(_, v)| !is_stale_nan(*v))
                .copied()
                .collect();
            if points.is_empty() {
                continue;
            }
            out.push(Series {
                labels: s.labels.clone(),
                points,
                drop_name: false,
            });
        }
        Ok(out)
    }

    fn subquery(&mut self, sq: &SubqueryExpr, t: i64) -> Result<Vec<Series>, EvalError> {
        let step = sq.step.as_ref().map_or(self.subquery_step, dur_ms).max(1);
        let reft = self.at_ms(&sq.at).unwrap_or(t) - offset_ms(&sq.offset);
        let range = dur_ms(&sq.range);
        // First step: the first multiple of `step` after reft - range
        // (engine.go subqueryTimeRange; Go's / truncates like Rust's).
        let lower = reft - range;
        let mut start = step * (lower / step);
        if start <= lower {
            start += step;
        }
        self.range_eval(&sq.expr, start, reft, step, false)
    }

    /// Evaluates `e` at every step in `[start, end]` and gathers series.
    /// With `cleanup`, names marked for removal are removed per step.
    pub(crate) fn range_eval(
        &mut self,
        e: &Expr,
        start: i64,
        end: i64,
        step: i64,
        cleanup: bool,
    ) -> Result<Vec<Series>, EvalError> {
        let mut index: hashbrown::HashMap<Labels, usize> = hashbrown::HashMap::new();
        // Steps usually return the very same label sets (shared storage),
        // so look them up by address first and hash only on a miss.
        let mut by_storage: hashbrown::HashMap<usize, usize> = hashbrown::HashMap::new();
        let mut out: Vec<Series> = Vec::new();
        let mut total = 0usize;
        let mut t = start;
        while t <= end {
            let v = self.eval(e, t)?;
            let samples: Vec<(Labels, f64, bool)> = match v {
                Value::Scalar(f) => vec![(Labels::default(), f, false)],
                Value::Vector(vec) => {
                    let vec = if cleanup { cleanup_vector(vec)? } else { vec };
                    vec.into_iter().map(|s| (s.labels, s.v, s.drop_name)).collect()
                }
                other => {
                    return Err(EvalError::Type(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        if matches!(other, Value::Matrix(_)) { "range vector" } else { other.type_name() }
                    )))
                }
            };
            for (labels, v, drop_name) in samples {
                total += 1;
                if total > self.max_samples {
                    return Err(EvalError::TooManySamples);
                }
                let id = labels.storage_id();
                let i = match by_storage.get(&id) {
                    Some(&i) if out[i].labels.same_storage(&labels) => i,
                    _ => {
                        let next = out.len();
                        let i = *index.entry(labels.clone()).or_insert(next);
                        if i == next {
                            out.push(Series {
                                labels,
                                points: Vec::new(),
                                drop_name,
                            });
                        }
                        by_storage.insert(id, i);
                        i
                    }
                };
                out[i].points.push((t, v));
                out[i].drop_name |= drop_name;
            }
            t += step;
        }
        Ok(out)
    }

    fn call(&mut self, c: &Call, t: i64) -> Result<Value, EvalError> {
        functions::call(self, c, t)
    }

    /// Evaluates an argument that must be a scalar.
    pub(crate) fn eval_scalar(&mut self, e: &Expr, t: i64) -> Result<f64, EvalError> {
        match self.eval(e, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(EvalError::Type(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an argument that must be an instant vector.
    pub(crate) fn eval_vector(&mut self, e: &Expr, t: i64) -> Result<Vec<Sample>, EvalError> {
        match self.eval(e, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(EvalError::Type(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    fn binary(&mut self, b: &BinaryExpr, t: i64) -> Result<Value, EvalError> {
        let op = BinOp::parse(&b.op.to_string())?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = op.apply(l, r);
                if op.is_comparison() {
                    // The parser only allows scalar comparisons with bool.
                    return Ok(Value::Scalar(if keep { 1.0 } else { 0.0 }));
                }
                Ok(Value::Scalar(v))
            }
            (Value::Vector(l), Value::Scalar(r)) => Ok(Value::Vector(vector_scalar(
                op,
                l,
                r,
                false,
                return_bool,
                t,
            ))),
            (Value::Scalar(l), Value::Vector(r)) => {
                Ok(Value::Vector(vector_scalar(op, r, l, true, return_bool, t)))
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let matching = Matching::from_expr(b, op);
                let out = match op {
                    BinOp::And => set_and(l, r, &matching),
                    BinOp::Or => set_or(l, r, &matching),
                    BinOp::Unless => set_unless(l, r, &matching),
                    _ => vector_vector(op, l, r, &matching, return_bool, t)?,
                };
                Ok(Value::Vector(out))
            }
            (l, r) => Err(EvalError::Type(format!(
                "binary operator {} not defined between {} and {}",
                b.op,
                l.type_name(),
                r.type_name()
            ))),
        }
    }

    fn aggregate(&mut self, a: &AggregateExpr, t: i64) -> Result<Value, EvalError> {
        super::aggregate::aggregate(self, a, t)
    }
}

/// Removes names marked for delayed removal; duplicates are then an error.
pub(crate) fn cleanup_vector(mut vec: Vec<Sample>) -> Result<Vec<Sample>, EvalError> {
    let mut any = false;
    for s in &mut vec {
        if s.drop_name {
            s.labels = s.labels.without_name();
            s.drop_name = false;
            any = true;
        }
    }
    // Only name removal can make two label sets equal: every operator
    // already guarantees unique output otherwise.
    if any {
        check_unique(&vec)?;
    }
    Ok(vec)
}

/// Removes names marked for delayed removal from a range result and merges
/// series that end up with the same labels (engine.go
/// mergeSeriesWithSameLabelset); equal timestamps are then an error.
pub(crate) fn cleanup_matrix(series: Vec<Series>) -> Result<Vec<Series>, EvalError> {
    let mut index: hashbrown::HashMap<Labels, usize> =
        hashbrown::HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    let mut merged = false;
    for mut s in series {
        if s.drop_name {
            s.labels = s.labels.without_name();
            s.drop_name = false;
        }
        match index.get(&s.labels) {
            Some(&i) => {
                out[i].points.extend_from_slice(&s.points);
                merged = true;
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    if merged {
        for s in &mut out {
            s.points.sort_by_key(|p| p.0);
            if s.points.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(EvalError::Exec(
                    "vector cannot contain metrics with the same labelset".into(),
                ));
            }
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

pub(crate) fn check_unique(vec: &[Sample]) -> Result<(), EvalError> {
    let mut seen = hashbrown::HashSet::with_capacity(vec.len());
    for s in vec {
        if !seen.insert(&s.labels) {
            return Err(EvalError::Exec(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Store matchers for a selector: the name (if any) and every matcher.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, EvalError> {
    let mut out = Vec::new();
    if let Some(n) = &vs.name {
        out.push(
            Matcher::new(MatchOp::Equal, METRIC_NAME, n)
                .map_err(|e| EvalError::Exec(e.to_string()))?,
        );
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(EvalError::Unsupported("'or' inside a selector".into()));
    }
    for m in &vs.matchers.matchers {
        let op = match m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => MatchOp::Regex,
            PMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        out.push(Matcher::new(op, &m.name, &m.value).map_err(|e| EvalError::Exec(e.to_string()))?);
    }
    Ok(out)
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    fn parse(s: &str) -> Result<BinOp, EvalError> {
        Ok(match s {
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Mod,
            "^" => BinOp::Pow,
            "atan2" => BinOp::Atan2,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            ">" => BinOp::Gt,
            "<" => BinOp::Lt,
            ">=" => BinOp::Ge,
            "<=" => BinOp::Le,
            "and" => BinOp::And,
            "or" => BinOp::Or,
            "unless" => BinOp::Unless,
            other => return Err(EvalError::Unsupported(format!("binary operator {other}"))),
        })
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// (value, keep) like engine.go vectorElemBinop for floats.
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            BinOp::Add => (l + r, true),
            BinOp::Sub => (l - r, true),
            BinOp::Mul => (l * r, true),
            BinOp::Div => (l / r, true),
            BinOp::Mod => (l % r, true),
            BinOp::Pow => (l.powf(r), true),
            BinOp::Atan2 => (l.atan2(r), true),
            BinOp::Eq => (l, l == r),
            BinOp::Ne => (l, l != r),
            BinOp::Gt => (l, l > r),
            BinOp::Lt => (l, l < r),
            BinOp::Ge => (l, l >= r),
            BinOp::Le => (l, l <= r),
            BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
        }
    }
}

fn vector_scalar(
    op: BinOp,
    vec: Vec<Sample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
    t: i64,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(vec.len());
    for mut s in vec {
        let (l, r) = if swap { (scalar, s.v) } else { (s.v, scalar) };
        let (mut v, mut keep) = op.apply(l, r);
        // The vector element's value is the result of a filter, even when
        // the scalar is on the left.
        if op.is_comparison() && swap {
            v = r;
        }
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            if !op.is_comparison() || return_bool {
                s.drop_name = true;
            }
            s.v = v;
            s.t = t;
            out.push(s);
        }
    }
    out
}

/// How two vectors are matched.
pub(crate) struct Matching {
    on: bool,
    labels: Vec<String>,
    card: Card,
    include: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

impl Matching {
    fn from_expr(b: &BinaryExpr, op: BinOp) -> Matching {
        let mut m = Matching {
            on: false,
            labels: Vec::new(),
            card: if op.is_set() {
                Card::ManyToMany
            } else {
                Card::OneToOne
            },
            include: Vec::new(),
        };
        if let Some(bm) = &b.modifier {
            if let Some(lm) = &bm.matching {
                m.on = matches!(lm, LabelModifier::Include(_));
                m.labels = lm.labels().labels.clone();
            }
            match &bm.card {
                VectorMatchCardinality::ManyToOne(l) => {
                    m.card = Card::ManyToOne;
                    m.include = l.labels.clone();
                }
                VectorMatchCardinality::OneToMany(l) => {
                    m.card = Card::OneToMany;
                    m.include = l.labels.clone();
                }
                VectorMatchCardinality::ManyToMany => m.card = Card::ManyToMany,
                VectorMatchCardinality::OneToOne => {}
            }
        }
        m
    }

    /// The matching signature: `on` labels, or all but the `ignoring` ones
    /// and the metric name.
    fn signature(&self, l: &Labels) -> Labels {
        if self.on {
            l.keep(&self.labels)
        } else {
            l.drop(&self.labels, true)
        }
    }
}

fn set_and(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    let sigs: std::collections::HashSet<Labels> =
        rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| sigs.contains(&m.signature(&s.labels)))
        .collect()
}

fn set_or(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    let sigs: std::collections::HashSet<Labels> =
        lhs.iter().map(|s| m.signature(&s.labels)).collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|s| !sigs.contains(&m.signature(&s.labels))),
    );
    out
}

fn set_unless(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    let sigs: std::collections::HashSet<Labels> =
        rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| !sigs.contains(&m.signature(&s.labels)))
        .collect()
}

/// One-to-one and many-to-one/one-to-many matching (engine.go VectorBinop).
fn vector_vector(
    op: BinOp,
    mut lhs: Vec<Sample>,
    mut rhs: Vec<Sample>,
    m: &Matching,
    return_bool: bool,
    t: i64,
) -> Result<Vec<Sample>, EvalError> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    if m.card == Card::OneToMany {
        std::mem::swap(&mut lhs, &mut rhs);
    }
    let mut right: HashMap<Labels, Sample> = HashMap::with_capacity(rhs.len());
    for rs in rhs {
        let sig = m.signature(&rs.labels);
        if let Some(dup) = right.get(&sig) {
            let side = if m.card == Card::OneToMany {
                "left"
            } else {
                "right"
            };
            let (mut a, mut b) = (rs.labels.prom_string(), dup.labels.prom_string());
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            return Err(EvalError::Exec(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{a}, {b}];many-to-many matching not allowed: matching labels must be unique on one side",
                sig.prom_string()
            )));
        }
        right.insert(sig, rs);
    }
    let mut matched: HashMap<Labels, std::collections::HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for ls in lhs {
        let sig = m.signature(&ls.labels);
        let Some(rs) = right.get(&sig) else { continue };
        let (fl, fr) = if m.card == Card::OneToMany {
            (rs.v, ls.v)
        } else {
            (ls.v, rs.v)
        };
        let (mut v, keep) = op.apply(fl, fr);
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
        }
        // Arithmetic drops the name at once; `bool` comparisons mark it
        // for delayed removal (engine.go VectorBinop/resultMetric).
        let metric = result_metric(&ls.labels, &rs.labels, m, !op.is_comparison());
        // Uniqueness is checked before filtering, as Prometheus does.
        match m.card {
            Card::OneToOne => {
                if matched.contains_key(&sig) {
                    return Err(EvalError::Exec(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                matched.insert(sig, Default::default());
            }
            _ => {
                let set = matched.entry(sig).or_default();
                if !set.insert(metric.clone()) {
                    return Err(EvalError::Exec(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
            }
        }
        if !keep && !return_bool {
            continue;
        }
        out.push(Sample {
            labels: metric,
            t,
            v,
            drop_name: return_bool,
        });
    }
    Ok(out)
}

fn result_metric(lhs: &Labels, rhs: &Labels, m: &Matching, drop_name: bool) -> Labels {
    let mut l = if drop_name {
        lhs.without_name()
    } else {
        lhs.clone()
    };
    if m.card == Card::OneToOne {
        if m.on {
            l = l.keep(&m.labels);
        } else {
            l = l.drop(&m.labels, false);
        }
    }
    for name in &m.include {
        match rhs.get(name) {
            Some(v) => l.set(name, v),
            None => l.set(name, ""),
        }
    }
    l
}
