//! procmond's audit ledger: what it records itself, what it accepts from the agent, and the
//! read side the agent forwards to the CLI (key, checkpoints, proofs, entries).
//!
//! The ledger lives in `<data_dir>/ledger/` ([`daemoneye_lib::ledger::store`]). procmond is
//! its only writer. A ledger that cannot be opened does not stop the collector: scans go on,
//! health reports `ledger_available = false` with the reason, and every audit request is
//! answered with that reason.
//!
//! # Damage
//!
//! Damage is found at open (the newest checkpoint, the stored tree's root, the newest stored
//! entry, everything after the newest checkpoint) or by the background check
//! ([`crate::ledger_check`], which walks the whole ledger at a bounded rate). Either way
//! health carries it (`ledger_damage`: file, byte offset, entry, reason) and the agent shows
//! the ledger `failed`; it is logged once, as `the audit ledger is damaged`.
//!
//! - At open, the ledger refuses to open, as README promises: the writer cannot know what it
//!   would append after. Nothing is recorded until the files are repaired or moved aside.
//! - Found in the background, procmond goes on appending. The damage lies in entries already
//!   covered by signed checkpoints, which new entries do not touch: new entries and
//!   checkpoints are built on the stored tree, whose root the open checked against the newest
//!   signed checkpoint. Stopping would lose the record of what happens next, which an auditor
//!   needs more than a halt; what they need to know about the damage is in health and the log
//!   (offset and entry) until procmond stops. It is not written anywhere else: the next
//!   start's background check, which begins at byte 0, finds it again.

use std::path::Path;
use std::sync::Mutex;

use daemoneye_lib::config::{Config, LedgerHash};
use daemoneye_lib::ipc::calls;
use daemoneye_lib::ipc::proto::{self, ErrorCode, audit_request};
use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::entry::{Body, Entry, Source, records_hash};
use daemoneye_lib::ledger::store::{
    Damage, Ledger, LedgerError, Recovery, ScrubStats, ScrubTarget, Settings,
};

use crate::collector::{Scan, epoch_millis};
use crate::tasks::TaskError;

/// The most entries one `AuditEntries` answer carries.
pub const MAX_ENTRIES_PER_ANSWER: u32 = 10_000;
/// The most checkpoint notes one `AuditCheckpoints` answer carries.
pub const MAX_CHECKPOINTS_PER_ANSWER: u32 = 1_000;
/// The most entries one `AppendAudit` batch may carry (an entry is at most 16 KiB, so a
/// batch stays within a frame of the default size).
pub const MAX_ENTRIES_PER_BATCH: usize = 512;

/// The ledger settings from the configuration: the hash and an origin naming this site and host.
pub fn settings(config: &Config) -> Settings {
    let hash = match config.ledger.hash {
        LedgerHash::Blake3 => HashAlg::Blake3,
        LedgerHash::Sha256 => HashAlg::Sha256,
    };
    let site = config
        .site
        .id
        .as_ref()
        .map_or_else(|| "local".to_owned(), ToString::to_string);
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    Settings {
        hash,
        origin: format!(
            "daemoneye.ledger/{}/{}",
            origin_part(&site),
            origin_part(&host)
        ),
    }
}

/// A piece of the origin line: a C2SP origin and key name hold no spaces and no `+`.
fn origin_part(text: &str) -> String {
    let part: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if part.is_empty() {
        "unnamed".to_owned()
    } else {
        part
    }
}

/// The ledger as the server shares it: open, or the reason it is not.
pub struct AuditLog {
    state: Mutex<Result<Ledger, String>>,
    /// Damage found (and whether at open), and how far the background check is.
    check: Mutex<CheckState>,
}

/// What health says about the ledger's damage and background check.
#[derive(Debug, Default)]
struct CheckState {
    damage: Option<(Damage, bool)>,
    /// Entries checked by the running pass, and the entries it checks.
    running: Option<(u64, u64)>,
    /// Passes finished without damage, and the entries the last one checked.
    passed: u64,
    last_passed: u64,
}

