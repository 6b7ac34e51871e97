//! Kayenta's JSON formats around the judge: the canary config
//! (`kayenta-core/.../canary/CanaryConfig.java`), the metric set pair list
//! (`MetricSetPair.java`) and the judge result (`CanaryJudgeResult.java`),
//! so a Kayenta user can run augur's port of `NetflixACAJudge-v1.0` on the
//! files they already have.

use crate::stats::kayenta::{
    self as judge, Classifier, Direction, EffectMeasure, MetricConfig, MetricResult, NanStrategy,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// A canary config or metric set pair list that cannot be used.
#[derive(Debug, Error)]
pub enum KayentaError {
    /// The file is not JSON.
    #[error("{file}:{line}:{column}: {msg}")]
    Json {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's message.
        msg: String,
    },
    /// The JSON does not have the expected shape.
    #[error("{file}: {at}: {what}")]
    Shape {
        /// The file.
        file: String,
        /// JSON path of the offending value.
        at: String,
        /// What was expected.
        what: String,
    },
}

/// A parsed canary config: the per-metric judge settings and group weights.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryConfig {
    /// Config name.
    pub name: String,
    /// `id`, when the file sets one.
    pub id: Option<String>,
    /// `applications`.
    pub applications: Vec<String>,
    /// Metrics in config order.
    pub metrics: Vec<MetricConfig>,
    /// How each metric is fetched (same order as `metrics`).
    pub queries: Vec<MetricQuery>,
    /// `templates`: named filter templates.
    pub templates: BTreeMap<String, String>,
    /// `classifier.groupWeights`.
    pub group_weights: BTreeMap<String, f64>,
}

/// A metric's Prometheus query config (`PrometheusCanaryMetricSetQueryConfig`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricQuery {
    /// Which request scope it reads (`scopeName`, default `default`).
    pub scope_name: String,
    /// `metricName`.
    pub metric_name: Option<String>,
    /// `labelBindings`.
    pub label_bindings: Vec<String>,
    /// `groupByFields`.
    pub group_by: Vec<String>,
    /// `resourceType`.
    pub resource_type: Option<String>,
    /// `customInlineTemplate`.
    pub inline_template: Option<String>,
    /// `customFilterTemplate` (a key of `templates`).
    pub filter_template: Option<String>,
}

/// One side of a request scope (`CanaryScope`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    /// `scope`.
    pub scope: String,
    /// `location`.
    pub location: String,
    /// Start, ms.
    pub start: i64,
    /// End, ms.
    pub end: i64,
    /// Step, seconds.
    pub step: i64,
    /// `extendedScopeParams`.
    pub extended: BTreeMap<String, String>,
}

/// `${name}` substitution as commons-text's StringSubstitutor does it,
/// with undefined variables an error (Kayenta enables that).
fn expand(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    // Kayenta's unescapeTemplate: "$\{" stands for "${" in stored configs.
    let t = template.replace("$\\{", "${");
    let mut out = String::new();
    let mut rest = t.as_str();
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            return Err(format!("unclosed ${{ in template {template:?}"));
        };
        let name = &after[..j];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                return Err(format!(
                "Problem evaluating custom filter template: {template}: no value for ${{{name}}}"
            ))
            }
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The PromQL Kayenta's Prometheus provider sends for one metric and scope
/// (`PrometheusMetricsService.buildQuery`): a template starting `PromQL:`
/// is the whole query; otherwise `avg(metricName{filters}) by (groupBy)`
/// with the filters from the custom template or the resource type.
pub fn build_query(cfg: &CanaryConfig, q: &MetricQuery, scope: &Scope) -> Result<String, String> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("scope".into(), scope.scope.clone());
    vars.insert("location".into(), scope.location.clone());
    if let Some(r) = &q.resource_type {
        vars.insert("resourceType".into(), r.clone());
    }
    vars.extend(scope.extended.clone());
    let custom = match (&q.inline_template, &q.filter_template) {
        (Some(t), _) if !t.is_empty() => Some(expand(t, &vars)?),
        (_, Some(name)) if !name.is_empty() => match cfg.templates.get(name) {
            Some(t) => Some(expand(t, &vars)?),
            None => return Err(format!("Custom filter template '{name}' was not found.")),
        },
        _ => None,
    };
    if let Some(c) = &custom {
        if let Some(promql) = c.strip_prefix("PromQL:") {
            return Ok(promql.to_string());
        }
    }
    let Some(metric) = q.metric_name.as_deref().filter(|m| !m.is_empty()) else {
        return Err("Metric Name is required when query type is Default.".into());
    };
    let mut filters: Vec<String> = Vec::new();
    match (&custom, q.resource_type.as_deref()) {
        (Some(c), _) if !c.is_empty() => filters.extend(c.split(',').map(str::to_string)),
        (_, Some("aws_ec2_instance")) => {
            if scope.location.is_empty() {
                return Err("Location (i.e. region) is required when resourceType is 'aws_ec2_instance'.".into());
            }
            if !scope.scope.is_empty() {
                filters.push(format!("asg_groupName=\"{}\"", scope.scope));
            }
            filters.push(format!("zone=~\"{}.{{1}}\"", scope.location));
        }
        (_, Some(other)) if !other.is_empty() => {
            return Err(format!("There is no explicit support for resourceType '{other}'. You may build whatever query makes sense for your environment via label bindings and custom filter templates."))
        }
        _ => return Err("Either a resource type or a custom filter is required.".into()),
    }
    filters.extend(q.label_bindings.iter().cloned());
    let mut out = format!("avg({metric}{{{}}})", filters.join(","));
    if !q.group_by.is_empty() {
        out += &format!(" by ({})", q.group_by.join(","));
    }
    Ok(out)
}

