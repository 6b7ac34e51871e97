//! `file_sd_configs` (Prometheus's `discovery/file`): JSON or YAML lists of
//! target groups, re-read when a file changes and every `refresh_interval`.
//! A file that cannot be read or parsed keeps its previous groups; a file
//! that disappears or shrinks removes the groups it no longer has.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{RawGroup, Sink, TargetGroup};
use crate::config::FileSdConfig;

/// How often files are checked for changes. Polling metadata instead of
/// inotify: it sees Kubernetes ConfigMap updates (a symlink swap in the
/// directory) the same way, needs no watch limits, and costs a few stat
/// calls a second.
const POLL: Duration = Duration::from_secs(1);

/// The largest target file read.
const MAX_FILE: u64 = 64 << 20;

/// Reads one target file: a list of `{targets, labels}` groups, JSON or
/// YAML by extension; each group gets `__meta_filepath` and the source
/// `<path>:<index>`.
pub fn read_target_file(path: &Path) -> Result<Vec<TargetGroup>, String> {
    // A target list is small; a runaway file must not fill memory.
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_FILE {
        return Err(format!("file is {len} bytes, more than {MAX_FILE}"));
    }
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    parse_target_file(&text, &ext, &path.display().to_string())
}

/// Parses a target file's bytes by extension (`json`, `yml`, `yaml`);
/// `name` is its path as it appears in sources and `__meta_filepath`.
pub fn parse_target_file(text: &[u8], ext: &str, name: &str) -> Result<Vec<TargetGroup>, String> {
    let raw: Vec<Option<RawGroup>> = match ext {
        "json" => serde_json::from_slice(text).map_err(|e| e.to_string())?,
        "yml" | "yaml" => {
            let s = std::str::from_utf8(text).map_err(|e| e.to_string())?;
            if s.trim().is_empty() {
                Vec::new()
            } else {
                serde_saphyr::from_str(s).map_err(|e| e.to_string())?
            }
        }
        other => {
            return Err(format!(
                "retrieval of target groups failed: unknown extension {other:?}"
            ))
        }
    };
    super::groups_from_raw(raw, name, "__meta_filepath")
}

/// What a file looked like when last read.
#[derive(Debug, Clone, PartialEq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(p: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(p).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

fn expand(cfg: &FileSdConfig) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pat in &cfg.files {
        match crate::pathglob::glob(pat) {
            Ok(paths) => out.extend(paths),
            Err(e) => tracing::warn!(pattern = %pat.display(), error = %e, "error expanding glob"),
        }
    }
    out.sort();
    out.dedup();
    out
}

pub(super) async fn run(cfg: FileSdConfig, sink: Sink, cancel: CancellationToken) {
    // Group count per file at the last good read, to remove what is gone.
    let mut counts: HashMap<PathBuf, usize> = HashMap::new();
    let mut stamps: HashMap<PathBuf, Option<Stamp>> = HashMap::new();
    let mut last_full = Instant::now();
    let mut first = true;
    loop {
        let paths = {
            let cfg = cfg.clone();
            match tokio::task::spawn_blocking(move || {
                let paths = expand(&cfg);
                let st: Vec<_> = paths.iter().map(|p| stamp(p)).collect();
                (paths, st)
            })
            .await
            {
                Ok(v) => v,
                Err(_) => return,
            }
        };
        let (paths, now_stamps) = paths;
        let current: HashMap<PathBuf, Option<Stamp>> =
            paths.iter().cloned().zip(now_stamps).collect();
        let due = first || last_full.elapsed() >= cfg.refresh_interval;
        let changed = due || current != stamps;
        if changed {
            first = false;
            last_full = Instant::now();
            let reads = tokio::task::spawn_blocking({
                let paths = paths.clone();
                move || {
                    paths
                        .iter()
                        .map(|p| (p.clone(), read_target_file(p)))
                        .collect::<Vec<_>>()
                }
            })
            .await
            .unwrap_or_default();
            let mut groups = Vec::new();
            let mut failed = false;
            let mut next_counts = HashMap::new();
            for (p, r) in reads {
                let name = p.display().to_string();
                match r {
                    Ok(gs) => {
                        let old = counts.get(&p).copied().unwrap_or(0);
                        let n = gs.len();
                        groups.extend(gs);
                        // Prometheus sends empty groups for the indices a
                        // file no longer has.
                        groups.extend(super::removed(&name, n, old));
                        next_counts.insert(p, n);
                    }
                    Err(e) => {
                        failed = true;
                        sink.failed("file", &name, &format!("error reading file: {e}"));
                        // Keep what this file had ("prevent deletion").
                        if let Some(n) = counts.get(&p) {
                            next_counts.insert(p, *n);
                        }
                    }
                }
            }
            for (p, n) in &counts {
                if !next_counts.contains_key(p) {
                    let name = p.display().to_string();
                    groups.extend(super::removed(&name, 0, *n));
                }
            }
            counts = next_counts;
            stamps = current;
            if !failed {
                sink.ok("file");
            }
            sink.send(groups);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
