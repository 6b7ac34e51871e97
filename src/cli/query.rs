//! `augur query`: one instant query against augur, its datasource or any
//! Prometheus-compatible API.

use std::path::PathBuf;
use std::process::ExitCode;

pub fn query(
    expr: &str,
    time: Option<&str>,
    config: Option<PathBuf>,
    url: Option<String>,
    json: bool,
) -> ExitCode {
    use augur::config::DatasourceConfig;
    let t = match time {
        None => augur::clock::now_ms(),
        Some(s) => match augur::api::parse_time_param(s) {
            Some(t) => t,
            None => {
                eprintln!("augur: --time {s:?} is neither RFC 3339 nor Unix seconds");
                return ExitCode::from(2);
            }
        },
    };
    let (base, timeout, auth, headers) = match (config, url) {
        (_, Some(u)) => (
            u,
            std::time::Duration::from_secs(120),
            augur::config::Auth::None,
            Vec::new(),
        ),
        (Some(c), None) => match augur::config::load(&c) {
            Ok(cfg) => match cfg.datasource {
                DatasourceConfig::Prometheus {
                    url,
                    timeout,
                    auth,
                    headers,
                } => (url, timeout, auth, headers),
                DatasourceConfig::Embedded => (
                    format!("http://{}", cfg.server.listen),
                    cfg.query.timeout,
                    augur::config::Auth::None,
                    Vec::new(),
                ),
            },
            Err(errs) => {
                for e in &errs.0 {
                    eprintln!("{e}");
                }
                return ExitCode::from(2);
            }
        },
        (None, None) => (
            "http://127.0.0.1:9464".to_string(),
            std::time::Duration::from_secs(120),
            augur::config::Auth::None,
            Vec::new(),
        ),
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
    let result = rt.block_on(async {
        let client = augur::datasource::RemoteClient::new(&base, timeout, auth, &headers)?;
        client.instant(expr, t).await
    });
    match result {
        Ok(r) => {
            for a in &r.annotations {
                eprintln!("{:?}: {}", a.kind, a.message);
            }
            if json {
                println!("{}", augur::datasource::write_data(&r.value, t));
            } else {
                print!("{}", augur::datasource::format_table(&r.value));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("augur: {e}");
            ExitCode::from(1)
        }
    }
}
