//! `daemoneye-cli audit key | checkpoint | prove | consistency | verify | export`.
//!
//! `verify` also takes the file of `alerts export` (told apart by its first byte, `{`; read up to
//! 64 MiB): every alert in it checked against its ledger entry, proof and checkpoint.
//!
//! All but `verify` ask the agent, which forwards to procmond, the ledger's only writer.
//! `verify` is offline: it needs the file (or directory) and the ledger's public key, nothing
//! from the host. It exits 3 when something does not verify, with the reason on stderr.
//!
//! What `verify` reads came from a site and may be hostile, so every read is bounded
//! (`daemoneye_lib::fsutil`: a regular file or a refusal naming what it is, never a wait on a
//! FIFO, never more than the limit plus one byte). The exit codes draw one line: what is
//! being verified (the file, everything in a directory, the `--old` checkpoint) that is not a
//! regular file, is over its limit or is not UTF-8 does not verify (3); what the auditor
//! gives to verify with, or forgets, is a usage error (2): a path that cannot be opened (no
//! such file, no permission), a key that cannot be read or does not parse, a consistency
//! proof without `--old`.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use daemoneye_lib::fsutil::{self, BoundedReadError};
use daemoneye_lib::ipc::calls;
use daemoneye_lib::ipc::proto::{self, audit_request::Kind};
use daemoneye_lib::ledger::alert_export::{self, MAX_EXPORT_BYTES};
use daemoneye_lib::ledger::export::{ExportError, ExportSummary, ExportWriter, MAX_PROOF_FILES};
use daemoneye_lib::ledger::note::{
    Checkpoint, MAX_FILE_BYTES, MAX_KEY_TEXT_BYTES, NoteFile, NoteVerifier,
};
use daemoneye_lib::ledger::verify::{self, DirectoryReport, Verified};
use daemoneye_lib::text::{self, format_time_ms};

use crate::agent_client::{AgentClient, ClientError};
use crate::error::CliError;
use crate::{Cli, ask_agent, ask_agent_within, print_or_fail};

/// How long an export may take in all.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Entries asked for per request during an export.
const EXPORT_BATCH: u32 = 5000;
/// The most `--proofs` an export takes: twice that many proof files are what a reader accepts.
const MAX_EXPORT_PROOFS: u64 = (MAX_PROOF_FILES / 2) as u64;
/// The largest key file read: the longest key text, with room for the spaces and line ends
/// around it.
const MAX_KEY_FILE_BYTES: u64 = 2 * MAX_KEY_TEXT_BYTES as u64;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the ledger's public verifier key, for the auditor.
    Key {
        /// Write it to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Sign a checkpoint of the ledger now and print it.
    Checkpoint {
        /// Write it to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// An inclusion proof of entry N against the newest checkpoint (a C2SP tlog-proof file).
    Prove {
        /// The entry's index (the first entry is 0).
        #[arg(long, value_name = "N")]
        entry: u64,
        /// Write it to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// A consistency proof from an older checkpoint (or a proof file holding one) to the newest.
    Consistency {
        /// The older checkpoint.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Write it to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify a checkpoint, a proof, an alert export, an export directory or a ledger
    /// directory offline.
    ///
    /// Exits 0 when it verifies; 3 when it does not, which includes a file (or a file in the
    /// directory) that is not a regular file (a FIFO, a device), is larger than its limit
    /// (4 MiB for a proof file), or a directory listing too many names; 2 for a usage error:
    /// a path that cannot be opened, a key that cannot be read or does not parse, a
    /// consistency proof without --old.
    Verify {
        /// The file or directory.
        file: PathBuf,
        /// The ledger's public key (the output of `audit key`), or a file holding it.
        #[arg(long, value_name = "PUBKEY")]
        key: String,
        /// For a consistency proof: the older checkpoint it starts from.
        #[arg(long, value_name = "FILE")]
        old: Option<PathBuf>,
    },
    /// Write a compliance package for an auditor: key, checkpoints, entries, proofs, README.
    Export {
        /// The directory to create (it must not exist, or be empty).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Inclusion proofs for this many of the newest entries, and consistency proofs from
        /// this many of the newest stored checkpoints (at most 32768).
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(u64).range(0..=MAX_EXPORT_PROOFS))]
        proofs: u64,
    },
}

pub fn run(cli: &Cli, command: &AuditCommand) -> Result<(), CliError> {
    match command {
        AuditCommand::Key { out } => fetch_text(cli, Kind::Key(proto::AuditKey {}), out.as_deref()),
        AuditCommand::Checkpoint { out } => fetch_text(
            cli,
            Kind::Checkpoint(proto::AuditCheckpoint {}),
            out.as_deref(),
        ),
        AuditCommand::Prove { entry, out } => fetch_text(
            cli,
            Kind::Prove(proto::AuditProve { index: *entry }),
            out.as_deref(),
        ),
        AuditCommand::Consistency { from, out } => fetch_text(
            cli,
            Kind::Consistency(proto::AuditConsistency {
                old_checkpoint: checkpoint_of(&read(from)?),
            }),
            out.as_deref(),
        ),
        AuditCommand::Verify { file, key, old } => verify_offline(file, key, old.as_deref()),
        AuditCommand::Export { out, proofs } => export(cli, out, *proofs),
    }
}

/// The checkpoint note in `text`: the text itself, or the checkpoint a proof file carries.
fn checkpoint_of(text: &str) -> String {
    match NoteFile::parse(text) {
        Ok(NoteFile::Inclusion(proof)) => proof.checkpoint,
        Ok(NoteFile::Consistency(proof)) => proof.checkpoint,
        // A checkpoint, or something procmond will refuse with the reason.
        _ => text.to_owned(),
    }
}

/// The operator's own text file (an older checkpoint to send to the agent): any problem is a
/// usage error.
fn read(path: &Path) -> Result<String, CliError> {
    let bytes = fsutil::read_regular_bounded(path, MAX_FILE_BYTES as u64)
        .map_err(|err| CliError::Usage(err.to_string()))?;
    String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("reading {}: not UTF-8 text", path.display())))
}

