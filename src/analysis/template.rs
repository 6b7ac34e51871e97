//! Analysis templates: TOML files (`[[analysis]]` tables, in files listed by
//! `analysis_files` or inline in the config) compiled into [`Template`]s,
//! and the argument substitution that turns a template into the queries of
//! one run.
//!
//! Placeholders, as in Argo Rollouts' AnalysisTemplates: `{{ args.NAME }}`
//! (escaped for a PromQL double-quoted string), `{{ track }}` (the arm's
//! track value: `baseline` or `canary` unless `[analysis.tracks]` says
//! otherwise), `{{ window }}` and `{{ interval }}` (Prometheus durations).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::{line_col, toml_message, Located};
use crate::duration;
use crate::stats::judge::TestKind;

/// A template error with its position.
/// Longest interval, window or initial delay of an analysis: a canary
/// is judged over minutes to days, and larger values would overflow the
/// schedule's millisecond arithmetic.
pub const MAX_SCHEDULE: Duration = Duration::from_secs(30 * 86400);

/// Refuses a schedule duration beyond [`MAX_SCHEDULE`], naming the field.
pub fn check_schedule(key: &str, d: Duration) -> Result<(), String> {
    if d > MAX_SCHEDULE {
        return Err(format!(
            "{key}: {} is longer than the longest analysis schedule, 30d",
            duration::format(d)
        ));
    }
    Ok(())
}

/// An error in an analysis file, at its position.
pub type TemplateError = crate::diag::Located;

/// Which change of the canary is bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Higher is worse (errors, latency).
    Increase,
    /// Lower is worse (throughput, success rate).
    Decrease,
    /// Any change is bad.
    Either,
}

/// What a measurement without data counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoData {
    /// A failed measurement.
    Fail,
    /// An inconclusive measurement (the default: never a silent pass).
    Inconclusive,
    /// A successful measurement.
    Pass,
}

/// How a metric is judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Check {
    /// Flagger's `thresholdRange` on the canary value: inclusive bounds.
    Threshold {
        /// Lowest passing value.
        min: Option<f64>,
        /// Highest passing value.
        max: Option<f64>,
    },
    /// Canary against baseline.
    Relative {
        /// Highest passing canary/baseline ratio.
        max_ratio: Option<f64>,
        /// Lowest passing canary/baseline ratio.
        min_ratio: Option<f64>,
        /// Highest passing canary − baseline.
        max_delta: Option<f64>,
        /// Lowest passing canary − baseline.
        min_delta: Option<f64>,
    },
    /// A statistical test.
    Test {
        /// Which test (the `augur judge --test` names). A stored run with
        /// a name this version does not know fails to load, naming it.
        test: TestKind,
        /// Level of a fixed test (p < alpha fails); sequential tests share
        /// the template's `alpha`.
        alpha: f64,
        /// Confidence of reported intervals.
        confidence: f64,
        /// Compare log values (latency).
        log: bool,
    },
}

/// The queries of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Queries {
    /// One query per arm.
    Values {
        /// Baseline query.
        baseline: String,
        /// Canary query.
        canary: String,
    },
    /// Error and total counts per arm (count tests).
    Counts {
        /// Errors, with `{{ track }}`.
        errors: String,
        /// Requests, with `{{ track }}`.
        total: String,
    },
}

/// One metric of a template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Name, unique within the template.
    pub name: String,
    /// The queries, with placeholders.
    pub queries: Queries,
    /// How it is judged.
    pub check: Check,
    /// Which change is bad.
    pub direction: Direction,
    /// A failure fails the run at once, whatever the limits.
    pub critical: bool,
    /// Weight in the score.
    pub weight: f64,
    /// Score group.
    pub group: String,
    /// What no data counts as.
    pub no_data: NoData,
    /// NaN values are dropped (`remove`) or become 0 (`replace`).
    pub nan_replace: bool,
    /// Unit for readable messages.
    pub unit: String,
    /// Argo's per-metric `failureLimit`: failed measurements this metric
    /// tolerates (none: the template's `failure_limit`).
    #[serde(default)]
    pub failure_limit: Option<u32>,
}

