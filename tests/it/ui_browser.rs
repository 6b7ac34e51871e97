//! The run page in a real browser: Debian's `chromium` driven through
//! `chromedriver` over W3C WebDriver (a small client on reqwest). A live
//! run's page updates without a reload and keeps an open section open,
//! shows the abort when the run fails, has no JavaScript errors, follows
//! the browser into dark mode, and switches between UTC and local time.
//! Screenshots land in `target/ui-screenshots/` for a person to look at.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::common::{config_for, free_port, simulated, skip_or_fail, Arm, Daemon};

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        break;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-quic", "--no-first-run", format!("--user-data-dir={}", profile.display()),
                     "--window-size=1280,2000"]}}}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Driver {
            child,
            base,
            session,
            http,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = self.http.request(method, url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn wait_for(&self, secs: u64, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.js(script).await;
            if !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

const TEMPLATE: &str = r#"
[[analysis]]
name = "quick"
interval = "1s"
window = "3s"
count = 30
[analysis.args]
service = {}
[[analysis.metric]]
name = "errors"
check = "test"
test = "sequential-counts"
direction = "increase"
critical = true
errors = 'sum(increase(http_requests_total{service="{{ args.service }}", track="{{ track }}", code=~"5.."}[{{ interval }}]))'
total = 'sum(increase(http_requests_total{service="{{ args.service }}", track="{{ track }}"}[{{ interval }}]))'
[[analysis.metric]]
name = "traffic"
check = "threshold"
min = 1
canary = 'sum(rate(http_requests_total{service="{{ args.service }}", track="{{ track }}"}[{{ window }}]))'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_run_page_updates_shows_the_abort_and_follows_dark_mode_and_local_time() {
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        skip_or_fail("chromium/chromedriver not found; install the Debian packages chromium and chromium-driver");
        return;
    };
    // A bad canary: the run fails within a few intervals of its first.
    let t = simulated(vec![("web", Arm::HEALTHY, Some(Arm::BROKEN))]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{TEMPLATE}\n{}",
        config_for(&[(
            "shop",
            "scrape_interval = \"250ms\"\nscrape_timeout = \"250ms\"",
            &[t.addr],
            ""
        )])
    );
    let d = Daemon::start(dir.path(), &cfg);
    let r: Value = reqwest::Client::new()
        .post(d.url("/api/v1/analysis/runs"))
        .json(
            &json!({"template": "quick", "args": {"service": "web"}, "initial_delay": "4s",
                      "rollout": {"namespace": "shop", "name": "web", "revision": "r1"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["data"]["id"].as_str().unwrap().to_string();
    let profile = tempfile::tempdir().unwrap();
    let b = Driver::start(&chromium, &chromedriver, profile.path()).await;
    b.goto(&d.url(&format!("/runs/{id}"))).await;
    b.wait_for(
        20,
        "the live stream",
        "return document.documentElement.dataset.live === 'connected'",
    )
    .await;
    b.screenshot("browser-run-live").await;
    // Updates arrive without a reload; an open section stays open.
    b.js("window.__loaded = 1; const d = document.getElementById('metric-errors-table'); if (d) d.open = true; return 1;").await;
    let before = b
        .js("const g = document.querySelectorAll('table.grid thead th'); return g.length;")
        .await
        .as_u64()
        .unwrap();
    b.wait_for(30, "a new interval without a reload", &format!(
        "return window.__loaded === 1 && document.querySelectorAll('table.grid thead th').length > {before}"
    )).await;
    assert_eq!(
        b.js("const d = document.getElementById('metric-errors-table'); return d ? d.open : null;")
            .await,
        json!(true),
        "the open section stayed open"
    );
    // How long the new interval took to reach the open page.
    let refreshed = b
        .js("return window.__augurRefreshedAt;")
        .await
        .as_f64()
        .unwrap();
    let run: Value = reqwest::get(d.url(&format!("/api/v1/analysis/runs/{id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let measured = run["data"]["measurements"][0]["time"].as_f64().unwrap() * 1000.0;
    eprintln!(
        "a new interval reached the open page after {:.0} ms",
        refreshed - measured
    );
    // The abort shows up on the same page.
    b.wait_for(
        60,
        "the failed verdict without a reload",
        "return window.__loaded === 1 && document.title.startsWith('✗ failed')",
    )
    .await;
    b.wait_for(
        10,
        "the new state announced to screen readers",
        "return document.getElementById('announce').textContent.startsWith('✗ failed')",
    )
    .await;
    b.wait_for(
        10,
        "the page marked final",
        "return document.documentElement.dataset.live === 'final'",
    )
    .await;
    b.wait_for(
        10,
        "the abort in the decision story",
        "return document.querySelector('main').textContent.includes('abort')",
    )
    .await;
    b.screenshot("browser-run-failed").await;
    // Dark mode follows the browser.
    b.cmd(
        reqwest::Method::POST,
        "/goog/cdp/execute",
        Some(json!({"cmd": "Emulation.setEmulatedMedia",
        "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}})),
    )
    .await;
    let bg = b
        .js("return getComputedStyle(document.body).backgroundColor;")
        .await;
    let sum: u32 = bg
        .as_str()
        .unwrap()
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .map(|x| x.trim().parse::<u32>().unwrap_or(255))
        .sum();
    assert!(sum < 150, "dark background: {bg}");
    b.screenshot("browser-run-dark").await;
    // UTC by default; the toggle switches to local time and back.
    let utc = b
        .js("return document.querySelector('time[data-t]').textContent;")
        .await;
    assert!(utc.as_str().unwrap().ends_with('Z'), "{utc}");
    b.js("document.getElementById('tz').click(); return 1;")
        .await;
    let local = b
        .js("return document.querySelector('time[data-t]').textContent;")
        .await;
    assert!(
        !local.as_str().unwrap().ends_with('Z'),
        "local time: {local}"
    );
    assert_eq!(
        b.js("return document.getElementById('tz').textContent;")
            .await,
        json!("local")
    );
    // The theme toggle overrides the browser: auto -> light -> dark -> auto.
    let bg_sum = |v: Value| -> u32 {
        v.as_str()
            .unwrap()
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .map(|x| x.trim().parse::<u32>().unwrap_or(255))
            .sum()
    };
    b.js("document.getElementById('theme').click(); return 1;")
        .await;
    let light = b
        .js("return getComputedStyle(document.body).backgroundColor;")
        .await;
    assert!(
        bg_sum(light.clone()) > 600,
        "light chosen in a dark browser: {light}"
    );
    b.js("document.getElementById('theme').click(); document.getElementById('theme').click(); return document.getElementById('theme').textContent;").await;
    assert_eq!(
        b.js("return document.getElementById('theme').textContent;")
            .await,
        json!("auto")
    );
    // No JavaScript errors along the way.
    assert_eq!(b.js("return window.__augurErrors;").await, json!([]));
    // The overview is live too; the pause button stops it and says so in the URL.
    b.goto(&d.url("/")).await;
    b.wait_for(
        10,
        "the overview live",
        "return document.documentElement.dataset.live === 'connected'",
    )
    .await;
    b.js("document.getElementById('pause').click(); return 1;")
        .await;
    b.wait_for(5, "paused", "return document.documentElement.dataset.live === 'paused' && location.search.includes('live=0')").await;
    b.goto(&d.url("/?live=0")).await;
    b.wait_for(5, "still paused after a reload", "return document.readyState === 'complete' && document.documentElement.dataset.live === 'paused'").await;
    b.js("document.getElementById('pause').click(); return 1;")
        .await;
    b.wait_for(10, "live again", "return document.documentElement.dataset.live === 'connected' && !location.search.includes('live=0')").await;
    for (name, path) in [
        ("browser-overview", "/"),
        ("browser-alerts", "/alerts"),
        ("browser-rules", "/rules"),
        ("browser-targets", "/targets"),
        ("browser-decisions", "/decisions"),
        ("browser-rollout", "/rollouts/shop/web"),
        ("browser-graph", "/graph?g0.expr=sum%20by%20(track)%20(rate(http_requests_total%5B5s%5D))&g0.range_input=1m"),
    ] {
        b.goto(&d.url(path)).await;
        b.wait_for(10, name, "return document.readyState === 'complete'").await;
        b.screenshot(name).await;
        assert_eq!(b.js("return window.__augurErrors;").await, json!([]), "{name}");
    }
}
