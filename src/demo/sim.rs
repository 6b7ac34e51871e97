//! The demo's simulated service: a seeded traffic generator feeding the
//! counters and latency histograms of a baseline and a canary track, each
//! served as Prometheus text by a real HTTP server, plus a
//! kube-state-metrics stand-in with pod readiness and restarts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

/// Histogram bucket bounds (seconds), finer than the client libraries'
/// defaults around typical web latencies so p99s interpolate well.
pub const BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// How a track's requests behave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Behaviour {
    /// Requests per second.
    pub rate: f64,
    /// Share of 5xx answers.
    pub errors: f64,
    /// Median latency (s) of the log-normal latency.
    pub median: f64,
    /// Log-normal shape: the spread of the tail.
    pub sigma: f64,
}

impl Behaviour {
    /// The healthy service every track starts as.
    pub fn healthy(rate: f64) -> Behaviour {
        Behaviour {
            rate,
            errors: 0.005,
            median: 0.08,
            sigma: 0.5,
        }
    }

    /// The latency quantile `q` of this behaviour (s).
    pub fn quantile(&self, q: f64) -> f64 {
        let z = statrs::function::erf::erf_inv(2.0 * q - 1.0) * std::f64::consts::SQRT_2;
        self.median * (self.sigma * z).exp()
    }
}

#[derive(Default)]
struct Counters {
    by_code: BTreeMap<&'static str, u64>,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// One track of the service (one pod, one `/metrics`).
pub struct Track {
    /// `baseline` or `canary`.
    pub name: &'static str,
    behaviour: Mutex<Behaviour>,
    counters: Mutex<Counters>,
    /// Answer every third scrape with a 503 (a flapping target).
    flapping: bool,
    /// Serve no request metrics (a canary that gets no traffic).
    silent: bool,
    scrapes: Mutex<u64>,
}

impl Track {
    /// A track starting as `b`.
    pub fn new(name: &'static str, b: Behaviour, flapping: bool, silent: bool) -> Arc<Track> {
        Arc::new(Track {
            name,
            behaviour: Mutex::new(b),
            counters: Mutex::new(Counters::default()),
            flapping,
            silent,
            scrapes: Mutex::new(0),
        })
    }

    /// Changes how its requests behave from now on.
    pub fn set(&self, b: Behaviour) {
        *self.behaviour.lock() = b;
    }

    /// How its requests behave now.
    pub fn behaviour(&self) -> Behaviour {
        *self.behaviour.lock()
    }

    /// Serves `n` requests drawn from its behaviour.
    fn serve_requests(&self, rng: &mut StdRng, n: u64) {
        let b = self.behaviour();
        let mut c = self.counters.lock();
        for _ in 0..n {
            let u: f64 = rng.random();
            let code = if u < b.errors {
                if rng.random::<f64>() < 0.8 {
                    "500"
                } else {
                    "503"
                }
            } else if u < b.errors + 0.01 {
                "404"
            } else {
                "200"
            };
            *c.by_code.entry(code).or_default() += 1;
            let latency = b.median * (b.sigma * normal(rng)).exp();
            for (i, le) in BUCKETS.iter().enumerate() {
                if latency <= *le {
                    c.buckets[i] += 1;
                }
            }
            c.sum += latency;
            c.count += 1;
        }
    }

    /// Its Prometheus text exposition.
    pub fn exposition(&self) -> String {
        let mut s = String::new();
        s += "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n";
        s += "# TYPE process_start_time_seconds gauge\n";
        s += "process_start_time_seconds 1.7e+09\n";
        if self.silent {
            return s;
        }
        let c = self.counters.lock();
        s += "# HELP http_requests_total Requests served, by method and status code.\n";
        s += "# TYPE http_requests_total counter\n";
        for code in ["200", "404", "500", "503"] {
            let n = c.by_code.get(code).copied().unwrap_or(0);
            s += &format!("http_requests_total{{method=\"GET\",code=\"{code}\"}} {n}\n");
        }
        s += "# HELP http_request_duration_seconds Request latency.\n";
        s += "# TYPE http_request_duration_seconds histogram\n";
        for (le, n) in BUCKETS.iter().zip(c.buckets) {
            s += &format!("http_request_duration_seconds_bucket{{le=\"{le}\"}} {n}\n");
        }
        s += &format!(
            "http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n",
            c.count
        );
        s += &format!("http_request_duration_seconds_sum {}\n", c.sum);
        s += &format!("http_request_duration_seconds_count {}\n", c.count);
        s
    }
}

/// A standard normal draw (Box-Muller; `rand_distr` is not a dependency
/// and this is the only distribution the demo needs besides Poisson).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Poisson draw (Knuth's product method: fine for the small means of
/// one 100 ms tick).
fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    let limit = (-mean).exp();
    let mut k = 0;
    let mut p: f64 = rng.random();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

/// Drives traffic into `tracks` every 100 ms from one seeded generator
/// until cancelled.
pub async fn drive(tracks: Vec<Arc<Track>>, seed: u64, token: CancellationToken) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        for t in &tracks {
            let n = poisson(&mut rng, t.behaviour().rate * 0.1);
            t.serve_requests(&mut rng, n);
        }
    }
}