/// A file to verify: one that cannot be opened at all is a usage error; one that is not a
/// regular file, is over the limit of the largest proof file or is not UTF-8 does not verify.
fn read_to_verify(path: &Path) -> Result<String, CliError> {
    read_to_verify_within(path, MAX_FILE_BYTES as u64)
}

/// Whether `path` starts as an alert export does (`alerts export`'s file: a JSON object). Anything that
/// cannot be opened as a regular file is left to the reading that follows to report.
fn is_alert_export_file(path: &Path) -> Result<bool, CliError> {
    use std::io::Read as _;
    let Ok((file, _)) = fsutil::open_regular(path) else {
        return Ok(false);
    };
    let mut start = Vec::with_capacity(alert_export::SNIFF_BYTES);
    file.take(alert_export::SNIFF_BYTES as u64)
        .read_to_end(&mut start)
        .map_err(|err| CliError::reading(path, &err))?;
    Ok(alert_export::is_alert_export(&start))
}

fn describe_alert_export(
    report: &alert_export::AlertExportReport,
    out: &mut impl io::Write,
) -> io::Result<()> {
    writeln!(
        out,
        "verified: {} alerts exactly as the host recorded them, ledger entries {} to {} against checkpoint {}",
        report.verified.len(),
        report.first,
        report.checkpoint.size.saturating_sub(1),
        describe_checkpoint(&report.checkpoint)
    )?;
    for (index, id) in &report.verified {
        writeln!(out, "alert {} entry {index}: verified", text::escape(id))?;
    }
    if !report.not_carried.is_empty() {
        writeln!(
            out,
            "{} alerts of the range are not in the export (delivered to a sink before it, or raised after it was made): check them in the SIEM",
            report.not_carried.len()
        )?;
    }
    for (index, id) in &report.not_carried {
        writeln!(out, "alert {} entry {index}: not carried", text::escape(id))?;
    }
    Ok(())
}

fn read_to_verify_within(path: &Path, limit: u64) -> Result<String, CliError> {
    let failed = |reason: String| CliError::Verification(format!("audit verify: FAILED: {reason}"));
    let bytes = fsutil::read_regular_bounded(path, limit).map_err(|err| match err {
        BoundedReadError::Io { path, source } => CliError::reading(&path, &source),
        other => failed(other.to_string()),
    })?;
    String::from_utf8(bytes).map_err(|_| failed(format!("{} is not UTF-8 text", path.display())))
}

