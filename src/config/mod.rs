//! The TOML config: raw serde structs (`raw`) compiled into a validated
//! [`Config`], with every semantic error collected and reported as
//! `file:line:col: message`.
//!
//! The scrape part uses `prometheus.yml`'s names and defaults
//! (`config/config.go` in prometheus/prometheus): global scrape interval 1m,
//! timeout 10s, evaluation interval 1m; a job's timeout defaults to the
//! global one capped at the job's interval.

mod raw;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use toml::Spanned;

use crate::decide::Decision;
use crate::diag::{line_col, toml_message};
use crate::duration;
use crate::expfmt::Format;
use crate::labels::Labels;

/// Default body size limit: 16 MiB.
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 16 << 20;

/// The longest retention the store's 32-bit time offsets allow with margin.
pub const MAX_RETENTION: Duration = Duration::from_secs(30 * 86400);

/// The longest duration any setting accepts: past it, millisecond
/// arithmetic on schedules could overflow.
pub const MAX_CONFIG_DURATION: Duration = Duration::from_secs(3650 * 86400);

/// One config error at a position in a file.
pub type ConfigError = crate::diag::Located;

/// All errors found in one config file.
#[derive(Debug, Clone, Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// HTTP listen address (loopback by default).
    pub listen: SocketAddr,
    /// The URL users reach augur at (`$externalURL`, alert generator URLs);
    /// default `http://<listen>/`, like Prometheus's --web.external-url.
    pub external_url: String,
    /// Where snapshots and (later) SQLite state live.
    pub state_dir: PathBuf,
    /// Who may call mutating and webhook endpoints.
    pub auth: ApiAuth,
}

/// `[server]` auth: with either file set, mutating and webhook endpoints
/// need `Authorization: Bearer <token>` (or `?token=` for clients that
/// cannot set headers, like Flagger's webhooks) or an
/// `X-Augur-Signature: sha256=<HMAC-SHA256 of the body>` header. The files
/// are read at each request, so rotating them needs no reload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiAuth {
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// File holding the HMAC secret.
    pub hmac_secret_file: Option<PathBuf>,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// How long samples are kept.
    pub retention: Duration,
    /// Whether to snapshot the store (on shutdown and periodically) and
    /// load it at start.
    pub snapshot_on_shutdown: bool,
    /// How often the store is snapshotted while running (0: only at
    /// shutdown), so a crash loses at most this much.
    pub snapshot_interval: Duration,
}

/// `[state]`: bounds on SQLite's history.
#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// How long finished runs (with measurements and verdicts), decisions
    /// whose actions all finished, delivered or dead notifications, Kayenta
    /// executions and audit rows are kept.
    pub retention: Duration,
    /// Most audit rows kept (the oldest go first).
    pub max_audit_rows: u64,
    /// Most analysis runs running at once; more are refused.
    pub max_running_analyses: u64,
}

/// `[global]`
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalConfig {
    /// Default scrape interval.
    pub scrape_interval: Duration,
    /// Default scrape timeout.
    pub scrape_timeout: Duration,
    /// Default rule evaluation interval.
    pub evaluation_interval: Duration,
    /// Labels added to data leaving augur (alerts, federation).
    pub external_labels: Labels,
}

impl GlobalConfig {
    /// `external_labels` as a name -> value map.
    pub fn external_labels_map(&self) -> BTreeMap<String, String> {
        self.external_labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    }
}

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

/// `[query]`: PromQL engine limits.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryConfig {
    /// How far back instant selectors look (Prometheus `--query.lookback-delta`).
    pub lookback_delta: Duration,
    /// Longest a query may run (Prometheus `--query.timeout`).
    pub timeout: Duration,
    /// Most samples a query may load (Prometheus `--query.max-samples`).
    pub max_samples: usize,
    /// Most API queries evaluated at once (`--query.max-concurrency`).
    pub max_concurrency: usize,
}

/// `[datasource]`: where rules and analyses read their data.
#[derive(Debug, Clone, PartialEq)]
pub enum DatasourceConfig {
    /// augur's own store, filled by its scrapers.
    Embedded,
    /// Any Prometheus-compatible query API (Prometheus, Thanos, Mimir,
    /// VictoriaMetrics); queries are sent whole.
    Prometheus {
        /// base URL, e.g. `http://127.0.0.1:9090`
        url: String,
        /// per-request timeout
        timeout: Duration,
        /// credentials
        auth: Auth,
        /// extra request headers (e.g. `X-Scope-OrgID` for Mimir)
        headers: Vec<(String, String)>,
    },
}

/// `[rules]`: alert timing (Prometheus's --rules.alert.* flags).
#[derive(Debug, Clone, PartialEq)]
pub struct RulesConfig {
    /// Least time between re-sends of a firing alert (default 1m).
    pub resend_delay: Duration,
    /// Longest outage after which `for` state is still restored (default 1h).
    pub for_outage_tolerance: Duration,
    /// Least time a restored alert waits before firing (default 10m).
    pub for_grace_period: Duration,
}