/// One declared argument.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arg {
    /// Name.
    pub name: String,
    /// Default value; none means the run must supply it.
    pub default: Option<String>,
}

/// A compiled analysis template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Name, unique across all templates.
    pub name: String,
    /// What it checks.
    pub description: String,
    /// Where it came from (`file` or `file:line`).
    pub source: String,
    /// Time between measurements.
    #[serde(with = "millis")]
    pub interval: Duration,
    /// Data window of one measurement.
    #[serde(with = "millis")]
    pub window: Duration,
    /// Wait before the first measurement.
    #[serde(with = "millis")]
    pub initial_delay: Duration,
    /// Measurements (not counting errors); none = until stopped.
    pub count: Option<u32>,
    /// Argo `failureLimit`: failed measurements tolerated per metric.
    pub failure_limit: u32,
    /// Argo `inconclusiveLimit`.
    pub inconclusive_limit: u32,
    /// Argo `consecutiveErrorLimit`.
    pub consecutive_error_limit: u32,
    /// Argo `consecutiveSuccessLimit` (0 = off).
    pub consecutive_success_limit: u32,
    /// Flagger `threshold`: when set, the run fails on this many failed
    /// intervals in total instead of the Argo limits.
    pub threshold: Option<u32>,
    /// Family level of the sequential tests, split across them (Bonferroni).
    pub alpha: f64,
    /// Track values substituted for `{{ track }}` (may use args).
    pub tracks: (String, String),
    /// Declared arguments.
    pub args: Vec<Arg>,
    /// Metrics.
    pub metrics: Vec<Metric>,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

// ---- the file as written ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    analysis: Vec<Spanned<RawTemplate>>,
}

/// One `[[analysis]]` table as written (also used inline in the config).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    interval: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    initial_delay: Option<Spanned<String>>,
    count: Option<Spanned<i64>>,
    failure_limit: Option<Spanned<i64>>,
    inconclusive_limit: Option<Spanned<i64>>,
    consecutive_error_limit: Option<Spanned<i64>>,
    consecutive_success_limit: Option<Spanned<i64>>,
    threshold: Option<Spanned<i64>>,
    alpha: Option<Spanned<f64>>,
    tracks: Option<RawTracks>,
    #[serde(default)]
    args: BTreeMap<String, Spanned<RawArg>>,
    #[serde(default)]
    metric: Vec<Spanned<RawMetric>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracks {
    baseline: Spanned<String>,
    canary: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArg {
    default: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: Spanned<String>,
    query: Option<Spanned<String>>,
    baseline: Option<Spanned<String>>,
    canary: Option<Spanned<String>>,
    errors: Option<Spanned<String>>,
    total: Option<Spanned<String>>,
    check: Spanned<String>,
    min: Option<f64>,
    max: Option<f64>,
    max_ratio: Option<f64>,
    min_ratio: Option<f64>,
    max_delta: Option<f64>,
    min_delta: Option<f64>,
    test: Option<Spanned<String>>,
    alpha: Option<Spanned<f64>>,
    confidence: Option<Spanned<f64>>,
    #[serde(default)]
    log: bool,
    direction: Option<Spanned<String>>,
    #[serde(default)]
    critical: bool,
    weight: Option<Spanned<f64>>,
    group: Option<String>,
    #[serde(default)]
    must_have_data: bool,
    no_data: Option<Spanned<String>>,
    nan_strategy: Option<Spanned<String>>,
    #[serde(default)]
    unit: String,
    failure_limit: Option<Spanned<i64>>,
}

struct Cx<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<TemplateError>,
}

impl Cx<'_> {
    fn err(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        self.errors
            .push(Located::at(self.file, self.text, span.start, message));
    }

    fn dur(&mut self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match duration::parse(s.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    self.err(s.span(), format!("{key}: {e}"));
                    default
                }
            },
        }
    }

    fn count(&mut self, v: &Option<Spanned<i64>>, key: &str, default: u32) -> u32 {
        match v {
            None => default,
            Some(s) => match u32::try_from(*s.get_ref()) {
                Ok(n) => n,
                Err(_) => {
                    self.err(
                        s.span(),
                        format!(
                            "{key}: expected a count of 0 or more, found {}",
                            s.get_ref()
                        ),
                    );
                    default
                }
            },
        }
    }
}

