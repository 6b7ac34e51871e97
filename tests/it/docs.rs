//! The README's configuration reference must stay valid: its TOML block is
//! compiled with the real config loader, and every key it documents exists.

#[test]
fn readme_config_block_compiles() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has a ```toml block");
    let cfg = augur::config::compile(std::path::Path::new("README.md"), block)
        .unwrap_or_else(|e| panic!("README config does not compile:\n{e}"));
    let job = &cfg.scrape_configs[0];
    assert_eq!(job.job_name, "checkout");
    let static_targets: usize = job.static_configs.iter().map(|s| s.targets.len()).sum();
    assert_eq!(static_targets, 2);
    assert_eq!(job.body_size_limit, 16 << 20);
}

#[test]
fn example_config_compiles() {
    let p = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/augur.toml"));
    let cfg = augur::config::load(p).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.server.listen.ip().is_loopback());
    assert_eq!(
        cfg.scrape_configs[0].static_configs[0].targets[0],
        cfg.server.listen.to_string()
    );
}

#[test]
fn readme_analysis_template_compiles() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("## Canary analysis").nth(1).expect("section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```toml block in the Canary analysis section");
    let ts = augur::analysis::template::parse_file("README.md", block)
        .unwrap_or_else(|e| panic!("README template does not compile: {e:?}"));
    assert_eq!(ts[0].name, "http-canary");
    assert_eq!(ts[0].consecutive_error_limit, 4);
}

fn shipped_templates() -> Vec<augur::analysis::template::Template> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/analyses");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            out.extend(augur::analysis::template::load(&p).unwrap());
        }
    }
    out
}

fn yaml_docs(name: &str) -> Vec<serde_json::Value> {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn argo_example_uses_augurs_endpoint_and_template_args() {
    let docs = yaml_docs("argo-analysistemplate.yaml");
    let at = docs
        .iter()
        .find(|d| d["kind"] == "AnalysisTemplate")
        .unwrap();
    let m = &at["spec"]["metrics"][0];
    assert_eq!(m["successCondition"], "result.verdict == \"pass\"");
    assert_eq!(m["failureCondition"], "result.verdict == \"fail\"");
    assert_eq!(m["provider"]["web"]["jsonPath"], "{$}");
    let url = m["provider"]["web"]["url"].as_str().unwrap();
    let (path, query) = url.split_once('?').unwrap();
    let template = path
        .split("/api/v1/argo/")
        .nth(1)
        .expect("augur's Argo endpoint");
    let t = shipped_templates()
        .into_iter()
        .find(|t| t.name == template)
        .expect("a shipped template");
    let names: Vec<&str> = query
        .split('&')
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    for n in &names {
        assert!(
            t.args.iter().any(|a| a.name == *n),
            "{n} is not an argument of {template}"
        );
    }
    for a in t.args.iter().filter(|a| a.default.is_none()) {
        assert!(
            names.contains(&a.name.as_str()),
            "required argument {} missing",
            a.name
        );
    }
    // Every {{args.x}} in the URL is declared by the AnalysisTemplate.
    let declared: Vec<&str> = at["spec"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for part in url.split("{{args.").skip(1) {
        let arg = part.split("}}").next().unwrap();
        assert!(declared.contains(&arg), "{arg}");
    }
}

#[test]
fn flagger_example_uses_augurs_hooks_and_template_args() {
    let docs = yaml_docs("flagger-canary.yaml");
    let hooks = docs[0]["spec"]["analysis"]["webhooks"].as_array().unwrap();
    let templates = shipped_templates();
    for h in hooks {
        let url = h["url"].as_str().unwrap();
        let kind = url
            .split("/flagger/")
            .nth(1)
            .expect("augur's Flagger endpoint");
        assert_eq!(
            kind,
            h["type"].as_str().unwrap(),
            "the hook type and the URL agree"
        );
        assert!(augur::decide::Hook::parse(kind).is_some());
        if let Some(t) = h["metadata"]["template"].as_str() {
            let t = templates
                .iter()
                .find(|x| x.name == t)
                .expect("a shipped template");
            for a in t.args.iter().filter(|a| a.default.is_none()) {
                let given = h["metadata"].get(&a.name).is_some()
                    || ["namespace", "name", "target"].contains(&a.name.as_str());
                assert!(given, "{} needs {}", t.name, a.name);
            }
        }
    }
}

/// The map at the top of `src/lib.rs` names every module the crate has.
#[test]
fn the_crate_map_names_every_module() {
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    let map: String = lib
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let mods: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(mods.len() > 20, "{mods:?}");
    let missing: Vec<&&str> = mods
        .iter()
        .filter(|m| !map.contains(&format!("[`{m}`]")))
        .collect();
    assert!(
        missing.is_empty(),
        "src/lib.rs's map does not name {missing:?}"
    );
}
