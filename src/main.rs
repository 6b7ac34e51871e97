//! The `augur` command: parses the CLI, sets up logging, calls the library
//! and maps outcomes to exit codes (0 ok, 1 check or runtime failure,
//! 2 usage or config error).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use augur::app::{self, RunOptions, StartError};

#[derive(Parser)]
#[command(
    name = "augur",
    version,
    about = "Canary analysis daemon and Prometheus-compatible alert evaluator"
)]
struct Cli {
    /// Log format: human on a terminal, plain otherwise, or JSON lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, global = true)]
    log_format: LogFormat,
    /// Log filter (tracing syntax, e.g. `info` or `augur=debug`); RUST_LOG also works.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Config file (TOML).
        #[arg(long, short = 'c', default_value = "/etc/augur/augur.toml")]
        config: PathBuf,
        /// Listen address, overriding server.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// State directory, overriding server.state_dir.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Check files without running anything.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Check config files; prints every error as file:line:col and exits 2 on error.
    Config {
        /// Config files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn init_logging(format: LogFormat, level: Option<&str>) {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            what: CheckCommand::Config { files },
        } => {
            let mut bad = false;
            for f in &files {
                match augur::config::load(f) {
                    Ok(cfg) => println!(
                        "{}: ok ({} scrape configs, {} targets)",
                        f.display(),
                        cfg.scrape_configs.len(),
                        cfg.scrape_configs
                            .iter()
                            .map(|j| j.targets.len())
                            .sum::<usize>()
                    ),
                    Err(errs) => {
                        bad = true;
                        for e in &errs.0 {
                            eprintln!("{e}");
                        }
                    }
                }
            }
            if bad {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Run {
            config,
            listen,
            state_dir,
        } => {
            init_logging(cli.log_format, cli.log_level.as_deref());
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("augur: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let opts = RunOptions {
                config,
                listen,
                state_dir,
            };
            match rt.block_on(app::run(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(StartError::Config(errs)) => {
                    for e in &errs.0 {
                        eprintln!("{e}");
                    }
                    ExitCode::from(2)
                }
                Err(StartError::Other(e)) => {
                    eprintln!("augur: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
