//! Tests of the file sink on a real temporary directory: refusals first (a symlink, a FIFO, a
//! directory, a read-only or vanished directory, a bad payload), then content and rotation.

use std::os::unix::fs::PermissionsExt;

use daemoneye_lib::alert::Alert;
use daemoneye_lib::ids::AlertId;

use super::*;
use crate::outbox::format::tests::alert;

/// Payloads whose JSON lines all have the same length.
fn payloads(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            serde_json::to_vec(&Alert {
                summary: format!("alert {n:04}"),
                ..alert()
            })
            .unwrap()
        })
        .collect()
}

/// The length of one line of [`payloads`] in `encoding`, line end included.
fn line_len(encoding: Encoding) -> u64 {
    encoding.encode(&payloads(1)[0]).unwrap().len() as u64 + 1
}

fn deliver(sink: &mut FileSink, payloads: &[Vec<u8>]) -> Result<(), BatchError> {
    let id = AlertId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let batch: Vec<Delivery<'_>> = payloads
        .iter()
        .map(|payload| Delivery {
            alert_id: &id,
            payload,
        })
        .collect();
    sink.deliver(&batch)
}

/// What the sink should have written for `payloads`.
fn rendered(encoding: Encoding, payloads: &[Vec<u8>]) -> String {
    payloads
        .iter()
        .map(|payload| encoding.encode(payload).unwrap() + "\n")
        .collect()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn sink(path: &Path, encoding: Encoding, max_bytes: u64, keep: u32) -> FileSink {
    FileSink::new(
        "archive",
        FileConfig {
            max_bytes,
            keep,
            ..FileConfig::new(path, encoding)
        },
    )
}

fn assert_class(err: &BatchError, acknowledged: usize, class: &str, contains: &str) {
    assert_eq!(err.acknowledged, acknowledged, "{err:?}");
    let got = match &err.error {
        SinkError::Retry { .. } => "retry",
        SinkError::Reject { .. } => "reject",
        SinkError::GiveUp { .. } => "give up",
    };
    assert_eq!(got, class, "{err:?}");
    assert!(err.error.reason().contains(contains), "{err:?}");
}

#[test]
fn a_symlink_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    fs::write(&target, "keep me\n").unwrap();
    let path = dir.path().join("alerts.jsonl");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let mut sink = sink(&path, Encoding::Json, 0, 0);
    let err = deliver(&mut sink, &payloads(1)).unwrap_err();
    assert_class(&err, 0, "give up", "is a symbolic link");
    assert_eq!(read(&target), "keep me\n");
    // A dangling link too: the sink must not create the file it points to.
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let err = deliver(
        &mut self::sink(&dangling, Encoding::Json, 0, 0),
        &payloads(1),
    )
    .unwrap_err();
    assert_class(&err, 0, "give up", "is a symbolic link");
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn a_directory_or_a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = deliver(&mut sink(dir.path(), Encoding::Json, 0, 0), &payloads(1)).unwrap_err();
    assert_class(&err, 0, "give up", "is a directory, not a regular file");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let err = deliver(&mut sink(&fifo, Encoding::Cef, 0, 0), &payloads(1)).unwrap_err();
    assert_class(&err, 0, "give up", "is a FIFO, not a regular file");
}

#[test]
fn a_read_only_directory_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    let path = ro.join("alerts.jsonl");
    let mut sink = sink(&path, Encoding::Json, 0, 0);
    let result = deliver(&mut sink, &payloads(1));
    if nix::unistd::geteuid().is_root() && result.is_ok() {
        // Root writes through permission bits; a parent that is a file fails at the same
        // open with ENOTDIR, the same kind of I/O error.
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let mut under_file = self::sink(&file.join("alerts.jsonl"), Encoding::Json, 0, 0);
        let err = deliver(&mut under_file, &payloads(1)).unwrap_err();
        assert_class(&err, 0, "retry", "alerts.jsonl");
    } else {
        assert_class(&result.unwrap_err(), 0, "retry", "cannot open");
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(deliver(&mut sink, &payloads(1)), Ok(()));
    }
}

#[test]
fn a_vanished_directory_is_retried_and_its_return_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let path = logs.join("alerts.jsonl");
    let mut sink = sink(&path, Encoding::Json, 0, 0);
    let all = payloads(2);
    deliver(&mut sink, &all[..1]).unwrap();
    fs::remove_dir_all(&logs).unwrap();
    let err = deliver(&mut sink, &all[1..]).unwrap_err();
    assert_class(&err, 0, "retry", "alerts.jsonl");
    fs::create_dir(&logs).unwrap();
    deliver(&mut sink, &all[1..]).unwrap();
    assert_eq!(read(&path), rendered(Encoding::Json, &all[1..]));
}

