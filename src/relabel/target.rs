//! Target finishing, as Prometheus 3's `scrape/target.go`
//! (`PopulateDiscoveredLabels`, `PopulateLabels`, `Target.URL`): the
//! labels a discovered target starts with, relabeling, and the checks and
//! defaults after it.

use std::time::Duration;

use thiserror::Error;

use super::{process, LabelSet, Rule};
use crate::duration;

/// The job settings target finishing needs.
#[derive(Debug, Clone, Copy)]
pub struct JobDefaults<'a> {
    /// `job_name`
    pub job_name: &'a str,
    /// `scrape_interval`
    pub scrape_interval: Duration,
    /// `scrape_timeout`
    pub scrape_timeout: Duration,
    /// `metrics_path`
    pub metrics_path: &'a str,
    /// `scheme`
    pub scheme: &'a str,
    /// `params`, in order (the first value of each name becomes `__param_<name>`)
    pub params: &'a [(String, String)],
    /// `relabel_configs`
    pub rules: &'a [Rule],
}

/// A target that cannot be scraped. Prometheus 3 logs these ("Creating
/// target failed") and lists them neither as active nor as dropped.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum TargetError {
    /// No `__address__` after relabeling.
    #[error("no address")]
    NoAddress,
    /// `__address__` looks like a URL.
    #[error("{0:?} is not a valid hostname")]
    BadAddress(String),
    /// `__scrape_interval__` does not parse.
    #[error("error parsing scrape interval: {0}")]
    Interval(String),
    /// `__scrape_interval__` is 0.
    #[error("scrape interval cannot be 0")]
    ZeroInterval,
    /// `__scrape_timeout__` does not parse.
    #[error("error parsing scrape timeout: {0}")]
    Timeout(String),
    /// `__scrape_timeout__` is 0.
    #[error("scrape timeout cannot be 0")]
    ZeroTimeout,
    /// timeout > interval.
    #[error("scrape timeout cannot be greater than scrape interval ({0:?} > {1:?})")]
    TimeoutAboveInterval(String, String),
}

/// The outcome of finishing one discovered target.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// Scrape it: `labels` still hold the `__` labels other than
    /// `__meta_*` (address, scheme, path, params, interval, timeout).
    Active {
        /// final labels
        labels: LabelSet,
        /// labels before relabeling
        discovered: LabelSet,
        /// from `__scrape_interval__`
        interval: Duration,
        /// from `__scrape_timeout__`
        timeout: Duration,
    },
    /// Relabeling dropped it.
    Dropped {
        /// labels before relabeling
        discovered: LabelSet,
    },
    /// It failed a check after relabeling.
    Failed(TargetError),
}

