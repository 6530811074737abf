//! `daemoneye-agent` command line: parse arguments, load configuration, run the agent.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use daemoneye_agent::bundle_service::{ConfigBase, ConfigState};
use daemoneye_agent::bundles::Bundles;
use daemoneye_agent::output::AlertFormat;
use daemoneye_agent::run::{self, AgentOptions};
use daemoneye_lib::config::{self, ConfigSources, Overrides};
use daemoneye_lib::logging::{self, LogFormat};
use daemoneye_lib::text;

/// DaemonEye's detection orchestrator: supervises procmond and scans on an interval.
#[derive(Debug, Parser)]
#[command(name = "daemoneye-agent", version, about)]
struct Args {
    /// Configuration file, read after /etc/daemoneye/config.toml and the user's file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (default: $DAEMONEYE_DATA_DIR, /var/lib/daemoneye as root, else the
    /// user's state directory).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds between scans (collection.interval).
    #[arg(long, value_name = "SECONDS")]
    interval: Option<f64>,
    /// The procmond executable (default: beside this binary, then $PATH).
    #[arg(long, value_name = "PATH")]
    procmond: Option<PathBuf>,
    /// One scan, one detection pass, alerts on stdout, then exit.
    #[arg(long)]
    once: bool,
    /// How alerts are printed on stdout.
    #[arg(long, value_enum, default_value_t = AlertFormat::Text)]
    format: AlertFormat,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Less log output (errors only).
    #[arg(short, long)]
    quiet: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(
        args.log_format,
        args.verbose,
        args.quiet,
        ["info", "debug", "trace"],
    );
    let mut overrides = Overrides::default();
    if let Some(seconds) = args.interval {
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 1e9) {
            eprintln!(
                "daemoneye-agent: --interval must be a positive number of seconds, not {seconds}"
            );
            return ExitCode::from(2);
        }
        let millis = Duration::from_secs_f64(seconds).as_millis();
        overrides.set("collection.interval", format!("{millis}ms"));
    }
    let sources = ConfigSources::standard(args.config.clone());
    let data_dir = run::data_dir(args.data_dir.clone());
    // The active config bundle is a layer right above the embedded defaults. A bundle layer
    // that this host's local configuration makes invalid is left out (and reported), rather
    // than stopping the agent: the local files alone must still start it.
    let layer = match Bundles::config_layer(&data_dir) {
        Ok(layer) => layer,
        Err(err) => {
            // A damaged bundle state: a runtime failure, not a usage error.
            eprintln!("daemoneye-agent: {}", text::error_chain(err.as_ref()));
            return ExitCode::from(1);
        }
    };
    let mut config_state = ConfigState::default();
    let mut with_layer = sources.clone();
    with_layer.bundle_layer = layer.clone();
    let loaded = match config::load_report(&with_layer, &overrides, run::collector_user_problem) {
        Err(err) if layer.is_some() => {
            config_state.problem = Some(err.to_string());
            config::load_report(&sources, &overrides, run::collector_user_problem)
        }
        other => other,
    };
    let config = match loaded {
        Ok((config, report)) => {
            config_state.overridden = report.bundle_keys_overridden;
            config
        }
        Err(err) => {
            eprintln!("daemoneye-agent: {err}");
            return ExitCode::from(2);
        }
    };
    // Each sink checks its own keys (and reads its local files) before anything starts: a
    // bad [[sinks]] table is a configuration error, like any other key.
    let sink_context = daemoneye_agent::outbox::build::Context {
        stdout_format: args.format,
    };
    if let Err(err) = daemoneye_agent::outbox::deliver::build_all(&config, &sink_context) {
        eprintln!("daemoneye-agent: invalid configuration: {err}");
        return ExitCode::from(2);
    }
    if let Some(problem) = &config_state.problem {
        tracing::error!(problem = %problem, "the active config bundle is not in use");
    }
    let procmond = match run::find_procmond(args.procmond.clone()) {
        Ok(path) => path,
        Err(err) => {
            eprintln!("daemoneye-agent: {}", text::error_chain(err.as_ref()));
            return ExitCode::from(2);
        }
    };
    let options = AgentOptions {
        interval: config.collection.interval.get(),
        config,
        data_dir,
        procmond,
        procmond_args: procmond_args(&args),
        once: args.once,
        format: args.format,
        config_base: ConfigBase { sources, overrides },
        config_state,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("daemoneye-agent: starting the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("daemoneye-agent: {}", text::error_chain(err.as_ref()));
            ExitCode::from(daemoneye_agent::store::exit_code(&err))
        }
    }
}

/// The agent's own settings that procmond must share: its configuration file and logging
/// (its level and format; colour needs no flag, since procmond inherits the agent's stderr and
/// environment and so makes the same decision).
fn procmond_args(args: &Args) -> Vec<OsString> {
    let mut out = Vec::new();
    if let Some(config) = &args.config {
        out.push("--config".into());
        out.push(config.clone().into());
    }
    if args.quiet {
        out.push("--quiet".into());
    }
    for _ in 0..args.verbose {
        out.push("--verbose".into());
    }
    out.push("--log-format".into());
    out.push(args.log_format.as_str().into());
    out
}