/// How a receiver is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// Alertmanager API v2 at this base URL.
    Alertmanager,
    /// Alertmanager-webhook-shaped JSON, optionally HMAC-signed.
    Webhook {
        /// file holding the HMAC-SHA256 key
        hmac_secret_file: Option<PathBuf>,
    },
    /// A Slack-compatible incoming webhook.
    Slack,
    /// Email over SMTP.
    Email {
        /// `none`, `starttls` or `tls`
        tls: String,
        /// sender
        from: String,
        /// recipients
        to: Vec<String>,
        /// SMTP user
        username: Option<String>,
        /// file holding the SMTP password
        password_file: Option<PathBuf>,
        /// subject template
        subject: String,
        /// body template
        body: String,
    },
}

/// A notification receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    /// unique name (outbox entries refer to it)
    pub name: String,
    /// URL, or `host:port` for SMTP
    pub url: String,
    /// per-attempt timeout
    pub timeout: Duration,
    /// most deliveries per minute (0 = unlimited)
    pub rate_limit_per_minute: u32,
    /// the protocol
    pub kind: ReceiverKind,
}

/// `[notify]`
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// attempts before a notification is dead-lettered
    pub max_attempts: u32,
    /// longest wait between attempts
    pub max_backoff: Duration,
    /// all receivers
    pub receivers: Vec<Receiver>,
}

/// `[actions]`: how decisions are carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionsConfig {
    /// Record what would be sent instead of sending it.
    pub dry_run: bool,
    /// Attempts before an action is dead-lettered.
    pub max_attempts: u32,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Actions per rollout per minute (0 = unlimited).
    pub rate_limit_per_minute: u32,
    /// Webhook sinks.
    pub webhooks: Vec<ActionWebhook>,
    /// Kubernetes sinks.
    pub kubernetes: Vec<KubernetesSink>,
}

/// A Kubernetes API that receives decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSink {
    /// Sink name (unique among all sinks).
    pub name: String,
    /// What it changes.
    pub target: KubeTarget,
    /// API server URL; none = kubeconfig or in-cluster service account.
    pub api_server: Option<String>,
    /// Bearer token file for `api_server`.
    pub token_file: Option<PathBuf>,
    /// Skip TLS verification (test clusters only).
    pub insecure: bool,
    /// Decisions it carries out (default: all).
    pub decisions: Vec<Decision>,
    /// Rollouts it acts on, as `namespace/name` globs (empty: all).
    pub rollouts: Vec<glob::Pattern>,
    /// Deployments only: how an abort is carried out.
    pub abort_with: AbortWith,
}

/// The Kubernetes object a sink changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeTarget {
    /// An Argo Rollouts `Rollout` (`argo-rollout`).
    ArgoRollout,
    /// A Flagger `Canary` (`flagger-canary`).
    FlaggerCanary,
    /// A `Deployment` (`deployment`).
    Deployment,
}

impl KubeTarget {
    /// The config's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            KubeTarget::ArgoRollout => "argo-rollout",
            KubeTarget::FlaggerCanary => "flagger-canary",
            KubeTarget::Deployment => "deployment",
        }
    }
}

/// How a Deployment sink carries out `abort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortWith {
    /// Scale a separate canary Deployment to 0 (`scale-to-zero`).
    ScaleToZero,
    /// `kubectl rollout undo` a rolling Deployment (`rollback`).
    Rollback,
}

/// A webhook that receives decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionWebhook {
    /// Sink name (unique).
    pub name: String,
    /// URL.
    pub url: String,
    /// HTTP method.
    pub method: reqwest::Method,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// Body template; `{{ decision }}`, `{{ namespace }}`, `{{ name }}`,
    /// `{{ revision }}`, `{{ reason }}`, `{{ actor }}`, `{{ key }}` are
    /// replaced (JSON-string-escaped). None = augur's JSON document.
    pub body: Option<String>,
    /// HMAC-SHA256 signature secret (X-Augur-Signature header).
    pub hmac_secret_file: Option<PathBuf>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Decisions it receives (default: all).
    pub decisions: Vec<Decision>,
    /// Rollouts it receives decisions for, as `namespace/name` globs
    /// (empty: all).
    pub rollouts: Vec<glob::Pattern>,
}

/// Whether a sink with these `rollouts` globs acts on `namespace/name`.
pub fn sink_wants(rollouts: &[glob::Pattern], namespace: &str, name: &str) -> bool {
    let subject = format!("{namespace}/{name}");
    let opts = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    rollouts.is_empty() || rollouts.iter().any(|p| p.matches_with(&subject, opts))
}

/// A validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[server]`
    pub server: ServerConfig,
    /// `[storage]`
    pub storage: StorageConfig,
    /// `[state]`
    pub state: StateConfig,
    /// `[global]`
    pub global: GlobalConfig,
    /// `[query]`
    pub query: QueryConfig,
    /// `[datasource]`
    pub datasource: DatasourceConfig,
    /// Rule files, globs resolved against the config file's directory.
    pub rule_files: Vec<PathBuf>,
    /// The loaded rule files, in `rule_files` order.
    pub rules: Vec<(PathBuf, crate::rules::RuleFile)>,
    /// `[rules]`
    pub rules_config: RulesConfig,
    /// Analysis files, globs resolved against the config file's directory.
    pub analysis_files: Vec<PathBuf>,
    /// Analysis templates: from `analysis_files`, then inline `[[analysis]]`.
    pub analyses: Vec<crate::analysis::template::Template>,
    /// Kayenta canary configs (JSON files) served by the Kayenta-compatible API.
    pub kayenta_configs: Vec<KayentaConfigFile>,
    /// `[notify]`
    pub notify: NotifyConfig,
    /// `[actions]`
    pub actions: ActionsConfig,
    /// `[[scrape_configs]]`
    pub scrape_configs: Vec<ScrapeConfig>,
}

