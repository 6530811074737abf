//! The rule set is replaced while scans run: every scan runs entirely on the old set or
//! entirely on the new one, never a mix, and the state of a rule that stays (by id) carries
//! over. Bundles will replace rules this way at run time.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use daemoneye_agent::detector::{self, Detector};
use daemoneye_agent::pipeline::{self, Pipeline, PipelineHandle};
use daemoneye_lib::config::Config;
use daemoneye_lib::detection::rules;
use daemoneye_lib::detection::sandbox::Sandbox;
use daemoneye_lib::models::{OnDisk, ProcessRecord, ScanSummary};

/// A rule file with one always-matching rule per id.
fn rule_file(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| {
            format!(
                "[[rule]]\nid = \"{id}\"\nname = \"{id}\"\nseverity = \"low\"\nmitre = [\"T1059\"]\n\
                 description = \"test\"\nsql = \"SELECT pid FROM processes WHERE pid > 0\"\n\n\
                 [[rule.test]]\nprocesses = [{{ pid = 1 }}]\nexpect_rows = 1\n\n\
                 [[rule.test]]\nprocesses = [{{ pid = 0 }}]\nexpect_rows = 0\n\n"
            )
        })
        .collect()
}

fn detector(config: &Config, ids: &[&str]) -> Detector {
    let limits = detector::limits(config);
    let sandbox = Sandbox::new(limits).unwrap();
    let loaded = rules::parse("test.toml", &rule_file(ids), &sandbox);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    Detector::new(loaded, limits, "test").unwrap()
}

fn scan(n: i64) -> (ScanSummary, Vec<ProcessRecord>) {
    let records = (1..=20)
        .map(|pid| ProcessRecord {
            pid,
            name: Some(format!("p{pid}")),
            on_disk: OnDisk::Present,
            start_time: Some(1_000),
            ..ProcessRecord::default()
        })
        .collect::<Vec<_>>();
    let summary = ScanSummary {
        scan_id: n,
        started_at: 1_700_000_000_000 + n * 1000,
        finished_at: 1_700_000_000_000 + n * 1000 + 10,
        process_count: records.len() as u64,
        error_count: 0,
    };
    (summary, records)
}

#[test]
fn scans_run_on_one_whole_rule_set_and_states_carry_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.detection.builtin_rules = false;
    let old = ["T-A", "T-KEEP"];
    let new = ["T-KEEP", "T-B", "T-C"];
    let store = Arc::new(pipeline::open_store(dir.path()).unwrap());
    let first = Pipeline::new(&config, Arc::clone(&store), detector(&config, &old)).unwrap();
    let (raised_tx, mut raised_rx) = tokio::sync::mpsc::channel(1024);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (handle, thread) = PipelineHandle::spawn(first, raised_tx).unwrap();

    let (outcomes, sets) = runtime.block_on(async {
        // Scans from many tasks race one task that replaces the rule set four times; the
        // scheduler picks the interleaving. Each replacement says which generation it made.
        let replacing = tokio::spawn({
            let handle = handle.clone();
            let config = config.clone();
            async move {
                let mut sets = std::collections::BTreeMap::from([(1, old.to_vec())]);
                for ids in [&new[..], &old[..], &new[..], &old[..]] {
                    tokio::task::yield_now().await;
                    let generation = handle.replace(detector(&config, ids)).await.unwrap();
                    sets.insert(generation, ids.to_vec());
                }
                sets
            }
        });
        let scans: Vec<_> = (1..=24)
            .map(|n| {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let (summary, records) = scan(n);
                    handle
                        .process(summary, records, 1_700_000_000_000 + n * 1000)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for scan in scans {
            outcomes.push(scan.await.unwrap());
        }
        (outcomes, replacing.await.unwrap())
    });
    assert_eq!(sets.len(), 5, "{sets:?}");
    for outcome in &outcomes {
        // Exactly the rules of the set its generation names, in its order: never a mix.
        assert_eq!(
            outcome.rules_run, sets[&outcome.generation],
            "scan {} ran generation {}",
            outcome.scan_id, outcome.generation
        );
    }

    // T-KEEP ran on every scan, whichever set: its state carried over every replacement.
    let view = handle.rules();
    assert_eq!(view.generation, 5);
    let keep = view.rules.iter().find(|rule| rule.id == "T-KEEP").unwrap();
    assert_eq!(keep.state.runs, 24);
    // The state is in the store as well, in the same transaction as the scan's alerts.
    let stored = store.rule_states().unwrap();
    let keep_stored = stored
        .iter()
        .find(|state| state.rule_id == "T-KEEP")
        .unwrap();
    assert_eq!(keep_stored.runs, 24);
    // Alerts were handed on, one batch per scan that raised any.
    drop(handle);
    thread.join().unwrap();
    let mut raised = 0;
    while let Ok(batch) = raised_rx.try_recv() {
        raised += batch.alerts.len();
    }
    assert!(raised > 0);
}
