//! Helpers for DaemonEye's cross-binary end-to-end tests (in `tests/`): find the built
//! binaries, run an agent in a temporary data directory of its own, ask it for its health, and
//! wait for conditions with a deadline. Every process started here is killed when its handle is
//! dropped, even when a test fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod bundles;
pub mod marked;
pub mod postgres;

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    // Test executables live in target/debug/deps.
    let exe = std::env::current_exe().expect("the test knows its own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps")
        .to_path_buf()
}

/// The path of a workspace binary, built first if `cargo test -p daemoneye-e2e` ran alone.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let names = [
            "procmond",
            "daemoneye-agent",
            "daemoneye-cli",
            "daemoneye-bundler",
        ];
        if names.iter().all(|name| bin_dir().join(name).is_file()) {
            return;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // A benchmark runs from target/release and needs the release binaries there.
        let release = bin_dir().ends_with("release");
        let status = Command::new(cargo)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .args([
                "build",
                "-p",
                "procmond",
                "-p",
                "daemoneye-agent",
                "-p",
                "daemoneye-cli",
                "-p",
                "daemoneye-bundler",
            ])
            .args(release.then_some("--release"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
    });
    bin_dir().join(name)
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `limit`.
///
/// The limit is a safety net against a hung test, never the thing under test.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A field of `/proc/PID/status`, such as `Uid` or `CapEff`; `None` once the process is gone.
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|value| value.trim().to_owned())
    })
}

/// Whether `pid` has exited (gone, or a zombie waiting for its new parent to reap it).
pub fn has_exited(pid: u32) -> bool {
    proc_status(pid, "State").is_none_or(|state| state.starts_with('Z'))
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS")
        .and_then(|value| value.trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
}

/// Copies `from` to `dir/name` (creating `dir`), executable: a program under a name and in a
/// place chosen by the test.
pub fn copy_exe(from: &str, dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("creating the directory");
    let to = dir.join(name);
    std::fs::copy(from, &to).expect("copying the executable");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
        .expect("making it executable");
    to
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A running `daemoneye-agent` in a private data directory, killed on drop.
pub struct Agent {
    child: Child,
    /// A command the agent is started under (`unshare --net --`), kept for [`Agent::restart`].
    wrapper: Vec<String>,
    /// `--interval`, kept for [`Agent::restart`].
    interval_secs: f64,
    /// Extra environment, kept for [`Agent::restart`].
    env: Vec<(String, PathBuf)>,
    /// The temporary directory holding the data directory and the configuration.
    pub dir: tempfile::TempDir,
    /// `<dir>/data`.
    pub data_dir: PathBuf,
    /// Every line the agent logged (JSON), in order.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Every line the agent printed on stdout (alerts as JSON lines), in order.
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts an agent with `config` (TOML) and the given scan interval.
    pub fn start(config: &str, interval_secs: f64) -> Self {
        Self::start_with_env(config, interval_secs, &[])
    }

    /// [`Agent::start`] with extra environment variables (procmond inherits them).
    pub fn start_with_env(config: &str, interval_secs: f64, env: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Self::start_in(dir, config, interval_secs, env)
    }

    /// [`Agent::start`] under `wrapper`, a command that runs the rest of its arguments
    /// (`["unshare", "--net", "--"]`).
    pub fn start_with_wrapper(wrapper: &[&str], config: &str, interval_secs: f64) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut agent = Self::start_in_wrapped(dir, wrapper, config, interval_secs, &[]);
        agent.wrapper = wrapper.iter().map(|part| (*part).to_owned()).collect();
        agent
    }

    /// [`Agent::start_with_env`] in `dir`, which the test may have prepared: the data
    /// directory is `<dir>/data` (it may exist already, with a store in it).
    pub fn start_in(
        dir: tempfile::TempDir,
        config: &str,
        interval_secs: f64,
        env: &[(&str, &Path)],
    ) -> Self {
        Self::start_in_wrapped(dir, &[], config, interval_secs, env)
    }

    fn start_in_wrapped(
        dir: tempfile::TempDir,
        wrapper: &[&str],
        config: &str,
        interval_secs: f64,
        env: &[(&str, &Path)],
    ) -> Self {
        let data_dir = dir.path().join("data");
        let config_file = dir.path().join("config.toml");
        std::fs::write(&config_file, config).expect("writing the configuration");
        let env: Vec<(String, PathBuf)> = env
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.to_path_buf()))
            .collect();
        let wrapper: Vec<String> = wrapper.iter().map(|part| (*part).to_owned()).collect();
        let (child, log, stdout) =
            spawn_agent(&wrapper, &data_dir, &config_file, interval_secs, &env);
        Self {
            child,
            wrapper,
            interval_secs,
            env,
            dir,
            data_dir,
            log,
            stdout,
        }
    }

    /// Stops the agent with SIGTERM and waits for it and its procmond to exit (procmond
    /// leaves when its agent is gone, after it recorded its stop in the ledger).
    pub fn stop(&mut self) {
        let procmond = self
            .health()
            .and_then(|h| h["procmond"]["pid"].as_u64())
            .and_then(|pid| u32::try_from(pid).ok());
        if let Ok(raw) = i32::try_from(self.pid()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
        if let Some(pid) = procmond {
            wait_for("procmond to exit", Duration::from_secs(60), || {
                has_exited(pid).then_some(())
            });
        }
    }

    /// Starts the agent again on the same data directory and configuration (after
    /// [`Agent::stop`]); the log and stdout lists start empty.
    pub fn restart(&mut self) {
        let config_file = self.dir.path().join("config.toml");
        let (child, log, stdout) = spawn_agent(
            &self.wrapper,
            &self.data_dir,
            &config_file,
            self.interval_secs,
            &self.env,
        );
        self.child = child;
        self.log = log;
        self.stdout = stdout;
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `daemoneye-cli health-check --format json` for this agent; `None` if it does not answer.
    pub fn health(&self) -> Option<Value> {
        let output = Command::new(bin("daemoneye-cli"))
            .args(["health-check", "--format", "json", "--data-dir"])
            .arg(&self.data_dir)
            .env_remove("DAEMONEYE_DATA_DIR")
            .env_remove("COLUMNS")
            .output()
            .expect("running daemoneye-cli");
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Waits until procmond answers and returns the health report.
    pub fn wait_for_procmond(&self) -> Value {
        wait_for("procmond to answer", Duration::from_secs(60), || {
            self.health()
                .filter(|h| h["procmond"]["pid"].is_u64() && h["procmond"]["uid"].is_u64())
        })
    }

    /// The alerts the agent printed so far.
    pub fn printed_alerts(&self) -> Vec<Value> {
        self.stdout
            .lock()
            .expect("stdout lock")
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("stdout line {line:?} is not JSON: {err}"))
            })
            .collect()
    }

    /// Runs `daemoneye-cli ARGS --data-dir <this agent's>`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_with_input(args, &[])
    }

    /// [`Agent::cli`] with `input` on its stdin (tables at their width off a terminal: no
    /// `COLUMNS` from the environment running the tests).
    pub fn cli_with_input(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        use std::io::Write as _;
        let mut child = Command::new(bin("daemoneye-cli"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("DAEMONEYE_DATA_DIR")
            .env_remove("COLUMNS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running daemoneye-cli");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A CLI that does not read its stdin closes it early: that is its business.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().expect("running daemoneye-cli")
    }

    /// Stops the agent with SIGTERM and waits (at most `limit`) for it to exit; its status.
    pub fn stop_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        wait_for("the agent to stop after SIGTERM", limit, || {
            self.child.try_wait().expect("waiting for the agent")
        })
    }

    /// The log lines (parsed) whose message is `message`.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["fields"]["message"] == message)
            .collect()
    }

    /// Kills the agent with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent's process, its log lines and its stdout lines.
