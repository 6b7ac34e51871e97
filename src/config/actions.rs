//! `[actions]`: the sinks decisions are carried out through.

use super::*;

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
    /// How to reach the API server: its own `api_server` (with
    /// `token_file`, `insecure`), else `[kubernetes]`; None = kubeconfig
    /// or the in-cluster service account.
    pub connection: Option<KubeConnection>,
    /// Decisions it carries out (default: all).
    pub decisions: Vec<Decision>,
    /// Rollouts it acts on, as `namespace/name` globs (empty: all).
    pub rollouts: Vec<glob::Pattern>,
    /// Deployments and Flagger Canaries: how an abort is carried out.
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

/// How a sink carries out `abort` (Deployments and Flagger Canaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortWith {
    /// Scale a separate canary Deployment to 0 (`scale-to-zero`).
    ScaleToZero,
    /// `kubectl rollout undo` a rolling Deployment (`rollback`).
    Rollback,
    /// Flagger: open augur's rollback gate, which Flagger's `rollback`
    /// webhook reads (`rollback-gate`).
    RollbackGate,
    /// Flagger without the rollback webhook: raise `status.failedChecks`
    /// to the analysis threshold, which Flagger's scheduler turns into a
    /// rollback (`failed-checks`; fluxcd/flagger#1467).
    FailedChecks,
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

/// A sink's `rollouts` globs, each `namespace/name` (`*` within a part).
pub(super) fn compile_rollouts(
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
pub(super) fn compile_decisions(
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

pub(super) fn compile_actions(
    cx: &mut Ctx<'_>,
    a: raw::RawActions,
    shared: Option<&KubeConnection>,
) -> ActionsConfig {
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
            let abort_with = match (&v.abort_with, target) {
                (None, KubeTarget::FlaggerCanary) => AbortWith::RollbackGate,
                (None, _) => AbortWith::ScaleToZero,
                (Some(a), KubeTarget::Deployment) => match a.get_ref().as_str() {
                    "scale-to-zero" => AbortWith::ScaleToZero,
                    "rollback" => AbortWith::Rollback,
                    other => {
                        cx.error(a.span(), format!("actions.kubernetes.abort_with: expected \"scale-to-zero\" or \"rollback\" for target = \"deployment\", found {other:?}"));
                        AbortWith::ScaleToZero
                    }
                },
                (Some(a), KubeTarget::FlaggerCanary) => match a.get_ref().as_str() {
                    "rollback-gate" => AbortWith::RollbackGate,
                    "failed-checks" => AbortWith::FailedChecks,
                    other => {
                        cx.error(a.span(), format!("actions.kubernetes.abort_with: expected \"rollback-gate\" or \"failed-checks\" for target = \"flagger-canary\", found {other:?}"));
                        AbortWith::RollbackGate
                    }
                },
                (Some(a), KubeTarget::ArgoRollout) => {
                    cx.error(a.span(), "actions.kubernetes.abort_with: only for target = \"deployment\" or \"flagger-canary\" (an Argo Rollout aborts through status.abort)".to_string());
                    AbortWith::ScaleToZero
                }
            };
            KubernetesSink {
                name,
                target,
                connection: match &v.api_server {
                    Some(u) => Some(KubeConnection {
                        api_server: Some(u.get_ref().clone()),
                        token_file: v.token_file.as_ref().map(PathBuf::from),
                        insecure: v.insecure.unwrap_or(false),
                        ..KubeConnection::default()
                    }),
                    None => shared.cloned(),
                },
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
