//! Remote write 1.0: tails the store (rule results, `ALERTS`,
//! `ALERTS_FOR_STATE`, and with `send_scraped` every scraped sample) and
//! pushes it to each `[[remote_write]]` receiver, as Prometheus's queue
//! manager does.
//!
//! Series are hashed onto shards, so one series' samples leave in order;
//! each shard is a bounded FIFO (`capacity`) that drops its oldest sample
//! when full and counts it. A shard sends when it holds
//! `max_samples_per_send` samples or `batch_send_deadline` has passed.
//! 5xx, network errors and timeouts are retried with doubling backoff
//! (`min_backoff` to `max_backoff`, or the receiver's `Retry-After`, in
//! seconds or as a date, at most an hour) until they succeed, while newer samples queue behind; 429 is retried only
//! with `retry_on_http_429`; any other 4xx drops the batch, counted as
//! failed (the spec forbids retrying it). At shutdown the shards send what
//! they hold for up to [`FLUSH_DEADLINE`], then count the rest as dropped.

pub mod proto;

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::RemoteWriteConfig;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::{Metrics, RemoteLabels};
use crate::relabel::LabelSet;
use crate::store::{Origin, Tap, TapLabels, Tapped};

/// How long shutdown (or a reload that removes an endpoint) keeps sending.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// The longest `Retry-After` honoured: a receiver asking for more cannot
/// park a shard for days (or overflow the clock).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The remote-write version header's value for protocol 1.0.
pub const VERSION_HEADER: &str = "0.1.0";

/// Every configured endpoint's queue; the store's tap.
pub struct RemoteWrite {
    queues: RwLock<Vec<Arc<Queue>>>,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    parent: CancellationToken,
}

struct Queue {
    cfg: RemoteWriteConfig,
    /// external labels, added to series that lack them
    external: LabelSet,
    shards: Vec<Shard>,
    labels: RemoteLabels,
    /// samples queued or in flight (`augur_remote_write_pending`)
    pending: Gauge,
    /// newest timestamp sent (ms), across shards
    highest_sent: AtomicI64,
    token: CancellationToken,
    /// when flushing ends, fixed by the first shard to see the stop
    flush_until: Mutex<Option<tokio::time::Instant>>,
}

struct Shard {
    buf: Mutex<VecDeque<Tapped>>,
    wake: tokio::sync::Notify,
}

impl RemoteWrite {
    /// No endpoints yet; senders are tracked by `tracker` and stop with
    /// `parent` (after flushing).
    pub fn new(metrics: Arc<Metrics>, tracker: TaskTracker, parent: CancellationToken) -> Self {
        RemoteWrite {
            queues: RwLock::new(Vec::new()),
            metrics,
            tracker,
            parent,
        }
    }