/// One Kayenta canary config file.
#[derive(Debug, Clone, PartialEq)]
pub struct KayentaConfigFile {
    /// Config id: the file's `id`, else its file name without `.json`.
    pub id: String,
    /// The file.
    pub path: PathBuf,
    /// Last modification, ms.
    pub updated_ms: i64,
    /// The JSON as written (served by `GET /canaryConfig/{id}`).
    pub raw: serde_json::Value,
    /// The parsed config.
    pub config: crate::analysis::kayenta::CanaryConfig,
}

/// Reads and compiles a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = crate::diag::read_text(path, "config file").map_err(|e| ConfigErrors(vec![e]))?;
    compile(path, &text)
}

/// Deserialises the raw config, collecting every key error: after each
/// one the offending entry is blanked out (same byte offsets, so positions
/// stay true) and decoding is tried again. A TOML syntax error stops at
/// once: past it nothing can be read reliably.
fn parse_raw(file: &Path, text: &str) -> (Option<raw::RawConfig>, Vec<ConfigError>) {
    let error = |t: &str, e: &toml::de::Error| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(t, s.start));
        ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            message: toml_message(e),
        }
    };
    if let Err(e) = text.parse::<toml::Table>() {
        return (None, vec![error(text, &e)]);
    }
    let mut t = text.to_string();
    let mut errors: Vec<ConfigError> = Vec::new();
    for _ in 0..200 {
        match toml::from_str::<raw::RawConfig>(&t) {
            Ok(raw) => return (Some(raw), errors),
            Err(e) => {
                let err = error(&t, &e);
                let repeated = errors
                    .iter()
                    .any(|x| x.line == err.line && x.message == err.message);
                errors.push(err);
                let Some(span) = e.span() else { break };
                if repeated || !blank_entry(&mut t, span) {
                    break;
                }
            }
        }
    }
    errors.dedup();
    (None, errors)
}

/// Replaces the lines of `span` (a whole table for a table header) with
/// spaces; false when nothing was left to blank.
fn blank_entry(t: &mut String, span: Range<usize>) -> bool {
    let start = t[..span.start.min(t.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let header = t[start..].trim_start().starts_with('[');
    let mut end = span.end.max(span.start + 1).min(t.len());
    end = t[end..].find('\n').map_or(t.len(), |i| end + i);
    if header {
        // The table's keys go with it, up to the next header.
        let mut at = end;
        while at < t.len() {
            let line_end = t[at + 1..].find('\n').map_or(t.len(), |i| at + 1 + i);
            if t[at + 1..line_end].trim_start().starts_with('[') {
                break;
            }
            at = line_end;
        }
        end = at;
    }
    let region = &t[start..end];
    if region.trim().is_empty() {
        return false;
    }
    let blanked: String = region
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    // Multi-byte characters become one space each: pad to keep offsets.
    let pad = region.len() - blanked.len();
    t.replace_range(start..end, &(blanked + &" ".repeat(pad)));
    true
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }

    /// The files a `rule_files`-style pattern names, resolved against the
    /// config file's directory (Go's filepath.Glob semantics); a bad
    /// pattern is reported at its position.
    fn expand(&mut self, base: &Path, pat: &Spanned<String>, key: &str) -> Vec<PathBuf> {
        match crate::pathglob::glob(&resolve(base, pat.get_ref())) {
            Ok(paths) => paths,
            Err(e) => {
                self.error(pat.span(), format!("{key}: {e}"));
                Vec::new()
            }
        }
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match duration::parse(s.get_ref()) {
                Ok(d) if d > MAX_CONFIG_DURATION => {
                    self.error(
                        s.span(),
                        format!(
                            "{key}: {} is longer than any setting needs (at most 10y)",
                            s.get_ref()
                        ),
                    );
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.error(s.span(), format!("{key}: {e}"));
                    default
                }
            },
        }
    }

    fn labels(
        &mut self,
        map: &std::collections::BTreeMap<String, Spanned<String>>,
        what: &str,
    ) -> Labels {
        for (name, value) in map {
            if !valid_label_name(name) {
                self.error(
                    value.span(),
                    format!(
                        "{what}: invalid label name {name:?} (expected [a-zA-Z_][a-zA-Z0-9_]*)"
                    ),
                );
            }
        }
        Labels::from_pairs(map.iter().map(|(n, v)| (n.as_str(), v.get_ref().as_str())))
    }
}

/// `"L:C: rest"` split into its position and the rest.
fn split_position(e: &str) -> Option<(usize, usize, &str)> {
    let (l, rest) = e.split_once(':')?;
    let (c, rest) = rest.split_once(':')?;
    let (line, column) = (l.trim().parse().ok()?, c.trim().parse().ok()?);
    (line > 0).then_some((line, column, rest.trim_start()))
}