/// Test names a `check = "test"` metric may use.
fn test_kind(name: &str) -> Option<TestKind> {
    Some(match name {
        "mann-whitney" => TestKind::MannWhitney,
        "welch" => TestKind::Welch,
        "ks" => TestKind::Ks,
        "proportions" => TestKind::Proportions,
        "fisher" => TestKind::Fisher,
        "sequential-counts" => TestKind::SequentialCounts,
        "sequential-t" => TestKind::SequentialT,
        "sequential-band" => TestKind::SequentialBand,
        "kayenta" => TestKind::Kayenta,
        _ => return None,
    })
}

/// Whether a test is sequential (shares the template's alpha).
pub fn is_sequential(kind: TestKind) -> bool {
    matches!(
        kind,
        TestKind::SequentialCounts | TestKind::SequentialT | TestKind::SequentialBand
    )
}

/// Parses an analysis file (one or more `[[analysis]]` tables).
pub fn parse_file(file: &str, text: &str) -> Result<Vec<Template>, Vec<TemplateError>> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        vec![Located::at(
            file,
            text,
            e.span().map_or(0, |s| s.start),
            toml_message(&e),
        )]
    })?;
    if raw.analysis.is_empty() {
        return Err(vec![Located::at(
            file,
            text,
            0,
            "no [[analysis]] table: expected at least one analysis template",
        )]);
    }
    compile_all(
        file,
        text,
        raw.analysis.iter().map(|t| (t.span(), t.get_ref())),
    )
}

/// Compiles raw templates found in `text` (an analysis file or the config).
pub fn compile_all<'a>(
    file: &str,
    text: &str,
    raws: impl Iterator<Item = (std::ops::Range<usize>, &'a RawTemplate)>,
) -> Result<Vec<Template>, Vec<TemplateError>> {
    let mut cx = Cx {
        file,
        text,
        errors: Vec::new(),
    };
    let out: Vec<Template> = raws.map(|(span, t)| compile(&mut cx, span, t)).collect();
    if cx.errors.is_empty() {
        Ok(out)
    } else {
        Err(cx.errors)
    }
}

/// Loads an analysis file.
pub fn load(path: &Path) -> Result<Vec<Template>, Vec<TemplateError>> {
    let text = crate::diag::read_text(path, "analysis file").map_err(|e| vec![e])?;
    parse_file(&path.display().to_string(), &text)
}

