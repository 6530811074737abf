//! The agent's main loop: sockets, supervisor, scans, shutdown.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use daemoneye_lib::config::{Config, HostProblem};
use daemoneye_lib::ipc::Limits;
use daemoneye_lib::ipc::transport::{self, PeerPolicy};
use daemoneye_lib::ledger::entry::Body;
use daemoneye_lib::text;
use tokio::sync::{mpsc, watch};

use crate::audit;
use crate::backoff::Backoff;
use crate::bundle_service::{self, BundleService, ConfigBase, ConfigState};
use crate::bundles::{BundleSettings, Bundles};
use crate::control::health::StoreHealth;
use crate::control::{self, AgentState};
use crate::detector;
use crate::outbox::build::Context as SinkContext;
use crate::outbox::deliver::{self, Loops, Note, Outbox, Timing};
use crate::output::{AlertFormat, print_alerts};
use crate::pidfile::PidFile;
use crate::pipeline::{Pipeline, PipelineHandle, Raised};
use crate::store;
use crate::supervisor::{Settings, Supervisor, Unavailable};

/// Raised batches queued for delivery before the pipeline waits for the printer.
const RAISED_QUEUE: usize = 64;

/// Everything the agent needs to run, resolved from flags and configuration.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The merged configuration.
    pub config: Config,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The procmond executable.
    pub procmond: PathBuf,
    /// Extra arguments for procmond (`--config`, logging flags).
    pub procmond_args: Vec<OsString>,
    /// Time between scans.
    pub interval: Duration,
    /// One scan, one detection pass, then exit.
    pub once: bool,
    /// How alerts are printed on stdout.
    pub format: AlertFormat,
    /// How the configuration was loaded, to load it again over a new config bundle.
    pub config_base: ConfigBase,
    /// What the active config bundle's layer did at start-up.
    pub config_state: ConfigState,
}

/// Finds procmond: the flag, else beside this executable, else on `$PATH`.
pub fn find_procmond(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path);
    }
    let exe = std::env::current_exe().context("finding the agent's own executable")?;
    if let Some(beside) = exe.parent().map(|dir| dir.join("procmond"))
        && beside.is_file()
    {
        return Ok(beside);
    }
    if let Some(found) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("procmond"))
        .find(|candidate| candidate.is_file())
    {
        return Ok(found);
    }
    anyhow::bail!(
        "procmond not found beside {} nor on $PATH; name it with --procmond PATH",
        exe.display()
    )
}

