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

/// One `static_configs` entry: a target group whose source is its index.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticConfig {
    /// `host:port` of each target
    pub targets: Vec<String>,
    /// labels of the group
    pub labels: Labels,
}

/// A `file_sd_configs` entry (`discovery/file`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSdConfig {
    /// file patterns, resolved against the config file's directory; `*`
    /// only in the last part
    pub files: Vec<PathBuf>,
    /// re-read every so often besides on changes (default 5m)
    pub refresh_interval: Duration,
}

/// A Kubernetes SD role (`discovery/kubernetes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KubeRole {
    /// one target per container port
    Pod,
    /// one target per service port
    Service,
    /// one target per Endpoints address and port
    Endpoints,
    /// one target per EndpointSlice address and port
    EndpointSlice,
    /// one target per node (kubelet)
    Node,
    /// one target per ingress rule path
    Ingress,
}

impl KubeRole {
    /// The name in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            KubeRole::Pod => "pod",
            KubeRole::Service => "service",
            KubeRole::Endpoints => "endpoints",
            KubeRole::EndpointSlice => "endpointslice",
            KubeRole::Node => "node",
            KubeRole::Ingress => "ingress",
        }
    }

    fn parse(s: &str) -> Option<KubeRole> {
        [
            KubeRole::Pod,
            KubeRole::Service,
            KubeRole::Endpoints,
            KubeRole::EndpointSlice,
            KubeRole::Node,
            KubeRole::Ingress,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The selector roles Prometheus allows for this SD role.
    pub fn allowed_selectors(self) -> &'static [KubeRole] {
        match self {
            KubeRole::Pod => &[KubeRole::Pod, KubeRole::Node],
            KubeRole::Service => &[KubeRole::Service],
            KubeRole::EndpointSlice => &[KubeRole::Pod, KubeRole::Service, KubeRole::EndpointSlice],
            KubeRole::Endpoints => &[KubeRole::Pod, KubeRole::Service, KubeRole::Endpoints],
            KubeRole::Node => &[KubeRole::Node],
            KubeRole::Ingress => &[KubeRole::Ingress],
        }
    }
}

/// A label and field selector for one watched resource.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeSelector {
    /// the resource it applies to
    pub role: KubeRole,
    /// `labelSelector`
    pub label: String,
    /// `fieldSelector`
    pub field: String,
}

/// `tls_config` for a client.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    /// CA bundle (PEM) to trust
    pub ca_file: Option<PathBuf>,
    /// client certificate (PEM)
    pub cert_file: Option<PathBuf>,
    /// client key (PEM)
    pub key_file: Option<PathBuf>,
    /// name to verify the server certificate against
    pub server_name: Option<String>,
    /// skip verification (tests and labs only)
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// Applies this `tls_config` to a client: the CA bundle and the client
    /// identity are read now (a reload re-reads them). Shared by scraping
    /// and HTTP SD, like [`Auth::header_value`].
    pub fn apply(&self, mut b: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        let t = self;
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format!("tls_config: cannot read {}: {e}", p.display()))
        };
        if let Some(ca) = &t.ca_file {
            let pem = read(ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls_config: {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!("tls_config: no certificate in {}", ca.display()));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("tls_config: {} / {}: {e}", cert.display(), key.display()))?;
            b = b.identity(id);
        }
        if t.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        Ok(b)
    }
}

/// A `kubernetes_sd_configs` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSdConfig {
    /// what is discovered
    pub role: KubeRole,
    /// the API server; None with no kubeconfig means in-cluster
    pub api_server: Option<String>,
    /// a kubeconfig file instead of `api_server`
    pub kubeconfig_file: Option<PathBuf>,
    /// namespaces to watch (empty: all)
    pub namespaces: Vec<String>,
    /// also the pod's own namespace (in-cluster only)
    pub own_namespace: bool,
    /// label/field selectors per watched resource
    pub selectors: Vec<KubeSelector>,
    /// `attach_metadata.node`
    pub attach_node: bool,
    /// `attach_metadata.namespace`
    pub attach_namespace: bool,
    /// credentials for `api_server`
    pub auth: Auth,
    /// TLS for `api_server`
    pub tls: TlsConfig,
}