fn compile(cx: &mut Cx<'_>, span: std::ops::Range<usize>, t: &RawTemplate) -> Template {
    let name = t.name.get_ref().clone();
    if name.is_empty() {
        cx.err(t.name.span(), "name: expected a non-empty template name");
    }
    let interval = cx.dur(&t.interval, "interval", Duration::from_secs(60));
    if interval.is_zero() {
        if let Some(s) = &t.interval {
            cx.err(s.span(), "interval: expected a positive duration");
        }
    }
    let window = cx.dur(&t.window, "window", Duration::from_secs(300));
    let initial_delay = cx.dur(&t.initial_delay, "initial_delay", Duration::ZERO);
    for (v, got, key) in [
        (&t.interval, interval, "interval"),
        (&t.window, window, "window"),
        (&t.initial_delay, initial_delay, "initial_delay"),
    ] {
        if let (Some(s), Err(e)) = (v, check_schedule(key, got)) {
            cx.err(s.span(), e);
        }
    }
    let count = t.count.as_ref().map(|c| {
        let n = cx.count(&Some(c.clone()), "count", 1);
        if n == 0 {
            cx.err(
                c.span(),
                "count: expected at least 1 (leave it out to run until stopped)",
            );
        }
        n
    });
    let failure_limit = cx.count(&t.failure_limit, "failure_limit", 0);
    let inconclusive_limit = cx.count(&t.inconclusive_limit, "inconclusive_limit", 0);
    let consecutive_error_limit =
        cx.count(&t.consecutive_error_limit, "consecutive_error_limit", 4);
    let consecutive_success_limit =
        cx.count(&t.consecutive_success_limit, "consecutive_success_limit", 0);
    if let (Some(c), true) = (count, consecutive_success_limit > 0) {
        // Argo's validation: count >= failureLimit + consecutiveSuccessLimit.
        if c < failure_limit + consecutive_success_limit {
            cx.err(
                span.clone(),
                format!(
                    "count ({c}) must be at least failure_limit + consecutive_success_limit ({})",
                    failure_limit + consecutive_success_limit
                ),
            );
        }
    }
    let threshold = t.threshold.as_ref().map(|s| {
        let n = cx.count(&Some(s.clone()), "threshold", 1);
        if n == 0 {
            cx.err(s.span(), "threshold: expected at least 1 failed check");
        }
        n
    });
    let alpha = match &t.alpha {
        None => 0.05,
        Some(a) if *a.get_ref() > 0.0 && *a.get_ref() < 1.0 => *a.get_ref(),
        Some(a) => {
            cx.err(
                a.span(),
                format!(
                    "alpha: expected a level between 0 and 1, found {}",
                    a.get_ref()
                ),
            );
            0.05
        }
    };
    let args: Vec<Arg> = t
        .args
        .iter()
        .map(|(n, a)| Arg {
            name: n.clone(),
            default: a.get_ref().default.clone(),
        })
        .collect();
    for (n, a) in &t.args {
        if !valid_arg_name(n) {
            cx.err(
                a.span(),
                format!("args: invalid argument name {n:?} (expected letters, digits, _ and -)"),
            );
        }
    }
    let tracks = match &t.tracks {
        None => ("baseline".to_string(), "canary".to_string()),
        Some(tr) => {
            for s in [&tr.baseline, &tr.canary] {
                check_placeholders(cx, s, &args, false);
            }
            (tr.baseline.get_ref().clone(), tr.canary.get_ref().clone())
        }
    };
    if t.metric.is_empty() {
        cx.err(
            span,
            format!("analysis {name:?}: expected at least one [[analysis.metric]]"),
        );
    }
    let mut names = std::collections::HashSet::new();
    let metrics = t
        .metric
        .iter()
        .map(|m| {
            let mm = compile_metric(cx, m, &args);
            if !names.insert(mm.name.clone()) {
                cx.err(
                    m.get_ref().name.span(),
                    format!("metric name {:?} is used twice in {name:?}", mm.name),
                );
            }
            mm
        })
        .collect();
    Template {
        name,
        description: t.description.clone(),
        source: format!("{}:{}", cx.file, line_col(cx.text, t.name.span().start).0),
        interval,
        window,
        initial_delay,
        count,
        failure_limit,
        inconclusive_limit,
        consecutive_error_limit,
        consecutive_success_limit,
        threshold,
        alpha,
        tracks,
        args,
        metrics,
    }
}