/// Runs the agent until SIGTERM or SIGINT (or after one scan with `once`).
///
/// Tasks and what they own:
///
/// - the supervisor ([`Supervisor`]) owns procmond and the link to it;
/// - the pipeline thread ([`PipelineHandle`]) owns the rules and writes the store;
/// - the pipeline enqueues every alert it raises for every sink in the scan's own write (the
///   persistent outbox) and wakes the sinks' loops ([`Outbox`], one thread per sink), which
///   deliver, retry, dead-letter and report deliveries and drops ([`Note`]);
/// - the ledger tasks record the alerts raised ([`Raised`]) and the outbox's notes, in
///   batches;
/// - the control server ([`control`]) answers the CLI from the shared store, the published
///   rule set and the supervisor's status;
/// - this function runs the scan loop: ask procmond, hand the scan to the pipeline.
pub async fn run(options: AgentOptions) -> anyhow::Result<()> {
    let run_dir = options.data_dir.join("run");
    transport::prepare_run_dir(&options.data_dir).context("preparing the data directory")?;
    transport::prepare_run_dir(&run_dir).context("preparing the socket directory")?;
    let (store, store_health, pipeline, bundles, gates) = {
        let config = options.config.clone();
        let data_dir = options.data_dir.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let opened = store::open(&data_dir, now_ms())?;
            let health = StoreHealth {
                path: opened.path,
                recovered: opened.recovered,
            };
            let store = Arc::new(opened.store);
            let bundles = Bundles::open(&data_dir, BundleSettings::from_config(&config))
                .context("opening the bundle state")?;
            let (detector, gates) = bundle_service::build(&config, &bundles)?;
            let pipeline = Pipeline::new(&config, Arc::clone(&store), detector)?;
            Ok((store, health, pipeline, bundles, gates))
        })
        .await
        .context("opening the store")??
    };
    // Written while this agent holds the store's lock, removed when `run` returns.
    let pid_file = match PidFile::write(&options.data_dir) {
        Ok(file) => Some(file),
        Err(err) => {
            tracing::warn!(error = %err, "cannot write the pid file; a second agent will not be able to name this one");
            None
        }
    };
    let sink_context = SinkContext {
        stdout_format: options.format,
    };
    let sinks =
        deliver::build_all(&options.config, &sink_context).context("invalid configuration")?;
    let printed_once = options.once
        && !sinks
            .iter()
            .any(|(spec, _)| spec.kind == daemoneye_lib::config::SinkKind::Stdout);
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let outbox = Arc::new(Outbox::new(
        sinks.iter().map(|(spec, _)| spec.name.clone()).collect(),
        deliver::limits(&options.config),
        notes_tx,
    ));
    {
        let store = Arc::clone(&store);
        let names: Vec<String> = outbox
            .sink_names()
            .into_iter()
            .map(ToOwned::to_owned)
            .collect();
        let forgotten =
            tokio::task::spawn_blocking(move || deliver::forget_removed(&store, &names, now_ms()))
                .await
                .context("reading the outbox")?
                .context("dropping the deliveries of removed sinks")?;
        outbox.note_dropped(forgotten);
    }
    let mut pipeline = pipeline;
    pipeline.set_outbox(Arc::clone(&outbox));
    let (raised_tx, raised_rx) = mpsc::channel(RAISED_QUEUE);
    let (pipeline, pipeline_thread) = PipelineHandle::spawn(pipeline, raised_tx)?;
    let limits = Limits {
        max_frame_bytes: options.config.ipc.max_frame_bytes,
        ..Limits::default()
    };
    let policy = PeerPolicy::for_current_user();
    let control_socket = transport::agent_socket(&options.data_dir);
    let listener = transport::listen(&control_socket, policy.clone()).with_context(|| {
        format!(
            "opening {} (is another agent running on this data directory?)",
            control_socket.display()
        )
    })?;

    // Exec events from every procmond in turn; `--once` runs one scan and asks for none.
    let (exec_tx, exec_rx) = mpsc::channel(crate::link::PUSH_QUEUE);
    let exec_status = Arc::new(crate::exec::ExecStatus::default());
    let collector_socket = transport::collector_socket(&options.data_dir);
    let collector_socket_path = collector_socket.clone();
    let mut args: Vec<OsString> = vec![
        "--socket".into(),
        collector_socket.clone().into(),
        "--data-dir".into(),
        options.data_dir.clone().into(),
    ];
    args.extend(options.procmond_args.iter().cloned());
    let collection = &options.config.collection;
    let settings = Settings {
        procmond: options.procmond.clone(),
        args,
        socket: collector_socket,
        health_interval: options.config.collector.health_interval.get(),
        backoff: Backoff {
            min: options.config.collector.restart_backoff_min.get(),
            max: options.config.collector.restart_backoff_max.get(),
        },
        limits,
        policy,
        startup_timeout: Duration::from_secs(10),
        // A scan may spend the hashing budget and then some on reading /proc; one that takes
        // longer than a few intervals more is stalled: procmond is replaced (a frozen one is
        // caught sooner, by the health checks beside the scan).
        scan_timeout: scan_deadline(collection.hash_time_budget.get(), collection.interval.get()),
        pushes: (!options.once).then(|| exec_tx.clone()),
    };
    let signal = stop_signal()?;
    tokio::pin!(signal);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (serve_stop_tx, serve_stop_rx) = watch::channel(false);
    let (supervisor, supervising) = Supervisor::start(settings, stop_rx.clone());
    let recovered = store_health.recovered.clone();
    let store_path = store_health.path.clone();
    let bundles = Arc::new(BundleService::new(
        bundles,
        options.config_base.clone(),
        options.config.clone(),
        options.config_state.clone(),
        gates,
        pipeline.clone(),
        supervisor.clone(),
    ));
    let loops = Loops {
        store: Arc::clone(&store),
        timing: Timing::from_config(&options.config),
        gate: {
            let bundles = Arc::clone(&bundles);
            Arc::new(move |feature: &str| {
                let view = bundles.health_view();
                view.license.allows(feature, view.now)
            })
        },
    };
    let mut sinks = Some(sinks);
    if !options.once
        && let Some(sinks) = sinks.take()
    {
        outbox.start(sinks, &loops).context("starting the sinks")?;
    }
    let state = Arc::new(AgentState::new(control::Parts {
        supervisor: supervisor.clone(),
        limits,
        outbox: Arc::clone(&outbox),
        site: options.config.site.id.as_ref().map(ToString::to_string),
        store,
        store_health,
        pipeline: pipeline.clone(),
        query_limits: detector::limits(&options.config),
        interval: options.interval,
        bundles: Arc::clone(&bundles),
        exec: Arc::clone(&exec_status),
    }));
    drop(exec_tx);
    let consuming_exec = tokio::spawn(crate::exec::consume(
        exec_rx,
        pipeline.clone(),
        Arc::clone(&exec_status),
    ));
    let serving = tokio::spawn(control::serve(
        listener,
        Arc::clone(&state),
        stopped(serve_stop_rx),
    ));
    let (notes_stop_tx, notes_stop_rx) = watch::channel(false);
    let recording_notes = tokio::spawn(record_notes(notes_rx, supervisor.clone(), notes_stop_rx));
    let delivering = tokio::spawn(record_raised(
        raised_rx,
        supervisor.clone(),
        printed_once.then_some(options.format),
    ));
    let watching_inbox = (!options.once).then(|| {
        tokio::spawn(watch_inbox(
            Arc::clone(&bundles),
            options.config.bundles.inbox_interval.get(),
            stop_rx.clone(),
        ))
    });
    tracing::info!(
        data_dir = %options.data_dir.display(),
        socket = %control_socket.display(),
        interval_ms = u64::try_from(options.interval.as_millis()).unwrap_or(u64::MAX),
        "agent started"
    );

    // The first scan waits for procmond rather than failing while it starts; if it never
    // answers, the scan loop reports that and the supervisor keeps trying.
    let mut tick = tokio::time::interval(options.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    // Every wait below, a scan included, gives way to a stop signal.
    tokio::select! {
        () = &mut signal => {}
        _ = supervisor.wait_until_running(Duration::from_secs(10)) => {
            audit::record_start(&supervisor, &options.config, &options.data_dir).await;
            if let Some(recovered) = &recovered {
                audit::record_store_recovered(&supervisor, &store_path, recovered).await;
            }
            loop {
            tokio::select! {
                () = &mut signal => break,
                _ = tick.tick() => tokio::select! {
                    () = &mut signal => break,
                    outcome = scan_once(&supervisor, &state, &pipeline) => {
                        if options.once {
                            result = outcome;
                            break;
                        }
                    }
                },
            }
            }
        },
    }
    let reason = if options.once {
        "--once finished"
    } else {
        "stopped by a signal"
    };
    // The pipeline finishes the scan it has, then stops; the ledger task then sees its
    // queue close once it has recorded every alert raised. `--once` makes its one delivery
    // attempt now; the loops of a running agent finish the batch they hold.
    consuming_exec.abort();
    pipeline.stop().await;
    let _ = delivering.await;
    let _ = tokio::task::spawn_blocking(move || pipeline_thread.join()).await;
    {
        let outbox = Arc::clone(&outbox);
        let once = sinks.take();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(sinks) = once
                && let Err(err) = outbox.run_once(sinks, &loops)
            {
                tracing::error!(error = %err, "cannot start the sinks");
            }
            outbox.stop();
        })
        .await;
    }
    let _ = notes_stop_tx.send(true);
    let _ = recording_notes.await;
    audit::record(
        &supervisor,
        Body::AgentStopped {
            reason: reason.to_owned(),
        },
    )
    .await;
    // The receivers only ever wait for this; if they are gone there is nothing to tell.
    let _ = serve_stop_tx.send(true);
    let _ = stop_tx.send(true);
    let _ = supervising.await;
    let _ = serving.await;
    if let Some(watching) = watching_inbox {
        let _ = watching.await;
    }
    // procmond has stopped; its socket, which it can no longer unlink itself, goes too.
    if let Err(err) = transport::remove_stale(&collector_socket_path) {
        tracing::warn!(error = %err, "cannot remove procmond's socket");
    }
    drop(pid_file);
    tracing::info!("agent stopped");
    result
}