impl AuditLog {
    /// Opens (or creates) the ledger in `dir`.
    pub fn open(dir: &Path, settings: &Settings) -> Self {
        let state = match Ledger::open(dir, settings) {
            Ok((ledger, recovery)) => {
                log_recovery(&ledger, &recovery);
                let mut ledger = ledger;
                if recovery.created {
                    let body = Body::LedgerCreated {
                        hash_alg: ledger.hash().name().to_owned(),
                        verifier_key: ledger.verifier().to_string(),
                    };
                    if let Err(err) = ledger.append(&[own(body)]) {
                        tracing::error!(error = %err, "cannot record the ledger's creation");
                    }
                }
                Ok(ledger)
            }
            Err(err) => {
                tracing::error!(error = %err, "the audit ledger is not available");
                let damage = Damage::of_error(&err);
                if let Some(damage) = &damage {
                    log_damage(damage, true);
                }
                let log = Self::unavailable(&err.to_string());
                log.lock_check().damage = damage.map(|damage| (damage, true));
                return log;
            }
        };
        Self {
            state: Mutex::new(state),
            check: Mutex::new(CheckState::default()),
        }
    }

    /// A server with no ledger (`--socket` without `--data-dir`).
    pub fn unavailable(reason: &str) -> Self {
        Self {
            state: Mutex::new(Err(reason.to_owned())),
            check: Mutex::new(CheckState::default()),
        }
    }

    fn lock_check(&self) -> std::sync::MutexGuard<'_, CheckState> {
        self.check
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The ledger's extent now, for the background check; `None` when it is not open (or
    /// stopped after a failed write).
    pub fn scrub_target(&self) -> Option<ScrubTarget> {
        self.with(|ledger| Ok(ledger.scrub_target())).ok().flatten()
    }

    /// The background check began a pass over `entries` entries.
    pub fn check_started(&self, entries: u64) {
        self.lock_check().running = Some((0, entries));
    }

    /// The running pass has checked `entries` entries.
    pub fn check_progress(&self, entries: u64) {
        if let Some((done, _)) = &mut self.lock_check().running {
            *done = entries;
        }
    }

    /// The running pass ended: clean with `stats`, or not (`None`: damage or a stop).
    pub fn check_ended(&self, stats: Option<ScrubStats>) {
        let mut check = self.lock_check();
        check.running = None;
        if let Some(stats) = stats {
            check.passed += 1;
            check.last_passed = stats.entries;
        }
    }

    /// Records damage; logged the first time only (a later pass finds the same again).
    pub fn report_damage(&self, damage: Damage) {
        let mut check = self.lock_check();
        if check.damage.is_none() {
            log_damage(&damage, false);
            check.damage = Some((damage, false));
        }
    }

    /// The damage found so far, as health reports it.
    pub fn damage(&self) -> Option<proto::LedgerDamage> {
        self.lock_check()
            .damage
            .as_ref()
            .map(|(damage, at_open)| proto::LedgerDamage {
                file: damage.file.clone(),
                offset: damage.offset,
                entry: damage.entry,
                reason: damage.reason.clone(),
                at_open: *at_open,
            })
    }

    /// Whether the ledger is open.
    pub fn available(&self) -> bool {
        self.with(|_| Ok(())).is_ok()
    }

