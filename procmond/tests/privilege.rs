//! The real privilege drop, in child processes: what the kernel says about a dropped procmond,
//! what it can still see, and what makes it refuse to start.
//!
//! This test has its own `main` (`harness = false`): the drop refuses a process with more than
//! one thread, and libtest runs every test on a thread of its own. The binary is both parent
//! and child. With `DAEMONEYE_PRIVILEGE_CHILD` set it is a child: it calls `drop_privileges`
//! from `main`, probes another user's process, prints one JSON line and waits for its stdin to
//! close, so the parent can read `/proc/<child>/status` while the child lives. Without it, it
//! runs the checks below in turn, printing `test NAME ... ok` like libtest, and exits non-zero
//! if one fails.
//!
//! Most checks need root (CI runs this as root); started by an ordinary user, they are reported
//! as ignored and the not-root path is checked instead.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("privilege drop tests run on linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::OsString;
    use std::fs;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use nix::unistd::{Uid, User};
    use procmond::privilege::{self, PrivilegeOutcome};
    use serde_json::{Value, json};

    const CHILD_ENV: &str = "DAEMONEYE_PRIVILEGE_CHILD";
    const USER_ENV: &str = "DAEMONEYE_PRIVILEGE_USER";
    const PROBE_ENV: &str = "DAEMONEYE_PRIVILEGE_PROBE_PID";

    /// The owner of the probed process: any uid that is neither root nor nobody. It needs no
    /// passwd entry, since setpriv takes numbers (on Debian it is `daemon`).
    const OTHER_UID: u32 = 1;

    /// How long a child or the probed process may take to start or to exit; only a guard
    /// against a hang, never an assertion about speed.
    const PATIENCE: Duration = Duration::from_secs(60);

    /// CAP_DAC_READ_SEARCH (2) and CAP_SYS_PTRACE (19), as `/proc/PID/status` prints them.
    const KEPT_MASK: &str = "0000000000080004";
    const NO_CAPS: &str = "0000000000000000";

    const EACCES: i64 = 13;

    type Outcome = Result<(), String>;

    /// Fails the current check with a message, like `assert!` but without unwinding.
    macro_rules! ensure {
        ($cond:expr, $($msg:tt)+) => {
            if !$cond {
                return Err(format!($($msg)+));
            }
        };
    }

    macro_rules! ensure_eq {
        ($got:expr, $want:expr, $what:expr) => {{
            let (got, want) = (&$got, &$want);
            ensure!(got == want, "{}: got {:?}, want {:?}", $what, got, want);
        }};
    }

    pub fn main() -> ExitCode {
        if std::env::var_os(CHILD_ENV).is_some() {
            return child();
        }
        parent()
    }

    // ---- child ------------------------------------------------------------------------------

    /// Drops (or not), reports, probes, then waits for the parent to close stdin.
    fn child() -> ExitCode {
        let user = std::env::var(USER_ENV).ok();
        // What procmond's serve does, without a data directory to keep a dynamic id in.
        let dropped =
            privilege::choose_user(user.as_deref(), None).and_then(|target| match target {
                Some(target) => privilege::drop_privileges(&target),
                None => Ok(PrivilegeOutcome::NotRoot {
                    uid: nix::unistd::geteuid().as_raw(),
                }),
            });
        let outcome = match dropped {
            Ok(outcome) => outcome,
            Err(error) => {
                // What procmond's main prints: the error and its causes on one line.
                let mut line = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    line.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                eprintln!("error: {line}");
                return ExitCode::from(1);
            }
        };
        let outcome = match outcome {
            PrivilegeOutcome::Dropped { user, uid, gid } => {
                json!({"kind": "dropped", "user": user, "uid": uid, "gid": gid})
            }
            PrivilegeOutcome::NotRoot { uid } => json!({"kind": "not_root", "uid": uid}),
        };
        let mut report = json!({
            "outcome": outcome,
            "state": serde_json::to_value(privilege::current_state()).unwrap(),
        });
        if let Ok(pid) = std::env::var(PROBE_ENV) {
            let exe = format!("/proc/{pid}/exe");
            report["readlink"] = match fs::read_link(&exe) {
                Ok(path) => json!({"ok": path}),
                Err(error) => json!({"errno": error.raw_os_error(), "error": error.to_string()}),
            };
            let mut head = [0u8; 4];
            report["read"] = match fs::File::open(&exe).and_then(|mut f| f.read_exact(&mut head)) {
                Ok(()) => {
                    json!({"ok": head.iter().map(|b| format!("{b:02x}")).collect::<String>()})
                }
                Err(error) => json!({"errno": error.raw_os_error(), "error": error.to_string()}),
            };
        }
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{report}").unwrap();
        stdout.flush().unwrap();
        // Stay alive, as the dropped procmond would, until the parent has looked at us.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        ExitCode::SUCCESS
    }

    // ---- parent -----------------------------------------------------------------------------

    enum Needs {
        Root,
        OrdinaryUser,
    }

    struct Check {
        name: &'static str,
        needs: Needs,
        run: fn(&Fixture) -> Outcome,
    }

    const CHECKS: &[Check] = &[
        Check {
            name: "drop_to_nobody_keeps_only_the_two_capabilities",
            needs: Needs::Root,
            run: drop_to_nobody_keeps_only_the_two_capabilities,
        },
        Check {
            name: "without_the_capabilities_nobody_cannot_see_the_exe",
            needs: Needs::Root,
            run: without_the_capabilities_nobody_cannot_see_the_exe,
        },
        Check {
            name: "default_user_is_daemoneye_else_an_id_of_its_own",
            needs: Needs::Root,
            run: default_user_is_daemoneye_else_an_id_of_its_own,
        },
        Check {
            name: "unknown_configured_user_is_refused",
            needs: Needs::Root,
            run: unknown_configured_user_is_refused,
        },
        Check {
            name: "dropping_to_root_is_refused",
            needs: Needs::Root,
            run: dropping_to_root_is_refused,
        },
        Check {
            name: "not_root_changes_nothing",
            needs: Needs::OrdinaryUser,
            run: not_root_changes_nothing,
        },
    ];

    fn parent() -> ExitCode {
        // Like libtest: arguments that are not flags filter checks by name.
        let filters: Vec<String> = std::env::args()
            .skip(1)
            .filter(|arg| !arg.starts_with('-'))
            .collect();
        let root = Uid::effective().is_root();
        let fixture = if root {
            match Fixture::new() {
                Ok(fixture) => Some(fixture),
                Err(error) => {
                    eprintln!("setting up the probed process failed: {error}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            None
        };
        let mut failed = Vec::new();
        let mut ran = 0;
        for check in CHECKS {
            if !filters.is_empty() && !filters.iter().any(|f| check.name.contains(f.as_str())) {
                continue;
            }
            let result = match (&check.needs, &fixture) {
                (Needs::Root, Some(fixture)) => (check.run)(fixture),
                (Needs::Root, None) => {
                    println!(
                        "test {} ... ignored, this test needs root; CI runs it as root",
                        check.name
                    );
                    continue;
                }
                (Needs::OrdinaryUser, Some(_)) => {
                    println!(
                        "test {} ... ignored, runs as an ordinary user (as root, \
                         without_the_capabilities_nobody_cannot_see_the_exe covers it)",
                        check.name
                    );
                    continue;
                }
                (Needs::OrdinaryUser, None) => (check.run)(&Fixture::unprivileged()),
            };
            ran += 1;
            match result {
                Ok(()) => println!("test {} ... ok", check.name),
                Err(message) => {
                    println!("test {} ... FAILED\n    {message}", check.name);
                    failed.push(check.name);
                }
            }
        }
        // The fixture's processes are killed here, before the verdict, on success and failure.
        drop(fixture);
        println!(
            "\ntest result: {}. {} passed; {} failed",
            if failed.is_empty() { "ok" } else { "FAILED" },
            ran - failed.len(),
            failed.len()
        );
        if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// A child process that is killed and reaped when dropped, whatever path the check took.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// What the checks share: a process owned by [`OTHER_UID`] whose executable only that uid
    /// may read, and a copy of this binary that any user may run.
    struct Fixture {
        /// Pid of `sleep` running as [`OTHER_UID`] from `victim_exe`.
        victim_pid: u32,
        victim_exe: PathBuf,
        /// This test binary, in a directory every user may enter.
        exe: PathBuf,
        nobody: (u32, u32),
        // Dropped in declaration order: the process dies before its directory goes.
        _victim: Option<Reaped>,
        _dirs: Vec<tempfile::TempDir>,
    }

    impl Fixture {
        fn new() -> Result<Fixture, String> {
            let nobody = lookup("nobody")?.ok_or("there is no user nobody")?;
            // The executable sits in a 0700 directory, mode 0700, both owned by OTHER_UID:
            // opening it through /proc/PID/exe as nobody needs CAP_DAC_READ_SEARCH, and
            // following that link at all needs CAP_SYS_PTRACE.
            let victim_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let victim_exe = victim_dir.path().join("sleep");
            let sleep = ["/usr/bin/sleep", "/bin/sleep"]
                .into_iter()
                .find(|path| Path::new(path).exists())
                .ok_or("no sleep binary")?;
            fs::copy(sleep, &victim_exe).map_err(|e| format!("copying {sleep}: {e}"))?;
            for path in [&victim_exe, &victim_dir.path().to_path_buf()] {
                std::os::unix::fs::chown(path, Some(OTHER_UID), Some(OTHER_UID))
                    .map_err(|e| format!("chown {}: {e}", path.display()))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                    .map_err(|e| format!("chmod {}: {e}", path.display()))?;
            }
            let victim = Command::new("setpriv")
                .args(["--reuid", &OTHER_UID.to_string(), "--regid"])
                .arg(OTHER_UID.to_string())
                .arg("--clear-groups")
                .arg(&victim_exe)
                .arg("300")
                .stdin(Stdio::null())
                .spawn()
                .map(Reaped)
                .map_err(|e| format!("starting setpriv: {e}"))?;
            let victim_pid = victim.0.id();
            // setpriv execs sleep in the same process; wait until it has.
            let started = Instant::now();
            while fs::read_link(format!("/proc/{victim_pid}/exe")).ok() != Some(victim_exe.clone())
            {
                if started.elapsed() > PATIENCE {
                    return Err("the probed sleep did not start".to_owned());
                }
                std::thread::sleep(Duration::from_millis(10));
            }

            let bin_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            fs::set_permissions(bin_dir.path(), fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            let exe = bin_dir.path().join("privilege-test");
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            fs::copy(&me, &exe).map_err(|e| format!("copying {}: {e}", me.display()))?;
            fs::set_permissions(&exe, fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            Ok(Fixture {
                victim_pid,
                victim_exe,
                exe,
                nobody,
                _victim: Some(victim),
                _dirs: vec![victim_dir, bin_dir],
            })
        }

        /// For an ordinary user: no probed process, this binary where it is.
        fn unprivileged() -> Fixture {
            Fixture {
                victim_pid: 0,
                victim_exe: PathBuf::new(),
                exe: std::env::current_exe().unwrap_or_default(),
                nobody: (65534, 65534),
                _victim: None,
                _dirs: Vec::new(),
            }
        }
    }

    fn lookup(name: &str) -> Result<Option<(u32, u32)>, String> {
        User::from_name(name)
            .map(|user| user.map(|u| (u.uid.as_raw(), u.gid.as_raw())))
            .map_err(|e| format!("looking up {name}: {e}"))
    }

    /// A finished child: its report line, its `/proc/PID/status` while it was alive (both
    /// absent if it exited without reporting), how it exited and what it said on stderr.
    struct ChildRun {
        report: Option<Value>,
        status: Option<String>,
        exit: ExitStatus,
        stderr: String,
    }

    /// Runs `program args... ` as a child with the child environment.
    fn run_child(
        program: &Path,
        wrapper: &[OsString],
        user: Option<&str>,
        probe: Option<u32>,
    ) -> Result<ChildRun, String> {
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.env(CHILD_ENV, "1")
            .env_remove(USER_ENV)
            .env_remove(PROBE_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(user) = user {
            cmd.env(USER_ENV, user);
        }
        if let Some(pid) = probe {
            cmd.env(PROBE_ENV, pid.to_string());
        }
        let mut child = Reaped(
            cmd.spawn()
                .map_err(|e| format!("spawning the child: {e}"))?,
        );
        let pid = child.0.id();

        let stdout = child.0.stdout.take().ok_or("no stdout pipe")?;
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = send.send(read);
        });
        let line = match receive.recv_timeout(PATIENCE) {
            Ok(read) => read.map_err(|e| format!("reading the child's report: {e}"))?,
            Err(_) => return Err("the child reported nothing in time".to_owned()),
        };
        let (report, status) = if line.is_empty() {
            (None, None)
        } else {
            let report: Value = serde_json::from_str(&line)
                .map_err(|e| format!("the child's report {line:?} is not JSON: {e}"))?;
            let status = fs::read_to_string(format!("/proc/{pid}/status"))
                .map_err(|e| format!("reading the child's status: {e}"))?;
            (Some(report), Some(status))
        };

        // Closing stdin lets the child exit.
        drop(child.0.stdin.take());
        let started = Instant::now();
        let exit = loop {
            match child.0.try_wait() {
                Ok(Some(exit)) => break exit,
                Ok(None) if started.elapsed() < PATIENCE => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => return Err("the child did not exit".to_owned()),
                Err(e) => return Err(format!("waiting for the child: {e}")),
            }
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.0.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        Ok(ChildRun {
            report,
            status,
            exit,
            stderr,
        })
    }

    /// The value of `Key:` in a `/proc/PID/status` text, with its fields split.
    fn status_fields(status: &str, key: &str) -> Vec<String> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .map(|value| value.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The child's report and status, or why there are none.
    fn reported(run: &ChildRun) -> Result<(&Value, &str), String> {
        ensure!(
            run.exit.success(),
            "the child failed ({}): {}",
            run.exit,
            run.stderr.trim()
        );
        match (&run.report, &run.status) {
            (Some(report), Some(status)) => Ok((report, status)),
            _ => Err("the child exited without a report".to_owned()),
        }
    }

    fn drop_to_nobody_keeps_only_the_two_capabilities(fx: &Fixture) -> Outcome {
        let (uid, gid) = fx.nobody;
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let run = run_child(&me, &[], Some("nobody"), Some(fx.victim_pid))?;
        let (report, status) = reported(&run)?;

        ensure_eq!(
            report["outcome"],
            json!({"kind": "dropped", "user": "nobody", "uid": uid, "gid": gid}),
            "outcome"
        );
        ensure_eq!(
            report["state"],
            json!({
                "uid": uid, "euid": uid, "suid": uid, "gid": gid,
                "effective_caps": 0x80004, "permitted_caps": 0x80004, "no_new_privs": true,
            }),
            "current_state()"
        );

        // What the kernel says, read from outside the child.
        let uid_s = uid.to_string();
        let gid_s = gid.to_string();
        ensure_eq!(status_fields(status, "Uid"), [uid_s.as_str(); 4], "Uid");
        ensure_eq!(status_fields(status, "Gid"), [gid_s.as_str(); 4], "Gid");
        ensure_eq!(status_fields(status, "Groups"), [gid_s.as_str()], "Groups");
        for (key, want) in [
            ("CapInh", NO_CAPS),
            ("CapPrm", KEPT_MASK),
            ("CapEff", KEPT_MASK),
            ("CapBnd", KEPT_MASK),
            ("CapAmb", NO_CAPS),
            ("NoNewPrivs", "1"),
        ] {
            ensure_eq!(status_fields(status, key), [want], key);
        }

        // With the two capabilities, nobody sees and reads another user's unreadable exe.
        ensure_eq!(
            report["readlink"],
            json!({"ok": fx.victim_exe}),
            "readlink of the other user's /proc/PID/exe"
        );
        ensure_eq!(
            report["read"],
            json!({"ok": "7f454c46"}),
            "first bytes of the other user's exe"
        );
        Ok(())
    }

    fn without_the_capabilities_nobody_cannot_see_the_exe(fx: &Fixture) -> Outcome {
        let (uid, gid) = fx.nobody;
        // Started as nobody with nothing: drop_privileges has nothing to drop.
        let setpriv: Vec<OsString> = [
            "setpriv",
            "--reuid",
            &uid.to_string(),
            "--regid",
            &gid.to_string(),
            "--clear-groups",
            "--inh-caps=-all",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let run = run_child(&fx.exe, &setpriv, Some("nobody"), Some(fx.victim_pid))?;
        let (report, status) = reported(&run)?;
        ensure_eq!(
            report["outcome"],
            json!({"kind": "not_root", "uid": uid}),
            "outcome"
        );
        ensure_eq!(
            report["state"],
            json!({
                "uid": uid, "euid": uid, "suid": uid, "gid": gid,
                "effective_caps": 0, "permitted_caps": 0, "no_new_privs": false,
            }),
            "current_state()"
        );
        ensure_eq!(status_fields(status, "CapEff"), [NO_CAPS], "CapEff");
        ensure_eq!(status_fields(status, "NoNewPrivs"), ["0"], "NoNewPrivs");
        ensure_eq!(
            report["readlink"]["errno"],
            json!(EACCES),
            format!("readlink without capabilities: {}", report["readlink"])
        );
        ensure_eq!(
            report["read"]["errno"],
            json!(EACCES),
            format!("read without capabilities: {}", report["read"])
        );
        Ok(())
    }

    fn default_user_is_daemoneye_else_an_id_of_its_own(_fx: &Fixture) -> Outcome {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let run = run_child(&me, &[], None, None)?;
        let (report, _) = reported(&run)?;
        ensure_eq!(report["outcome"]["kind"], json!("dropped"), "outcome kind");
        if let Some((uid, _)) = lookup(privilege::DEFAULT_USER)? {
            ensure_eq!(
                report["outcome"]["user"],
                json!(privilege::DEFAULT_USER),
                "user"
            );
            ensure_eq!(report["outcome"]["uid"], json!(uid), "uid");
            return Ok(());
        }
        // Not nobody: a uid and gid (the same number) in the dynamic range that no account
        // has.
        ensure_eq!(
            report["outcome"]["user"],
            json!(privilege::DYNAMIC_USER),
            "user"
        );
        let uid = report["outcome"]["uid"].as_u64().unwrap_or_default();
        let uid = u32::try_from(uid).map_err(|e| e.to_string())?;
        ensure!(
            privilege::dynamic::DYNAMIC_IDS.contains(&uid),
            "uid {uid} is outside the dynamic range"
        );
        ensure_eq!(report["outcome"]["gid"], json!(uid), "gid");
        ensure!(
            User::from_uid(Uid::from_raw(uid))
                .map_err(|e| e.to_string())?
                .is_none(),
            "uid {uid} has an account"
        );
        Ok(())
    }

    fn unknown_configured_user_is_refused(_fx: &Fixture) -> Outcome {
        let name = "daemoneye-no-such-user";
        ensure!(lookup(name)?.is_none(), "user {name} exists here");
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let run = run_child(&me, &[], Some(name), None)?;
        ensure_eq!(run.exit.code(), Some(1), "exit code");
        ensure!(run.report.is_none(), "the child reported {:?}", run.report);
        ensure_eq!(
            run.stderr.trim(),
            format!("error: configured collector.user \"{name}\" does not exist"),
            "stderr"
        );
        Ok(())
    }

    fn dropping_to_root_is_refused(_fx: &Fixture) -> Outcome {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let run = run_child(&me, &[], Some("root"), None)?;
        ensure_eq!(run.exit.code(), Some(1), "exit code");
        ensure!(run.report.is_none(), "the child reported {:?}", run.report);
        ensure_eq!(
            run.stderr.trim(),
            "error: refusing to run as user \"root\": its uid 0 or primary gid 0 is root's",
            "stderr"
        );
        Ok(())
    }

    fn not_root_changes_nothing(fx: &Fixture) -> Outcome {
        let before = privilege::current_state();
        let run = run_child(&fx.exe, &[], Some("nobody"), None)?;
        let (report, _) = reported(&run)?;
        ensure_eq!(
            report["outcome"],
            json!({"kind": "not_root", "uid": before.euid}),
            "outcome"
        );
        ensure_eq!(
            report["state"],
            serde_json::to_value(before).map_err(|e| e.to_string())?,
            "current_state() of the child against this process"
        );
        Ok(())
    }
}
