//! Alert exports built from real ledgers (`ledger::store`), verified, then tampered with in
//! every way an export can be: each must fail naming what was changed.

use std::path::Path;

use super::*;
use crate::ledger::entry::Source;
use crate::ledger::store::{Ledger, Settings};

/// An alert's canonical bytes, as `Alert::canonical_bytes` shapes them (its id first).
fn alert(n: u64) -> Vec<u8> {
    format!("{{\"id\":\"{n:032x}\",\"rule_id\":\"DE-T\",\"detected_at\":\"t{n}\"}}").into_bytes()
}

fn id(n: u64) -> String {
    format!("{n:032x}")
}

fn agent(body: Body) -> Entry {
    Entry {
        source: Source::Agent,
        time_ms: 1,
        body,
    }
}

fn recorded(alg: HashAlg, n: u64) -> Entry {
    agent(Body::AlertRecorded {
        alert_id: id(n),
        rule_id: "DE-T".into(),
        severity: "high".into(),
        host: "h".into(),
        alert_hash: alert_hash(alg, &alert(n)),
    })
}

fn scan(n: u64) -> Entry {
    Entry {
        source: Source::Procmond,
        time_ms: 1,
        body: Body::Scan {
            scan_id: n as i64,
            started_ms: 0,
            finished_ms: 1,
            process_count: 3,
            records_hash: [7; 32],
        },
    }
}

/// A ledger of a few entries, then `alerts` alert_recorded entries with a scan after every
/// third, then a few more entries.
fn ledger(dir: &Path, alg: HashAlg, alerts: u64) -> Ledger {
    let settings = Settings {
        hash: alg,
        origin: "daemoneye.ledger/test/alerts".to_owned(),
    };
    let (mut ledger, _) = Ledger::open(dir, &settings).expect("opens");
    ledger
        .append(&[scan(0), scan(1), recorded(alg, 1_000_000)])
        .expect("appends");
    let mut batch = Vec::new();
    for n in 0..alerts {
        batch.push(recorded(alg, n));
        if n % 3 == 2 {
            batch.push(scan(n));
        }
    }
    ledger.append(&batch).expect("appends");
    ledger.append(&[scan(9), scan(10)]).expect("appends");
    ledger
}