#[test]
fn a_bad_payload_stops_the_batch_after_writing_the_ones_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.cef");
    let mut sink = sink(&path, Encoding::Cef, 0, 0);
    let mut batch = payloads(3);
    batch[2] = b"{\"not\": \"an alert\"}".to_vec();
    let err = deliver(&mut sink, &batch).unwrap_err();
    assert_class(&err, 2, "reject", "payload is not an alert");
    assert_eq!(read(&path), rendered(Encoding::Cef, &batch[..2]));
    // A batch rejected at its first delivery does not even open the file.
    let symlink = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &symlink).unwrap();
    let err = deliver(
        &mut self::sink(&symlink, Encoding::Json, 0, 0),
        &[b"[]".to_vec()],
    );
    assert_class(&err.unwrap_err(), 0, "reject", "not a JSON object");
}

#[test]
fn content_is_exactly_the_rendered_lines_appended() {
    let dir = tempfile::tempdir().unwrap();
    for encoding in [Encoding::Json, Encoding::Cef] {
        let path = dir.path().join(format!("{encoding:?}"));
        fs::write(&path, "earlier\n").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        let mut sink = sink(&path, encoding, 0, 0);
        assert_eq!(sink.name(), "archive");
        assert_eq!(deliver(&mut sink, &[]), Ok(()));
        let all = payloads(5);
        deliver(&mut sink, &all[..2]).unwrap();
        deliver(&mut sink, &all[2..]).unwrap();
        assert_eq!(
            read(&path),
            format!("earlier\n{}", rendered(encoding, &all))
        );
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode(), mode);
    }
    let created = dir.path().join("new");
    deliver(&mut sink(&created, Encoding::Json, 0, 0), &payloads(1)).unwrap();
    let mode = fs::metadata(&created).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o640, 0, "created no wider than 0640: {mode:o}");
}

#[test]
fn rotation_happens_before_a_line_that_would_pass_the_limit() {
    let len = line_len(Encoding::Json);
    let check = |max_bytes: u64, per_file: usize| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let mut sink = sink(&path, Encoding::Json, max_bytes, 10);
        let all = payloads(5);
        // One at a time and all at once rotate at the same boundaries.
        for payload in &all {
            deliver(&mut sink, std::slice::from_ref(payload)).unwrap();
        }
        let dir2 = tempfile::tempdir().unwrap();
        let path2 = dir2.path().join("alerts.jsonl");
        deliver(&mut self::sink(&path2, Encoding::Json, max_bytes, 10), &all).unwrap();
        for path in [&path, &path2] {
            let mut files = vec![read(path)];
            let mut n = 1;
            while let Ok(text) = fs::read_to_string(format!("{}.{n}", path.display())) {
                files.push(text);
                n += 1;
            }
            // Newest first: PATH, PATH.1, …; oldest last.
            files.reverse();
            let chunks: Vec<String> = all
                .chunks(per_file)
                .map(|chunk| rendered(Encoding::Json, chunk))
                .collect();
            assert_eq!(files, chunks, "max_bytes {max_bytes}");
            for text in &files {
                assert!(
                    text.len() as u64 <= max_bytes.max(len),
                    "max_bytes {max_bytes}"
                );
            }
        }
    };
    check(2 * len, 2);
    check(2 * len + 1, 2);
    check(2 * len - 1, 1);
    check(len, 1);
    // A line longer than the limit gets a file of its own.
    check(len - 1, 1);
    check(1, 1);
    check(5 * len, 5);
}

#[test]
fn only_keep_rotated_files_are_kept_newest_first() {
    let len = line_len(Encoding::Cef);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.cef");
    let mut sink = sink(&path, Encoding::Cef, len, 2);
    let all = payloads(6);
    deliver(&mut sink, &all).unwrap();
    assert_eq!(read(&path), rendered(Encoding::Cef, &all[5..]));
    assert_eq!(read(&sink.rotated(1)), rendered(Encoding::Cef, &all[4..5]));
    assert_eq!(read(&sink.rotated(2)), rendered(Encoding::Cef, &all[3..4]));
    assert!(!sink.rotated(3).exists());
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["alerts.cef", "alerts.cef.1", "alerts.cef.2"]);
}

#[test]
fn keep_zero_removes_the_full_file() {
    let len = line_len(Encoding::Json);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let mut sink = sink(&path, Encoding::Json, len, 0);
    let all = payloads(3);
    deliver(&mut sink, &all).unwrap();
    assert_eq!(read(&path), rendered(Encoding::Json, &all[2..]));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_file_moved_away_outside_is_followed_by_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let mut sink = sink(&path, Encoding::Json, 0, 0);
    let all = payloads(2);
    deliver(&mut sink, &all[..1]).unwrap();
    let moved = dir.path().join("moved");
    fs::rename(&path, &moved).unwrap();
    deliver(&mut sink, &all[1..]).unwrap();
    assert_eq!(read(&moved), rendered(Encoding::Json, &all[..1]));
    assert_eq!(read(&path), rendered(Encoding::Json, &all[1..]));
    // Replaced by a link after being opened: refused at the next batch.
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&moved, &path).unwrap();
    let err = deliver(&mut sink, &all[1..]).unwrap_err();
    assert_class(&err, 0, "give up", "symbolic link");
    assert_eq!(read(&moved), rendered(Encoding::Json, &all[..1]));
}