/// One metric's data: Kayenta's `MetricSetPair`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSetPair {
    /// Metric name, matched against the config.
    pub name: String,
    /// Pair id (echoed).
    pub id: Value,
    /// Tags (echoed).
    pub tags: Value,
    /// Baseline series (`values.control`), gaps as NaN.
    pub control: Vec<f64>,
    /// Canary series (`values.experiment`), gaps as NaN.
    pub experiment: Vec<f64>,
}

fn parse_json(file: &str, text: &str) -> Result<Value, KayentaError> {
    serde_json::from_str(text).map_err(|e| KayentaError::Json {
        file: file.to_string(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, at: &str, what: impl Into<String>) -> KayentaError {
        KayentaError::Shape {
            file: self.file.to_string(),
            at: at.to_string(),
            what: what.into(),
        }
    }

    /// MapUtils' path walk: a missing key means "use the default".
    fn lookup<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
        path.iter().try_fold(v, |v, k| v.get(k))
    }

    fn string(&self, v: &Value, path: &[&str], default: &str) -> Result<String, KayentaError> {
        Ok(match Self::lookup(v, path) {
            None | Some(Value::Null) => default.to_string(),
            Some(Value::String(s)) => s.clone(),
            // Kayenta calls toString on whatever is there.
            Some(other) => other.to_string(),
        })
    }

    fn boolean(&self, v: &Value, at: &str, path: &[&str]) -> Result<bool, KayentaError> {
        match Self::lookup(v, path) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(
                &format!("{at}.{}", path.join(".")),
                format!("expected true or false, found {other}"),
            )),
        }
    }

    fn number(
        &self,
        v: &Value,
        at: &str,
        path: &[&str],
        default: f64,
    ) -> Result<f64, KayentaError> {
        match Self::lookup(v, path) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| self.err(at, "number out of range")),
            Some(other) => Err(self.err(
                &format!("{at}.{}", path.join(".")),
                format!("expected a number, found {other}"),
            )),
        }
    }
}

