//! `augur report dora`: the four DORA keys per rollout and overall, from
//! the state database (read-only, beside a running daemon) or a running
//! augur's API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

/// Where the report reads from.
pub enum Source {
    /// A running augur's base URL.
    Url(String),
    /// A state directory holding `augur.db`.
    StateDir(PathBuf),
    /// A config file naming the state directory.
    Config(PathBuf),
}

fn from_db(dir: &Path, window: &str) -> Result<Value, String> {
    let ms = augur::duration::parse(window)
        .map_err(|e| format!("--window: {e}"))?
        .as_millis() as i64;
    if ms <= 0 {
        return Err("--window: must be greater than 0".into());
    }
    let path = dir.join("augur.db");
    if !path.exists() {
        return Err(format!(
            "{}: no such file (is --state-dir right?)",
            path.display()
        ));
    }
    let st = augur::state::State::open_read_only(&path).map_err(|e| e.to_string())?;
    let to = augur::clock::now_ms();
    let input = st.dora_input(to - ms, to).map_err(|e| e.to_string())?;
    let mut v = augur::delivery::dora(&input, to - ms, to);
    v["window"] = Value::String(window.to_string());
    Ok(v)
}

fn from_url(url: &str, window: &str) -> Result<Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/api/v1/dora", url.trim_end_matches('/'));
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(&url)
            .query(&[("window", window)])
            .send()
            .await
            .map_err(|e| format!("{url}: {}", augur::redact::reqwest_error(e)))?;
        let code = r.status();
        let text = r.text().await.map_err(|e| format!("{url}: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{url}: {e}"))?;
        if !code.is_success() {
            return Err(format!(
                "{url}: {code}: {}",
                v["error"].as_str().unwrap_or("")
            ));
        }
        Ok(v["data"].clone())
    })
}

fn secs(v: &Value) -> String {
    match v.as_f64() {
        None => "n/a".into(),
        Some(s) => augur::duration::format(std::time::Duration::from_secs_f64(s.max(0.0))),
    }
}

fn row(who: &str, k: &Value) -> String {
    let cfr = k["change_failure_rate"]
        .as_f64()
        .map_or("n/a".to_string(), |r| format!("{:.1}%", r * 100.0));
    format!(
        "{who:<32} {:>7} {:>8} {:>7} {:>7}  {:<9} {:>10} {:>8} {:>10}",
        k["deployments"],
        k["promoted"],
        k["aborted"],
        k["escaped"],
        k["deployment_frequency"]["bucket"].as_str().unwrap_or(""),
        secs(&k["lead_time_seconds"]),
        cfr,
        secs(&k["time_to_restore_seconds"]),
    )
}

/// Prints the report; exit 2 on a bad window or an unreadable source.
pub fn dora(source: Source, window: &str, json: bool) -> ExitCode {
    let r = match &source {
        Source::Url(u) => from_url(u, window),
        Source::StateDir(d) => from_db(d, window),
        Source::Config(c) => match augur::config::load(c) {
            Ok(cfg) => from_db(&cfg.server.state_dir, window),
            Err(e) => Err(e.to_string()),
        },
    };
    let v = match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("augur report dora: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!(
        "DORA keys from {} to {} ({})",
        v["from"].as_str().unwrap_or(""),
        v["to"].as_str().unwrap_or(""),
        window
    );
    println!(
        "{:<32} {:>7} {:>8} {:>7} {:>7}  {:<9} {:>10} {:>8} {:>10}",
        "rollout",
        "deploys",
        "promoted",
        "aborted",
        "escaped",
        "frequency",
        "lead time",
        "CFR",
        "restore"
    );
    println!("{}", row("(all)", &v["overall"]));
    for r in v["rollouts"].as_array().into_iter().flatten() {
        let who = format!(
            "{}/{}",
            r["namespace"].as_str().unwrap_or(""),
            r["name"].as_str().unwrap_or("")
        );
        println!("{}", row(&who, r));
    }
    ExitCode::SUCCESS
}