/// How long a scan may take before procmond counts as stalled: the hashing budget plus three
/// intervals, and never less than the budget plus 30 s (a short test interval must not turn a
/// busy host's scans into stalls).
pub fn scan_deadline(hash_budget: Duration, interval: Duration) -> Duration {
    hash_budget + (interval.saturating_mul(3)).max(Duration::from_secs(30))
}

/// Records raised alerts in the ledger, one batch per scan (their delivery is the outbox's).
/// `--once` with no stdout sink also prints them, as its contract says.
async fn record_raised(
    mut raised: mpsc::Receiver<Raised>,
    supervisor: Supervisor,
    print: Option<AlertFormat>,
) {
    while let Some(batch) = raised.recv().await {
        if let Some(format) = print {
            print_alerts(&batch.alerts, format);
        }
        audit::record_alerts(&supervisor, &batch.alerts).await;
    }
}

/// Records the outbox's deliveries and drops in the ledger, in batches: whatever arrived
/// while the previous batch was being written goes in the next (procmond takes up to 256
/// entries with one `fdatasync`). On `stop`, what is queued is recorded, then it ends.
async fn record_notes(
    mut notes: mpsc::UnboundedReceiver<Note>,
    supervisor: Supervisor,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            note = notes.recv() => note,
            result = stop.wait_for(|stop| *stop) => { drop(result); None }
        };
        let mut batch: Vec<Note> = first.into_iter().collect();
        while batch.len() < 256
            && let Ok(note) = notes.try_recv()
        {
            batch.push(note);
        }
        if batch.is_empty() {
            return;
        }
        audit::record_batch(&supervisor, &audit::outbox_bodies(&batch)).await;
    }
}

