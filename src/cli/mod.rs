//! The command bodies of the `augur` binary, one file per command, next
//! to what they run; `main.rs` only parses the command line and dispatches.
//! Output goes to stdout and stderr here, never from the library.

pub mod check;
pub mod demo;
pub mod judge;
pub mod query;
pub mod report;
pub mod rollout;
pub mod run;
pub mod test;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::ValueEnum;

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    augur::duration::parse(s).map_err(|e| e.to_string())
}

/// The multi-threaded runtime the daemon and the demo run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Queries evaluate recursively on blocking threads; the parser
        // bounds their depth, this leaves a wide margin (tokio: 2 MiB).
        .thread_stack_size(8 << 20)
        .build()
        .map_err(|e| {
            eprintln!("augur: cannot start the runtime: {e}");
            ExitCode::from(1)
        })
}

pub fn init_logging(format: LogFormat, level: Option<&str>) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Auto if std::io::stderr().is_terminal() => b.init(),
        // journald adds its own timestamps; keep lines plain.
        _ => b.with_ansi(false).without_time().init(),
    }
}
