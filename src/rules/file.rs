//! Prometheus rule files: YAML decoding with positions and the validation
//! `promtool check rules` performs (`model/rulefmt/rulefmt.go`, Prometheus
//! 3 UTF-8 name rules). Unknown fields are errors, as with Prometheus's
//! strict decoder; only the first YAML document is read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::duration;
use crate::gotemplate as template;
use crate::labels::METRIC_NAME;

/// A YAML scalar read as a string whatever its YAML type (`severity: 1`
/// is the string "1" to Prometheus too).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(crate::fmtfloat::go_g(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Option<Vec<Spanned<RawGroup>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Option<Spanned<Scalar>>,
    interval: Option<Spanned<Scalar>>,
    query_offset: Option<Spanned<Scalar>>,
    limit: Option<i64>,
    labels: Option<BTreeMap<String, Scalar>>,
    rules: Option<Vec<Spanned<RawRule>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    record: Option<Spanned<Scalar>>,
    alert: Option<Spanned<Scalar>>,
    expr: Option<Spanned<Scalar>>,
    #[serde(rename = "for")]
    for_: Option<Spanned<Scalar>>,
    keep_firing_for: Option<Spanned<Scalar>>,
    labels: Option<BTreeMap<String, Scalar>>,
    annotations: Option<BTreeMap<String, Scalar>>,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `record:` name (recording rule) ...
    pub record: Option<String>,
    /// ... or `alert:` name (alerting rule).
    pub alert: Option<String>,
    /// The PromQL expression as written.
    pub expr: String,
    /// `for:` (alerting rules).
    pub for_: Duration,
    /// `keep_firing_for:` (alerting rules).
    pub keep_firing_for: Duration,
    /// `labels:` (templates for alerting rules).
    pub labels: BTreeMap<String, String>,
    /// `annotations:` (templates).
    pub annotations: BTreeMap<String, String>,
    /// 1-based line of the rule in its file.
    pub line: usize,
}

impl Rule {
    /// The record or alert name.
    pub fn name(&self) -> &str {
        self.record
            .as_deref()
            .or(self.alert.as_deref())
            .unwrap_or("")
    }
}

/// A validated group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Group name, unique within its file.
    pub name: String,
    /// `interval:`; `None` = the global evaluation interval.
    pub interval: Option<Duration>,
    /// `query_offset:`.
    pub query_offset: Option<Duration>,
    /// `limit:` (0 = none).
    pub limit: i64,
    /// `labels:` added to every rule's output (the rule's labels win).
    pub labels: BTreeMap<String, String>,
    /// The rules in order.
    pub rules: Vec<Rule>,
}

/// A parsed rule file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleFile {
    /// The groups in order.
    pub groups: Vec<Group>,
}

impl RuleFile {
    /// Number of rules in all groups.
    pub fn rule_count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }

    /// promtool's `duplicate-rules` lint: rules with the same name (record
    /// or alert) and the same `labels:`, each reported once, sorted by name
    /// then labels (`checkDuplicates` in cmd/promtool).
    pub fn duplicate_rules(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let mut all: Vec<(String, BTreeMap<String, String>)> = self
            .groups
            .iter()
            .flat_map(|g| g.rules.iter())
            .map(|r| (r.name().to_string(), r.labels.clone()))
            .collect();
        all.sort();
        let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        for w in all.windows(2) {
            if w[0] == w[1] && out.last() != Some(&w[1]) {
                out.push(w[1].clone());
            }
        }
        out
    }

    /// promtool's message for [`RuleFile::duplicate_rules`], or None.
    pub fn duplicate_rules_message(&self) -> Option<String> {
        let d = self.duplicate_rules();
        if d.is_empty() {
            return None;
        }
        let mut m = format!("lint error {} duplicate rule(s) found.\n", d.len());
        for (name, labels) in &d {
            m.push_str(&format!("Metric: {name}\nLabel(s):\n"));
            for (k, v) in labels {
                m.push_str(&format!("\t{k}: {v}\n"));
            }
        }
        m.push_str("Might cause inconsistency while recording expressions");
        Some(m)
    }
}

