//! What an operator's first day found in the CLI, through the real binaries (issue 12): a
//! self-join's repeated column names in JSON, queries from a file or stdin, a PRAGMA refused
//! for what it is, health as JSON when no agent answers, clap's usage errors uncoloured with
//! `--no-color`, counted nouns, and both sockets gone after a clean stop.

use std::process::{Command, Output};
use std::time::Duration;

use daemoneye_e2e::{Agent, bin};
use serde_json::Value;

fn stdout_json(what: &str, output: &Output) -> Value {
    assert!(output.status.success(), "{what}: {output:?}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{what}: stdout is not JSON ({err}): {output:?}"))
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_cli_answers_an_operators_first_day() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    let mut agent = Agent::start(
        "[collector]\nuser = \"daemon\"\n\n[detection]\nbuiltin_rules = false\n",
        1.0,
    );
    agent.wait_for_procmond();
    daemoneye_e2e::wait_for("a first scan", Duration::from_secs(120), || {
        agent
            .health()
            .filter(|health| health["scans"]["completed"].as_u64() > Some(0))
    });

    // A self-join: the parent's name must not overwrite the child's.
    let self_join = "SELECT p.pid, p.name, parent.name FROM processes p \
                     JOIN processes parent ON p.parent = parent.pid WHERE p.parent = 1 \
                     ORDER BY p.pid LIMIT 5";
    let rows = stdout_json(
        "self-join",
        &agent.cli(&["query", "--format", "json", "--sql", self_join]),
    );
    let rows = rows.as_array().expect("an array of rows");
    assert!(!rows.is_empty(), "children of pid 1 exist");
    for row in rows {
        let fields = row.as_object().expect("an object");
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["name", "name_2", "pid"],
            "{row}"
        );
        assert!(
            row["name"].is_string() && row["name_2"].is_string(),
            "{row}"
        );
    }

    // The same query from a file and from stdin.
    let file = agent.dir.path().join("query.sql");
    std::fs::write(&file, self_join).unwrap();
    let from_file = stdout_json(
        "--sql-file",
        &agent.cli(&[
            "query",
            "--format",
            "json",
            "--sql-file",
            file.to_str().unwrap(),
        ]),
    );
    assert_eq!(from_file.as_array().map(Vec::len), Some(rows.len()));
    let from_stdin = stdout_json(
        "--sql-file -",
        &agent.cli_with_input(
            &["query", "--format", "json", "--sql-file", "-"],
            self_join.as_bytes(),
        ),
    );
    assert_eq!(from_stdin.as_array().map(Vec::len), Some(rows.len()));
    // A query longer than a command line takes (128 KiB) but within the agent's limit.
    let long = format!(
        "SELECT count(*) AS n FROM processes WHERE name <> '{}'",
        "x".repeat(200 * 1024)
    );
    let counted = stdout_json(
        "a 200 KiB query on stdin",
        &agent.cli_with_input(
            &["query", "--format", "json", "--sql-file", "-"],
            long.as_bytes(),
        ),
    );
    assert!(counted[0]["n"].as_u64() > Some(0), "{counted}");
    // A FIFO nobody writes to is refused at once, not waited on.
    let fifo = agent.dir.path().join("fifo.sql");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let refused = agent.cli(&["query", "--sql-file", fifo.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        stderr_of(&refused).contains("not a regular file"),
        "{refused:?}"
    );

    // A PRAGMA is refused for what it is.
    let pragma = agent.cli(&["query", "--sql", "PRAGMA table_info(processes)"]);
    assert_eq!(pragma.status.code(), Some(2), "{pragma:?}");
    let message = stderr_of(&pragma);
    assert!(
        message.contains("only SELECT is allowed, not PRAGMA"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");

    // Tables: cells cut at 80 characters off a terminal, whole with --wide.
    let long_value = "SELECT 'y' || printf('%0200d', 7) AS v";
    let table = agent.cli(&["query", "--sql", long_value]);
    let line = String::from_utf8(table.stdout.clone()).unwrap();
    assert!(line.lines().nth(1).unwrap().ends_with('…'), "{line}");
    let wide = agent.cli(&["query", "--wide", "--sql", long_value]);
    let line = String::from_utf8(wide.stdout.clone()).unwrap();
    assert_eq!(line.lines().nth(1).unwrap().chars().count(), 201, "{line}");

    // A clean stop removes both sockets (procmond's included, which it cannot unlink itself
    // once it has dropped its privileges).
    let run = agent.data_dir.join("run");
    assert!(run.join("procmond.sock").exists() && run.join("agent.sock").exists());
    let status = agent.stop_within(Duration::from_secs(120));
    assert!(status.success(), "{status:?}");
    for socket in ["procmond.sock", "agent.sock"] {
        assert!(!run.join(socket).exists(), "{socket} is left behind");
    }

    // No agent: health-check --format json still prints an object a script can read.
    let down = agent.cli(&["health-check", "--format", "json"]);
    assert_eq!(down.status.code(), Some(4), "{down:?}");
    let health: Value = serde_json::from_slice(&down.stdout).expect("JSON with no agent");
    assert_eq!(health["overall"], "failed");
    assert_eq!(health["agent_reachable"], false);
    assert_eq!(health["exit_code"], 4);
    assert!(
        health["error"]
            .as_str()
            .is_some_and(|e| e.contains("not reachable"))
    );
    assert_eq!(stderr_of(&down).lines().count(), 1, "{down:?}");
}

#[test]
fn usage_errors_are_uncoloured_with_no_color_and_nouns_are_counted() {
    let usage = |args: &[&str]| {
        Command::new(bin("daemoneye-cli"))
            .args(args)
            .env("CLICOLOR_FORCE", "1")
            .env_remove("NO_COLOR")
            .output()
            .expect("running daemoneye-cli")
    };
    // Colour forced: clap colours its usage error, unless --no-color says not to.
    let coloured = usage(&["query", "--bogus"]);
    assert_eq!(coloured.status.code(), Some(2));
    assert!(stderr_of(&coloured).contains('\u{1b}'), "{coloured:?}");
    let plain = usage(&["--no-color", "query", "--bogus"]);
    assert_eq!(plain.status.code(), Some(2));
    assert!(!stderr_of(&plain).contains('\u{1b}'), "{plain:?}");
    let plain = usage(&["query", "--bogus", "--no-color"]);
    assert!(!stderr_of(&plain).contains('\u{1b}'), "{plain:?}");

    // "1 problem", not "1 problems".
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.toml");
    std::fs::write(&rules, "[[rule]]\nid = \"X-1\"\n").unwrap();
    let validated = Command::new(bin("daemoneye-cli"))
        .args(["rules", "validate", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(validated.status.code(), Some(1), "{validated:?}");
    assert!(
        stderr_of(&validated).contains("0 rules valid, 1 problem\n"),
        "{validated:?}"
    );
}

#[test]
fn a_rule_path_that_does_not_load_turns_health_degraded_and_rules_list_exits_1() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    // A typo in the site's own rule path: the built-in rules load, the site's do not.
    let agent = Agent::start(
        "[collector]\nuser = \"daemon\"\n\n[detection]\nrules = [\"/etc/daemoneye/rulez.d\"]\n",
        1.0,
    );
    agent.wait_for_procmond();
    let health = daemoneye_e2e::wait_for("a health report", Duration::from_secs(60), || {
        agent.health().filter(|h| {
            h["components"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["name"] == "rules"))
        })
    });
    let rules = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rules")
        .unwrap();
    assert_eq!(rules["status"], "degraded", "{health:#}");
    assert!(
        rules["detail"]
            .as_str()
            .unwrap()
            .contains("/etc/daemoneye/rulez.d"),
        "{rules}"
    );
    assert_ne!(health["overall"], "ok");
    let checked = agent.cli(&["health-check"]);
    assert_eq!(checked.status.code(), Some(1), "{checked:?}");

    let listed = agent.cli(&["rules", "list"]);
    assert_eq!(listed.status.code(), Some(1), "{listed:?}");
    let stderr = stderr_of(&listed);
    assert!(stderr.contains("rulez.d"), "{stderr}");
    assert!(
        stderr.contains("1 rule of the configuration did not load"),
        "{stderr}"
    );
    // The built-in rules still run.
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("DE-LNX-"),
        "{listed:?}"
    );
}

#[test]
fn start_up_errors_are_one_line_naming_the_key_or_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[collection]\ninterval = \"99999999999d\"\n").unwrap();
    let started = Command::new(bin("daemoneye-agent"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .arg("--once")
        .env_remove("DAEMONEYE_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(started.status.code(), Some(2), "{started:?}");
    let stderr = stderr_of(&started);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("collection.interval") && stderr.contains("must be between 100ms and 1day"),
        "{stderr}"
    );

    // A data directory that is a file: one line, its cause once.
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let started = Command::new(bin("daemoneye-agent"))
        .arg("--data-dir")
        .arg(&file)
        .arg("--once")
        .env_remove("DAEMONEYE_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(started.status.code(), Some(1), "{started:?}");
    let stderr = stderr_of(&started);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("daemoneye-agent: "), "{stderr}");
    let cause = std::io::Error::from_raw_os_error(nix::libc::EEXIST).to_string();
    assert_eq!(last.matches(&cause).count(), 1, "{last}");
}
