//! Go `text/template` with Prometheus's data and functions
//! (`template/template.go`, prometheus/common `helpers/templates`), used by
//! alert labels and annotations (`rules`), notification subjects and bodies
//! (`notify`) and their checks (`config`): parsing (checked at load time, as
//! `promtool check rules` does) and expansion. Phases: `lex` → `parse`
//! → `exec`, over `value`s printed by `format`.
//!
//! No Rust crate implements Go's template language, so this module holds a
//! lexer, a parser to a small AST and an interpreter for the subset alert
//! templates use: actions and pipelines, variables, fields, `if`/`else
//! if`/`else`, `range`, `with`, literals, Go's builtins and Prometheus's
//! functions. Values print like Go's `fmt` (`%v`).

mod exec;
mod format;
mod lex;
mod parse;
mod value;

use std::fmt;

use format::*;
use lex::*;
use parse::*;
use value::*;

pub use exec::{check_notification, expand_alert, render, Context};
pub use parse::{check, parse, Template};
pub use value::{QuerySample, TValue};

/// Go's builtins plus Prometheus's template functions.
const FUNCTIONS: &[&str] = &[
    "and",
    "call",
    "html",
    "index",
    "slice",
    "js",
    "len",
    "not",
    "or",
    "print",
    "printf",
    "println",
    "urlquery",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ne",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "stripPort",
    "stripDomain",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toDuration",
    "now",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "urlQueryEscape",
];

/// A template error, printed like Go's (`template: NAME:LINE: msg`).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests;
