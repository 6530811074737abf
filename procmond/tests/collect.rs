//! procmond against real processes: children with known command lines, a child whose
//! executable was deleted, a child that exits in the middle of a scan, and processes of
//! another user.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use daemoneye_lib::models::{OnDisk, ProcessRecord};
use procmond::{Collector, CollectorOptions};

/// `sha256sum FILE`, the reference the collector's hashes are checked against.
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success(), "sha256sum {path:?} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn sleep_binary() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "command -v sleep"])
        .output()
        .unwrap();
    let path = String::from_utf8(out.stdout).unwrap();
    std::fs::canonicalize(path.trim()).expect("sleep is installed")
}

/// A child process that is killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `program args`, retrying while the kernel reports the file busy: a freshly written
/// executable can be held open for writing by a child forked by another test thread.
fn spawn(program: &Path, args: &[&str]) -> Reaped {
    for _ in 0..50 {
        match Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
        {
            Ok(child) => return Reaped(child),
            Err(err) if err.raw_os_error() == Some(26) => sleep(Duration::from_millis(20)),
            Err(err) => panic!("spawning {program:?}: {err}"),
        }
    }
    panic!("{program:?} stayed busy");
}

/// Waits until the child has exec'd `program` (its `/proc/PID/exe` leads there).
fn wait_for_exec(pid: u32, program: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == program) {
            return;
        }
        sleep(Duration::from_millis(5));
    }
    panic!("process {pid} never ran {program:?}");
}

fn find(records: &[ProcessRecord], pid: u32) -> &ProcessRecord {
    records
        .iter()
        .find(|r| r.pid == pid)
        .unwrap_or_else(|| panic!("pid {pid} not in the scan"))
}

/// Options for tests: a generous hashing budget, so that a loaded CI machine does not leave
/// executables unhashed on a cold first scan.
fn options() -> CollectorOptions {
    CollectorOptions {
        hash_time_budget: Duration::from_secs(120),
        ..CollectorOptions::default()
    }
}

/// A temporary directory by its canonical path, as the kernel reports paths.
fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(dir.path()).unwrap();
    (dir, path)
}

fn my_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

#[test]
fn a_child_is_found_with_parent_cmdline_path_uid_and_hash() {
    let program = sleep_binary();
    let child = spawn(&program, &["3000.25"]);
    let pid = child.0.id();
    wait_for_exec(pid, &program);

    let mut collector = Collector::new(options()).unwrap();
    let scan = collector.scan();
    let record = find(&scan.records, pid);

    assert_eq!(record.parent, Some(std::process::id()));
    assert_eq!(
        record.cmdline.as_deref(),
        Some(format!("{} 3000.25", program.display()).as_str())
    );
    assert_eq!(record.path.as_deref(), Some(program.to_str().unwrap()));
    assert_eq!(record.name.as_deref(), Some("sleep"));
    assert_eq!(record.uid, Some(my_uid()));
    assert_eq!(record.euid, Some(my_uid()));
    assert_eq!(record.suid, Some(my_uid()));
    assert_eq!(record.on_disk, OnDisk::Present);
    assert_eq!(
        record.exe_sha256.as_deref(),
        Some(sha256sum(&program).as_str())
    );
    assert!(
        matches!(record.state.as_deref(), Some("S" | "R" | "D")),
        "{:?}",
        record.state
    );
    assert_eq!(record.threads, Some(1));
    assert!(record.start_time.is_some_and(|t| t > 1_600_000_000));
    assert!(record.resident_size.is_some() && record.total_size.is_some_and(|b| b > 0));
    assert!(record.cgroup_path.is_some());
    let meta = std::fs::metadata(&program).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (record.exe_dev, record.exe_inode),
        (Some(meta.dev()), Some(meta.ino()))
    );
    assert_eq!(
        record.cpu_percent, None,
        "first sight of a process has no CPU rate"
    );
    assert_eq!(record.scan_id, scan.summary.scan_id);

    // The second scan finds the same file in the cache and now knows a CPU rate.
    let again = collector.scan();
    let record = find(&again.records, pid);
    assert_eq!(
        record.exe_sha256.as_deref(),
        Some(sha256sum(&program).as_str())
    );
    assert!(record.cpu_percent.is_some());
    // Other tests start processes meanwhile, so new files may appear and some files of the
    // first scan may no longer run; at least this child's executable comes from the cache.
    assert!(again.cached_files >= 1, "{} cached", again.cached_files);
    assert_eq!(again.summary.scan_id, scan.summary.scan_id + 1);
}

