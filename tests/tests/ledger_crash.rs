//! SIGKILL procmond while an agent appends to the audit ledger as fast as it can, again and
//! again: every append procmond acknowledged survives, in order, at the index it was given;
//! the ledger opens again and verifies offline after every crash, also after a torn write at
//! the end of `entries.log` or `checkpoints.log`; and the checkpoints signed before a crash are
//! prefixes of the ledger after it (consistency proofs verify).
//!
//! Runs as root (procmond drops its privileges and hands `<data>/ledger` to the user it
//! drops to); CI runs it as root.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daemoneye_agent::link::ProcmondLink;
use daemoneye_e2e::bin;
use daemoneye_lib::ipc::proto::{self, audit_request::Kind};
use daemoneye_lib::ipc::transport::PeerPolicy;
use daemoneye_lib::ipc::{Limits, calls};
use daemoneye_lib::ledger::entry::{Body, Entry, Source};
use daemoneye_lib::ledger::note::NoteVerifier;
use daemoneye_lib::ledger::verify::{Verified, verify_text};
use serde_json::Value;

/// Crashes in all.
const ROUNDS: usize = 24;
const ENTRIES_MAGIC: &[u8; 8] = b"DEYELOG1";

/// A procmond started by the test (its parent, as procmond requires), killed when dropped.
struct Procmond {
    child: Child,
    log: PathBuf,
}

