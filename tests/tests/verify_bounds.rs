//! `daemoneye-cli audit verify` on hostile export and ledger directories, and its usage
//! errors: every run ends (a 30 s process limit turns a hang into a failure) with exit 3 and
//! a one-line reason for what came from the site (a FIFO, a device, a directory where a file
//! belongs, a file over its limit, 100,000 extra files, deep nesting), and with exit 2 for
//! what the auditor gave (a key file that cannot be read, a consistency proof without
//! `--old`).
//!
//! The ledger and the export are made with the library, as the agent and the CLI make them;
//! no agent runs. Each run is capped at 1 GiB of address space so that a regression fails
//! quickly instead of taking the machine's memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemoneye_e2e::bin;
use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::entry::{Body, Entry, Source};
use daemoneye_lib::ledger::export::ExportWriter;
use daemoneye_lib::ledger::store::{Ledger, Settings};
use nix::sys::stat::Mode;

/// A run that takes longer than this hangs.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// How a run of `audit verify` ended.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn read_all(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    let mut pipe = pipe.expect("piped");
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// `daemoneye-cli audit verify FILE --key KEY [--old OLD]`, offline, bounded in memory and time.
fn verify(file: &Path, key: &str, old: Option<&Path>) -> Run {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
        .arg(bin("daemoneye-cli"))
        .args(["audit", "verify"])
        .arg(file)
        .args(["--key", key]);
    if let Some(old) = old {
        command.arg("--old").arg(old);
    }
    let mut child = command
        .env_remove("DAEMONEYE_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting daemoneye-cli");
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let started = Instant::now();
    let deadline = started + PROCESS_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "audit verify {} still runs after {PROCESS_TIMEOUT:?}: it hangs",
                file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Printed for whoever measures (run with --nocapture), never asserted.
    eprintln!(
        "audit verify {}: {status} after {:?}",
        file.display(),
        started.elapsed()
    );
    Run {
        code: status.code(),
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    }
}

/// Asserts exit `code` and one stderr line containing every one of `needles`; returns it.
fn assert_refused(run: &Run, code: i32, needles: &[&str], what: &str) -> String {
    assert_eq!(run.code, Some(code), "{what}: {run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line on stderr: {run:?}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: {needle:?} in {:?}",
            lines[0]
        );
    }
    lines[0].to_owned()
}

fn assert_verified(run: &Run, what: &str) {
    assert_eq!(run.code, Some(0), "{what}: {run:?}");
    assert!(run.stdout.starts_with("verified: "), "{what}: {run:?}");
}

fn entry(n: u64) -> Entry {
    Entry {
        source: Source::Agent,
        time_ms: n as i64,
        body: Body::AgentStopped {
            reason: format!("test {n}"),
        },
    }
}

/// A ledger of 10 entries with checkpoints at sizes 4 and 10, an export of it, its key text
/// and the older checkpoint's note.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ledger_dir: PathBuf,
    export: PathBuf,
    key: String,
    old: PathBuf,
    consistency: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    let ledger_dir = root.join("ledger");
    let settings = Settings {
        hash: HashAlg::Sha256,
        origin: "daemoneye.ledger/test/bounds".to_owned(),
    };
    let (mut ledger, _) = Ledger::open(&ledger_dir, &settings).expect("opens");
    ledger
        .append(&(0..4).map(entry).collect::<Vec<_>>())
        .expect("appends");
    let old_note = ledger.checkpoint(1).expect("signs").note.clone();
    ledger
        .append(&(4..10).map(entry).collect::<Vec<_>>())
        .expect("appends");
    let newest = ledger.checkpoint(2).expect("signs").note.clone();
    let key = ledger.verifier().to_string();

    let export = root.join("export");
    let mut writer = ExportWriter::create(&export).expect("creates");
    let size = writer
        .start(&format!("{key}\n"), &newest)
        .expect("starts")
        .size;
    for note in ledger.checkpoint_notes(0, 100).expect("lists") {
        writer.stored_checkpoint(&note).expect("verifies");
    }
    for index in 0..size {
        writer
            .entry(&ledger.entry(index).expect("reads"))
            .expect("writes");
    }
    for index in 0..size {
        let text = ledger.prove(index).expect("proves").to_text();
        writer.inclusion_proof(index, &text).expect("writes");
    }
    let cons_text = ledger.consistency(&old_note).expect("proves").to_text();
    writer.consistency_proof(4, &cons_text).expect("writes");
    writer.finish().expect("finishes");

    let old = root.join("old.checkpoint");
    std::fs::write(&old, &old_note).expect("writes");
    let consistency = root.join("grew.txt");
    std::fs::write(&consistency, &cons_text).expect("writes");
    drop(ledger);
    Fixture {
        _dir: dir,
        root,
        ledger_dir,
        export,
        key,
        old,
        consistency,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates");
    for entry in std::fs::read_dir(from).expect("lists") {
        let entry = entry.expect("lists");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("stat").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copies");
        }
    }
}

/// A copy of the fixture's export named `name`, changed by `change`.
fn changed_export(fx: &Fixture, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
    let copy = fx.root.join(name);
    copy_dir(&fx.export, &copy);
    change(&copy);
    copy
}

/// A copy of the export's name, how it is changed, and what the refusal must say.
type Case = (&'static str, fn(&Path), &'static [&'static str]);

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).expect("mkfifo");
}

fn symlink(target: &Path, link: &Path) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

