//! `[[remote_write]]`: where rule results (and, asked, scraped samples) are
//! pushed, with prometheus.yml's names and defaults (`config/config.go`
//! `RemoteWriteConfig`, `DefaultQueueConfig`).

use super::*;

/// Headers Prometheus refuses in `headers` (`config/config.go`
/// `reservedHeaders`): the protocol and the transport own them.
const RESERVED_HEADERS: [&str; 16] = [
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// One `[[remote_write]]` endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    /// the receiver's write URL (sent to as given)
    pub url: String,
    /// `name`, else the first 6 hex digits of the URL's SHA-256 (Prometheus
    /// hashes its whole YAML entry), as the metrics' `name` label
    pub name: String,
    /// per-request timeout
    pub remote_timeout: Duration,
    /// extra request headers (e.g. `X-Scope-OrgID` for Mimir)
    pub headers: Vec<(String, String)>,
    /// credentials
    pub auth: Auth,
    /// TLS settings
    pub tls: TlsConfig,
    /// `write_relabel_configs`, applied after the external labels
    pub write_relabel: Vec<relabel::Rule>,
    /// `queue_config`
    pub queue: QueueConfig,
    /// send every scraped sample too (augur as the scraper in front of
    /// Mimir), not only rule results
    pub send_scraped: bool,
}

/// `queue_config`: Prometheus's names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// samples buffered per shard; a full shard drops its oldest
    pub capacity: usize,
    /// parallel senders at most (series are hashed onto them)
    pub max_shards: usize,
    /// parallel senders at least
    pub min_shards: usize,
    /// samples per request at most
    pub max_samples_per_send: usize,
    /// how long a partial batch waits before it is sent
    pub batch_send_deadline: Duration,
    /// first retry delay, doubled per retry
    pub min_backoff: Duration,
    /// longest retry delay
    pub max_backoff: Duration,
    /// retry `429 Too Many Requests` (else drop the batch and count it)
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2_000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
        }
    }
}

/// A queue count, at most 10^8 (the memory a config may ask for).
fn count(cx: &mut Ctx<'_>, v: &Option<Spanned<u64>>, key: &str, default: usize) -> usize {
    cx.count(v, key, default as u64, 100_000_000) as usize
}

pub(super) fn compile_remote_write(
    cx: &mut Ctx<'_>,
    all: &[Spanned<raw::RawRemoteWrite>],
) -> Vec<RemoteWriteConfig> {
    let mut out: Vec<RemoteWriteConfig> = Vec::new();
    for (i, rw) in all.iter().enumerate() {
        let key = format!("remote_write[{i}]");
        let r = rw.get_ref();
        let Some(url) = &r.url else {
            cx.error(rw.span(), format!("{key}: url is required"));
            continue;
        };
        match reqwest::Url::parse(url.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => {
                cx.error(
                    url.span(),
                    format!("{key}.url: {:?} is not an http(s) URL", url.get_ref()),
                );
                continue;
            }
        }
        let name = match &r.name {
            Some(n) if n.get_ref().is_empty() => {
                cx.error(n.span(), format!("{key}.name: must not be empty"));
                continue;
            }
            Some(n) => n.get_ref().clone(),
            None => {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(url.get_ref().as_bytes()))[..6].to_string()
            }
        };
        if let Some(dup) = out.iter().find(|o| o.name == name) {
            cx.error(
                rw.span(),
                format!(
                    "{key}: remote write name {name:?} is also used by {}; names must be unique",
                    dup.url
                ),
            );
            continue;
        }
        for h in r.headers.keys() {
            if RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
                cx.error(
                    rw.span(),
                    format!("{key}.headers: {h} is a reserved header. It must not be changed"),
                );
            }
            if h.eq_ignore_ascii_case("authorization") {
                cx.error(
                    rw.span(),
                    format!("{key}.headers: authorization header must be changed via the basic_auth or authorization parameter"),
                );
            }
        }
        let auth = compile_auth(
            cx,
            AuthFields {
                bearer_token_file: &None,
                authorization: &r.authorization,
                basic_auth: &r.basic_auth,
            },
            &key,
            rw.span(),
        );
        let tls = scrape::compile_client_tls(cx, &r.tls_config, &key);
        let write_relabel = scrape::compile_relabel(
            cx,
            &r.write_relabel_configs,
            &format!("{key}.write_relabel_configs"),
        );
        let remote_timeout = cx.duration(
            &r.remote_timeout,
            &format!("{key}.remote_timeout"),
            Duration::from_secs(30),
        );
        let d = QueueConfig::default();
        let q = r.queue_config.as_ref().map(|q| q.get_ref());
        let queue = match q {
            None => d,
            Some(q) => {
                let k = |f: &str| format!("{key}.queue_config.{f}");
                let queue = QueueConfig {
                    capacity: count(cx, &q.capacity, &k("capacity"), d.capacity),
                    max_shards: count(cx, &q.max_shards, &k("max_shards"), d.max_shards),
                    min_shards: count(cx, &q.min_shards, &k("min_shards"), d.min_shards),
                    max_samples_per_send: count(
                        cx,
                        &q.max_samples_per_send,
                        &k("max_samples_per_send"),
                        d.max_samples_per_send,
                    ),
                    batch_send_deadline: cx.duration(
                        &q.batch_send_deadline,
                        &k("batch_send_deadline"),
                        d.batch_send_deadline,
                    ),
                    min_backoff: cx.duration(&q.min_backoff, &k("min_backoff"), d.min_backoff),
                    max_backoff: cx.duration(&q.max_backoff, &k("max_backoff"), d.max_backoff),
                    retry_on_http_429: q.retry_on_http_429.unwrap_or(d.retry_on_http_429),
                };
                if queue.min_shards > queue.max_shards {
                    cx.error(
                        rw.span(),
                        format!(
                            "{key}.queue_config: min_shards ({}) is more than max_shards ({})",
                            queue.min_shards, queue.max_shards
                        ),
                    );
                }
                if queue.min_backoff > queue.max_backoff {
                    cx.error(
                        rw.span(),
                        format!("{key}.queue_config: min_backoff is longer than max_backoff"),
                    );
                }
                if queue.batch_send_deadline.is_zero() {
                    cx.error(
                        rw.span(),
                        format!("{key}.queue_config.batch_send_deadline: must be greater than 0"),
                    );
                }
                queue
            }
        };
        if remote_timeout.is_zero() {
            cx.error(
                rw.span(),
                format!("{key}.remote_timeout: must be greater than 0"),
            );
        }
        out.push(RemoteWriteConfig {
            url: url.get_ref().clone(),
            name,
            remote_timeout,
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            auth,
            tls,
            write_relabel,
            queue,
            send_scraped: r.send_scraped.unwrap_or(false),
        });
    }
    out
}