fn valid_arg_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn compile_metric(cx: &mut Cx<'_>, m: &Spanned<RawMetric>, args: &[Arg]) -> Metric {
    let r = m.get_ref();
    let name = r.name.get_ref().clone();
    let check_name = r.check.get_ref().as_str();
    let test = r.test.as_ref().map(|t| t.get_ref().clone());
    let kind = test.as_deref().and_then(test_kind);
    let counts = matches!(
        kind,
        Some(TestKind::Proportions | TestKind::Fisher | TestKind::SequentialCounts)
    );
    let check = match check_name {
        "threshold" => {
            if r.min.is_none() && r.max.is_none() {
                cx.err(r.check.span(), "check = \"threshold\" needs min and/or max");
            }
            Check::Threshold {
                min: r.min,
                max: r.max,
            }
        }
        "relative" => {
            if r.max_ratio.is_none()
                && r.min_ratio.is_none()
                && r.max_delta.is_none()
                && r.min_delta.is_none()
            {
                cx.err(
                    r.check.span(),
                    "check = \"relative\" needs max_ratio, min_ratio, max_delta or min_delta",
                );
            }
            Check::Relative {
                max_ratio: r.max_ratio,
                min_ratio: r.min_ratio,
                max_delta: r.max_delta,
                min_delta: r.min_delta,
            }
        }
        "test" => {
            match (&r.test, kind) {
                (None, _) => cx.err(r.check.span(), "check = \"test\" needs test = \"mann-whitney\" (or welch, ks, proportions, fisher, sequential-counts, sequential-t, sequential-band, kayenta)"),
                (Some(t), None) => cx.err(t.span(), format!("test: unknown test {:?}; expected mann-whitney, welch, ks, proportions, fisher, sequential-counts, sequential-t, sequential-band or kayenta", t.get_ref())),
                _ => {}
            }
            let level = |v: &Option<Spanned<f64>>, key: &str, default: f64, cx: &mut Cx<'_>| match v
            {
                None => default,
                Some(a) if *a.get_ref() > 0.0 && *a.get_ref() < 1.0 => *a.get_ref(),
                Some(a) => {
                    cx.err(
                        a.span(),
                        format!(
                            "{key}: expected a level between 0 and 1, found {}",
                            a.get_ref()
                        ),
                    );
                    default
                }
            };
            Check::Test {
                test: kind.unwrap_or(TestKind::MannWhitney),
                alpha: level(&r.alpha, "alpha", 0.05, cx),
                confidence: level(
                    &r.confidence,
                    "confidence",
                    if kind == Some(TestKind::Kayenta) {
                        0.98
                    } else {
                        0.95
                    },
                    cx,
                ),
                log: r.log,
            }
        }
        other => {
            cx.err(
                r.check.span(),
                format!("check: expected \"threshold\", \"relative\" or \"test\", found {other:?}"),
            );
            Check::Threshold {
                min: None,
                max: None,
            }
        }
    };
    if r.test.is_some() && check_name != "test" {
        if let Some(t) = &r.test {
            cx.err(t.span(), "test: only used with check = \"test\"");
        }
    }
    let queries = if counts {
        match (&r.errors, &r.total) {
            (Some(e), Some(t)) => {
                for q in [e, t] {
                    check_query(cx, q, args, true);
                }
                Queries::Counts {
                    errors: e.get_ref().clone(),
                    total: t.get_ref().clone(),
                }
            }
            _ => {
                cx.err(r.name.span(), format!("metric {name:?}: count tests need `errors` and `total` queries with {{{{ track }}}}"));
                Queries::Counts {
                    errors: String::new(),
                    total: String::new(),
                }
            }
        }
    } else {
        if r.errors.is_some() || r.total.is_some() {
            cx.err(r.name.span(), format!("metric {name:?}: `errors`/`total` are for count tests (proportions, fisher, sequential-counts)"));
        }
        match (&r.query, &r.baseline, &r.canary) {
            (Some(q), None, None) => {
                check_query(cx, q, args, true);
                if !q.get_ref().contains("track") {
                    cx.err(q.span(), "query: expected a {{ track }} placeholder (or give `baseline` and `canary` queries)");
                }
                Queries::Values {
                    baseline: q.get_ref().clone(),
                    canary: q.get_ref().clone(),
                }
            }
            (None, b, Some(c)) => {
                if let Some(b) = b {
                    check_query(cx, b, args, true);
                } else if check_name != "threshold" {
                    cx.err(
                        r.name.span(),
                        format!("metric {name:?}: expected a `baseline` query to compare against"),
                    );
                }
                check_query(cx, c, args, true);
                Queries::Values {
                    baseline: b.as_ref().map(|b| b.get_ref().clone()).unwrap_or_default(),
                    canary: c.get_ref().clone(),
                }
            }
            _ => {
                cx.err(r.name.span(), format!("metric {name:?}: expected either `query` (with {{{{ track }}}}) or `baseline` and `canary`"));
                Queries::Values {
                    baseline: String::new(),
                    canary: String::new(),
                }
            }
        }
    };
    let direction = match r
        .direction
        .as_ref()
        .map(|d| (d.span(), d.get_ref().as_str()))
    {
        None => Direction::Increase,
        Some((_, "increase")) => Direction::Increase,
        Some((_, "decrease")) => Direction::Decrease,
        Some((_, "either")) => Direction::Either,
        Some((s, other)) => {
            cx.err(
                s,
                format!(
                    "direction: expected \"increase\", \"decrease\" or \"either\", found {other:?}"
                ),
            );
            Direction::Increase
        }
    };
    let no_data = match r.no_data.as_ref().map(|d| (d.span(), d.get_ref().as_str())) {
        _ if r.must_have_data => NoData::Fail,
        None => NoData::Inconclusive,
        Some((_, "fail")) => NoData::Fail,
        Some((_, "inconclusive")) => NoData::Inconclusive,
        Some((_, "pass")) => NoData::Pass,
        Some((s, other)) => {
            cx.err(
                s,
                format!(
                    "no_data: expected \"fail\", \"inconclusive\" or \"pass\", found {other:?}"
                ),
            );
            NoData::Inconclusive
        }
    };
    let nan_replace = match r
        .nan_strategy
        .as_ref()
        .map(|d| (d.span(), d.get_ref().as_str()))
    {
        None | Some((_, "remove")) => false,
        Some((_, "replace")) => true,
        Some((s, other)) => {
            cx.err(
                s,
                format!("nan_strategy: expected \"remove\" or \"replace\", found {other:?}"),
            );
            false
        }
    };
    let weight = match &r.weight {
        None => 1.0,
        Some(w) if *w.get_ref() >= 0.0 && w.get_ref().is_finite() => *w.get_ref(),
        Some(w) => {
            cx.err(
                w.span(),
                format!(
                    "weight: expected a number of 0 or more, found {}",
                    w.get_ref()
                ),
            );
            1.0
        }
    };
    Metric {
        name,
        queries,
        check,
        direction,
        critical: r.critical,
        weight,
        group: r.group.clone().unwrap_or_else(|| "default".into()),
        no_data,
        nan_replace,
        unit: r.unit.clone(),
        failure_limit: r
            .failure_limit
            .as_ref()
            .map(|_| cx.count(&r.failure_limit, "failure_limit", 0)),
    }
}

