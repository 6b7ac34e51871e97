//! Who may call the routes that change something: a bearer token
//! (`Authorization: Bearer <token>`, scheme in any case, or `?token=` for
//! clients such as Flagger that cannot set headers), or a request signed
//! as [`crate::signing`] describes. Without either secret file configured
//! every request passes (the listen address defaults to loopback).
//!
//! Secret files are re-read when they change (rotation needs no reload);
//! a missing, unreadable or empty file is logged once when it becomes so,
//! not at every request. Secrets are never echoed or logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};

use super::ApiState;
use crate::config::ApiAuth;
use crate::signing::{self, ReplayCache};

/// Most bytes a signed request body may have (axum's default limit).
const MAX_GUARDED_BODY: usize = 2 << 20;

/// A secret file's last known content, keyed by its metadata.
#[derive(Default)]
struct SecretFile {
    /// (path, modified, length) of the content below
    key: Option<(PathBuf, Option<SystemTime>, u64)>,
    /// The trimmed content; None when unreadable or empty.
    value: Option<Arc<str>>,
    /// The last problem logged, so each is logged once.
    logged: Option<String>,
}

impl SecretFile {
    fn get(&mut self, what: &str, path: &Path) -> Option<Arc<str>> {
        let meta = std::fs::metadata(path);
        let problem = match &meta {
            Err(e) => Some(format!("cannot read it: {e}")),
            Ok(m) if m.is_dir() => Some("it is a directory".to_string()),
            Ok(_) => None,
        };
        if let Some(p) = &problem {
            self.key = None;
            self.value = None;
            self.note(what, path, Some(p.clone()));
            return None;
        }
        let m = meta.ok()?;
        let key = (path.to_path_buf(), m.modified().ok(), m.len());
        if self.key.as_ref() != Some(&key) {
            self.key = Some(key);
            self.value = match std::fs::read(path) {
                Ok(b) => {
                    let t = String::from_utf8_lossy(&b).trim().to_string();
                    if t.is_empty() {
                        self.note(what, path, Some("it is empty".into()));
                        None
                    } else {
                        self.note(what, path, None);
                        Some(Arc::from(t))
                    }
                }
                Err(e) => {
                    self.note(what, path, Some(format!("cannot read it: {e}")));
                    None
                }
            };
        }
        self.value.clone()
    }

    fn note(&mut self, what: &str, path: &Path, problem: Option<String>) {
        if self.logged == problem {
            return;
        }
        match &problem {
            Some(p) => warn!(
                file = %path.display(),
                problem = %p,
                "{what} is unusable; requests that need it get 401 until it is fixed"
            ),
            None if self.logged.is_some() => {
                info!(file = %path.display(), "{what} is readable again")
            }
            None => {}
        }
        self.logged = problem;
    }
}

/// The API's credentials and replay memory.
pub struct Auth {
    cfg: Arc<RwLock<ApiAuth>>,
    token: Mutex<SecretFile>,
    hmac: Mutex<SecretFile>,
    replay: ReplayCache,
}

/// How a request proved itself, or failed to.
enum Outcome {
    Allowed,
    /// A signature header is present: verify it against the body.
    NeedsBody(Arc<str>),
    Denied(&'static str),
}

impl Auth {
    /// Credentials from `[server]` (shared, replaced on reload).
    pub fn new(cfg: Arc<RwLock<ApiAuth>>) -> Auth {
        Auth {
            cfg,
            token: Mutex::new(SecretFile::default()),
            hmac: Mutex::new(SecretFile::default()),
            replay: ReplayCache::default(),
        }
    }

    /// Whether any credential is configured.
    pub fn required(&self) -> bool {
        let c = self.cfg.read();
        c.token_file.is_some() || c.hmac_secret_file.is_some()
    }

    fn check_headers(&self, headers: &HeaderMap, query: Option<&str>) -> Outcome {
        let cfg = self.cfg.read().clone();
        if cfg.token_file.is_none() && cfg.hmac_secret_file.is_none() {
            return Outcome::Allowed;
        }
        if let Some(path) = &cfg.token_file {
            if let Some(token) = self.token.lock().get("server.auth_token_file", path) {
                let bearer = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        let (scheme, rest) = v.trim().split_once(' ')?;
                        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                    });
                let from_query = query.and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "token")
                        .map(|(_, v)| v.into_owned())
                });
                if bearer.is_some_and(|b| signing::same_secret(b.as_bytes(), token.as_bytes()))
                    || from_query
                        .is_some_and(|q| signing::same_secret(q.as_bytes(), token.as_bytes()))
                {
                    return Outcome::Allowed;
                }
            }
        }
        if headers.contains_key(signing::SIGNATURE_HEADER) {
            if let Some(path) = &cfg.hmac_secret_file {
                if let Some(secret) = self.hmac.lock().get("server.hmac_secret_file", path) {
                    return Outcome::NeedsBody(secret);
                }
            }
        }
        Outcome::Denied(
            "unauthorized: send Authorization: Bearer <token> (or ?token=), or sign the request with X-Augur-Timestamp and X-Augur-Signature",
        )
    }
}

fn deny(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        format!("{why}\n"),
    )
        .into_response()
}

/// Middleware on every route that changes something. A token is checked
/// before the body is read; only a signed request has its body buffered,
/// to verify it, and handed on unchanged.
pub(super) async fn require_auth(
    State(st): State<Arc<ApiState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let secret = match st.auth.check_headers(req.headers(), req.uri().query()) {
        Outcome::Allowed => return next.run(req).await,
        Outcome::Denied(why) => return deny(why),
        Outcome::NeedsBody(secret) => secret,
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_GUARDED_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read the request body: {e}\n"),
            )
                .into_response()
        }
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let verdict = st.auth.replay.verify(
        secret.as_bytes(),
        header(signing::TIMESTAMP_HEADER),
        header(signing::SIGNATURE_HEADER),
        parts.method.as_str(),
        &path_and_query,
        &bytes,
        crate::clock::now_ms().div_euclid(1000),
    );
    if let Err(r) = verdict {
        return deny(r.as_str());
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}
