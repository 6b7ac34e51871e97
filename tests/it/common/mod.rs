//! Test harness: real HTTP targets on loopback and the real `augur` binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

/// What a test target answers.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub delay: Duration,
    pub gzip: bool,
}

impl Reply {
    pub fn text(body: &str) -> Reply {
        Reply {
            status: 200,
            content_type: Some("text/plain; version=0.0.4; charset=utf-8".into()),
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
            gzip: false,
        }
    }

    pub fn openmetrics(body: &str) -> Reply {
        Reply {
            content_type: Some("application/openmetrics-text; version=1.0.0; charset=utf-8".into()),
            ..Reply::text(body)
        }
    }
}

struct TargetInner {
    reply: Mutex<Reply>,
    requests: AtomicUsize,
    last_headers: Mutex<Option<HeaderMap>>,
}

/// A real HTTP server exposing `/metrics` whose answer tests can change.
pub struct TestTarget {
    pub addr: SocketAddr,
    inner: Arc<TargetInner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn serve_metrics(State(t): State<Arc<TargetInner>>, headers: HeaderMap) -> Response<Body> {
    t.requests.fetch_add(1, Ordering::SeqCst);
    *t.last_headers.lock().unwrap() = Some(headers.clone());
    let reply = t.reply.lock().unwrap().clone();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut b = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    if let Some(ct) = &reply.content_type {
        b = b.header("content-type", ct);
    }
    let accepts_gzip = headers
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let body = if reply.gzip && accepts_gzip {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&reply.body).unwrap();
        b = b.header("content-encoding", "gzip");
        enc.finish().unwrap()
    } else {
        reply.body.clone()
    };
    b.body(Body::from(body)).unwrap()
}

/// A handle that changes a target's body from another task; `set_body`
/// returns false once the target is gone.
#[derive(Clone)]
pub struct TargetHandle(std::sync::Weak<TargetInner>);

impl TargetHandle {
    pub fn set_body(&self, body: &str) -> bool {
        match self.0.upgrade() {
            Some(i) => {
                i.reply.lock().unwrap().body = body.as_bytes().to_vec();
                true
            }
            None => false,
        }
    }
}

impl TestTarget {
    pub fn inner_handle(&self) -> TargetHandle {
        TargetHandle(Arc::downgrade(&self.inner))
    }

    pub async fn start(reply: Reply) -> TestTarget {
        Self::start_on("127.0.0.1:0".parse().unwrap(), reply).await
    }