/// An `http_sd_configs` entry (`discovery/http`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSdConfig {
    /// where the target groups are fetched (http or https)
    pub url: String,
    /// how often (default 60s, also the request timeout)
    pub refresh_interval: Duration,
    /// credentials
    pub auth: Auth,
    /// TLS to the URL
    pub tls: TlsConfig,
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
    /// TLS to the targets.
    pub tls: TlsConfig,
    /// `static_configs`, each one target group.
    pub static_configs: Vec<StaticConfig>,
    /// `file_sd_configs`
    pub file_sd_configs: Vec<FileSdConfig>,
    /// `http_sd_configs`
    pub http_sd_configs: Vec<HttpSdConfig>,
    /// `kubernetes_sd_configs`
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// `relabel_configs`: applied to discovered targets.
    pub relabel_configs: Vec<relabel::Rule>,
    /// `metric_relabel_configs`: applied to each scraped series.
    pub metric_relabel_configs: Vec<relabel::Rule>,
    /// Most dropped targets listed by the API; 0 = all.
    pub keep_dropped_targets: u64,
}

impl ScrapeConfig {
    /// The settings target finishing needs.
    pub fn target_defaults(&self) -> relabel::JobDefaults<'_> {
        relabel::JobDefaults {
            job_name: &self.job_name,
            scrape_interval: self.scrape_interval,
            scrape_timeout: self.scrape_timeout,
            metrics_path: &self.metrics_path,
            scheme: &self.scheme,
            params: &self.params,
            rules: &self.relabel_configs,
        }
    }

    /// Whether the job discovers targets at run time (beyond static ones).
    pub fn has_discovery(&self) -> bool {
        !self.file_sd_configs.is_empty()
            || !self.http_sd_configs.is_empty()
            || !self.kubernetes_sd_configs.is_empty()
    }
}

/// Compiles `relabel_configs`-style rules; each error is placed at its rule.
pub(super) fn compile_relabel(
    cx: &mut Ctx<'_>,
    rules: &[Spanned<raw::RawRelabel>],
    key: &str,
) -> Vec<relabel::Rule> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let v = r.get_ref();
        let spec = relabel::RuleSpec {
            source_labels: v.source_labels.clone().unwrap_or_default(),
            separator: v.separator.clone(),
            regex: v.regex.clone(),
            modulus: v.modulus,
            target_label: v.target_label.clone(),
            replacement: v.replacement.clone(),
            action: v.action.clone(),
            legacy_names: false,
        };
        if let Some(bad) = spec.source_labels.iter().find(|n| n.is_empty()) {
            cx.error(
                r.span(),
                format!("{key}[{i}]: {bad:?} is not a valid label name"),
            );
            continue;
        }
        match relabel::Rule::new(&spec) {
            Ok(rule) => out.push(rule),
            Err(e) => cx.error(r.span(), format!("{key}[{i}]: {e}")),
        }
    }
    out
}

/// Prometheus's `patFileSDName`: `*` only in the last path element, and
/// a `.json`/`.yml`/`.yaml` extension (all lower or all upper case).
fn valid_file_sd_name(name: &str) -> bool {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$")
            .expect("constant regex")
    });
    RE.is_match(name)
}

fn compile_file_sd(
    cx: &mut Ctx<'_>,
    sd: &Spanned<raw::RawFileSd>,
    what: &str,
) -> Option<FileSdConfig> {
    let r = sd.get_ref();
    if r.files.is_empty() {
        cx.error(
            sd.span(),
            format!("{what}: file service discovery config must contain at least one path name"),
        );
        return None;
    }
    let mut files = Vec::new();
    for f in &r.files {
        if !valid_file_sd_name(f.get_ref()) {
            cx.error(
                f.span(),
                format!(
                    "{what}: path name {:?} is not valid for file discovery",
                    f.get_ref()
                ),
            );
            continue;
        }
        files.push(resolve(cx.base_dir(), f.get_ref()));
    }
    let refresh_interval = cx.duration(
        &r.refresh_interval,
        &format!("{what}.refresh_interval"),
        Duration::from_secs(300),
    );
    Some(FileSdConfig {
        files,
        refresh_interval: if refresh_interval.is_zero() {
            Duration::from_secs(300)
        } else {
            refresh_interval
        },
    })
}

