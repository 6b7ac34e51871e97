//! `augur demo`: the whole pipeline on simulated traffic.

use std::process::ExitCode;

use super::{parse_duration, runtime};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// A healthy canary: the run passes and the rollout is promoted.
    #[arg(long, conflicts_with = "scenario")]
    healthy: bool,
    /// What happens to the canary.
    #[arg(long, value_enum, default_value_t = augur::demo::Scenario::Regression)]
    scenario: augur::demo::Scenario,
    /// Seed of the traffic generator.
    #[arg(long, default_value_t = 2)]
    seed: u64,
    /// Analysis interval (scrapes run four times as often); shorter
    /// compresses time.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    interval: std::time::Duration,
    /// Healthy time after the run starts, before the regression.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    healthy_for: std::time::Duration,
    /// Intervals a passing run needs.
    #[arg(long, default_value_t = 12)]
    count: u32,
    /// Give up (exit 1) without a decision by then.
    #[arg(long, default_value = "55s", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// analysis (a run bound to an Argo Rollout), or a rollout augur
    /// drives itself: canary-steps (weights over a Gateway API route) or
    /// blue-green (a Service selector switch).
    #[arg(long, value_enum, default_value_t = augur::demo::Strategy::Analysis)]
    strategy: augur::demo::Strategy,
    /// Keep serving the daemon's web pages after the story, until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// Print only the outcome, as one JSON document.
    #[arg(long)]
    json: bool,
}

pub fn demo(args: &DemoArgs) -> ExitCode {
    use augur::demo::{Options, Scenario};
    let scenario = if args.healthy {
        Scenario::Healthy
    } else {
        args.scenario
    };
    let opts = Options {
        scenario,
        seed: args.seed,
        interval: args.interval,
        healthy_for: args.healthy_for,
        count: args.count,
        timeout: args.timeout,
        live: !args.json,
        strategy: args.strategy,
        serve: args.serve,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut out = std::io::stdout();
    match rt.block_on(augur::demo::run(opts, &mut out)) {
        Ok(o) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&o).unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("augur demo: {e:#}");
            ExitCode::from(1)
        }
    }
}