/// Parses a Kayenta canary config (JSON). `file` names it in errors.
pub fn parse_canary_config(file: &str, text: &str) -> Result<CanaryConfig, KayentaError> {
    let cx = Ctx { file };
    let v = parse_json(file, text)?;
    let Some(metrics) = v.get("metrics").and_then(Value::as_array) else {
        return Err(cx.err("metrics", "expected an array of metric configs"));
    };
    let mut out = Vec::with_capacity(metrics.len());
    let mut queries = Vec::with_capacity(metrics.len());
    let mut seen = std::collections::HashSet::new();
    for (i, m) in metrics.iter().enumerate() {
        let at = format!("metrics[{i}]");
        let Some(name) = m.get("name").and_then(Value::as_str) else {
            return Err(cx.err(&at, "expected a \"name\" string"));
        };
        if !seen.insert(name.to_string()) {
            return Err(cx.err(
                &at,
                format!("metric name {name:?} is used twice; the judge looks metrics up by name"),
            ));
        }
        let groups = match m.get("groups") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(gs)) => gs
                .iter()
                .map(|g| {
                    g.as_str().map(str::to_string).ok_or_else(|| {
                        cx.err(&format!("{at}.groups"), "expected group names (strings)")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(cx.err(&format!("{at}.groups"), "expected an array of group names"))
            }
        };
        let ac = m
            .get("analysisConfigurations")
            .cloned()
            .unwrap_or(Value::Null);
        let at = format!("{at}.analysisConfigurations");
        let c = |p: &[&'static str]| -> Vec<&'static str> {
            let mut v = vec!["canary"];
            v.extend_from_slice(p);
            v
        };
        let mut cfg = MetricConfig::new(name, groups);
        cfg.direction = Direction::parse_lenient(&cx.string(&ac, &c(&["direction"]), "either")?);
        cfg.nan_strategy =
            NanStrategy::parse_lenient(&cx.string(&ac, &c(&["nanStrategy"]), "none")?);
        if cx.string(&ac, &c(&["outliers", "strategy"]), "none")? == "remove" {
            cfg.outlier_factor =
                Some(cx.number(&ac, &at, &c(&["outliers", "outlierFactor"]), 3.0)?);
        }
        cfg.critical = cx.boolean(&ac, &at, &c(&["critical"]))?;
        cfg.must_have_data = cx.boolean(&ac, &at, &c(&["mustHaveData"]))?;
        cfg.muted = cx.boolean(&ac, &at, &c(&["muted"]))?;
        cfg.measure = EffectMeasure::parse_lenient(&cx.string(
            &ac,
            &c(&["effectSize", "measure"]),
            "meanRatio",
        )?);
        let d = cfg.measure.neutral();
        cfg.allowed_increase = cx.number(&ac, &at, &c(&["effectSize", "allowedIncrease"]), d)?;
        cfg.allowed_decrease = cx.number(&ac, &at, &c(&["effectSize", "allowedDecrease"]), d)?;
        cfg.critical_increase = cx.number(&ac, &at, &c(&["effectSize", "criticalIncrease"]), d)?;
        cfg.critical_decrease = cx.number(&ac, &at, &c(&["effectSize", "criticalDecrease"]), d)?;
        out.push(cfg);
        let qv = m.get("query").cloned().unwrap_or(Value::Null);
        let strs = |k: &str| -> Vec<String> {
            qv.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let opt = |k: &str| qv.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(t) = qv.get("type").and_then(Value::as_str) {
            if t != "prometheus" {
                return Err(cx.err(
                    &format!("metrics[{i}].query.type"),
                    format!("augur fetches only type \"prometheus\" queries, found {t:?}"),
                ));
            }
        }
        queries.push(MetricQuery {
            scope_name: m
                .get("scopeName")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
            metric_name: opt("metricName"),
            label_bindings: strs("labelBindings"),
            group_by: strs("groupByFields"),
            resource_type: opt("resourceType"),
            inline_template: opt("customInlineTemplate"),
            filter_template: opt("customFilterTemplate"),
        });
    }
    let mut group_weights = BTreeMap::new();
    if let Some(w) = v.pointer("/classifier/groupWeights") {
        let Some(w) = w.as_object() else {
            return Err(cx.err(
                "classifier.groupWeights",
                "expected an object of group: weight",
            ));
        };
        for (g, x) in w {
            let Some(x) = x.as_f64() else {
                return Err(cx.err(
                    &format!("classifier.groupWeights.{g}"),
                    format!("expected a number, found {x}"),
                ));
            };
            group_weights.insert(g.clone(), x);
        }
    }
    let templates = v
        .get("templates")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, x)| x.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(CanaryConfig {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        id: v.get("id").and_then(Value::as_str).map(str::to_string),
        applications: v
            .get("applications")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        metrics: out,
        queries,
        templates,
        group_weights,
    })
}

/// Parses a metric set pair list (a JSON array of `MetricSetPair`).
/// Values may be numbers, `null` or `"NaN"` (Jackson's spelling of a gap).
pub fn parse_metric_pairs(file: &str, text: &str) -> Result<Vec<MetricSetPair>, KayentaError> {
    let cx = Ctx { file };
    let v = parse_json(file, text)?;
    let Some(pairs) = v.as_array() else {
        return Err(cx.err("$", "expected an array of metric set pairs"));
    };
    pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = format!("[{i}]");
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| cx.err(&at, "expected a \"name\" string"))?;
            let series = |which: &str| -> Result<Vec<f64>, KayentaError> {
                let at = format!("{at}.values.{which}");
                let Some(xs) = p
                    .pointer(&format!("/values/{which}"))
                    .and_then(Value::as_array)
                else {
                    return Err(cx.err(&at, "expected an array of numbers"));
                };
                xs.iter()
                    .enumerate()
                    .map(|(j, x)| match x {
                        Value::Number(n) => {
                            n.as_f64().ok_or_else(|| cx.err(&at, "number out of range"))
                        }
                        Value::Null => Ok(f64::NAN),
                        Value::String(s) if s == "NaN" => Ok(f64::NAN),
                        other => Err(cx.err(
                            &format!("{at}[{j}]"),
                            format!("expected a number or \"NaN\", found {other}"),
                        )),
                    })
                    .collect()
            };
            Ok(MetricSetPair {
                name: name.to_string(),
                id: p.get("id").cloned().unwrap_or(Value::Null),
                tags: p.get("tags").cloned().unwrap_or(Value::Null),
                control: series("control")?,
                experiment: series("experiment")?,
            })
        })
        .collect()
}

