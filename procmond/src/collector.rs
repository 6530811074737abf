//! One scan of every process: enumerate, read, hash.
//!
//! On Linux, `crate::linux` lists `/proc` and reads each process from it, in parallel across
//! cores (it explains why `sysinfo` is not used for that there). On other platforms `sysinfo`
//! is the collector, and what it cannot see stays unknown (`crate::portable`).
//!
//! A scan never fails as a whole: a process that vanishes or cannot be read yields a record
//! whose unknown fields are `None`, and the problem is counted in [`ScanErrors`].
//!
//! What is skipped when nothing changed: an executable whose (device, inode, size, mtime,
//! ctime) matches the previous scan is not read again (see [`crate::hasher`]). Without exec
//! events everything else is read on every scan: a process can `chroot`, move to another
//! cgroup or change its ids at any time. With them ([`Collector::scan_less_with`]) a process
//! the events did not name is read light (`stat` and its `exe` link) except on its slot, one
//! scan in [`FULL_EVERY`]: what can change with no event is at most that many scans old.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use daemoneye_lib::config::CollectionConfig;
use daemoneye_lib::models::{ProcessRecord, ScanErrors, ScanSummary};
use rayon::prelude::*;
#[cfg(not(target_os = "linux"))]
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use crate::hasher::{FileKey, HashCache, HashOutcome, hash_file};

/// Limits of one scan.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// Executables larger than this are not hashed.
    pub hash_max_bytes: u64,
    /// Time one scan may spend hashing; what is left is hashed by the next scan.
    pub hash_time_budget: Duration,
    /// The most bytes of one command line that are kept.
    pub cmdline_max_bytes: u64,
}

impl CollectorOptions {
    /// The options a configuration asks for.
    pub fn from_config(config: &CollectionConfig) -> Self {
        Self {
            hash_max_bytes: config.hash_max_bytes,
            hash_time_budget: config.hash_time_budget.get(),
            ..Self::default()
        }
    }
}

impl Default for CollectorOptions {
    fn default() -> Self {
        Self {
            hash_max_bytes: 512 * 1024 * 1024,
            hash_time_budget: Duration::from_secs(5),
            cmdline_max_bytes: 128 * 1024,
        }
    }
}

/// The result of one scan.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Totals, as the `scans` table records them.
    pub summary: ScanSummary,
    /// Problems by kind.
    pub errors: ScanErrors,
    /// Executables read and hashed by this scan.
    pub hashed_files: u64,
    /// Executables whose hash came from the cache.
    pub cached_files: u64,
    /// Processes of which only `stat` was read (light scans, while exec events say what
    /// changed); the others were read whole.
    pub light_reads: u64,
    /// One record per process.
    pub records: Vec<ProcessRecord>,
}

/// What one process needs hashed, found while reading it.
#[derive(Debug, Clone)]
pub(crate) struct ExeRef {
    /// Where to open the file: `/proc/PID/exe` on Linux, the path elsewhere.
    pub open_path: PathBuf,
    /// The file's identity when the process was read.
    pub key: FileKey,
}

/// A record with what the scan keeps beside it until the end of the scan.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    pub record: ProcessRecord,
    pub exe: Option<ExeRef>,
    /// Start time in clock ticks after boot; with the PID, the process's identity.
    pub start_ticks: Option<u64>,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: Option<u64>,
    pub errors: ScanErrors,
}

/// Each process is read whole at least once every this many scans (a minute at the default
/// interval), whatever the events say: what changes with no event (working directory, root,
/// cgroup, a rewritten command line, disk bytes, an executable replaced under its name) is at
/// most that old.
pub const FULL_EVERY: u64 = 6;

/// What light scans keep.
#[cfg(target_os = "linux")]
struct Light {
    changes: std::sync::Arc<crate::exec_events::Changes>,
    /// Each process as last read whole (its slot brings a whole read again within
    /// [`FULL_EVERY`] scans).
    full: HashMap<u32, Observed>,
}

/// What is remembered of a process from one scan to the next.
#[derive(Debug, Clone)]
pub(crate) struct Previous {
    pub start_ticks: u64,
    pub cpu_ticks: Option<u64>,
}

