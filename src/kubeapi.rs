//! Kubernetes plumbing shared by the action sinks (`act`), leader election
//! (`ha`) and service discovery: clients built from an in-memory
//! kubeconfig, and raw JSON requests with the API server's error code.

use serde_json::{Map, Value};

/// A client for `server` with kubeconfig-style `user` and `cluster`
/// entries (`tokenFile`, `certificate-authority`, ...), built in memory so
/// kube reads the files they name and re-reads token files as they rotate.
pub async fn client(
    server: &str,
    user: Map<String, Value>,
    mut cluster: Map<String, Value>,
) -> Result<kube::Client, String> {
    cluster.insert("server".into(), server.into());
    let doc = serde_json::json!({
        "clusters": [{"name": "augur", "cluster": cluster}],
        "users": [{"name": "augur", "user": user}],
        "contexts": [{"name": "augur", "context": {"cluster": "augur", "user": "augur"}}],
        "current-context": "augur",
    });
    let k: kube::config::Kubeconfig = serde_json::from_value(doc).map_err(|e| e.to_string())?;
    let cfg = kube::Config::from_custom_kubeconfig(k, &Default::default())
        .await
        .map_err(|e| e.to_string())?;
    kube::Client::try_from(cfg).map_err(|e| e.to_string())
}

/// One request with an optional JSON body of `content_type`. The answer's
/// JSON (Null when it is none), or the API server's status code and
/// reason (code 0: the request did not get an answer).
pub async fn request(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Option<(&Value, &str)>,
) -> Result<Value, (u16, String)> {
    let mut req = axum::http::Request::builder().method(method).uri(path);
    let bytes = match body {
        Some((b, content_type)) => {
            req = req.header("Content-Type", content_type);
            serde_json::to_vec(b).map_err(|e| (0, e.to_string()))?
        }
        None => Vec::new(),
    };
    let req = req.body(bytes).map_err(|e| (0, e.to_string()))?;
    match client.request_text(req).await {
        Ok(text) => Ok(serde_json::from_str(&text).unwrap_or(Value::Null)),
        Err(kube::Error::Api(e)) => Err((
            e.code,
            format!("{} {}", e.reason, e.message).trim().to_string(),
        )),
        Err(e) => Err((0, e.to_string())),
    }
}
