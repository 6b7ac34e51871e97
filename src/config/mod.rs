//! The TOML config: raw serde structs (`raw`) compiled into a validated
//! [`Config`], with every error collected and reported as
//! `file:line:col: message`. This file holds the small sections
//! (`[server]`, `[storage]`, `[state]`, `[global]`, `[query]`, `[rules]`),
//! the file-loading sections (`rule_files`, `analysis_files`,
//! `kayenta_configs`) and the orchestration; the big ones have a file each:
//! `scrape` (`[[scrape_configs]]`), `notify`, `actions`, `datasource`.
//!
//! The scrape part uses `prometheus.yml`'s names and defaults
//! (`config/config.go` in prometheus/prometheus): global scrape interval 1m,
//! timeout 10s, evaluation interval 1m; a job's timeout defaults to the
//! global one capped at the job's interval.

mod actions;
mod datasource;
mod files;
mod kubernetes;
mod notify;
mod raw;
mod remote_write;
mod rollouts;
mod scrape;
mod ui;

pub use actions::{
    sink_wants, AbortWith, ActionWebhook, ActionsConfig, KubeTarget, KubernetesSink,
};
pub use datasource::DatasourceConfig;
pub use kubernetes::{HaConfig, KubeConnection};
pub use notify::{NotifyConfig, PagerDuty, Receiver, ReceiverKind, PAGERDUTY_URL};
pub use remote_write::{QueueConfig, RemoteWriteConfig};
pub use rollouts::{
    AnalysisRef, BlueGreenSpec, CanarySpec, RolloutConfig, Router, Step, Strategy, BUILTIN_ARGS,
};
pub use scrape::{
    parse_bytes, Auth, FileSdConfig, HttpSdConfig, KubeRole, KubeSelector, KubernetesSdConfig,
    ScrapeConfig, Secret, StaticConfig, TlsConfig, DEFAULT_BODY_SIZE_LIMIT,
};
pub use ui::{DeliveryConfig, UiConfig, UiLink};

use actions::compile_actions;
use datasource::compile_datasource;
use files::{load_files, FileKeys, Files};
use kubernetes::{compile_ha, compile_kubernetes};
use notify::compile_notify;
use remote_write::compile_remote_write;
use rollouts::compile_rollouts;
use scrape::{body_size, compile_auth, compile_job, AuthFields, JobInherit};
use ui::{compile_delivery, compile_ui};

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
use crate::relabel;

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

/// `[rules]`: alert timing (Prometheus's --rules.alert.* flags).
#[derive(Debug, Clone, PartialEq)]
pub struct RulesConfig {
    /// Least time between re-sends of a firing alert (default 1m).
    pub resend_delay: Duration,
    /// Longest outage after which `for` state is still restored (default 1h).
    pub for_outage_tolerance: Duration,
    /// Least time a restored alert waits before firing (default 10m).
    pub for_grace_period: Duration,
    /// Groups that read the embedded store although `[datasource]` is
    /// remote (`[[rules.groups]] datasource = "local"`).
    pub local_groups: std::collections::BTreeSet<String>,
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
    /// `[[remote_write]]`
    pub remote_write: Vec<RemoteWriteConfig>,
    /// `[kubernetes]`: the shared cluster connection
    pub kubernetes: KubeConnection,
    /// `[ha]`: leader election; None = this replica always acts
    pub ha: Option<HaConfig>,
    /// `[[rollouts]]`: rollouts augur drives itself
    pub rollouts: Vec<RolloutConfig>,
    /// `[ui]`: links from the web pages to other tools
    pub ui: UiConfig,
    /// `[delivery]`: what the delivery metrics count
    pub delivery: DeliveryConfig,
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
    /// The directory relative paths in the config are resolved against.
    fn base_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

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

