//! Parsing of the Prometheus text format 0.0.4 and OpenMetrics text 1.0 into
//! flat samples.
//!
//! Hand-written instead of using `prometheus-parse`: that crate silently drops
//! lines whose label values contain `}`, mangles `\"` escapes and runs a regex
//! per line (see `benches/expfmt.rs` for the speed comparison). This parser
//! borrows names and label values from the input and only allocates when a
//! value has escapes or is normalised.
//!
//! Semantics follow Prometheus 3's `model/textparse` (`promparse.go`,
//! `openmetricsparse.go`): `le` and `quantile` label values of classic
//! histograms and summaries are normalised to the OpenMetrics float form
//! (`le="1"` becomes `le="1.0"`), exemplars are parsed and dropped, and
//! OpenMetrics `_created` lines are ordinary samples (Prometheus skips them
//! only behind its `created-timestamp-zero-ingestion` feature flag).

use std::borrow::Cow;
use std::ops::Range;

use thiserror::Error;

use crate::fmtfloat;

/// Which text format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4 (`text/plain`).
    Text,
    /// OpenMetrics text 1.0 (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// Picks the parser for an HTTP `Content-Type`; `None` if it is not a
    /// text format augur understands.
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/openmetrics-text" => Some(Format::OpenMetrics),
            "text/plain" => Some(Format::Text),
            _ => None,
        }
    }
}

/// The metric type declared by a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `gaugehistogram` (OpenMetrics only)
    GaugeHistogram,
    /// `summary`
    Summary,
    /// `info` (OpenMetrics only)
    Info,
    /// `stateset` (OpenMetrics only)
    StateSet,
    /// `untyped` / `unknown`, or no `# TYPE` line at all
    Unknown,
}

impl MetricType {
    fn parse(s: &str, format: Format) -> Option<MetricType> {
        Some(match (s, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::Text) => MetricType::Unknown,
            ("unknown", Format::OpenMetrics) => MetricType::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("info", Format::OpenMetrics) => MetricType::Info,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            _ => return None,
        })
    }

    /// The name used in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// A parse error with its 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What was expected or what is wrong.
    pub message: String,
}

/// One label pair of a sample, borrowed from the input where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label<'a> {
    /// Label name.
    pub name: Cow<'a, str>,
    /// Label value, unescaped.
    pub value: Cow<'a, str>,
}

/// One flat sample: histogram buckets, sums and counts are separate samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The metric name (`__name__`).
    pub name: Cow<'a, str>,
    /// The series exactly as written (name and label block): a stable key for
    /// caching per-target series lookups.
    pub series: &'a str,
    labels: Range<u32>,
    /// The sample value.
    pub value: f64,
    /// Explicit timestamp in milliseconds, if the line had one.
    pub timestamp_ms: Option<i64>,
    /// Type of the metric family the sample belongs to.
    pub metric_type: MetricType,
}

/// Metadata from `# HELP`, `# TYPE` and `# UNIT` lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Metadata<'a> {
    /// `# HELP name text`
    Help {
        /// family name
        name: Cow<'a, str>,
        /// unescaped help text
        text: Cow<'a, str>,
    },
    /// `# TYPE name type`
    Type {
        /// family name
        name: Cow<'a, str>,
        /// declared type
        metric_type: MetricType,
    },
    /// `# UNIT name unit` (OpenMetrics)
    Unit {
        /// family name
        name: Cow<'a, str>,
        /// unit
        unit: &'a str,
    },
}

/// The result of parsing one exposition body.
#[derive(Debug, Default, Clone)]
pub struct Parsed<'a> {
    /// Samples in input order.
    pub samples: Vec<Sample<'a>>,
    /// HELP/TYPE/UNIT lines in input order.
    pub metadata: Vec<Metadata<'a>>,
    labels: Vec<Label<'a>>,
}

impl<'a> Parsed<'a> {
    /// The labels of `sample` (without `__name__`), in input order.
    pub fn labels(&self, sample: &Sample<'a>) -> &[Label<'a>] {
        &self.labels[sample.labels.start as usize..sample.labels.end as usize]
    }
}

