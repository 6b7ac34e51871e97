//! Prometheus relabeling (`model/relabel/relabel.go`): every action of
//! Prometheus 3, its defaults and validation messages, Go's `$1`/`${name}`
//! expansion; and target finishing ([`target`]: `scrape/target.go`
//! `PopulateLabels`). Pure: scrape targets, metric relabeling and, later,
//! remote write and alert relabeling all call [`process`].

pub mod target;

use std::fmt;
use std::sync::Arc;

use md5::{Digest, Md5};
use regex::Regex;
use thiserror::Error;

pub use target::{
    discovered_labels, populate_labels, public_labels, target_url, Finished, JobDefaults,
    TargetError,
};

/// A relabeling action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Set `target_label` to the expanded `replacement` when `regex` matches.
    Replace,
    /// Set `target_label` to the lower-cased joined source values.
    Lowercase,
    /// Set `target_label` to the upper-cased joined source values.
    Uppercase,
    /// Drop the set unless `regex` matches the joined source values.
    Keep,
    /// Drop the set when `regex` matches.
    Drop,
    /// Drop the set unless `target_label` equals the joined source values.
    KeepEqual,
    /// Drop the set when `target_label` equals the joined source values.
    DropEqual,
    /// Set `target_label` to md5(source values) mod `modulus`.
    HashMod,
    /// Copy labels whose names match `regex` to the expanded `replacement`.
    LabelMap,
    /// Remove labels whose names match `regex`.
    LabelDrop,
    /// Remove labels whose names do not match `regex`.
    LabelKeep,
}

impl Action {
    /// Every action, for error messages and tests.
    pub const ALL: [Action; 11] = [
        Action::Replace,
        Action::Lowercase,
        Action::Uppercase,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
    ];

    /// The name in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
        }
    }

    /// Parses an action name; Prometheus accepts any letter case
    /// (`Action.UnmarshalYAML` lower-cases).
    pub fn parse(s: &str) -> Result<Action, RelabelError> {
        let l = s.to_ascii_lowercase();
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == l)
            .ok_or_else(|| RelabelError::UnknownAction(s.to_string()))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A relabeling rule that cannot be compiled; messages are Prometheus's.
#[derive(Debug, Error, PartialEq)]
pub enum RelabelError {
    /// `action` names no action.
    #[error("unknown relabel action {0:?}")]
    UnknownAction(String),
    /// `action` given as an empty string.
    #[error("relabel action cannot be empty")]
    EmptyAction,
    /// `regex` does not compile.
    #[error("{0}")]
    Regex(String),
    /// Any other rule Prometheus's `Config.Validate` enforces.
    #[error("{0}")]
    Invalid(String),
}

/// The fields of a rule as written; `None` means "not given" (the default
/// applies), which matters because Prometheus refuses some fields on some
/// actions only when they differ from the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSpec {
    /// `source_labels`
    pub source_labels: Vec<String>,
    /// `separator`
    pub separator: Option<String>,
    /// `regex`
    pub regex: Option<String>,
    /// `modulus`
    pub modulus: Option<u64>,
    /// `target_label`
    pub target_label: Option<String>,
    /// `replacement`
    pub replacement: Option<String>,
    /// `action`
    pub action: Option<String>,
    /// Prometheus's `legacy` name validation scheme instead of UTF-8.
    pub legacy_names: bool,
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// A compiled relabeling rule.
#[derive(Debug, Clone)]
pub struct Rule {
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    /// The regex as written, for equality and display.
    regex_src: String,
    /// `regex` was given (Prometheus compares the default by pointer, so
    /// an explicit `(.*)` is not the default).
    regex_given: bool,
    modulus: u64,
    target_label: String,
    replacement: String,
    action: Action,
    legacy_names: bool,
    /// `target_label`/`replacement` hold `$`: they must be expanded.
    target_has_var: bool,
    replacement_has_var: bool,
}

impl PartialEq for Rule {
    fn eq(&self, o: &Rule) -> bool {
        self.source_labels == o.source_labels
            && self.separator == o.separator
            && self.regex_src == o.regex_src
            && self.modulus == o.modulus
            && self.target_label == o.target_label
            && self.replacement == o.replacement
            && self.action == o.action
    }
}

/// Prometheus's `relabelTarget`: a target label or labelmap replacement
/// with `$` variables must look like a label name made of name characters
/// and `$name`/`${name}` references.
fn is_relabel_target(s: &str) -> bool {
    static RE: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
            .expect("constant regex")
    });
    RE.is_match(s)
}

