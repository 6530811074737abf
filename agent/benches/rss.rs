//! Scenario: the release agent's memory over a long run on a host with many processes.
//!
//! ```text
//! cargo build --release
//! cargo bench -p daemoneye-agent --bench rss -- [--processes N] [--minutes M] \
//!     [--interval-secs S] [--sample-secs T]
//! ```
//!
//! Run it as root (procmond drops to `daemon`, which only root can do). The target: the agent's
//! RSS stays under 60 MB over a long run with 10,000 processes.
//!
//! 1. Checks the limits that many processes run into (`ulimit -u`, `kernel.pid_max`,
//!    `kernel.threads-max`), then starts N idle processes (`sleep`, default 10,000) and
//!    records each one's PID and start time.
//! 2. Starts the release binary `target/release/daemoneye-agent` (it finds
//!    `target/release/procmond` beside it; build both with `cargo build --release` first: this
//!    bench does not build them, so a stale build measures stale code) with a private temporary
//!    directory: data directory `<tmp>/data`, and `<tmp>/config.toml` setting
//!    `[collector] user = "daemon"` and a scan every S seconds (default 2). Flags:
//!    `--format json` with stdout to /dev/null, `--log-format json` with `RUST_LOG=info`, the
//!    log read from its stderr. `/etc/daemoneye/config.toml` and the user's configuration file
//!    still apply if they exist.
//! 3. Every T seconds (default 5) for M minutes (default 10), prints the time, the scans
//!    processed (lines `scan processed` in the log), the processes in the last scan, the
//!    detection time of the last scan, the agent's VmRSS, its anonymous part (RssAnon) and
//!    VmHWM, and procmond's VmRSS (procmond is found among the agent's children each time, so a
//!    restart is followed).
//! 4. Prints min / max / final of both RSS columns (the agent's also from the first processed
//!    scan on, so that start-up does not hide growth) and the agent's final peak (VmHWM).
//! 5. Stops exactly what it started, also on error, panic, SIGINT, SIGTERM or SIGHUP (a guard,
//!    and signal handlers that end the sampling): SIGTERM to the agent (which stops its
//!    procmond), SIGKILL after 10 s; procmond killed only if its PID still has the start time
//!    seen while sampling; then each idle process killed and reaped through its own handle,
//!    after checking that its PID still has the recorded start time.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, getrlimit};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The agent's RSS target, in bytes.
const TARGET_RSS: u64 = 60 * 1000 * 1000;
/// How long the agent has to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

fn arg_value(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: a whole number, not {v:?}"))
        })
}

/// The start time of `pid` in clock ticks after boot (field 22 of `/proc/PID/stat`).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Fields of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`, `RssAnon`).
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss: u64,
    hwm: u64,
    anon: u64,
}

fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut out = Memory::default();
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let kib = || -> Option<u64> { value.trim().strip_suffix(" kB")?.trim().parse().ok() };
        match key {
            "VmRSS" => out.rss = kib()? * 1024,
            "VmHWM" => out.hwm = kib()? * 1024,
            "RssAnon" => out.anon = kib()? * 1024,
            _ => {}
        }
    }
    Some(out)
}

/// The agent's child named procmond, with its start time.
fn procmond_of(agent: u32) -> Option<(u32, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{agent}/task")).ok()?;
    for task in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim_end() == "procmond"
                && let Some(ticks) = start_ticks(pid)
            {
                return Some((pid, ticks));
            }
        }
    }
    None
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Processes on the machine now (numeric entries of /proc).
fn process_count() -> usize {
    std::fs::read_dir("/proc").map_or(0, |dir| {
        dir.flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .count()
    })
}

/// What the agent's log said so far.
#[derive(Debug, Default)]
struct Log {
    scans_processed: u64,
    last_processes: Option<u64>,
    last_detection_ms: Option<f64>,
    warnings: u64,
    errors: u64,
    /// The last warning or error lines, for the report.
    recent_problems: Vec<String>,
}

