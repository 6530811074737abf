//! CPU and memory of procmond and the agent while processes execute, as a user runs them: the
//! release binaries, the default configuration (10 s scans, the built-in rules, exec events
//! on), CPU from `/proc/PID/stat` (utime + stime) and RSS from `/proc/PID/status`.
//!
//! Scenario, after a 15 s warm-up on a fresh data directory:
//! 1. idle, 30 s: the baseline;
//! 2. 100 execs a second for 60 s (`/bin/true` with a unique argument, from one thread);
//! 3. about 1,000 execs a second for 30 s (four threads at 250 a second each; the rate
//!    reached is measured and printed);
//! 4. a storm of 10,000 execs as fast as four threads start them, RSS sampled every 50 ms.
//!
//! Each phase prints the rate reached, each process's CPU in percent of one core, and its
//! largest RSS; the storm prints procmond's counts (received, pushed, lost, dropped). The
//! `/bin/true`s' own CPU is not counted. Targets (issue 15): under 5 % of one core at 100 execs
//! a second, RSS within 10 MiB of idle during the storm.
//!
//! Run as root (exec events need it): `cargo bench -p daemoneye-e2e --bench exec_rate`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use daemoneye_e2e::{Agent, rss_kib, wait_for};

fn ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn clock_ticks_per_second() -> f64 {
    let output = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

struct Pids {
    agent: u32,
    procmond: u32,
}

/// Runs `threads` spawners at `per_thread` execs a second each (0: as fast as they go) until
/// `total` execs or `secs` seconds; measures both processes meanwhile.
fn phase(label: &str, pids: &Pids, threads: usize, per_thread: f64, secs: f64, total: u64) {
    let hz = clock_ticks_per_second();
    let stop = Arc::new(AtomicBool::new(false));
    let started_count = Arc::new(AtomicU64::new(0));
    let (a0, p0, t0) = (ticks(pids.agent), ticks(pids.procmond), Instant::now());
    let spawners: Vec<_> = (0..threads)
        .map(|thread| {
            let stop = Arc::clone(&stop);
            let count = Arc::clone(&started_count);
            std::thread::spawn(move || {
                let begun = Instant::now();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && count.load(Ordering::Relaxed) < total {
                    let arg = format!("bench-{thread}-{n}");
                    if let Ok(mut child) = std::process::Command::new("/bin/true").arg(arg).spawn()
                    {
                        let _ = child.wait();
                    }
                    n += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                    if per_thread > 0.0 {
                        let due = begun + Duration::from_secs_f64(n as f64 / per_thread);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
            })
        })
        .collect();
    let (mut agent_rss, mut procmond_rss) = (0, 0);
    while t0.elapsed().as_secs_f64() < secs && started_count.load(Ordering::Relaxed) < total {
        agent_rss = agent_rss.max(rss_kib(pids.agent));
        procmond_rss = procmond_rss.max(rss_kib(pids.procmond));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for spawner in spawners {
        let _ = spawner.join();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (a1, p1) = (ticks(pids.agent), ticks(pids.procmond));
    agent_rss = agent_rss.max(rss_kib(pids.agent));
    procmond_rss = procmond_rss.max(rss_kib(pids.procmond));
    let cpu = |before: u64, after: u64| 100.0 * (after - before) as f64 / hz / elapsed;
    let execs = started_count.load(Ordering::Relaxed);
    println!(
        "{label:<28} {:>7.0} execs/s over {elapsed:>5.1} s   procmond {:>6.2} %  {:>7} KiB   \
         agent {:>6.2} %  {:>7} KiB",
        execs as f64 / elapsed,
        cpu(p0, p1),
        procmond_rss,
        cpu(a0, a1),
        agent_rss,
    );
}

fn main() {
    let agent = Agent::start("", 10.0);
    agent.wait_for_procmond();
    let health = wait_for(
        "exec events on and a first scan",
        Duration::from_secs(120),
        || {
            let health = agent.health()?;
            (health["exec_events"]["on"].as_bool()? && health["scans"]["completed"].as_u64()? >= 1)
                .then_some(health)
        },
    );
    let pids = Pids {
        agent: agent.pid(),
        procmond: u32::try_from(health["procmond"]["pid"].as_u64().expect("a pid")).unwrap(),
    };
    std::thread::sleep(Duration::from_secs(15));
    println!(
        "{} processes on the host; default configuration, 10 s scans",
        std::fs::read_dir("/proc")
            .map(|dir| {
                dir.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                })
                .count()
            })
            .unwrap_or(0)
    );
    phase("idle", &pids, 0, 0.0, 30.0, u64::MAX);
    phase("100 execs/s", &pids, 1, 100.0, 60.0, u64::MAX);
    phase("~1,000 execs/s", &pids, 4, 250.0, 30.0, u64::MAX);
    phase("storm of 10,000 execs", &pids, 4, 0.0, 600.0, 10_000);
    std::thread::sleep(Duration::from_secs(5));
    let health = agent.health().expect("health");
    println!(
        "procmond's counts after the storm: {}",
        health["exec_events"]
    );
}
