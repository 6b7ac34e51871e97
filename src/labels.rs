//! Label sets and label matchers shared by the store, scraper and API.

use std::fmt;
use std::sync::Arc;

use regex::Regex;
use thiserror::Error;

/// A fixed-seed fast hasher so hashes are stable within a process.
static FIXED_HASHER: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x6175_6775_725f_6c62);

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// Label name.
    pub name: Arc<str>,
    /// Label value.
    pub value: Arc<str>,
}

/// A label set sorted by name, names unique; an empty value means "absent"
/// and is never stored. Cloning is one reference-count increment, since
/// query evaluation passes the same label sets around at every step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<Vec<Label>>);

impl Labels {
    /// Builds a label set from pairs in any order, dropping empty values.
    /// A later pair with the same name wins.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let pairs = pairs.into_iter();
        // Exact capacity: label sets are many and long-lived (rule state).
        let mut v: Vec<Label> = Vec::with_capacity(pairs.size_hint().0);
        for (n, val) in pairs {
            let (n, val) = (n.as_ref(), val.as_ref());
            v.retain(|l| &*l.name != n);
            if !val.is_empty() {
                v.push(Label {
                    name: n.into(),
                    value: val.into(),
                });
            }
        }
        v.sort();
        Labels(Arc::new(v))
    }

    /// Wraps labels that are already sorted by name with unique names.
    pub fn from_sorted(v: Vec<Label>) -> Labels {
        debug_assert!(v.windows(2).all(|w| w[0].name < w[1].name));
        Labels(Arc::new(v))
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| (*l.name).cmp(name))
            .ok()
            .map(|i| &*self.0[i].value)
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Iterates over the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// A copy without `__name__`.
    pub fn without_name(&self) -> Labels {
        if self.get(METRIC_NAME).is_none() {
            return self.clone();
        }
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|l| &*l.name != METRIC_NAME)
                .cloned()
                .collect(),
        ))
    }

    /// A copy keeping only the labels named in `names`.
    pub fn keep<S: AsRef<str>>(&self, names: &[S]) -> Labels {
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|l| names.iter().any(|n| n.as_ref() == &*l.name))
                .cloned()
                .collect(),
        ))
    }

    /// A copy without the labels named in `names` (and without `__name__`
    /// when `and_name` is set).
    pub fn drop<S: AsRef<str>>(&self, names: &[S], and_name: bool) -> Labels {
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|l| {
                    let named = names.iter().any(|n| n.as_ref() == &*l.name);
                    !(named || and_name && &*l.name == METRIC_NAME)
                })
                .cloned()
                .collect(),
        ))
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        let v = Arc::make_mut(&mut self.0);
        match v.binary_search_by(|l| (*l.name).cmp(name)) {
            Ok(i) if value.is_empty() => {
                v.remove(i);
            }
            Ok(i) => v[i].value = value.into(),
            Err(_) if value.is_empty() => {}
            Err(i) => {
                v.reserve_exact(1);
                v.insert(
                    i,
                    Label {
                        name: name.into(),
                        value: value.into(),
                    },
                )
            }
        }
    }

    /// [`Labels::set`] with shared strings: many sets given the same name
    /// and value (a recording rule's `__name__`) hold one copy of each.
    pub fn set_shared(&mut self, name: &Arc<str>, value: &Arc<str>) {
        let v = Arc::make_mut(&mut self.0);
        match v.binary_search_by(|l| (*l.name).cmp(name)) {
            Ok(i) if value.is_empty() => {
                v.remove(i);
            }
            Ok(i) => v[i].value = value.clone(),
            Err(_) if value.is_empty() => {}
            Err(i) => {
                v.reserve_exact(1);
                v.insert(
                    i,
                    Label {
                        name: name.clone(),
                        value: value.clone(),
                    },
                )
            }
        }
    }

    /// Prometheus's `labels.Labels.String()`: `{__name__="x", a="b"}`.
    pub fn prom_string(&self) -> String {
        let mut s = String::from("{");
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&l.name);
            s.push('=');
            s.push_str(&format!("{:?}", &*l.value));
        }
        s.push('}');
        s
    }

    /// A 64-bit hash of the labels selected by `pick`, for grouping without
    /// building label sets (like Prometheus's grouping keys).
    pub fn hash_selected(&self, mut pick: impl FnMut(&str) -> bool) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = FIXED_HASHER.build_hasher();
        for l in self.0.iter() {
            if pick(&l.name) {
                h.write(l.name.as_bytes());
                h.write_u8(0xff);
                h.write(l.value.as_bytes());
                h.write_u8(0xff);
            }
        }
        h.finish()
    }

    /// Whether both share the same storage (a cheap identity check).
    pub fn same_storage(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The address of the shared storage, for identity-keyed caches.
    pub fn storage_id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Labels {
    /// Prometheus notation: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.metric_name() {
            f.write_str(n)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| &*l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, &*l.value)?;
        }
        f.write_str("}")
    }
}

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    Regex,
    /// `!~` (fully anchored)
    NotRegex,
}