/// Checks a query's placeholders and that it parses once they are filled.
fn check_query(cx: &mut Cx<'_>, q: &Spanned<String>, args: &[Arg], track: bool) {
    if !check_placeholders(cx, q, args, track) {
        return;
    }
    let probe = Vars {
        args: &args
            .iter()
            .map(|a| (a.name.clone(), "x".to_string()))
            .collect(),
        track: "x",
        window: Duration::from_secs(300),
        interval: Duration::from_secs(60),
    };
    let filled = match substitute(q.get_ref(), &probe) {
        Ok(f) => f,
        Err(e) => {
            cx.err(q.span(), e);
            return;
        }
    };
    if let Err(e) = crate::promql::parse(&filled) {
        cx.err(
            q.span(),
            format!("query does not parse (placeholders filled): {e}"),
        );
    }
}

/// Reports unknown placeholders; false when there were any.
fn check_placeholders(cx: &mut Cx<'_>, s: &Spanned<String>, args: &[Arg], track: bool) -> bool {
    let mut ok = true;
    for p in placeholders(s.get_ref()) {
        let known = match p.as_str() {
            "track" => track,
            "window" | "interval" => true,
            other => other
                .strip_prefix("args.")
                .is_some_and(|a| args.iter().any(|x| x.name == a)),
        };
        if !known {
            ok = false;
            let hint = if p.starts_with("args.") {
                "declare it under [analysis.args]"
            } else {
                "expected {{ args.NAME }}, {{ track }}, {{ window }} or {{ interval }}"
            };
            cx.err(
                s.span(),
                format!("unknown placeholder {{{{ {p} }}}}: {hint}"),
            );
        }
    }
    ok
}