#[test]
fn a_deleted_executable_is_off_disk_and_still_hashed() {
    let (_dir, dir) = tempdir();
    let copy = dir.join("victim-daemon");
    std::fs::copy(sleep_binary(), &copy).unwrap();
    let want = sha256sum(&copy);
    let child = spawn(&copy, &["3000.5"]);
    let pid = child.0.id();
    wait_for_exec(pid, &copy);
    std::fs::remove_file(&copy).unwrap();

    let mut collector = Collector::new(options()).unwrap();
    let scan = collector.scan();
    let record = find(&scan.records, pid);
    assert_eq!(record.on_disk, OnDisk::Gone);
    assert_eq!(record.path.as_deref(), Some(copy.to_str().unwrap()));
    assert_eq!(record.exe_sha256.as_deref(), Some(want.as_str()));
}

#[test]
fn an_executable_replaced_under_its_name_is_off_disk() {
    let (_dir, dir) = tempdir();
    let copy = dir.join("replaced");
    std::fs::copy(sleep_binary(), &copy).unwrap();
    let child = spawn(&copy, &["3000.75"]);
    let pid = child.0.id();
    wait_for_exec(pid, &copy);
    // A new file under the same name: the running image is no longer what the path holds.
    let staged = dir.join("staged");
    std::fs::write(&staged, b"#!/bin/sh\n").unwrap();
    std::fs::rename(&staged, &copy).unwrap();

    let mut collector = Collector::new(options()).unwrap();
    let record = find(&collector.scan().records, pid).clone();
    assert_eq!(record.on_disk, OnDisk::Gone);
    assert_ne!(
        record.exe_sha256.as_deref(),
        Some(sha256sum(&copy).as_str())
    );
    assert_eq!(
        record.exe_sha256.as_deref(),
        Some(sha256sum(&sleep_binary()).as_str())
    );
}

#[test]
fn a_process_that_exits_during_the_scan_does_not_fail_it() {
    let program = sleep_binary();
    let mut doomed = spawn(&program, &["3000.125"]);
    let doomed_pid = doomed.0.id();
    wait_for_exec(doomed_pid, &program);
    let survivor = spawn(&program, &["3000.375"]);
    wait_for_exec(survivor.0.id(), &program);

    let mut collector = Collector::new(options()).unwrap();
    let scan = collector.scan_with(|| {
        doomed.0.kill().unwrap();
        doomed.0.wait().unwrap();
    });

    let gone = find(&scan.records, doomed_pid);
    assert_eq!(gone.state, None, "nothing read after it vanished");
    assert_eq!(gone.exe_sha256, None);
    assert_eq!(gone.name, None);
    assert!(scan.errors.vanished >= 1, "{:?}", scan.errors);
    let alive = find(&scan.records, survivor.0.id());
    assert_eq!(
        alive.exe_sha256.as_deref(),
        Some(sha256sum(&program).as_str())
    );
}

#[test]
fn scans_survive_a_storm_of_short_lived_processes() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let storm = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut spawned = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = Command::new("true").status();
                spawned += 1;
            }
            spawned
        })
    };
    let mut collector = Collector::new(options()).unwrap();
    for _ in 0..10 {
        let scan = collector.scan();
        let me = find(&scan.records, std::process::id());
        assert_eq!(me.parent, Some(nix::unistd::getppid().as_raw() as u32));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(storm.join().unwrap() > 0);
}

