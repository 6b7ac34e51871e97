//! `augur demo --strategy canary-steps|blue-green`: augur drives the
//! rollout itself (`[[rollouts]]`). The stand-in API server holds the
//! Deployments, the Services and (canary) the HTTPRoute, answering like the
//! API server (409 on a stale resourceVersion); a new version is applied to
//! the canary (or the idle blue-green side) through it, as `kubectl set
//! image` would, and the daemon walks the weights (10 → 50 → 100) or
//! switches the Service's selector, and snaps back when the canary
//! regresses. Everything printed is read from the daemon's API and the
//! stand-in.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::kubefake::{deployment, FakeKube};
use super::standins::{self, Received, Recorder};
use super::{
    duration_text, show, Client, Daemon, Options, Outcome, Scratch, Service, HTTP_ANALYSES,
};

const NS: &str = "demo";

/// Which rollout augur drives in the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// An analysis run bound to an Argo Rollout (the default demo).
    Analysis,
    /// augur walks canary weights over a Gateway API HTTPRoute.
    CanarySteps,
    /// augur switches a Service between two Deployments.
    BlueGreen,
}

impl Strategy {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Analysis => "analysis",
            Strategy::CanarySteps => "canary-steps",
            Strategy::BlueGreen => "blue-green",
        }
    }
}

/// The shipped `http-canary` template renamed `demo-canary`, on the
/// demo's time scale and with a count, so rollouts can use it as written.
fn demo_template(name: &str, interval: Duration, count: u32) -> anyhow::Result<String> {
    let start = HTTP_ANALYSES
        .find("[[analysis]]\nname = \"http-canary\"")
        .context("http-canary in rules/analyses/http.toml")?;
    let rest = &HTTP_ANALYSES[start + 12..];
    let end = rest
        .find("[[analysis]]\nname")
        .map_or(HTTP_ANALYSES.len(), |i| start + 12 + i);
    let block = &HTTP_ANALYSES[start..end];
    let out = block
        .replacen("name = \"http-canary\"", &format!("name = \"{name}\""), 1)
        .replacen(
            "interval = \"1m\"",
            &format!(
                "interval = \"{}\"\ncount = {count}",
                duration_text(interval)
            ),
            1,
        )
        .replacen(
            "window = \"5m\"",
            &format!("window = \"{}\"", duration_text(interval * 10)),
            1,
        );
    if !out.contains("count =") || !out.contains(name) {
        bail!("rules/analyses/http.toml's http-canary has changed shape");
    }
    Ok(out)
}

fn config(
    strategy: Strategy,
    opts: &Options,
    scrape: Duration,
    targets: [std::net::SocketAddr; 2],
    kube: std::net::SocketAddr,
    hook: std::net::SocketAddr,
) -> String {
    let s = duration_text(scrape);
    let [b, c] = targets;
    let pause = duration_text(opts.interval * 3);
    let rollout = match strategy {
        Strategy::BlueGreen => format!(
            r#"[[rollouts]]
namespace = "{NS}"
name = "checkout"
strategy = "blue-green"
active_service = "checkout"
preview_service = "checkout-preview"
deployments = ["checkout-blue", "checkout-green"]
selector_label = "version"
pre_promotion_analysis = {{ template = "demo-pre", args = {{ namespace = "{NS}", service = "checkout" }} }}
post_promotion_analysis = {{ template = "demo-canary", args = {{ namespace = "{NS}", service = "checkout" }} }}
scale_down_delay = "{pause}"
abort_scale_down_delay = "{pause}"
"#
        ),
        _ => format!(
            r#"[[rollouts]]
namespace = "{NS}"
name = "checkout"
stable_deployment = "checkout"
canary_deployment = "checkout-canary"
abort_scale_down_delay = "{pause}"
[rollouts.traffic]
router = "gateway-api"
http_route = "checkout"
stable_service = "checkout-stable"
canary_service = "checkout-canary"
[[rollouts.steps]]
set_weight = 10
[[rollouts.steps]]
pause = "{pause}"
[[rollouts.steps]]
set_weight = 50
[[rollouts.steps]]
pause = "{pause}"
[[rollouts.steps]]
set_weight = 100
[[rollouts.steps]]
pause = "{pause}"
[rollouts.analysis]
template = "demo-canary"
args = {{ namespace = "{NS}", service = "checkout" }}
"#
        ),
    };
    format!(
        r#"# Written by `augur demo --strategy {}`.
analysis_files = ["analyses/*.toml"]

[server]
state_dir = "state"

[storage]
retention = "15m"
snapshot_on_shutdown = false

[global]
scrape_interval = "{s}"
scrape_timeout = "{s}"
evaluation_interval = "{s}"

[[scrape_configs]]
job_name = "checkout"
[[scrape_configs.static_configs]]
targets = ["{b}"]
labels = {{ namespace = "{NS}", service = "checkout", track = "baseline" }}
[[scrape_configs.static_configs]]
targets = ["{c}"]
labels = {{ namespace = "{NS}", service = "checkout", track = "canary" }}

[kubernetes]
api_server = "http://{kube}"

[actions]
max_backoff = "1s"
[[actions.webhook]]
name = "deployer"
url = "http://{hook}/hooks/deploy"

{rollout}"#,
        strategy.as_str()
    )
}