/// The names inside `{{ … }}`, trimmed.
fn placeholders(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                out.push(after[..j].trim().to_string());
                rest = &after[j + 2..];
            }
            None => {
                out.push(after.trim().to_string());
                break;
            }
        }
    }
    out
}

/// Values for the placeholders of one arm's query.
pub struct Vars<'a> {
    /// Argument values.
    pub args: &'a BTreeMap<String, String>,
    /// Track value.
    pub track: &'a str,
    /// `{{ window }}`.
    pub window: Duration,
    /// `{{ interval }}`.
    pub interval: Duration,
}

/// Escapes a value for a PromQL double-quoted string (Go's strconv rules
/// that the PromQL lexer reads back).
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// Fills the placeholders of `s`. Argument values are escaped for PromQL
/// strings; the track value is inserted as is (it was built from escaped
/// arguments).
pub fn substitute(s: &str, vars: &Vars<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err("unclosed {{ placeholder".to_string());
        };
        let name = after[..j].trim();
        match name {
            "track" => out.push_str(vars.track),
            "window" => out.push_str(&duration::format(vars.window)),
            "interval" => out.push_str(&duration::format(vars.interval)),
            other => match other.strip_prefix("args.").and_then(|a| vars.args.get(a)) {
                Some(v) => out.push_str(&escape(v)),
                None => return Err(format!("argument {other:?} was not supplied")),
            },
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Template {
    /// The argument values of a run: supplied ones, then defaults; an
    /// undeclared or missing argument is an error naming it.
    pub fn resolve_args(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        if let Some(extra) = given
            .keys()
            .find(|k| !self.args.iter().any(|a| &a.name == *k))
        {
            return Err(format!(
                "template {:?} has no argument {extra:?} (it takes: {})",
                self.name,
                self.args
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.args
            .iter()
            .map(|a| match given.get(&a.name).or(a.default.as_ref()) {
                Some(v) => Ok((a.name.clone(), v.clone())),
                None => Err(format!("argument {:?} was not supplied", a.name)),
            })
            .collect()
    }

    /// `{{ track }}` values for (baseline, canary) under `args`.
    pub fn track_values(
        &self,
        args: &BTreeMap<String, String>,
    ) -> Result<(String, String), String> {
        let vars = |track| Vars {
            args,
            track,
            window: self.window,
            interval: self.interval,
        };
        Ok((
            substitute(&self.tracks.0, &vars(""))?,
            substitute(&self.tracks.1, &vars(""))?,
        ))
    }

    /// Checks a template read back from SQLite: the schedule must be in
    /// range. (A test kind this version does not know already failed to
    /// deserialise, naming it: a stored spec never silently runs another
    /// test.)
    pub fn validate_stored(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("interval: expected a positive duration".into());
        }
        for (key, d) in [
            ("interval", self.interval),
            ("window", self.window),
            ("initial_delay", self.initial_delay),
        ] {
            check_schedule(key, d)?;
        }
        Ok(())
    }

    /// Number of sequential tests (they split `alpha`).
    pub fn sequential_count(&self) -> usize {
        self.metrics
            .iter()
            .filter(|m| match &m.check {
                Check::Test { test, .. } => is_sequential(*test),
                _ => false,
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_escapes_args() {
        let args: BTreeMap<String, String> = [("ns".to_string(), "a\"b\\c".to_string())].into();
        let vars = Vars {
            args: &args,
            track: "canary",
            window: Duration::from_secs(300),
            interval: Duration::from_secs(90),
        };
        assert_eq!(
            substitute(
                "x{ns=\"{{args.ns}}\",t=\"{{ track }}\"}[{{ window }}] {{interval}}",
                &vars
            )
            .unwrap(),
            "x{ns=\"a\\\"b\\\\c\",t=\"canary\"}[5m] 1m30s"
        );
        assert!(substitute("{{ args.other }}", &vars)
            .unwrap_err()
            .contains("\"args.other\""));
    }
}
