//! `[[rollouts]]`: rollouts augur drives itself (canary steps over a
//! traffic router, or a blue-green Service switch) for teams without
//! Flagger or Argo Rollouts. The names mirror Argo Rollouts' strategy
//! fields in snake case (`set_weight`, `pause`, `analysis`,
//! `active_service`, `preview_service`, `auto_promote`,
//! `scale_down_delay`).

use super::*;
use crate::analysis::template::Template;

/// One rollout augur drives.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutConfig {
    /// the namespace of its Deployments, Services and routes
    pub namespace: String,
    /// its name (in the API, the CLI and decisions)
    pub name: String,
    /// canary steps or blue-green
    pub strategy: Strategy,
    /// how long a wait for pods or a route may take before the rollout aborts
    pub progress_deadline: Duration,
    /// how long an aborted canary (or new blue-green side) stays scaled up
    pub abort_scale_down_delay: Duration,
    /// the API server (its own keys, else `[kubernetes]`)
    pub connection: KubeConnection,
}

/// How a rollout moves traffic.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// weight steps towards a canary Deployment
    Canary(CanarySpec),
    /// a second Deployment behind a Service selector switch
    BlueGreen(BlueGreenSpec),
}

/// `strategy = "canary"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CanarySpec {
    /// the Deployment serving today; it takes the canary's pod template on promotion
    pub stable_deployment: String,
    /// the Deployment whose new pod template starts a rollout
    pub canary_deployment: String,
    /// replicas the canary is scaled to when it sits at 0 (not with the replica router)
    pub canary_replicas: u32,
    /// how weights reach traffic
    pub router: Router,
    /// the steps, in order
    pub steps: Vec<Step>,
    /// analysis running in the background across the steps
    pub analysis: Option<AnalysisRef>,
}

/// `strategy = "blue-green"`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreenSpec {
    /// the Service users reach; its selector is switched
    pub active_service: String,
    /// a Service pointed at the new side before the switch
    pub preview_service: Option<String>,
    /// the two Deployments taking turns
    pub deployments: [String; 2],
    /// the pod label whose value tells the two apart (`version`)
    pub selector_label: String,
    /// analysis before the switch (blocks it)
    pub pre_promotion_analysis: Option<AnalysisRef>,
    /// analysis after the switch (a failure switches back)
    pub post_promotion_analysis: Option<AnalysisRef>,
    /// switch without waiting for a promote (Argo's default: true)
    pub auto_promote: bool,
    /// how long the old side stays scaled up after a switch
    pub scale_down_delay: Duration,
}

/// A traffic router and the objects it writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Router {
    /// the ratio of ready pods behind one Service (no mesh)
    Replicas,
    /// a Gateway API `HTTPRoute` (v1) with the two Services as backendRefs
    GatewayApi {
        /// the route's name
        http_route: String,
        /// the stable Service (a backendRef)
        stable_service: String,
        /// the canary Service (a backendRef)
        canary_service: String,
    },
    /// an Istio `VirtualService` with the two Services as destinations
    Istio {
        /// the VirtualService's name
        virtual_service: String,
        /// the named HTTP routes to set (empty: the only route, or the unnamed one, as Argo)
        routes: Vec<String>,
        /// the stable Service (destination host)
        stable_service: String,
        /// the canary Service (destination host)
        canary_service: String,
    },
    /// an NGINX canary Ingress (`canary-weight` annotation)
    Nginx {
        /// the Ingress serving the stable Service
        stable_ingress: String,
        /// the canary Ingress (created from the stable one when missing)
        canary_ingress: String,
        /// the stable Service (backends in the stable Ingress)
        stable_service: String,
        /// the canary Service (backends in the canary Ingress)
        canary_service: String,
    },
}

impl Router {
    /// The name in the config and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Router::Replicas => "replicas",
            Router::GatewayApi { .. } => "gateway-api",
            Router::Istio { .. } => "istio",
            Router::Nginx { .. } => "nginx",
        }
    }
}

/// One canary step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// send this percentage of traffic to the canary
    SetWeight(u32),
    /// wait this long; None waits for a promote
    Pause(Option<Duration>),
    /// run an analysis and wait for its verdict
    Analysis(AnalysisRef),
}