fn pos<T>(text: &str, s: &Option<Spanned<T>>) -> String {
    match s {
        Some(s) => {
            let (l, c) = node_pos(text, s.referenced.line(), s.referenced.column());
            format!("{l}:{c}")
        }
        None => "0:0".to_string(),
    }
}

/// Where yaml.v3 (so promtool) places a value: serde-saphyr puts a block
/// scalar (`expr: |`) at its first content line, yaml.v3 at the `|` or `>`
/// indicator. Other values are where serde-saphyr says.
fn node_pos(text: &str, line: u64, column: u64) -> (u64, u64) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(content) = lines.get((line as usize).wrapping_sub(1)) else {
        return (line, column);
    };
    let indent = content.len() - content.trim_start().len();
    if column as usize != indent + 1 {
        return (line, column);
    }
    for i in (0..(line as usize - 1)).rev() {
        let l = lines[i];
        if l.trim().is_empty() {
            continue;
        }
        let code = match l.find(" #") {
            Some(k) => &l[..k],
            None => l,
        }
        .trim_end();
        let Some(at) = code.rfind(['|', '>']) else {
            break;
        };
        let header = &code[at + 1..];
        let before = code[..at].trim_end();
        if header.len() <= 2
            && header
                .chars()
                .all(|c| c == '+' || c == '-' || c.is_ascii_digit())
            && (before.ends_with(':') || before.ends_with('-'))
        {
            return ((i + 1) as u64, (code[..at].chars().count() + 1) as u64);
        }
        break;
    }
    (line, column)
}

fn dur(s: &Option<Spanned<Scalar>>, errs: &mut Vec<String>) -> Option<Duration> {
    let s = s.as_ref()?;
    // promtool's words (model.ParseDuration), with the value's position.
    let at = format!("{}:{}", s.referenced.line(), s.referenced.column());
    match duration::parse(&s.value.0) {
        Ok(d) if d > crate::promql::MAX_DURATION => {
            errs.push(format!("{at}: duration out of range"));
            None
        }
        Ok(d) => Some(d),
        Err(duration::DurationError::Range(_)) => {
            errs.push(format!("{at}: duration out of range"));
            None
        }
        Err(_) => {
            errs.push(format!(
                "{at}: not a valid duration string: {:?}",
                s.value.0
            ));
            None
        }
    }
}

/// Decodes the first YAML document, collecting every field error: after
/// each unknown field or wrong type the offending line (with the lines
/// nested under it) is blanked and decoding is tried again, so one typo
/// does not hide the rest. promtool reports only the first.
fn decode(text: &str) -> (Option<(RawFile, String)>, Vec<String>) {
    let fmt_err = |e: &serde_saphyr::Error| -> (Option<usize>, String) {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("invalid YAML").to_string();
        // serde-saphyr says "error: line L column C: msg"; keep "L:C: msg".
        let first = first.trim_start_matches("error: ");
        let first = match first.split_once(": ") {
            Some((head, rest)) if head.starts_with("line ") => rest,
            _ => first,
        };
        match e.location() {
            Some(l) => (
                Some(l.line() as usize),
                format!("{}:{}: {first}", l.line(), l.column()),
            ),
            None => (None, first.to_string()),
        }
    };
    let mut t = text.to_string();
    let mut errs: Vec<String> = Vec::new();
    for _ in 0..100 {
        match serde_saphyr::from_multiple::<RawFile>(&t) {
            Ok(docs) => {
                let raw = docs.into_iter().next().unwrap_or_default();
                return (Some((raw, t)), errs);
            }
            Err(e) => {
                let (line, msg) = fmt_err(&e);
                let recoverable = ["unknown field", "invalid type", "invalid value"]
                    .iter()
                    .any(|k| msg.contains(k));
                let repeated = errs.contains(&msg);
                errs.push(msg);
                match line {
                    Some(l) if recoverable && !repeated && blank_yaml_line(&mut t, l) => {}
                    _ => break,
                }
            }
        }
    }
    errs.dedup();
    (None, errs)
}

