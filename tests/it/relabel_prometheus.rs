//! Differential test: the same `file_sd_configs` targets and generated
//! relabel rules given to a real Prometheus (Debian's 2.42, started here on
//! loopback) and to augur; `/api/v1/targets` must agree label for label:
//! active targets' labels, scrape URL, interval and timeout, and which
//! targets are dropped. Skips, saying what to install, without
//! `prometheus` on PATH.
//!
//! Discovered labels are not compared: Prometheus 2.42 shows the labels
//! as relabeling left them at the drop or end (a builder reused across
//! targets; 3.x recomputes them from the target group), which is not what
//! they are. augur shows Prometheus 3's; unit tests in `relabel` check
//! them.
//!
//! Prometheus 2 and 3 differ where this test does not look: 2.x adds a
//! default port to addresses without one (every address here has one),
//! lets `params` override `__param_*` labels from discovery (no job here
//! has params), lists dropped targets without `scrapePool` and has no
//! `droppedTargetCounts` (only discovered labels are compared), and
//! requires legacy label names (every name here is one).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{skip_or_fail, Daemon};

/// One relabel rule, rendered into both YAML and TOML.
#[derive(Clone)]
struct Rule {
    src: &'static [&'static str],
    sep: Option<&'static str>,
    regex: Option<&'static str>,
    modulus: Option<u64>,
    target: Option<&'static str>,
    replacement: Option<&'static str>,
    action: &'static str,
}

const fn r(action: &'static str) -> Rule {
    Rule {
        src: &[],
        sep: None,
        regex: None,
        modulus: None,
        target: None,
        replacement: None,
        action,
    }
}