/// Runs the export protocol of [`ExportBuilder`] against `ledger`, as the agent does.
fn export(
    ledger: &mut Ledger,
    pending: Vec<Vec<u8>>,
) -> Result<(String, ExportSummary), AlertExportError> {
    let mut builder = ExportBuilder::new(ledger.hash(), pending);
    for bytes in ledger.entries(0, ledger.size(), usize::MAX).expect("reads") {
        builder.push(&bytes)?;
    }
    let body = builder.freeze()?;
    let export_entry = ledger.append(&[agent(body)]).expect("appends").start;
    // Something lands between the export entry and the checkpoint, as a scan may.
    ledger.append(&[scan(99)]).expect("appends");
    let note = ledger.checkpoint(5).expect("signs").note.clone();
    for bytes in ledger
        .entries(builder.size(), ledger.size(), usize::MAX)
        .expect("reads")
    {
        builder.push(&bytes)?;
    }
    // An entry after the checkpoint is not in the export.
    ledger
        .append(&[recorded(ledger.hash(), 5_000_000)])
        .expect("appends");
    builder.finish(&note, &ledger.verifier(), export_entry, MAX_EXPORT_BYTES)
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

fn record_of(lines: &[String], index: u64) -> usize {
    lines
        .iter()
        .position(|line| line.starts_with(&format!("{{\"index\":{index},")))
        .expect("a record of that index")
}

fn edit(line: &str, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(line).expect("json");
    change(&mut value);
    serde_json::to_string(&value).expect("json")
}

fn failure(text: &str, key: &NoteVerifier) -> String {
    verify_alert_export(text, key)
        .expect_err("must not verify")
        .0
}

#[test]
fn an_export_of_1000_alerts_verifies_and_every_tampering_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ledger = ledger(dir.path(), HashAlg::Blake3, 1000);
    let key = ledger.verifier();
    // Alert 1_000_000 was delivered: not pending, outside the range.
    let pending: Vec<Vec<u8>> = (0..1000).map(alert).collect();
    let (text, summary) = export(&mut ledger, pending).expect("exports");
    // 3 entries before, 1000 alerts and 333 scans, 2 scans, the export entry and a scan.
    assert_eq!(
        (
            summary.alerts,
            summary.first,
            summary.size,
            summary.unrecorded
        ),
        (1000, 3, 3 + 1333 + 2 + 2, 0)
    );
    assert!(is_alert_export(text.as_bytes()));
    let report = verify_alert_export(&text, &key).expect("verifies");
    assert_eq!(report.verified.len(), 1000);
    assert_eq!(report.verified[0], (3, id(0)));
    assert_eq!(report.verified[999].1, id(999));
    assert!(report.not_carried.is_empty());
    assert_eq!((report.first, report.checkpoint.size), (3, summary.size));
    assert_eq!(report.export_entry, summary.export_entry);

    let all = lines(&text);
    // Alert 500 is entry 3 + 500 + 166 (a scan after every third alert before it).
    let index_500 = 3 + 500 + 500 / 3;
    let at = record_of(&all, index_500);

    // One byte of one alert changed (the base64 re-encoded).
    for position in [0, 10, alert(500).len() - 1] {
        let mut changed = all.clone();
        changed[at] = edit(&all[at], |value| {
            let mut bytes = BASE64
                .decode(value["alert"].as_str().expect("carried"))
                .expect("base64");
            bytes[position] ^= 0x01;
            value["alert"] = BASE64.encode(bytes).into();
        });
        let err = failure(&join(&changed), &key);
        assert_eq!(
            err,
            format!(
                "alert {} (entry {index_500}) is not the alert the host recorded: its bytes were changed",
                id(500)
            )
        );
    }

    // One record dropped.
    let mut dropped = all.clone();
    dropped.remove(at);
    let err = failure(&join(&dropped), &key);
    assert!(
        err.starts_with(&format!(
            "entry {index_500} (alert {} by the header) is missing from the export",
            id(500)
        )),
        "{err}"
    );

    // One alert added beside a scan entry.
    let scan_at = at + 1;
    assert!(!all[scan_at].contains("\"alert\""), "a scan record");
    let mut added = all.clone();
    added[scan_at] = edit(&all[scan_at], |value| {
        value["alert"] = BASE64.encode(alert(7_777)).into();
    });
    let err = failure(&join(&added), &key);
    assert!(
        err.ends_with(&format!(
            "yet alert {} sits beside it: an alert was added",
            id(7_777)
        )),
        "{err}"
    );

    // One record added: a copy of another, or one past the end.
    let mut copied = all.clone();
    copied.insert(at + 1, all[at].clone());
    let err = failure(&join(&copied), &key);
    assert!(
        err.contains(&format!(
            "a record for entry {index_500} carrying alert {} repeats an entry",
            id(500)
        )),
        "{err}"
    );
    let mut beyond = all.clone();
    beyond.push(edit(&all[at], |value| value["index"] = summary.size.into()));
    let err = failure(&join(&beyond), &key);
    assert!(err.contains("is beyond the checkpoint's size"), "{err}");

    // An alert taken away from beside its entry: the export's entry counts it.
    let mut stripped = all.clone();
    stripped[at] = edit(&all[at], |value| {
        value.as_object_mut().expect("object").remove("alert");
    });
    let err = failure(&join(&stripped), &key);
    assert!(
        err.ends_with("records 1000 alerts exported, the file carries 999: alerts were removed"),
        "{err}"
    );

    // The front cut off: the range no longer starts where the export's entry says.
    let mut front = all.clone();
    front.remove(1);
    front[0] = edit(&all[0], |value| {
        value["first"] = 4.into();
        value["alerts"].as_array_mut().expect("list").remove(0);
    });
    let err = failure(&join(&front), &key);
    assert!(err.contains("alerts were removed"), "{err}");

    // The end cut off.
    let mut end = all.clone();
    end.pop();
    let err = failure(&join(&end), &key);
    assert!(
        err.ends_with("is missing from the export, which ends there: records were removed"),
        "{err}"
    );

    // An entry changed (its alert with it, so that the alert's hash matches).
    let mut forged = all.clone();
    forged[at] = edit(&all[at], |value| {
        let mut entry = recorded(HashAlg::Blake3, 8_888);
        entry.time_ms = 1;
        value["entry"] = BASE64.encode(entry.encode().expect("encodes")).into();
        value["alert"] = BASE64.encode(alert(8_888)).into();
    });
    let err = failure(&join(&forged), &key);
    assert!(
        err.starts_with(&format!(
            "entry {index_500} (alert {} by the header) is not the entry the checkpoint",
            id(500)
        )),
        "{err}"
    );

    // Another ledger's key.
    let other = tempfile::tempdir().expect("temp dir");
    let other = ledger_key(other.path());
    let err = failure(&text, &other);
    assert!(
        err.starts_with("the export's checkpoint does not verify"),
        "{err}"
    );
}

