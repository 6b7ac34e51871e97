//! The `augur` command: parses the CLI, sets up logging, calls the library
//! and maps outcomes to exit codes (0 ok, 1 check or runtime failure,
//! 2 usage or config error).

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::demo::DemoArgs;
use cli::judge::JudgeArgs;
use cli::LogFormat;

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
    /// Watch augur catch a bad canary: a simulated service, a stand-in
    /// Kubernetes API and the real daemon, on loopback, in under a minute.
    Demo(DemoArgs),
    /// Check files without running anything.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Run test files.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
    /// Run a PromQL query against augur or any Prometheus-compatible API.
    Query {
        /// The PromQL expression.
        expr: String,
        /// Evaluation time: RFC 3339 or Unix seconds (default: now).
        #[arg(long)]
        time: Option<String>,
        /// Query the datasource of this config (a running augur for the
        /// embedded store, or the remote Prometheus it names).
        #[arg(long, conflicts_with = "url")]
        config: Option<PathBuf>,
        /// Base URL of a Prometheus-compatible API.
        #[arg(long)]
        url: Option<String>,
        /// Print the API's JSON `data` object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Status and operator verbs of rollouts augur drives (`[[rollouts]]`),
    /// through a running augur's API.
    Rollout {
        /// list, status, promote, promote-full, abort, pause, resume or retry.
        #[arg(value_enum)]
        action: cli::rollout::Action,
        /// The rollout's name (all but `list`).
        name: Option<String>,
        /// The rollout's namespace.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// The augur to ask.
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        url: String,
        /// File holding the API's bearer token (server.auth.token_file).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Print the API's JSON `data`.
        #[arg(long)]
        json: bool,
    },
    /// Reports from augur's decision log.
    Report {
        #[command(subcommand)]
        what: ReportCommand,
    },
    /// Compare a baseline against a canary with one statistical test.
    ///
    /// Sample tests read files with one number per line; `proportions` and
    /// `fisher` take ERRORS/TOTAL counts. Exit 2 on bad input.
    Judge(Box<JudgeArgs>),
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The four DORA keys (deployment frequency, lead time, change failure
    /// rate, time to restore) per rollout and overall.
    Dora {
        /// How far back from now.
        #[arg(long, default_value = "30d")]
        window: String,
        /// Read the state database in this directory (read-only).
        #[arg(long, conflicts_with_all = ["url", "config"])]
        state_dir: Option<PathBuf>,
        /// Ask a running augur's API instead.
        #[arg(long, conflicts_with = "config")]
        url: Option<String>,
        /// Read the state database of this config's server.state_dir.
        #[arg(long, short = 'c', default_value = "/etc/augur/augur.toml")]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run promtool rule unit-test files (`promtool test rules` format);
    /// exit 1 when any test fails.
    Rules {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run promqltest files (Prometheus's `promql/promqltest` format);
    /// ends with `N passed, N failed, N skipped`.
    Promql {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
    /// Check Prometheus rule files like `promtool check rules`; exit 1 on any invalid file.
    Rules {
        /// Rule files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            what: CheckCommand::Config { files },
        } => cli::check::check_config(&files),
        Command::Check {
            what: CheckCommand::Rules { files },
        } => cli::check::check_rules(&files),
        Command::Test {
            what: TestCommand::Promql { files },
        } => cli::test::test_promql(&files),
        Command::Test {
            what: TestCommand::Rules { files },
        } => cli::test::test_rules(&files),
        Command::Judge(args) => cli::judge::judge(&args),
        Command::Report {
            what:
                ReportCommand::Dora {
                    window,
                    state_dir,
                    url,
                    config,
                    json,
                },
        } => {
            let source = match (url, state_dir) {
                (Some(u), _) => cli::report::Source::Url(u),
                (None, Some(d)) => cli::report::Source::StateDir(d),
                (None, None) => cli::report::Source::Config(config),
            };
            cli::report::dora(source, &window, json)
        }
        Command::Rollout {
            action,
            name,
            namespace,
            url,
            token_file,
            reason,
            json,
        } => cli::rollout::rollout(
            action,
            name.as_deref(),
            &namespace,
            &url,
            token_file.as_deref(),
            reason.as_deref(),
            json,
        ),
        Command::Demo(args) => {
            // The daemon's own logs would drown the story; errors only
            // unless asked.
            cli::init_logging(
                cli.log_format,
                Some(cli.log_level.as_deref().unwrap_or("error")),
            );
            cli::demo::demo(&args)
        }
        Command::Query {
            expr,
            time,
            config,
            url,
            json,
        } => cli::query::query(&expr, time.as_deref(), config, url, json),
        Command::Run {
            config,
            listen,
            state_dir,
        } => cli::run::run(
            cli.log_format,
            cli.log_level.as_deref(),
            config,
            listen,
            state_dir,
        ),
    }
}
