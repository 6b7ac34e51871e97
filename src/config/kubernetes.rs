//! `[kubernetes]` (the cluster connection shared by HA and, unless they
//! name their own, other Kubernetes clients) and `[ha]` (two replicas, one
//! actor, through a `coordination.k8s.io/v1` Lease).

use super::*;

/// How augur reaches a Kubernetes API server. Neither `api_server` nor
/// `kubeconfig_file`: the in-cluster service account, as client-go does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KubeConnection {
    /// API server URL
    pub api_server: Option<String>,
    /// a kubeconfig file (its current context)
    pub kubeconfig_file: Option<PathBuf>,
    /// bearer token file, re-read by the client (with `api_server`)
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle for the API server (with `api_server`)
    pub ca_file: Option<PathBuf>,
    /// skip TLS verification (with `api_server`; tests and labs only)
    pub insecure: bool,
}

impl KubeConnection {
    /// Builds the client (for `api_server`, through [`crate::kubeapi::client`]).
    pub async fn client(&self) -> Result<kube::Client, String> {
        let kc = if let Some(f) = &self.kubeconfig_file {
            let k = kube::config::Kubeconfig::read_from(f)
                .map_err(|e| format!("kubeconfig {}: {e}", f.display()))?;
            kube::Config::from_custom_kubeconfig(k, &Default::default())
                .await
                .map_err(|e| e.to_string())?
        } else if let Some(url) = &self.api_server {
            let mut user = serde_json::Map::new();
            if let Some(t) = &self.token_file {
                user.insert("tokenFile".into(), t.display().to_string().into());
            }
            let mut cluster = serde_json::Map::new();
            if let Some(ca) = &self.ca_file {
                cluster.insert(
                    "certificate-authority".into(),
                    ca.display().to_string().into(),
                );
            }
            if self.insecure {
                cluster.insert("insecure-skip-tls-verify".into(), true.into());
            }
            return crate::kubeapi::client(url, user, cluster).await;
        } else {
            kube::Config::incluster().map_err(|e| format!("in-cluster configuration: {e}"))?
        };
        kube::Client::try_from(kc).map_err(|e| e.to_string())
    }
}

/// `[ha]`: Lease leader election with client-go's timing.
#[derive(Debug, Clone, PartialEq)]
pub struct HaConfig {
    /// the Lease's namespace
    pub namespace: String,
    /// the Lease's name
    pub name: String,
    /// this replica's holder identity
    pub identity: String,
    /// how long a lease holds without renewal (judged by observers)
    pub lease_duration: Duration,
    /// how long the leader keeps acting without a successful renewal
    pub renew_deadline: Duration,
    /// how often to try to acquire or renew
    pub retry_period: Duration,
    /// the API server holding the Lease
    pub connection: KubeConnection,
    /// `/-/ready` answers 503 on a standby
    pub ready_only_when_leader: bool,
}

pub(super) fn connection(
    cx: &mut Ctx<'_>,
    api_server: &Option<Spanned<String>>,
    kubeconfig_file: &Option<String>,
    token_file: &Option<String>,
    ca_file: &Option<String>,
    insecure: Option<bool>,
    key: &str,
) -> KubeConnection {
    let base = cx.base_dir().to_path_buf();
    if let Some(u) = api_server {
        match reqwest::Url::parse(u.get_ref()) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.host_str().is_some() => {}
            _ => cx.error(
                u.span(),
                format!("{key}.api_server: {:?} is not an http(s) URL", u.get_ref()),
            ),
        }
        if kubeconfig_file.is_some() {
            cx.error(
                u.span(),
                format!("{key}: api_server and kubeconfig_file are mutually exclusive"),
            );
        }
    }
    KubeConnection {
        api_server: api_server.as_ref().map(|u| u.get_ref().clone()),
        kubeconfig_file: kubeconfig_file.as_ref().map(|f| resolve(&base, f)),
        token_file: token_file.as_ref().map(|f| resolve(&base, f)),
        ca_file: ca_file.as_ref().map(|f| resolve(&base, f)),
        insecure: insecure.unwrap_or(false),
    }
}