type Spawned = (Child, Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<String>>>);

fn spawn_agent(
    wrapper: &[String],
    data_dir: &Path,
    config_file: &Path,
    interval_secs: f64,
    env: &[(String, PathBuf)],
) -> Spawned {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(bin("daemoneye-agent"));
            command
        }
        None => Command::new(bin("daemoneye-agent")),
    };
    let mut child = command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config_file)
        .args([
            "--interval",
            &interval_secs.to_string(),
            "--log-format",
            "json",
            "--format",
            "json",
        ])
        .env("RUST_LOG", "info")
        .env_remove("DAEMONEYE_DATA_DIR")
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting daemoneye-agent");
    let log = collect_lines(child.stderr.take().expect("stderr is piped"));
    let stdout = collect_lines(child.stdout.take().expect("stdout is piped"));
    (child, log, stdout)
}

/// Reads `stream` line by line on a thread of its own into the returned list.
fn collect_lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().expect("lines lock").push(line);
        }
    });
    lines
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A procmond left behind by a failed test would keep running. It exits by itself once
        // its agent is gone; killing it first, and only while it is still the agent's child,
        // makes sure of it without risking a pid that was reused.
        let procmond = self.health().and_then(|h| h["procmond"]["pid"].as_u64());
        if let Some(pid) = procmond.and_then(|pid| u32::try_from(pid).ok())
            && proc_status(pid, "PPid") == Some(self.pid().to_string())
            && let Ok(raw) = i32::try_from(pid)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.kill();
    }
}