impl Procmond {
    fn start(dir: &Path, start: usize) -> Self {
        let log = dir.join(format!("procmond-{start:02}.log"));
        let out = File::create(&log).expect("creating procmond's log file");
        let child = Command::new(bin("procmond"))
            .arg("--socket")
            .arg(dir.join("p.sock"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .env_remove("DAEMONEYE_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a second handle on the log file"))
            .stderr(out)
            .spawn()
            .expect("starting procmond");
        Self { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything procmond logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The fields of the log lines whose message is `message`.
    fn logged(&self, message: &str) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == message)
            .map(|line| line["fields"].clone())
            .collect()
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for procmond to exit by itself.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().expect("waiting for procmond")
    }
}

impl Drop for Procmond {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What one attempted append was: round and sequence number, which its body carries.
type Attempt = (usize, usize);

fn body_for(round: usize, n: usize) -> Body {
    let id = format!("crash-{round}-{n}");
    if n.is_multiple_of(2) {
        Body::AgentStarted {
            version: id,
            pid: u32::try_from(n).unwrap(),
        }
    } else {
        Body::AlertRaised {
            alert_id: id,
            rule_id: "DE-CRASH".to_owned(),
            severity: "high".to_owned(),
            host: "crash-test".to_owned(),
        }
    }
}

/// The attempt an agent entry of this test stands for.
fn attempt_of(body: &Body) -> Option<Attempt> {
    let id = match body {
        Body::AgentStarted { version, .. } => version,
        Body::AlertRaised { alert_id, .. } => alert_id,
        _ => return None,
    };
    let mut parts = id.strip_prefix("crash-")?.split('-');
    let round = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    (parts.next().is_none() && body_for(round, n) == *body).then_some((round, n))
}

/// Everything the test knows procmond acknowledged, and the appends left unanswered.
#[derive(Default)]
struct History {
    /// (index, attempt), in the order procmond acknowledged them.
    acked: Vec<(u64, Attempt)>,
    /// The append in flight at each kill: may or may not have reached the disk.
    unanswered: Vec<Attempt>,
    /// Checkpoint notes procmond signed and returned.
    checkpoints: Vec<String>,
}

/// What one round of appending produced.
#[derive(Default)]
struct RoundLog {
    acked: Vec<(u64, Attempt)>,
    unanswered: Option<Attempt>,
    checkpoints: Vec<String>,
    error: Option<String>,
    /// Whether the appends stopped after the kill (and not before, which is a failure).
    error_after_kill: bool,
}

fn request(kind: Kind) -> proto::AuditRequest {
    proto::AuditRequest { kind: Some(kind) }
}

/// Appends as fast as procmond answers (each append is synced before it is answered) until
/// the connection breaks; asks for a checkpoint now and then when `checkpoints`.
async fn append_until_killed(
    client: ProcmondLink,
    round: usize,
    checkpoints: bool,
    seed: u64,
    killed: Arc<AtomicBool>,
) -> RoundLog {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut log = RoundLog::default();
    for n in 0.. {
        if checkpoints && rng.u8(..25) == 0 {
            match client
                .audit(request(Kind::Checkpoint(proto::AuditCheckpoint {})))
                .await
            {
                Ok(response) => log.checkpoints.push(response.text),
                Err(err) => {
                    log.error = Some(format!("checkpoint: {err}"));
                    break;
                }
            }
        }
        let body = body_for(round, n);
        match client.append_audit(std::slice::from_ref(&body)).await {
            Ok(indexes) => log.acked.push((indexes.start, (round, n))),
            Err(err) => {
                log.unanswered = Some((round, n));
                log.error = Some(format!("append {n}: {err}"));
                break;
            }
        }
    }
    log.error_after_kill = killed.load(Ordering::SeqCst);
    log
}

/// Connects as the agent to the procmond just started, waiting for it to listen.
async fn connect(socket: &Path, procmond: &Procmond) -> ProcmondLink {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt =
            ProcmondLink::connect(socket, Limits::default(), &PeerPolicy::for_current_user()).await;
        match attempt {
            Ok(client) if client.server_pid() == Some(procmond.pid()) => return client,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "procmond does not answer: {:?}\nits log:\n{}",
                    other.err(),
                    procmond.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Every entry of the ledger, through procmond.
async fn all_entries(client: &ProcmondLink) -> Vec<Entry> {
    let mut entries = Vec::new();
    loop {
        let response = client
            .audit(request(Kind::Entries(proto::AuditEntries {
                page: Some(proto::Page {
                    cursor: calls::index_cursor(entries.len() as u64),
                    max: 1000,
                }),
            })))
            .await
            .expect("procmond returns the ledger's entries");
        if response.entries.is_empty() {
            assert_eq!(
                response.size,
                entries.len() as u64,
                "every entry was returned"
            );
            return entries;
        }
        for bytes in &response.entries {
            entries
                .push(Entry::decode(bytes).unwrap_or_else(|err| {
                    panic!("entry {} does not decode: {err}", entries.len())
                }));
        }
    }
}

/// The ledger holds every acknowledged append at its index, in order; besides them only
/// procmond's own entries and appends that were in flight at a kill. Returns how many of
/// those are there.
fn check_entries(entries: &[Entry], history: &History, starts: usize) -> usize {
    for (index, attempt) in &history.acked {
        let entry = usize::try_from(*index)
            .ok()
            .and_then(|i| entries.get(i))
            .unwrap_or_else(|| {
                panic!(
                    "acknowledged entry {index} {attempt:?} is missing: the ledger has {} entries",
                    entries.len()
                )
            });
        assert_eq!(entry.source, Source::Agent, "entry {index}");
        assert_eq!(
            attempt_of(&entry.body),
            Some(*attempt),
            "entry {index} is not the acknowledged append {attempt:?}: {entry}"
        );
    }
    let mut last: Option<Attempt> = None;
    let mut procmond_started = 0;
    let mut in_flight = 0;
    for (index, entry) in entries.iter().enumerate() {
        match (&entry.source, &entry.body) {
            (Source::Procmond, Body::LedgerCreated { .. }) => {
                assert_eq!(index, 0, "ledger_created is the first entry only");
            }
            (Source::Procmond, Body::ProcmondStarted { .. }) => procmond_started += 1,
            (Source::Procmond, Body::PrivilegesDropped { .. } | Body::ProcmondStopped { .. }) => {}
            (Source::Agent, body) => {
                let attempt = attempt_of(body)
                    .unwrap_or_else(|| panic!("entry {index} was never appended: {entry}"));
                assert!(
                    last.is_none_or(|last| last < attempt),
                    "entry {index} {attempt:?} is out of order after {last:?}"
                );
                last = Some(attempt);
                let acked = history
                    .acked
                    .iter()
                    .any(|(i, a)| *i == index as u64 && *a == attempt);
                in_flight += usize::from(!acked);
                assert!(
                    acked || history.unanswered.contains(&attempt),
                    "entry {index} {attempt:?} was neither acknowledged at this index nor in flight at a kill: {entry}"
                );
            }
            _ => panic!("entry {index} is not one this test or procmond makes: {entry}"),
        }
    }
    assert_eq!(
        procmond_started, starts,
        "one procmond_started entry per start"
    );
    in_flight
}

/// The entries of an `entries.log` (magic, then frames `length u32 BE, crc32c u32 BE,
/// payload`), read directly.
fn read_entries_log(path: &Path) -> Vec<Entry> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], ENTRIES_MAGIC);
    let mut entries = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let payload = &bytes[at + 8..at + 8 + len];
        assert_eq!(crc32c::crc32c(payload), crc, "frame at byte {at}");
        entries.push(Entry::decode(payload).unwrap());
        at += 8 + len;
    }
    entries
}