fn ledger_key(dir: &Path) -> NoteVerifier {
    ledger(dir, HashAlg::Blake3, 0).verifier()
}

#[test]
fn an_older_exports_entry_does_not_vouch_for_a_newer_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ledger = ledger(dir.path(), HashAlg::Blake3, 6);
    let key = ledger.verifier();
    // The first export carries alerts 0 and 1; the second 0, 1 and 2.
    let (older, older_summary) = export(&mut ledger, vec![alert(0), alert(1)]).expect("exports");
    verify_alert_export(&older, &key).expect("verifies");
    let (newer, _) = export(&mut ledger, vec![alert(0), alert(1), alert(2)]).expect("exports");
    let report = verify_alert_export(&newer, &key).expect("verifies");
    assert_eq!(report.verified.len(), 3);
    // Alert 2 taken out and the header pointed at the first export's entry, whose count and
    // digest match alerts 0 and 1.
    let mut all = lines(&newer);
    let at = record_of(&all, 3 + 2);
    all[at] = edit(&all[at], |value| {
        value.as_object_mut().expect("object").remove("alert");
    });
    all[0] = edit(&all[0], |value| {
        value["export_entry"] = older_summary.export_entry.into();
        value["alerts"].as_array_mut().expect("list").pop();
    });
    let err = failure(&join(&all), &key);
    assert!(
        err.starts_with(&format!(
            "the header names entry {} as the export's, but entry",
            older_summary.export_entry
        )),
        "{err}"
    );
}

#[test]
fn delivered_alerts_are_listed_not_carried_and_unrecorded_ones_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ledger = ledger(dir.path(), HashAlg::Sha256, 10);
    let key = ledger.verifier();
    // 3, 4 and 8 are pending (8 twice: two sinks); 5, 6, 7 were delivered; 42 was never
    // recorded (raised before alert_recorded existed).
    let pending = vec![alert(3), alert(4), alert(8), alert(8), alert(42)];
    let (text, summary) = export(&mut ledger, pending).expect("exports");
    assert_eq!((summary.alerts, summary.unrecorded), (3, 1));
    let report = verify_alert_export(&text, &key).expect("verifies");
    let ids = |list: &[(u64, String)]| list.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&report.verified), [id(3), id(4), id(8)]);
    assert_eq!(ids(&report.not_carried), [id(5), id(6), id(7), id(9)]);
    assert_eq!(report.first, 3 + 3 + 1);
}