#[test]
fn processes_of_another_user_give_records_with_unknown_fields() {
    // As root, run procmond as `nobody`; as anyone else, procmond already is another user
    // than pid 1's owner. Either way init's executable is out of reach.
    let procmond = env!("CARGO_BIN_EXE_procmond");
    // HOME points nowhere so that the user configuration file of root is not looked for.
    let out: Output = if my_uid() == 0 {
        Command::new("setpriv")
            .env("HOME", "/nonexistent")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .args([procmond, "--once", "--format", "json"])
            .output()
            .expect("setpriv runs")
    } else {
        Command::new(procmond)
            .args(["--once", "--format", "json"])
            .output()
            .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let processes = doc["processes"].as_array().unwrap();
    let init = processes
        .iter()
        .find(|p| p["pid"] == 1)
        .expect("pid 1 listed");
    assert!(init["exe_sha256"].is_null(), "{init}");
    assert!(init["exe_inode"].is_null(), "{init}");
    assert!(init["uid"].is_number(), "status is world-readable: {init}");
    assert!(
        doc["scan"]["errors"]["permission_denied"].as_u64().unwrap() > 0,
        "{doc}"
    );
    assert_eq!(
        doc["scan"]["process_count"].as_u64().unwrap() as usize,
        processes.len()
    );
}

#[test]
fn a_chrooted_process_running_a_file_outside_its_root_is_on_disk() {
    // As sshd's privilege-separated child does: start from a file on the host, then chroot.
    // The kernel shows the path from procmond's root; judging it inside the chroot would call
    // the file deleted.
    let (_dir, jail) = tempdir();
    let script = format!(
        "chroot('{}') or die $!; chdir('/'); sleep 3000",
        jail.display()
    );
    let perl = std::fs::canonicalize("/usr/bin/perl").expect("perl is installed");
    let child = if my_uid() == 0 {
        spawn(&perl, &["-e", &script])
    } else {
        // An ordinary user may chroot inside a user namespace of its own.
        spawn(
            Path::new("/usr/bin/unshare"),
            &["-r", perl.to_str().unwrap(), "-e", &script],
        )
    };
    let pid = child.0.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{pid}/root")).ok() != Some(jail.clone()) {
        assert!(Instant::now() < deadline, "perl never entered its chroot");
        sleep(Duration::from_millis(5));
    }
    let mut collector = Collector::new(options()).unwrap();
    let scan = collector.scan();
    let record = find(&scan.records, pid);
    assert_eq!(record.root.as_deref(), Some(jail.to_str().unwrap()));
    assert_eq!(record.path.as_deref(), Some(perl.to_str().unwrap()));
    assert_eq!(record.on_disk, OnDisk::Present);
    assert_eq!(
        record.exe_sha256.as_deref(),
        Some(sha256sum(&perl).as_str())
    );
}

/// Light scans (exec events on): a process the events name is read whole, a deleted
/// executable is still seen as deleted at once, and a stable process keeps everything the
/// whole read gave while its `stat` fields are fresh.
#[cfg(target_os = "linux")]
#[test]
fn light_scans_read_again_what_can_change_and_what_the_events_name() {
    use procmond::exec_events::Changes;
    let (_dir, dir) = tempdir();
    let copy = dir.join("light-victim");
    std::fs::copy(sleep_binary(), &copy).unwrap();
    let victim = spawn(&copy, &["3000.7"]);
    wait_for_exec(victim.0.id(), &copy);
    // A shell that becomes `sleep` after a while, as an exec does.
    let shell = spawn(
        Path::new("/bin/sh"),
        &["-c", "read _ </dev/null; sleep 0.3; exec sleep 3000.8"],
    );
    let stable = spawn(&sleep_binary(), &["3000.9"]);
    wait_for_exec(stable.0.id(), &sleep_binary());

    let changes = std::sync::Arc::new(Changes::new());
    let mut collector = Collector::new(options()).unwrap();
    collector.scan_less_with(std::sync::Arc::clone(&changes));
    let first = collector.scan();
    let before = find(&first.records, stable.0.id()).clone();
    assert_eq!(
        before.cmdline.as_deref(),
        Some(&*format!("{} 3000.9", sleep_binary().display()))
    );

    wait_for_exec(shell.0.id(), &sleep_binary());
    changes.note(shell.0.id());
    std::fs::remove_file(&copy).unwrap();
    let second = collector.scan();
    // Most of the host's processes were not named, nor due for their whole read.
    assert!(
        second.light_reads > 0,
        "no light read in {:?}",
        second.summary
    );
    assert_eq!(
        first.light_reads, 0,
        "the first scan reads everything whole"
    );
    let execd = find(&second.records, shell.0.id());
    assert_eq!(execd.cmdline.as_deref(), Some("sleep 3000.8"), "{execd:?}");
    let deleted = find(&second.records, victim.0.id());
    assert_eq!(deleted.on_disk, OnDisk::Gone, "{deleted:?}");
    let after = find(&second.records, stable.0.id());
    for (name, same) in [
        ("cmdline", after.cmdline == before.cmdline),
        ("path", after.path == before.path),
        ("cwd", after.cwd == before.cwd),
        ("uid", after.uid == before.uid),
        ("cgroup", after.cgroup_path == before.cgroup_path),
        ("hash", after.exe_sha256 == before.exe_sha256),
        ("start", after.start_time == before.start_time),
    ] {
        assert!(same, "{name} differs: {before:?} then {after:?}");
    }
    assert_eq!(after.scan_id, second.summary.scan_id);
    assert!(
        after.cpu_percent.is_some(),
        "CPU comes from the fresh stat: {after:?}"
    );
}
