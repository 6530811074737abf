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
use daemoneye_lib::text;

mod agent_client;
mod alerts;
mod audit;
mod health;
mod records;
mod rules;

/// How long the CLI waits for the agent's answer.
const AGENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
    /// Run a read-only SQL query over the newest scan, in the rules' sandbox.
    Query {
        /// The query (SQLite dialect; tables as in INTERFACE.md).
        #[arg(long)]
        sql: String,
    },
    /// Review alerts.
    Alerts {
        #[command(subcommand)]
        command: alerts::AlertsCommand,
    },
    /// List, validate and test detection rules.
    Rules {
        #[command(subcommand)]
        command: rules::RulesCommand,
    },
    /// The audit ledger: its key, checkpoints, proofs for auditors, and offline verification.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
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
        Command::Query { ref sql } => query(&cli, sql),
        Command::Alerts { ref command } => alerts::run(&cli, command),
        Command::Rules { ref command } => rules::run(&cli, command),
        Command::Audit { ref command } => audit::run(&cli, command),
    }
}

fn query(cli: &Cli, sql: &str) -> ExitCode {
    let request = daemoneye_lib::ipc::proto::QueryRequest {
        sql: sql.to_owned(),
    };
    let result = match ask_agent(cli, |mut client| async move { client.query(request).await }) {
        Ok(result) => result,
        Err(code) => return code,
    };
    let rows: Vec<Vec<serde_json::Value>> = result
        .rows
        .iter()
        .map(|row| row.cells.iter().map(agent_client::cell_to_json).collect())
        .collect();
    if result.truncated {
        eprintln!(
            "daemoneye-cli: the result was cut at {} rows (detection.max_rows)",
            rows.len()
        );
    }
    print_or_fail(|out| records::print(&result.columns, &rows, cli.format, out))
        .err()
        .unwrap_or(ExitCode::SUCCESS)
}

/// Prints with `write` to stdout; a closed pipe is fine, another error is exit code 1.
pub(crate) fn print_or_fail(
    write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>,
) -> Result<(), ExitCode> {
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("daemoneye-cli: writing the output: {err}");
            Err(ExitCode::from(1))
        }
        _ => Ok(()),
    }
}

/// Connects to the agent and runs `ask`; on failure prints one line and gives the exit code
/// (4 unreachable or silent, 2 a refused request, 1 anything else).
pub(crate) fn ask_agent<T, F, Fut>(cli: &Cli, ask: F) -> Result<T, ExitCode>
where
    F: FnOnce(AgentClient) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    ask_agent_within(cli, AGENT_TIMEOUT, ask)
}

/// [`ask_agent`] for an exchange that may take up to `timeout` in all (an export).
pub(crate) fn ask_agent_within<T, F, Fut>(
    cli: &Cli,
    timeout: std::time::Duration,
    ask: F,
) -> Result<T, ExitCode>
where
    F: FnOnce(AgentClient) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let config = match config::load(
        &ConfigSources::standard(cli.config.clone()),
        &Overrides::default(),
    ) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("daemoneye-cli: {err}");
            return Err(ExitCode::from(2));
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
            return Err(ExitCode::from(1));
        }
    };
    let result = runtime.block_on(async {
        let exchange = async {
            let client = AgentClient::connect(&data_dir, limits, &policy).await?;
            ask(client).await
        };
        // An agent that accepts but never answers is as good as unreachable.
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(ClientError::Silent(timeout)))
    });
    result.map_err(|err| {
        // The message may carry what the agent (or procmond through it) sent.
        eprintln!("daemoneye-cli: {}", text::escape(&err.to_string()));
        match err {
            ClientError::Unreachable { .. } | ClientError::Silent(_) => ExitCode::from(4),
            ClientError::Failed(daemoneye_lib::ipc::IpcError::Refused {
                code: daemoneye_lib::ipc::proto::ErrorCode::BadRequest,
                ..
            }) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    })
}

fn health_check(cli: &Cli) -> ExitCode {
    let health = match ask_agent(cli, |mut client| async move { client.health().await }) {
        Ok(health) => health,
        Err(code) => return code,
    };
    match print_or_fail(|out| health::print(&health, cli.format, cli.verbose > 0, out)) {
        Err(code) => code,
        Ok(()) if health.overall() == Status::Ok => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
    }
}
