//! Values produced by PromQL evaluation.

use crate::labels::Labels;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series labels (still holding `__name__` when `drop_name` is set).
    pub labels: Labels,
    /// Timestamp in ms: the sample's own for a plain selector, else the
    /// evaluation time.
    pub t: i64,
    /// Value.
    pub v: f64,
    /// Prometheus 3 delayed name removal: `__name__` goes at the end.
    pub drop_name: bool,
}

/// One series of a range vector or range-query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Series labels.
    pub labels: Labels,
    /// `(ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
    /// Delayed name removal flag.
    pub drop_name: bool,
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at the evaluation time.
    Scalar(f64),
    /// A string literal.
    String(String),
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector, or a range query's result.
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus's name for the value type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// How serious an annotation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnotationKind {
    /// `PromQL warning: ...`
    Warning,
    /// `PromQL info: ...`
    Info,
}

/// A warning or info attached to a query result, as Prometheus reports them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Annotation {
    /// warning or info
    pub kind: AnnotationKind,
    /// the message without the `PromQL warning: ` prefix
    pub message: String,
}
