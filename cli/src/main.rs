//! `daemoneye-cli`: the operator's interface to a running DaemonEye agent.
//!
//! It talks only to the agent, over `<data_dir>/run/agent.sock`; the commands marked offline
//! need no agent. It must never open a network socket nor write the event store directly.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;
use daemoneye_lib::config::{self, ConfigSources, DataDirInputs, Overrides, resolve_data_dir};
use daemoneye_lib::fsutil;
use daemoneye_lib::ipc::proto::Status;
use daemoneye_lib::ipc::transport::PeerPolicy;
use daemoneye_lib::ipc::{Limits, convert};

mod agent_client;
mod alerts;
mod audit;
mod bundle;
mod error;
mod health;
mod outbox;
mod records;
mod rules;

/// How long the CLI waits for the agent's answer.
const AGENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

use agent_client::{AgentClient, ClientError};
use error::CliError;

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
    /// Never colour the output, nor clap's usage messages (`NO_COLOR` and `TERM=dumb` do
    /// the same).
    #[arg(long, global = true)]
    no_color: bool,
    /// More detail.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less output.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Tables with every cell whole, however wide (by default a table is cut to the
    /// terminal's width, its widest columns first, and cells to 80 characters off a terminal).
    #[arg(long, global = true)]
    wide: bool,
}

impl Cli {
    /// How records go to stdout.
    fn style(&self) -> records::Style {
        records::Style::for_stdout(self.format, self.wide)
    }
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
        #[arg(
            long,
            required_unless_present = "sql_file",
            conflicts_with = "sql_file"
        )]
        sql: Option<String>,
        /// Read the query from FILE, or from stdin with `-` (for queries longer than a
        /// command line allows; at most 256 KiB).
        #[arg(long, value_name = "FILE")]
        sql_file: Option<PathBuf>,
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
    /// The persistent alert outbox: what waits for which sink, and why.
    Outbox {
        #[command(subcommand)]
        command: outbox::OutboxCommand,
    },
    /// Signed bundles: install one, see what is active, what was applied or refused and
    /// why, go back one version.
    Bundle {
        #[command(subcommand)]
        command: bundle::BundleCommand,
    },
    /// Print shell completions (offline).
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

fn main() -> ExitCode {
    let cli = parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(message) = err.message() {
                eprintln!("daemoneye-cli: {message}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}

/// The command line, with clap's own messages (usage errors, help) uncoloured when the
/// operator asked with `--no-color`, `NO_COLOR` or `TERM=dumb` (clap honours the last two and
/// the terminal test itself).
fn parse() -> Cli {
    let no_color = std::env::args_os()
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--no-color");
    let mut command = Cli::command();
    if no_color {
        command = command.color(clap::ColorChoice::Never);
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
}

fn run(cli: &Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "daemoneye-cli",
                &mut io::stdout(),
            );
            Ok(())
        }
        Command::HealthCheck => health_check(cli),
        Command::Query {
            ref sql,
            ref sql_file,
        } => {
            let sql = match (sql, sql_file) {
                (Some(sql), _) => sql.clone(),
                (None, Some(file)) => read_sql(file)?,
                (None, None) => return Err(CliError::Usage("give --sql or --sql-file".into())),
            };
            query(cli, &sql)
        }
        Command::Alerts { ref command } => alerts::run(cli, command),
        Command::Rules { ref command } => rules::run(cli, command),
        Command::Audit { ref command } => audit::run(cli, command),
        Command::Bundle { ref command } => bundle::run(cli, command),
        Command::Outbox { ref command } => outbox::run(cli, command),
    }
}

fn query(cli: &Cli, sql: &str) -> Result<(), CliError> {
    let request = daemoneye_lib::ipc::proto::QueryRequest {
        sql: sql.to_owned(),
    };
    let result = ask_agent(cli, |client| async move { client.ask(request).await })?;
    let rows: Vec<Vec<serde_json::Value>> = result
        .rows
        .iter()
        .map(|row| row.cells.iter().map(convert::cell_to_json).collect())
        .collect();
    if result.truncated {
        eprintln!(
            "daemoneye-cli: the result was cut at {} rows (detection.max_rows)",
            rows.len()
        );
    }
    print_or_fail(|out| records::print(&result.columns, &rows, cli.style(), out))
}

/// The longest query `--sql-file` reads: the longest the agent checks.
const MAX_SQL_BYTES: u64 = daemoneye_lib::detection::precheck::MAX_SQL_BYTES as u64;

/// A query from a file, or from stdin for `-`: UTF-8, at most [`MAX_SQL_BYTES`]. A file must
/// be a regular file ([`fsutil::read_regular_bounded`]: a FIFO cannot hang the CLI).
fn read_sql(file: &Path) -> Result<String, CliError> {
    use std::io::Read as _;
    let (shown, bytes) = if file == Path::new("-") {
        let mut bytes = Vec::new();
        io::stdin()
            .lock()
            .take(MAX_SQL_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| CliError::Usage(format!("reading the query from stdin: {err}")))?;
        if bytes.len() as u64 > MAX_SQL_BYTES {
            return Err(CliError::Usage(format!(
                "the query on stdin is longer than {MAX_SQL_BYTES} bytes"
            )));
        }
        ("stdin".to_owned(), bytes)
    } else {
        let bytes = fsutil::read_regular_bounded(file, MAX_SQL_BYTES)
            .map_err(|err| CliError::Usage(err.to_string()))?;
        (file.display().to_string(), bytes)
    };
    String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("the query in {shown} is not UTF-8 text")))
}

/// Prints with `write` to stdout; a closed pipe is fine, another error is a runtime failure.
pub(crate) fn print_or_fail(
    write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>,
) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            Err(CliError::Failed(format!("writing the output: {err}")))
        }
        _ => Ok(()),
    }
}

/// Connects to the agent and runs `ask` on the connection.
pub(crate) fn ask_agent<T, F, Fut>(cli: &Cli, ask: F) -> Result<T, CliError>
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
) -> Result<T, CliError>
where
    F: FnOnce(AgentClient) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let config = config::load(
        &ConfigSources::standard(cli.config.clone()),
        &Overrides::default(),
    )
    .map_err(|err| CliError::Usage(err.to_string()))?;
    let data_dir = resolve_data_dir(&DataDirInputs::from_env(
        cli.data_dir.clone(),
        nix::unistd::geteuid().is_root(),
    ));
    let limits = Limits {
        max_frame_bytes: config.ipc.max_frame_bytes,
        ..Limits::default()
    };
    let policy = PeerPolicy::for_current_user();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::Failed(format!("starting the async runtime: {err}")))?;
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
    Ok(result?)
}

fn health_check(cli: &Cli) -> Result<(), CliError> {
    let asked = ask_agent(cli, |client| async move {
        client
            .ask(daemoneye_lib::ipc::proto::HealthRequest {})
            .await
    });
    let health = match asked {
        Ok(health) => health,
        Err(err) => {
            // A monitoring script reads stdout: it gets an answer it can parse.
            if cli.format == Format::Json {
                print_or_fail(|out| health::print_failure(&err, out))?;
            }
            return Err(err);
        }
    };
    print_or_fail(|out| health::print(&health, cli.format, cli.verbose > 0, out))?;
    if health.overall() == Status::Ok {
        Ok(())
    } else {
        Err(CliError::Findings(None))
    }
}