    /// Installs the endpoints of a (re)loaded config: unchanged ones keep
    /// their queues, removed or changed ones flush and stop.
    pub fn apply(&self, cfgs: &[RemoteWriteConfig], external: &[(String, String)]) {
        let external = LabelSet::from_pairs(external.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut queues = self.queues.write();
        let mut next = Vec::with_capacity(cfgs.len());
        for c in cfgs {
            if let Some(q) = queues
                .iter()
                .find(|q| q.cfg == *c && q.external == external)
            {
                next.push(q.clone());
                continue;
            }
            match self.start(c, external.clone()) {
                Ok(q) => next.push(q),
                Err(e) => {
                    warn!(remote = %c.name, url = %c.url, error = %e, "cannot start remote write")
                }
            }
        }
        for old in queues.iter() {
            if !next.iter().any(|q| Arc::ptr_eq(q, old)) {
                old.token.cancel();
            }
        }
        *queues = next;
    }

    fn start(&self, cfg: &RemoteWriteConfig, external: LabelSet) -> Result<Arc<Queue>, String> {
        let client = cfg
            .tls
            .apply(
                reqwest::Client::builder()
                    .timeout(cfg.remote_timeout)
                    .user_agent(concat!("augur/", env!("CARGO_PKG_VERSION"))),
            )?
            .build()
            .map_err(|e| e.to_string())?;
        let n = shard_count(cfg);
        let labels = RemoteLabels {
            name: cfg.name.clone(),
            url: cfg.url.clone(),
        };
        let pending = self.metrics.remote_pending.get_or_create(&labels).clone();
        let q = Arc::new(Queue {
            cfg: cfg.clone(),
            external,
            shards: (0..n)
                .map(|_| Shard {
                    buf: Mutex::new(VecDeque::new()),
                    wake: tokio::sync::Notify::new(),
                })
                .collect(),
            labels,
            pending,
            highest_sent: AtomicI64::new(0),
            flush_until: Mutex::new(None),
            token: self.parent.child_token(),
        });
        // The series exist from the start, as Prometheus's do.
        let m = &self.metrics;
        m.remote_samples.get_or_create(&q.labels).inc_by(0);
        m.remote_failed.get_or_create(&q.labels).inc_by(0);
        m.remote_dropped.get_or_create(&q.labels).inc_by(0);
        q.pending.set(0);
        m.remote_highest_sent.get_or_create(&q.labels).set(0.0);
        for i in 0..n {
            let sender = Sender {
                queue: q.clone(),
                shard: i,
                client: client.clone(),
                metrics: self.metrics.clone(),
            };
            self.tracker.spawn(sender.run());
        }
        info!(remote = %cfg.name, url = %cfg.url, shards = n, "remote write started");
        Ok(q)
    }
}

/// Shards per endpoint: as many as the host can keep busy (vmalert uses
/// 2 x CPUs), within `min_shards..=max_shards`. Prometheus resizes shards
/// by measured throughput; augur's volume (rule results, one host's
/// scrapes) does not need that machinery.
fn shard_count(cfg: &RemoteWriteConfig) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (2 * cpus).clamp(cfg.queue.min_shards, cfg.queue.max_shards.max(1))
}

impl Tap for RemoteWrite {
    fn wants(&self, origin: Origin) -> bool {
        let queues = self.queues.read();
        match origin {
            Origin::Rules => !queues.is_empty(),
            Origin::Scrape => queues.iter().any(|q| q.cfg.send_scraped),
        }
    }

    fn push(&self, origin: Origin, samples: Vec<Tapped>) {
        let queues = self.queues.read();
        for q in queues.iter() {
            if origin == Origin::Scrape && !q.cfg.send_scraped {
                continue;
            }
            q.push(&samples, &self.metrics);
        }
    }
}

impl Queue {
    /// None while running; once stopped, the one deadline all of this
    /// queue's shards flush by.
    fn flush_deadline(&self) -> Option<tokio::time::Instant> {
        if !self.token.is_cancelled() {
            return None;
        }
        Some(
            *self
                .flush_until
                .lock()
                .get_or_insert_with(|| tokio::time::Instant::now() + FLUSH_DEADLINE),
        )
    }

    /// Queues samples (external labels, then `write_relabel_configs`, as
    /// Prometheus's `StoreSeries`), dropping the oldest of a full shard.
    fn push(&self, samples: &[Tapped], metrics: &Metrics) {
        if self.token.is_cancelled() {
            return;
        }
        let plain = self.external.is_empty() && self.cfg.write_relabel.is_empty();
        let mut dropped = 0u64;
        let mut added = 0i64;
        let mut woken = vec![false; self.shards.len()];
        for s in samples {
            // A batch holds each series about once (one scrape, one rule),
            // so relabeling per sample is relabeling per series.
            let labels = if plain {
                s.labels.clone()
            } else {
                match self.relabel(&s.labels) {
                    Some(l) => l,
                    None => continue,
                }
            };
            let i = shard_of(&labels, self.shards.len());
            let shard = &self.shards[i];
            let mut buf = shard.buf.lock();
            buf.push_back(Tapped {
                labels,
                t: s.t,
                v: s.v,
            });
            added += 1;
            if buf.len() > self.cfg.queue.capacity {
                buf.pop_front();
                dropped += 1;
                added -= 1;
            }
            if buf.len() >= self.cfg.queue.max_samples_per_send && !woken[i] {
                woken[i] = true;
                shard.wake.notify_one();
            }
        }
        self.pending.inc_by(added);
        if dropped > 0 {
            metrics
                .remote_dropped
                .get_or_create(&self.labels)
                .inc_by(dropped);
        }
    }

