//! PromQL evaluation with Prometheus 3 semantics over a [`SeriesSource`].
//! Expressions are parsed by the `promql-parser` crate; this module owns
//! evaluation and the promqltest file runner ([`promqltest`]).
//!
//! Semantics followed (and where upstream defines them, `promql/engine.go`
//! and `promql/functions.go` in prometheus/prometheus): left-open range
//! selectors and lookback `(t - d, t]`, staleness markers ending series, 5m
//! default lookback, delayed `__name__` removal. Native histograms are out of
//! scope.

mod aggregate;
mod eval;
mod functions;
mod parse;
pub mod promqltest;
mod value;

use std::time::Duration;

use promql_parser::parser::Expr;
use thiserror::Error;

pub use parse::{parse, MAX_DEPTH, MAX_DURATION, MAX_QUERY_BYTES, MAX_TIME_MS};
pub use value::{Annotation, AnnotationKind, Sample, Series, Value};

use crate::labels::Matcher;
use crate::sample::SeriesData;

/// Where series data comes from: the embedded store or a remote API.
pub trait SeriesSource: Sync {
    /// Series matching all matchers with their samples in `[mint, maxt]`.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, SourceError>;
}

/// A data source failed.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Why a query failed. Messages follow Prometheus's.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EvalError {
    /// The expression does not parse.
    #[error("{0}")]
    Parse(String),
    /// A type error the parser does not catch.
    #[error("{0}")]
    Type(String),
    /// A runtime error (duplicate labelsets, bad matching, ...).
    #[error("{0}")]
    Exec(String),
    /// Something augur does not implement, such as native histograms.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// More samples than the configured limit.
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// The data source failed.
    #[error("{0}")]
    Source(String),
    /// The caller cancelled the query (timeout).
    #[error("query timed out in expression evaluation")]
    Cancelled,
    /// The query asks for more than augur evaluates (too many points per
    /// series, a time out of range): a client error.
    #[error("{0}")]
    Limit(String),
}

/// Most points a range query may return per series (Prometheus's API limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Query settings.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Set by the caller to stop a running query (client gone, shutdown).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Longest a query may run; checked against a monotonic clock while
    /// evaluating (the wall clock never enters the query's semantics).
    pub timeout: Option<Duration>,
    /// How far back an instant selector looks for a sample (default 5m).
    pub lookback: Duration,
    /// Step of subqueries without an explicit step (default 1m).
    pub default_subquery_step: Duration,
    /// Most samples a query may load or return (default 5 million).
    pub max_samples: usize,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine {
            cancel: None,
            timeout: None,
            lookback: Duration::from_secs(300),
            default_subquery_step: Duration::from_secs(60),
            max_samples: 5_000_000,
        }
    }
}

/// A query result with its annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value: scalar, string or vector for instant queries, a matrix
    /// for range queries.
    pub value: Value,
    /// Warnings and infos.
    pub annotations: Vec<Annotation>,
}

/// Prometheus's `util/almost.Equal`: relative tolerance `eps`, NaN equals
/// NaN, a staleness marker only equals a staleness marker.
pub fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    use crate::sample::is_stale_nan;
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if (a.is_nan() && b.is_nan()) || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < eps * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Refuses evaluation times whose arithmetic could overflow.
fn check_time(name: &str, t: i64) -> Result<(), EvalError> {
    if t.unsigned_abs() > MAX_TIME_MS as u64 {
        return Err(EvalError::Limit(format!(
            "invalid parameter \"{name}\": time out of range"
        )));
    }
    Ok(())
}