#[test]
fn nothing_to_export_is_an_error_not_an_empty_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ledger = ledger(dir.path(), HashAlg::Blake3, 3);
    assert_eq!(
        export(&mut ledger, vec![alert(77)]).unwrap_err(),
        AlertExportError::NothingRecorded { pending: 1 }
    );
    assert_eq!(
        export(&mut ledger, Vec::new()).unwrap_err(),
        AlertExportError::NothingRecorded { pending: 0 }
    );
}

#[test]
fn the_digest_is_as_specified() {
    let carried = [(3u64, [0xaa; 32]), (9, [0xbb; 32])];
    let mut bytes = b"DEYEALX1".to_vec();
    bytes.extend_from_slice(&2u64.to_be_bytes());
    bytes.extend_from_slice(&3u64.to_be_bytes());
    bytes.extend_from_slice(&[0xaa; 32]);
    bytes.extend_from_slice(&9u64.to_be_bytes());
    bytes.extend_from_slice(&[0xbb; 32]);
    for alg in [HashAlg::Blake3, HashAlg::Sha256] {
        assert_eq!(carried_digest(alg, &carried), alg.digest(&[&bytes]));
        assert_eq!(alert_hash(alg, b"{}"), alg.digest(&[b"{}"]));
    }
}

#[test]
fn a_malformed_file_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ledger = ledger(dir.path(), HashAlg::Blake3, 4);
    let key = ledger.verifier();
    let (text, _) = export(&mut ledger, vec![alert(1)]).expect("exports");
    verify_alert_export(&text, &key).expect("verifies");
    let all = lines(&text);
    let cases: Vec<(String, &str)> = vec![
        (
            text.trim_end().to_owned(),
            "the export does not end in a newline",
        ),
        (
            text.replace('\n', "\r\n"),
            "the export holds a carriage return",
        ),
        (String::new(), "the export does not end in a newline"),
        (
            join(&[edit(&all[0], |v| {
                v["format"] = "daemoneye/alert-export@v2".into()
            })]),
            "the export's format is daemoneye/alert-export@v2, not daemoneye/alert-export@v1",
        ),
        (
            join(&[edit(&all[0], |v| v["extra"] = 1.into())]),
            "line 1 is not an alert export header: unknown field",
        ),
        (format!("{text}\n"), "line "),
        (
            join(&[
                all[0].clone(),
                edit(&all[1], |v| v["proof"][0] = "AAAA".into()),
            ]),
            "a proof hash of entry",
        ),
        (
            join(&[edit(&all[0], |v| v["hash"] = "sha256".into())]),
            "the header says sha256",
        ),
    ];
    for (bad, expected) in cases {
        let err = failure(&bad, &key);
        assert!(
            err.starts_with(expected) || err.contains(expected),
            "{expected:?}: {err}"
        );
    }
    let huge = format!("{}{}\n", all[0], "x".repeat(MAX_LINE_BYTES + 1));
    assert!(failure(&huge, &key).contains("allowed"));
}

#[test]
fn an_export_whose_range_holds_a_later_export_refuses_to_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ledger = ledger(dir.path(), HashAlg::Sha256, 3);
    let mut builder = ExportBuilder::new(ledger.hash(), vec![alert(1)]);
    for bytes in ledger.entries(0, ledger.size(), usize::MAX).expect("reads") {
        builder.push(&bytes).expect("pushes");
    }
    let body = builder.freeze().expect("freezes");
    let export_entry = ledger
        .append(&[agent(body.clone())])
        .expect("appends")
        .start;
    // Another export, made at the same moment, lands before the checkpoint.
    let other = ledger.append(&[agent(body)]).expect("appends").start;
    let note = ledger.checkpoint(5).expect("signs").note.clone();
    for bytes in ledger
        .entries(builder.size(), ledger.size(), usize::MAX)
        .expect("reads")
    {
        builder.push(&bytes).expect("pushes");
    }
    assert_eq!(
        builder
            .finish(&note, &ledger.verifier(), export_entry, MAX_EXPORT_BYTES)
            .unwrap_err(),
        AlertExportError::Concurrent { other }
    );
}