    /// One line for health reports: size, hash and newest checkpoint, or why it is not open.
    /// With the background check's state: its progress, the entries its last clean pass
    /// checked, or the damage it found.
    pub fn describe(&self) -> String {
        let open = self.with(|ledger| {
            Ok(format!(
                "{} entries ({}), newest checkpoint at size {}",
                ledger.size(),
                ledger.hash(),
                ledger.latest().map_or(0, |c| c.checkpoint.size)
            ))
        });
        let text = match open {
            Ok(text) => text,
            Err(err) => return err.message,
        };
        let check = self.lock_check();
        let state = match (&check.damage, check.running) {
            // The damage itself is in `ledger_damage`; the agent shows it.
            (Some(_), _) => "background check: found damage".to_owned(),
            (None, Some((done, of))) if check.passed == 0 => {
                format!("background check: {done} of {of} entries verified")
            }
            (None, _) if check.passed > 0 => format!(
                "background check: all {} entries verified by the last pass",
                check.last_passed
            ),
            (None, _) => "background check: not started".to_owned(),
        };
        format!("{text}; {state}")
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Ledger) -> Result<T, LedgerError>,
    ) -> Result<T, TaskError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &mut *state {
            Ok(ledger) => f(ledger).map_err(ledger_error),
            Err(reason) => Err(TaskError {
                code: ErrorCode::Unsupported,
                message: format!("the audit ledger is not available: {reason}"),
            }),
        }
    }

    /// Records something procmond did. A failure is logged: the collector goes on.
    pub fn record(&self, body: Body) {
        let kind = body.kind();
        if let Err(err) = self.with(|ledger| ledger.append(&[own(body)])) {
            tracing::error!(kind, error = %err.message, "cannot append to the audit ledger");
        }
    }

    /// Records a scan: its id, times, process count and the hash of its records.
    pub fn record_scan(&self, scan: &Scan) {
        let Ok(alg) = self.with(|ledger| Ok(ledger.hash())) else {
            return;
        };
        self.record(Body::Scan {
            scan_id: scan.summary.scan_id,
            started_ms: scan.summary.started_at,
            finished_ms: scan.summary.finished_at,
            process_count: scan.records.len() as u64,
            records_hash: records_hash(alg, &scan.records),
        });
    }

    /// Appends the entries the agent asked for, in order, with one `fdatasync`: each kind
    /// must be one the agent may record and each payload exactly that kind's canonical body;
    /// procmond adds the time and the source. One bad entry refuses the whole batch.
    pub fn append_from_agent(
        &self,
        request: &proto::AppendAudit,
    ) -> Result<std::ops::Range<u64>, TaskError> {
        let bad = |message: String| TaskError {
            code: ErrorCode::BadRequest,
            message,
        };
        if request.entries.is_empty() {
            return Err(bad("audit batch refused: it holds no entry".to_owned()));
        }
        if request.entries.len() > MAX_ENTRIES_PER_BATCH {
            return Err(bad(format!(
                "audit batch refused: {} entries, at most {MAX_ENTRIES_PER_BATCH} per batch",
                request.entries.len()
            )));
        }
        let time_ms = epoch_millis();
        let mut entries = Vec::with_capacity(request.entries.len());
        for (n, wire) in request.entries.iter().enumerate() {
            let body = Body::decode(&wire.kind, &wire.payload)
                .map_err(|err| bad(format!("audit entry {n} refused: {err}")))?;
            if !body.agent_may_append() {
                return Err(bad(format!(
                    "audit entry {n} refused: only procmond records `{}` entries",
                    body.kind()
                )));
            }
            entries.push(Entry {
                source: Source::Agent,
                time_ms,
                body,
            });
        }
        self.with(|ledger| ledger.append(&entries))
    }

    /// Signs a checkpoint when entries were appended since the newest one (the interval
    /// timer calls this).
    pub fn checkpoint_if_grown(&self) {
        let outcome = self.with(|ledger| {
            let covered = ledger.latest().map_or(0, |c| c.checkpoint.size);
            if ledger.size() > covered {
                ledger.checkpoint(epoch_millis())?;
            }
            Ok(())
        });
        if let Err(err) = outcome {
            tracing::warn!(error = %err.message, "cannot sign a ledger checkpoint");
        }
    }

    /// Answers a read-side request.
    pub fn answer(&self, request: proto::AuditRequest) -> Result<proto::AuditResponse, TaskError> {
        let kind = request.kind.ok_or_else(|| TaskError {
            code: ErrorCode::BadRequest,
            message: "the audit request names no operation".to_owned(),
        })?;
        self.with(|ledger| {
            let mut response = proto::AuditResponse::default();
            match kind {
                audit_request::Kind::Key(_) => response.text = format!("{}\n", ledger.verifier()),
                audit_request::Kind::Checkpoint(_) => {
                    response.text = ledger.checkpoint(epoch_millis())?.note.clone();
                }
                audit_request::Kind::Prove(prove) => {
                    let covered = ledger.latest().map_or(0, |c| c.checkpoint.size);
                    if prove.index >= covered && prove.index < ledger.size() {
                        ledger.checkpoint(epoch_millis())?;
                    }
                    response.text = ledger.prove(prove.index)?.to_text();
                }
                audit_request::Kind::Consistency(consistency) => {
                    let covered = ledger.latest().map_or(0, |c| c.checkpoint.size);
                    if ledger.size() > covered {
                        ledger.checkpoint(epoch_millis())?;
                    }
                    response.text = ledger.consistency(&consistency.old_checkpoint)?.to_text();
                }
                audit_request::Kind::Entries(entries) => {
                    let page = entries.page.unwrap_or_default();
                    let start = page_start(&page)?;
                    let max = max_of(&page, MAX_ENTRIES_PER_ANSWER);
                    // Half a frame of the default 16 MiB: room for the rest of the answer.
                    response.entries = ledger.entries(start, u64::from(max), 8 * 1024 * 1024)?;
                    let next = start.saturating_add(response.entries.len() as u64);
                    response.next_cursor = calls::next_index_cursor(next, ledger.size());
                }
                audit_request::Kind::Checkpoints(checkpoints) => {
                    let page = checkpoints.page.unwrap_or_default();
                    let start = page_start(&page)?;
                    let max = max_of(&page, MAX_CHECKPOINTS_PER_ANSWER) as usize;
                    response.checkpoints = ledger.checkpoint_notes(start, max)?;
                    let next = start.saturating_add(response.checkpoints.len() as u64);
                    response.next_cursor =
                        calls::next_index_cursor(next, ledger.checkpoint_count());
                }
            }
            response.size = ledger.size();
            response.checkpoint_count = ledger.checkpoint_count();
            response.hash = ledger.hash().name().to_owned();
            Ok(response)
        })
    }

    /// Records procmond's stop, signs a last checkpoint and closes the ledger: nothing is
    /// appended after the stop entry (a late request is answered with the reason).
    pub fn close(&self, reason: &str) {
        self.record(Body::ProcmondStopped {
            reason: reason.to_owned(),
        });
        self.checkpoint_if_grown();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *state = Err("procmond has stopped".to_owned());
    }
}