/// The range checks of Prometheus's API (`web/api/v1/api.go` queryRange),
/// here so that every caller (API, analyses, Kayenta) gets them, with
/// checked arithmetic.
pub fn check_range(start: i64, end: i64, step: i64) -> Result<(), EvalError> {
    check_time("start", start)?;
    check_time("end", end)?;
    if end < start {
        return Err(EvalError::Limit(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    if step <= 0 {
        return Err(EvalError::Limit(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    // Both bounded by MAX_TIME_MS, so the difference cannot overflow.
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(EvalError::Limit(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    Ok(())
}

impl Engine {
    fn evaluator<'a>(
        &self,
        source: &'a dyn SeriesSource,
        start: i64,
        end: i64,
    ) -> eval::Evaluator<'a> {
        let mut ev = eval::Evaluator::new(
            source,
            self.lookback.as_millis() as i64,
            start,
            end,
            self.default_subquery_step.as_millis() as i64,
            self.max_samples,
        );
        ev.cancel = self.cancel.clone();
        ev.deadline = self
            .timeout
            .and_then(|t| std::time::Instant::now().checked_add(t));
        ev
    }

    /// Evaluates `expr` at `t` (ms).
    pub fn instant(
        &self,
        source: &dyn SeriesSource,
        expr: &Expr,
        t: i64,
    ) -> Result<QueryResult, EvalError> {
        check_time("time", t)?;
        let mut ev = self.evaluator(source, t, t);
        ev.plan(expr, t, t);
        let value = match ev.eval(expr, t)? {
            Value::Vector(v) => Value::Vector(eval::cleanup_vector(v)?),
            Value::Matrix(m) => Value::Matrix(
                m.into_iter()
                    .map(|mut s| {
                        if s.drop_name {
                            s.labels = s.labels.without_name();
                            s.drop_name = false;
                        }
                        s
                    })
                    .collect(),
            ),
            other => other,
        };
        Ok(QueryResult {
            value,
            annotations: ev.annotations,
        })
    }

    /// Evaluates `expr` at every step from `start` to `end` (ms).
    pub fn range(
        &self,
        source: &dyn SeriesSource,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult, EvalError> {
        check_range(start, end, step)?;
        let mut ev = self.evaluator(source, start, end);
        ev.set_query_step(step);
        ev.plan(expr, start, end);
        if end > start {
            ev.precompute(expr, start, end, step)?;
        }
        let series = ev.range_eval(expr, start, end, step, false)?;
        let series = eval::cleanup_matrix(series)?;
        Ok(QueryResult {
            value: Value::Matrix(series),
            annotations: ev.annotations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::store::Store;

    #[test]
    fn sample_cap_and_cancellation_stop_queries() {
        let store = Store::new();
        let l = Labels::from_pairs([("__name__", "m")]);
        for k in 0..100 {
            store.append(&l, k * 1000, k as f64).unwrap();
        }
        let e = parse("sum_over_time(m[100s])").unwrap();
        let small = Engine {
            max_samples: 10,
            ..Engine::default()
        };
        assert_eq!(
            small.instant(&store, &e, 99_000).unwrap_err(),
            EvalError::TooManySamples
        );
        let ok = Engine::default().instant(&store, &e, 99_000).unwrap();
        assert_eq!(
            ok.value,
            Value::Vector(vec![Sample {
                labels: Labels::default(),
                t: 99_000,
                v: 4950.0,
                drop_name: false
            }])
        );
        let cancelled = Engine {
            cancel: Some(std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
                true,
            ))),
            ..Engine::default()
        };
        assert_eq!(
            cancelled.range(&store, &e, 0, 99_000, 1000).unwrap_err(),
            EvalError::Cancelled
        );
    }

    #[test]
    fn parse_errors_carry_position_and_text() {
        let e = parse("foo bar").unwrap_err().to_string();
        assert_eq!(e, "1:5: parse error: unexpected identifier \"bar\"");
        let e = parse("sum(rate(x[5m])").unwrap_err().to_string();
        assert!(
            e.starts_with("1:16: parse error: unclosed left parenthesis"),
            "{e}"
        );
        let e = parse("up[5x]").unwrap_err().to_string();
        assert!(e.contains("5x"), "{e}");
        let e = parse("rate(up)").unwrap_err().to_string();
        assert!(e.contains("expected type range vector"), "{e}");
    }

    /// The deepest queries the parser lets through evaluate on a 2 MiB
    /// stack (tokio's default for blocking threads; augur's runtime gives
    /// them 8 MiB) in a debug build, whose frames are the largest.
    #[test]
    fn the_deepest_accepted_queries_evaluate_on_a_small_stack() {
        let d = MAX_DEPTH;
        let shapes = [
            format!("{}up{}", "abs(".repeat(d - 2), ")".repeat(d - 2)),
            format!("{}up{}", "sum(".repeat(d - 2), ")".repeat(d - 2)),
            format!("up{}", " + up".repeat(d - 1)),
            format!("up{}", " ^ up".repeat(d - 1)),
            format!("{}up", "- ".repeat(d - 1)),
            format!("{}up{}", "(".repeat(d - 2), ")".repeat(d - 2)),
            // Nested subqueries multiply their steps; one step per level
            // (range = step, at whole minutes) keeps this linear.
            format!(
                "{}up{}",
                "last_over_time(".repeat(d / 2 - 1),
                "[1m:1m])".repeat(d / 2 - 1)
            ),
        ];
        let h = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let store = Store::new();
                let l = Labels::from_pairs([("__name__", "up")]);
                for k in 0..20 {
                    store.append(&l, k * 15_000, 1.0).unwrap();
                }
                let engine = Engine::default();
                for q in &shapes {
                    let e = parse(q).unwrap_or_else(|e| panic!("{}: {e}", &q[..30]));
                    engine.instant(&store, &e, 300_000).unwrap();
                    engine.range(&store, &e, 0, 300_000, 60_000).unwrap();
                }
            })
            .unwrap();
        h.join().unwrap();
    }

    /// Range queries take a series-by-series fast path; stepping instant
    /// queries does not. Both must give the same numbers.
    #[test]
    fn range_fast_path_matches_stepped_instant_queries() {
        let store = Store::new();
        for i in 0..12 {
            let l = Labels::from_pairs([
                ("__name__", "http_requests_total".to_string()),
                ("job", format!("j{}", i % 3)),
                ("pod", format!("p{i}")),
            ]);
            for k in 0..80i64 {
                // A counter reset at step 40 for odd pods, a gap for pod 5.
                if i == 5 && (30..36).contains(&k) {
                    continue;
                }
                let v = if i % 2 == 1 && k >= 40 {
                    (k - 40) * 3
                } else {
                    k * (i + 1)
                };
                store.append(&l, k * 15_000, v as f64).unwrap();
            }
            if i == 7 {
                store
                    .append(&l, 80 * 15_000, crate::store::stale_nan())
                    .unwrap();
            }
        }
        let engine = Engine::default();
        for q in [
            "http_requests_total",
            "rate(http_requests_total[1m])",
            "sum by (job) (rate(http_requests_total[2m]))",
            "avg without (pod) (increase(http_requests_total[5m] offset 1m))",
            "max(max_over_time(http_requests_total[3m]))",
            "count by (job) (changes(http_requests_total[4m]))",
            "quantile_over_time(0.9, http_requests_total[2m])",
            "deriv(http_requests_total[5m]) > 0",
            "stddev by (job) (http_requests_total offset 30s)",
        ] {
            let e = parse(q).unwrap();
            let (start, end, step) = (60_000, 1_260_000, 30_000);
            let r = engine.range(&store, &e, start, end, step).unwrap();
            let Value::Matrix(m) = r.value else { panic!() };
            let mut t = start;
            while t <= end {
                let Value::Vector(v) = engine.instant(&store, &e, t).unwrap().value else {
                    panic!()
                };
                for s in &v {
                    let series = m
                        .iter()
                        .find(|x| x.labels == s.labels)
                        .unwrap_or_else(|| panic!("{q}: {} missing", s.labels));
                    let p = series
                        .points
                        .iter()
                        .find(|p| p.0 == t)
                        .unwrap_or_else(|| panic!("{q}: no point at {t}"));
                    assert!(
                        p.1 == s.v || (p.1.is_nan() && s.v.is_nan()),
                        "{q} at {t}: {} vs {}",
                        p.1,
                        s.v
                    );
                }
                let in_range = m
                    .iter()
                    .filter(|x| x.points.iter().any(|p| p.0 == t))
                    .count();
                assert_eq!(in_range, v.len(), "{q} at {t}");
                t += step;
            }
        }
    }
}
