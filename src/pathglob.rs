//! File globs as Prometheus resolves `rule_files` (Go's `filepath.Glob`):
//! `*`, `?` and `[...]` match within one path component and `**` is just
//! `*` (no recursion), so a walk never goes deeper than the pattern has
//! components and a symlink loop cannot make it run forever.

use std::path::{Component, Path, PathBuf};

/// A pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pattern {pattern:?}: {reason}")]
pub struct GlobError {
    /// the pattern
    pub pattern: String,
    /// what is wrong
    pub reason: String,
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The existing paths matching `pattern`, sorted. A pattern without
/// metacharacters yields itself when it exists (even a broken symlink, as
/// in Go), else nothing; unreadable directories are skipped.
pub fn glob(pattern: &Path) -> Result<Vec<PathBuf>, GlobError> {
    let text = pattern.to_string_lossy();
    let bad = |reason: String| GlobError {
        pattern: text.to_string(),
        reason,
    };
    if !has_meta(&text) {
        return Ok(if std::fs::symlink_metadata(pattern).is_ok() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    // The literal prefix (root and components without metacharacters),
    // then one directory listing per remaining component.
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    let mut literal = true;
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let meta = matches!(comp, Component::Normal(_)) && has_meta(&part);
        if literal && !meta {
            for p in &mut current {
                p.push(comp.as_os_str());
            }
            continue;
        }
        literal = false;
        if !meta {
            current = current
                .into_iter()
                .map(|p| p.join(comp.as_os_str()))
                .filter(|p| std::fs::symlink_metadata(p).is_ok())
                .collect();
            continue;
        }
        let pat = glob::Pattern::new(&part).map_err(|e| bad(e.to_string()))?;
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let mut next = Vec::new();
        for dir in &current {
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(listing) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| pat.matches_with(n, opts))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        current = next;
    }
    current.sort();
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_go_filepath_glob() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("rules/team")).unwrap();
        for f in [
            "rules/a.yml",
            "rules/b.yml",
            "rules/c.txt",
            "rules/team/d.yml",
        ] {
            std::fs::write(root.join(f), "").unwrap();
        }
        let names = |pat: &str| -> Vec<String> {
            glob(&root.join(pat))
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(root).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(names("rules/*.yml"), ["rules/a.yml", "rules/b.yml"]);
        assert_eq!(names("rules/*/*.yml"), ["rules/team/d.yml"]);
        // `**` is `*`: one component, as in Prometheus.
        assert_eq!(names("rules/**/*.yml"), ["rules/team/d.yml"]);
        assert_eq!(names("rules/[ab].yml"), ["rules/a.yml", "rules/b.yml"]);
        assert_eq!(names("rules/a.yml"), ["rules/a.yml"]);
        assert!(names("rules/none.yml").is_empty());
        assert!(names("nothere/*.yml").is_empty());
        assert!(glob(&root.join("rules/[.yml")).is_err());
    }

    #[test]
    fn symlink_loops_end() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("loop/a");
        std::fs::create_dir_all(&a).unwrap();
        std::os::unix::fs::symlink("..", a.join("back")).unwrap();
        std::os::unix::fs::symlink("../a", a.join("self")).unwrap();
        std::fs::write(a.join("r.yml"), "").unwrap();
        let found = glob(&d.path().join("loop/**/*.yml")).unwrap();
        assert_eq!(found, vec![a.join("r.yml")]);
        let found = glob(&d.path().join("loop/*/*/*/*/*/*.yml")).unwrap();
        assert!(found.len() < 100, "{}", found.len());
    }
}
