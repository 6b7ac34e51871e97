//! Request signatures: augur's API accepts, and augur's outgoing webhooks
//! (notification receivers, action sinks) carry,
//!
//! ```text
//! X-Augur-Timestamp: <unix seconds>
//! X-Augur-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>\n<METHOD>\n<path?query>\n<body>">
//! ```
//!
//! Binding the method, path, query and time to the body means a signed
//! request cannot be replayed against another endpoint, another rollout
//! or later than [`MAX_SKEW`]; the API also refuses a signature it has
//! already seen within that window.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Augur-Signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "X-Augur-Timestamp";
/// How far a signed request's timestamp may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// HMAC-SHA256 of `data` as lowercase hex.
pub fn hmac_hex(secret: &[u8], data: &[u8]) -> String {
    // Invariant: HMAC accepts keys of any length.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// The signed message.
pub fn message(timestamp: i64, method: &str, path_and_query: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "{timestamp}\n{}\n{path_and_query}\n",
        method.to_ascii_uppercase()
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

/// The signature header's value (`sha256=<hex>`) for a request.
pub fn signature(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    format!(
        "sha256={}",
        hmac_hex(secret, &message(timestamp, method, path_and_query, body))
    )
}

/// The path and query of a URL as a receiver sees them in its request line.
pub fn path_and_query(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Both headers for an outgoing request to `url`, signed at `now_secs`.
pub fn headers(
    secret: &[u8],
    method: &str,
    url: &reqwest::Url,
    body: &[u8],
    now_secs: i64,
) -> [(&'static str, String); 2] {
    [
        (TIMESTAMP_HEADER, now_secs.to_string()),
        (
            SIGNATURE_HEADER,
            signature(secret, now_secs, method, &path_and_query(url), body),
        ),
    ]
}

/// Compares secrets in time independent of where they differ and of
/// their lengths (both sides are hashed first).
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or malformed timestamp header.
    Timestamp,
    /// Timestamp further than [`MAX_SKEW`] from now.
    Stale,
    /// The signature does not match.
    Mismatch,
    /// The same signature was used before.
    Replayed,
}

impl Refusal {
    /// A sentence for the 401 answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Timestamp => "X-Augur-Timestamp: expected the request's Unix time in seconds",
            Refusal::Stale => "X-Augur-Timestamp is more than 5 minutes from augur's clock",
            Refusal::Mismatch => "X-Augur-Signature does not match HMAC-SHA256 of \"<timestamp>\\n<METHOD>\\n<path?query>\\n<body>\"",
            Refusal::Replayed => "this signature was already used; sign each request anew",
        }
    }
}

/// Signatures seen within the last [`MAX_SKEW`], to refuse replays.
#[derive(Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<[u8; 32], i64>>,
}

/// Most signatures remembered; only valid signatures get here, so this
/// bounds honest traffic, not an attacker's.
const REPLAY_MAX: usize = 1 << 20;

impl ReplayCache {
    /// Verifies a request signed with `secret` and remembers its
    /// signature. `now_secs` is the receiver's clock.
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &self,
        secret: &[u8],
        timestamp: Option<&str>,
        signature_header: Option<&str>,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), Refusal> {
        let ts: i64 = timestamp
            .and_then(|t| t.trim().parse().ok())
            .ok_or(Refusal::Timestamp)?;
        if ts.abs_diff(now_secs) > MAX_SKEW.as_secs() {
            return Err(Refusal::Stale);
        }
        let got = signature_header
            .map(str::trim)
            .and_then(|s| {
                s.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("sha256="))
                    .map(|_| &s[7..])
            })
            .map(str::to_ascii_lowercase)
            .ok_or(Refusal::Mismatch)?;
        let want = hmac_hex(secret, &message(ts, method, path_and_query, body));
        if !same_secret(got.as_bytes(), want.as_bytes()) {
            return Err(Refusal::Mismatch);
        }
        let key: [u8; 32] = Sha256::digest(want.as_bytes()).into();
        let mut seen = self.seen.lock();
        if seen.len() >= REPLAY_MAX {
            let horizon = now_secs - MAX_SKEW.as_secs() as i64;
            seen.retain(|_, t| *t >= horizon);
        }
        if seen.contains_key(&key) {
            return Err(Refusal::Replayed);
        }
        if seen.len() < REPLAY_MAX {
            seen.insert(key, ts);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_bind_method_path_time_and_body() {
        let c = ReplayCache::default();
        let now = 1_700_000_000;
        let sig = signature(b"k", now, "POST", "/api/v1/rollouts/shop/web/abort", b"");
        let v = |sig: &str, ts: i64, method: &str, path: &str, body: &[u8], at: i64| {
            c.verify(
                b"k",
                Some(&ts.to_string()),
                Some(sig),
                method,
                path,
                body,
                at,
            )
        };
        // Another path, method, body or key does not match.
        assert_eq!(
            v(
                &sig,
                now,
                "POST",
                "/api/v1/rollouts/prod/pay/abort",
                b"",
                now
            ),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            v(
                &sig,
                now,
                "DELETE",
                "/api/v1/rollouts/shop/web/abort",
                b"",
                now
            ),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            v(
                &sig,
                now,
                "POST",
                "/api/v1/rollouts/shop/web/abort",
                b"{}",
                now
            ),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            v(
                &sig,
                now,
                "POST",
                "/api/v1/rollouts/shop/web/abort",
                b"",
                now + 301
            ),
            Err(Refusal::Stale)
        );
        assert_eq!(
            c.verify(b"k", None, Some(&sig), "POST", "/x", b"", now),
            Err(Refusal::Timestamp)
        );
        // Upper-case prefix and hex are fine; the second use is a replay.
        let upper = sig.replacen("sha256=", "SHA256=", 1).to_ascii_uppercase();
        assert_eq!(
            v(
                &upper,
                now,
                "POST",
                "/api/v1/rollouts/shop/web/abort",
                b"",
                now + 10
            ),
            Ok(())
        );
        assert_eq!(
            v(
                &sig,
                now,
                "POST",
                "/api/v1/rollouts/shop/web/abort",
                b"",
                now + 20
            ),
            Err(Refusal::Replayed)
        );
    }

    #[test]
    fn secrets_compare_without_leaking_length() {
        assert!(same_secret(b"token", b"token"));
        assert!(!same_secret(b"token", b"token1"));
        assert!(!same_secret(b"", b"x"));
    }
}