/// The key: the text of the file `key` names if something is there, else `key` itself. Any
/// problem is a usage error: the key is the auditor's, received by another path.
fn read_key(key: &str) -> Result<NoteVerifier, CliError> {
    let path = Path::new(key);
    let unreadable = |err: BoundedReadError| {
        CliError::Usage(format!("audit verify: cannot read the key file: {err}"))
    };
    let text = match fs::symlink_metadata(path) {
        Ok(_) => {
            let bytes =
                fsutil::read_regular_bounded(path, MAX_KEY_FILE_BYTES).map_err(unreadable)?;
            String::from_utf8(bytes).map_err(|_| {
                CliError::Usage(format!(
                    "audit verify: the key file {} is not UTF-8 text",
                    path.display()
                ))
            })?
        }
        // Every key has a `+` between its name, its id and the key: without one this is a
        // path, and that the file is missing is the news.
        Err(source) if !key.contains('+') => {
            return Err(unreadable(BoundedReadError::Io {
                path: path.to_path_buf(),
                source,
            }));
        }
        Err(_) => key.to_owned(),
    };
    NoteVerifier::parse(text.trim())
        .map_err(|err| CliError::Usage(format!("audit verify: the key does not parse: {err}")))
}

fn fetch_text(cli: &Cli, request: Kind, out: Option<&Path>) -> Result<(), CliError> {
    let response = ask_agent(cli, |client| async move { client.audit(request).await })?;
    write_out(out, &response.text)
}

fn write_out(out: Option<&Path>, text: &str) -> Result<(), CliError> {
    match out {
        Some(path) => fs::write(path, text)
            .map_err(|err| CliError::Failed(format!("writing {}: {err}", path.display()))),
        None => print_or_fail(|out| out.write_all(text.as_bytes())),
    }
}

/// Verifies offline: a key or file that cannot be read at all is a usage error, anything
/// that does not verify a verification failure.
fn verify_offline(file: &Path, key: &str, old: Option<&Path>) -> Result<(), CliError> {
    let key = read_key(key)?;
    let meta = fs::metadata(file).map_err(|err| CliError::reading(file, &err))?;
    let outcome = if meta.is_dir() {
        verify::verify_dir(file, &key)
    } else if is_alert_export_file(file)? {
        let text = read_to_verify_within(file, MAX_EXPORT_BYTES as u64)?;
        return match alert_export::verify_alert_export(&text, &key) {
            Ok(report) => print_or_fail(|out| describe_alert_export(&report, out)),
            Err(failure) => Err(CliError::Verification(format!(
                "audit verify: FAILED: {failure}"
            ))),
        };
    } else {
        let text = read_to_verify(file)?;
        if old.is_none() && matches!(NoteFile::parse(&text), Ok(NoteFile::Consistency(_))) {
            return Err(CliError::Usage(format!(
                "audit verify: {} is a consistency proof: --old FILE is needed, the older checkpoint it starts from",
                file.display()
            )));
        }
        let old = old.map(read_to_verify).transpose()?;
        verify::verify_text(&text, &key, old.as_deref())
    };
    match outcome {
        Ok(verified) => print_or_fail(|out| describe(&verified, out)),
        Err(failure) => Err(CliError::Verification(format!(
            "audit verify: FAILED: {failure}"
        ))),
    }
}

fn describe_checkpoint(cp: &Checkpoint) -> String {
    format!(
        "{} size {} hash {} signed at {}",
        // The origin is checked for spaces and control characters only: a bidi override or a
        // zero-width character would pass.
        text::escape(&cp.origin),
        cp.size,
        cp.hash,
        format_time_ms(cp.time_ms)
    )
}