fn follow_log(stderr: std::process::ChildStderr, log: Arc<Mutex<Log>>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let mut log = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            log.recent_problems.push(line);
            continue;
        };
        let fields = &entry["fields"];
        match fields["message"].as_str() {
            Some("scan processed") => {
                log.scans_processed += 1;
                log.last_detection_ms = fields["detection_ms"].as_f64();
            }
            Some("scan received") => log.last_processes = fields["processes"].as_u64(),
            _ => {}
        }
        match entry["level"].as_str() {
            Some("WARN") => log.warnings += 1,
            Some("ERROR") => log.errors += 1,
            _ => continue,
        }
        log.recent_problems.push(line);
        if log.recent_problems.len() > 10 {
            log.recent_problems.remove(0);
        }
    }
}

struct Idle {
    child: Child,
    start_ticks: Option<u64>,
}

/// Everything this bench started; dropping it stops them (also while unwinding a panic).
#[derive(Default)]
struct Started {
    agent: Option<Child>,
    /// procmond's PID and start time, as last seen among the agent's children.
    procmond: Option<(u32, u64)>,
    idle: Vec<Idle>,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            if let Ok(pid) = i32::try_from(agent.id()) {
                // The child is not reaped yet, so its PID is still its own.
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let asked = Instant::now();
            loop {
                match agent.try_wait() {
                    Ok(Some(status)) => {
                        eprintln!("agent stopped: {status}");
                        break;
                    }
                    Ok(None) if asked.elapsed() < STOP_GRACE => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        eprintln!("agent did not stop within {STOP_GRACE:?}: killing it");
                        let _ = agent.kill();
                        let _ = agent.wait();
                        break;
                    }
                }
            }
        }
        if let Some((pid, ticks)) = self.procmond.take() {
            // procmond exits with its agent; give it the same grace, then kill it if the PID
            // still names the procmond that was seen (same start time).
            let asked = Instant::now();
            while start_ticks(pid) == Some(ticks) && asked.elapsed() < STOP_GRACE {
                std::thread::sleep(Duration::from_millis(50));
            }
            if start_ticks(pid) == Some(ticks)
                && let Ok(raw) = i32::try_from(pid)
            {
                eprintln!("procmond {pid} outlived its agent: killing it");
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
        let total = self.idle.len();
        let mut mismatched = 0;
        for mut p in self.idle.drain(..) {
            if start_ticks(p.child.id()) != p.start_ticks {
                mismatched += 1;
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if total > 0 {
            eprintln!("killed {total} idle processes ({mismatched} with an unexpected start time)");
        }
    }
}

/// min, max, final.
fn spread(values: &[u64]) -> Option<(u64, u64, u64)> {
    Some((
        *values.iter().min()?,
        *values.iter().max()?,
        *values.last()?,
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; a plain `cargo test` run of benches passes nothing useful.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    if let Err(err) = run(&args) {
        eprintln!("rss: {err}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let n = usize::try_from(arg_value(args, "--processes", 10_000)).map_err(|e| e.to_string())?;
    let minutes = arg_value(args, "--minutes", 10);
    let interval = arg_value(args, "--interval-secs", 2);
    let sample = Duration::from_secs(arg_value(args, "--sample-secs", 5).max(1));
    if interval == 0 {
        return Err("--interval-secs must be at least 1".to_owned());
    }

    // SIGINT, SIGTERM and SIGHUP end the sampling early, and the guard below stops everything.
    // tokio installs handlers (reset to the default in the children at exec); blocking the
    // signals instead would leave them blocked in every child, the agent included.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a tokio runtime: {e}"))?;
        let (installed_tx, installed_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let streams = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                );
                let (Ok(mut int), Ok(mut term), Ok(mut hup)) = streams else {
                    let _ = installed_tx.send(false);
                    return;
                };
                let _ = installed_tx.send(true);
                let name = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    _ = hup.recv() => "SIGHUP",
                };
                eprintln!("{name}: stopping");
                stop.store(true, Ordering::Relaxed);
            });
        });
        if installed_rx.recv() != Ok(true) {
            return Err("installing the signal handlers failed".to_owned());
        }
    }

    if !nix::unistd::geteuid().is_root() {
        return Err("run as root: the agent starts procmond, which drops to `daemon`".to_owned());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let release = target_dir.join("release");
    let agent_exe = release.join("daemoneye-agent");
    for exe in [&agent_exe, &release.join("procmond")] {
        if !exe.is_file() {
            return Err(format!(
                "{} not found: run `cargo build --release` first (this bench measures the \
                 release binaries and does not build them)",
                exe.display()
            ));
        }
    }

    let (nproc_soft, _) =
        getrlimit(Resource::RLIMIT_NPROC).map_err(|e| format!("getrlimit: {e}"))?;
    let pid_max = read_number("/proc/sys/kernel/pid_max");
    let threads_max = read_number("/proc/sys/kernel/threads-max");
    let present = process_count();
    eprintln!(
        "ulimit -u {}, kernel.pid_max {}, kernel.threads-max {}, processes now {present}",
        if nproc_soft == u64::MAX {
            "unlimited".to_owned()
        } else {
            nproc_soft.to_string()
        },
        pid_max.map_or("?".to_owned(), |v| v.to_string()),
        threads_max.map_or("?".to_owned(), |v| v.to_string()),
    );
    // Room for the idle processes plus the agent's and procmond's threads and the rest.
    let needed = (present + n + 200) as u64;
    if nproc_soft != u64::MAX && nproc_soft < needed {
        return Err(format!(
            "ulimit -u is {nproc_soft}, fewer than the {needed} processes this run needs"
        ));
    }
    for (name, limit) in [
        ("kernel.pid_max", pid_max),
        ("kernel.threads-max", threads_max),
    ] {
        if let Some(limit) = limit
            && limit < needed
        {
            return Err(format!(
                "{name} is {limit}, fewer than the {needed} this run needs"
            ));
        }
    }

    let dir = tempfile::Builder::new()
        .prefix("daemoneye-rss.")
        .tempdir()
        .map_err(|e| format!("a temporary directory: {e}"))?;
    let data_dir = dir.path().join("data");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[collection]\ninterval = \"{interval}s\"\n\n[collector]\nuser = \"daemon\"\n"),
    )
    .map_err(|e| format!("writing {}: {e}", config.display()))?;

    let mut started = Started::default();
    eprintln!("starting {n} idle processes");
    let clock = Instant::now();
    started.idle.reserve(n);
    for _ in 0..n {
        if stop.load(Ordering::Relaxed) {
            return Err("stopped while starting the idle processes".to_owned());
        }
        let child = Command::new("sleep")
            .arg("100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning sleep: {e}"))?;
        started.idle.push(Idle {
            child,
            start_ticks: None,
        });
    }
    for p in &mut started.idle {
        p.start_ticks = start_ticks(p.child.id());
    }
    eprintln!(
        "started in {:.1?}; {} processes on the machine",
        clock.elapsed(),
        process_count()
    );

    let mut agent = Command::new(&agent_exe)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--format", "json", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", agent_exe.display()))?;
    let agent_pid = agent.id();
    let stderr = agent.stderr.take();
    started.agent = Some(agent);
    let log = Arc::new(Mutex::new(Log::default()));
    if let Some(stderr) = stderr {
        let log = Arc::clone(&log);
        std::thread::spawn(move || follow_log(stderr, log));
    }
    eprintln!(
        "agent {agent_pid} started: {} --config {} --data-dir {} (scan every {interval} s), \
         sampling every {} s for {minutes} min",
        agent_exe.display(),
        config.display(),
        data_dir.display(),
        sample.as_secs()
    );

    println!(
        "{:>7}  {:>6}  {:>9}  {:>9}  {:>10}  {:>10}  {:>10}  {:>13}",
        "time",
        "scans",
        "processes",
        "detect ms",
        "agent RSS",
        "agent anon",
        "agent HWM",
        "procmond RSS"
    );
    let run_for = Duration::from_secs(minutes * 60);
    let began = Instant::now();
    let mut agent_rss = Vec::new();
    let mut agent_rss_after_first_scan = Vec::new();
    let mut procmond_rss = Vec::new();
    let mut peak = 0;
    let mut next = began + Duration::from_secs(1);
    while Instant::now() < next {
        std::thread::sleep(Duration::from_millis(100));
    }
    loop {
        if let Some(agent) = started.agent.as_mut()
            && let Ok(Some(status)) = agent.try_wait()
        {
            let log = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return Err(format!(
                "the agent exited early ({status}); its last problems:\n{}",
                log.recent_problems.join("\n")
            ));
        }
        let Some(agent_mem) = memory(agent_pid) else {
            return Err("the agent's /proc entry is gone".to_owned());
        };
        let procmond = procmond_of(agent_pid);
        if procmond.is_some() {
            started.procmond = procmond;
        }
        let procmond_mem = procmond.and_then(|(pid, _)| memory(pid));
        let (scans, processes, detect) = {
            let log = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                log.scans_processed,
                log.last_processes,
                log.last_detection_ms,
            )
        };
        agent_rss.push(agent_mem.rss);
        if scans > 0 {
            agent_rss_after_first_scan.push(agent_mem.rss);
        }
        if let Some(m) = procmond_mem {
            procmond_rss.push(m.rss);
        }
        peak = peak.max(agent_mem.hwm);
        let elapsed = began.elapsed().as_secs();
        println!(
            "{:>4}:{:02}  {scans:>6}  {:>9}  {:>9}  {:>6.1} MiB  {:>6.1} MiB  {:>6.1} MiB  {:>9}",
            elapsed / 60,
            elapsed % 60,
            processes.map_or("-".to_owned(), |p| p.to_string()),
            detect.map_or("-".to_owned(), |d| format!("{d:.1}")),
            mib(agent_mem.rss),
            mib(agent_mem.anon),
            mib(agent_mem.hwm),
            procmond_mem.map_or("-".to_owned(), |m| format!("{:.1} MiB", mib(m.rss))),
        );
        if began.elapsed() >= run_for {
            break;
        }
        next += sample;
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(
                Duration::from_millis(100).min(next.saturating_duration_since(Instant::now())),
            );
        }
        if stop.load(Ordering::Relaxed) {
            eprintln!("stopped early");
            break;
        }
    }
    // One last look at the peak, after the last sample.
    if let Some(m) = memory(agent_pid) {
        peak = peak.max(m.hwm);
    }

    let log = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    println!();
    println!(
        "{} processes on the machine ({n} idle started by this bench); {} scans processed in \
         {:.1} min, scan every {interval} s; log: {} warnings, {} errors",
        process_count(),
        log.scans_processed,
        began.elapsed().as_secs_f64() / 60.0,
        log.warnings,
        log.errors
    );
    let line = |label: &str, values: &[u64]| {
        if let Some((min, max, last)) = spread(values) {
            println!(
                "{label:<38} min {:>6.1} MiB  max {:>6.1} MiB  final {:>6.1} MiB",
                mib(min),
                mib(max),
                mib(last)
            );
        }
    };
    line("agent RSS", &agent_rss);
    line(
        "agent RSS from the first scan on",
        &agent_rss_after_first_scan,
    );
    line("procmond RSS", &procmond_rss);
    println!(
        "agent peak RSS (VmHWM): {:.1} MiB ({:.1} MB); target under {} MB: {}",
        mib(peak),
        peak as f64 / 1e6,
        TARGET_RSS / 1_000_000,
        if peak < TARGET_RSS { "met" } else { "NOT met" }
    );
    if !log.recent_problems.is_empty() {
        println!("last warnings and errors in the agent's log:");
        for problem in &log.recent_problems {
            println!("  {problem}");
        }
    }
    drop(log);
    drop(started);
    // The data directory is removed with `dir` once the agent has stopped.
    drop(dir);
    Ok(())
}