fn compile_http_sd(
    cx: &mut Ctx<'_>,
    sd: &Spanned<raw::RawHttpSd>,
    what: &str,
) -> Option<HttpSdConfig> {
    let r = sd.get_ref();
    let Some(url) = &r.url else {
        cx.error(sd.span(), format!("{what}: URL is missing"));
        return None;
    };
    let problem = match reqwest::Url::parse(url.get_ref()) {
        Err(e) => Some(format!("parse {:?}: {e}", url.get_ref())),
        Ok(u) if u.scheme() != "http" && u.scheme() != "https" => {
            Some("URL scheme must be 'http' or 'https'".to_string())
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            Some("host is missing in URL".to_string())
        }
        Ok(_) => None,
    };
    if let Some(p) = problem {
        cx.error(url.span(), format!("{what}.url: {p}"));
        return None;
    }
    let refresh_interval = cx.duration(
        &r.refresh_interval,
        &format!("{what}.refresh_interval"),
        Duration::from_secs(60),
    );
    let auth = compile_auth(
        cx,
        AuthFields {
            bearer_token_file: &r.bearer_token_file,
            authorization: &r.authorization,
            basic_auth: &r.basic_auth,
        },
        what,
        sd.span(),
    );
    let tls = compile_client_tls(cx, &r.tls_config, what);
    Some(HttpSdConfig {
        tls,
        url: url.get_ref().clone(),
        refresh_interval: if refresh_interval.is_zero() {
            Duration::from_secs(60)
        } else {
            refresh_interval
        },
        auth,
    })
}

/// `tls_config` for clients augur builds with reqwest (scrape jobs, HTTP
/// SD): `server_name` needs a TLS verifier of our own and is refused
/// rather than ignored; cert and key come together.
pub(super) fn compile_client_tls(
    cx: &mut Ctx<'_>,
    r: &Option<Spanned<raw::RawTls>>,
    what: &str,
) -> TlsConfig {
    if let Some(t) = r {
        let v = t.get_ref();
        if v.server_name.is_some() {
            cx.error(
                t.span(),
                format!("{what}: tls_config.server_name is not supported here (only in kubernetes_sd_configs); scrape by that name instead"),
            );
        }
        if v.cert_file.is_some() != v.key_file.is_some() {
            cx.error(
                t.span(),
                format!("{what}: tls_config needs both cert_file and key_file, or neither"),
            );
        }
    }
    let base = cx.base_dir().to_path_buf();
    compile_tls(r, &base)
}

fn compile_tls(r: &Option<Spanned<raw::RawTls>>, base: &Path) -> TlsConfig {
    let Some(t) = r else {
        return TlsConfig::default();
    };
    let t = t.get_ref();
    TlsConfig {
        ca_file: t.ca_file.as_ref().map(|f| resolve(base, f)),
        cert_file: t.cert_file.as_ref().map(|f| resolve(base, f)),
        key_file: t.key_file.as_ref().map(|f| resolve(base, f)),
        server_name: t.server_name.clone(),
        insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
    }
}