/// Enumerates processes, remembering what the next scan can reuse.
pub struct Collector {
    options: CollectorOptions,
    /// While exec events flow: what they say changed, and each process as last read whole.
    #[cfg(target_os = "linux")]
    light: Option<Light>,
    #[cfg(not(target_os = "linux"))]
    system: System,
    hashes: HashCache,
    previous: HashMap<u32, Previous>,
    last_scan: Option<Instant>,
    next_scan_id: i64,
    #[cfg(target_os = "linux")]
    clock: crate::linux::Clock,
}

impl Collector {
    /// A collector with an empty cache.
    pub fn new(options: CollectorOptions) -> anyhow::Result<Self> {
        #[cfg(target_os = "linux")]
        crate::linux::list_pids().map_err(|err| anyhow::anyhow!("listing /proc: {err}"))?;
        Ok(Self {
            options,
            #[cfg(not(target_os = "linux"))]
            system: System::new().map_err(|err| anyhow::anyhow!("sysinfo: {err:?}"))?,
            hashes: HashCache::default(),
            previous: HashMap::new(),
            last_scan: None,
            next_scan_id: 1,
            #[cfg(target_os = "linux")]
            clock: crate::linux::Clock::read()?,
            #[cfg(target_os = "linux")]
            light: None,
        })
    }

    /// Scans from now on read whole only the processes that `changes` names, those on their
    /// slot (one scan in [`FULL_EVERY`]), and those whose start time or executable link changed;
    /// the others get only their `stat` read again (state, parent, CPU, memory, threads).
    #[cfg(target_os = "linux")]
    pub fn scan_less_with(&mut self, changes: std::sync::Arc<crate::exec_events::Changes>) {
        self.light = Some(Light {
            changes,
            full: HashMap::new(),
        });
    }

    /// Number of executables whose hash is cached.
    pub fn cached_hashes(&self) -> usize {
        self.hashes.len()
    }

    /// Scans every process once.
    pub fn scan(&mut self) -> Scan {
        self.scan_with(|| {})
    }

    /// Scans every process once, calling `after_listing` between listing the processes and
    /// reading them. This is the seam where processes vanish in real life; tests use it to
    /// make one vanish on purpose.
    pub fn scan_with(&mut self, after_listing: impl FnOnce()) -> Scan {
        let scan_id = self.next_scan_id;
        self.next_scan_id += 1;
        let started = Instant::now();
        let started_at = epoch_millis();

        let mut errors = ScanErrors::default();
        let (mut observed, light_reads) = self.observe_all(after_listing, &mut errors);
        // CPU times were read just now; the rate is over the time between two such moments.
        let observed_at = Instant::now();
        observed.sort_unstable_by_key(|o| o.record.pid);

        for o in &observed {
            errors += &o.errors;
        }
        let (hashed_files, cached_files) = self.hash_executables(&mut observed, &mut errors);

        let elapsed = self.last_scan.map(|last| observed_at.duration_since(last));
        self.last_scan = Some(observed_at);
        let collected_at = epoch_millis();
        let mut next_previous = HashMap::with_capacity(observed.len());
        let records: Vec<ProcessRecord> = observed
            .into_iter()
            .map(|o| {
                let mut record = o.record;
                record.scan_id = scan_id;
                record.collected_at = collected_at;
                if let Some(start_ticks) = o.start_ticks {
                    let before = self
                        .previous
                        .get(&record.pid)
                        .filter(|p| p.start_ticks == start_ticks);
                    #[cfg(target_os = "linux")]
                    if let (Some(before), Some(elapsed)) = (before, elapsed) {
                        record.cpu_percent = cpu_percent(
                            before.cpu_ticks,
                            o.cpu_ticks,
                            self.clock.ticks_per_second,
                            elapsed,
                        );
                    }
                    #[cfg(not(target_os = "linux"))]
                    let _ = (before, elapsed);
                    next_previous.insert(
                        record.pid,
                        Previous {
                            start_ticks,
                            cpu_ticks: o.cpu_ticks,
                        },
                    );
                }
                record
            })
            .collect();
        self.previous = next_previous;

        let finished_at = epoch_millis();
        tracing::debug!(
            scan_id,
            processes = records.len(),
            errors = errors.total(),
            hashed_files,
            cached_files,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "scan finished"
        );
        Scan {
            summary: ScanSummary {
                scan_id,
                started_at,
                finished_at,
                process_count: records.len() as u64,
                error_count: errors.total(),
            },
            errors,
            hashed_files,
            cached_files,
            light_reads,
            records,
        }
    }