fn describe(verified: &Verified, out: &mut impl io::Write) -> io::Result<()> {
    match verified {
        Verified::Checkpoint(cp) => {
            writeln!(out, "verified: checkpoint {}", describe_checkpoint(cp))
        }
        Verified::Inclusion {
            checkpoint,
            index,
            entry,
        } => {
            writeln!(
                out,
                "verified: entry {index} is in the ledger {}",
                describe_checkpoint(checkpoint)
            )?;
            writeln!(out, "entry {index}: {entry}")
        }
        Verified::Consistency { old, new } => writeln!(
            out,
            "verified: the ledger of size {} extends the ledger of size {} ({}, {})",
            new.size,
            old.size,
            text::escape(&new.origin),
            new.hash
        ),
        Verified::Directory(report) => describe_report(report, out),
    }
}

fn describe_report(report: &DirectoryReport, out: &mut impl io::Write) -> io::Result<()> {
    writeln!(
        out,
        "verified: {} entries, {} checkpoints ({}), {} inclusion proofs, {} consistency proofs",
        report.entries,
        report.checkpoints,
        report.hash.map_or("no hash", |h| h.name()),
        report.inclusion_proofs,
        report.consistency_proofs
    )?;
    if report.uncovered > 0 {
        writeln!(
            out,
            "note: the last {} entries are not covered by a checkpoint yet",
            report.uncovered
        )?;
    }
    Ok(())
}

/// Writes the compliance package: the agent gives the pieces, `ledger::export` writes them
/// (the layout is specified there).
fn export(cli: &Cli, out: &Path, proofs: u64) -> Result<(), CliError> {
    let writer =
        ExportWriter::create(out).map_err(|err| CliError::Usage(format!("audit export: {err}")))?;
    let summary = ask_agent_within(cli, EXPORT_TIMEOUT, |client| async move {
        fetch_export(&client, writer, proofs).await
    })?;
    println!("{summary}");
    Ok(())
}

fn local(err: ExportError) -> ClientError {
    ClientError::Local(err.to_string())
}

async fn fetch_export(
    client: &AgentClient,
    mut export: ExportWriter,
    proofs: u64,
) -> Result<ExportSummary, ClientError> {
    let key = client.audit(Kind::Key(proto::AuditKey {})).await?;
    let newest = client
        .audit(Kind::Checkpoint(proto::AuditCheckpoint {}))
        .await?;
    let size = export.start(&key.text, &newest.text).map_err(local)?.size;

    // Stored checkpoints up to the new one, one per size.
    let mut cursor = String::new();
    loop {
        let page = client
            .audit(Kind::Checkpoints(proto::AuditCheckpoints {
                page: Some(proto::Page { cursor, max: 1000 }),
            }))
            .await?;
        for note in &page.checkpoints {
            export.stored_checkpoint(note).map_err(local)?;
        }
        if page.checkpoints.is_empty() || page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }

    // Every entry the new checkpoint covers.
    while export.entries() < size {
        let index = export.entries();
        let want =
            u32::try_from((size - index).min(u64::from(EXPORT_BATCH))).unwrap_or(EXPORT_BATCH);
        let page = client
            .audit(Kind::Entries(proto::AuditEntries {
                page: Some(proto::Page {
                    cursor: calls::index_cursor(index),
                    max: want,
                }),
            }))
            .await?;
        if page.entries.is_empty() {
            return Err(ClientError::Local(format!(
                "the ledger returned no entry {index}"
            )));
        }
        for bytes in page
            .entries
            .iter()
            .take(usize::try_from(size - index).unwrap_or(usize::MAX))
        {
            export.entry(bytes).map_err(local)?;
        }
    }

    // Proofs: the newest entries, and from the newest stored checkpoints.
    for entry in size.saturating_sub(proofs)..size {
        let proof = client
            .audit(Kind::Prove(proto::AuditProve { index: entry }))
            .await?;
        export.inclusion_proof(entry, &proof.text).map_err(local)?;
    }
    let stored = export.stored();
    let skip = stored
        .len()
        .saturating_sub(usize::try_from(proofs).unwrap_or(usize::MAX));
    let olds: Vec<(u64, String)> = stored.iter().skip(skip).cloned().collect();
    for (cp_size, note) in olds {
        let proof = client
            .audit(Kind::Consistency(proto::AuditConsistency {
                old_checkpoint: note,
            }))
            .await?;
        export
            .consistency_proof(cp_size, &proof.text)
            .map_err(local)?;
    }
    export.finish().map_err(local)
}