/// The judge's name, as Kayenta reports it.
pub const JUDGE_NAME: &str = "NetflixACAJudge-v1.0";

/// Classifies every pair with its config and scores the canary.
pub fn judge_pairs(
    config: &CanaryConfig,
    pairs: &[MetricSetPair],
) -> Result<Vec<MetricResult>, String> {
    let classifier = Classifier::default();
    pairs
        .iter()
        .map(|p| {
            let cfg = config
                .metrics
                .iter()
                .find(|m| m.name == p.name)
                .ok_or_else(|| format!("Could not find metric config for {}", p.name))?;
            Ok(classifier.judge_metric(cfg, &p.control, &p.experiment))
        })
        .collect()
}

/// Jackson writes NaN and infinities as strings.
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else if x.is_nan() {
        json!("NaN")
    } else if x > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    }
}

fn stats(s: &judge::Summary) -> Value {
    json!({"stats": {"min": num(s.min), "max": num(s.max), "mean": num(s.mean), "std": num(s.std), "count": s.count}})
}

/// Kayenta's `CanaryJudgeResult` JSON for classified metrics.
pub fn judge_result(
    config: &CanaryConfig,
    pairs: &[MetricSetPair],
    results: &[MetricResult],
    pass: f64,
    marginal: f64,
) -> Value {
    let score = judge::score(results, &config.group_weights, pass, marginal);
    let metrics: Vec<Value> = results
        .iter()
        .zip(pairs)
        .map(|(r, p)| {
            let mut o = Map::new();
            o.insert("name".into(), json!(r.name));
            o.insert("id".into(), p.id.clone());
            o.insert("tags".into(), p.tags.clone());
            o.insert("groups".into(), json!(r.groups));
            o.insert("classification".into(), json!(r.label.as_str()));
            o.insert("classificationReason".into(), json!(r.reason));
            o.insert("critical".into(), json!(r.critical));
            o.insert("muted".into(), json!(r.muted));
            o.insert("experimentMetadata".into(), stats(&r.canary));
            o.insert("controlMetadata".into(), stats(&r.baseline));
            if r.label != judge::Label::Error {
                o.insert("resultMetadata".into(), json!({"ratio": num(r.ratio)}));
            }
            Value::Object(o)
        })
        .collect();
    let groups: Vec<Value> = score
        .groups
        .iter()
        .map(|g| json!({"name": g.name, "score": num(g.score), "classification": "", "classificationReason": ""}))
        .collect();
    let class = match score.class {
        judge::ScoreClass::Pass => "Pass",
        judge::ScoreClass::Marginal => "Marginal",
        judge::ScoreClass::Fail => "Fail",
    };
    json!({
        "judgeName": JUDGE_NAME,
        "results": metrics,
        "groupScores": groups,
        "score": {"score": num(score.score), "classification": class, "classificationReason": score.reason},
    })
}
