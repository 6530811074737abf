//! Colour in the logs of the agent and procmond: ANSI escapes only when stderr is a terminal,
//! `NO_COLOR` is unset or empty and `TERM` is not `dumb`; never in a file (a journal), and
//! procmond logs in the agent's format.
//!
//! The terminal cases run the agent under `script` (util-linux), which gives it a
//! pseudo-terminal as stdin, stdout and stderr and copies what it writes to a file; procmond
//! inherits that stderr. The positive case (a terminal, `TERM=xterm`) shows that the test can
//! see colour at all.
//!
//! These tests need root (procmond drops privileges only when started as root, and its
//! "dropped privileges" line is one of those looked for); CI runs them as root.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use daemoneye_e2e::{bin, wait_for};

/// A line each binary logs once it is up: procmond after its privilege drop, the agent once
/// its tasks run.
const PROCMOND_LINE: &str = "serving the agent";
const AGENT_LINE: &str = "agent started";

/// The ANSI control sequence introducer.
const CSI: &[u8] = b"\x1b[";

/// Stops the agent (SIGTERM, so that `script` passes it on; then SIGKILL) when dropped.
struct Running {
    child: Child,
    _dir: tempfile::TempDir,
    output: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Everything written to the file so far.
    fn output(&self) -> Vec<u8> {
        std::fs::read(&self.output).unwrap_or_default()
    }

    /// Waits until both binaries have logged their start line; the whole output then.
    fn wait_for_both(&self) -> Vec<u8> {
        wait_for(
            "the agent and procmond to log",
            Duration::from_secs(60),
            || {
                let output = self.output();
                let text = String::from_utf8_lossy(&output);
                (text.contains(PROCMOND_LINE) && text.contains(AGENT_LINE)).then_some(output)
            },
        )
    }
}

/// The agent's arguments for a private data directory under `dir`.
fn agent_args(dir: &Path, log_format: &str) -> Vec<String> {
    let data_dir = dir.join("data");
    vec![
        bin("daemoneye-agent").display().to_string(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--interval".to_owned(),
        "3600".to_owned(),
        "--log-format".to_owned(),
        log_format.to_owned(),
    ]
}

/// Environment of every run: info logs, no inherited colour or data directory settings.
fn base_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("DAEMONEYE_DATA_DIR")
        .stdin(Stdio::null());
    command
}

/// Starts the agent with its stderr (and stdout) going to a plain file.
fn with_stderr_in_a_file(log_format: &str, env: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("stderr");
    let args = agent_args(dir.path(), log_format);
    let child = base_command(&args[0])
        .args(&args[1..])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&output).unwrap())
        .spawn()
        .unwrap();
    Running {
        child,
        _dir: dir,
        output,
    }
}

/// Starts the agent on a pseudo-terminal (under `script`), its output copied to a file.
fn on_a_terminal(env: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("terminal");
    let args = agent_args(dir.path(), "human");
    // Temporary paths hold no quote; each argument is single-quoted for the shell anyway.
    let command = args
        .iter()
        .map(|arg| format!("'{arg}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let child = base_command("script")
        .args(["--quiet", "--flush", "--return", "--command"])
        .arg(format!("exec {command}"))
        .arg("/dev/null")
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    Running {
        child,
        _dir: dir,
        output,
    }
}

/// The lines of `output` that contain `needle`.
fn lines_with<'a>(output: &'a [u8], needle: &str) -> Vec<&'a [u8]> {
    output
        .split(|byte| *byte == b'\n')
        .filter(|line| String::from_utf8_lossy(line).contains(needle))
        .collect()
}

fn has_csi(bytes: &[u8]) -> bool {
    bytes.windows(CSI.len()).any(|window| window == CSI)
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root; CI runs it as root"
    );
}

#[test]
fn no_colour_when_stderr_is_a_file() {
    require_root();
    let agent = with_stderr_in_a_file("human", &[("TERM", "xterm-256color")]);
    let output = agent.wait_for_both();
    assert!(
        !has_csi(&output),
        "ANSI escapes in a log file:\n{}",
        String::from_utf8_lossy(&output)
    );
}

#[test]
fn no_colour_in_a_file_with_term_dumb() {
    require_root();
    let agent = with_stderr_in_a_file("human", &[("TERM", "dumb")]);
    let output = agent.wait_for_both();
    assert!(
        !has_csi(&output),
        "ANSI escapes in a log file:\n{}",
        String::from_utf8_lossy(&output)
    );
}

#[test]
fn colour_on_a_terminal_but_not_with_term_dumb_or_no_color() {
    require_root();
    // A terminal that can show colour: both binaries colour their lines.
    let agent = on_a_terminal(&[("TERM", "xterm-256color")]);
    let output = agent.wait_for_both();
    for needle in [AGENT_LINE, PROCMOND_LINE] {
        let lines = lines_with(&output, needle);
        assert!(
            !lines.is_empty() && lines.iter().all(|line| has_csi(line)),
            "no colour on a terminal for {needle:?}:\n{}",
            String::from_utf8_lossy(&output)
        );
    }
    drop(agent);

    for env in [
        [("TERM", "dumb"), ("NO_COLOR", "")],
        [("TERM", "xterm-256color"), ("NO_COLOR", "1")],
    ] {
        let agent = on_a_terminal(&env);
        let output = agent.wait_for_both();
        assert!(
            !has_csi(&output),
            "ANSI escapes on a terminal with {env:?}:\n{}",
            String::from_utf8_lossy(&output)
        );
    }
}

#[test]
fn procmond_logs_json_when_the_agent_does() {
    require_root();
    let agent = with_stderr_in_a_file("json", &[("TERM", "xterm-256color")]);
    let output = agent.wait_for_both();
    let text = String::from_utf8(output).unwrap();
    let mut targets = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("a log line is not JSON ({err}): {line:?}\n{text}"));
        targets.push(entry["target"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        targets.iter().any(|target| target.starts_with("procmond")),
        "no JSON line from procmond: {targets:?}\n{text}"
    );
    assert!(
        targets
            .iter()
            .any(|target| target.starts_with("daemoneye_agent")),
        "no JSON line from the agent: {targets:?}\n{text}"
    );
    assert!(!has_csi(text.as_bytes()), "{text}");
}
