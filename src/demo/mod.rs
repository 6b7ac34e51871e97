//! `augur demo`: the whole pipeline on simulated traffic, in one process on
//! loopback ports. A seeded simulated service (baseline and canary tracks,
//! real HTTP `/metrics`), a stand-in Kubernetes API holding an Argo Rollout
//! and a webhook receiver, and the real daemon (embedded, with the shipped
//! rules and analysis templates) scraping them. An analysis run bound to
//! the rollout is started through the HTTP API; after a healthy period the
//! canary regresses (or not); the run's verdict becomes a decision that
//! the daemon carries out against the stand-ins. Nothing is scripted: the
//! lines printed are read from the daemon's API and the stand-ins.
//!
//! It orchestrates a whole program, so errors are `anyhow`, as in `app`.

pub mod driven;
pub mod kubefake;
pub mod sim;
pub mod standins;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::app::{Embedded, RunOptions};
pub use driven::Strategy;
use sim::{Behaviour, Track};
use standins::{Received, Recorder};

/// What happens to the canary (also `augur demo --scenario`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// More 5xx and a slower p99 (the default).
    Regression,
    /// More 5xx only.
    Errors,
    /// Slower: higher median and a longer tail.
    Latency,
    /// Same median, a much wider spread (only the tail gets slower).
    Spread,
    /// Stays healthy: the run passes and the rollout is promoted.
    Healthy,
    /// Healthy, but every third scrape of the canary fails.
    Flapping,
    /// The canary serves no request metrics at all.
    NoData,
}

impl Scenario {
    /// Its command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Regression => "regression",
            Scenario::Errors => "errors",
            Scenario::Latency => "latency",
            Scenario::Spread => "spread",
            Scenario::Healthy => "healthy",
            Scenario::Flapping => "flapping",
            Scenario::NoData => "no-data",
        }
    }

    /// The canary's behaviour once the regression starts, if it regresses.
    fn regressed(self, healthy: Behaviour) -> Option<Behaviour> {
        let mut b = healthy;
        match self {
            Scenario::Regression => {
                b.errors = 0.05;
                b.median = 0.11;
                b.sigma = 0.65;
            }
            Scenario::Errors => b.errors = 0.05,
            Scenario::Latency => {
                b.median = 0.11;
                b.sigma = 0.65;
            }
            Scenario::Spread => b.sigma = 0.95,
            Scenario::Healthy | Scenario::Flapping | Scenario::NoData => return None,
        }
        Some(b)
    }
}

/// How the demo runs. Shorter intervals compress time (the tests use 1 s).
#[derive(Clone, Debug)]
pub struct Options {
    /// What happens to the canary.
    pub scenario: Scenario,
    /// Seed of the traffic generator.
    pub seed: u64,
    /// Analysis interval; scrapes run four times as often.
    pub interval: Duration,
    /// Healthy time after the run starts before the regression.
    pub healthy_for: Duration,
    /// Intervals a passing run needs.
    pub count: u32,
    /// Give up (exit 1) when no decision is carried out by then.
    pub timeout: Duration,
    /// Live lines on the output (off for `--json`).
    pub live: bool,
    /// An analysis bound to an Argo Rollout, or a rollout augur drives.
    pub strategy: Strategy,
    /// Keep the daemon (and its web pages) up after the story, until Ctrl-C.
    pub serve: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            scenario: Scenario::Regression,
            seed: 2,
            interval: Duration::from_secs(2),
            healthy_for: Duration::from_secs(10),
            count: 12,
            timeout: Duration::from_secs(55),
            live: true,
            strategy: Strategy::Analysis,
            serve: false,
        }
    }
}

/// How the demo ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The scenario.
    pub scenario: &'static str,
    /// The analysis run's final state and reason.
    pub run_state: String,
    /// Why.
    pub run_message: String,
    /// Intervals measured.
    pub intervals: u64,
    /// The decision as `GET /api/v1/decisions` lists it (with its actions).
    pub decision: Value,
    /// Every request the stand-in Kubernetes API and webhook received.
    pub requests: Vec<Received>,
    /// The rollout's audit log, oldest first.
    pub audit: Vec<Value>,
    /// Seconds from the run's start to the regression, if any.
    pub regression_at: Option<f64>,
    /// Seconds from the regression to the first action request.
    pub regression_to_action: Option<f64>,
    /// Seconds the whole demo took.
    pub elapsed: f64,
    /// `analysis`, `canary-steps` or `blue-green`.
    pub strategy: &'static str,
    /// The driven rollout's last status (`GET /api/v1/rollouts/...`).
    pub rollout: Option<Value>,
    /// The canary weights the driven rollout went through, in order.
    pub weights: Vec<u64>,
}