fn dpath(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}")
}

fn spath(name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/services/{name}")
}

const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/demo/httproutes/checkout";

/// The cluster as it is before the new version ships.
fn seed_cluster(kube: &FakeKube, strategy: Strategy) {
    let labels = |track: &str| json!({"app": "checkout", "track": track});
    let svc = |name: &str, selector: Value| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
               "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8080}]}})
    };
    match strategy {
        Strategy::BlueGreen => {
            for (name, version, n) in [("checkout-blue", "blue", 3), ("checkout-green", "green", 0)]
            {
                let l = json!({"app": "checkout", "version": version});
                kube.apply(
                    &dpath(name),
                    deployment(NS, name, n, &l, &l, "demo/checkout:v1"),
                );
            }
            kube.apply(
                &spath("checkout"),
                svc("checkout", json!({"app": "checkout", "version": "blue"})),
            );
            kube.apply(
                &spath("checkout-preview"),
                svc(
                    "checkout-preview",
                    json!({"app": "checkout", "version": "blue"}),
                ),
            );
        }
        _ => {
            kube.apply(
                &dpath("checkout"),
                deployment(
                    NS,
                    "checkout",
                    4,
                    &labels("baseline"),
                    &labels("baseline"),
                    "demo/checkout:v1",
                ),
            );
            kube.apply(
                &dpath("checkout-canary"),
                deployment(
                    NS,
                    "checkout-canary",
                    0,
                    &labels("canary"),
                    &labels("canary"),
                    "demo/checkout:v1",
                ),
            );
            kube.apply(
                &spath("checkout-stable"),
                svc("checkout-stable", labels("baseline")),
            );
            kube.apply(
                &spath("checkout-canary"),
                svc("checkout-canary", labels("canary")),
            );
            kube.apply(
                ROUTE,
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                       "metadata": {"name": "checkout", "namespace": NS},
                       "spec": {"parentRefs": [{"name": "public"}], "hostnames": ["checkout.demo.example"],
                                "rules": [{"backendRefs": [
                                    {"group": "", "kind": "Service", "name": "checkout-stable", "port": 80, "weight": 100},
                                    {"group": "", "kind": "Service", "name": "checkout-canary", "port": 80, "weight": 0}]}]}}),
            );
        }
    }
}