    /// Lists the processes and reads each one, in parallel; also returns how many were read
    /// light.
    #[cfg(target_os = "linux")]
    fn observe_all(
        &mut self,
        after_listing: impl FnOnce(),
        errors: &mut ScanErrors,
    ) -> (Vec<Observed>, u64) {
        let pids = match crate::linux::list_pids() {
            Ok(pids) => pids,
            Err(err) => {
                tracing::error!(%err, "cannot list /proc");
                errors.unreadable += 1;
                return (Vec::new(), 0);
            }
        };
        after_listing();
        let (options, clock) = (&self.options, &self.clock);
        let scan_id = self.next_scan_id - 1;
        let Some(light) = self.light.as_mut() else {
            let observed = pids
                .par_iter()
                .map(|&pid| crate::linux::observe(pid, options, clock))
                .collect();
            return (observed, 0);
        };
        // `None`: events were lost, or stopped: every process is read whole.
        let changed = light.changes.take();
        let full = &light.full;
        let observed: Vec<(bool, Observed)> = pids
            .par_iter()
            .map(|&pid| {
                // Each process has its slot among FULL_EVERY scans for a whole read, so that the
                // whole reads spread evenly over the scans.
                let slot = (scan_id + i64::from(pid)) % FULL_EVERY as i64 == 0;
                let reuse = changed
                    .as_ref()
                    .filter(|changed| !slot && !changed.contains(&pid))
                    .and(full.get(&pid));
                if let Some(before) = reuse
                    && let Some(light) = crate::linux::observe_light(pid, before, clock)
                {
                    return (false, light);
                }
                (true, crate::linux::observe(pid, options, clock))
            })
            .collect();
        // Remember what was read whole; forget processes that are gone.
        let mut next = HashMap::with_capacity(observed.len());
        for (whole, o) in &observed {
            let pid = o.record.pid;
            if o.start_ticks.is_none() {
                continue;
            }
            if *whole {
                next.insert(pid, o.clone());
            } else if let Some(before) = light.full.remove(&pid) {
                next.insert(pid, before);
            }
        }
        light.full = next;
        let light_reads = observed.iter().filter(|(whole, _)| !whole).count() as u64;
        (observed.into_iter().map(|(_, o)| o).collect(), light_reads)
    }

    /// Lists the processes and reads each one, in parallel (every one whole: no light reads).
    #[cfg(not(target_os = "linux"))]
    fn observe_all(
        &mut self,
        after_listing: impl FnOnce(),
        _errors: &mut ScanErrors,
    ) -> (Vec<Observed>, u64) {
        self.system
            .refresh_processes_specifics(ProcessesToUpdate::All, true, refresh_kind());
        let pids: Vec<sysinfo::Pid> = self.system.processes().keys().copied().collect();
        after_listing();
        let (system, options) = (&self.system, &self.options);
        let observed = pids
            .par_iter()
            .filter_map(|pid| {
                let process = system.process(*pid)?;
                Some(crate::portable::observe(process, options))
            })
            .collect();
        (observed, 0)
    }

