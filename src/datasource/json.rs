//! The Prometheus query API's JSON: writing results exactly as Prometheus
//! does (`util/jsonutil`, `web/api/v1`) and reading them back from remote
//! servers.

use std::fmt::Write;

use serde_json::Value as Json;

use crate::fmtfloat;
use crate::labels::Labels;
use crate::promql::{Annotation, AnnotationKind, QueryResult, Sample, Series, Value};

fn write_str(out: &mut String, s: &str) {
    // serde_json escapes exactly as JSON requires.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn write_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, lb) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &lb.name);
        out.push(':');
        write_str(out, &lb.value);
    }
    out.push('}');
}

fn write_point(out: &mut String, t: i64, v: f64) {
    let _ = write!(
        out,
        "[{},\"{}\"]",
        fmtfloat::prom_timestamp(t),
        fmtfloat::prom_api(v)
    );
}

fn write_vector(out: &mut String, v: &[Sample], t: i64) {
    out.push('[');
    for (i, s) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        write_labels(out, &s.labels);
        out.push_str(",\"value\":");
        // Instant-query samples carry the evaluation time, as in Prometheus.
        write_point(out, t, s.v);
        out.push('}');
    }
    out.push(']');
}

fn write_matrix(out: &mut String, m: &[Series]) {
    out.push('[');
    for (i, s) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        write_labels(out, &s.labels);
        out.push_str(",\"values\":[");
        for (j, (t, v)) in s.points.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            write_point(out, *t, *v);
        }
        out.push_str("]}");
    }
    out.push(']');
}

/// The `data` object of a query response: `{"resultType":…,"result":…}`.
pub fn write_data(v: &Value, t: i64) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"resultType\":\"");
    out.push_str(v.type_name());
    out.push_str("\",\"result\":");
    match v {
        Value::Scalar(f) => write_point(&mut out, t, *f),
        Value::String(s) => {
            let _ = write!(out, "[{},", fmtfloat::prom_timestamp(t));
            write_str(&mut out, s);
            out.push(']');
        }
        Value::Vector(vec) => write_vector(&mut out, vec, t),
        Value::Matrix(m) => write_matrix(&mut out, m),
    }
    out.push('}');
    out
}

/// Why a remote response could not be used.
#[derive(Debug)]
pub enum ResponseError {
    /// `{"status":"error",...}`
    Api {
        /// errorType
        kind: String,
        /// error
        message: String,
    },
    /// Not the API's JSON.
    Malformed(String),
}

fn parse_ts(v: &Json) -> Result<i64, ResponseError> {
    v.as_f64()
        .map(|f| (f * 1000.0).round() as i64)
        .ok_or_else(|| ResponseError::Malformed(format!("bad timestamp {v}")))
}

fn parse_val(v: &Json) -> Result<f64, ResponseError> {
    v.as_str()
        .and_then(crate::expfmt::parse_go_float)
        .ok_or_else(|| ResponseError::Malformed(format!("bad sample value {v}")))
}

fn parse_point(p: &Json) -> Result<(i64, f64), ResponseError> {
    let a = p
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| ResponseError::Malformed(format!("bad point {p}")))?;
    Ok((parse_ts(&a[0])?, parse_val(&a[1])?))
}

/// Strings shared by the series of one response: label names (and
/// repeated values) are stored once, not once per series.
#[derive(Default)]
struct Strings(std::collections::HashSet<std::sync::Arc<str>>);

impl Strings {
    fn get(&mut self, s: &str) -> std::sync::Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: std::sync::Arc<str> = s.into();
        self.0.insert(a.clone());
        a
    }
}

fn parse_metric(m: &Json, strings: &mut Strings) -> Result<Labels, ResponseError> {
    let o = m
        .as_object()
        .ok_or_else(|| ResponseError::Malformed(format!("bad metric {m}")))?;
    let mut v: Vec<crate::labels::Label> = Vec::with_capacity(o.len());
    for (k, val) in o {
        let val = val.as_str().unwrap_or("");
        if !val.is_empty() {
            v.push(crate::labels::Label {
                name: strings.get(k),
                value: strings.get(val),
            });
        }
    }
    // Keys of a JSON object are unique; their order depends on
    // serde_json's features, so sort.
    v.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(Labels::from_sorted(v))
}

