//! `augur run`: the daemon, until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use augur::app::{self, RunOptions, StartError};

use super::{init_logging, runtime, LogFormat};

/// Runs the daemon; exit 2 on a config error, 1 on any other failure.
pub fn run(
    log_format: LogFormat,
    log_level: Option<&str>,
    config: PathBuf,
    listen: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
) -> ExitCode {
    init_logging(log_format, log_level);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let opts = RunOptions {
        config,
        listen,
        state_dir,
    };
    let outcome = rt.block_on(app::run(opts));
    // Work still running on blocking threads (a query past its
    // cancellation check) must not hold the exit: the state is
    // already written.
    rt.shutdown_timeout(std::time::Duration::from_secs(3));
    match outcome {
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
