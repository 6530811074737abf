//! Exports written from a real ledger, read back and verified; the writer's refusals; the
//! `entries.bin` reader on good and bad bytes.

use std::io::Cursor;

use super::*;
use crate::ledger::store::Ledger;
use crate::ledger::verify::{Verified, verify_dir};

/// The verifier's test ledger: 13 entries, checkpoints at sizes 4 and 10.
fn ledger(dir: &Path) -> Ledger {
    crate::ledger::verify::tests::ledger(dir).0
}

/// What the CLI does, with the ledger in place of the agent: the newest checkpoint is the
/// one at size 10 (3 entries are not covered yet), proofs for the last `proofs` entries and stored checkpoints.
fn export(ledger: &Ledger, out: &Path, proofs: u64) -> ExportSummary {
    let mut writer = ExportWriter::create(out).expect("creates");
    let newest = ledger.latest().expect("signed").note.clone();
    let key = format!("{}\n", ledger.verifier());
    let size = writer.start(&key, &newest).expect("starts").size;
    for note in ledger.checkpoint_notes(0, 100).expect("lists") {
        writer.stored_checkpoint(&note).expect("verifies");
    }
    for index in 0..size {
        writer
            .entry(&ledger.entry(index).expect("reads"))
            .expect("writes");
    }
    for index in size.saturating_sub(proofs)..size {
        let text = ledger.prove(index).expect("proves").to_text();
        writer.inclusion_proof(index, &text).expect("writes");
    }
    let stored = writer.stored().to_vec();
    for (size1, note) in stored.iter().rev().take(proofs as usize) {
        let text = ledger.consistency(note).expect("proves").to_text();
        writer.consistency_proof(*size1, &text).expect("writes");
    }
    writer.finish().expect("finishes")
}

fn names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("lists") {
        let path = entry.expect("lists").path();
        let name = path
            .strip_prefix(dir)
            .expect("inside")
            .display()
            .to_string();
        if path.is_dir() {
            out.extend(names(&path).into_iter().map(|n| format!("{name}/{n}")));
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

#[test]
fn an_export_has_the_documented_files_and_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = ledger(&dir.path().join("ledger"));
    let out = dir.path().join("export");
    let summary = export(&ledger, &out, 2);
    assert_eq!(
        summary.to_string(),
        format!(
            "exported 10 entries, 3 checkpoints, 2 inclusion and 2 consistency proofs to {}",
            out.display()
        )
    );
    assert_eq!(
        names(&out),
        [
            "README.md",
            "checkpoint",
            "checkpoints/000000000004.checkpoint",
            "checkpoints/000000000010.checkpoint",
            "entries.bin",
            "entries.jsonl",
            "ledger.pub",
            "proofs/consistency-000000000004.txt",
            "proofs/consistency-000000000010.txt",
            "proofs/entry-000000000008.proof",
            "proofs/entry-000000000009.proof",
        ]
    );
    // entries.bin: a 4-byte big-endian length, then the entry, for each entry.
    let bin = fs::read(out.join(ENTRIES_BIN)).expect("reads");
    let first = ledger.entry(0).expect("reads");
    assert_eq!(bin[..4], (first.len() as u32).to_be_bytes());
    assert_eq!(bin[4..4 + first.len()], first);
    let lines: Vec<serde_json::Value> = fs::read_to_string(out.join(ENTRIES_JSONL))
        .expect("reads")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 10);
    assert_eq!(
        (&lines[9]["index"], &lines[9]["kind"]),
        (&9.into(), &"agent_stopped".into())
    );
    assert_eq!(
        fs::read_to_string(out.join(KEY)).expect("reads"),
        format!("{}\n", ledger.verifier())
    );

    let Verified::Directory(report) = verify_dir(&out, &ledger.verifier()).expect("verifies")
    else {
        panic!("not a directory report");
    };
    assert_eq!(
        (
            report.entries,
            report.checkpoints,
            report.inclusion_proofs,
            report.consistency_proofs
        ),
        (10, 3, 2, 2)
    );
}

