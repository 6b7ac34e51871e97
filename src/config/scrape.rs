//! `[[scrape_configs]]`: jobs, targets, credentials and limits.

use super::*;

/// Default body size limit: 16 MiB.
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 16 << 20;

/// How a job authenticates to its targets. Secrets in files are re-read on
/// every scrape, like Prometheus, so rotation needs no reload.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// No credentials.
    None,
    /// `Authorization: <type> <credentials>`.
    Authorization {
        /// scheme, `Bearer` by default
        kind: String,
        /// where the credentials come from
        credentials: Secret,
    },
    /// HTTP basic auth.
    Basic {
        /// user name
        username: Secret,
        /// password
        password: Secret,
    },
}

impl Auth {
    /// The `Authorization` header's value, secrets read now; an error
    /// says which secret could not be read or is no header value.
    pub fn header_value(&self) -> Result<Option<String>, String> {
        let v = match self {
            Auth::None => return Ok(None),
            Auth::Authorization { kind, credentials } => {
                format!("{kind} {}", credentials.read().map_err(|e| e.to_string())?)
            }
            Auth::Basic { username, password } => {
                use base64::Engine;
                let raw = format!(
                    "{}:{}",
                    username.read().map_err(|e| e.to_string())?,
                    password.read().map_err(|e| e.to_string())?
                );
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
        };
        if v.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err("credentials contain invalid header characters".into());
        }
        Ok(Some(v))
    }
}

/// A secret given inline or as a file path.
#[derive(Clone, PartialEq)]
pub enum Secret {
    /// The value itself.
    Inline(String),
    /// A file holding the value (trailing newline trimmed).
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret(<inline>)"),
            Secret::File(p) => write!(f, "Secret(file {})", p.display()),
        }
    }
}

impl Secret {
    /// Reads the secret now.
    pub fn read(&self) -> std::io::Result<String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(p) => {
                let s = std::fs::read_to_string(p)?;
                Ok(s.trim_end_matches(['\n', '\r']).to_string())
            }
        }
    }
}

/// One static target of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// `host:port`
    pub address: String,
    /// Static labels from the `static_configs` entry.
    pub labels: Labels,
}

/// A compiled `[[scrape_configs]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    /// `job` label value.
    pub job_name: String,
    /// How often to scrape.
    pub scrape_interval: Duration,
    /// Per-scrape timeout, never above the interval.
    pub scrape_timeout: Duration,
    /// HTTP path.
    pub metrics_path: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Scraped labels win over target labels when true.
    pub honor_labels: bool,
    /// Use timestamps from the exposition when present.
    pub honor_timestamps: bool,
    /// Ask for gzip.
    pub enable_compression: bool,
    /// Largest accepted (uncompressed) body; 0 = no limit.
    pub body_size_limit: u64,
    /// Most samples accepted per scrape; 0 = no limit.
    pub sample_limit: u64,
    /// Most labels per series (after target labels); 0 = no limit.
    pub label_limit: u64,
    /// Longest label name in bytes; 0 = no limit.
    pub label_name_length_limit: u64,
    /// Longest label value in bytes; 0 = no limit.
    pub label_value_length_limit: u64,
    /// Most targets of the job; 0 = no limit (more: all are marked down).
    pub target_limit: u64,
    /// Parser to use when the target sends no usable Content-Type.
    pub fallback_scrape_protocol: Option<Format>,
    /// URL query parameters.
    pub params: Vec<(String, String)>,
    /// Credentials.
    pub auth: Auth,
    /// The targets.
    pub targets: Vec<TargetConfig>,
}

