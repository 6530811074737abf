//! Fuzzes the rule-file loader: the input is the text of a rule file, as an operator (or a
//! rule bundle) hands it to the agent and to `daemoneye-cli rules test`.
//!
//! `rules::parse` reads the TOML, checks every field, runs each rule's SQL through
//! `precheck::check` and prepares it in the sandbox, and parses the fixtures. The rules it
//! accepts then run their fixtures, each in a fresh sandbox, as `rules test` does.
//!
//! Any panic is a finding. The assertions state what the loader promises its callers:
//! - every diagnostic is one line (they are logged and printed one per line);
//! - a loaded rule's SQL passes `precheck::check` again, with the same result (the agent
//!   relies on a loaded rule being runnable as it is);
//! - a loaded rule's dedup key names columns of its result, its result has no two columns of
//!   the same name, and no two loaded rules share an id;
//! - fixtures run without a panic, one outcome per fixture, and their labels and failure
//!   reasons are one line (`rules test` prints them in a table).

#![no_main]

use std::collections::HashSet;
use std::time::Duration;

use daemoneye_lib::detection::precheck;
use daemoneye_lib::detection::rules;
use daemoneye_lib::detection::sandbox::{Limits, Sandbox};
use libfuzzer_sys::fuzz_target;

/// Tight limits, so that a slow query or fixture costs 50 ms, not the default second.
const LIMITS: Limits = Limits {
    timeout: Duration::from_millis(50),
    max_rows: 100,
    max_memory: 64 * 1024 * 1024,
};

/// Fixtures run only for rules with at most this many (each one opens a sandbox).
const MAX_FIXTURES: usize = 5;

thread_local! {
    /// The empty sandbox `parse` prepares queries in, made once: a `Sandbox` holds a
    /// `rusqlite::Connection`, which is not `Sync`, so it cannot live in a static.
    static SANDBOX: Sandbox = Sandbox::new(LIMITS).expect("setting up the sandbox");
}

fn assert_one_line(what: &str, text: &str) {
    assert!(
        !text.contains(['\n', '\r']),
        "{what} is not one line: {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = SANDBOX.with(|sandbox| rules::parse("fuzz.toml", text, sandbox));

    for diagnostic in &loaded.diagnostics {
        assert_one_line("a diagnostic", &diagnostic.to_string());
    }

    let mut ids = HashSet::new();
    for rule in &loaded.rules {
        assert!(
            ids.insert(rule.id.clone()),
            "rule id {} loaded twice",
            rule.id
        );

        let again = precheck::check(rule.sql.sql()).unwrap_or_else(|refusal| {
            panic!(
                "rule {}: loaded SQL is refused on a second check: {refusal}",
                rule.id
            )
        });
        assert_eq!(
            again, rule.sql,
            "rule {}: the second check differs",
            rule.id
        );

        let mut columns = HashSet::new();
        for column in &rule.columns {
            assert!(
                columns.insert(column.as_str()),
                "rule {}: two result columns named {column:?}",
                rule.id
            );
        }
        for key in &rule.dedup.key {
            assert!(
                rule.columns.contains(key),
                "rule {}: dedup key {key:?} is not in {:?}",
                rule.id,
                rule.columns
            );
        }

        if rule.tests.len() > MAX_FIXTURES {
            continue;
        }
        let outcomes = rules::run_fixtures(rule, LIMITS).expect("setting up a fixture sandbox");
        assert_eq!(outcomes.len(), rule.tests.len(), "rule {}", rule.id);
        for outcome in &outcomes {
            assert_one_line("a fixture label", &outcome.label);
            if let Err(reason) = &outcome.got {
                assert_one_line("a fixture failure", reason);
            }
        }
    }
});