/// Prometheus 3 validates label names under the UTF-8 scheme by default
/// (`model.UTF8Validation`): any non-empty valid UTF-8 string, which every
/// Rust string is. Prometheus 2 (and the `legacy` scheme) require
/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(s: &str, legacy: bool) -> bool {
    if !legacy {
        return !s.is_empty();
    }
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl Rule {
    /// Compiles and validates a rule as Prometheus's `Config.Validate`.
    pub fn new(spec: &RuleSpec) -> Result<Rule, RelabelError> {
        let action = match spec.action.as_deref() {
            None => Action::Replace,
            Some("") => return Err(RelabelError::EmptyAction),
            Some(a) => Action::parse(a)?,
        };
        let regex_src = spec.regex.clone().unwrap_or_else(|| DEFAULT_REGEX.into());
        let regex_given = spec.regex.is_some();
        let legacy = spec.legacy_names;
        let valid_name = |n: &str| is_valid_label_name(n, legacy);
        // With `$` variables: UTF-8 accepts any non-empty name, legacy
        // checks the `relabelTargetLegacy` shape.
        let valid_var_name = |n: &str| {
            if legacy {
                is_relabel_target(n)
            } else {
                !n.is_empty()
            }
        };
        let regex = crate::labels::anchored_go_regex(&regex_src).map_err(|e| {
            RelabelError::Regex(format!(
                "error parsing regexp: {}",
                first_line(&e.to_string())
            ))
        })?;
        let separator = spec
            .separator
            .clone()
            .unwrap_or_else(|| DEFAULT_SEPARATOR.into());
        let modulus = spec.modulus.unwrap_or(0);
        let target_label = spec.target_label.clone().unwrap_or_default();
        let replacement = spec
            .replacement
            .clone()
            .unwrap_or_else(|| DEFAULT_REPLACEMENT.into());
        let inv = |m: String| Err(RelabelError::Invalid(m));
        use Action::*;
        if modulus == 0 && action == HashMod {
            return inv("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && target_label.is_empty()
        {
            return inv(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        let target_has_var = target_label.contains('$');
        if action == Replace && !target_has_var && !valid_name(&target_label) {
            return inv(format!(
                "{target_label:?} is invalid 'target_label' for {action} action"
            ));
        }
        if action == Replace && target_has_var && !valid_var_name(&target_label) {
            return inv(format!(
                "{target_label:?} is invalid 'target_label' for {action} action"
            ));
        }
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual)
            && !valid_name(&target_label)
        {
            return inv(format!(
                "{target_label:?} is invalid 'target_label' for {action} action"
            ));
        }
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual)
            && replacement != DEFAULT_REPLACEMENT
        {
            return inv(format!("'replacement' can not be set for {action} action"));
        }
        if action == LabelMap && !valid_var_name(&replacement) {
            return inv(format!(
                "{replacement:?} is invalid 'replacement' for {action} action"
            ));
        }
        if action == HashMod && !valid_name(&target_label) {
            return inv(format!(
                "{target_label:?} is invalid 'target_label' for {action} action"
            ));
        }
        if matches!(action, DropEqual | KeepEqual)
            && (regex_given
                || modulus != 0
                || separator != DEFAULT_SEPARATOR
                || replacement != DEFAULT_REPLACEMENT)
        {
            return inv(format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (!spec.source_labels.is_empty()
                || !target_label.is_empty()
                || modulus != 0
                || separator != DEFAULT_SEPARATOR
                || replacement != DEFAULT_REPLACEMENT)
        {
            return inv(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(Rule {
            source_labels: spec.source_labels.clone(),
            separator,
            regex,
            regex_src,
            regex_given,
            modulus,
            legacy_names: legacy,
            replacement_has_var: replacement.contains('$'),
            target_label,
            replacement,
            action,
            target_has_var,
        })
    }

    /// The action.
    pub fn action(&self) -> Action {
        self.action
    }
}

fn first_line(s: &str) -> String {
    // Rust's regex errors span several lines with a caret diagram; the
    // last line says what is wrong.
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

/// A label set being relabeled: sorted by name, unique names, no empty
/// values (setting "" deletes, as Prometheus's `labels.Builder`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelSet(Vec<(Arc<str>, Arc<str>)>);

impl LabelSet {
    /// An empty set.
    pub fn new() -> LabelSet {
        LabelSet(Vec::new())
    }

    /// From pairs in any order; later pairs win, empty values are dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> LabelSet {
        let mut s = LabelSet::new();
        for (n, v) in pairs {
            s.set(&n.into(), &v.into());
        }
        s
    }

    /// From pairs already sorted by name, unique and non-empty (the
    /// store's series labels); the strings are shared, not copied.
    pub fn from_sorted_shared(pairs: Vec<(Arc<str>, Arc<str>)>) -> LabelSet {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        LabelSet(pairs)
    }

    /// The pairs, sorted by name, shared.
    pub fn into_shared(self) -> Vec<(Arc<str>, Arc<str>)> {
        self.0
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| (**n).cmp(name))
    }

    /// The value of `name`, "" when absent (Prometheus's `Get`).
    pub fn get(&self, name: &str) -> &str {
        match self.find(name) {
            Ok(i) => &self.0[i].1,
            Err(_) => "",
        }
    }

    /// Sets `name`; an empty value removes it.
    pub fn set(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.del(name);
            return;
        }
        match self.find(name) {
            Ok(i) => {
                if *self.0[i].1 != *value {
                    self.0[i].1 = value.into();
                }
            }
            Err(i) => self.0.insert(i, (name.into(), value.into())),
        }
    }

    /// Sets `name` to a shared value (no copy of the text).
    fn set_shared(&mut self, name: &str, value: Arc<str>) {
        if value.is_empty() {
            self.del(name);
            return;
        }
        match self.find(name) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name.into(), value)),
        }
    }

    /// Removes `name`.
    pub fn del(&mut self, name: &str) {
        if let Ok(i) = self.find(name) {
            self.0.remove(i);
        }
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (&**n, &**v))
    }

    /// Keeps the labels for which `f(name)` is true.
    pub fn retain(&mut self, mut f: impl FnMut(&str) -> bool) {
        self.0.retain(|(n, _)| f(n));
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no label is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As the shared label type.
    pub fn to_labels(&self) -> crate::labels::Labels {
        // Sorted, unique and without empty values already.
        crate::labels::Labels::from_sorted(
            self.0
                .iter()
                .map(|(n, v)| crate::labels::Label {
                    name: n.clone(),
                    value: v.clone(),
                })
                .collect(),
        )
    }

    /// This set plus `other`'s labels that this one lacks, in one merge
    /// of the two sorted lists.
    pub fn merged_with(&self, other: &LabelSet) -> LabelSet {
        let (a, b) = (&self.0, &other.0);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    out.push(x.clone());
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    out.push(x.clone());
                    i += 1;
                }
                (Some(_), Some(y)) | (None, Some(y)) => {
                    out.push(y.clone());
                    j += 1;
                }
                (Some(x), None) => {
                    out.push(x.clone());
                    i += 1;
                }
                (None, None) => break,
            }
        }
        LabelSet(out)
    }
}