/// Parses a whole exposition body.
pub fn parse(input: &[u8], format: Format) -> Result<Parsed<'_>, ParseError> {
    let src = match std::str::from_utf8(input) {
        Ok(s) => s,
        Err(e) => {
            let valid = &input[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            // The prefix is valid UTF-8 by construction.
            let column =
                std::str::from_utf8(&valid[line_start..]).map_or(0, |s| s.chars().count()) + 1;
            return Err(ParseError {
                line,
                column,
                message: "invalid UTF-8".to_string(),
            });
        }
    };
    let mut p = Parser {
        src,
        b: src.as_bytes(),
        pos: 0,
        line: 1,
        line_start: 0,
        format,
        family: None,
        out: Parsed {
            samples: Vec::with_capacity(src.len() / 64),
            metadata: Vec::new(),
            labels: Vec::with_capacity(src.len() / 32),
        },
    };
    p.run()?;
    Ok(p.out)
}

struct Parser<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
    format: Format,
    family: Option<(Cow<'a, str>, MetricType)>,
    out: Parsed<'a>,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn is_label_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Sample-name suffixes that belong to a metric family (OpenMetrics spec).
const FAMILY_SUFFIXES: [&str; 8] = [
    "_total", "_bucket", "_count", "_sum", "_created", "_gcount", "_gsum", "_info",
];

impl<'a> Parser<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        self.err_at(self.pos, message)
    }

    fn err_at<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, ParseError> {
        let pos = pos.min(self.b.len());
        let start = self.line_start.min(pos);
        let column = self.src.get(start..pos).map_or(0, |s| s.chars().count()) + 1;
        Err(ParseError {
            line: self.line,
            column,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn describe_here(&self) -> String {
        match self.peek() {
            None => "end of input".to_string(),
            Some(b'\n') => "end of line".to_string(),
            Some(_) => {
                let rest = &self.src[self.pos..];
                let tok: String = rest.chars().take_while(|c| *c != '\n').take(16).collect();
                format!("{tok:?}")
            }
        }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn expect_blank(&mut self, what: &str) -> Result<(), ParseError> {
        if !matches!(self.peek(), Some(b' ' | b'\t')) {
            return self.err(format!("expected {what}, got {}", self.describe_here()));
        }
        self.skip_blanks();
        Ok(())
    }

    /// Moves past the end of the current line; `pos` must be at '\n' or EOF.
    fn next_line(&mut self) {
        if self.pos < self.b.len() {
            self.pos += 1;
            self.line += 1;
            self.line_start = self.pos;
        }
    }

    fn run(&mut self) -> Result<(), ParseError> {
        let om = self.format == Format::OpenMetrics;
        while self.pos < self.b.len() {
            let c = self.b[self.pos];
            if om {
                match c {
                    b'\n' => return self.err("empty line is not allowed in OpenMetrics"),
                    b'#' => {
                        if self.om_comment()? {
                            return Ok(());
                        }
                    }
                    _ => self.sample()?,
                }
            } else {
                self.skip_blanks();
                match self.peek() {
                    None => break,
                    Some(b'\n') => {}
                    Some(b'#') => self.text_comment()?,
                    Some(_) => self.sample()?,
                }
            }
            self.next_line();
        }
        if om {
            return self.err("data does not end with # EOF");
        }
        Ok(())
    }

    fn rest_of_line(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b'\n' {
                break;
            }
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    /// Text format: `# HELP`, `# TYPE` or any other comment (ignored).
    fn text_comment(&mut self) -> Result<(), ParseError> {
        self.pos += 1; // '#'
        if !matches!(self.peek(), Some(b' ' | b'\t')) {
            self.rest_of_line();
            return Ok(());
        }
        self.skip_blanks();
        let save = self.pos;
        let word = self.word();
        match word {
            "HELP" | "TYPE" if matches!(self.peek(), Some(b' ' | b'\t')) => {
                self.skip_blanks();
                let name = self.family_name()?;
                if word == "HELP" {
                    let text = if matches!(self.peek(), Some(b' ' | b'\t')) {
                        self.skip_blanks();
                        let raw = self.rest_of_line();
                        unescape(raw, false)
                    } else {
                        self.end_of_line()?;
                        Cow::Borrowed("")
                    };
                    self.out.metadata.push(Metadata::Help { name, text });
                } else {
                    self.expect_blank("metric type")?;
                    self.type_value(name)?;
                }
            }
            _ => {
                self.pos = save;
                self.rest_of_line();
            }
        }
        Ok(())
    }

    /// OpenMetrics: `# HELP`, `# TYPE`, `# UNIT` or `# EOF`. Returns true at EOF.
    fn om_comment(&mut self) -> Result<bool, ParseError> {
        self.pos += 1;
        if self.peek() != Some(b' ') {
            return self.err("expected a space after '#'");
        }
        self.pos += 1;
        let wpos = self.pos;
        let word = self.word();
        if word == "EOF" {
            // Data on the EOF line itself ("# EOF x") is reported there;
            // only a consumed newline moves the position to the next line.
            if self.peek() == Some(b'\n') {
                self.pos += 1;
                if self.pos < self.b.len() {
                    self.line += 1;
                    self.line_start = self.pos;
                }
            }
            if self.pos < self.b.len() {
                return self.err("unexpected data after # EOF");
            }
            return Ok(true);
        }
        if !matches!(word, "HELP" | "TYPE" | "UNIT") {
            return self.err_at(
                wpos,
                format!("expected HELP, TYPE, UNIT or EOF after '#', got {word:?}"),
            );
        }
        if self.peek() != Some(b' ') {
            return self.err(format!("expected a space after {word}"));
        }
        self.pos += 1;
        let name = self.family_name()?;
        match word {
            "HELP" => {
                let text = if self.peek() == Some(b' ') {
                    self.pos += 1;
                    unescape(self.rest_of_line(), true)
                } else {
                    self.end_of_line()?;
                    Cow::Borrowed("")
                };
                self.out.metadata.push(Metadata::Help { name, text });
            }
            "TYPE" => {
                if self.peek() != Some(b' ') {
                    return self.err("expected a space before the metric type");
                }
                self.pos += 1;
                self.type_value(name)?;
            }
            _ => {
                let unit = if self.peek() == Some(b' ') {
                    self.pos += 1;
                    self.rest_of_line()
                } else {
                    self.end_of_line()?;
                    ""
                };
                self.out.metadata.push(Metadata::Unit { name, unit });
            }
        }
        Ok(false)
    }

    /// The type word of a `# TYPE` line; it starts the family that
    /// following samples belong to.
    fn type_value(&mut self, name: Cow<'a, str>) -> Result<(), ParseError> {
        let tpos = self.pos;
        let t = self.word();
        let Some(mt) = MetricType::parse(t, self.format) else {
            return self.err_at(tpos, format!("invalid metric type {t:?}"));
        };
        self.end_of_line()?;
        self.family = Some((name.clone(), mt));
        self.out.metadata.push(Metadata::Type {
            name,
            metric_type: mt,
        });
        Ok(())
    }

    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'\t' || c == b'\n' {
                break;
            }
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    fn end_of_line(&mut self) -> Result<(), ParseError> {
        self.skip_blanks();
        match self.peek() {
            None | Some(b'\n') => Ok(()),
            _ => self.err(format!(
                "expected end of line, got {}",
                self.describe_here()
            )),
        }
    }

    /// A metric family name in HELP/TYPE/UNIT: bare or quoted (UTF-8 names).
    fn family_name(&mut self) -> Result<Cow<'a, str>, ParseError> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(c) if is_name_start(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_name_char) {
                    self.pos += 1;
                }
                Ok(Cow::Borrowed(&self.src[start..self.pos]))
            }
            _ => self.err(format!(
                "expected metric name, got {}",
                self.describe_here()
            )),
        }
    }

    /// A double-quoted string with `\\`, `\"` and `\n` escapes; `pos` is at
    /// the opening quote. Other escapes are kept verbatim, as Prometheus does.
    fn quoted(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek() {
                None | Some(b'\n') => {
                    return self.err_at(open, "unterminated quoted string");
                }
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        None | Some(b'\n') => {
                            return self.err_at(open, "unterminated quoted string");
                        }
                        _ => self.pos += 1,
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
        let raw = &self.src[start..self.pos];
        self.pos += 1; // closing quote
        Ok(if escaped {
            unescape(raw, true)
        } else {
            Cow::Borrowed(raw)
        })
    }

    fn type_for(&self, name: &str) -> MetricType {
        let Some((fam, t)) = &self.family else {
            return MetricType::Unknown;
        };
        if name == fam.as_ref() {
            return *t;
        }
        if let Some(rest) = name.strip_prefix(fam.as_ref()) {
            if FAMILY_SUFFIXES.contains(&rest) {
                return *t;
            }
        }
        MetricType::Unknown
    }

    fn sample(&mut self) -> Result<(), ParseError> {
        let series_start = self.pos;
        let mut name: Option<Cow<'a, str>> = None;
        match self.peek() {
            Some(c) if is_name_start(c) => {
                while self.peek().is_some_and(is_name_char) {
                    self.pos += 1;
                }
                name = Some(Cow::Borrowed(&self.src[series_start..self.pos]));
            }
            Some(b'{') => {}
            _ => {
                return self.err(format!(
                    "expected metric name or '{{', got {}",
                    self.describe_here()
                ))
            }
        }
        let label_start = self.out.labels.len();
        if self.format == Format::Text {
            let before = self.pos;
            self.skip_blanks();
            if self.peek() != Some(b'{') {
                self.pos = before;
            }
        }
        if self.peek() == Some(b'{') {
            self.pos += 1;
            self.label_set(&mut name, true)?;
        }
        let series_end = self.pos;
        let Some(name) = name else {
            return self.err_at(series_start, "metric name is missing");
        };
        let metric_type = self.type_for(&name);
        self.check_duplicate_labels(label_start, series_start)?;
        let current_type = self.family.as_ref().map_or(MetricType::Unknown, |f| f.1);
        self.normalise_labels(label_start, current_type);

        self.expect_blank("value")?;
        let vpos = self.pos;
        let vtok = self.word();
        let Some(value) = parse_go_float(vtok) else {
            return self.err_at(vpos, format!("expected a float value, got {vtok:?}"));
        };
        let mut timestamp_ms = None;
        self.skip_blanks();
        match self.peek() {
            None | Some(b'\n') => {}
            Some(b'#') if self.format == Format::OpenMetrics => self.exemplar()?,
            Some(_) => {
                let tpos = self.pos;
                let ttok = self.word();
                timestamp_ms = Some(self.timestamp(ttok, tpos)?);
                self.skip_blanks();
                if self.format == Format::OpenMetrics && self.peek() == Some(b'#') {
                    self.exemplar()?;
                }
                self.end_of_line()?;
            }
        }

        self.out.samples.push(Sample {
            name,
            series: &self.src[series_start..series_end],
            labels: label_start as u32..self.out.labels.len() as u32,
            value,
            timestamp_ms,
            metric_type,
        });
        Ok(())
    }

    fn timestamp(&self, tok: &str, pos: usize) -> Result<i64, ParseError> {
        match self.format {
            Format::Text => tok.parse::<i64>().or_else(|_| {
                self.err_at(
                    pos,
                    format!("expected an integer timestamp in ms, got {tok:?}"),
                )
            }),
            Format::OpenMetrics => match parse_go_float(tok) {
                // Prometheus converts seconds to ms by truncation
                // (openmetricsparse.go: int64(ts * 1000)).
                Some(f) if f.is_finite() => Ok((f * 1000.0) as i64),
                _ => self.err_at(pos, format!("expected a timestamp in seconds, got {tok:?}")),
            },
        }
    }

    /// Label block after '{'. Inside, a quoted string not followed by '='
    /// is the metric name (Prometheus 3 UTF-8 names). When `keep` is false the
    /// labels are validated and dropped (exemplars).
    fn label_set(&mut self, name: &mut Option<Cow<'a, str>>, keep: bool) -> Result<(), ParseError> {
        loop {
            self.skip_blanks();
            let lpos = self.pos;
            let lname: Cow<'a, str> = match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'"') => {
                    let q = self.quoted()?;
                    self.skip_blanks();
                    if matches!(self.peek(), Some(b',' | b'}')) {
                        if name.is_some() || !keep {
                            return self.err_at(lpos, "metric name given twice");
                        }
                        *name = Some(q);
                        if self.peek() == Some(b',') {
                            self.pos += 1;
                        }
                        continue;
                    }
                    q
                }
                Some(c) if is_label_start(c) => {
                    while self.peek().is_some_and(is_label_char) {
                        self.pos += 1;
                    }
                    Cow::Borrowed(&self.src[lpos..self.pos])
                }
                _ => {
                    return self.err(format!(
                        "expected label name or '}}', got {}",
                        self.describe_here()
                    ))
                }
            };
            self.skip_blanks();
            if self.peek() != Some(b'=') {
                return self.err(format!(
                    "expected '=' after label name {lname:?}, got {}",
                    self.describe_here()
                ));
            }
            self.pos += 1;
            self.skip_blanks();
            if self.peek() != Some(b'"') {
                return self.err(format!(
                    "expected '\"' to start the value of label {lname:?}, got {}",
                    self.describe_here()
                ));
            }
            let value = self.quoted()?;
            if keep {
                self.out.labels.push(Label { name: lname, value });
            }
            self.skip_blanks();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    return self.err(format!(
                        "expected ',' or '}}' after label value, got {}",
                        self.describe_here()
                    ))
                }
            }
        }
    }

    fn check_duplicate_labels(&self, from: usize, pos: usize) -> Result<(), ParseError> {
        let labels = &self.out.labels[from..];
        for (i, a) in labels.iter().enumerate() {
            if a.name == "__name__" {
                return self.err_at(
                    pos,
                    "label name \"__name__\" is reserved for the metric name",
                );
            }
            if labels[..i].iter().any(|b| b.name == a.name) {
                return self.err_at(pos, format!("label name {:?} is not unique", a.name));
            }
        }
        Ok(())
    }

    /// Prometheus 3 normalises `le` (histograms) and `quantile` (summaries)
    /// to the OpenMetrics float form (textparse/openmetricsparse.go:
    /// normalizeFloatsInLabelValues). Like Prometheus, the type is that of the
    /// last `# TYPE` line, whatever the sample's name.
    fn normalise_labels(&mut self, from: usize, t: MetricType) {
        let key = match t {
            MetricType::Histogram => "le",
            MetricType::Summary => "quantile",
            _ => return,
        };
        for l in &mut self.out.labels[from..] {
            if l.name == key {
                if let Some(f) = parse_go_float(&l.value) {
                    let norm = fmtfloat::openmetrics(f);
                    if norm != l.value {
                        l.value = Cow::Owned(norm);
                    }
                }
            }
        }
    }

    /// OpenMetrics exemplar: `# {labels} value [timestamp]`, parsed and dropped.
    fn exemplar(&mut self) -> Result<(), ParseError> {
        self.pos += 1; // '#'
        self.expect_blank("exemplar label set")?;
        if self.peek() != Some(b'{') {
            return self.err(format!(
                "expected '{{' to start an exemplar, got {}",
                self.describe_here()
            ));
        }
        self.pos += 1;
        let mut none = None;
        // Exemplar labels are checked for syntax only.
        self.label_set(&mut none, false)?;
        self.expect_blank("exemplar value")?;
        let vpos = self.pos;
        let v = self.word();
        if parse_go_float(v).is_none() {
            return self.err_at(vpos, format!("expected exemplar value, got {v:?}"));
        }
        self.skip_blanks();
        if !matches!(self.peek(), None | Some(b'\n')) {
            let tpos = self.pos;
            let t = self.word();
            if parse_go_float(t).is_none() {
                return self.err_at(tpos, format!("expected exemplar timestamp, got {t:?}"));
            }
        }
        self.end_of_line()
    }
}

/// Parses a float the way Go's `strconv.ParseFloat` accepts exposition
/// values: decimal forms, `NaN`, `Inf`, `+Inf`, `-Inf` (case-insensitive).
pub fn parse_go_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let first = *b.first()?;
    // Rust also accepts "+nan"/"-nan", which Go rejects.
    if (first == b'+' || first == b'-') && b.len() == 4 && s[1..].eq_ignore_ascii_case("nan") {
        return None;
    }
    // Rust's parser takes "1_0" as an error and "infinity" like Go.
    s.parse::<f64>().ok()
}

/// Replaces `\\`, `\n` and (with `quotes`) `\"`; other escapes stay as written.
fn unescape(raw: &str, quotes: bool) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