/// A path from the config, relative to the config file's directory.
fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Whether `s` is a legacy Prometheus label name.
pub fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Compiles config text; `file` is used in error messages.
pub fn compile(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let (raw, early) = parse_raw(file, text);
    let Some(raw) = raw else {
        return Err(ConfigErrors(early));
    };
    let mut cx = Ctx {
        file,
        text,
        errors: early,
    };

    let rs = raw.server.unwrap_or_default();
    let listen = match &rs.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 9464)),
        Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
            cx.error(
                s.span(),
                format!("server.listen: {:?} is not an address (expected host:port, e.g. 127.0.0.1:9464)", s.get_ref()),
            );
            SocketAddr::from(([127, 0, 0, 1], 9464))
        }),
    };
    let state_dir = match &rs.state_dir {
        None => PathBuf::from("/var/lib/augur"),
        Some(s) if s.get_ref().is_empty() => {
            cx.error(s.span(), "server.state_dir: must not be empty");
            PathBuf::new()
        }
        Some(s) => {
            let p = PathBuf::from(s.get_ref());
            if p.exists() && !p.is_dir() {
                cx.error(
                    s.span(),
                    format!(
                        "server.state_dir: {} exists and is not a directory",
                        p.display()
                    ),
                );
            }
            p
        }
    };

    let external_url = match &rs.external_url {
        None => format!("http://{listen}/"),
        Some(u) => {
            if reqwest::Url::parse(u.get_ref()).is_err() {
                cx.error(
                    u.span(),
                    format!("server.external_url: {:?} is not a URL", u.get_ref()),
                );
            }
            u.get_ref().clone()
        }
    };

    let auth = ApiAuth {
        token_file: rs
            .auth_token_file
            .as_ref()
            .map(|f| PathBuf::from(f.get_ref())),
        hmac_secret_file: rs
            .hmac_secret_file
            .as_ref()
            .map(|f| PathBuf::from(f.get_ref())),
    };
    for f in [&rs.auth_token_file, &rs.hmac_secret_file]
        .into_iter()
        .flatten()
    {
        if f.get_ref().is_empty() {
            cx.error(f.span(), "server: a secret file path must not be empty");
        }
    }

    let rst = raw.storage.unwrap_or_default();
    let retention = cx.duration(
        &rst.retention,
        "storage.retention",
        Duration::from_secs(3600),
    );
    if let Some(r) = &rst.retention {
        if retention > MAX_RETENTION {
            cx.error(r.span(), "storage.retention: at most 30d (augur keeps a short sliding window; use a remote Prometheus for long history)");
        } else if retention.is_zero() {
            cx.error(r.span(), "storage.retention: must be greater than 0");
        }
    }

    let snapshot_interval = cx.duration(
        &rst.snapshot_interval,
        "storage.snapshot_interval",
        Duration::from_secs(10),
    );
    if let Some(s) = &rst.snapshot_interval {
        if snapshot_interval > Duration::from_secs(3600) {
            cx.error(
                s.span(),
                "storage.snapshot_interval: at most 1h (0s: only at shutdown)",
            );
        }
    }

    let rstate = raw.state.unwrap_or_default();
    let state_retention = cx.duration(
        &rstate.retention,
        "state.retention",
        Duration::from_secs(30 * 86400),
    );
    if let Some(r) = &rstate.retention {
        if state_retention < Duration::from_secs(3600)
            || state_retention > Duration::from_secs(10 * 365 * 86400)
        {
            cx.error(r.span(), "state.retention: expected 1h to 10y");
        }
    }
    let positive =
        |cx: &mut Ctx<'_>, v: &Option<Spanned<u64>>, key: &str, default: u64, max: u64| match v {
            None => default,
            Some(n) if *n.get_ref() == 0 || *n.get_ref() > max => {
                cx.error(n.span(), format!("{key}: expected 1 to {max}"));
                default
            }
            Some(n) => *n.get_ref(),
        };
    let state = StateConfig {
        retention: state_retention,
        max_audit_rows: positive(
            &mut cx,
            &rstate.max_audit_rows,
            "state.max_audit_rows",
            1_000_000,
            1_000_000_000,
        ),
        max_running_analyses: positive(
            &mut cx,
            &rstate.max_running_analyses,
            "state.max_running_analyses",
            1000,
            1_000_000,
        ),
    };

    let rg = raw.global.unwrap_or_default();
    // Prometheus (config.go GlobalConfig.UnmarshalYAML): 0 means the
    // default, for the intervals and the timeout alike; an unset (or 0)
    // timeout is 10s, lowered to the interval when that is shorter.
    let nonzero = |d: Duration, default: Duration| if d.is_zero() { default } else { d };
    let g_interval = nonzero(
        cx.duration(
            &rg.scrape_interval,
            "global.scrape_interval",
            Duration::from_secs(60),
        ),
        Duration::from_secs(60),
    );
    let g_timeout = match &rg.scrape_timeout {
        None => Duration::from_secs(10).min(g_interval),
        Some(_) => match cx.duration(
            &rg.scrape_timeout,
            "global.scrape_timeout",
            Duration::from_secs(10),
        ) {
            d if d.is_zero() => Duration::from_secs(10).min(g_interval),
            d => d,
        },
    };
    let eval = nonzero(
        cx.duration(
            &rg.evaluation_interval,
            "global.evaluation_interval",
            Duration::from_secs(60),
        ),
        Duration::from_secs(60),
    );
    if g_timeout > g_interval {
        let span = rg.scrape_timeout.as_ref().map_or(0..0, |s| s.span());
        cx.error(
            span,
            format!(
                "global.scrape_timeout: {} is greater than global.scrape_interval {}",
                duration::format(g_timeout),
                duration::format(g_interval)
            ),
        );
    }
    let external_labels = cx.labels(&rg.external_labels, "global.external_labels");

    let rq = raw.query.unwrap_or_default();
    let query = QueryConfig {
        lookback_delta: cx.duration(
            &rq.lookback_delta,
            "query.lookback_delta",
            Duration::from_secs(300),
        ),
        timeout: cx.duration(&rq.timeout, "query.timeout", Duration::from_secs(120)),
        max_samples: match &rq.max_samples {
            None => 5_000_000,
            Some(m) if *m.get_ref() == 0 => {
                cx.error(m.span(), "query.max_samples: must be greater than 0");
                5_000_000
            }
            Some(m) => *m.get_ref() as usize,
        },
        max_concurrency: match &rq.max_concurrency {
            None => 20,
            Some(m) if *m.get_ref() == 0 || *m.get_ref() > 10_000 => {
                cx.error(m.span(), "query.max_concurrency: expected 1 to 10000");
                20
            }
            Some(m) => *m.get_ref() as usize,
        },
    };
    if let Some(l) = &rq.lookback_delta {
        if query.lookback_delta.is_zero() {
            cx.error(l.span(), "query.lookback_delta: must be greater than 0");
        }
    }
    let datasource = match &raw.datasource {
        None => DatasourceConfig::Embedded,
        Some(d) => compile_datasource(&mut cx, d),
    };

    // Rule files: globs against the config's directory; every rule error is
    // reported with its file and position.
    let base = file.parent().unwrap_or(Path::new("."));
    let mut rule_files = Vec::new();
    let mut rules = Vec::new();
    for pat in &raw.rule_files {
        for path in cx.expand(base, pat, "rule_files") {
            match crate::rules::load(&path) {
                Ok(rf) => rules.push((path.clone(), rf)),
                Err(errs) => {
                    let prefix = format!("{}: ", path.display());
                    for e in errs {
                        let e = e.strip_prefix(&prefix).unwrap_or(&e);
                        // "L:C: message" is placed in the rule file itself;
                        // anything else at the rule_files entry.
                        match split_position(e) {
                            Some((line, column, message)) => cx.errors.push(ConfigError {
                                file: path.clone(),
                                line,
                                column,
                                message: message.to_string(),
                            }),
                            None => {
                                cx.error(pat.span(), format!("rule_files: {}: {e}", path.display()))
                            }
                        }
                    }
                }
            }
            rule_files.push(path);
        }
    }

    // Analysis templates: files first, then inline tables; names are unique.
    let mut analysis_files = Vec::new();
    let mut analyses: Vec<crate::analysis::template::Template> = Vec::new();
    for pat in &raw.analysis_files {
        let paths = cx.expand(base, pat, "analysis_files");
        if paths.is_empty() && !pat.get_ref().contains(['*', '?', '[']) {
            cx.error(
                pat.span(),
                format!(
                    "analysis_files: {} does not exist",
                    resolve(base, pat.get_ref()).display()
                ),
            );
        }
        for path in paths {
            match crate::analysis::template::load(&path) {
                Ok(ts) => analyses.extend(ts),
                Err(errs) => {
                    for e in errs {
                        if e.line == 0 {
                            cx.error(
                                pat.span(),
                                format!("analysis_files: {}: {}", e.file.display(), e.message),
                            );
                        } else {
                            cx.errors.push(e);
                        }
                    }
                }
            }
            analysis_files.push(path);
        }
    }
    let file_name = file.display().to_string();
    match crate::analysis::template::compile_all(
        &file_name,
        text,
        raw.analysis.iter().map(|t| (t.span(), t.get_ref())),
    ) {
        Ok(ts) => analyses.extend(ts),
        Err(errs) => cx.errors.extend(errs),
    }
    let mut kayenta_configs: Vec<KayentaConfigFile> = Vec::new();
    for pat in &raw.kayenta_configs {
        let paths = cx.expand(base, pat, "kayenta_configs");
        // File-level problems are placed at the kayenta_configs entry.
        let (pl, pc) = line_col(text, pat.span().start);
        let at_entry = |path: &Path, message: String| ConfigError {
            file: file.to_path_buf(),
            line: pl,
            column: pc,
            message: format!("kayenta_configs: {}: {message}", path.display()),
        };
        for path in paths {
            let name = path.display().to_string();
            let loaded = crate::diag::read_text(&path, "Kayenta canary config")
                .map_err(|e| {
                    if e.line == 0 {
                        at_entry(&path, e.message)
                    } else {
                        e
                    }
                })
                .and_then(|text| {
                    let cfg = crate::analysis::kayenta::parse_canary_config(&name, &text).map_err(
                        |e| {
                            let message = e
                                .to_string()
                                .split_once(": ")
                                .map_or(e.to_string(), |(_, m)| m.to_string());
                            match &e {
                                crate::analysis::kayenta::KayentaError::Json {
                                    line,
                                    column,
                                    ..
                                } => ConfigError {
                                    file: path.clone(),
                                    line: *line,
                                    column: *column,
                                    message,
                                },
                                _ => at_entry(&path, message),
                            }
                        },
                    )?;
                    let raw: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    Ok((cfg, raw))
                });
            match loaded {
                Ok((config, raw_json)) => {
                    let id = config.id.clone().unwrap_or_else(|| {
                        path.file_stem()
                            .map(|s| s.to_string_lossy().to_string())
                            .unwrap_or_default()
                    });
                    let updated_ms = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as i64);
                    if kayenta_configs.iter().any(|k| k.id == id) {
                        cx.errors.push(at_entry(
                            &path,
                            format!("Kayenta canary config id {id:?} is used twice"),
                        ));
                    }
                    kayenta_configs.push(KayentaConfigFile {
                        id,
                        path,
                        updated_ms,
                        raw: raw_json,
                        config,
                    });
                }
                Err(e) => cx.errors.push(e),
            }
        }
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for t in &analyses {
        if let Some(first) = seen.insert(t.name.clone(), t.source.clone()) {
            // `source` is "file:line" of the template's name.
            let (src, line) = t
                .source
                .rsplit_once(':')
                .and_then(|(f, l)| Some((PathBuf::from(f), l.parse().ok()?)))
                .unwrap_or_else(|| (file.to_path_buf(), 1));
            cx.errors.push(ConfigError {
                file: src,
                line,
                column: 1,
                message: format!(
                    "analysis template {:?} is defined twice ({first} and {})",
                    t.name, t.source
                ),
            });
        }
    }

    let rr = raw.rules.unwrap_or_default();
    let rules_config = RulesConfig {
        resend_delay: cx.duration(
            &rr.resend_delay,
            "rules.resend_delay",
            Duration::from_secs(60),
        ),
        for_outage_tolerance: cx.duration(
            &rr.for_outage_tolerance,
            "rules.for_outage_tolerance",
            Duration::from_secs(3600),
        ),
        for_grace_period: cx.duration(
            &rr.for_grace_period,
            "rules.for_grace_period",
            Duration::from_secs(600),
        ),
    };
    let notify = compile_notify(&mut cx, raw.notify.unwrap_or_default());
    let actions = compile_actions(&mut cx, raw.actions.unwrap_or_default());

    let mut jobs = HashSet::new();
    let scrape_configs = raw
        .scrape_configs
        .iter()
        .map(|sc| compile_job(&mut cx, sc, g_interval, g_timeout, &mut jobs))
        .collect();

    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|e| (e.line, e.column));
        return Err(ConfigErrors(cx.errors));
    }
    Ok(Config {
        path: file.to_path_buf(),
        server: ServerConfig {
            listen,
            external_url,
            state_dir,
            auth,
        },
        storage: StorageConfig {
            retention,
            snapshot_on_shutdown: rst.snapshot_on_shutdown.unwrap_or(true),
            snapshot_interval,
        },
        state,
        query,
        datasource,
        rule_files,
        rules,
        rules_config,
        analysis_files,
        analyses,
        kayenta_configs,
        notify,
        actions,
        global: GlobalConfig {
            scrape_interval: g_interval,
            scrape_timeout: g_timeout,
            evaluation_interval: eval,
            external_labels,
        },
        scrape_configs,
    })
}