/// Serves `app` on a loopback port until `token` is cancelled.
pub(crate) async fn listen(
    app: axum::Router,
    token: CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
    });
    Ok(addr)
}

const NAMESPACE: &str = "demo";
const ROLLOUT: &str = "checkout";
const STABLE_HASH: &str = "6d4cf56db6";
const CANARY_HASH: &str = "7b9f8c5d4f";
const HTTP_ANALYSES: &str = include_str!("../../rules/analyses/http.toml");
const KUBERNETES_ANALYSES: &str = include_str!("../../rules/analyses/kubernetes.toml");
const HTTP_RULES: &str = include_str!("../../rules/http.yml");
const KUBERNETES_RULES: &str = include_str!("../../rules/kubernetes.yml");

/// The simulated service: a baseline and a canary track served over HTTP,
/// driven by the seeded traffic generator (75% of the traffic on baseline).
struct Service {
    /// The canary's healthy behaviour (the scenario regresses from it).
    healthy: Behaviour,
    /// The canary track, to regress.
    canary: std::sync::Arc<Track>,
    /// Where the baseline's `/metrics` is.
    baseline: std::net::SocketAddr,
    /// Where the canary's `/metrics` is.
    canary_addr: std::net::SocketAddr,
}

impl Service {
    async fn start(opts: &Options, token: CancellationToken) -> anyhow::Result<Service> {
        let healthy = Behaviour::healthy(50.0);
        let baseline = Track::new("baseline", Behaviour::healthy(150.0), false, false);
        let canary = Track::new(
            "canary",
            healthy,
            opts.scenario == Scenario::Flapping,
            opts.scenario == Scenario::NoData,
        );
        let b = sim::serve(baseline.clone(), token.clone()).await?;
        let c = sim::serve(canary.clone(), token.clone()).await?;
        tokio::spawn(sim::drive(vec![baseline, canary.clone()], opts.seed, token));
        Ok(Service {
            healthy,
            canary,
            baseline: b,
            canary_addr: c,
        })
    }
}

/// Removes the demo's scratch directory however the demo ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn duration_text(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn write_config(
    dir: &Path,
    scrape: Duration,
    targets: [std::net::SocketAddr; 3],
    kube: std::net::SocketAddr,
    hook: std::net::SocketAddr,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("analyses"))?;
    std::fs::write(dir.join("analyses/http.toml"), HTTP_ANALYSES)?;
    std::fs::write(dir.join("analyses/kubernetes.toml"), KUBERNETES_ANALYSES)?;
    std::fs::create_dir_all(dir.join("rules"))?;
    std::fs::write(dir.join("rules/http.yml"), HTTP_RULES)?;
    std::fs::write(dir.join("rules/kubernetes.yml"), KUBERNETES_RULES)?;
    let [baseline, canary, ksm] = targets;
    let s = duration_text(scrape);
    let cfg = format!(
        r#"# Written by `augur demo`.
analysis_files = ["analyses/*.toml"]
rule_files = ["rules/*.yml"]

[server]
state_dir = "state"

[storage]
retention = "15m"
snapshot_on_shutdown = false

[global]
scrape_interval = "{s}"
scrape_timeout = "{s}"
evaluation_interval = "{s}"
external_labels = {{ cluster = "demo" }}

[[scrape_configs]]
job_name = "checkout"
[[scrape_configs.static_configs]]
targets = ["{baseline}"]
labels = {{ namespace = "{NAMESPACE}", service = "{ROLLOUT}", track = "baseline", rollouts_pod_template_hash = "{STABLE_HASH}" }}
[[scrape_configs.static_configs]]
targets = ["{canary}"]
labels = {{ namespace = "{NAMESPACE}", service = "{ROLLOUT}", track = "canary", rollouts_pod_template_hash = "{CANARY_HASH}" }}

[[scrape_configs]]
job_name = "kube-state-metrics"
honor_labels = true
[[scrape_configs.static_configs]]
targets = ["{ksm}"]

[notify]
max_backoff = "1s"
[[notify.webhook]]
name = "oncall"
url = "http://{hook}/alerts"

[actions]
max_backoff = "1s"
rate_limit_per_minute = 60
[[actions.kubernetes]]
name = "cluster"
target = "argo-rollout"
api_server = "http://{kube}"
[[actions.webhook]]
name = "deployer"
url = "http://{hook}/hooks/deploy"
"#
    );
    let path = dir.join("augur.toml");
    std::fs::write(&path, cfg)?;
    Ok(path)
}