#[test]
fn the_reader_gives_back_what_the_writer_wrote_and_skips_temporary_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = ledger(&dir.path().join("ledger"));
    let out = dir.path().join("export");
    export(&ledger, &out, 1);
    fs::write(out.join("proofs/.entry-000000000009.proof.tmp"), "half").expect("writes");
    let export = Export::open(&out).expect("an export");
    let mut entries = Vec::new();
    export
        .entries(|bytes| {
            entries.push(bytes.to_vec());
            Ok::<(), ExportError>(())
        })
        .expect("reads");
    let expected: Vec<Vec<u8>> = (0..10).map(|i| ledger.entry(i).expect("reads")).collect();
    assert_eq!(entries, expected);
    let mut proofs = Vec::new();
    export
        .proofs(|name, _| {
            proofs.push(name);
            Ok::<(), ExportError>(())
        })
        .expect("reads");
    assert_eq!(
        proofs,
        [
            "proofs/consistency-000000000010.txt",
            "proofs/entry-000000000009.proof"
        ]
    );
    assert_eq!(
        export.checkpoint_of_size(4).expect("reads"),
        ledger.checkpoint_notes(0, 1).expect("lists")[0]
    );
    assert!(Export::open(dir.path()).is_none(), "no entries.bin");
}

#[test]
fn the_writer_refuses_what_would_not_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let other = ledger(&dir.path().join("other")); // a key of its own
    let ledger = ledger(&dir.path().join("ledger"));
    let key = format!("{}\n", ledger.verifier());
    let newest = ledger.latest().expect("signed").note.clone();
    let foreign = other.latest().expect("signed").note.clone();
    let fresh = |name: &str| ExportWriter::create(&dir.path().join(name)).expect("creates");

    let err = ExportWriter::create(&dir.path().join("ledger"))
        .err()
        .expect("not empty");
    assert!(matches!(err, ExportError::NotEmpty(_)), "{err}");
    let err = fresh("a").start("not a key", &newest).expect_err("bad key");
    assert!(matches!(err, ExportError::Key(_)), "{err}");
    let err = fresh("b").start(&key, &foreign).expect_err("foreign");
    assert!(
        matches!(
            err,
            ExportError::Checkpoint {
                which: "the new",
                ..
            }
        ),
        "{err}"
    );
    let mut writer = fresh("c");
    let err = writer.entry(b"x").expect_err("not started");
    assert!(matches!(err, ExportError::Sequence(_)), "{err}");
    writer.start(&key, &newest).expect("starts");
    let err = writer.stored_checkpoint(&foreign).expect_err("foreign");
    assert!(
        matches!(
            err,
            ExportError::Checkpoint {
                which: "a stored",
                ..
            }
        ),
        "{err}"
    );
    let err = writer.entry(&[]).expect_err("empty entry");
    assert!(matches!(err, ExportError::Sequence(_)), "{err}");
    writer
        .entry(&ledger.entry(0).expect("reads"))
        .expect("writes");
    let err = writer.finish().expect_err("9 entries missing");
    assert!(
        err.to_string()
            .contains("covers 10 entries, the export has 1"),
        "{err}"
    );
    assert!(
        !dir.path().join("c").join(README).exists(),
        "no README for a failed export"
    );

    let mut writer = fresh("d");
    writer.start(&key, &newest).expect("starts");
    for index in 0..10 {
        writer
            .entry(&ledger.entry(index).expect("reads"))
            .expect("writes");
    }
    let err = writer
        .entry(&ledger.entry(10).expect("reads"))
        .expect_err("uncovered");
    assert!(err.to_string().contains("one too many"), "{err}");
}

#[test]
fn stored_checkpoints_are_kept_once_per_size_and_never_past_the_newest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ledger = ledger(&dir.path().join("ledger"));
    let key = format!("{}\n", ledger.verifier());
    let newest = ledger.latest().expect("signed").note.clone();
    ledger.checkpoint(4).expect("signs a newer one, size 13");
    let mut writer = ExportWriter::create(&dir.path().join("out")).expect("creates");
    writer.start(&key, &newest).expect("starts");
    let notes = ledger.checkpoint_notes(0, 100).expect("lists");
    let kept: Vec<bool> = notes
        .iter()
        .chain(&notes[..1])
        .map(|note| writer.stored_checkpoint(note).expect("verifies"))
        .collect();
    assert_eq!(kept, [true, true, false, false], "sizes 4, 10, 13, 4 again");
    let sizes: Vec<u64> = writer.stored().iter().map(|(size, _)| *size).collect();
    assert_eq!(sizes, [4, 10]);
}