fn compile_job(
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

struct AuthFields<'a> {
    bearer_token_file: &'a Option<Spanned<String>>,
    authorization: &'a Option<Spanned<raw::RawAuthorization>>,
    basic_auth: &'a Option<Spanned<raw::RawBasicAuth>>,
}

/// A sink's `rollouts` globs, each `namespace/name` (`*` within a part).
fn compile_rollouts(
    cx: &mut Ctx<'_>,
    list: &Option<Vec<Spanned<String>>>,
    key: &str,
) -> Vec<glob::Pattern> {
    let mut out = Vec::new();
    for r in list.iter().flatten() {
        let text = r.get_ref();
        if text.split('/').count() != 2 {
            cx.error(
                r.span(),
                format!("{key}: expected \"namespace/name\" (globs allowed, e.g. \"shop/*\"), found {text:?}"),
            );
            continue;
        }
        match glob::Pattern::new(text) {
            Ok(p) => out.push(p),
            Err(e) => cx.error(r.span(), format!("{key}: {text:?}: {e}")),
        }
    }
    out
}

/// A sink's `decisions` list (default: all), each checked.
fn compile_decisions(
    cx: &mut Ctx<'_>,
    list: &Option<Vec<Spanned<String>>>,
    key: &str,
) -> Vec<Decision> {
    match list {
        None => Decision::ALL.to_vec(),
        Some(ds) => ds
            .iter()
            .filter_map(|d| match d.get_ref().parse::<Decision>() {
                Ok(x) => Some(x),
                Err(e) => {
                    cx.error(d.span(), format!("{key}: {e}"));
                    None
                }
            })
            .collect(),
    }
}