impl From<&crate::labels::Labels> for LabelSet {
    fn from(l: &crate::labels::Labels) -> LabelSet {
        LabelSet(
            l.iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
        )
    }
}

/// Applies `rules` in order; false when a rule dropped the set (then the
/// set is left as it was at the dropping rule).
pub fn process(set: &mut LabelSet, rules: &[Rule]) -> bool {
    let mut buf = String::new();
    rules.iter().all(|r| apply(r, set, &mut buf))
}

fn apply(r: &Rule, set: &mut LabelSet, val: &mut String) -> bool {
    val.clear();
    for (i, n) in r.source_labels.iter().enumerate() {
        if i > 0 {
            val.push_str(&r.separator);
        }
        val.push_str(set.get(n));
    }
    let val = val.as_str();
    match r.action {
        Action::Drop => {
            if r.regex.is_match(val) {
                return false;
            }
        }
        Action::Keep => {
            if !r.regex.is_match(val) {
                return false;
            }
        }
        Action::DropEqual => {
            if set.get(&r.target_label) == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if set.get(&r.target_label) != val {
                return false;
            }
        }
        Action::Replace => {
            // Prometheus's fast path: nothing to match or expand.
            if val.is_empty() && !r.regex_given && !r.target_has_var && !r.replacement_has_var {
                let (t, v) = (r.target_label.clone(), r.replacement.clone());
                set.set(&t, &v);
                return true;
            }
            let (target, res) = if !r.regex_given {
                // The default `(.*)` matches anything; groups 0 and 1 are
                // the whole value, so no regex needs to run.
                let g = |i: usize| (i <= 1).then_some(val);
                let none = |_: &str| None;
                (
                    expand_with(&r.target_label, &g, &none),
                    expand_with(&r.replacement, &g, &none),
                )
            } else {
                // A DFA `is_match` first: most values do not match, and
                // finding groups costs more than matching.
                if !r.regex.is_match(val) {
                    return true;
                }
                let Some(caps) = r.regex.captures(val) else {
                    return true;
                };
                (
                    expand(&r.regex, &caps, &r.target_label),
                    expand(&r.regex, &caps, &r.replacement),
                )
            };
            if !is_valid_label_name(&target, r.legacy_names) {
                return true;
            }
            if res.is_empty() {
                set.del(&target);
            } else {
                set.set(&target, &res);
            }
        }
        Action::Lowercase => {
            let v = go_case(val, false);
            set.set(&r.target_label, &v);
        }
        Action::Uppercase => {
            let v = go_case(val, true);
            set.set(&r.target_label, &v);
        }
        Action::HashMod => {
            let sum = Md5::digest(val.as_bytes());
            // Prometheus uses the last 8 bytes, big-endian.
            let mut last = [0u8; 8];
            last.copy_from_slice(&sum[8..16]);
            let m = u64::from_be_bytes(last) % r.modulus;
            set.set(&r.target_label, &m.to_string());
        }
        Action::LabelMap => {
            // Prometheus ranges over a snapshot while setting: collect
            // the new pairs first, then set them.
            let adds: Vec<(String, Arc<str>)> = set
                .0
                .iter()
                .filter(|(n, _)| r.regex.is_match(n))
                .filter_map(|(n, v)| {
                    // The anchored regex matches the whole name once, so
                    // ReplaceAllString is one expansion.
                    let caps = r.regex.captures(n)?;
                    Some((expand(&r.regex, &caps, &r.replacement), v.clone()))
                })
                .collect();
            for (n, v) in adds {
                set.set_shared(&n, v);
            }
        }
        Action::LabelDrop => set.retain(|n| !r.regex.is_match(n)),
        Action::LabelKeep => set.retain(|n| r.regex.is_match(n)),
    }
    true
}