pub(super) fn compile_job(
    cx: &mut Ctx<'_>,
    sc: &Spanned<raw::RawScrapeConfig>,
    g_interval: Duration,
    g_timeout: Duration,
    jobs: &mut HashSet<String>,
) -> ScrapeConfig {
    let span = sc.span();
    let r = sc.get_ref();
    let job_name = match &r.job_name {
        None => {
            cx.error(span.clone(), "scrape_configs: job_name is missing");
            String::new()
        }
        Some(j) if j.get_ref().is_empty() => {
            cx.error(j.span(), "job_name: must not be empty");
            String::new()
        }
        Some(j) => {
            if !jobs.insert(j.get_ref().clone()) {
                cx.error(
                    j.span(),
                    format!(
                        "found multiple scrape configs with job name {:?}",
                        j.get_ref()
                    ),
                );
            }
            j.get_ref().clone()
        }
    };
    let what = |k: &str| format!("job {job_name:?}: {k}");
    // Prometheus (ScrapeConfig.Validate): a job's 0 (or unset) interval
    // is the global one; an unset or 0 timeout is the global one, capped
    // at the job's interval.
    let interval = match cx.duration(&r.scrape_interval, &what("scrape_interval"), g_interval) {
        d if d.is_zero() => g_interval,
        d => d,
    };
    let explicit_timeout = r
        .scrape_timeout
        .as_ref()
        .map(|_| cx.duration(&r.scrape_timeout, &what("scrape_timeout"), g_timeout))
        .filter(|t| !t.is_zero());
    let timeout = match explicit_timeout {
        None => g_timeout.min(interval),
        Some(t) => {
            if t > interval {
                let s = r.scrape_timeout.as_ref().map_or(span.clone(), |s| s.span());
                cx.error(
                    s,
                    format!(
                        "{}: {} is greater than scrape_interval {}",
                        what("scrape_timeout"),
                        duration::format(t),
                        duration::format(interval)
                    ),
                );
            }
            t
        }
    };
    let metrics_path = match &r.metrics_path {
        None => "/metrics".to_string(),
        Some(p) if !p.get_ref().starts_with('/') => {
            cx.error(
                p.span(),
                format!("{}: must start with '/'", what("metrics_path")),
            );
            p.get_ref().clone()
        }
        Some(p) => p.get_ref().clone(),
    };
    let scheme = match &r.scheme {
        None => "http".to_string(),
        Some(s) if matches!(s.get_ref().as_str(), "http" | "https") => s.get_ref().clone(),
        Some(s) => {
            cx.error(
                s.span(),
                format!(
                    "{}: {:?} (expected http or https)",
                    what("scheme"),
                    s.get_ref()
                ),
            );
            "http".to_string()
        }
    };
    let body_size_limit = match &r.body_size_limit {
        None => DEFAULT_BODY_SIZE_LIMIT,
        Some(b) => match b.get_ref() {
            raw::BodySize::Bytes(n) => *n,
            raw::BodySize::Text(t) => parse_bytes(t).unwrap_or_else(|| {
                cx.error(
                    b.span(),
                    format!(
                        "{}: {t:?} (expected bytes, e.g. 16MB, 512KiB or 1048576)",
                        what("body_size_limit")
                    ),
                );
                DEFAULT_BODY_SIZE_LIMIT
            }),
        },
    };
    let fallback_scrape_protocol = match &r.fallback_scrape_protocol {
        None => None,
        Some(p) => match p.get_ref().as_str() {
            "PrometheusText0.0.4" | "PrometheusText1.0.0" => Some(Format::Text),
            "OpenMetricsText0.0.1" | "OpenMetricsText1.0.0" => Some(Format::OpenMetrics),
            other => {
                cx.error(
                    p.span(),
                    format!(
                        "{}: {other:?} (expected PrometheusText0.0.4, PrometheusText1.0.0, OpenMetricsText0.0.1 or OpenMetricsText1.0.0)",
                        what("fallback_scrape_protocol")
                    ),
                );
                None
            }
        },
    };
    let auth = compile_auth(
        cx,
        AuthFields {
            bearer_token_file: &r.bearer_token_file,
            authorization: &r.authorization,
            basic_auth: &r.basic_auth,
        },
        &format!("job {job_name:?}"),
        span.clone(),
    );

    let mut targets = Vec::new();
    for st in &r.static_configs {
        let labels = cx.labels(&st.get_ref().labels, &what("static_configs.labels"));
        for t in &st.get_ref().targets {
            let a = t.get_ref();
            // A port, when given, is 1..65535 (host[:port]; IPv6 in brackets).
            let port = a
                .rsplit_once(':')
                .filter(|(h, _)| !h.is_empty() && (!h.contains(':') || h.ends_with(']')))
                .map(|(_, p)| p);
            let bad_port = port.is_some_and(|p| !matches!(p.parse::<u16>(), Ok(1..)));
            if a.is_empty() || a.contains('/') || a.contains(char::is_whitespace) || bad_port {
                cx.error(
                    t.span(),
                    format!("{}: {a:?} is not a valid target (expected host:port with a port from 1 to 65535, without scheme or path)", what("targets")),
                );
                continue;
            }
            targets.push(TargetConfig {
                address: a.clone(),
                labels: labels.clone(),
            });
        }
    }
    let params = r
        .params
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
        .collect();
    ScrapeConfig {
        job_name,
        scrape_interval: interval,
        scrape_timeout: timeout,
        metrics_path,
        scheme,
        honor_labels: r.honor_labels.unwrap_or(false),
        honor_timestamps: r.honor_timestamps.unwrap_or(true),
        enable_compression: r.enable_compression.unwrap_or(true),
        body_size_limit,
        sample_limit: r.sample_limit.unwrap_or(0),
        label_limit: r.label_limit.unwrap_or(0),
        label_name_length_limit: r.label_name_length_limit.unwrap_or(0),
        label_value_length_limit: r.label_value_length_limit.unwrap_or(0),
        target_limit: r.target_limit.unwrap_or(0),
        fallback_scrape_protocol,
        params,
        auth,
        targets,
    }
}

