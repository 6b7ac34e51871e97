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
    assert_eq!(job.targets.len(), 2);
    assert_eq!(job.body_size_limit, 16 << 20);
}

#[test]
fn example_config_compiles() {
    let p = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/augur.toml"));
    let cfg = augur::config::load(p).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.server.listen.ip().is_loopback());
    assert_eq!(
        cfg.scrape_configs[0].targets[0].address,
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