pub(super) fn compile_kubernetes(
    cx: &mut Ctx<'_>,
    r: &Option<raw::RawKubernetes>,
) -> KubeConnection {
    match r {
        None => KubeConnection::default(),
        Some(k) => connection(
            cx,
            &k.api_server,
            &k.kubeconfig_file,
            &k.token_file,
            &k.ca_file,
            k.insecure,
            "kubernetes",
        ),
    }
}

/// The default identity: host name and process id, unique per replica.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "augur".into());
    format!("{host}_{}", std::process::id())
}

pub(super) fn compile_ha(
    cx: &mut Ctx<'_>,
    r: &Option<Spanned<raw::RawHa>>,
    shared: &KubeConnection,
) -> Option<HaConfig> {
    let h = r.as_ref()?;
    let v = h.get_ref();
    let Some(lease) = &v.lease else {
        cx.error(
            h.span(),
            "ha.lease: required (\"namespace/name\" of a coordination.k8s.io/v1 Lease)",
        );
        return None;
    };
    let (namespace, name) = match lease.get_ref().split_once('/') {
        Some((ns, n))
            if crate::names::check_namespace(ns).is_ok() && crate::names::check_name(n).is_ok() =>
        {
            (ns.to_string(), n.to_string())
        }
        _ => {
            cx.error(
                lease.span(),
                format!(
                    "ha.lease: {:?} (expected \"namespace/name\" with Kubernetes object names)",
                    lease.get_ref()
                ),
            );
            return None;
        }
    };
    let lease_duration = cx.duration(
        &v.lease_duration,
        "ha.lease_duration",
        Duration::from_secs(15),
    );
    let renew_deadline = cx.duration(
        &v.renew_deadline,
        "ha.renew_deadline",
        Duration::from_secs(10),
    );
    let retry_period = cx.duration(&v.retry_period, "ha.retry_period", Duration::from_secs(2));
    // client-go's NewLeaderElector checks, in its words.
    let problem = if lease_duration.is_zero() {
        Some("leaseDuration must be greater than zero")
    } else if renew_deadline.is_zero() {
        Some("renewDeadline must be greater than zero")
    } else if retry_period.is_zero() {
        Some("retryPeriod must be greater than zero")
    } else if lease_duration <= renew_deadline {
        Some("leaseDuration must be greater than renewDeadline")
    } else if renew_deadline.as_secs_f64() <= 1.2 * retry_period.as_secs_f64() {
        Some("renewDeadline must be greater than retryPeriod*JitterFactor")
    } else if lease_duration.subsec_nanos() != 0 {
        // leaseDurationSeconds is an integer in the Lease.
        Some("lease_duration must be whole seconds (the Lease stores leaseDurationSeconds)")
    } else {
        None
    };
    if let Some(p) = problem {
        cx.error(h.span(), format!("ha: {p}"));
    }
    let identity = match &v.identity {
        Some(i) if i.get_ref().trim().is_empty() => {
            cx.error(i.span(), "ha.identity: must not be empty");
            default_identity()
        }
        Some(i) => i.get_ref().clone(),
        None => default_identity(),
    };
    let own = v.api_server.is_some() || v.kubeconfig_file.is_some();
    let connection = if own {
        connection(
            cx,
            &v.api_server,
            &v.kubeconfig_file,
            &v.token_file,
            &v.ca_file,
            v.insecure,
            "ha",
        )
    } else {
        if v.token_file.is_some() || v.ca_file.is_some() || v.insecure.is_some() {
            cx.error(
                h.span(),
                "ha: token_file, ca_file and insecure go with ha.api_server (or set them in [kubernetes])",
            );
        }
        shared.clone()
    };
    Some(HaConfig {
        namespace,
        name,
        identity,
        lease_duration,
        renew_deadline,
        retry_period,
        connection,
        ready_only_when_leader: v.ready_only_when_leader.unwrap_or(false),
    })
}
