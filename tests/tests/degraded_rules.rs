//! A rule that runs away is stopped within its budget, marked degraded and reported in an
//! alert; a rule that does not load is a diagnostic; the other rules and the scans go on.

use std::time::Duration;

use daemoneye_e2e::{Agent, wait_for};
use serde_json::Value;

const RULES: &str = r#"
[[rule]]
id = "TEST-RUNAWAY"
name = "Counts forever"
severity = "low"
mitre = ["T1059"]
sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) AS c FROM n"

[[rule]]
id = "TEST-CARTESIAN"
name = "Every process with every process, three times"
severity = "low"
mitre = ["T1059"]
sql = "SELECT count(*) AS c FROM processes a, processes b, processes c, processes d"

[[rule]]
id = "TEST-WRITER"
name = "Tries to delete alerts"
severity = "low"
mitre = ["T1070"]
sql = "DELETE FROM alerts"

[[rule]]
id = "TEST-FINE"
name = "The agent itself"
severity = "info"
mitre = ["T1057"]
sql = "SELECT pid, name FROM processes WHERE name = 'daemoneye-agent'"
"#;

#[test]
fn runaway_rules_are_stopped_and_reported_while_scans_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let config = format!(
        "[collector]\nuser = \"daemon\"\n\n[detection]\nbuiltin_rules = false\n\
         rule_timeout = \"200ms\"\nrules = [{:?}]\n",
        rules.display().to_string()
    );
    let agent = Agent::start(&config, 1.0);
    wait_for("three processed scans", Duration::from_secs(90), || {
        (agent.logged("scan processed").len() >= 3).then_some(())
    });

    let listed = agent.cli(&["rules", "list", "--format", "json"]);
    // TEST-WRITER did not load: the list is printed, and the exit code says so.
    assert_eq!(listed.status.code(), Some(1), "{listed:?}");
    let rules: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let status = |id: &str| -> Value {
        rules
            .iter()
            .find(|rule| rule["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {rules:#?}"))
    };
    for id in ["TEST-RUNAWAY", "TEST-CARTESIAN"] {
        let rule = status(id);
        assert_eq!(rule["status"], "degraded", "{rule:#}");
        assert!(rule["degraded_runs"].as_u64().unwrap() >= 3, "{rule:#}");
        assert!(
            rule["last_error"]
                .as_str()
                .unwrap()
                .contains("over the 200 ms budget"),
            "{rule:#}"
        );
    }
    let fine = status("TEST-FINE");
    assert_eq!(fine["status"], "ok");
    assert!(fine["runs"].as_u64().unwrap() >= 3);
    assert!(rules.iter().all(|rule| rule["id"] != "TEST-WRITER"));
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(
        stderr.contains("TEST-WRITER: sql refused: only SELECT is allowed, not DELETE"),
        "{stderr}"
    );

    // The good rule's alert and one degraded-rule alert per runaway rule, each printed once.
    let printed = agent.printed_alerts();
    let agent_pid = u64::from(agent.pid());
    assert!(
        printed.iter().any(|alert| alert["rule_id"] == "TEST-FINE"
            && alert["rows"][0]["pid"].as_u64() == Some(agent_pid)),
        "{printed:#?}"
    );
    for id in ["TEST-RUNAWAY", "TEST-CARTESIAN"] {
        let degraded: Vec<&Value> = printed
            .iter()
            .filter(|alert| {
                alert["rule_id"] == "DE-AGENT-0001" && alert["rows"][0]["rule_id"] == id
            })
            .collect();
        assert_eq!(degraded.len(), 1, "{id}: {printed:#?}");
        assert!(
            degraded[0]["summary"]
                .as_str()
                .unwrap()
                .contains("its matches for this scan are missing")
        );
    }

    // Scans continue after the stopped rules, and the agent stays healthy.
    let seen = agent.logged("scan processed").len();
    wait_for("another scan", Duration::from_secs(30), || {
        (agent.logged("scan processed").len() > seen).then_some(())
    });
    let health = agent.health().expect("the agent answers");
    assert!(
        health["scans"]["completed"].as_u64().unwrap() >= 4,
        "{health:#}"
    );
}