/// The labels of a discovered target before relabeling: the target's own,
/// then its group's where the target has none, then the job's defaults
/// where still unset, then `__param_<name>` for each param.
pub fn discovered_labels(job: &JobDefaults<'_>, target: &LabelSet, group: &LabelSet) -> LabelSet {
    let mut lb = target.merged_with(group);
    let defaults = [
        ("job", job.job_name.to_string()),
        ("__scrape_interval__", duration::format(job.scrape_interval)),
        ("__scrape_timeout__", duration::format(job.scrape_timeout)),
        ("__metrics_path__", job.metrics_path.to_string()),
        ("__scheme__", job.scheme.to_string()),
    ];
    for (n, v) in defaults {
        if lb.get(n).is_empty() {
            lb.set(n, &v);
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in job.params {
        // url.Values keeps a list per name; the first value is the label.
        if seen.contains(&k.as_str()) {
            continue;
        }
        seen.push(k);
        let name = format!("__param_{k}");
        if lb.get(&name).is_empty() {
            lb.set(&name, v);
        }
    }
    lb
}

/// Prometheus's `PopulateLabels` for one target of a group.
pub fn populate_labels(job: &JobDefaults<'_>, target: &LabelSet, group: &LabelSet) -> Finished {
    let discovered = discovered_labels(job, target, group);
    let mut lb = discovered.clone();
    if !process(&mut lb, job.rules) {
        return Finished::Dropped { discovered };
    }
    match finish(&mut lb) {
        Ok((interval, timeout)) => Finished::Active {
            labels: lb,
            discovered,
            interval,
            timeout,
        },
        Err(e) => Finished::Failed(e),
    }
}

fn go_duration(s: &str) -> Result<Duration, String> {
    duration::parse(s).map_err(|e| match e {
        duration::DurationError::Empty => "empty duration string".to_string(),
        _ => format!("not a valid duration string: {s:?}"),
    })
}

fn finish(lb: &mut LabelSet) -> Result<(Duration, Duration), TargetError> {
    let addr = lb.get("__address__").to_string();
    if addr.is_empty() {
        return Err(TargetError::NoAddress);
    }
    // config.CheckTargetAddress: "For now check for a URL".
    if addr.contains('/') {
        return Err(TargetError::BadAddress(addr));
    }
    let interval_s = lb.get("__scrape_interval__").to_string();
    let interval = go_duration(&interval_s).map_err(TargetError::Interval)?;
    if interval.is_zero() {
        return Err(TargetError::ZeroInterval);
    }
    let timeout_s = lb.get("__scrape_timeout__").to_string();
    let timeout = go_duration(&timeout_s).map_err(TargetError::Timeout)?;
    if timeout.is_zero() {
        return Err(TargetError::ZeroTimeout);
    }
    if timeout > interval {
        return Err(TargetError::TimeoutAboveInterval(timeout_s, interval_s));
    }
    // Meta labels go after relabeling; other `__` labels stay for the URL
    // and are left out of the series' labels by [`public_labels`].
    lb.retain(|n| !n.starts_with("__meta_"));
    // Prometheus 3 no longer adds a default port (2.x added :80/:443).
    if lb.get("instance").is_empty() {
        lb.set("instance", &addr);
    }
    Ok((interval, timeout))
}

/// The labels a target attaches to its samples: no `__` labels.
pub fn public_labels(labels: &LabelSet) -> LabelSet {
    let mut l = labels.clone();
    l.retain(|n| !n.starts_with("__"));
    l
}

/// `Target.URL`: `<__scheme__>://<__address__><__metrics_path__>?<query>`,
/// the query being the job's params with each `__param_<name>` replacing
/// the first value of `<name>` (or adding it), encoded sorted by name as
/// Go's `url.Values.Encode`.
pub fn target_url(labels: &LabelSet, params: &[(String, String)]) -> String {
    let mut values: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (k, v) in params {
        values.entry(k.clone()).or_default().push(v.clone());
    }
    for (n, v) in labels.iter() {
        if let Some(k) = n.strip_prefix("__param_") {
            let e = values.entry(k.to_string()).or_default();
            match e.first_mut() {
                Some(first) => *first = v.to_string(),
                None => e.push(v.to_string()),
            }
        }
    }
    let mut query = String::new();
    for (k, vs) in &values {
        for v in vs {
            if !query.is_empty() {
                query.push('&');
            }
            query_escape(k, &mut query);
            query.push('=');
            query_escape(v, &mut query);
        }
    }
    let path = escape_path(labels.get("__metrics_path__"));
    let mut url = format!(
        "{}://{}{}",
        labels.get("__scheme__"),
        labels.get("__address__"),
        path
    );
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    url
}

/// Go's `url.QueryEscape` (form_urlencoded differs on `~` and `*`).
fn query_escape(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            _ if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// Go's `url.URL.EscapedPath` for a plain path: bytes outside the
/// unreserved set and `/ ; , : = @ & + $ ! * ' ( )` are percent-encoded.
fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'~'
                    | b'/'
                    | b';'
                    | b','
                    | b':'
                    | b'='
                    | b'@'
                    | b'&'
                    | b'+'
                    | b'$'
                    | b'!'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