/// Reads `bytes` as `entries.bin`: the entries before the first problem, and the problem.
fn check(name: &str, bytes: &[u8], expected: &[Vec<u8>], error: Option<&str>) {
    let mut got = Vec::new();
    let mut failure = None;
    for item in EntryReader::new(Cursor::new(bytes)) {
        match item {
            Ok(entry) => got.push(entry),
            Err(err) => failure = Some(err.to_string()),
        }
    }
    assert_eq!(got, expected, "{name}");
    assert_eq!(failure.as_deref(), error, "{name}");
}

#[test]
fn entries_bin_is_read_strictly() {
    let record = |len: u32, fill: u8| {
        let mut out = len.to_be_bytes().to_vec();
        out.extend(std::iter::repeat_n(fill, len as usize));
        out
    };
    let two = [record(3, 1), record(1, 2)].concat();
    let max = MAX_ENTRY_BYTES as u32;
    let ok_two = [vec![1; 3], vec![2]];
    check("empty", &[], &[], None);
    check("two entries", &two, &ok_two, None);
    check(
        "the largest entry",
        &record(max, 7),
        &[vec![7; MAX_ENTRY_BYTES]],
        None,
    );
    check(
        "half a length",
        &[two.clone(), vec![0, 0]].concat(),
        &ok_two,
        Some("entries.bin ends inside a length at byte 12"),
    );
    check(
        "a zero length",
        &[vec![0; 4], two.clone()].concat(),
        &[],
        Some("entries.bin: entry length 0 is out of range at byte 0"),
    );
    check(
        "a length over the limit",
        &[record(1, 9), (max + 1).to_be_bytes().to_vec()].concat(),
        &[vec![9]],
        Some("entries.bin: entry length 16385 is out of range at byte 5"),
    );
    check(
        "half an entry",
        &two[..11],
        &[vec![1; 3]],
        Some("entries.bin ends inside the entry at byte 7"),
    );
}

#[test]
fn a_text_file_that_is_not_a_regular_file_or_too_large_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::create_dir(dir.path().join("checkpoint")).expect("creates");
    let err = read_text(&dir.path().join("checkpoint"), MAX_NOTE_BYTES).expect_err("a directory");
    assert!(
        matches!(
            &err,
            ExportError::Refused(BoundedReadError::NotRegular {
                kind: fsutil::FileKind::Directory,
                ..
            })
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("is a directory, not a regular file"),
        "{err}"
    );
    let big = dir.path().join("big");
    fs::write(&big, vec![b'a'; MAX_NOTE_BYTES + 1]).expect("writes");
    let err = read_text(&big, MAX_NOTE_BYTES).expect_err("too large");
    assert!(
        matches!(
            &err,
            ExportError::Refused(BoundedReadError::TooLarge { .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().ends_with(&format!(
            "is larger than the limit of {MAX_NOTE_BYTES} bytes"
        )),
        "{err}"
    );
    assert_eq!(
        read_text(&big, MAX_FILE_BYTES)
            .expect("a proof may be larger")
            .len(),
        MAX_NOTE_BYTES + 1
    );
    fs::write(&big, [0xff, 0xfe]).expect("writes");
    let err = read_text(&big, MAX_NOTE_BYTES).expect_err("not UTF-8");
    assert!(err.to_string().ends_with("not UTF-8 text"), "{err}");
}

#[test]
fn a_directory_with_too_many_names_is_refused_before_any_is_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = ledger(&dir.path().join("ledger"));
    let out = dir.path().join("export");
    export(&ledger, &out, 1);
    // Hidden names count too: the listing is what is bounded.
    for n in 0..MAX_PROOF_FILES {
        fs::File::create(out.join(format!("proofs/.x{n}"))).expect("creates");
    }
    let export = Export::open(&out).expect("an export");
    let err = export
        .proofs(|name, _| Err(ExportError::Sequence(format!("read {name}"))))
        .expect_err("too many");
    assert!(
        matches!(
            &err,
            ExportError::Refused(BoundedReadError::TooManyEntries {
                limit: MAX_PROOF_FILES,
                ..
            })
        ),
        "{err}"
    );
}