/// Rules a job picks from; each is valid alone, and any order is valid.
fn templates() -> Vec<Rule> {
    vec![
        Rule {
            src: &["__meta_app", "env"],
            regex: Some("(.*);(.*)"),
            target: Some("app_env"),
            replacement: Some("${1}-${2}"),
            ..r("replace")
        },
        Rule {
            regex: Some("__meta_(app|hash)"),
            replacement: Some("k8s_$1"),
            ..r("labelmap")
        },
        Rule {
            src: &["env"],
            regex: Some("prod|dev"),
            ..r("keep")
        },
        Rule {
            src: &["team"],
            regex: Some(""),
            ..r("drop")
        },
        Rule {
            src: &["__address__"],
            modulus: Some(3),
            target: Some("shard"),
            ..r("hashmod")
        },
        Rule {
            src: &["shard"],
            regex: Some("0|1"),
            ..r("drop")
        },
        Rule {
            src: &["env"],
            target: Some("env_lc"),
            ..r("lowercase")
        },
        Rule {
            src: &["__meta_app", "zone"],
            sep: Some("/"),
            target: Some("where"),
            ..r("uppercase")
        },
        Rule {
            src: &["__address__"],
            regex: Some(r".*:(\d+)"),
            target: Some("__tmp_port"),
            replacement: Some("$1"),
            ..r("replace")
        },
        Rule {
            src: &["__meta_port"],
            target: Some("__tmp_port"),
            ..r("dropequal")
        },
        Rule {
            src: &["__meta_port"],
            target: Some("__tmp_port"),
            ..r("keepequal")
        },
        Rule {
            regex: Some("zone|team"),
            ..r("labeldrop")
        },
        Rule {
            regex: Some("__.*|job|env|app.*|k8s_.*|shard|where"),
            ..r("labelkeep")
        },
        Rule {
            src: &["__address__", "__meta_port"],
            regex: Some(r"(.+):\d+;(\d+)"),
            target: Some("__address__"),
            replacement: Some("$1:$2"),
            ..r("replace")
        },
        Rule {
            src: &["env"],
            regex: Some("dev"),
            target: Some("__scrape_interval__"),
            replacement: Some("2m"),
            ..r("replace")
        },
        Rule {
            src: &["__meta_app"],
            regex: Some("(check.*)"),
            target: Some("__param_module"),
            replacement: Some("http_${1}"),
            ..r("replace")
        },
        Rule {
            src: &["__meta_app", "__meta_hash"],
            sep: Some("@"),
            regex: Some(r"(\w+)@(\w+)"),
            target: Some("instance"),
            replacement: Some("$1-$2"),
            ..r("replace")
        },
        Rule {
            src: &["__meta_hash"],
            regex: Some("(.)(.).*"),
            target: Some("hash_$2"),
            replacement: Some("$1"),
            ..r("replace")
        },
        Rule {
            src: &["__meta_path"],
            regex: Some("(/.+)"),
            target: Some("__metrics_path__"),
            ..r("replace")
        },
        Rule {
            src: &["__meta_app"],
            regex: Some("payments"),
            target: Some("__address__"),
            replacement: Some(""),
            ..r("replace")
        },
    ]
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A rule's fields as (key, value) pairs, values already quoted.
fn fields(r: &Rule) -> Vec<(&'static str, String)> {
    let mut out = vec![("action", q(r.action))];
    if !r.src.is_empty() {
        let l: Vec<String> = r.src.iter().map(|x| q(x)).collect();
        out.push(("source_labels", format!("[{}]", l.join(", "))));
    }
    for (k, v) in [
        ("separator", r.sep),
        ("regex", r.regex),
        ("target_label", r.target),
        ("replacement", r.replacement),
    ] {
        if let Some(v) = v {
            out.push((k, q(v)));
        }
    }
    if let Some(m) = r.modulus {
        out.push(("modulus", m.to_string()));
    }
    out
}

fn yaml_rule(r: &Rule) -> String {
    fields(r)
        .iter()
        .enumerate()
        .map(|(i, (k, v))| format!("      {} {k}: {v}\n", if i == 0 { "-" } else { " " }))
        .collect()
}

fn toml_rule(r: &Rule) -> String {
    let body: String = fields(r)
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    format!("[[scrape_configs.relabel_configs]]\n{body}")
}

/// A small seeded generator (no dependency needed for a test's choices).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Target groups with a spread of labels; every address has a port and
/// points at a closed loopback port, so scrapes fail fast.
fn target_groups() -> Value {
    let apps = ["checkout", "payments", "search", "checkout-api"];
    let envs = ["prod", "dev", "Stage"];
    let mut groups = Vec::new();
    let mut n = 0;
    for (gi, app) in apps.iter().enumerate() {
        for (ei, env) in envs.iter().enumerate() {
            for k in 0..3 {
                n += 1;
                let targets = vec![format!("127.0.{}.{}:{}", gi + 1, n, 9 + k)];
                let mut labels = json!({
                    "__meta_id": n.to_string(),
                    "__meta_app": app,
                    "__meta_hash": format!("{:x}", 0x5a3c_u32 * (n as u32 + 7)),
                    "__meta_port": if ei == 1 { "10" } else { "9" },
                    "env": env,
                    "zone": format!("eu-{}", (gi + ei) % 3),
                });
                if (gi + ei) % 2 == 0 {
                    labels["team"] = json!("shop");
                }
                if gi == 3 {
                    labels["__meta_path"] = json!("/probe");
                }
                groups.push(json!({"targets": targets, "labels": labels}));
            }
        }
    }
    Value::Array(groups)
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    active: BTreeSet<String>,
    dropped: Vec<String>,
}

fn summarise(t: &Value) -> Seen {
    let list = |k: &str| t["data"][k].as_array().cloned().unwrap_or_default();
    let active = list("activeTargets")
        .iter()
        .map(|a| {
            json!({
                "pool": a["scrapePool"],
                "labels": a["labels"],
                "url": a["scrapeUrl"],
                "interval": a["scrapeInterval"],
                "timeout": a["scrapeTimeout"],
            })
            .to_string()
        })
        .collect();
    // 2.42's discovered labels are unreliable (above, even `job` may be
    // missing) and 2.42 has no `scrapePool` on dropped targets: compared
    // is how often each target (`__meta_id`) was dropped over all jobs.
    let mut dropped: Vec<String> = list("droppedTargets")
        .iter()
        .map(|d| d["discoveredLabels"]["__meta_id"].to_string())
        .collect();
    dropped.sort();
    Seen { active, dropped }
}

struct Prom(std::process::Child);
impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_match_prometheus() {
    let Some(bin) = crate::prometheus_remote::find_prometheus() else {
        skip_or_fail("prometheus not found on PATH; install the Debian package `prometheus`");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tg = target_groups();
    std::fs::write(dir.path().join("targets.json"), tg.to_string()).unwrap();
    let t = templates();
    let mut rng = Lcg(std::env::var("AUGUR_RELABEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261129));
    // One job per rule set: every template alone, then random chains.
    let mut jobs: Vec<Vec<Rule>> = t.iter().map(|x| vec![x.clone()]).collect();
    for _ in 0..30 {
        let len = 2 + rng.next(5);
        jobs.push((0..len).map(|_| t[rng.next(t.len())].clone()).collect());
    }
    let mut yaml =
        String::from("global:\n  scrape_interval: 1m\n  scrape_timeout: 10s\nscrape_configs:\n");
    let mut toml = String::from("[global]\nscrape_interval = \"1m\"\nscrape_timeout = \"10s\"\n");
    for (i, rules) in jobs.iter().enumerate() {
        yaml += &format!(
            "  - job_name: j{i:02}\n    file_sd_configs:\n      - files: ['targets.json']\n    relabel_configs:\n"
        );
        toml += &format!(
            "[[scrape_configs]]\njob_name = \"j{i:02}\"\n[[scrape_configs.file_sd_configs]]\nfiles = [\"targets.json\"]\n"
        );
        for r in rules {
            yaml += &yaml_rule(r);
            toml += &toml_rule(r);
        }
    }
    std::fs::write(dir.path().join("prometheus.yml"), &yaml).unwrap();
    let port = crate::common::free_port();
    let _prom = Prom(
        Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let cfg = dir.path().join("augur.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let mut d = Daemon::start_with(dir.path(), &cfg);

    // augur settles first (it reads the file at once); then Prometheus
    // must reach the same picture (its discovery pushes every 5 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = summarise(&d.get_json("/api/v1/targets").await);
    assert!(
        ours.active.len() > 50 && ours.dropped.len() > 50,
        "the generated rules should keep and drop many targets: {} active, {} dropped",
        ours.active.len(),
        ours.dropped.len()
    );
    let url = format!("http://127.0.0.1:{port}/api/v1/targets");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut theirs = None;
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await {
            if let Ok(v) = r.json::<Value>().await {
                let s = summarise(&v);
                let done =
                    s.active.len() + s.dropped.len() >= ours.active.len() + ours.dropped.len();
                theirs = Some(s);
                if done {
                    // One more round in case a pool was still syncing.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Ok(r) = reqwest::get(&url).await {
                        if let Ok(v) = r.json::<Value>().await {
                            theirs = Some(summarise(&v));
                        }
                    }
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let theirs = theirs.expect("prometheus answered /api/v1/targets");
    let only_ours: Vec<_> = ours.active.difference(&theirs.active).collect();
    let only_theirs: Vec<_> = theirs.active.difference(&ours.active).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "active targets differ\nonly augur ({}): {:#?}\nonly prometheus ({}): {:#?}",
        only_ours.len(),
        only_ours.iter().take(5).collect::<Vec<_>>(),
        only_theirs.len(),
        only_theirs.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(
        ours.dropped, theirs.dropped,
        "dropped targets differ (ids of dropped targets over all jobs)"
    );
    eprintln!(
        "{} jobs: {} active and {} dropped targets identical to Prometheus",
        jobs.len(),
        ours.active.len(),
        ours.dropped.len()
    );
    assert_eq!(d.stop(), 0);
}