/// Go's `strings.ToLower`/`ToUpper`: Unicode's simple (one rune to one
/// rune) case mapping, where Rust's `str` methods use the full mapping
/// (`ß` -> `SS`) and the final-sigma rule.
fn go_case(s: &str, upper: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let mut m = if upper {
            either(c.to_uppercase())
        } else {
            either(c.to_lowercase())
        };
        if !upper && c == '\u{130}' {
            // The one lower-case full mapping of two runes whose simple
            // mapping exists: İ -> i.
            m = Some('i');
        }
        out.push(m.unwrap_or(c));
    }
    out
}

fn either(mut it: impl Iterator<Item = char>) -> Option<char> {
    let first = it.next()?;
    match it.next() {
        None => Some(first),
        Some(_) => None,
    }
}

/// Go's `Regexp.ExpandString`: `$$` is `$`; `$name`/`${name}` take the
/// longest run of letters, digits and `_` as the name; a number names a
/// group by index (no leading zeros); an unknown or unmatched group is "";
/// a `$` not followed by a valid reference stays literal.
pub fn expand(re: &Regex, caps: &regex::Captures<'_>, template: &str) -> String {
    let group = |i: usize| caps.get(i).map(|m| m.as_str());
    // Go takes the first group with this name.
    let named = |name: &str| re.capture_names().position(|n| n == Some(name));
    expand_with(template, &group, &named)
}

/// [`expand`] over any source of groups: `group(i)` is group i's text,
/// `named(name)` the index of the first group called `name`.
fn expand_with<'a>(
    template: &str,
    group: &dyn Fn(usize) -> Option<&'a str>,
    named: &dyn Fn(&str) -> Option<usize>,
) -> String {
    if !template.contains('$') {
        return template.to_string();
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let Some((name, after)) = extract_ref(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        if let Some(text) = group_number(name).or_else(|| named(name)).and_then(group) {
            out.push_str(text);
        }
    }
    out.push_str(rest);
    out
}

/// Go's `extract`: the reference after a `$`, and the text after it.
fn extract_ref(s: &str) -> Option<(&str, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|(_, c)| !(c.is_alphabetic() || c.is_numeric() || *c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let rest = &body[end..];
    if brace {
        let rest = rest.strip_prefix('}')?;
        return Some((name, rest));
    }
    Some((name, rest))
}

/// Go's group-number rule: ASCII digits, below 1e8, no leading zero.
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || name.len() > 8 {
        return None;
    }
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests;
