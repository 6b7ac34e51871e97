//! The Prometheus-compatible query API of the running daemon, the remote
//! datasource client against it, and the `augur query` CLI.

use std::time::Duration;

use crate::common::{config_for, eventually, Daemon, Reply, TestTarget};
use serde_json::Value;

async fn daemon_with_data() -> (tempfile::TempDir, Daemon, TestTarget, TestTarget) {
    let dir = tempfile::tempdir().unwrap();
    let body = "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 100\nhttp_requests_total{code=\"500\"} 5\n";
    let a = TestTarget::start(Reply::text(body)).await;
    let b = TestTarget::start(Reply::text(body)).await;
    let d = Daemon::start(
        dir.path(),
        &config_for(&[(
            "shop",
            "",
            &[a.addr, b.addr],
            "labels = { track = \"canary\" }",
        )]),
    );
    eventually(15, "four scrapes of both targets", || async {
        let s = d.export("up").await;
        (s.len() == 2 && s.iter().all(|(_, v)| v.len() >= 4)).then_some(())
    })
    .await;
    (dir, d, a, b)
}

async fn post_form(d: &Daemon, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(d.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(d: &Daemon, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(d.url(path))
        .query(params)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_and_range_queries_have_prometheus_shapes() {
    let (_dir, d, a, _b) = daemon_with_data().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let t = format!("{:.3}", now);

    let (code, v) = get(&d, "/api/v1/query", &[("query", "up"), ("time", &t)]).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    let res = v["data"]["result"].as_array().unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!(res[0]["metric"]["__name__"], "up");
    assert_eq!(res[0]["metric"]["track"], "canary");
    assert_eq!(res[0]["value"][1], "1");
    // The sample is stamped with the evaluation time.
    assert!((res[0]["value"][0].as_f64().unwrap() - now).abs() < 0.001);

    // POST form, aggregation, and the error ratio a canary check uses.
    let (code, v) = post_form(
        &d,
        "/api/v1/query",
        &[
            (
                "query",
                "sum(http_requests_total{code=\"500\"}) / sum(http_requests_total)",
            ),
            ("time", &t),
        ],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let ratio: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((ratio - 5.0 / 105.0).abs() < 1e-12);
    assert_eq!(v["data"]["result"][0]["metric"], serde_json::json!({}));

    let (_, v) = get(
        &d,
        "/api/v1/query",
        &[("query", "1 + 1"), ("time", "1700000000.5")],
    )
    .await;
    assert_eq!(
        v["data"],
        serde_json::json!({"resultType": "scalar", "result": [1700000000.5, "2"]})
    );
    let (_, v) = get(
        &d,
        "/api/v1/query",
        &[("query", "\"hello\""), ("time", "10")],
    )
    .await;
    assert_eq!(v["data"]["result"], serde_json::json!([10, "hello"]));

    // A range selector gives a matrix with the samples' own timestamps.
    let (_, v) = get(
        &d,
        "/api/v1/query",
        &[
            ("query", &format!("up{{instance=\"{}\"}}[1m]", a.addr)),
            ("time", &t),
        ],
    )
    .await;
    assert_eq!(v["data"]["resultType"], "matrix");
    assert!(v["data"]["result"][0]["values"].as_array().unwrap().len() >= 2);

    let start = format!("{:.3}", now - 2.0);
    let (code, v) = get(
        &d,
        "/api/v1/query_range",
        &[
            ("query", "sum by (track) (up)"),
            ("start", &start),
            ("end", &t),
            ("step", "1"),
        ],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    let values = v["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(values[2][1], "2");
    assert_eq!(
        v["data"]["result"][0]["metric"],
        serde_json::json!({"track": "canary"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_use_prometheus_error_types() {
    let (_dir, d, _a, _b) = daemon_with_data().await;
    let (code, v) = get(&d, "/api/v1/query", &[("query", "sum(")]).await;
    assert_eq!(
        (code, v["errorType"].as_str()),
        (400, Some("bad_data")),
        "{v}"
    );
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid parameter \"query\""));

    let (code, v) = get(
        &d,
        "/api/v1/query",
        &[(
            "query",
            "label_replace(up, \"instance\", \"x\", \"\", \"\")",
        )],
    )
    .await;
    assert_eq!(
        (code, v["errorType"].as_str()),
        (422, Some("execution")),
        "{v}"
    );
    assert_eq!(
        v["error"],
        "vector cannot contain metrics with the same labelset"
    );

    let (code, v) = get(
        &d,
        "/api/v1/query_range",
        &[
            ("query", "up"),
            ("start", "10"),
            ("end", "20"),
            ("step", "0"),
        ],
    )
    .await;
    assert_eq!(
        (code, v["errorType"].as_str()),
        (400, Some("bad_data")),
        "{v}"
    );
    let (code, v) = get(
        &d,
        "/api/v1/query_range",
        &[
            ("query", "up"),
            ("start", "20"),
            ("end", "10"),
            ("step", "1"),
        ],
    )
    .await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = get(
        &d,
        "/api/v1/query_range",
        &[
            ("query", "up"),
            ("start", "0"),
            ("end", "100000"),
            ("step", "1"),
        ],
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("11,000 points"));
    let (code, _) = get(&d, "/api/v1/query", &[("query", "up"), ("time", "soon")]).await;
    assert_eq!(code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_and_label_values() {
    let (_dir, d, _a, _b) = daemon_with_data().await;
    let (_, v) = get(&d, "/api/v1/labels", &[]).await;
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for n in ["__name__", "code", "instance", "job", "track"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let (_, v) = get(&d, "/api/v1/label/code/values", &[]).await;
    assert_eq!(v["data"], serde_json::json!(["200", "500"]));
    let (_, v) = get(
        &d,
        "/api/v1/label/__name__/values",
        &[("match[]", "{code=\"500\"}")],
    )
    .await;
    assert_eq!(v["data"], serde_json::json!(["http_requests_total"]));
    let (code, v) = post_form(
        &d,
        "/api/v1/series",
        &[("match[]", "http_requests_total{code=\"200\"}")],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_datasource_and_cli_query_a_prometheus_compatible_api() {
    let (dir, d, _a, _b) = daemon_with_data().await;
    // augur's own API is Prometheus-compatible: the remote client pushes
    // whole queries to it.
    let client = augur::datasource::RemoteClient::new(
        &format!("http://{}", d.addr),
        Duration::from_secs(5),
        augur::config::Auth::None,
        &[("X-Scope-OrgID".to_string(), "tenant-1".to_string())],
    )
    .unwrap();
    let now = augur::clock::now_ms();
    let r = client.instant("count(up == 1)", now).await.unwrap();
    match r.value {
        augur::promql::Value::Vector(v) => assert_eq!(v[0].v, 2.0),
        other => panic!("{other:?}"),
    }
    let r = client
        .range("sum(up)", now - 2000, now, 1000)
        .await
        .unwrap();
    match r.value {
        augur::promql::Value::Matrix(m) => assert_eq!(m[0].points.len(), 3),
        other => panic!("{other:?}"),
    }
    let e = client.instant("sum(", now).await.unwrap_err();
    assert!(
        matches!(e, augur::datasource::DatasourceError::RemoteQuery { ref kind, .. } if kind == "bad_data"),
        "{e}"
    );

    // The same through a config naming the remote datasource.
    let cfg = dir.path().join("remote.toml");
    std::fs::write(
        &cfg,
        format!(
            "[datasource]\ntype = \"prometheus\"\nurl = \"http://{}\"\ntimeout = \"5s\"\n",
            d.addr
        ),
    )
    .unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .args(["query", "sum by (code) (http_requests_total)", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("{code=\"500\"} => 10"), "{stdout}");
    assert!(stdout.contains("{code=\"200\"} => 200"), "{stdout}");

    let out = std::process::Command::new(crate::common::bin())
        .args(["query", "vector(3)", "--json", "--time", "100", "--url"])
        .arg(format!("http://{}", d.addr))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"resultType":"vector","result":[{"metric":{},"value":[100,"3"]}]}"#
    );
}
