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
use daemoneye_lib::ledger::entry::Body;
use daemoneye_lib::logging::{self, LogFormat};
use daemoneye_lib::text;
use procmond::audit::{self, AuditLog};
use procmond::exec_events::ExecEvents;
use procmond::ledger_check;
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
    /// Data directory (with --socket): the audit ledger is kept in DIR/ledger.
    #[arg(long, value_name = "DIR", requires = "socket")]
    data_dir: Option<PathBuf>,
    /// With --once: record the scan in the audit ledger in DIR (created on first use).
    #[arg(long, value_name = "DIR", requires = "once")]
    ledger: Option<PathBuf>,
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
        return match serve(socket, &config, args.data_dir.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) if is_configuration_error(&err) => {
                eprintln!(
                    "procmond: invalid configuration (collector.user): {}",
                    text::error_chain(err.as_ref())
                );
                ExitCode::from(2)
            }
            Err(err) => {
                eprintln!("procmond: {}", text::error_chain(err.as_ref()));
                ExitCode::from(1)
            }
        };
    }
    match run(&args, &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("procmond: {}", text::error_chain(err.as_ref()));
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args, config: &Config) -> anyhow::Result<()> {
    let options = CollectorOptions::from_config(&config.collection);
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
    if let Some(dir) = &args.ledger {
        let audit = AuditLog::open(dir, &audit::settings(config));
        anyhow::ensure!(
            audit.available(),
            "the audit ledger in {} cannot be opened (see the log above)",
            dir.display()
        );
        audit.record(started());
        audit.record_scan(&scan);
        audit.close("--once finished");
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    output::write_scan(&scan, args.format, &mut out).context("writing the scan to stdout")?;
    out.flush().context("writing the scan to stdout")?;
    Ok(())
}

fn started() -> Body {
    Body::ProcmondStarted {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
    }
}

/// Serves the agent: open the socket, drop privileges, then answer until the agent goes away.
///
/// The order matters. The socket is created while still root, in the agent's directory, which
/// the dropped user cannot write. The privilege drop happens while procmond has one thread,
/// because capabilities belong to threads: the runtime here is single-threaded, and the scan
/// threads (tokio's blocking pool, rayon) start after the drop and inherit its reduced sets.
fn serve(socket: &Path, config: &Config, data_dir: Option<&Path>) -> anyhow::Result<()> {
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
    // The user comes first, on its own: a configured user that cannot be used is a
    // configuration error, reported as such, not a failure to prepare a directory.
    let target = privilege::choose_user(config.collector.user.as_deref(), data_dir)?;
    // The kernel's process events need CAP_NET_ADMIN to subscribe to, and nothing after:
    // subscribe now, while procmond may still hold it; the threads start after the drop.
    let subscription = subscribe_to_exec_events(config);
    // The ledger directory is handed to the user procmond drops to: after the drop it can
    // still write its files, and its signing key is that user's alone.
    let ledger_dir = data_dir.map(|dir| dir.join("ledger"));
    let privileges = match &target {
        Some(target) => {
            if let Some(dir) = &ledger_dir {
                privilege::give_to_collector_user(dir, target).with_context(|| {
                    format!("preparing the audit ledger directory {}", dir.display())
                })?;
            }
            privilege::drop_privileges(target)
                .context("refusing to run: the privilege drop failed")?
        }
        None => PrivilegeOutcome::NotRoot {
            uid: nix::unistd::geteuid().as_raw(),
        },
    };
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
    let audit = Arc::new(match &ledger_dir {
        Some(dir) => AuditLog::open(dir, &audit::settings(config)),
        None => AuditLog::unavailable("procmond was started without --data-dir"),
    });
    audit.record(started());
    if let PrivilegeOutcome::Dropped { user, uid, gid } = &privileges {
        audit.record(Body::PrivilegesDropped {
            user: user.clone(),
            uid: *uid,
            gid: *gid,
            effective_caps: privilege::current_state().effective_caps,
        });
    }
    let options = CollectorOptions::from_config(&config.collection);
    let exec = start_exec_events(subscription, &options, &audit);
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
    let mut collector = Collector::new(options).context("starting the collector")?;
    // While the kernel's events say what changed, scans read the rest of the processes light.
    #[cfg(target_os = "linux")]
    if let Some(changes) = exec.changes() {
        collector.scan_less_with(changes);
    }
    let limits = Limits {
        max_frame_bytes: config.ipc.max_frame_bytes,
        ..Limits::default()
    };
    let state = Arc::new(ServerState::new(
        collector,
        limits,
        privileges,
        Arc::clone(&audit),
        exec,
    ));
    let served = Arc::clone(&state);
    let checker = ledger_check::Checker::start(
        Arc::clone(&audit),
        ledger_check::CheckSettings {
            bytes_per_sec: config.ledger.verify_bytes_per_sec,
            interval: config.ledger.verify_interval.get(),
        },
    );
    tracing::info!(socket = %socket.display(), "serving the agent");
    let interval = config.ledger.checkpoint_interval.get();
    let reason = runtime.block_on(async {
        let checkpoints = tokio::spawn(checkpoint_every(Arc::clone(&audit), interval));
        let (reason_tx, reason_rx) = tokio::sync::oneshot::channel();
        let until = async move {
            let _ = reason_tx.send(stop_signal(parent).await);
        };
        server::serve(listener, state, until).await;
        checkpoints.abort();
        reason_rx.await.unwrap_or("stopped")
    });
    // A scan still running on the blocking pool is recorded before the stop entry.
    served.wait_for_scan();
    checker.stop();
    audit.close(reason);
    Ok(())
}

/// Subscribes to the kernel's exec events, or says why they are off.
#[cfg(target_os = "linux")]
fn subscribe_to_exec_events(
    config: &Config,
) -> Result<procmond::exec_events::Subscription, String> {
    if !config.collection.exec_events {
        return Err("off in the configuration (collection.exec_events = false)".to_owned());
    }
    procmond::exec_events::subscribe()
}

#[cfg(not(target_os = "linux"))]
fn subscribe_to_exec_events(_config: &Config) -> Result<std::convert::Infallible, String> {
    Err("the kernel's exec events are read on Linux only".to_owned())
}

/// Starts reading and pushing exec events over an accepted subscription.
#[cfg(target_os = "linux")]
fn start_exec_events(
    subscription: Result<procmond::exec_events::Subscription, String>,
    options: &CollectorOptions,
    audit: &Arc<AuditLog>,
) -> ExecEvents {
    let started = subscription.and_then(|subscription| {
        ExecEvents::start(subscription, options.clone(), Arc::clone(audit))
            .map_err(|err| format!("starting the exec event threads: {err}"))
    });
    match started {
        Ok(exec) => {
            tracing::info!("hearing the kernel's exec events");
            exec
        }
        Err(why) => {
            tracing::warn!(reason = %why, "exec events are off: scans alone see processes");
            ExecEvents::off(why)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn start_exec_events(
    subscription: Result<std::convert::Infallible, String>,
    _options: &CollectorOptions,
    _audit: &Arc<AuditLog>,
) -> ExecEvents {
    let Err(why) = subscription;
    ExecEvents::off(why)
}

/// Signs a ledger checkpoint every `interval` when entries were added since the last one.
async fn checkpoint_every(audit: Arc<AuditLog>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let audit = Arc::clone(&audit);
        let _ = tokio::task::spawn_blocking(move || audit.checkpoint_if_grown()).await;
    }
}

/// Completes on SIGTERM or SIGINT, or when the process that started procmond (its agent) is
/// gone: procmond is then re-parented, so its parent pid changes.
async fn stop_signal(parent: nix::unistd::Pid) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot watch for SIGTERM and SIGINT; stopping");
        return "cannot watch for signals";
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                return "SIGTERM";
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                return "SIGINT";
            }
            _ = tick.tick() => {
                if nix::unistd::getppid() != parent {
                    tracing::warn!(agent_pid = parent.as_raw(), "the agent went away: stopping");
                    return "the agent went away";
                }
            }
        }
    }
}

/// Whether `err` is about `collector.user` itself (no such user, or root's): exit code 2.
fn is_configuration_error(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<privilege::PrivilegeError>(),
        Some(
            privilege::PrivilegeError::UnknownUser { .. }
                | privilege::PrivilegeError::TargetIsRoot { .. }
        )
    )
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
