//! `procmond` command line: parse arguments, load configuration, then either run one scan and
//! print it (`--once`) or serve the agent on a socket (`--socket`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use daemoneye_lib::config::{self, Config, ConfigSources, Overrides};
use daemoneye_lib::ipc::Limits;
use daemoneye_lib::ipc::transport::{self, PeerPolicy};
use daemoneye_lib::logging::{self, LogFormat};
use procmond::output::{self, Format};
use procmond::privilege::{self, PrivilegeOutcome};
use procmond::server::{self, ServerState};
use procmond::{Collector, CollectorOptions};

/// DaemonEye's privileged process collector.
#[derive(Debug, Parser)]
#[command(name = "procmond", version, about)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["once", "socket"])))]
struct Args {
    /// Enumerate every process once, hash the executables, print the scan and exit.
    #[arg(long)]
    once: bool,
    /// Serve the agent on this socket (normally started by daemoneye-agent, not by hand).
    /// Run as root, procmond drops to collector.user once the socket is open.
    #[arg(long, value_name = "PATH", conflicts_with = "once")]
    socket: Option<PathBuf>,
    /// Data directory (with --socket).
    #[arg(long, value_name = "DIR", requires = "socket")]
    data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Configuration file, read after /etc/daemoneye/config.toml and the user's file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Largest executable to hash, in bytes (collection.hash_max_bytes).
    #[arg(long, value_name = "BYTES")]
    hash_max_bytes: Option<u64>,
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
        ["warn", "info", "debug"],
    );
    let mut overrides = Overrides::default();
    if let Some(bytes) = args.hash_max_bytes {
        overrides.set("collection.hash_max_bytes", bytes);
    }
    let config = match config::load(&ConfigSources::standard(args.config.clone()), &overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("procmond: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(socket) = &args.socket {
        if let Some(dir) = &args.data_dir {
            // Nothing is kept there yet; the audit ledger will be.
            tracing::debug!(data_dir = %dir.display(), "data directory");
        }
        return match serve(socket, &config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("procmond: {err:#}");
                ExitCode::from(1)
            }
        };
    }
    match run(&args, CollectorOptions::from_config(&config.collection)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("procmond: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args, options: CollectorOptions) -> anyhow::Result<()> {
    for column in procmond::UNSEEN_COLUMNS {
        tracing::info!(
            column,
            "not available on this platform; reported as unknown"
        );
    }
    let mut collector = Collector::new(options).context("starting the collector")?;
    let scan = collector.scan();
    tracing::info!(
        scan_id = scan.summary.scan_id,
        processes = scan.summary.process_count,
        errors = scan.summary.error_count,
        hashed_files = scan.hashed_files,
        elapsed_ms = scan.summary.finished_at - scan.summary.started_at,
        "scan complete"
    );
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    output::write_scan(&scan, args.format, &mut out).context("writing the scan to stdout")?;
    out.flush().context("writing the scan to stdout")?;
    Ok(())
}

/// Serves the agent: open the socket, drop privileges, then answer until the agent goes away.
///
/// The order matters. The socket is created while still root, in the agent's directory, which
/// the dropped user cannot write. The privilege drop happens while procmond has one thread,
/// because capabilities belong to threads: the runtime here is single-threaded, and the scan
/// threads (tokio's blocking pool, rayon) start after the drop and inherit its reduced sets.
fn serve(socket: &Path, config: &Config) -> anyhow::Result<()> {
    let parent = nix::unistd::getppid();
    let starting_uid = nix::unistd::getuid().as_raw();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = {
        let _entered = runtime.enter();
        // The uid procmond was started as is its agent's: the agent starts it.
        transport::listen(socket, PeerPolicy::new(starting_uid))
            .context("opening the agent socket")?
    };
    let privileges = privilege::drop_privileges(config.collector.user.as_deref())
        .context("refusing to run: the privilege drop failed")?;
    match &privileges {
        PrivilegeOutcome::Dropped { user, uid, gid } => tracing::info!(
            user,
            uid,
            gid,
            "dropped privileges, keeping CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"
        ),
        PrivilegeOutcome::NotRoot { uid } => tracing::info!(
            uid,
            "not started as root: collecting what this user can see"
        ),
    }
    let options = CollectorOptions::from_config(&config.collection);
    let collector = Collector::new(options.clone()).context("starting the collector")?;
    let limits = Limits {
        max_frame_bytes: config.ipc.max_frame_bytes,
        ..Limits::default()
    };
    let state = Arc::new(ServerState::new(collector, options, limits, privileges));
    tracing::info!(socket = %socket.display(), "serving the agent");
    runtime.block_on(server::serve(listener, state, stop_signal(parent)));
    Ok(())
}

/// Completes on SIGTERM or SIGINT, or when the process that started procmond (its agent) is
/// gone: procmond is then re-parented, so its parent pid changes.
async fn stop_signal(parent: nix::unistd::Pid) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot watch for SIGTERM and SIGINT; stopping");
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                return;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                return;
            }
            _ = tick.tick() => {
                if nix::unistd::getppid() != parent {
                    tracing::warn!(agent_pid = parent.as_raw(), "the agent went away: stopping");
                    return;
                }
            }
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
