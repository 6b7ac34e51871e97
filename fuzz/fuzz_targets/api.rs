//! Any body (and query string) for every route that changes something,
//! through the real router over in-memory state: never a panic, never a
//! 5xx (a 5xx would mean the daemon failed, not the client).
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const CONFIG: &str = r#"
[query]
timeout = "1s"

[[analysis]]
name = "probe"
interval = "1s"
window = "10s"
count = 3
[analysis.args]
namespace = {}
service = { default = "web" }
[[analysis.metric]]
name = "gauge"
check = "threshold"
max = 100
canary = 'sum(my_gauge{namespace="{{ args.namespace }}",track="{{ track }}"})'

[[actions.webhook]]
name = "hook"
url = "http://127.0.0.1:9/hook"
decisions = ["abort", "promote", "pause", "resume", "rollback", "retry", "promote-full"]
"#;

fn router() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static R: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    R.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let cfg = augur::config::compile(std::path::Path::new("fuzz.toml"), CONFIG).unwrap();
        let r = rt.block_on(async { augur::app::offline_router(&cfg).unwrap() });
        (rt, r)
    })
}

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/analysis/runs"),
    ("DELETE", "/api/v1/analysis/runs/"),
    ("POST", "/flagger/pre-rollout"),
    ("POST", "/flagger/rollout"),
    ("POST", "/flagger/rollback"),
    ("POST", "/flagger/confirm-promotion"),
    ("POST", "/flagger/event"),
    ("POST", "/gate/open"),
    ("POST", "/gate/check"),
    ("POST", "/rollback/open"),
    ("POST", "/api/v1/argo/probe"),
    ("GET", "/api/v1/argo/probe"),
    ("POST", "/api/v1/rollouts/shop/web/"),
    ("POST", "/canary/"),
    ("GET", "/api/v1/query"),
    ("POST", "/api/v1/query_range"),
    ("GET", "/api/v1/export"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (method, path) = ROUTES[pick as usize % ROUTES.len()];
    // The first line of the rest is appended to the path (an id, a
    // decision, a query string); the remainder is the body.
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(0);
    let (tail, body) = rest.split_at(split);
    let tail: String = String::from_utf8_lossy(tail)
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .collect();
    let uri = format!("{path}{tail}");
    let Ok(req) = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(&uri)
        .header("content-type", if path.contains("query") { "application/x-www-form-urlencoded" } else { "application/json" })
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let (rt, router) = router();
    let status = rt.block_on(async {
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let _ = axum::body::to_bytes(resp.into_body(), 1 << 20).await;
        status
    });
    assert!(!status.is_server_error() || status.as_u16() == 503, "{method} {uri}: {status}");
});