    pub async fn start_on(addr: SocketAddr, reply: Reply) -> TestTarget {
        let inner = Arc::new(TargetInner {
            reply: Mutex::new(reply),
            requests: AtomicUsize::new(0),
            last_headers: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/metrics", get(serve_metrics))
            .with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestTarget {
            addr,
            inner,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn set(&self, reply: Reply) {
        *self.inner.reply.lock().unwrap() = reply;
    }

    pub fn set_body(&self, body: &str) {
        self.inner.reply.lock().unwrap().body = body.as_bytes().to_vec();
    }

    pub fn requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    pub fn last_headers(&self) -> Option<HeaderMap> {
        self.inner.last_headers.lock().unwrap().clone()
    }

    /// Stops serving; connections are refused afterwards.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// The real `augur` binary running on a temp config.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_augur")
}

impl Daemon {
    /// Writes `config` (with `{STATE}` replaced by the state dir) and starts
    /// `augur run --listen 127.0.0.1:0`.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        let cfg_path = dir.join("augur.toml");
        std::fs::write(&cfg_path, config).unwrap();
        Self::start_with(dir, &cfg_path)
    }

    pub fn start_with(dir: &Path, cfg_path: &Path) -> Daemon {
        let state = dir.join("state");
        let mut cmd = Command::new(bin());
        cmd.args(Self::run_args(cfg_path, &state));
        Self::spawn(dir, cfg_path, cmd)
    }

    /// The arguments of `augur run` on `cfg_path` with state in `state`.
    pub fn run_args(cfg_path: &Path, state: &Path) -> Vec<String> {
        let mut v: Vec<String> = [
            "--log-format",
            "text",
            "--log-level",
            "info",
            "run",
            "--config",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(cfg_path.display().to_string());
        v.extend(["--listen", "127.0.0.1:0", "--state-dir"].map(String::from));
        v.push(state.display().to_string());
        v
    }

    /// Starts `cmd` (augur itself, or a wrapper that execs it) and waits
    /// until it listens.
    pub fn spawn(dir: &Path, cfg_path: &Path, mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start augur");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        {
            // A wrapper's own output (augur writes nothing to stdout).
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push(format!("stdout: {line}"));
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split("listening addr=").nth(1) {
                        let a = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(a);
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("augur did not start; log: {:?}", log.lock().unwrap()));
        Daemon {
            child,
            addr: addr.parse().unwrap(),
            dir: dir.to_path_buf(),
            config: cfg_path.to_path_buf(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        reqwest::get(self.url(path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(self.url(path)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Raw samples of a selector as (t_ms, value text), per series.
    pub async fn export(&self, selector: &str) -> Vec<(Value, Vec<(i64, String)>)> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("match[]", selector)
            .finish();
        let v = self.get_json(&format!("/api/v1/export?{q}")).await;
        v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("bad export answer: {v}"))
            .iter()
            .map(|s| {
                let vals = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (
                            (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                            p[1].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                (s["metric"].clone(), vals)
            })
            .collect()
    }

    /// The value of one of augur's own metrics (sum over label sets that
    /// contain `contains`).
    pub async fn own_metric(&self, name: &str, contains: &str) -> f64 {
        let (_, text) = self.get_text("/metrics").await;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(contains))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> i32 {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("augur did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test that needs an outside tool skips when it is missing, saying
/// what to install; with `AUGUR_REQUIRE_ALL=1` (set by `.ci/run`) a
/// missing tool fails the test instead, so CI never skips silently.
pub fn skip_or_fail(why: &str) {
    if std::env::var("AUGUR_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("required by AUGUR_REQUIRE_ALL=1: {why}");
    }
    eprintln!("SKIP: {why}");
}

/// Polls `f` until it returns Some, or panics after `secs` with `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A config scraping `targets` (address, labels TOML) every `interval`.
pub fn config_for(jobs: &[(&str, &str, &[SocketAddr], &str)]) -> String {
    let mut s = String::from("[storage]\nretention = \"1h\"\n[global]\nscrape_interval = \"1s\"\nscrape_timeout = \"1s\"\n");
    for (job, extra, targets, labels) in jobs {
        let t: Vec<String> = targets.iter().map(|a| format!("\"{a}\"")).collect();
        s.push_str(&format!(
            "[[scrape_configs]]\njob_name = \"{job}\"\n{extra}\n[[scrape_configs.static_configs]]\ntargets = [{}]\n{labels}\n",
            t.join(", ")
        ));
    }
    s
}

/// A real HTTP server that records POSTed requests and answers with a
/// status the test controls (a webhook or Slack stand-in).
pub struct Sink {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// The path (and query) of each request, in the same order.
    pub paths: Arc<Mutex<Vec<String>>>,
    pub status: Arc<Mutex<u16>>,
}

impl Sink {
    pub async fn start() -> Sink {
        let requests: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let status = Arc::new(Mutex::new(200u16));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (r, p, s) = (requests.clone(), paths.clone(), status.clone());
        let app = Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
                let (r, p, s) = (r.clone(), p.clone(), s.clone());
                async move {
                    // One lock order: paths, then requests (readers pair them).
                    let mut p = p.lock().unwrap();
                    r.lock().unwrap().push((headers, body));
                    p.push(uri.to_string());
                    let code = *s.lock().unwrap();
                    (
                        StatusCode::from_u16(code).unwrap(),
                        if code == 400 {
                            "{\"status\":\"invalid event\",\"message\":\"Event object is invalid\",\"errors\":[\"'routing_key' is invalid\"]}"
                        } else {
                            ""
                        },
                    )
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            addr,
            requests,
            paths,
            status,
        }
    }

    pub fn set_status(&self, s: u16) {
        *self.status.lock().unwrap() = s;
    }

    /// Bodies of the requests to `path`.
    pub fn bodies_at(&self, path: &str) -> Vec<String> {
        let paths = self.paths.lock().unwrap();
        let reqs = self.requests.lock().unwrap();
        paths
            .iter()
            .zip(reqs.iter())
            .filter(|(p, _)| p.as_str() == path)
            .map(|(_, (_, b))| b.clone())
            .collect()
    }

    pub fn bodies(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// A rule file with one alert on `queue_depth > 1`.
pub fn backlog_rules(for_: &str) -> String {
    format!(
        "groups:\n  - name: queues\n    interval: 1s\n    rules:\n      - alert: Backlog\n        expr: queue_depth > 1\n        for: {for_}\n        labels:\n          severity: page\n        annotations:\n          summary: \"{{{{ $labels.queue }}}} has {{{{ $value }}}} items\"\n"
    )
}

/// A config scraping `target` every second, evaluating rules.yml every
/// second, plus `extra` TOML.
pub fn rules_config(target: SocketAddr, extra: &str) -> String {
    format!(
        "rule_files = [\"rules.yml\"]\n{extra}\n{}",
        config_for(&[("shop", "", &[target], "")]).replace(
            "[global]\n",
            "[global]\nevaluation_interval = \"1s\"\nexternal_labels = { cluster = \"test\" }\n"
        )
    )
}

// ---- a simulated service with a baseline and a canary track ----

/// One arm of a simulated service.
#[derive(Clone, Copy)]
pub struct Arm {
    /// Requests per second.
    pub rate: f64,
    /// Fraction of 5xx answers.
    pub errors: f64,
    /// The latency histogram is the slow one.
    pub slow: bool,
}

impl Arm {
    /// 200 req/s, 1% errors, fast: the usual baseline and good canary.
    pub const HEALTHY: Arm = Arm {
        rate: 200.0,
        errors: 0.01,
        slow: false,
    };
    /// 200 req/s, 10% errors, slow: the usual bad canary.
    pub const BROKEN: Arm = Arm {
        rate: 200.0,
        errors: 0.10,
        slow: true,
    };
}

const LE: [&str; 6] = ["0.05", "0.1", "0.2", "0.4", "0.8", "+Inf"];
const FAST: [f64; 6] = [0.2, 0.55, 0.85, 0.97, 0.995, 1.0];
const SLOW: [f64; 6] = [0.05, 0.2, 0.5, 0.8, 0.95, 1.0];

/// The exposition of every service's arms after `secs` seconds.
pub fn exposition(secs: f64, services: &[(&str, Arm, Option<Arm>)]) -> String {
    let mut s = String::from(
        "# TYPE http_requests_total counter\n# TYPE http_request_duration_seconds histogram\n",
    );
    for (svc, base, canary) in services {
        for (track, arm) in [("baseline", Some(*base)), ("canary", *canary)] {
            let Some(a) = arm else { continue };
            let total = (secs * a.rate).floor();
            let errors = (total * a.errors).floor();
            let l = format!("namespace=\"shop\",service=\"{svc}\",track=\"{track}\"");
            s += &format!(
                "http_requests_total{{{l},code=\"200\"}} {}\n",
                total - errors
            );
            s += &format!("http_requests_total{{{l},code=\"500\"}} {errors}\n");
            let cdf = if a.slow { SLOW } else { FAST };
            for (le, f) in LE.iter().zip(cdf) {
                s += &format!(
                    "http_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {}\n",
                    (total * f).floor()
                );
            }
            s += &format!("http_request_duration_seconds_count{{{l}}} {total}\n");
        }
    }
    s
}

/// Serves the simulated services, updating the counters every 100 ms.
pub async fn simulated(services: Vec<(&'static str, Arm, Option<Arm>)>) -> TestTarget {
    let t = TestTarget::start(Reply::text(&exposition(0.0, &services))).await;
    let target = t.inner_handle();
    let start = Instant::now();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let body = exposition(start.elapsed().as_secs_f64(), &services);
            if !target.set_body(&body) {
                return;
            }
        }
    });
    t
}

/// A loopback port free at the time of asking (for servers the tests
/// start as separate processes).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `data.activeTargets` of a `/api/v1/targets` answer.
pub fn active_targets(t: &Value) -> Vec<Value> {
    t["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `bin` is on PATH.
pub fn on_path(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on a free
/// loopback port with `config` (YAML), its data in `dir`; None (after the
/// skip message) when it is not installed.
pub fn start_alertmanager(dir: &Path, config: &str) -> Option<(Proc, String)> {
    if !on_path("prometheus-alertmanager") {
        skip_or_fail(
            "prometheus-alertmanager not found; install the Debian package `prometheus-alertmanager`",
        );
        return None;
    }
    let cfg = dir.join("am.yml");
    std::fs::write(&cfg, config).unwrap();
    let port = free_port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Some((Proc(child), format!("http://127.0.0.1:{port}")))
}