/// A bad regular expression in a matcher.
#[derive(Debug, Error)]
#[error("invalid regular expression {pattern:?} for label {name:?}: {source}")]
pub struct MatcherError {
    name: String,
    pattern: String,
    #[source]
    source: regex::Error,
}

/// Most patterns kept compiled; past it the cache starts over.
const REGEX_CACHE_MAX: usize = 4096;

/// The anchored regex for `pattern`, compiled once per process: rules and
/// analyses build the same selectors at every evaluation, and compiling
/// dominated their cost (a `code=~"5.."` selector over 600 steps took 5 s).
/// `Regex` clones share the compiled program.
fn compiled(pattern: &str) -> Result<Regex, regex::Error> {
    static CACHE: std::sync::LazyLock<
        parking_lot::Mutex<std::collections::HashMap<String, Regex>>,
    > = std::sync::LazyLock::new(Default::default);
    if let Some(re) = CACHE.lock().get(pattern) {
        return Ok(re.clone());
    }
    let re = anchored_go_regex(pattern)?;
    let mut c = CACHE.lock();
    if c.len() >= REGEX_CACHE_MAX {
        c.clear();
    }
    c.insert(pattern.to_string(), re.clone());
    Ok(re)
}

/// Compiles a Go (RE2) pattern the way Prometheus does, `^(?s:pattern)$`,
/// with Go's meaning where Rust's `regex` differs: Go's `\d \w \s \b`
/// are ASCII (Rust's are Unicode), `[` inside a class is a literal and
/// `&&`/`~~` are not set operations, and `\Q...\E` quotes literally.
/// Other syntax is the same in both (RE2 and Rust's regex share it).
pub fn anchored_go_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?s:{})$", go_to_rust_regex(pattern)))
}