/// The embedded daemon the demo drives.
struct Daemon {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), crate::app::StartError>>,
}

impl Daemon {
    /// Starts it on `config` with its state under `scratch`; its address.
    async fn start(
        config: &Path,
        scratch: &Path,
    ) -> anyhow::Result<(std::net::SocketAddr, Daemon)> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(crate::app::run_embedded(
            RunOptions {
                config: config.to_path_buf(),
                listen: Some("127.0.0.1:0".parse()?),
                state_dir: Some(scratch.join("state")),
            },
            Embedded {
                shutdown: shutdown.clone(),
                ready: ready_tx,
            },
        ));
        match ready_rx.await {
            Ok(a) => Ok((a, Daemon { shutdown, task })),
            Err(_) => match task.await {
                Ok(Err(e)) => Err(anyhow::anyhow!("the daemon did not start: {e}")),
                _ => Err(anyhow::anyhow!("the daemon did not start")),
            },
        }
    }

    /// With `serve`, says where the pages are and waits for Ctrl-C first.
    async fn finish(
        self,
        serve: bool,
        addr: std::net::SocketAddr,
        out: &mut (dyn Write + Send),
    ) -> anyhow::Result<()> {
        if serve {
            let _ = writeln!(
                out,
                "web pages: http://{addr}/ (the run, the rollout, /graph); Ctrl-C stops the demo"
            );
            let _ = out.flush();
            let _ = tokio::signal::ctrl_c().await;
        }
        self.stop().await
    }

    /// Stops it as SIGTERM would, within 15 s.
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(15), self.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => bail!("the daemon stopped with an error: {e}"),
            _ => bail!("the daemon did not stop"),
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(addr: std::net::SocketAddr) -> anyhow::Result<Client> {
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            base: format!("http://{addr}"),
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        Ok(serde_json::from_slice(&r.bytes().await?)?)
    }

    /// One PromQL instant query: value by the `track` label.
    async fn by_track(&self, expr: &str) -> (Option<f64>, Option<f64>) {
        let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let Ok(v) = self.get(&format!("/api/v1/query?query={q}")).await else {
            return (None, None);
        };
        let mut out = (None, None);
        for r in v["data"]["result"].as_array().into_iter().flatten() {
            let x = r["value"][1].as_str().and_then(|s| s.parse::<f64>().ok());
            match r["metric"]["track"].as_str() {
                Some("baseline") => out.0 = x,
                Some("canary") => out.1 = x,
                _ => {}
            }
        }
        out
    }
}

fn pct(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite())
        .map_or("-".into(), |x| format!("{:.1}%", x * 100.0))
}

fn ms(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite())
        .map_or("-".into(), |x| format!("{:.0}ms", x * 1000.0))
}

fn rate(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite())
        .map_or("-".into(), |x| format!("{x:.0}/s"))
}