/// Blanks 1-based line `l` and the more-indented lines under it.
fn blank_yaml_line(t: &mut String, l: usize) -> bool {
    let mut lines: Vec<String> = t.split('\n').map(str::to_string).collect();
    let Some(first) = lines.get(l.wrapping_sub(1)) else {
        return false;
    };
    if first.trim().is_empty() {
        return false;
    }
    let indent = |s: &str| s.len() - s.trim_start().len();
    let base = indent(first);
    // A "- key: value" list item keeps its dash: blank only the key.
    let dash = first.trim_start().starts_with("- ");
    lines[l - 1] = if dash {
        format!("{}-", " ".repeat(base))
    } else {
        String::new()
    };
    let child = if dash { base + 2 } else { base };
    let mut i = l;
    while i < lines.len() && (lines[i].trim().is_empty() || indent(&lines[i]) > child) {
        lines[i] = String::new();
        i += 1;
    }
    *t = lines.join("\n");
    true
}

/// A label name Prometheus 3 accepts (UTF-8 names): non-empty, not `__name__`.
fn valid_label_name(n: &str) -> bool {
    !n.is_empty() && n != METRIC_NAME
}

/// Parses and validates rule file text. On failure, every error found,
/// formatted as `promtool check rules` prints them (without the file name).
pub fn parse(text: &str) -> Result<RuleFile, Vec<String>> {
    let (decoded, mut errs) = decode(text);
    let Some((raw, blanked)) = decoded else {
        return Err(errs);
    };
    // Positions below are read in the text as decoded (same lines).
    let text = blanked.as_str();
    let mut out = RuleFile::default();
    let mut seen = std::collections::HashSet::new();
    for g in raw.groups.unwrap_or_default() {
        let gpos = format!("{}:{}", g.referenced.line(), g.referenced.column());
        let g = g.value;
        let name = g
            .name
            .as_ref()
            .map(|n| n.value.0.clone())
            .unwrap_or_default();
        if name.is_empty() {
            errs.push(format!("{gpos}: Groupname must not be empty"));
        }
        if !seen.insert(name.clone()) {
            errs.push(format!(
                "{gpos}: groupname: \"{name}\" is repeated in the same file"
            ));
        }
        let labels: BTreeMap<String, String> = g
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for k in labels.keys() {
            if !valid_label_name(k) {
                errs.push(format!("invalid label name: {k}"));
            }
        }
        let interval = dur(&g.interval, &mut errs);
        let query_offset = dur(&g.query_offset, &mut errs);
        let mut rules = Vec::new();
        for (i, r) in g.rules.unwrap_or_default().into_iter().enumerate() {
            let line = r.referenced.line() as usize;
            let r = r.value;
            let rule_errs = validate_rule(text, &r);
            let rname = r
                .alert
                .as_ref()
                .filter(|a| !a.value.0.is_empty())
                .or(r.record.as_ref())
                .map(|n| n.value.0.clone())
                .unwrap_or_default();
            for e in rule_errs {
                // rulefmt.Error: "<pos>: group "g", rule i, "name": msg".
                match e {
                    (Some(p), m) => errs.push(format!(
                        "{p}: group {name:?}, rule {}, {rname:?}: {m}",
                        i + 1
                    )),
                    (None, m) => {
                        errs.push(format!("group {name:?}, rule {}, {rname:?}: {m}", i + 1))
                    }
                }
            }
            let mut derrs = Vec::new();
            let for_ = dur(&r.for_, &mut derrs).unwrap_or_default();
            let keep = dur(&r.keep_firing_for, &mut derrs).unwrap_or_default();
            errs.extend(derrs);
            rules.push(Rule {
                record: r.record.map(|x| x.value.0).filter(|x| !x.is_empty()),
                alert: r.alert.map(|x| x.value.0).filter(|x| !x.is_empty()),
                expr: r.expr.map(|x| x.value.0).unwrap_or_default(),
                for_,
                keep_firing_for: keep,
                labels: r
                    .labels
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
                annotations: r
                    .annotations
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
                line,
            });
        }
        out.groups.push(Group {
            name,
            interval,
            query_offset,
            limit: g.limit.unwrap_or(0),
            labels,
            rules,
        });
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Rule.Validate: errors with the position they point at, if any.
fn validate_rule(text: &str, r: &RawRule) -> Vec<(Option<String>, String)> {
    let mut e: Vec<(Option<String>, String)> = Vec::new();
    let record = r.record.as_ref().map(|x| x.value.0.as_str()).unwrap_or("");
    let alert = r.alert.as_ref().map(|x| x.value.0.as_str()).unwrap_or("");
    let both = format!("{}: {}", pos(text, &r.record), pos(text, &r.alert));
    if !record.is_empty() && !alert.is_empty() {
        e.push((
            Some(both.clone()),
            "only one of 'record' and 'alert' must be set".into(),
        ));
    }
    if record.is_empty() && alert.is_empty() {
        e.push((Some(both), "one of 'record' or 'alert' must be set".into()));
    }
    let expr = r.expr.as_ref().map(|x| x.value.0.as_str()).unwrap_or("");
    if expr.is_empty() {
        e.push((
            Some(pos(text, &r.expr)),
            "field 'expr' must be set in rule".into(),
        ));
    } else if let Err(err) = crate::promql::parse(expr) {
        e.push((
            Some(pos(text, &r.expr)),
            format!("could not parse expression: {err}"),
        ));
    }
    if !record.is_empty() {
        let rp = Some(pos(text, &r.record));
        if r.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
            e.push((
                rp.clone(),
                "invalid field 'annotations' in recording rule".into(),
            ));
        }
        let nonzero = |d: &Option<Spanned<Scalar>>| {
            d.as_ref()
                .and_then(|d| duration::parse(&d.value.0).ok())
                .is_some_and(|d| !d.is_zero())
        };
        if nonzero(&r.for_) {
            e.push((rp.clone(), "invalid field 'for' in recording rule".into()));
        }
        if nonzero(&r.keep_firing_for) {
            e.push((
                rp.clone(),
                "invalid field 'keep_firing_for' in recording rule".into(),
            ));
        }
        if record.contains('{') || record.contains('}') {
            e.push((
                rp,
                format!(
                    "braces present in the recording rule name; should it be in expr?: {record}"
                ),
            ));
        }
    }
    for k in r.labels.as_ref().into_iter().flat_map(|l| l.keys()) {
        if !valid_label_name(k) {
            e.push((None, format!("invalid label name: {k}")));
        }
    }
    for k in r.annotations.as_ref().into_iter().flat_map(|l| l.keys()) {
        if k.is_empty() {
            e.push((None, format!("invalid annotation name: {k}")));
        }
    }
    if !alert.is_empty() {
        let tname = format!("__alert_{alert}");
        for (kind, map) in [("label", &r.labels), ("annotation", &r.annotations)] {
            for (k, v) in map.as_ref().into_iter().flatten() {
                if let Err(err) = template::check(&tname, &v.0) {
                    e.push((None, format!("{kind} {k:?}: {err}")));
                }
            }
        }
    }
    e
}

/// Reads and validates a rule file; errors are prefixed with the path.
pub fn load(path: &Path) -> Result<RuleFile, Vec<String>> {
    let text = crate::diag::read_text(path, "rule file").map_err(|e| {
        vec![if e.line == 0 {
            format!("{}: {}", path.display(), e.message)
        } else {
            format!("{}: {}:{}: {}", path.display(), e.line, e.column, e.message)
        }]
    })?;
    parse(&text).map_err(|errs| {
        errs.into_iter()
            .map(|e| format!("{}: {e}", path.display()))
            .collect()
    })
}