/// `daemoneye-cli audit verify <data>/ledger --key KEY`, offline.
fn verify_dir(ledger: &Path, key_file: &Path, when: &str) -> String {
    let out = Command::new(bin("daemoneye-cli"))
        .args(["audit", "verify"])
        .arg(ledger)
        .arg("--key")
        .arg(key_file)
        .env_remove("DAEMONEYE_DATA_DIR")
        .output()
        .expect("running daemoneye-cli");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{when}: the ledger does not verify\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// How the end of a file is damaged after a kill, as a crash in the middle of a write leaves it.
#[derive(Debug, Clone, Copy)]
enum Torn {
    /// The header and half the payload of an entry's frame.
    HalfFrame,
    /// A few bytes of a frame header.
    FewBytes,
    /// A whole frame whose checksum does not match (the payload did not all reach the disk).
    BadChecksum,
    /// Zeros: the file grew but the data never arrived.
    Zeros,
    /// Half a checkpoint's frame at the end of checkpoints.log.
    HalfCheckpoint,
}

/// Appends `torn` to the ledger's files; returns the bytes added.
fn tear(ledger: &Path, torn: Torn, round: usize, rng: &mut fastrand::Rng) -> usize {
    let entry = Entry {
        source: Source::Agent,
        time_ms: 1_763_719_200_123,
        body: Body::AgentStopped {
            reason: format!("torn-{round}: never acknowledged"),
        },
    }
    .encode()
    .unwrap();
    let mut frame = Vec::new();
    frame.extend_from_slice(&u32::try_from(entry.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&entry).to_be_bytes());
    frame.extend_from_slice(&entry);
    let (file, bytes) = match torn {
        Torn::HalfFrame => ("entries.log", frame[..8 + entry.len() / 2].to_vec()),
        Torn::FewBytes => (
            "entries.log",
            frame[..rng.usize(1..8)]
                .iter()
                .map(|_| rng.u8(..))
                .collect(),
        ),
        Torn::BadChecksum => {
            let mut bad = frame.clone();
            bad[4] ^= 0xff;
            ("entries.log", bad)
        }
        Torn::Zeros => ("entries.log", vec![0; rng.usize(1..200)]),
        Torn::HalfCheckpoint => {
            let note = "daemoneye.ledger/torn\n1\nAAAA\n";
            let mut half = Vec::new();
            half.extend_from_slice(&200u32.to_be_bytes());
            half.extend_from_slice(&crc32c::crc32c(note.as_bytes()).to_be_bytes());
            half.extend_from_slice(note.as_bytes());
            ("checkpoints.log", half)
        }
    };
    let mut out = OpenOptions::new()
        .append(true)
        .open(ledger.join(file))
        .unwrap();
    out.write_all(&bytes).unwrap();
    out.sync_all().unwrap();
    bytes.len()
}

#[test]
fn acknowledged_appends_survive_sigkill_and_torn_writes() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root; CI runs it as root"
    );
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("de-ledger-crash-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let socket = dir.join("p.sock");
    let ledger = dir.join("data").join("ledger");
    let key_file = dir.join("ledger.pub");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rng = fastrand::Rng::with_seed(0xc4a5_4ed9);
    let mut history = History::default();
    let mut key: Option<NoteVerifier> = None;
    let mut torn_rounds = Vec::new();
    let mut from_checkpoint = 0;
    let mut in_flight_kept = 0;

    for round in 0..=ROUNDS {
        let mut procmond = Procmond::start(dir, round);
        let client = runtime.block_on(connect(&socket, &procmond));

        // The ledger opened again (procmond answers audit requests) with the same key.
        let text = runtime
            .block_on(client.audit(request(Kind::Key(proto::AuditKey {}))))
            .unwrap_or_else(|err| {
                panic!(
                    "round {round}: the ledger does not answer: {err}\n{}",
                    procmond.log()
                )
            });
        let verifier = NoteVerifier::parse(text.text.trim()).expect("the key parses");
        match &key {
            None => {
                std::fs::write(&key_file, &text.text).unwrap();
                key = Some(verifier);
            }
            Some(key) => assert_eq!(
                key.to_string(),
                verifier.to_string(),
                "round {round}: the key changed"
            ),
        }
        let key = key.as_ref().unwrap();
        let on_disk = std::fs::read_to_string(ledger.join("ledger.pub")).unwrap();
        assert_eq!(on_disk.trim(), key.to_string(), "ledger.pub is the key");
        let opened = procmond.logged("audit ledger open");
        assert_eq!(opened.len(), 1, "{}", procmond.log());
        let opened = &opened[0];
        if opened["checkpoints"].as_u64() > Some(0)
            && opened["replayed"].as_u64() < opened["entries"].as_u64()
        {
            from_checkpoint += 1;
        }
        if let Some(torn) = torn_rounds.last().filter(|(r, _, _)| *r + 1 == round) {
            assert!(
                !procmond
                    .logged("cut a torn tail left by a crash from the audit ledger")
                    .is_empty(),
                "round {round}: the torn tail {torn:?} was not cut:\n{}",
                procmond.log()
            );
        }

        // Every acknowledged append is there, in order, at its index.
        let entries = runtime.block_on(all_entries(&client));
        in_flight_kept = check_entries(&entries, &history, round + 1);
        // Every checkpoint signed before is a prefix of the ledger now.
        let mut olds: Vec<&String> = history.checkpoints.iter().rev().take(2).collect();
        olds.extend(history.checkpoints.first());
        for old in olds {
            let proof = runtime
                .block_on(
                    client.audit(request(Kind::Consistency(proto::AuditConsistency {
                        old_checkpoint: old.clone(),
                    }))),
                )
                .unwrap_or_else(|err| panic!("round {round}: no consistency proof: {err}"));
            match verify_text(&proof.text, key, Some(old)) {
                Ok(Verified::Consistency { old, new }) => {
                    assert!(new.size >= old.size && new.size == entries.len() as u64);
                }
                other => panic!("round {round}: consistency from {old:?}: {other:?}"),
            }
        }
        // And it verifies offline, as an auditor would check it.
        verify_dir(&ledger, &key_file, &format!("round {round}, restarted"));

        if round == ROUNDS {
            // The end: a clean stop records it and signs a checkpoint covering everything.
            drop(client);
            let status = procmond.stop();
            assert!(status.success(), "procmond stopped with {status}");
            let stdout = verify_dir(&ledger, &key_file, "after a clean stop");
            assert!(!stdout.contains("not covered"), "{stdout}");
            // The file itself, read without procmond, says the same.
            let on_disk = read_entries_log(&ledger.join("entries.log"));
            assert_eq!(on_disk.len(), entries.len() + 1, "only the stop was added");
            assert_eq!(check_entries(&on_disk, &history, round + 1), in_flight_kept);
            assert!(
                matches!(
                    on_disk.last().map(|e| &e.body),
                    Some(Body::ProcmondStopped { .. })
                ),
                "the stop is recorded last"
            );
            break;
        }

        // Append as fast as possible; kill procmond after a random delay.
        let checkpoints = round % 4 != 1;
        let delay = Duration::from_millis(rng.u64(5..=150));
        let killed = Arc::new(AtomicBool::new(false));
        let task = runtime.spawn(append_until_killed(
            client,
            round,
            checkpoints,
            rng.u64(..),
            Arc::clone(&killed),
        ));
        runtime.block_on(async { tokio::time::sleep(delay).await });
        killed.store(true, Ordering::SeqCst);
        procmond.kill();
        let log = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(60), task).await })
            .expect("the appends end once procmond is killed")
            .expect("the append task");
        assert!(
            log.error_after_kill,
            "round {round}: procmond failed before it was killed: {:?}\nits log:\n{}",
            log.error,
            procmond.log()
        );
        for window in log.acked.windows(2) {
            assert!(window[0].0 < window[1].0, "indexes grow: {window:?}");
        }
        if let (Some(before), Some(first)) = (history.acked.last(), log.acked.first()) {
            assert!(before.0 < first.0, "indexes grow across restarts");
        }
        eprintln!(
            "round {round:2}: killed after {delay:?}: {} appends acknowledged, {} checkpoints, then {}",
            log.acked.len(),
            log.checkpoints.len(),
            log.error.as_deref().unwrap_or("-")
        );
        history.acked.extend(log.acked);
        history.unanswered.extend(log.unanswered);
        history.checkpoints.extend(log.checkpoints);

        // A crashed ledger verifies as it is, before any recovery.
        verify_dir(&ledger, &key_file, &format!("round {round}, killed"));
        if round % 5 == 2 {
            let kinds = [
                Torn::HalfFrame,
                Torn::FewBytes,
                Torn::BadChecksum,
                Torn::Zeros,
                Torn::HalfCheckpoint,
            ];
            let torn = kinds[torn_rounds.len() % kinds.len()];
            let bytes = tear(&ledger, torn, round, &mut rng);
            eprintln!("round {round:2}: tore the ledger: {torn:?}, {bytes} bytes");
            torn_rounds.push((round, torn, bytes));
            verify_dir(&ledger, &key_file, &format!("round {round}, torn"));
        }
    }
    eprintln!(
        "{ROUNDS} kills, {} appends acknowledged, {} in flight at a kill ({in_flight_kept} of them \
         reached the ledger), {} checkpoints signed, \
         {} torn tails ({:?}), {from_checkpoint} recoveries from a checkpoint, {:?}",
        history.acked.len(),
        history.unanswered.len(),
        history.checkpoints.len(),
        torn_rounds.len(),
        torn_rounds.iter().map(|(_, t, _)| *t).collect::<Vec<_>>(),
        started.elapsed()
    );
    assert!(torn_rounds.len() >= 5, "every kind of torn tail was tried");
    assert!(
        from_checkpoint >= 1,
        "recovery started from a checkpoint in at least one round"
    );
    assert!(history.acked.len() >= ROUNDS, "appends were acknowledged");
}