#[test]
fn hostile_export_directories_end_in_a_one_line_refusal() {
    let fx = fixture();
    assert_verified(&verify(&fx.export, &fx.key, None), "the export");

    // 100,000 extra files where the proofs are.
    let many = changed_export(&fx, "many-files", |dir| {
        for n in 0..100_000 {
            std::fs::File::create(dir.join("proofs").join(format!("extra-{n:06}")))
                .expect("creates");
        }
    });
    assert_refused(
        &verify(&many, &fx.key, None),
        3,
        &["proofs", "more than"],
        "100,000 extra files in proofs/",
    );

    // Deep nesting under checkpoints/: the reader never descends.
    let deep = changed_export(&fx, "deep", |dir| {
        let mut path = dir.join("checkpoints");
        for _ in 0..200 {
            path = path.join("d");
        }
        std::fs::create_dir_all(&path).expect("creates");
        std::fs::write(path.join("x.checkpoint"), "x").expect("writes");
    });
    assert_refused(
        &verify(&deep, &fx.key, None),
        3,
        &["checkpoints/d", "directory, not a regular file"],
        "deep nesting",
    );

    let cases: [Case; 6] = [
        (
            "checkpoint-fifo",
            |dir| mkfifo(&dir.join("checkpoint")),
            &["checkpoint", "FIFO"],
        ),
        (
            "entries-fifo",
            |dir| mkfifo(&dir.join("entries.bin")),
            &["entries.bin", "FIFO"],
        ),
        (
            "stored-checkpoint-dev-zero",
            |dir| {
                symlink(
                    Path::new("/dev/zero"),
                    &dir.join("checkpoints/000000000004.checkpoint"),
                );
            },
            &["000000000004.checkpoint", "character device"],
        ),
        (
            "proof-fifo",
            |dir| mkfifo(&dir.join("proofs/entry-000000000003.proof")),
            &["entry-000000000003.proof", "FIFO"],
        ),
        (
            "proof-too-large",
            |dir| {
                std::fs::File::create(dir.join("proofs/entry-000000000003.proof"))
                    .expect("creates")
                    .set_len(5 << 20)
                    .expect("grows");
            },
            &["entry-000000000003.proof", "larger than"],
        ),
        (
            "checkpoint-too-large",
            |dir| {
                std::fs::File::create(dir.join("checkpoint"))
                    .expect("creates")
                    .set_len(2 << 30)
                    .expect("grows");
            },
            &["checkpoint", "larger than"],
        ),
    ];
    for (name, change, needles) in cases {
        let copy = changed_export(&fx, name, change);
        assert_refused(&verify(&copy, &fx.key, None), 3, needles, name);
    }
}

#[test]
fn hostile_ledger_directories_end_in_a_one_line_refusal() {
    let fx = fixture();
    assert_verified(&verify(&fx.ledger_dir, &fx.key, None), "the ledger");
    for (name, needles) in [
        ("checkpoints.log", ["checkpoints.log", "FIFO"]),
        ("entries.log", ["entries.log", "FIFO"]),
    ] {
        let copy = fx.root.join(format!("ledger-{name}"));
        copy_dir(&fx.ledger_dir, &copy);
        mkfifo(&copy.join(name));
        assert_refused(&verify(&copy, &fx.key, None), 3, &needles, name);
    }
}

#[test]
fn a_consistency_proof_without_old_is_a_usage_error() {
    let fx = fixture();
    assert_verified(
        &verify(&fx.consistency, &fx.key, Some(&fx.old)),
        "a consistency proof with --old",
    );
    assert_refused(
        &verify(&fx.consistency, &fx.key, None),
        2,
        &["--old"],
        "a consistency proof without --old",
    );
    // An --old that is not a regular file does not verify (it is a checkpoint like any other).
    let fifo = fx.root.join("old.fifo");
    mkfifo(&fifo);
    assert_refused(
        &verify(&fx.consistency, &fx.key, Some(&fifo)),
        3,
        &["FIFO"],
        "--old is a FIFO",
    );
}

#[test]
fn a_key_file_that_cannot_be_read_is_a_usage_error() {
    let fx = fixture();
    let checkpoint = fx.export.join("checkpoint");
    assert_verified(&verify(&checkpoint, &fx.key, None), "the key as text");
    let key_file = fx.root.join("ledger.pub");
    std::fs::write(&key_file, format!("{}\n", fx.key)).expect("writes");
    assert_verified(
        &verify(&checkpoint, key_file.to_str().expect("UTF-8"), None),
        "the key in a file",
    );

    let missing = fx.root.join("no-such-dir").join("ledger.pub");
    let line = assert_refused(
        &verify(&checkpoint, missing.to_str().expect("UTF-8"), None),
        2,
        &["cannot read the key file", "ledger.pub"],
        "a missing key file",
    );
    assert!(!line.contains("does not parse"), "{line}");

    let fifo = fx.root.join("key.fifo");
    mkfifo(&fifo);
    assert_refused(
        &verify(&checkpoint, fifo.to_str().expect("UTF-8"), None),
        2,
        &["cannot read the key file", "FIFO"],
        "a key FIFO",
    );
    assert_refused(
        &verify(&checkpoint, "/dev/zero", None),
        2,
        &["cannot read the key file", "character device"],
        "/dev/zero as the key",
    );
    // Still a usage error: text that is neither a file nor a key.
    assert_refused(
        &verify(&checkpoint, "not+a+key", None),
        2,
        &["does not parse"],
        "key text that does not parse",
    );
}
