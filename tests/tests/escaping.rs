//! A process that names itself with terminal controls, a bidi override and a zero-width space
//! cannot reach the operator's terminal through any table or CSV that DaemonEye prints, and
//! JSON gives programs its exact name back. (A file of its own with one test: the test copies an
//! executable and runs it, and a process started from another thread at that moment could
//! inherit the copy's open descriptor and make the exec fail with ETXTBSY.)

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use daemoneye_e2e::{Agent, bin, copy_exe, wait_for};
use serde_json::Value;

/// The executable's file name, so the process's `comm` (at most 15 bytes: this is 13): a
/// right-to-left override, a zero-width space, ESC and a newline.
const NAME: &str = "a\u{202e}b\u{200b}c\u{1b}d\ne";
/// How every table and CSV must show `NAME`.
const NAME_SHOWN: &str = "a\\u{202e}b\\u{200b}c\\u{1b}d\\ne";
/// What follows the marker in argv[0]: the same characters, and a newline that would forge a
/// row if it reached the terminal.
const ARGV0_TAIL: &str = "\u{202e}gnp.exe\u{200b}\u{1b}[31m\nforged-row";
const ARGV0_TAIL_SHOWN: &str = "\\u{202e}gnp.exe\\u{200b}\\u{1b}[31m\\nforged-row";
/// Characters that must never appear raw in text for people.
const RAW: [char; 4] = ['\u{202e}', '\u{200b}', '\u{1b}', '\r'];

/// The hostile process, killed when dropped.
struct Hostile(Child);

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stdout_of(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// `text` holds none of the raw characters, no line of it starts with the forged row, and it
/// holds every one of `shown`.
fn check_escaped(what: &str, text: &str, shown: &[&str]) {
    for raw in RAW {
        let line = text.lines().find(|line| line.contains(raw));
        assert!(line.is_none(), "{what}: raw {raw:?} in {line:?}");
    }
    assert!(
        !text.lines().any(|line| line.starts_with("forged-row")),
        "{what}: a newline reached the output: {text:?}"
    );
    for shown in shown {
        assert!(
            text.contains(shown),
            "{what}: {shown:?} missing in {text:?}"
        );
    }
}

#[test]
fn hostile_process_names_are_escaped_for_people_and_exact_in_json() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    let tmp = tempfile::Builder::new()
        .prefix("de-escaping-")
        .tempdir_in("/tmp")
        .unwrap();
    let marker = format!("de-escaping-marker-{}", std::process::id());
    let argv0 = format!("{marker}{ARGV0_TAIL}");
    let cmdline = format!("{argv0} 300");
    let cmdline_shown = format!("{marker}{ARGV0_TAIL_SHOWN} 300");
    let exe = copy_exe("/bin/sleep", &tmp.path().join("bin"), NAME);
    let hostile = Hostile(
        Command::new(&exe)
            .arg0(&argv0)
            .arg("300")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = hostile.0.id();
    wait_for(
        "the hostile process to exec",
        Duration::from_secs(10),
        || {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .filter(|bytes| bytes.starts_with(marker.as_bytes()))
        },
    );

    // procmond --once: the table escapes, JSON is exact.
    let once = |format: &str| {
        Command::new(bin("procmond"))
            .args(["--once", "--format", format])
            .env_remove("DAEMONEYE_DATA_DIR")
            .output()
            .unwrap()
    };
    let table = stdout_of(&once("table"));
    let line = table
        .lines()
        .find(|line| line.contains(&marker))
        .unwrap_or_else(|| panic!("pid {pid} missing in {table}"));
    check_escaped("procmond table", &table, &[]);
    check_escaped("procmond table row", line, &[NAME_SHOWN, &cmdline_shown]);
    let json: Value = serde_json::from_str(&stdout_of(&once("json"))).unwrap();
    let record = json["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|record| record["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} missing in {json}"));
    assert_eq!(record["name"], NAME);
    assert_eq!(record["cmdline"], cmdline.as_str());

    // The agent, with one rule that names the process.
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[rule]]\nid = \"TEST-ESCAPING\"\nname = \"Hidden\"\nseverity = \"low\"\n\
             mitre = [\"T1036\"]\n\
             sql = \"SELECT pid, name, cmdline FROM processes WHERE cmdline LIKE '%{marker}%'\"\n"
        ),
    )
    .unwrap();
    let config = format!(
        "[collector]\nuser = \"daemon\"\n\n[detection]\nbuiltin_rules = false\nrules = [{:?}]\n",
        rules.display().to_string()
    );
    let agent = Agent::start(&config, 1.0);
    let printed = wait_for("the test rule's alert", Duration::from_secs(90), || {
        agent
            .printed_alerts()
            .into_iter()
            .find(|alert| alert["rule_id"] == "TEST-ESCAPING")
    });
    assert_eq!(printed["rows"][0]["name"], NAME, "{printed:#}");
    assert_eq!(
        printed["rows"][0]["cmdline"],
        cmdline.as_str(),
        "{printed:#}"
    );

    let sql = format!("SELECT name, cmdline FROM processes WHERE pid = {pid}");
    let query = |format: &str| stdout_of(&agent.cli(&["query", "--sql", &sql, "--format", format]));
    check_escaped(
        "query table",
        &query("table"),
        &[NAME_SHOWN, &cmdline_shown],
    );
    check_escaped("query csv", &query("csv"), &[NAME_SHOWN, &cmdline_shown]);
    let rows: Value = serde_json::from_str(&query("json")).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{"name": NAME, "cmdline": cmdline}]),
        "query json"
    );

    let alerts = |format: &str| stdout_of(&agent.cli(&["alerts", "list", "--format", format]));
    // The table cuts the summary at 80 characters: the name comes first and fits.
    check_escaped(
        "alerts table",
        &alerts("table"),
        &[&format!("name={NAME_SHOWN}")],
    );
    check_escaped(
        "alerts csv",
        &alerts("csv"),
        &[&format!("name={NAME_SHOWN} cmdline={cmdline_shown}")],
    );
    let listed: Value = serde_json::from_str(&alerts("json")).unwrap();
    let alert = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["rule_id"] == "TEST-ESCAPING")
        .unwrap_or_else(|| panic!("no TEST-ESCAPING alert in {listed:#}"));
    assert_eq!(alert["rows"][0]["name"], NAME);
    assert_eq!(alert["rows"][0]["cmdline"], cmdline.as_str());
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("name={NAME} cmdline={cmdline}")),
        "{alert:#}"
    );
    drop(hostile);
}