pub(super) struct AuthFields<'a> {
    pub(super) bearer_token_file: &'a Option<Spanned<String>>,
    pub(super) authorization: &'a Option<Spanned<raw::RawAuthorization>>,
    pub(super) basic_auth: &'a Option<Spanned<raw::RawBasicAuth>>,
}

pub(super) fn compile_auth(
    cx: &mut Ctx<'_>,
    r: AuthFields<'_>,
    job: &str,
    span: Range<usize>,
) -> Auth {
    let given = [
        r.bearer_token_file.is_some(),
        r.authorization.is_some(),
        r.basic_auth.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        cx.error(
            span,
            format!("{job}: at most one of bearer_token_file, authorization and basic_auth may be configured"),
        );
        return Auth::None;
    }
    if let Some(f) = &r.bearer_token_file {
        return Auth::Authorization {
            kind: "Bearer".to_string(),
            credentials: Secret::File(PathBuf::from(f.get_ref())),
        };
    }
    if let Some(a) = &r.authorization {
        let v = a.get_ref();
        let credentials = match (&v.credentials, &v.credentials_file) {
            (Some(c), None) => Secret::Inline(c.clone()),
            (None, Some(f)) => Secret::File(PathBuf::from(f)),
            _ => {
                cx.error(
                    a.span(),
                    format!("{job}: authorization needs exactly one of credentials and credentials_file"),
                );
                return Auth::None;
            }
        };
        let kind = v.kind.clone().unwrap_or_else(|| "Bearer".to_string());
        if kind.eq_ignore_ascii_case("basic") {
            cx.error(
                a.span(),
                format!("{job}: authorization type cannot be set to \"basic\", use \"basic_auth\" instead"),
            );
        }
        return Auth::Authorization { kind, credentials };
    }
    if let Some(b) = &r.basic_auth {
        let v = b.get_ref();
        let username = match (&v.username, &v.username_file) {
            (Some(u), None) => Secret::Inline(u.clone()),
            (None, Some(f)) => Secret::File(PathBuf::from(f)),
            _ => {
                cx.error(
                    b.span(),
                    format!("{job}: basic_auth needs exactly one of username and username_file"),
                );
                return Auth::None;
            }
        };
        let password = match (&v.password, &v.password_file) {
            (Some(p), None) => Secret::Inline(p.clone()),
            (None, Some(f)) => Secret::File(PathBuf::from(f)),
            (None, None) => Secret::Inline(String::new()),
            _ => {
                cx.error(
                    b.span(),
                    format!("{job}: basic_auth takes at most one of password and password_file"),
                );
                return Auth::None;
            }
        };
        return Auth::Basic { username, password };
    }
    Auth::None
}

/// Parses sizes like Prometheus's `units.Base2Bytes` (`16MB` = 16 MiB), plus
/// the IEC spellings (`16MiB`) and plain byte counts.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" | "KiB" | "K" => 1 << 10,
        "MB" | "MiB" | "M" => 1 << 20,
        "GB" | "GiB" | "G" => 1 << 30,
        "TB" | "TiB" | "T" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}
