//! procmond's audit ledger: what it records itself, what it accepts from the agent, and the
//! read side the agent forwards to the CLI (key, checkpoints, proofs, entries).
//!
//! The ledger lives in `<data_dir>/ledger/` ([`daemoneye_lib::ledger::store`]). procmond is
//! its only writer. A ledger that cannot be opened does not stop the collector: scans go on,
//! health reports `ledger_available = false` with the reason, and every audit request is
//! answered with that reason.

use std::path::Path;
use std::sync::Mutex;

use daemoneye_lib::config::{Config, LedgerHash};
use daemoneye_lib::ipc::proto::{self, ErrorCode, audit_request};
use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::entry::{Body, Entry, Source};
use daemoneye_lib::ledger::store::{Ledger, LedgerError, Recovery, Settings};
use daemoneye_lib::models::ProcessRecord;
use prost::Message;

use crate::collector::{Scan, epoch_millis};
use crate::tasks::TaskError;

/// The most entries one `AuditEntries` answer carries.
pub const MAX_ENTRIES_PER_ANSWER: u32 = 10_000;
/// The most checkpoint notes one `AuditCheckpoints` answer carries.
pub const MAX_CHECKPOINTS_PER_ANSWER: u32 = 1_000;

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
                Err(err.to_string())
            }
        };
        Self {
            state: Mutex::new(state),
        }
    }

    /// A server with no ledger (`--socket` without `--data-dir`).
    pub fn unavailable(reason: &str) -> Self {
        Self {
            state: Mutex::new(Err(reason.to_owned())),
        }
    }

    /// Whether the ledger is open.
    pub fn available(&self) -> bool {
        self.with(|_| Ok(())).is_ok()
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

    /// Appends an entry the agent asked for: the kind must be one the agent may record and
    /// the payload exactly that kind's canonical body; procmond adds the time and the source.
    pub fn append_from_agent(&self, request: &proto::AppendAudit) -> Result<u64, TaskError> {
        let bad = |message: String| TaskError {
            code: ErrorCode::BadRequest,
            message,
        };
        let body = Body::decode(&request.kind, &request.payload)
            .map_err(|err| bad(format!("audit entry refused: {err}")))?;
        if !body.agent_may_append() {
            return Err(bad(format!(
                "audit entry refused: only procmond records `{}` entries",
                body.kind()
            )));
        }
        let entry = Entry {
            source: Source::Agent,
            time_ms: epoch_millis(),
            body,
        };
        self.with(|ledger| ledger.append(std::slice::from_ref(&entry)))
            .map(|range| range.start)
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
                    let max = entries.max.clamp(1, MAX_ENTRIES_PER_ANSWER);
                    // Half a frame of the default 16 MiB: room for the rest of the answer.
                    response.entries =
                        ledger.entries(entries.start, u64::from(max), 8 * 1024 * 1024)?;
                }
                audit_request::Kind::Checkpoints(range) => {
                    let max = range.max.clamp(1, MAX_CHECKPOINTS_PER_ANSWER) as usize;
                    response.checkpoints = ledger
                        .checkpoint_notes()?
                        .into_iter()
                        .skip(usize::try_from(range.start).unwrap_or(usize::MAX))
                        .take(max)
                        .collect();
                }
            }
            response.size = ledger.size();
            response.checkpoint_count = ledger.checkpoint_count();
            response.hash = ledger.hash().name().to_owned();
            Ok(response)
        })
    }

    /// Records procmond's stop and signs a last checkpoint.
    pub fn close(&self, reason: &str) {
        self.record(Body::ProcmondStopped {
            reason: reason.to_owned(),
        });
        self.checkpoint_if_grown();
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

/// The hash recorded for a scan: the ledger's hash function over, for each record in scan
/// order, its length (u32 big-endian) and its protobuf encoding (`ProcessRecord` of ipc.proto).
pub fn records_hash(alg: HashAlg, records: &[ProcessRecord]) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(records.len() * 256);
    for record in records {
        let wire = proto::ProcessRecord::from(record).encode_to_vec();
        bytes.extend_from_slice(&u32::try_from(wire.len()).unwrap_or(u32::MAX).to_be_bytes());
        bytes.extend_from_slice(&wire);
    }
    alg.digest(&[&bytes])
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