/// Looks at `<data_dir>/inbox/` every `interval` until `stop` (and re-judges the license
/// gate of rule packs, which time alone can close).
async fn watch_inbox(
    bundles: Arc<BundleService>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopped = tokio::select! {
            result = stop.wait_for(|stop| *stop) => { drop(result); true }
            _ = tick.tick() => false,
        };
        if stopped {
            return;
        }
        bundles.poll().await;
    }
}

/// One scan: ask procmond, then hand the scan to the pipeline. An error is logged and
/// returned (the continuous loop goes on; `--once` exits with it).
async fn scan_once(
    supervisor: &Supervisor,
    state: &AgentState,
    pipeline: &PipelineHandle,
) -> anyhow::Result<()> {
    let scan = match supervisor.enumerate().await {
        Ok(scan) => scan,
        Err(err) => {
            if matches!(err, Unavailable::Down(_)) {
                tracing::info!(error = %err, "scan skipped");
            } else {
                tracing::warn!(error = %err, "scan failed");
            }
            state.scans().last_error = Some(err.to_string());
            return Err(anyhow::anyhow!("scan failed: {err}"));
        }
    };
    let processes = scan.records.len() as u64;
    let finished_at = scan.summary.finished_at;
    tracing::info!(
        procmond_scan_id = scan.summary.scan_id,
        processes,
        errors = scan.summary.error_count,
        hashed_files = scan.hashed_files,
        elapsed_ms = scan.summary.finished_at - scan.summary.started_at,
        "scan received"
    );
    let outcome = match pipeline.process(scan.summary, scan.records, now_ms()).await {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::error!(
                error = text::error_chain(err.as_ref()),
                "scan not processed"
            );
            state.scans().last_error = Some(text::error_chain(err.as_ref()));
            return Err(err);
        }
    };
    tracing::info!(
        scan_id = outcome.scan_id,
        started = outcome.started,
        exited = outcome.exited,
        alerts = outcome.raised.len(),
        suppressed = outcome.suppressed,
        degraded_rules = outcome.degraded.len(),
        detection_ms = outcome.detection_time.as_secs_f64() * 1000.0,
        expired_scans = outcome.expired_scans,
        rule_set = outcome.generation,
        "scan processed"
    );
    let mut stats = state.scans();
    stats.completed += 1;
    stats.last_at = Some(finished_at);
    stats.last_processes = Some(processes);
    stats.last_error = None;
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A future that completes on SIGTERM or SIGINT.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    // The handlers are installed here, at once, not when the future is first polled: a SIGTERM
    // that arrives while the agent waits for procmond must not find the default action.
    let mut term = signal(SignalKind::terminate()).context("watching for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("watching for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
    })
}

/// `collector.user` checked against this host's user database, for
/// [`config::load_checked`](daemoneye_lib::config::load_checked): a user that does not exist,
/// or whose uid or primary gid is root's, is a configuration error at the agent's start rather
/// than a procmond that fails and is restarted forever. (The name `root` itself is refused by
/// the configuration's own validation.)
pub fn collector_user_problem(config: &Config) -> HostProblem {
    let name = config.collector.user.as_deref()?;
    let reason = match nix::unistd::User::from_name(name) {
        Ok(Some(user)) if user.uid.is_root() || user.gid.as_raw() == 0 => format!(
            "user {name:?} has uid {} and primary gid {}, and root's may not be kept: the \
             collector must drop to an unprivileged user",
            user.uid, user.gid
        ),
        Ok(Some(_)) => return None,
        Ok(None) => format!("no user {name:?} on this host"),
        Err(err) => format!("looking up user {name:?} failed: {err}"),
    };
    Some(("collector.user", reason))
}

/// The data directory the agent uses for `flag` (INTERFACE.md's rule).
pub fn data_dir(flag: Option<PathBuf>) -> PathBuf {
    use daemoneye_lib::config::{DataDirInputs, resolve_data_dir};
    resolve_data_dir(&DataDirInputs::from_env(
        flag,
        nix::unistd::geteuid().is_root(),
    ))
}