/// Serves `track` on `/metrics` on a loopback port.
pub async fn serve(track: Arc<Track>, token: CancellationToken) -> std::io::Result<SocketAddr> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let t = track.clone();
            async move {
                let n = {
                    let mut s = t.scrapes.lock();
                    *s += 1;
                    *s
                };
                if t.flapping && n % 3 == 0 {
                    return (StatusCode::SERVICE_UNAVAILABLE, "flapping\n".to_string())
                        .into_response();
                }
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    t.exposition(),
                )
                    .into_response()
            }
        }),
    );
    super::listen(app, token).await
}

/// Serves kube-state-metrics' pod readiness and restart series for the
/// demo's pods (three baseline, one canary; all ready).
pub async fn serve_kube_state(
    namespace: &str,
    pods: Vec<String>,
    token: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let mut s = String::new();
    s += "# HELP kube_pod_status_ready Describes whether the pod is ready to serve requests.\n";
    s += "# TYPE kube_pod_status_ready gauge\n";
    for p in &pods {
        for (cond, v) in [("true", 1), ("false", 0), ("unknown", 0)] {
            s += &format!(
                "kube_pod_status_ready{{namespace=\"{namespace}\",pod=\"{p}\",uid=\"{p}-uid\",condition=\"{cond}\"}} {v}\n"
            );
        }
    }
    s += "# HELP kube_pod_container_status_restarts_total The number of container restarts per container.\n";
    s += "# TYPE kube_pod_container_status_restarts_total counter\n";
    for p in &pods {
        s += &format!(
            "kube_pod_container_status_restarts_total{{namespace=\"{namespace}\",pod=\"{p}\",uid=\"{p}-uid\",container=\"app\"}} 0\n"
        );
    }
    let body = Arc::new(s);
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let b = body.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    (*b).clone(),
                )
            }
        }),
    );
    super::listen(app, token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_follows_the_behaviour() {
        let t = Track::new("canary", Behaviour::healthy(100.0), false, false);
        let mut rng = StdRng::seed_from_u64(7);
        let n: u64 = (0..1000).map(|_| poisson(&mut rng, 10.0)).sum();
        assert!((9_500..10_500).contains(&n), "{n}");
        t.serve_requests(&mut rng, 20_000);
        let c = t.counters.lock();
        let errors = c.by_code["500"] + c.by_code["503"];
        assert!((60..140).contains(&errors), "{errors}");
        // The median bucket: about half the requests are under 80 ms.
        let under_75ms = c.buckets[3] as f64 / c.count as f64;
        assert!((0.40..0.50).contains(&under_75ms), "{under_75ms}");
        let p99 = Behaviour::healthy(1.0).quantile(0.99);
        assert!((p99 - 0.08 * (0.5f64 * 2.326_347_874).exp()).abs() < 1e-6);
    }

    #[test]
    fn exposition_parses_as_prometheus_text() {
        let t = Track::new("baseline", Behaviour::healthy(10.0), false, false);
        t.serve_requests(&mut StdRng::seed_from_u64(1), 50);
        let text = t.exposition();
        let parsed = crate::expfmt::parse(text.as_bytes(), crate::expfmt::Format::Text)
            .expect("valid exposition");
        assert!(parsed.samples.len() > 20);
        assert!(text.contains("http_request_duration_seconds_count 50\n"));
    }
}