/// The translation behind [`anchored_go_regex`]; it never fails, since an
/// invalid pattern stays invalid and Rust's parser reports it.
pub fn go_to_rust_regex(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    // Inside a bracket class; `class_start` while the next char may still
    // be the literal `]` (or `^` then `]`) that opens a Go class.
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                class_start = false;
                if e == 'Q' {
                    // Literal text up to `\E` (or the end), as RE2.
                    let mut lit = String::new();
                    while let Some(q) = chars.next() {
                        if q == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        lit.push(q);
                    }
                    for ch in lit.chars() {
                        if in_class {
                            if ch.is_ascii_punctuation() {
                                out.push('\\');
                            }
                            out.push(ch);
                        } else {
                            out.push_str(&regex::escape(&ch.to_string()));
                        }
                    }
                    continue;
                }
                let rep: Option<&str> = match (in_class, e) {
                    (false, 'd') => Some("[0-9]"),
                    (false, 'D') => Some("[^0-9]"),
                    (false, 'w') => Some("[0-9A-Za-z_]"),
                    (false, 'W') => Some("[^0-9A-Za-z_]"),
                    (false, 's') => Some("[\\t\\n\\x0C\\r ]"),
                    (false, 'S') => Some("[^\\t\\n\\x0C\\r ]"),
                    (false, 'b') => Some("(?-u:\\b)"),
                    (false, 'B') => Some("(?-u:\\B)"),
                    (true, 'd') => Some("0-9"),
                    (true, 'D') => Some("[:^digit:]"),
                    (true, 'w') => Some("0-9A-Za-z_"),
                    (true, 'W') => Some("[:^word:]"),
                    (true, 's') => Some("\\t\\n\\x0C\\r "),
                    // POSIX space adds \v, the one char Go's \S differs on.
                    (true, 'S') => Some("[:^space:]"),
                    _ => None,
                };
                match rep {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            '[' => {
                class_start = false;
                if chars.peek() == Some(&':') {
                    // A POSIX class `[:name:]` (same syntax in both).
                    out.push('[');
                    for q in chars.by_ref() {
                        out.push(q);
                        if q == ']' {
                            break;
                        }
                    }
                } else {
                    out.push_str("\\[");
                }
            }
            ']' if in_class && class_start => {
                // Go: a `]` right after `[` or `[^` is a literal.
                class_start = false;
                out.push_str("\\]");
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' if in_class => {
                class_start = false;
                out.push('\\');
                out.push(c);
            }
            _ => {
                class_start = false;
                out.push(c);
            }
        }
    }
    out
}

/// A label matcher with Prometheus semantics: a missing label has value "".
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// Value or pattern as written.
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regexes are anchored at both ends like Prometheus.
    pub fn new(op: MatchOp, name: &str, value: &str) -> Result<Matcher, MatcherError> {
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(compiled(value).map_err(|source| MatcherError {
                    name: name.to_string(),
                    pattern: value.to_string(),
                    source,
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Whether a label value (`""` when absent) matches.
    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            // Invariant: `new` compiles a regex for both regex ops.
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_and_drops_empty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("b", "3")]);
        let names: Vec<_> = l.iter().map(|l| &*l.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn display_is_prometheus_notation() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "x"), ("instance", "h:1")]);
        assert_eq!(l.to_string(), "up{instance=\"h:1\", job=\"x\"}");
    }

    #[test]
    fn go_regex_classes_are_ascii_like_re2() {
        let m = |p: &str, v: &str| anchored_go_regex(p).unwrap().is_match(v);
        assert!(m(r"\d+", "123"));
        assert!(!m(r"\d", "٣"), "Arabic-Indic digit is not \\d in Go");
        assert!(!m(r"\w", "é"));
        assert!(m(r"\W", "é"));
        assert!(!m(r"\s", "\u{a0}"));
        assert!(m(r"[\d\s]+", "1 2"));
        assert!(!m(r"[\w]", "é"));
        assert!(m(r"[^\d]", "x"));
        assert!(m(r"[[]", "["), "[ inside a class is literal in Go");
        assert!(m(r"[]a]+", "]a"), "] first in a class is literal in Go");
        assert!(m(r"[^]a]", "b"));
        assert!(m(r"[a&&b]+", "a&b"), "no set operations in Go");
        assert!(m(r"[[:alpha:]]+", "abc"));
        assert!(m(r"\Qa.b\E", "a.b"));
        assert!(!m(r"\Qa.b\E", "axb"));
        assert!(m(r"a\bb|a b", "a b"));
        assert!(m(r"(?i)FOO", "foo"));
        assert!(m(r"\.", "."));
        assert!(anchored_go_regex("(").is_err());
        assert!(anchored_go_regex("[").is_err());
    }

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::new(MatchOp::Regex, "a", "fo+").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
        let m = Matcher::new(MatchOp::NotRegex, "a", "").unwrap();
        assert!(!m.matches(""));
        assert!(m.matches("x"));
        assert!(Matcher::new(MatchOp::Regex, "a", "(").is_err());
    }
}
