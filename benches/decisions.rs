//! End-to-end decision latency and webhook throughput with the real
//! binary, real HTTP targets and an in-bench Kubernetes API server:
//!
//! 1. Regression to abort: a simulated service's canary goes from 1% to
//!    30% errors; measured from that moment until augur's
//!    `PATCH .../rollouts/<name>/status {"status":{"abort":true}}` reaches
//!    the API server, with 1 s scrapes and a 1 s analysis interval. Goal:
//!    median <= 2.5 s (the floor is one scrape plus one interval).
//! 2. Flagger webhook latency: 200 concurrent clients calling
//!    `/flagger/rollout` for a running analysis. Goal: p99 < 10 ms.
//!
//! Run: `cargo bench --bench decisions`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::json;

/// Canary error fraction in per-mille, shared with the metrics server.
static CANARY_ERRORS: AtomicU64 = AtomicU64::new(10);

fn exposition(secs: f64, canary_errors_so_far: f64) -> String {
    let total = (secs * 200.0).floor();
    let base_err = (total * 0.01).floor();
    format!(
        "# TYPE http_requests_total counter\n\
         http_requests_total{{track=\"baseline\",code=\"200\"}} {}\n\
         http_requests_total{{track=\"baseline\",code=\"500\"}} {base_err}\n\
         http_requests_total{{track=\"canary\",code=\"200\"}} {}\n\
         http_requests_total{{track=\"canary\",code=\"500\"}} {}\n",
        total - base_err,
        total - canary_errors_so_far.floor(),
        canary_errors_so_far.floor()
    )
}

async fn serve(app: Router) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    // The simulated service: counters integrate the current error fraction.
    let body = Arc::new(Mutex::new(exposition(0.0, 0.0)));
    {
        let body = body.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut canary_errors = 0.0;
            let mut last = 0.0;
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let now = start.elapsed().as_secs_f64();
                let frac = CANARY_ERRORS.load(Ordering::SeqCst) as f64 / 1000.0;
                canary_errors += (now - last) * 200.0 * frac;
                last = now;
                *body.lock().unwrap() = exposition(now, canary_errors);
            }
        });
    }
    let b = body.clone();
    let target = serve(Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let b = b.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    b.lock().unwrap().clone(),
                )
            }
        }),
    ))
    .await;
    // The Kubernetes API: records when each abort patch arrives.
    let aborts: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let a = aborts.clone();
    let k8s = serve(Router::new().fallback(move |m: Method, uri: Uri| {
        let a = a.clone();
        async move {
            if m == Method::PATCH && uri.path().ends_with("/status") {
                a.lock()
                    .unwrap()
                    .push((uri.path().to_string(), Instant::now()));
            }
            (StatusCode::OK, [("content-type", "application/json")], "{}").into_response()
        }
    }))
    .await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"[storage]
retention = "10m"
[global]
scrape_interval = "1s"
scrape_timeout = "1s"
[actions]
rate_limit_per_minute = 0
[[actions.kubernetes]]
name = "k8s"
target = "argo-rollout"
api_server = "http://{k8s}"
decisions = ["abort"]
[[analysis]]
name = "errors"
interval = "1s"
window = "2s"
initial_delay = "0s"
[[analysis.metric]]
name = "error rate"
check = "relative"
max_delta = 0.05
critical = true
no_data = "pass"
query = '(sum(rate(http_requests_total{{track="{{{{ track }}}}",code="500"}}[{{{{ window }}}}])) or vector(0)) / sum(rate(http_requests_total{{track="{{{{ track }}}}"}}[{{{{ window }}}}]))'
[[scrape_configs]]
job_name = "svc"
[[scrape_configs.static_configs]]
targets = ["{target}"]
"#
    );
    std::fs::write(dir.path().join("augur.toml"), cfg).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_augur"))
        .args(["--log-format", "text", "run", "--config"])
        .arg(dir.path().join("augur.toml"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start augur");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("augur started");
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut latencies = Vec::new();
    for i in 0..10 {
        CANARY_ERRORS.store(10, Ordering::SeqCst);
        // Let the 2 s windows forget the previous regression.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let r = http
            .post(format!("http://{addr}/api/v1/analysis/runs"))
            .json(&json!({"template": "errors", "rollout": {"namespace": "shop", "name": format!("web{i}"), "revision": "r"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        tokio::time::sleep(Duration::from_millis(1500 + 97 * i as u64)).await;
        let t0 = Instant::now();
        CANARY_ERRORS.store(300, Ordering::SeqCst);
        let path = format!("/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web{i}/status");
        let t1 = loop {
            if let Some((_, t)) = aborts.lock().unwrap().iter().find(|(p, _)| *p == path) {
                break *t;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                panic!("no abort for web{i}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let ms = t1.duration_since(t0).as_secs_f64() * 1000.0;
        println!("regression {i}: abort reached the API server after {ms:.0} ms");
        latencies.push(ms);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "regression to abort: median {:.0} ms, min {:.0} ms, max {:.0} ms (goal: median <= 2500 ms)",
        (latencies[4] + latencies[5]) / 2.0,
        latencies[0],
        latencies[9]
    );

    // Webhook latency under 200 concurrent Flagger clients (answers are
    // 200 or 403 depending on the verdict; only latency is measured).
    CANARY_ERRORS.store(10, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let payload =
        json!({"name": "podinfo", "namespace": "shop", "phase": "Progressing", "checksum": "c1",
                         "metadata": {"template": "errors"}})
        .to_string();
    let url = format!("http://{addr}/flagger/rollout");
    let first = http.post(&url).body(payload.clone()).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..200 {
        let (http, url, payload) = (http.clone(), url.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            // One untimed request opens this client's connection.
            let _ = http
                .post(&url)
                .body(payload.clone())
                .send()
                .await
                .unwrap()
                .bytes()
                .await;
            for _ in 0..500 {
                let t = Instant::now();
                let r = http.post(&url).body(payload.clone()).send().await.unwrap();
                assert!(matches!(r.status().as_u16(), 200 | 403));
                let _ = r.bytes().await;
                out.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "flagger webhook, 200 concurrent clients, {} requests in {wall:.1} s ({:.0}/s): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal: p99 < 10 ms)",
        all.len(),
        all.len() as f64 / wall,
        q(0.5),
        q(0.99),
        all[all.len() - 1]
    );
    let _ = child.kill();
    let _ = child.wait();
}