    /// Fills `exe_sha256` for every record, hashing each distinct executable at most once and
    /// only if the cache does not know it. Returns (files hashed, files found in the cache).
    fn hash_executables(
        &mut self,
        observed: &mut [Observed],
        errors: &mut ScanErrors,
    ) -> (u64, u64) {
        // Every process that runs a file is a way to open it: thousands of processes usually
        // run a few hundred files, and any one of them may exit before the file's turn comes.
        let mut wanted: HashMap<FileKey, Vec<&Path>> = HashMap::new();
        for exe in observed.iter().filter_map(|o| o.exe.as_ref()) {
            wanted.entry(exe.key).or_default().push(&exe.open_path);
        }
        let live: HashSet<FileKey> = wanted.keys().copied().collect();
        let mut misses: Vec<(FileKey, Vec<&Path>)> = wanted
            .into_iter()
            .filter(|(key, _)| self.hashes.get(key).is_none())
            .collect();
        // Smallest first, so that one huge file cannot use up the budget of every scan and
        // keep all the others unhashed.
        misses.sort_unstable_by_key(|(key, _)| key.size);
        let cached = (live.len() - misses.len()) as u64;

        let deadline = Instant::now() + self.options.hash_time_budget;
        let max_bytes = self.options.hash_max_bytes;
        let outcomes: Vec<(FileKey, HashOutcome)> = misses
            .into_par_iter()
            .map(|(key, openers)| (key, hash_through_any(&openers, key, max_bytes, deadline)))
            .collect();
        let mut hashed = 0;
        for (key, outcome) in outcomes {
            match outcome {
                HashOutcome::Hashed(hex) => {
                    hashed += 1;
                    self.hashes.insert(key, hex);
                }
                HashOutcome::TooLarge => errors.hash_too_large += 1,
                HashOutcome::ChangedDuringRead => errors.hash_changed_during_read += 1,
                HashOutcome::BudgetExhausted => errors.hash_budget_exhausted += 1,
                HashOutcome::Unreadable(kind) => {
                    tracing::debug!(?kind, "executable unreadable");
                    errors.hash_unreadable += 1;
                }
            }
        }
        self.hashes.retain(&live);
        for o in observed.iter_mut() {
            if let Some(exe) = &o.exe {
                o.record.exe_sha256 = self.hashes.get(&exe.key).map(str::to_owned);
            }
        }
        (hashed, cached)
    }
}

/// Hashes a file through the first of its openers that still leads to it: `/proc/PID/exe` of
/// a process that exited is gone (or, with its PID reused, leads to another file), while the
/// same file is still reachable through another process.
fn hash_through_any(
    openers: &[&Path],
    key: FileKey,
    max_bytes: u64,
    deadline: Instant,
) -> HashOutcome {
    let mut outcome = HashOutcome::Unreadable(std::io::ErrorKind::NotFound);
    for path in openers {
        if Instant::now() >= deadline {
            return HashOutcome::BudgetExhausted;
        }
        outcome = hash_file(path, key, max_bytes, deadline);
        let try_next = matches!(
            outcome,
            HashOutcome::Unreadable(std::io::ErrorKind::NotFound) | HashOutcome::ChangedDuringRead
        );
        if !try_next {
            break;
        }
    }
    outcome
}

/// What `sysinfo` refreshes on each scan where it is the collector.
#[cfg(not(target_os = "linux"))]
fn refresh_kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing()
        .without_tasks()
        .with_cwd(UpdateKind::Always)
        .with_root(UpdateKind::OnlyIfNotSet)
        .with_disk_usage()
        .with_cpu()
        .with_memory()
        .with_exe(UpdateKind::Always)
        .with_cmd(UpdateKind::Always)
        .with_user(UpdateKind::Always)
}

/// CPU use in percent of one core between two readings of a process's CPU time.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn cpu_percent(
    before: Option<u64>,
    now: Option<u64>,
    ticks_per_second: u64,
    elapsed: Duration,
) -> Option<f64> {
    let delta = now?.checked_sub(before?)?;
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 || ticks_per_second == 0 {
        return None;
    }
    Some(delta as f64 / ticks_per_second as f64 / seconds * 100.0)
}

/// Milliseconds since the Unix epoch.
pub fn epoch_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_time_used_over_time_elapsed() {
        let check = |before, now, elapsed_ms, want: Option<f64>| {
            let got = cpu_percent(before, now, 100, Duration::from_millis(elapsed_ms));
            assert_eq!(got, want, "{before:?} {now:?} {elapsed_ms}");
        };
        check(Some(100), Some(150), 1000, Some(50.0));
        check(Some(100), Some(300), 1000, Some(200.0));
        check(Some(100), Some(100), 1000, Some(0.0));
        check(None, Some(100), 1000, None);
        check(Some(100), None, 1000, None);
        // A counter that went backwards is a different process, not negative use.
        check(Some(200), Some(100), 1000, None);
        check(Some(100), Some(200), 0, None);
    }
}