/// Prometheus's `kubernetes.SDConfig` checks, in its order and words.
fn compile_kubernetes_sd(
    cx: &mut Ctx<'_>,
    sd: &Spanned<raw::RawKubernetesSd>,
    what: &str,
) -> Option<KubernetesSdConfig> {
    let r = sd.get_ref();
    let span = sd.span();
    let err = |cx: &mut Ctx<'_>, span: Range<usize>, m: String| {
        cx.error(span, format!("{what}: {m}"));
        None
    };
    let role = match &r.role {
        None => {
            return err(
                cx,
                span,
                "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)"
                    .into(),
            )
        }
        Some(s) => match KubeRole::parse(s.get_ref()) {
            Some(role) => role,
            None => {
                return err(
                    cx,
                    s.span(),
                    format!("unknown Kubernetes SD role {:?}", s.get_ref()),
                )
            }
        },
    };
    let custom_http = r.bearer_token_file.is_some()
        || r.authorization.is_some()
        || r.basic_auth.is_some()
        || r.tls_config.is_some();
    let own = r
        .namespaces
        .as_ref()
        .and_then(|n| n.own_namespace)
        .unwrap_or(false);
    let (server, kubeconfig) = (r.api_server.is_some(), r.kubeconfig_file.is_some());
    // Prometheus's exclusions, in its order; the first that applies is
    // the error.
    let exclusions = [
        (server && kubeconfig, "cannot use 'kubeconfig_file' and 'api_server' simultaneously"),
        (kubeconfig && custom_http, "cannot use a custom HTTP client configuration together with 'kubeconfig_file'"),
        (!server && custom_http, "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"),
        (server && own, "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously"),
        (kubeconfig && own, "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously"),
    ];
    if let Some((_, m)) = exclusions.iter().find(|(applies, _)| *applies) {
        return err(cx, span, m.to_string());
    }
    if let Some(a) = &r.api_server {
        match reqwest::Url::parse(a.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return err(
                    cx,
                    a.span(),
                    format!("api_server: {:?} is not an http or https URL", a.get_ref()),
                )
            }
        }
    }
    let mut selectors: Vec<KubeSelector> = Vec::new();
    for s in &r.selectors {
        let v = s.get_ref();
        let sel_role = v.role.as_deref().and_then(KubeRole::parse);
        if let Some(name) = v.role.as_deref().filter(|_| sel_role.is_none()) {
            if !name.is_empty() {
                return err(cx, s.span(), format!("unknown Kubernetes SD role {name:?}"));
            }
        }
        if let Some(sr) = sel_role {
            if selectors.iter().any(|x| x.role == sr) {
                return err(
                    cx,
                    s.span(),
                    format!("duplicated selector role: {}", sr.as_str()),
                );
            }
        }
        let allowed = role.allowed_selectors();
        let Some(sr) = sel_role.filter(|sr| allowed.contains(sr)) else {
            let names: Vec<&str> = allowed.iter().map(|a| a.as_str()).collect();
            return err(
                cx,
                s.span(),
                format!(
                    "{} role supports only {} selectors",
                    role.as_str(),
                    names.join(", ")
                ),
            );
        };
        selectors.push(KubeSelector {
            role: sr,
            label: v.label.clone().unwrap_or_default(),
            field: v.field.clone().unwrap_or_default(),
        });
    }
    let auth = compile_auth(
        cx,
        AuthFields {
            bearer_token_file: &r.bearer_token_file,
            authorization: &r.authorization,
            basic_auth: &r.basic_auth,
        },
        what,
        span.clone(),
    );
    let base = cx.base_dir().to_path_buf();
    Some(KubernetesSdConfig {
        role,
        api_server: r.api_server.as_ref().map(|a| a.get_ref().clone()),
        kubeconfig_file: r
            .kubeconfig_file
            .as_ref()
            .map(|f| resolve(&base, f.get_ref())),
        namespaces: r
            .namespaces
            .as_ref()
            .map(|n| n.names.clone())
            .unwrap_or_default(),
        own_namespace: own,
        selectors,
        attach_node: r
            .attach_metadata
            .as_ref()
            .and_then(|a| a.node)
            .unwrap_or(false),
        attach_namespace: r
            .attach_metadata
            .as_ref()
            .and_then(|a| a.namespace)
            .unwrap_or(false),
        auth,
        tls: compile_tls(&r.tls_config, &base),
    })
}

/// The `[global]` defaults a job inherits (Prometheus's
/// `ScrapeConfig.Validate`: a job's unset or 0 limit is the global one).
#[derive(Debug, Clone, Copy)]
pub(super) struct JobInherit {
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
    pub(super) body_size_limit: Option<u64>,
    pub(super) sample_limit: u64,
    pub(super) label_limit: u64,
    pub(super) label_name_length_limit: u64,
    pub(super) label_value_length_limit: u64,
    pub(super) target_limit: u64,
    pub(super) keep_dropped_targets: u64,
}

