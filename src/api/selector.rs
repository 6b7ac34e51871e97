//! `match[]` series selectors, parsed with `promql-parser` into store matchers.

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::Expr;
use thiserror::Error;

use crate::labels::{MatchOp, Matcher, MatcherError, METRIC_NAME};

/// A `match[]` value that is not a usable series selector.
#[derive(Debug, Error)]
pub enum SelectorError {
    /// Not valid PromQL.
    #[error("invalid selector {input:?}: {message}")]
    Parse {
        /// the selector
        input: String,
        /// the parser's message
        message: String,
    },
    /// Valid PromQL, but not a plain series selector.
    #[error("invalid selector {0:?}: expected a series selector such as up{{job=\"x\"}}")]
    NotSelector(String),
    /// Every matcher matches the empty string (Prometheus refuses these).
    #[error("match[] must contain at least one non-empty matcher: {0:?}")]
    MatchesEverything(String),
    /// A bad regex.
    #[error(transparent)]
    Matcher(#[from] MatcherError),
}

/// Parses one selector into one or more matcher sets (several for `or`).
pub fn parse_selector(input: &str) -> Result<Vec<Vec<Matcher>>, SelectorError> {
    let expr = crate::promql::parse(input).map_err(|e| SelectorError::Parse {
        input: input.to_string(),
        message: e.to_string(),
    })?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(SelectorError::NotSelector(input.to_string()));
    };
    let groups: Vec<&Vec<promql_parser::label::Matcher>> = if vs.matchers.or_matchers.is_empty() {
        vec![&vs.matchers.matchers]
    } else {
        vs.matchers.or_matchers.iter().collect()
    };
    let mut sets = Vec::new();
    for g in groups {
        let mut set = Vec::new();
        if let Some(name) = &vs.name {
            set.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name)?);
        }
        for m in g {
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::Regex,
                PMatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            set.push(Matcher::new(op, &m.name, &m.value)?);
        }
        if set.iter().all(|m| m.matches("")) {
            return Err(SelectorError::MatchesEverything(input.to_string()));
        }
        sets.push(set);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_matchers() {
        let sets = parse_selector(r#"up{job="a",instance=~"h.*"}"#).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].len(), 3);
        assert!(sets[0][0].matches("up"));
    }

    #[test]
    fn or_gives_several_sets() {
        let sets = parse_selector(r#"{job="a" or job="b"}"#).unwrap();
        assert_eq!(sets.len(), 2);
    }

    #[test]
    fn rejects_non_selectors_and_empty_matchers() {
        assert!(matches!(
            parse_selector("sum(up)"),
            Err(SelectorError::NotSelector(_))
        ));
        assert!(matches!(
            parse_selector("up{"),
            Err(SelectorError::Parse { .. })
        ));
        // Prometheus refuses selectors whose matchers all match "".
        let e = parse_selector(r#"{job=~".*"}"#).unwrap_err();
        assert!(e.to_string().contains("non-empty matcher"), "{e}");
        assert!(parse_selector(r#"{job="" or a="1"}"#).is_err());
    }
}