fn show(r: &Received) -> String {
    let body = match &r.body {
        Value::Null => String::new(),
        b => {
            let text = b.to_string();
            let short: String = text.chars().take(160).collect();
            let more = if short.len() < text.len() { " …" } else { "" };
            format!("\n      {short}{more}")
        }
    };
    match r.to {
        "kubernetes" => format!(
            "  → Kubernetes API  {} {}  ({}){body}",
            r.method, r.path, r.content_type
        ),
        _ if r.path == "/alerts" => {
            let alerts = r.body["alerts"].as_array().cloned().unwrap_or_default();
            let names: Vec<String> = alerts
                .iter()
                .map(|a| {
                    format!(
                        "{} {}",
                        a["status"].as_str().unwrap_or("?").to_uppercase(),
                        a["labels"]["alertname"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            format!("  → alert webhook   {}", names.join(", "))
        }
        _ => format!(
            "  → webhook         {} {}  Idempotency-Key: {}{body}",
            r.method,
            r.path,
            r.idempotency_key.as_deref().unwrap_or("-")
        ),
    }
}

/// The status line of the newest interval, from the daemon's API.
async fn status_line(c: &Client, run: &Value, window: &str, t: f64) -> String {
    let sel = format!("namespace=\"{NAMESPACE}\",service=\"{ROLLOUT}\"");
    let traffic = c
        .by_track(&format!(
            "sum by (track) (rate(http_requests_total{{{sel}}}[{window}]))"
        ))
        .await;
    let errors = c
        .by_track(&format!(
            "sum by (track) (rate(http_requests_total{{{sel},code=~\"5..\"}}[{window}])) / sum by (track) (rate(http_requests_total{{{sel}}}[{window}]))"
        ))
        .await;
    let p99 = c
        .by_track(&format!(
            "histogram_quantile(0.99, sum by (track, le) (rate(http_request_duration_seconds_bucket{{{sel}}}[{window}])))"
        ))
        .await;
    let intervals = run["intervals"].as_u64().unwrap_or(0);
    let mut evidence = Vec::new();
    let mut level = None;
    for m in run["measurements"].as_array().into_iter().flatten() {
        if m["interval"].as_u64() != Some(intervals) {
            continue;
        }
        if let Some(p) = m["detail"]["p_value"].as_f64() {
            level = m["detail"]["level"].as_f64();
            let short = match m["metric"].as_str().unwrap_or("") {
                "latency distribution" => "latency".to_string(),
                other => other.to_string(),
            };
            evidence.push(format!("{short} {}", crate::stats::judge::p_text(p)));
        }
    }
    let evidence = if evidence.is_empty() {
        "evidence -".to_string()
    } else {
        format!(
            "{}{}",
            evidence.join(" "),
            level.map_or(String::new(), |l| format!(" (stops below {l:.3})"))
        )
    };
    format!(
        "[{t:5.1}s] #{intervals:<2} traffic b {} c {} | 5xx b {} c {} | p99 b {} c {} | {evidence} | {}",
        rate(traffic.0),
        rate(traffic.1),
        pct(errors.0),
        pct(errors.1),
        ms(p99.0),
        ms(p99.1),
        run["state"].as_str().unwrap_or("?"),
    )
}

/// Runs the demo, writing live lines to `out`.
pub async fn run(opts: Options, out: &mut (dyn Write + Send)) -> anyhow::Result<Outcome> {
    if opts.strategy != Strategy::Analysis {
        return driven::run(opts.strategy, opts, out).await;
    }
    let started = Instant::now();
    let token = CancellationToken::new();
    let _stop = token.clone().drop_guard();
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "augur-demo-{}-{}",
        std::process::id(),
        crate::clock::now_ms()
    )));
    std::fs::create_dir_all(&scratch.0)
        .with_context(|| format!("cannot create {}", scratch.0.display()))?;
    let scrape = (opts.interval / 4).max(Duration::from_millis(100));
    let mut line = |s: String| {
        if opts.live {
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
    };

    let Service {
        healthy: healthy_canary,
        canary,
        baseline: b_addr,
        canary_addr: c_addr,
    } = Service::start(&opts, token.clone()).await?;
    let pods = vec![
        format!("{ROLLOUT}-{STABLE_HASH}-x2k9p"),
        format!("{ROLLOUT}-{STABLE_HASH}-m7q4d"),
        format!("{ROLLOUT}-{STABLE_HASH}-c8w2n"),
        format!("{ROLLOUT}-{CANARY_HASH}-h5t6z"),
    ];
    let ksm = sim::serve_kube_state(NAMESPACE, pods, token.clone()).await?;

    // The outside world.
    let (rec, mut feed) = Recorder::new();
    let rollout_path =
        format!("/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/rollouts/{ROLLOUT}");
    let kube = standins::kubernetes(
        rollout_path,
        standins::rollout(NAMESPACE, ROLLOUT, STABLE_HASH, CANARY_HASH),
        rec.clone(),
        token.clone(),
    )
    .await?;
    let hook = standins::webhook(rec.clone(), token.clone()).await?;

    // The real daemon.
    let config = write_config(&scratch.0, scrape, [b_addr, c_addr, ksm], kube, hook)?;
    let (addr, daemon) = Daemon::start(&config, &scratch.0).await?;
    let c = Client::new(addr)?;
    line(format!(
        "augur demo ({}, seed {}): daemon on http://{addr}, config {}",
        opts.scenario.as_str(),
        opts.seed,
        config.display()
    ));
    line(format!(
        "  simulated service {NAMESPACE}/{ROLLOUT}: baseline http://{b_addr}/metrics (150 req/s), canary http://{c_addr}/metrics (50 req/s), kube-state-metrics http://{ksm}/metrics"
    ));
    line(format!(
        "  stand-ins: Kubernetes API http://{kube} (Argo Rollout {NAMESPACE}/{ROLLOUT}), webhook http://{hook}"
    ));

    // Let a few scrapes land, then start the analysis the way a user or a
    // rollout controller would: through the HTTP API.
    tokio::time::sleep(scrape * 3).await;
    let window = opts.interval * 10;
    let body = json!({
        "template": "http-canary",
        "args": {"namespace": NAMESPACE, "service": ROLLOUT},
        "interval": duration_text(opts.interval),
        "window": duration_text(window),
        "initial_delay": duration_text(opts.interval),
        "count": opts.count,
        "rollout": {"namespace": NAMESPACE, "name": ROLLOUT, "revision": CANARY_HASH, "promote_on_pass": true},
    });
    let r = c
        .http
        .post(format!("{}/api/v1/analysis/runs", c.base))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let created: Value = serde_json::from_slice(&r.bytes().await?)?;
    let Some(id) = created["data"]["id"].as_str().map(str::to_string) else {
        bail!("cannot start the analysis run: {created}");
    };
    let run_started = Instant::now();
    line(format!("  watch it live: http://{addr}/runs/{id}"));
    line(format!(
        "  analysis run {id}: template http-canary (rules/analyses/http.toml), every {}, window {}, {} intervals to pass; bound to the rollout, promote on pass",
        crate::duration::format(opts.interval),
        crate::duration::format(window),
        opts.count
    ));
    match opts.scenario.regressed(healthy_canary) {
        Some(b) => line(format!(
            "  the canary regresses after {}: 5xx {:.1}% -> {:.1}%, p99 {:.0}ms -> {:.0}ms",
            crate::duration::format(opts.healthy_for),
            healthy_canary.errors * 100.0,
            b.errors * 100.0,
            healthy_canary.quantile(0.99) * 1000.0,
            b.quantile(0.99) * 1000.0,
        )),
        None => line(format!(
            "  the canary {}",
            match opts.scenario {
                Scenario::Flapping => "stays healthy, but every third scrape of it fails",
                Scenario::NoData => "serves no request metrics",
                _ => "stays healthy",
            }
        )),
    }

    let display_window = duration_text((scrape * 8).max(Duration::from_secs(2)));
    let mut regression_at: Option<Instant> = None;
    let mut first_action: Option<Instant> = None;
    let mut printed_intervals = 0;
    let mut announced_verdict = false;
    let mut tick = tokio::time::interval(opts.interval / 4);
    let deadline = started + opts.timeout;
    // Requests are printed after the status line of the interval that
    // caused them; their arrival time is taken when they arrive.
    let mut arrived: Vec<Received> = Vec::new();
    let (run, decision) = loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(r) = feed.recv() => {
                if r.path != "/alerts" && first_action.is_none() {
                    first_action = Some(Instant::now());
                }
                arrived.push(r);
                continue;
            }
        }
        if Instant::now() > deadline {
            daemon.shutdown.cancel();
            bail!(
                "no decision within {} (scenario {})",
                crate::duration::format(opts.timeout),
                opts.scenario.as_str()
            );
        }
        if regression_at.is_none() && run_started.elapsed() >= opts.healthy_for {
            if let Some(b) = opts.scenario.regressed(healthy_canary) {
                canary.set(b);
                regression_at = Some(Instant::now());
                line(format!(
                    "[{:5.1}s] !! the canary regresses now ({})",
                    run_started.elapsed().as_secs_f64(),
                    opts.scenario.as_str()
                ));
            }
        }
        let run = c.get(&format!("/api/v1/analysis/runs/{id}")).await?["data"].clone();
        let intervals = run["intervals"].as_u64().unwrap_or(0);
        if intervals > printed_intervals {
            printed_intervals = intervals;
            let t = run_started.elapsed().as_secs_f64();
            line(status_line(&c, &run, &display_window, t).await);
        }
        let state = run["state"].as_str().unwrap_or("running").to_string();
        if state != "running" && !announced_verdict {
            announced_verdict = true;
            line(format!(
                "verdict: {state}: {}",
                run["message"].as_str().unwrap_or("")
            ));
        }
        for r in arrived.drain(..) {
            line(show(&r));
        }
        let decisions = c.get("/api/v1/decisions").await?;
        let prefix = format!("{NAMESPACE}/{ROLLOUT}/");
        let settled = decisions["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| {
                d["key"].as_str().is_some_and(|k| k.starts_with(&prefix))
                    && d["actions"]
                        .as_array()
                        .is_some_and(|a| a.iter().all(|x| x["status"] != "pending"))
            });
        if let Some(d) = settled {
            break (run, d.clone());
        }
    };
    // Print whatever the stand-ins got meanwhile.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(r) = feed.try_recv() {
        if r.path != "/alerts" && first_action.is_none() {
            first_action = Some(Instant::now());
        }
        arrived.push(r);
    }
    for r in arrived.drain(..) {
        line(show(&r));
    }
    line(format!(
        "decision: {} {}/{} revision {} by {}: {}",
        decision["decision"].as_str().unwrap_or("?"),
        NAMESPACE,
        ROLLOUT,
        CANARY_HASH,
        decision["actor"].as_str().unwrap_or("?"),
        decision["reason"].as_str().unwrap_or("")
    ));
    for a in decision["actions"].as_array().into_iter().flatten() {
        line(format!(
            "  action {} -> {} after {} attempt(s)",
            a["sink"].as_str().unwrap_or("?"),
            a["status"].as_str().unwrap_or("?"),
            a["attempts"]
        ));
    }
    let regression_to_action = match (regression_at, first_action) {
        (Some(r), Some(a)) if a > r => Some((a - r).as_secs_f64()),
        _ => None,
    };
    if let Some(s) = regression_to_action {
        line(format!(
            "from the start of the regression to the first action request: {s:.1} s"
        ));
    }
    let audit = c
        .get(&format!(
            "/api/v1/audit?subject={NAMESPACE}/{ROLLOUT}&limit=100"
        ))
        .await?;
    let mut audit: Vec<Value> = audit["data"].as_array().cloned().unwrap_or_default();
    audit.reverse();
    line("audit log (GET /api/v1/audit?subject=demo/checkout):".into());
    let t0 = audit
        .first()
        .and_then(|e| e["time"].as_f64())
        .unwrap_or(0.0);
    for e in &audit {
        let d = &e["detail"];
        let what = match d["reason"].as_str() {
            Some(r) => r.to_string(),
            None => format!(
                "{} {}{}",
                d["sink"].as_str().unwrap_or(""),
                d["request"]["decision"].as_str().unwrap_or(""),
                d["error"]
                    .as_str()
                    .map_or(String::new(), |x| format!(": {x}"))
            ),
        };
        line(format!(
            "  +{:5.1}s {:<28} {:<18} {what}",
            e["time"].as_f64().unwrap_or(t0) - t0,
            e["actor"].as_str().unwrap_or("?"),
            e["action"].as_str().unwrap_or("?"),
        ));
    }

    daemon.finish(opts.serve, addr, out).await?;
    let requests = rec.all.lock().clone();
    Ok(Outcome {
        scenario: opts.scenario.as_str(),
        run_state: run["state"].as_str().unwrap_or("").to_string(),
        run_message: run["message"].as_str().unwrap_or("").to_string(),
        intervals: run["intervals"].as_u64().unwrap_or(0),
        decision,
        requests,
        audit,
        regression_at: regression_at.map(|r| (r - run_started).as_secs_f64()),
        regression_to_action,
        elapsed: started.elapsed().as_secs_f64(),
        strategy: Strategy::Analysis.as_str(),
        rollout: None,
        weights: Vec::new(),
    })
}