    /// A count from 1 to `max`; a value outside is an error at its place.
    fn count(&mut self, v: &Option<Spanned<u64>>, key: &str, default: u64, max: u64) -> u64 {
        match v {
            None => default,
            Some(n) if *n.get_ref() == 0 || *n.get_ref() > max => {
                self.error(n.span(), format!("{key}: expected 1 to {max}"));
                default
            }
            Some(n) => *n.get_ref(),
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
    let state = StateConfig {
        retention: state_retention,
        max_audit_rows: cx.count(
            &rstate.max_audit_rows,
            "state.max_audit_rows",
            1_000_000,
            1_000_000_000,
        ),
        max_running_analyses: cx.count(
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
        max_concurrency: cx.count(&rq.max_concurrency, "query.max_concurrency", 20, 10_000)
            as usize,
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

    let Files {
        rule_files,
        rules,
        analysis_files,
        analyses,
        kayenta_configs,
    } = load_files(
        &mut cx,
        file,
        text,
        FileKeys {
            rule_files: &raw.rule_files,
            analysis_files: &raw.analysis_files,
            analysis: &raw.analysis,
            kayenta_configs: &raw.kayenta_configs,
        },
    );

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
        local_groups: Default::default(),
    };
    let mut rules_config = rules_config;
    // Rule files cannot say where a group reads (promtool refuses unknown
    // group keys), so the choice lives here, by group name.
    let remote = !matches!(datasource, DatasourceConfig::Embedded);
    for (i, g) in rr.groups.iter().enumerate() {
        let key = format!("rules.groups[{i}]");
        let v = g.get_ref();
        let Some(name) = &v.name else {
            cx.error(g.span(), format!("{key}: name is missing"));
            continue;
        };
        if !rules
            .iter()
            .any(|(_, f)| f.groups.iter().any(|rg| rg.name == *name.get_ref()))
        {
            cx.error(
                name.span(),
                format!(
                    "{key}.name: no rule group {:?} in rule_files",
                    name.get_ref()
                ),
            );
        }
        match v.datasource.as_ref().map(|d| (d, d.get_ref().as_str())) {
            None => {}
            Some((_, "local")) => {
                rules_config.local_groups.insert(name.get_ref().clone());
            }
            Some((d, "remote")) if !remote => cx.error(
                d.span(),
                format!("{key}.datasource: \"remote\" needs [datasource] type = \"prometheus\""),
            ),
            Some((_, "remote")) => {}
            Some((d, other)) => cx.error(
                d.span(),
                format!("{key}.datasource: {other:?} (expected \"local\" or \"remote\")"),
            ),
        }
    }
    let notify = compile_notify(&mut cx, raw.notify.unwrap_or_default());
    let kubernetes = compile_kubernetes(&mut cx, &raw.kubernetes);
    let actions = compile_actions(
        &mut cx,
        raw.actions.unwrap_or_default(),
        raw.kubernetes.as_ref().map(|_| &kubernetes),
    );

    let inherit = JobInherit {
        interval: g_interval,
        timeout: g_timeout,
        body_size_limit: rg
            .body_size_limit
            .as_ref()
            .and_then(|b| body_size(&mut cx, b, "global.body_size_limit")),
        sample_limit: rg.sample_limit.unwrap_or(0),
        label_limit: rg.label_limit.unwrap_or(0),
        label_name_length_limit: rg.label_name_length_limit.unwrap_or(0),
        label_value_length_limit: rg.label_value_length_limit.unwrap_or(0),
        target_limit: rg.target_limit.unwrap_or(0),
        keep_dropped_targets: rg.keep_dropped_targets.unwrap_or(0),
    };
    let mut jobs = HashSet::new();
    let scrape_configs = raw
        .scrape_configs
        .iter()
        .map(|sc| compile_job(&mut cx, sc, &inherit, &mut jobs))
        .collect();
    let remote_write = compile_remote_write(&mut cx, &raw.remote_write);
    let ha = compile_ha(&mut cx, &raw.ha, &kubernetes);
    let rollouts = compile_rollouts(&mut cx, &raw.rollouts, &kubernetes, &analyses);
    let ui = compile_ui(&mut cx, &raw.ui);
    let delivery = compile_delivery(&mut cx, &raw.delivery);

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
        remote_write,
        kubernetes,
        ha,
        rollouts,
        ui,
        delivery,
    })
}

#[cfg(test)]
mod tests;