/// The first index a page asks for (a refused cursor is the client's mistake).
fn page_start(page: &proto::Page) -> Result<u64, LedgerError> {
    calls::parse_index_cursor(&page.cursor).map_err(LedgerError::OutOfRange)
}

/// How many items a page may hold: what it asks, at most `cap` (0 asks for `cap`).
fn max_of(page: &proto::Page, cap: u32) -> u32 {
    match page.max {
        0 => cap,
        max => max.min(cap),
    }
}

/// An entry procmond records in its own name, now.
fn own(body: Body) -> Entry {
    Entry {
        source: Source::Procmond,
        time_ms: epoch_millis(),
        body,
    }
}

fn ledger_error(err: LedgerError) -> TaskError {
    let code = match err {
        LedgerError::OutOfRange(_)
        | LedgerError::Note { .. }
        | LedgerError::CheckpointMismatch { .. } => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    TaskError {
        code,
        message: err.to_string(),
    }
}

fn log_damage(damage: &Damage, at_open: bool) {
    tracing::error!(
        file = %damage.file,
        offset = damage.offset,
        entry = damage.entry,
        reason = %damage.reason,
        at_open,
        "the audit ledger is damaged"
    );
}

fn log_recovery(ledger: &Ledger, recovery: &Recovery) {
    tracing::info!(
        dir = %ledger.dir().display(),
        entries = ledger.size(),
        hash = %ledger.hash(),
        created = recovery.created,
        replayed = recovery.replayed,
        checkpoints = recovery.checkpoints,
        "audit ledger open"
    );
    if recovery.entries_cut > 0 || recovery.checkpoints_cut > 0 {
        tracing::warn!(
            entries_bytes = recovery.entries_cut,
            checkpoint_bytes = recovery.checkpoints_cut,
            "cut a torn tail left by a crash from the audit ledger"
        );
    }
}

#[cfg(test)]
mod tests {
    use daemoneye_lib::ledger::note::{InclusionProofFile, NoteVerifier};
    use daemoneye_lib::ledger::verify::{self, Verified};

    use super::*;

    fn settings() -> Settings {
        Settings {
            hash: HashAlg::Blake3,
            origin: "daemoneye.ledger/test/host".to_owned(),
        }
    }

    fn request(kind: audit_request::Kind) -> proto::AuditRequest {
        proto::AuditRequest { kind: Some(kind) }
    }

    fn batch(entries: &[(&str, Vec<u8>)]) -> proto::AppendAudit {
        proto::AppendAudit {
            entries: entries
                .iter()
                .map(|(kind, payload)| proto::AuditEntryBody {
                    kind: (*kind).to_owned(),
                    payload: payload.clone(),
                })
                .collect(),
        }
    }

    fn append(audit: &AuditLog, body: &Body) -> Result<u64, TaskError> {
        audit
            .append_from_agent(&batch(&[(body.kind(), body.encode().expect("encodes"))]))
            .map(|range| range.start)
    }

    #[test]
    fn a_batch_is_appended_whole_or_not_at_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let audit = AuditLog::open(dir.path(), &settings());
        let body = |pid| Body::AgentStarted {
            version: "1".to_owned(),
            pid,
        };
        let good: Vec<(&str, Vec<u8>)> = (1..=3)
            .map(|pid| ("agent_started", body(pid).encode().expect("encodes")))
            .collect();
        let range = audit.append_from_agent(&batch(&good)).expect("appended");
        assert_eq!(range, 1..4, "after ledger_created");

        let forged = Body::ProcmondStarted {
            version: "1".to_owned(),
            pid: 1,
        };
        let mut mixed = good.clone();
        mixed.push(("procmond_started", forged.encode().expect("encodes")));
        let err = audit
            .append_from_agent(&batch(&mixed))
            .expect_err("refused");
        assert!(err.message.contains("entry 3 refused"), "{}", err.message);
        let err = audit.append_from_agent(&batch(&[])).expect_err("refused");
        assert!(err.message.contains("no entry"), "{}", err.message);
        let too_many = vec![good[0].clone(); MAX_ENTRIES_PER_BATCH + 1];
        let err = audit
            .append_from_agent(&batch(&too_many))
            .expect_err("refused");
        assert_eq!(err.code, ErrorCode::BadRequest);
        // Nothing of the refused batches was appended.
        assert_eq!(append(&audit, &body(9)).expect("appended"), 4);
    }

    #[test]
    fn the_agent_appends_its_kinds_and_nothing_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let audit = AuditLog::open(dir.path(), &settings());
        let started = Body::AgentStarted {
            version: "1".to_owned(),
            pid: 9,
        };
        assert_eq!(
            append(&audit, &started).expect("appended"),
            1,
            "after ledger_created"
        );

        let forged = Body::ProcmondStarted {
            version: "1".to_owned(),
            pid: 1,
        };
        let err = append(&audit, &forged).expect_err("refused");
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(
            err.message.contains("only procmond records"),
            "{}",
            err.message
        );

        let mut payload = started.encode().expect("encodes");
        payload.push(0);
        let err = audit
            .append_from_agent(&batch(&[("agent_started", payload)]))
            .expect_err("refused");
        assert!(err.message.contains("trailing"), "{}", err.message);
        let err = audit
            .append_from_agent(&batch(&[("no_such_kind", Vec::new())]))
            .expect_err("refused");
        assert_eq!(err.code, ErrorCode::BadRequest);

        let entries = audit
            .answer(request(audit_request::Kind::Entries(proto::AuditEntries {
                page: Some(proto::Page {
                    cursor: String::new(),
                    max: 100,
                }),
            })))
            .expect("answers");
        assert_eq!(entries.size, 2, "only the good append was recorded");
        let second = Entry::decode(&entries.entries[1]).expect("decodes");
        assert_eq!(second.source, Source::Agent);
        assert_eq!(second.body, started);
    }

    #[test]
    fn a_proof_of_a_new_entry_signs_a_checkpoint_first_and_verifies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let audit = AuditLog::open(dir.path(), &settings());
        audit.record(Body::ProcmondStopped {
            reason: "test".to_owned(),
        });
        let key = audit
            .answer(request(audit_request::Kind::Key(proto::AuditKey {})))
            .expect("answers");
        let key = NoteVerifier::parse(key.text.trim()).expect("a verifier key");
        let proof = audit
            .answer(request(audit_request::Kind::Prove(proto::AuditProve {
                index: 1,
            })))
            .expect("answers");
        assert_eq!(proof.checkpoint_count, 1, "signed on demand");
        let parsed = InclusionProofFile::parse(&proof.text).expect("a proof file");
        assert_eq!(parsed.index, 1);
        match verify::verify_text(&proof.text, &key, None).expect("verifies") {
            Verified::Inclusion { entry, .. } => assert_eq!(
                entry.body,
                Body::ProcmondStopped {
                    reason: "test".to_owned()
                }
            ),
            other => panic!("not an inclusion proof: {other:?}"),
        }
        let err = audit
            .answer(request(audit_request::Kind::Prove(proto::AuditProve {
                index: 2,
            })))
            .expect_err("no such entry");
        assert_eq!(err.code, ErrorCode::BadRequest);
    }

    #[test]
    fn interval_checkpoints_are_signed_only_when_the_ledger_grew() {
        let dir = tempfile::tempdir().expect("temp dir");
        let audit = AuditLog::open(dir.path(), &settings());
        let count = || {
            audit
                .answer(request(audit_request::Kind::Checkpoints(
                    proto::AuditCheckpoints {
                        page: Some(proto::Page {
                            cursor: String::new(),
                            max: 10,
                        }),
                    },
                )))
                .expect("answers")
                .checkpoints
                .len()
        };
        audit.checkpoint_if_grown();
        assert_eq!(count(), 1);
        audit.checkpoint_if_grown();
        assert_eq!(count(), 1, "nothing new, no checkpoint");
        audit.record(Body::ProcmondStopped {
            reason: "x".to_owned(),
        });
        audit.checkpoint_if_grown();
        assert_eq!(count(), 2);
    }

    #[test]
    fn nothing_is_appended_after_the_stop_entry() {
        let dir = tempfile::tempdir().expect("temp dir");
        let audit = AuditLog::open(dir.path(), &settings());
        audit.close("test");
        audit.record(Body::ProcmondStopped {
            reason: "late".to_owned(),
        });
        let err = append(
            &audit,
            &Body::AgentStopped {
                reason: "late".to_owned(),
            },
        )
        .expect_err("closed");
        assert!(
            err.message.contains("procmond has stopped"),
            "{}",
            err.message
        );
        drop(audit);
        let reopened = AuditLog::open(dir.path(), &settings());
        let entries = reopened
            .answer(request(audit_request::Kind::Entries(proto::AuditEntries {
                page: Some(proto::Page {
                    cursor: String::new(),
                    max: 100,
                }),
            })))
            .expect("answers");
        let last = Entry::decode(entries.entries.last().expect("entries")).expect("decodes");
        assert_eq!(
            last.body,
            Body::ProcmondStopped {
                reason: "test".to_owned()
            }
        );
        assert_eq!(entries.size, 2, "ledger_created and the stop");
    }

    #[test]
    fn without_a_ledger_every_request_says_why() {
        let audit = AuditLog::unavailable("procmond was started without --data-dir");
        assert!(!audit.available());
        let err = audit
            .answer(request(audit_request::Kind::Key(proto::AuditKey {})))
            .expect_err("no ledger");
        assert_eq!(err.code, ErrorCode::Unsupported);
        assert!(
            err.message.contains("without --data-dir"),
            "{}",
            err.message
        );
        assert!(audit.describe().contains("without --data-dir"));
    }

    #[test]
    fn origin_parts_cannot_break_the_origin_line() {
        assert_eq!(origin_part("plant 7+x\n"), "plant7x");
        assert_eq!(origin_part("\u{2014}"), "unnamed");
    }
}
