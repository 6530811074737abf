//! `daemoneye-cli`: the operator's interface to a running DaemonEye agent.
//!
//! It talks only to the agent, over `<data_dir>/run/agent.sock`; the commands marked offline
//! need no agent. It must never open a network socket nor write the event store directly.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use daemoneye_lib::config::{self, ConfigSources, DataDirInputs, Overrides, resolve_data_dir};
use daemoneye_lib::ipc::Limits;
use daemoneye_lib::ipc::proto::Status;
use daemoneye_lib::ipc::transport::PeerPolicy;

mod agent_client;

/// How long the CLI waits for the agent's answer.
const AGENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
mod health;

use agent_client::{AgentClient, ClientError};

/// DaemonEye's operator interface.
#[derive(Debug, Parser)]
#[command(name = "daemoneye-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Data directory of the agent to talk to.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Configuration file, read after /etc/daemoneye/config.toml and the user's file.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    format: Format,
    /// Never colour the output (the CLI does not colour yet; accepted for scripts).
    #[arg(long, global = true)]
    no_color: bool,
    /// More detail.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less output.
    #[arg(short, long, global = true)]
    quiet: bool,
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON for programs.
    Json,
    /// Comma-separated values (RFC 4180).
    Csv,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Health of the agent and procmond: each ok, degraded or failed. Exits 0 when all are ok,
    /// 1 when any is not, 4 when the agent is not reachable.
    HealthCheck,
    /// Print shell completions (offline).
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "daemoneye-cli",
                &mut io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::HealthCheck => health_check(&cli),
    }
}

fn health_check(cli: &Cli) -> ExitCode {
    let config = match config::load(
        &ConfigSources::standard(cli.config.clone()),
        &Overrides::default(),
    ) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("daemoneye-cli: {err}");
            return ExitCode::from(2);
        }
    };
    let data_dir = resolve_data_dir(&DataDirInputs::from_env(
        cli.data_dir.clone(),
        nix::unistd::geteuid().is_root(),
    ));
    let limits = Limits {
        max_frame_bytes: config.ipc.max_frame_bytes,
        ..Limits::default()
    };
    let policy = PeerPolicy::for_current_user();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("daemoneye-cli: starting the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let ask = async {
            let mut client = AgentClient::connect(&data_dir, limits, &policy).await?;
            client.health().await
        };
        // An agent that accepts but never answers is as good as unreachable.
        tokio::time::timeout(AGENT_TIMEOUT, ask)
            .await
            .unwrap_or(Err(ClientError::Silent(AGENT_TIMEOUT)))
    });
    let health = match result {
        Ok(health) => health,
        Err(err @ (ClientError::Unreachable { .. } | ClientError::Silent(_))) => {
            eprintln!("daemoneye-cli: {err}");
            return ExitCode::from(4);
        }
        Err(err) => {
            eprintln!("daemoneye-cli: {err}");
            return ExitCode::from(1);
        }
    };
    let mut out = io::stdout().lock();
    let printed =
        health::print(&health, cli.format, cli.verbose > 0, &mut out).and_then(|()| out.flush());
    match printed {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("daemoneye-cli: writing the report: {err}");
            ExitCode::from(1)
        }
        _ if health.overall() == Status::Ok => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}