/// Reads a Prometheus query API response.
pub fn parse_response(body: &[u8]) -> Result<QueryResult, ResponseError> {
    let j: Json =
        serde_json::from_slice(body).map_err(|e| ResponseError::Malformed(e.to_string()))?;
    if j["status"] != "success" {
        return Err(ResponseError::Api {
            kind: j["errorType"].as_str().unwrap_or("unknown").to_string(),
            message: j["error"].as_str().unwrap_or("").to_string(),
        });
    }
    let data = &j["data"];
    let result = &data["result"];
    let mut strings = Strings::default();
    let value = match data["resultType"].as_str() {
        Some("scalar") => Value::Scalar(parse_point(result)?.1),
        Some("string") => Value::String(result[1].as_str().unwrap_or("").to_string()),
        Some("vector") => Value::Vector(
            result
                .as_array()
                .ok_or_else(|| ResponseError::Malformed("vector result is not an array".into()))?
                .iter()
                .map(|s| {
                    let (t, v) = parse_point(&s["value"])?;
                    Ok(Sample {
                        labels: parse_metric(&s["metric"], &mut strings)?,
                        t,
                        v,
                        drop_name: false,
                    })
                })
                .collect::<Result<_, ResponseError>>()?,
        ),
        Some("matrix") => Value::Matrix(
            result
                .as_array()
                .ok_or_else(|| ResponseError::Malformed("matrix result is not an array".into()))?
                .iter()
                .map(|s| {
                    let points = s["values"]
                        .as_array()
                        .map(|a| a.iter().map(parse_point).collect::<Result<Vec<_>, _>>())
                        .transpose()?
                        .unwrap_or_default();
                    Ok(Series {
                        labels: parse_metric(&s["metric"], &mut strings)?,
                        points,
                        drop_name: false,
                    })
                })
                .collect::<Result<_, ResponseError>>()?,
        ),
        other => {
            return Err(ResponseError::Malformed(format!(
                "unknown resultType {other:?}"
            )))
        }
    };
    let mut annotations = Vec::new();
    for (key, kind) in [
        ("warnings", AnnotationKind::Warning),
        ("infos", AnnotationKind::Info),
    ] {
        if let Some(a) = j[key].as_array() {
            for m in a.iter().filter_map(|m| m.as_str()) {
                annotations.push(Annotation {
                    kind,
                    message: m.to_string(),
                });
            }
        }
    }
    Ok(QueryResult { value, annotations })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_result_type() {
        let v = Value::Vector(vec![Sample {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]),
            t: 0,
            v: 1e6,
            drop_name: false,
        }]);
        let data = write_data(&v, 1_500);
        assert_eq!(
            data,
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1.500,"1000000"]}]}"#
        );
        let body = format!("{{\"status\":\"success\",\"data\":{data},\"warnings\":[\"w\"]}}");
        let r = parse_response(body.as_bytes()).unwrap();
        match &r.value {
            Value::Vector(s) => {
                assert_eq!(s[0].v, 1e6);
                assert_eq!(s[0].t, 1_500);
                assert_eq!(s[0].labels.get("job"), Some("a\"b"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.annotations[0].kind, AnnotationKind::Warning);
        let m = Value::Matrix(vec![Series {
            labels: Labels::default(),
            points: vec![(1000, f64::NAN), (2000, f64::INFINITY)],
            drop_name: false,
        }]);
        assert_eq!(
            write_data(&m, 0),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[1,"NaN"],[2,"+Inf"]]}]}"#
        );
        assert_eq!(
            write_data(&Value::Scalar(2.5), 1000),
            r#"{"resultType":"scalar","result":[1,"2.5"]}"#
        );
        assert_eq!(
            write_data(&Value::String("x".into()), 0),
            r#"{"resultType":"string","result":[0,"x"]}"#
        );
    }

    #[test]
    fn api_errors_are_reported() {
        let e =
            parse_response(br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
                .unwrap_err();
        assert!(matches!(e, ResponseError::Api { ref kind, .. } if kind == "bad_data"));
        assert!(matches!(
            parse_response(b"<html>"),
            Err(ResponseError::Malformed(_))
        ));
    }
}