/// A `body_size_limit` value; errors say where.
pub(super) fn body_size(cx: &mut Ctx<'_>, b: &Spanned<raw::BodySize>, key: &str) -> Option<u64> {
    match b.get_ref() {
        raw::BodySize::Bytes(n) => Some(*n),
        raw::BodySize::Text(t) => parse_bytes(t).or_else(|| {
            cx.error(
                b.span(),
                format!("{key}: {t:?} (expected bytes, e.g. 16MB, 512KiB or 1048576)"),
            );
            None
        }),
    }
}

pub(super) fn compile_job(
    cx: &mut Ctx<'_>,
    sc: &Spanned<raw::RawScrapeConfig>,
    g: &JobInherit,
    jobs: &mut HashSet<String>,
) -> ScrapeConfig {
    let (g_interval, g_timeout) = (g.interval, g.timeout);
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
    let inherited_body = g.body_size_limit.unwrap_or(DEFAULT_BODY_SIZE_LIMIT);
    let body_size_limit = match &r.body_size_limit {
        None => inherited_body,
        Some(b) => match body_size(cx, b, &what("body_size_limit")) {
            Some(0) if g.body_size_limit.is_some() => inherited_body,
            Some(n) => n,
            None => inherited_body,
        },
    };
    let inherit = |v: Option<u64>, global: u64| v.filter(|v| *v > 0).unwrap_or(global);
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

    let relabel_configs = compile_relabel(cx, &r.relabel_configs, &what("relabel_configs"));
    let metric_relabel_configs = compile_relabel(
        cx,
        &r.metric_relabel_configs,
        &what("metric_relabel_configs"),
    );
    let file_sd_configs = r
        .file_sd_configs
        .iter()
        .enumerate()
        .filter_map(|(i, sd)| compile_file_sd(cx, sd, &what(&format!("file_sd_configs[{i}]"))))
        .collect();
    let http_sd_configs = r
        .http_sd_configs
        .iter()
        .enumerate()
        .filter_map(|(i, sd)| compile_http_sd(cx, sd, &what(&format!("http_sd_configs[{i}]"))))
        .collect();
    let tls = compile_client_tls(cx, &r.tls_config, &format!("job {job_name:?}"));
    let kubernetes_sd_configs = r
        .kubernetes_sd_configs
        .iter()
        .enumerate()
        .filter_map(|(i, sd)| {
            compile_kubernetes_sd(cx, sd, &what(&format!("kubernetes_sd_configs[{i}]")))
        })
        .collect();
    let mut static_configs = Vec::new();
    for st in &r.static_configs {
        let labels = cx.labels(&st.get_ref().labels, &what("static_configs.labels"));
        let mut targets = Vec::new();
        for t in &st.get_ref().targets {
            let a = t.get_ref();
            if !r.relabel_configs.is_empty() {
                // Relabeling may rewrite the address: Prometheus checks
                // static targets only for jobs without it.
                targets.push(a.clone());
                continue;
            }
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
            targets.push(a.clone());
        }
        static_configs.push(StaticConfig { targets, labels });
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
        sample_limit: inherit(r.sample_limit, g.sample_limit),
        label_limit: inherit(r.label_limit, g.label_limit),
        label_name_length_limit: inherit(r.label_name_length_limit, g.label_name_length_limit),
        label_value_length_limit: inherit(r.label_value_length_limit, g.label_value_length_limit),
        target_limit: inherit(r.target_limit, g.target_limit),
        fallback_scrape_protocol,
        params,
        auth,
        tls,
        static_configs,
        file_sd_configs,
        http_sd_configs,
        kubernetes_sd_configs,
        relabel_configs,
        metric_relabel_configs,
        keep_dropped_targets: inherit(r.keep_dropped_targets, g.keep_dropped_targets),
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
