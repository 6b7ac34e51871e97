//! docs/configuration.md documents every config key and nothing else: the
//! fields of the `Raw*` serde structs in src/config/raw.rs (with their
//! `#[serde(rename = "...")]` names) must be exactly the last segments of
//! the backticked keys in the first column of the doc's tables.

use std::collections::{BTreeMap, BTreeSet};

fn read(rel: &str) -> String {
    let path = format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Field names (as written in TOML) of every `Raw*` struct, mapped to the
/// structs that have them, e.g. `"listen" -> ["RawServer"]`.
fn raw_fields(src: &str) -> BTreeMap<String, Vec<String>> {
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut rename: Option<String> = None;
    for line in src.lines() {
        let t = line.trim();
        if current.is_none() {
            let decl = t
                .strip_prefix("pub struct ")
                .or_else(|| t.strip_prefix("pub(crate) struct "))
                .or_else(|| t.strip_prefix("struct "));
            if let Some(rest) = decl {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.starts_with("Raw") && t.ends_with('{') {
                    current = Some(name);
                    rename = None;
                }
            }
            continue;
        }
        if t == "}" {
            current = None;
            continue;
        }
        if t.starts_with("#[serde(") {
            if let Some(i) = t.find("rename = \"") {
                let rest = &t[i + "rename = \"".len()..];
                rename = rest.split('"').next().map(str::to_string);
            }
            continue;
        }
        let decl = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub "));
        if let Some(rest) = decl {
            if let Some((name, _ty)) = rest.split_once(':') {
                let name = name.trim();
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    let key = rename.take().unwrap_or_else(|| name.to_string());
                    fields
                        .entry(key)
                        .or_default()
                        .push(current.clone().unwrap_or_default());
                }
            }
        }
    }
    fields
}

/// Every backticked key path in the first column of a markdown table row,
/// e.g. `scrape_configs.static_configs.targets`.
fn documented_keys(doc: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for line in doc.lines() {
        let t = line.trim();
        if !t.starts_with('|') {
            continue;
        }
        let Some(first) = t.split('|').nth(1) else {
            continue;
        };
        // `a`b`c`d` -> the odd pieces are inside backticks.
        for (i, piece) in first.split('`').enumerate() {
            let is_key = !piece.is_empty()
                && piece
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
            if i % 2 == 1 && is_key {
                keys.push(piece.to_string());
            }
        }
    }
    keys
}

/// `scrape_configs.static_configs.targets` -> `targets`.
fn last_segment(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

#[test]
fn configuration_reference_documents_every_key() {
    let fields = raw_fields(&read("src/config/raw.rs"));
    let keys = documented_keys(&read("docs/configuration.md"));
    assert!(
        fields.len() > 50,
        "found only {} field names in src/config/raw.rs: is the parser broken?",
        fields.len()
    );
    assert!(
        keys.len() > 50,
        "found only {} keys in docs/configuration.md tables: is the parser broken?",
        keys.len()
    );

    let last_segments: BTreeSet<&str> = keys.iter().map(|k| last_segment(k)).collect();

    let undocumented: Vec<String> = fields
        .iter()
        .filter(|(name, _)| !last_segments.contains(name.as_str()))
        .map(|(name, structs)| format!("{name} (in {})", structs.join(", ")))
        .collect();
    let unknown: Vec<&String> = keys
        .iter()
        .filter(|k| !fields.contains_key(last_segment(k)))
        .collect();

    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/configuration.md and src/config/raw.rs disagree.\n\
         Fields of Raw* structs missing from the doc's tables: {undocumented:?}\n\
         Documented keys that are no field of any Raw* struct: {unknown:?}"
    );
}

/// The reference's complete example is a config augur accepts, and so is
/// the ops-host example shipped for systemd.
#[test]
fn configuration_examples_compile() {
    let doc = read("docs/configuration.md");
    let block = doc
        .rsplit("```toml\n")
        .next()
        .and_then(|rest| rest.split("```").next())
        .expect("a ```toml example at the end of docs/configuration.md");
    let cfg = augur::config::compile(std::path::Path::new("docs/configuration.md"), block)
        .unwrap_or_else(|e| panic!("the reference example does not compile:\n{e}"));
    assert!(!cfg.scrape_configs.is_empty());
    let p = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/augur.toml"));
    let cfg = augur::config::load(p).unwrap_or_else(|e| panic!("systemd/augur.toml: {e}"));
    assert!(cfg.server.listen.ip().is_loopback());
    assert!(
        cfg.actions.dry_run,
        "the shipped ops-host example starts in dry run"
    );
}