/// An analysis template with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisRef {
    /// the template's name
    pub template: String,
    /// arguments (augur adds `namespace`, `rollout`, `revision`,
    /// `stable_deployment`, `canary_deployment` where the template takes them)
    pub args: BTreeMap<String, String>,
}

/// Arguments augur fills in when a template declares them and the config
/// does not set them.
pub const BUILTIN_ARGS: [&str; 5] = [
    "namespace",
    "rollout",
    "revision",
    "stable_deployment",
    "canary_deployment",
];

fn analysis_ref(
    cx: &mut Ctx<'_>,
    span: Range<usize>,
    key: &str,
    template: &str,
    args: BTreeMap<String, String>,
    templates: &[Template],
) -> AnalysisRef {
    match templates.iter().find(|t| t.name == template) {
        None => cx.error(
            span,
            format!(
                "{key}: no analysis template {template:?} (known: {})",
                templates
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(t) => {
            // Built-ins are filled at run time; everything else must resolve now.
            let mut probe = args.clone();
            for b in BUILTIN_ARGS {
                if t.args.iter().any(|a| a.name == b) {
                    probe.entry(b.to_string()).or_insert_with(|| "x".into());
                }
            }
            if let Err(e) = t.resolve_args(&probe) {
                cx.error(span, format!("{key}: {e}"));
            }
        }
    }
    AnalysisRef {
        template: template.to_string(),
        args,
    }
}

fn raw_ref(
    cx: &mut Ctx<'_>,
    r: &Spanned<raw::RawAnalysisRef>,
    key: &str,
    shared_args: &BTreeMap<String, String>,
    templates: &[Template],
) -> AnalysisRef {
    match r.get_ref() {
        raw::RawAnalysisRef::Name(n) => {
            analysis_ref(cx, r.span(), key, n, shared_args.clone(), templates)
        }
        raw::RawAnalysisRef::Full { template, args } => {
            let mut all = shared_args.clone();
            all.extend(args.iter().map(|(k, v)| (k.clone(), v.clone())));
            analysis_ref(cx, r.span(), key, template, all, templates)
        }
    }
}

fn required(
    cx: &mut Ctx<'_>,
    v: &Option<Spanned<String>>,
    span: &Range<usize>,
    key: &str,
    what: &str,
) -> String {
    match v {
        Some(s) => {
            if let Err(e) = crate::names::check_name(s.get_ref()) {
                cx.error(s.span(), format!("{key}: {e}"));
            }
            s.get_ref().clone()
        }
        None => {
            cx.error(span.clone(), format!("{key}: required ({what})"));
            String::new()
        }
    }
}

fn compile_router(cx: &mut Ctx<'_>, t: &Option<Spanned<raw::RawTraffic>>, key: &str) -> Router {
    let Some(t) = t else {
        return Router::Replicas;
    };
    let span = t.span();
    let v = t.get_ref();
    let router = v.router.as_ref().map(|r| r.get_ref().as_str());
    let mut allowed: &[&str] = &[];
    let r = match router {
        None | Some("replicas") => Router::Replicas,
        Some("gateway-api") => {
            allowed = &["http_route", "stable_service", "canary_service"];
            Router::GatewayApi {
                http_route: required(
                    cx,
                    &v.http_route,
                    &span,
                    &format!("{key}.http_route"),
                    "the HTTPRoute's name",
                ),
                stable_service: required(
                    cx,
                    &v.stable_service,
                    &span,
                    &format!("{key}.stable_service"),
                    "the stable Service, a backendRef of the route",
                ),
                canary_service: required(
                    cx,
                    &v.canary_service,
                    &span,
                    &format!("{key}.canary_service"),
                    "the canary Service, a backendRef of the route",
                ),
            }
        }
        Some("istio") => {
            allowed = &[
                "virtual_service",
                "routes",
                "stable_service",
                "canary_service",
            ];
            Router::Istio {
                virtual_service: required(
                    cx,
                    &v.virtual_service,
                    &span,
                    &format!("{key}.virtual_service"),
                    "the VirtualService's name",
                ),
                routes: v.routes.clone().unwrap_or_default(),
                stable_service: required(
                    cx,
                    &v.stable_service,
                    &span,
                    &format!("{key}.stable_service"),
                    "the stable Service, a destination host",
                ),
                canary_service: required(
                    cx,
                    &v.canary_service,
                    &span,
                    &format!("{key}.canary_service"),
                    "the canary Service, a destination host",
                ),
            }
        }
        Some("nginx") => {
            allowed = &[
                "stable_ingress",
                "canary_ingress",
                "stable_service",
                "canary_service",
            ];
            let stable_ingress = required(
                cx,
                &v.stable_ingress,
                &span,
                &format!("{key}.stable_ingress"),
                "the Ingress serving the stable Service",
            );
            Router::Nginx {
                canary_ingress: match &v.canary_ingress {
                    Some(c) => required(
                        cx,
                        &Some(c.clone()),
                        &span,
                        &format!("{key}.canary_ingress"),
                        "",
                    ),
                    // Flagger's naming: `<ingress>-canary`.
                    None => format!("{stable_ingress}-canary"),
                },
                stable_ingress,
                stable_service: required(
                    cx,
                    &v.stable_service,
                    &span,
                    &format!("{key}.stable_service"),
                    "the stable Service, the stable Ingress's backend",
                ),
                canary_service: required(
                    cx,
                    &v.canary_service,
                    &span,
                    &format!("{key}.canary_service"),
                    "the canary Service",
                ),
            }
        }
        Some(other) => {
            let s = v.router.as_ref().map_or(span.clone(), |r| r.span());
            cx.error(
                s,
                format!("{key}.router: {other:?} (expected \"gateway-api\", \"istio\", \"replicas\" or \"nginx\")"),
            );
            return Router::Replicas;
        }
    };
    let given = [
        ("http_route", v.http_route.is_some()),
        ("virtual_service", v.virtual_service.is_some()),
        ("routes", v.routes.is_some()),
        ("stable_ingress", v.stable_ingress.is_some()),
        ("canary_ingress", v.canary_ingress.is_some()),
        ("stable_service", v.stable_service.is_some()),
        ("canary_service", v.canary_service.is_some()),
    ];
    for (k, set) in given {
        if set && !allowed.contains(&k) {
            cx.error(
                span.clone(),
                format!("{key}.{k}: not used by router {:?}", r.as_str()),
            );
        }
    }
    r
}

fn compile_one(
    cx: &mut Ctx<'_>,
    r: &Spanned<raw::RawRollout>,
    i: usize,
    shared: &KubeConnection,
    templates: &[Template],
) -> Option<RolloutConfig> {
    let span = r.span();
    let v = r.get_ref();
    let key = format!("rollouts[{i}]");
    let namespace = match &v.namespace {
        Some(n) => {
            if let Err(e) = crate::names::check_namespace(n.get_ref()) {
                cx.error(n.span(), format!("{key}.namespace: {e}"));
            }
            n.get_ref().clone()
        }
        None => {
            cx.error(span.clone(), format!("{key}.namespace: required"));
            String::new()
        }
    };
    let name = required(
        cx,
        &v.name,
        &span,
        &format!("{key}.name"),
        "the rollout's name",
    );
    let shared_args = v
        .analysis
        .as_ref()
        .map(|a| a.get_ref().args.clone())
        .unwrap_or_default();
    let canary_keys = [
        ("stable_deployment", v.stable_deployment.is_some()),
        ("canary_deployment", v.canary_deployment.is_some()),
        ("canary_replicas", v.canary_replicas.is_some()),
        ("traffic", v.traffic.is_some()),
        ("steps", !v.steps.is_empty()),
        ("analysis", v.analysis.is_some()),
    ];
    let bg_keys = [
        ("active_service", v.active_service.is_some()),
        ("preview_service", v.preview_service.is_some()),
        ("deployments", v.deployments.is_some()),
        ("selector_label", v.selector_label.is_some()),
        ("pre_promotion_analysis", v.pre_promotion_analysis.is_some()),
        (
            "post_promotion_analysis",
            v.post_promotion_analysis.is_some(),
        ),
        ("auto_promote", v.auto_promote.is_some()),
        ("scale_down_delay", v.scale_down_delay.is_some()),
    ];
    let strategy_name = v.strategy.as_ref().map(|s| s.get_ref().as_str());
    let wrong = |cx: &mut Ctx<'_>, keys: &[(&str, bool)], strategy: &str| {
        for (k, set) in keys {
            if *set {
                cx.error(
                    span.clone(),
                    format!("{key}.{k}: not used by strategy {strategy:?}"),
                );
            }
        }
    };
    let strategy = match strategy_name {
        Some("canary") | None => {
            wrong(cx, &bg_keys, "canary");
            let stable = required(
                cx,
                &v.stable_deployment,
                &span,
                &format!("{key}.stable_deployment"),
                "the Deployment serving today",
            );
            let canary = required(
                cx,
                &v.canary_deployment,
                &span,
                &format!("{key}.canary_deployment"),
                "the Deployment a new version goes to",
            );
            if !stable.is_empty() && stable == canary {
                cx.error(
                    span.clone(),
                    format!("{key}: stable_deployment and canary_deployment must differ"),
                );
            }
            let router = compile_router(cx, &v.traffic, &format!("{key}.traffic"));
            let canary_replicas = match &v.canary_replicas {
                None => 1,
                Some(n) if (1..=10_000).contains(n.get_ref()) => *n.get_ref() as u32,
                Some(n) => {
                    cx.error(
                        n.span(),
                        format!("{key}.canary_replicas: expected 1 to 10000"),
                    );
                    1
                }
            };
            let mut steps = Vec::new();
            for (j, s) in v.steps.iter().enumerate() {
                let sk = format!("{key}.steps[{j}]");
                let st = s.get_ref();
                let kinds = [
                    st.set_weight.is_some(),
                    st.pause.is_some(),
                    st.analysis.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if kinds != 1 {
                    cx.error(
                        s.span(),
                        format!("{sk}: expected exactly one of set_weight, pause and analysis"),
                    );
                    continue;
                }
                if !st.args.is_empty() && st.analysis.is_none() {
                    cx.error(s.span(), format!("{sk}.args: only with analysis"));
                }
                if let Some(w) = &st.set_weight {
                    if !(0..=100).contains(w.get_ref()) {
                        cx.error(
                            w.span(),
                            format!("{sk}.set_weight: expected 0 to 100, found {}", w.get_ref()),
                        );
                    }
                    steps.push(Step::SetWeight((*w.get_ref()).clamp(0, 100) as u32));
                } else if let Some(p) = &st.pause {
                    if p.get_ref().trim().is_empty() {
                        steps.push(Step::Pause(None));
                    } else {
                        let d =
                            cx.duration(&Some(p.clone()), &format!("{sk}.pause"), Duration::ZERO);
                        steps.push(Step::Pause(Some(d)));
                    }
                } else if let Some(a) = &st.analysis {
                    let mut args = shared_args.clone();
                    args.extend(st.args.iter().map(|(k, v)| (k.clone(), v.clone())));
                    steps.push(Step::Analysis(analysis_ref(
                        cx,
                        a.span(),
                        &format!("{sk}.analysis"),
                        a.get_ref(),
                        args,
                        templates,
                    )));
                }
            }
            let analysis = v.analysis.as_ref().map(|a| {
                let t = a.get_ref();
                match &t.template {
                    Some(name) => analysis_ref(
                        cx,
                        a.span(),
                        &format!("{key}.analysis.template"),
                        name,
                        t.args.clone(),
                        templates,
                    ),
                    None => {
                        cx.error(a.span(), format!("{key}.analysis.template: required"));
                        AnalysisRef {
                            template: String::new(),
                            args: BTreeMap::new(),
                        }
                    }
                }
            });
            Strategy::Canary(CanarySpec {
                stable_deployment: stable,
                canary_deployment: canary,
                canary_replicas,
                router,
                steps,
                analysis,
            })
        }
        Some("blue-green") => {
            wrong(cx, &canary_keys, "blue-green");
            let active = required(
                cx,
                &v.active_service,
                &span,
                &format!("{key}.active_service"),
                "the Service whose selector is switched",
            );
            let preview = v.preview_service.as_ref().map(|p| {
                required(
                    cx,
                    &Some(p.clone()),
                    &span,
                    &format!("{key}.preview_service"),
                    "",
                )
            });
            let deployments = match &v.deployments {
                Some(d) if d.get_ref().len() == 2 && d.get_ref()[0] != d.get_ref()[1] => {
                    for n in d.get_ref() {
                        if let Err(e) = crate::names::check_name(n) {
                            cx.error(d.span(), format!("{key}.deployments: {e}"));
                        }
                    }
                    [d.get_ref()[0].clone(), d.get_ref()[1].clone()]
                }
                Some(d) => {
                    cx.error(
                        d.span(),
                        format!("{key}.deployments: expected two different Deployment names"),
                    );
                    [String::new(), String::new()]
                }
                None => {
                    cx.error(span.clone(), format!("{key}.deployments: required (the two Deployments, e.g. [\"web-blue\", \"web-green\"])"));
                    [String::new(), String::new()]
                }
            };
            let selector_label = match &v.selector_label {
                Some(l)
                    if crate::config::valid_label_name(l.get_ref())
                        || l.get_ref().contains('/') =>
                {
                    l.get_ref().clone()
                }
                Some(l) => {
                    cx.error(
                        l.span(),
                        format!(
                            "{key}.selector_label: {:?} is not a label name",
                            l.get_ref()
                        ),
                    );
                    String::new()
                }
                None => {
                    cx.error(span.clone(), format!("{key}.selector_label: required (the pod label telling the two Deployments apart, e.g. \"version\")"));
                    String::new()
                }
            };
            let pre = v.pre_promotion_analysis.as_ref().map(|a| {
                raw_ref(
                    cx,
                    a,
                    &format!("{key}.pre_promotion_analysis"),
                    &BTreeMap::new(),
                    templates,
                )
            });
            let post = v.post_promotion_analysis.as_ref().map(|a| {
                raw_ref(
                    cx,
                    a,
                    &format!("{key}.post_promotion_analysis"),
                    &BTreeMap::new(),
                    templates,
                )
            });
            Strategy::BlueGreen(BlueGreenSpec {
                active_service: active,
                preview_service: preview,
                deployments,
                selector_label,
                pre_promotion_analysis: pre,
                post_promotion_analysis: post,
                // Argo's autoPromotionEnabled defaults to true.
                auto_promote: v.auto_promote.unwrap_or(true),
                scale_down_delay: cx.duration(
                    &v.scale_down_delay,
                    &format!("{key}.scale_down_delay"),
                    Duration::from_secs(30),
                ),
            })
        }
        Some(other) => {
            let s = v.strategy.as_ref().map_or(span.clone(), |s| s.span());
            cx.error(
                s,
                format!("{key}.strategy: {other:?} (expected \"canary\" or \"blue-green\")"),
            );
            return None;
        }
    };
    let own = v.api_server.is_some() || v.kubeconfig_file.is_some();
    let connection = if own {
        super::kubernetes::connection(
            cx,
            &v.api_server,
            &v.kubeconfig_file,
            &v.token_file,
            &v.ca_file,
            v.insecure,
            &key,
        )
    } else {
        if v.token_file.is_some() || v.ca_file.is_some() || v.insecure.is_some() {
            cx.error(
                span.clone(),
                format!("{key}: token_file, ca_file and insecure go with api_server (or set them in [kubernetes])"),
            );
        }
        shared.clone()
    };
    Some(RolloutConfig {
        namespace,
        name,
        strategy,
        // Argo's progressDeadlineSeconds and abortScaleDownDelaySeconds.
        progress_deadline: cx.duration(
            &v.progress_deadline,
            &format!("{key}.progress_deadline"),
            Duration::from_secs(600),
        ),
        abort_scale_down_delay: cx.duration(
            &v.abort_scale_down_delay,
            &format!("{key}.abort_scale_down_delay"),
            Duration::from_secs(30),
        ),
        connection,
    })
}

pub(super) fn compile_rollouts(
    cx: &mut Ctx<'_>,
    raw: &[Spanned<raw::RawRollout>],
    shared: &KubeConnection,
    templates: &[Template],
) -> Vec<RolloutConfig> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        if let Some(c) = compile_one(cx, r, i, shared, templates) {
            if !seen.insert((c.namespace.clone(), c.name.clone())) {
                cx.error(
                    r.span(),
                    format!("rollouts[{i}]: {}/{} is defined twice", c.namespace, c.name),
                );
            }
            out.push(c);
        }
    }
    out
}