fn compile_actions(cx: &mut Ctx<'_>, a: raw::RawActions) -> ActionsConfig {
    let mut names = HashSet::new();
    let webhooks = a
        .webhook
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let v = w.get_ref();
            if reqwest::Url::parse(v.url.get_ref()).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
                cx.error(v.url.span(), format!("actions.webhook: url {:?} is not an http(s) URL", v.url.get_ref()));
            }
            let name = v.name.clone().unwrap_or_else(|| format!("webhook-{i}"));
            if !names.insert(name.clone()) {
                cx.error(w.span(), format!("actions.webhook: name {name:?} is used twice"));
            }
            let method = match &v.method {
                None => reqwest::Method::POST,
                Some(m) => {
                    let up = m.get_ref().to_ascii_uppercase();
                    match ["POST", "PUT", "PATCH", "GET", "DELETE"].contains(&up.as_str()) {
                        true => reqwest::Method::from_bytes(up.as_bytes()).unwrap_or(reqwest::Method::POST),
                        false => {
                            cx.error(m.span(), format!("actions.webhook.method: expected POST, PUT, PATCH, GET or DELETE, found {:?}", m.get_ref()));
                            reqwest::Method::POST
                        }
                    }
                }
            };
            let decisions = compile_decisions(cx, &v.decisions, "actions.webhook.decisions");
            ActionWebhook {
                name,
                url: v.url.get_ref().clone(),
                method,
                headers: v.headers.clone(),
                body: v.body.clone(),
                hmac_secret_file: v.hmac_secret_file.as_ref().map(PathBuf::from),
                timeout: cx.duration(&v.timeout, "actions.webhook.timeout", Duration::from_secs(10)),
                decisions,
                rollouts: compile_rollouts(cx, &v.rollouts, "actions.webhook.rollouts"),
            }
        })
        .collect();
    let kubernetes = a
        .kubernetes
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let v = k.get_ref();
            let target = match v.target.get_ref().as_str() {
                "argo-rollout" => KubeTarget::ArgoRollout,
                "flagger-canary" => KubeTarget::FlaggerCanary,
                "deployment" => KubeTarget::Deployment,
                other => {
                    cx.error(v.target.span(), format!("actions.kubernetes.target: expected \"argo-rollout\", \"flagger-canary\" or \"deployment\", found {other:?}"));
                    KubeTarget::ArgoRollout
                }
            };
            if let Some(u) = &v.api_server {
                if reqwest::Url::parse(u.get_ref()).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
                    cx.error(u.span(), format!("actions.kubernetes.api_server: {:?} is not an http(s) URL", u.get_ref()));
                }
            }
            let name = v.name.clone().unwrap_or_else(|| format!("kubernetes-{i}"));
            if !names.insert(name.clone()) {
                cx.error(k.span(), format!("actions: sink name {name:?} is used twice"));
            }
            let decisions = compile_decisions(cx, &v.decisions, "actions.kubernetes.decisions");
            let abort_with = match &v.abort_with {
                None => AbortWith::ScaleToZero,
                Some(a) => {
                    if target != KubeTarget::Deployment {
                        cx.error(a.span(), "actions.kubernetes.abort_with: only for target = \"deployment\"".to_string());
                    }
                    match a.get_ref().as_str() {
                        "scale-to-zero" => AbortWith::ScaleToZero,
                        "rollback" => AbortWith::Rollback,
                        other => {
                            cx.error(a.span(), format!("actions.kubernetes.abort_with: expected \"scale-to-zero\" or \"rollback\", found {other:?}"));
                            AbortWith::ScaleToZero
                        }
                    }
                }
            };
            KubernetesSink {
                name,
                target,
                api_server: v.api_server.as_ref().map(|u| u.get_ref().clone()),
                token_file: v.token_file.as_ref().map(PathBuf::from),
                insecure: v.insecure.unwrap_or(false),
                decisions,
                rollouts: compile_rollouts(cx, &v.rollouts, "actions.kubernetes.rollouts"),
                abort_with,
            }
        })
        .collect();
    ActionsConfig {
        kubernetes,
        dry_run: a.dry_run.unwrap_or(false),
        max_attempts: a.max_attempts.unwrap_or(10).max(1),
        max_backoff: cx.duration(
            &a.max_backoff,
            "actions.max_backoff",
            Duration::from_secs(300),
        ),
        rate_limit_per_minute: a.rate_limit_per_minute.unwrap_or(6),
        webhooks,
    }
}

