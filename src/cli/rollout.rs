//! `augur rollout status|list|promote|abort|pause|resume|retry`: the
//! operator verbs and status of rollouts augur drives, over a running
//! augur's HTTP API (the same endpoints a script would call).

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Every rollout augur drives, with its phase.
    List,
    /// One rollout: phase, step, weights, analysis and the last requests.
    Status,
    /// Past the current pause or analysis step (blue-green: switch now).
    Promote,
    /// Skip the remaining steps and promote.
    PromoteFull,
    /// Back to stable.
    Abort,
    /// Hold progress.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Start an aborted revision over.
    Retry,
}

fn show(r: &Value) -> String {
    let mut out = format!(
        "{}/{}  {}  {}\n",
        r["namespace"].as_str().unwrap_or(""),
        r["name"].as_str().unwrap_or(""),
        r["strategy"].as_str().unwrap_or(""),
        r["phase"].as_str().unwrap_or("")
    );
    let steps = r["spec"]["step_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out += &format!(
        "  revision {}  step {}/{}  weights canary {} / stable {}\n",
        r["revision"].as_str().unwrap_or("-"),
        r["step"],
        steps.len(),
        r["weights"]["canary"],
        r["weights"]["stable"]
    );
    for (i, s) in steps.iter().enumerate() {
        let here = r["step"].as_u64() == Some(i as u64);
        out += &format!(
            "  {} {i}: {}\n",
            if here { ">" } else { " " },
            s.as_str().unwrap_or("")
        );
    }
    out += &format!("  {}\n", r["message"].as_str().unwrap_or(""));
    for k in ["background", "step"] {
        let a = &r["analysis"][k];
        if !a.is_null() {
            out += &format!(
                "  analysis ({k}) {} {}: {}\n",
                a["template"].as_str().unwrap_or(""),
                a["state"].as_str().unwrap_or(""),
                a["message"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(calls) = r["requests"].as_array() {
        for c in calls.iter().rev().take(5).rev() {
            out += &format!(
                "  {} {} -> {}  {}\n",
                c["method"].as_str().unwrap_or(""),
                c["path"].as_str().unwrap_or(""),
                c["code"],
                c["what"].as_str().unwrap_or("")
            );
        }
    }
    out
}

/// Runs one rollout command against the augur at `url`.
pub fn rollout(
    action: Action,
    name: Option<&str>,
    namespace: &str,
    url: &str,
    token_file: Option<&Path>,
    reason: Option<&str>,
    json: bool,
) -> ExitCode {
    let base = url.trim_end_matches('/');
    let token = match token_file.map(std::fs::read_to_string) {
        None => None,
        Some(Ok(t)) => Some(t.trim().to_string()),
        Some(Err(e)) => {
            eprintln!("augur: cannot read the token file: {e}");
            return ExitCode::from(2);
        }
    };
    let (method, path) = match (action, name) {
        (Action::List, _) => (reqwest::Method::GET, "/api/v1/rollouts".to_string()),
        (_, None) => {
            eprintln!("augur: rollout {action:?}: NAME is required");
            return ExitCode::from(2);
        }
        (Action::Status, Some(n)) => (
            reqwest::Method::GET,
            format!("/api/v1/rollouts/{namespace}/{n}"),
        ),
        (a, Some(n)) => {
            let verb = match a {
                Action::Promote => "promote",
                Action::PromoteFull => "promote-full",
                Action::Abort => "abort",
                Action::Pause => "pause",
                Action::Resume => "resume",
                _ => "retry",
            };
            (
                reqwest::Method::POST,
                format!("/api/v1/rollouts/{namespace}/{n}/{verb}"),
            )
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("augur: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result: Result<(u16, Value), String> = rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(method.clone(), format!("{base}{path}"))
            .timeout(std::time::Duration::from_secs(30));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        if method == reqwest::Method::POST {
            let body = serde_json::json!({"reason": reason.unwrap_or("augur rollout (CLI)")});
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| format!("{base}: {e}"))?;
        let code = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok((
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    });
    match result {
        Err(e) => {
            eprintln!("augur: {e}");
            ExitCode::from(1)
        }
        Ok((code, v)) if !(200..300).contains(&code) => {
            let msg = v["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            eprintln!("augur: {code}: {}", msg.trim());
            ExitCode::from(1)
        }
        Ok((_, v)) => {
            if json {
                println!("{}", v["data"]);
            } else {
                match action {
                    Action::List => {
                        for r in v["data"].as_array().cloned().unwrap_or_default() {
                            print!("{}", show(&r));
                        }
                    }
                    Action::Status => print!("{}", show(&v["data"])),
                    _ => println!(
                        "{} accepted (command {})",
                        v["data"]["verb"].as_str().unwrap_or(""),
                        v["data"]["command"]
                    ),
                }
            }
            ExitCode::SUCCESS
        }
    }
}