    /// External labels where the series lacks them, then the write
    /// relabeling; None when a rule drops the series.
    fn relabel(&self, labels: &TapLabels) -> Option<TapLabels> {
        let mut set = LabelSet::from_sorted_shared(labels.to_vec()).merged_with(&self.external);
        if !crate::relabel::process(&mut set, &self.cfg.write_relabel) || set.is_empty() {
            return None;
        }
        Some(set.into_shared().into())
    }
}

fn shard_of(labels: &TapLabels, n: usize) -> usize {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for (k, v) in labels.iter() {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    (h.finish() % n as u64) as usize
}

/// One shard's sending loop.
struct Sender {
    queue: Arc<Queue>,
    shard: usize,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
}

/// How a send ended.
enum Outcome {
    Sent,
    /// refused for good (4xx): counted as failed
    Refused(String),
    /// the flush deadline passed while retrying: counted as dropped
    GaveUp,
}

impl Sender {
    async fn run(self) {
        let q = self.queue.clone();
        let shard = &q.shards[self.shard];
        loop {
            let stopping = q.flush_deadline().is_some();
            if !stopping && shard.buf.lock().len() < q.cfg.queue.max_samples_per_send {
                tokio::select! {
                    _ = shard.wake.notified() => {}
                    _ = tokio::time::sleep(q.cfg.queue.batch_send_deadline) => {}
                    _ = q.token.cancelled() => continue,
                }
            }
            let batch: Vec<Tapped> = {
                let mut buf = shard.buf.lock();
                let n = buf.len().min(q.cfg.queue.max_samples_per_send);
                buf.drain(..n).collect()
            };
            if batch.is_empty() {
                if stopping {
                    return;
                }
                continue;
            }
            let n = batch.len() as u64;
            let outcome = self.send(&batch).await;
            let m = &self.metrics;
            match outcome {
                Outcome::Sent => {
                    m.remote_samples.get_or_create(&q.labels).inc_by(n);
                    let newest = batch.iter().map(|s| s.t).max().unwrap_or(0);
                    let high = q
                        .highest_sent
                        .fetch_max(newest, Ordering::Relaxed)
                        .max(newest);
                    m.remote_highest_sent
                        .get_or_create(&q.labels)
                        .set(high as f64 / 1000.0);
                }
                Outcome::Refused(why) => {
                    warn!(remote = %q.cfg.name, samples = n, error = %why, "remote write refused a batch; dropped");
                    m.remote_failed.get_or_create(&q.labels).inc_by(n);
                }
                Outcome::GaveUp => {
                    m.remote_dropped.get_or_create(&q.labels).inc_by(n);
                }
            }
            q.pending.dec_by(n as i64);
            if q.flush_deadline()
                .is_some_and(|d| tokio::time::Instant::now() >= d)
            {
                let left = {
                    let mut buf = shard.buf.lock();
                    let left = buf.len() as u64;
                    buf.clear();
                    left
                };
                if left > 0 {
                    warn!(remote = %q.cfg.name, samples = left, "remote write flush deadline passed; samples dropped");
                    m.remote_dropped.get_or_create(&q.labels).inc_by(left);
                    q.pending.dec_by(left as i64);
                }
                return;
            }
        }
    }

    /// Sends one batch, retrying what the spec says to retry.
    async fn send(&self, batch: &[Tapped]) -> Outcome {
        let q = &self.queue;
        let body = proto::encode(&request(batch));
        let mut backoff = q.cfg.queue.min_backoff;
        let mut attempt = 0u32;
        loop {
            let sent = self.post(body.clone(), attempt).await;
            attempt = attempt.saturating_add(1);
            let wait = match sent {
                Ok(()) => return Outcome::Sent,
                Err(Failure::Permanent(why)) => return Outcome::Refused(why),
                Err(Failure::Retry { why, after }) => {
                    warn!(remote = %q.cfg.name, error = %why, "remote write failed; retrying");
                    // Retry-After wins over the backoff and is not capped by
                    // max_backoff, as in Prometheus's
                    // sendWriteRequestWithBackoff (MAX_RETRY_AFTER bounds it).
                    after.filter(|a| !a.is_zero()).unwrap_or(backoff)
                }
            };
            backoff = (wait * 2).min(q.cfg.queue.max_backoff);
            let sleep = tokio::time::sleep(wait);
            match q.flush_deadline() {
                Some(d) => {
                    if tokio::time::Instant::now() + wait >= d {
                        return Outcome::GaveUp;
                    }
                    sleep.await;
                }
                None => {
                    tokio::select! {
                        _ = sleep => {}
                        // Shutdown: retry at once, within the flush deadline.
                        _ = q.token.cancelled() => {}
                    }
                }
            }
        }
    }

    async fn post(&self, body: Vec<u8>, attempt: u32) -> Result<(), Failure> {
        let cfg = &self.queue.cfg;
        let mut req = self.client.post(&cfg.url);
        if attempt > 0 {
            req = req.header("Retry-Attempt", attempt.to_string());
        }
        let mut req = req
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", VERSION_HEADER);
        for (k, v) in &cfg.headers {
            req = req.header(k, v);
        }
        // Secrets in files are read per request, so rotation needs no reload.
        match cfg.auth.header_value() {
            Ok(Some(v)) => req = req.header("Authorization", v),
            Ok(None) => {}
            Err(e) => {
                return Err(Failure::Retry {
                    why: format!("credentials: {e}"),
                    after: None,
                })
            }
        }
        let resp = req.body(body).send().await.map_err(|e| Failure::Retry {
            why: crate::scrape::fetch::error_chain(&e),
            after: None,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, std::time::SystemTime::now()));
        // Only the start of an error body is kept: a receiver cannot make
        // augur buffer an arbitrary answer.
        let mut resp = resp;
        let mut head: Vec<u8> = Vec::new();
        while head.len() < 256 {
            match resp.chunk().await {
                Ok(Some(c)) => head.extend_from_slice(&c[..c.len().min(256 - head.len())]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let why = format!("server returned HTTP status {status}: {}", text.trim());
        if status.is_server_error()
            || (status == reqwest::StatusCode::TOO_MANY_REQUESTS && cfg.queue.retry_on_http_429)
        {
            Err(Failure::Retry { why, after })
        } else {
            Err(Failure::Permanent(why))
        }
    }
}

/// A `Retry-After` value (seconds or an HTTP date, as Prometheus's
/// `retryAfterDuration`), at most [`MAX_RETRY_AFTER`]; None when it says
/// nothing usable (then the backoff applies).
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(v)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    (!d.is_zero()).then(|| d.min(MAX_RETRY_AFTER))
}

enum Failure {
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Permanent(String),
}

/// The batch as a `WriteRequest`: one `TimeSeries` per series, samples in
/// the order they were stored (timestamp order per series).
pub fn request(batch: &[Tapped]) -> proto::WriteRequest {
    let mut index: HashMap<&TapLabels, usize> = HashMap::new();
    let mut out: Vec<proto::TimeSeries> = Vec::new();
    for s in batch {
        let i = *index.entry(&s.labels).or_insert_with(|| {
            out.push(proto::TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(n, v)| proto::Label {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                samples: Vec::new(),
            });
            out.len() - 1
        });
        out[i].samples.push(proto::Sample {
            value: s.v,
            timestamp: s.t,
        });
    }
    proto::WriteRequest { timeseries: out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn retry_after_takes_seconds_and_dates_and_is_capped() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        // 2015-10-21T07:28:00Z is 10 s after `now`.
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        // A date in the past, zero and junk say nothing: back off instead.
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), None);
        assert_eq!(retry_after("0", now), None);
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(
            retry_after("18446744073709551615", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            retry_after("Fri, 01 Jan 9999 00:00:00 GMT", SystemTime::now()),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn requests_group_samples_by_series_in_order() {
        let l = |v: &str| -> TapLabels { vec![(Arc::from("__name__"), Arc::from(v))].into() };
        let (a, b) = (l("a"), l("b"));
        let batch = [
            Tapped {
                labels: a.clone(),
                t: 1,
                v: 1.0,
            },
            Tapped {
                labels: b.clone(),
                t: 1,
                v: 2.0,
            },
            Tapped {
                labels: a.clone(),
                t: 2,
                v: 3.0,
            },
        ];
        let r = request(&batch);
        assert_eq!(r.timeseries.len(), 2);
        assert_eq!(r.timeseries[0].labels[0].value, "a");
        let ts: Vec<i64> = r.timeseries[0]
            .samples
            .iter()
            .map(|s| s.timestamp)
            .collect();
        assert_eq!(ts, [1, 2]);
        let back = proto::decode(&proto::encode(&r)).unwrap();
        assert_eq!(back, r);
    }
}