fn compile_notify(cx: &mut Ctx<'_>, n: raw::RawNotify) -> NotifyConfig {
    let mut receivers: Vec<Receiver> = Vec::new();
    let mut names = HashSet::new();
    let mut add = |cx: &mut Ctx<'_>, r: Receiver, span: Range<usize>| {
        if !names.insert(r.name.clone()) {
            cx.error(
                span,
                format!("notify: receiver name {:?} is used twice", r.name),
            );
        }
        receivers.push(r);
    };
    for (kind, list) in [
        ("alertmanager", &n.alertmanager),
        ("webhook", &n.webhook),
        ("slack", &n.slack),
    ] {
        for (i, r) in list.iter().enumerate() {
            let v = r.get_ref();
            if reqwest::Url::parse(v.url.get_ref())
                .map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
            {
                cx.error(
                    v.url.span(),
                    format!(
                        "notify.{kind}: url {:?} is not an http(s) URL",
                        v.url.get_ref()
                    ),
                );
            }
            let name = v.name.clone().unwrap_or_else(|| format!("{kind}-{i}"));
            let timeout = cx.duration(
                &v.timeout,
                &format!("notify.{kind}.timeout"),
                Duration::from_secs(10),
            );
            if kind != "webhook" && v.hmac_secret_file.is_some() {
                // Silently ignoring it would let people believe the
                // requests are signed.
                cx.error(
                    r.span(),
                    format!("notify.{kind}: hmac_secret_file applies to [[notify.webhook]] receivers only"),
                );
            }
            let rk = match kind {
                "alertmanager" => ReceiverKind::Alertmanager,
                "webhook" => ReceiverKind::Webhook {
                    hmac_secret_file: v.hmac_secret_file.as_ref().map(PathBuf::from),
                },
                _ => ReceiverKind::Slack,
            };
            add(
                cx,
                Receiver {
                    name,
                    url: v.url.get_ref().trim_end_matches('/').to_string(),
                    timeout,
                    rate_limit_per_minute: v.rate_limit_per_minute.unwrap_or(0),
                    kind: rk,
                },
                r.span(),
            );
        }
    }
    for (i, e) in n.email.iter().enumerate() {
        let v = e.get_ref();
        let tls = v
            .tls
            .as_ref()
            .map_or("starttls".to_string(), |t| t.get_ref().clone());
        if !matches!(tls.as_str(), "none" | "starttls" | "tls") {
            let span = v.tls.as_ref().map_or(e.span(), |t| t.span());
            cx.error(
                span,
                format!("notify.email.tls: {tls:?} (expected none, starttls or tls)"),
            );
        }
        if v.to.is_empty() {
            cx.error(e.span(), "notify.email: `to` needs at least one address");
        }
        let subject = v.subject.as_ref().map_or(
            "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}".to_string(),
            |s| s.get_ref().clone(),
        );
        let body = v.body.as_ref().map_or(
            "{{ range .Alerts }}{{ .Status }}: {{ .Labels }}\n{{ .Annotations }}\n{{ end }}"
                .to_string(),
            |s| s.get_ref().clone(),
        );
        for (what, t) in [("subject", &v.subject), ("body", &v.body)] {
            if let Some(t) = t {
                if let Err(err) = crate::gotemplate::check_notification(t.get_ref()) {
                    cx.error(t.span(), format!("notify.email.{what}: {err}"));
                }
            }
        }
        let name = v.name.clone().unwrap_or_else(|| format!("email-{i}"));
        let timeout = cx.duration(&v.timeout, "notify.email.timeout", Duration::from_secs(10));
        add(
            cx,
            Receiver {
                name,
                url: v.smtp.get_ref().clone(),
                timeout,
                rate_limit_per_minute: v.rate_limit_per_minute.unwrap_or(0),
                kind: ReceiverKind::Email {
                    tls,
                    from: v.from.get_ref().clone(),
                    to: v.to.iter().map(|t| t.get_ref().clone()).collect(),
                    username: v.username.clone(),
                    password_file: v.password_file.as_ref().map(PathBuf::from),
                    subject,
                    body,
                },
            },
            e.span(),
        );
    }
    NotifyConfig {
        max_attempts: n.max_attempts.unwrap_or(10).max(1),
        max_backoff: cx.duration(
            &n.max_backoff,
            "notify.max_backoff",
            Duration::from_secs(300),
        ),
        receivers,
    }
}