/// A write to the stand-in, with what it changes in a few words.
fn show_write(r: &Received) -> String {
    let what = if r.path == ROUTE && r.method == "PUT" {
        let refs = r.body["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let w: Vec<String> = refs
            .iter()
            .map(|b| format!("{} {}", b["name"].as_str().unwrap_or("?"), b["weight"]))
            .collect();
        format!(
            "backendRefs weights: {} (resourceVersion {})",
            w.join(", "),
            r.body["metadata"]["resourceVersion"]
        )
    } else if r.path.contains("/deployments/") && r.method == "PUT" {
        format!(
            "spec.template: image {}, labels {}",
            r.body["spec"]["template"]["spec"]["containers"][0]["image"],
            r.body["spec"]["template"]["metadata"]["labels"]
        )
    } else {
        return show(r);
    };
    format!(
        "  → Kubernetes API  {} {}  ({})\n      {what}",
        r.method, r.path, r.content_type
    )
}

/// One line about the rollout when something visible changed.
fn rollout_line(r: &Value, t: f64) -> String {
    format!(
        "[{t:5.1}s] rollout {} · step {} · canary {}% / stable {}% · {}",
        r["phase"].as_str().unwrap_or("?"),
        r["step"],
        r["weights"]["canary"],
        r["weights"]["stable"],
        r["message"].as_str().unwrap_or("")
    )
}

/// Runs a demo in which augur drives the rollout.
pub async fn run(
    strategy: Strategy,
    opts: Options,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let token = CancellationToken::new();
    let _stop = token.clone().drop_guard();
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "augur-demo-{}-{}",
        std::process::id(),
        crate::clock::now_ms()
    )));
    std::fs::create_dir_all(scratch.0.join("analyses"))
        .with_context(|| format!("cannot create {}", scratch.0.display()))?;
    let scrape = (opts.interval / 4).max(Duration::from_millis(100));
    let mut line = |s: String| {
        if opts.live {
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
    };
    let Service {
        healthy,
        canary,
        baseline: b_addr,
        canary_addr: c_addr,
    } = Service::start(&opts, token.clone()).await?;
    let (rec, mut feed) = Recorder::new();
    let kube = FakeKube::start(Some(rec.clone()), token.clone()).await?;
    seed_cluster(&kube, strategy);
    let hook = standins::webhook(rec.clone(), token.clone()).await?;
    // The background analysis spans all six canary steps; blue-green's
    // post-promotion analysis runs `count` intervals after a short
    // pre-promotion check.
    let count = match strategy {
        Strategy::BlueGreen => opts.count.max(2) * 2,
        _ => opts.count.max(2) * 3,
    };
    let templates = format!(
        "{}\n{}",
        demo_template("demo-canary", opts.interval, count)?,
        demo_template("demo-pre", opts.interval, 3)?
    );
    std::fs::write(scratch.0.join("analyses/demo.toml"), templates)?;
    let cfg_path = scratch.0.join("augur.toml");
    std::fs::write(
        &cfg_path,
        config(strategy, &opts, scrape, [b_addr, c_addr], kube.addr, hook),
    )?;
    let (addr, daemon) = Daemon::start(&cfg_path, &scratch.0).await?;
    let c = Client::new(addr)?;
    line(format!(
        "augur demo ({}, {}, seed {}): daemon on http://{addr}, config {}",
        strategy.as_str(),
        opts.scenario.as_str(),
        opts.seed,
        cfg_path.display()
    ));
    line(format!(
        "  stand-in Kubernetes API http://{} holds {}",
        kube.addr,
        match strategy {
            Strategy::BlueGreen => "Deployments checkout-blue (serving) and checkout-green, Services checkout and checkout-preview",
            _ => "Deployments checkout and checkout-canary, Services checkout-stable and checkout-canary, HTTPRoute checkout",
        }
    ));
    line(format!(
        "  watch it live: http://{addr}/rollouts/{NS}/checkout"
    ));
    // Wait for augur to see the cluster as it is, then ship v2.
    let path = "/api/v1/rollouts/demo/checkout";
    let deadline = started + opts.timeout;
    loop {
        if c.get(path).await?["data"]["phase"] == "healthy" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the rollout never became healthy");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shipped_to = match strategy {
        Strategy::BlueGreen => "checkout-green",
        _ => "checkout-canary",
    };
    kube.edit(&dpath(shipped_to), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("demo/checkout:v2");
    });
    let shipped = Instant::now();
    line(format!(
        "[  0.0s] demo/checkout:v2 applied to {shipped_to} (as kubectl set image would)"
    ));
    // Blue-green's regression comes after the switch, so the switch back shows.
    let after = match strategy {
        Strategy::BlueGreen => "the switch",
        _ => "it ships",
    };
    match opts.scenario.regressed(healthy) {
        Some(_) => line(format!(
            "  the new version regresses {} after {after} ({})",
            crate::duration::format(opts.healthy_for),
            opts.scenario.as_str()
        )),
        None => line("  the new version stays healthy".into()),
    }
    let mut clock: Option<Instant> = (strategy != Strategy::BlueGreen).then_some(shipped);
    let mut regression_at: Option<Instant> = None;
    let mut first_action: Option<Instant> = None;
    let mut last_shown = String::new();
    let mut weights: Vec<u64> = Vec::new();
    let final_view = loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            Some(r) = feed.recv() => {
                if r.method != "GET" {
                    if regression_at.is_some() && first_action.is_none() {
                        first_action = Some(Instant::now());
                    }
                    line(show_write(&r));
                }
                continue;
            }
        }
        let t = shipped.elapsed().as_secs_f64();
        if Instant::now() > deadline {
            daemon.shutdown.cancel();
            bail!(
                "the rollout did not finish within {}",
                crate::duration::format(opts.timeout)
            );
        }
        if regression_at.is_none() && clock.is_some_and(|c| c.elapsed() >= opts.healthy_for) {
            if let Some(b) = opts.scenario.regressed(healthy) {
                canary.set(b);
                regression_at = Some(Instant::now());
                line(format!(
                    "[{t:5.1}s] !! the new version regresses now ({})",
                    opts.scenario.as_str()
                ));
            }
        }
        let r = c.get(path).await?["data"].clone();
        let w = r["weights"]["canary"].as_u64().unwrap_or(0);
        if clock.is_none() && w == 100 {
            clock = Some(Instant::now());
        }
        if weights.last() != Some(&w) {
            weights.push(w);
        }
        let shown = format!("{}|{}|{}|{}", r["phase"], r["step"], w, r["message"]);
        if shown != last_shown {
            last_shown = shown;
            line(rollout_line(&r, t));
        }
        let promoted = r["phase"] == "healthy"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("promoted"));
        if r["phase"] == "aborted" || promoted {
            break r;
        }
    };
    // Let the last requests and actions land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(r) = feed.try_recv() {
        if r.method != "GET" {
            line(show_write(&r));
        }
    }
    let decisions = c.get("/api/v1/decisions").await?;
    let decision = decisions["data"][0].clone();
    line(format!(
        "decision: {} demo/checkout by {}: {}",
        decision["decision"].as_str().unwrap_or("?"),
        decision["actor"].as_str().unwrap_or("?"),
        decision["reason"].as_str().unwrap_or("")
    ));
    let regression_to_action = match (regression_at, first_action) {
        (Some(r), Some(a)) if a > r => Some((a - r).as_secs_f64()),
        _ => None,
    };
    if let Some(s) = regression_to_action {
        line(format!(
            "from the start of the regression to the first write: {s:.1} s"
        ));
    }
    line(format!(
        "canary weights seen: {}",
        weights
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join(" → ")
    ));
    let audit = c
        .get("/api/v1/audit?subject=demo/checkout&limit=200")
        .await?;
    let mut audit: Vec<Value> = audit["data"].as_array().cloned().unwrap_or_default();
    audit.reverse();
    let runs = c.get("/api/v1/analysis/runs").await?;
    let last_run = runs["data"]
        .as_array()
        .and_then(|r| r.first().cloned())
        .unwrap_or(Value::Null);
    daemon.finish(opts.serve, addr, out).await?;
    let requests: Vec<Received> = rec.all.lock().clone();
    Ok(Outcome {
        scenario: opts.scenario.as_str(),
        run_state: last_run["state"].as_str().unwrap_or("").to_string(),
        run_message: last_run["message"].as_str().unwrap_or("").to_string(),
        intervals: last_run["intervals"].as_u64().unwrap_or(0),
        decision,
        requests,
        audit,
        regression_at: regression_at.map(|r| (r - shipped).as_secs_f64()),
        regression_to_action,
        elapsed: started.elapsed().as_secs_f64(),
        strategy: strategy.as_str(),
        rollout: Some(final_view),
        weights,
    })
}