fn compile_datasource(cx: &mut Ctx<'_>, d: &Spanned<raw::RawDatasource>) -> DatasourceConfig {
    let r = d.get_ref();
    match r.kind.get_ref().as_str() {
        "embedded" => DatasourceConfig::Embedded,
        "prometheus" => {
            let url = match &r.url {
                None => {
                    cx.error(
                        d.span(),
                        "datasource: url is required for type \"prometheus\"",
                    );
                    String::new()
                }
                Some(u) => {
                    let v = u.get_ref().trim_end_matches('/').to_string();
                    if reqwest::Url::parse(&v)
                        .map_or(true, |p| !matches!(p.scheme(), "http" | "https"))
                    {
                        cx.error(
                            u.span(),
                            format!("datasource.url: {:?} is not an http(s) URL", u.get_ref()),
                        );
                    }
                    v
                }
            };
            let timeout = cx.duration(&r.timeout, "datasource.timeout", Duration::from_secs(30));
            let auth = compile_auth(
                cx,
                AuthFields {
                    bearer_token_file: &r.bearer_token_file,
                    authorization: &r.authorization,
                    basic_auth: &r.basic_auth,
                },
                "datasource",
                d.span(),
            );
            DatasourceConfig::Prometheus {
                url,
                timeout,
                auth,
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }
        }
        other => {
            cx.error(
                r.kind.span(),
                format!("datasource.type: {other:?} (expected \"embedded\" or \"prometheus\")"),
            );
            DatasourceConfig::Embedded
        }
    }
}

fn compile_auth(cx: &mut Ctx<'_>, r: AuthFields<'_>, job: &str, span: Range<usize>) -> Auth {
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

#[cfg(test)]
mod tests;
