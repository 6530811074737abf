//! The tamper-evident audit ledger end to end, through `daemoneye-cli audit`: proofs and
//! checkpoints fetched from a running agent verify offline with nothing but the file and the
//! public key; a consistency proof links an old checkpoint to a new one; every single changed
//! byte of a proof, a consistency proof or a checkpoint makes `audit verify` exit 3 with a
//! reason; an export and the live ledger directory verify, and an edited entry, a removed
//! entry or an edited checkpoint in them is found.
//!
//! Runs as root (the agent starts a privileged procmond, which owns the ledger); CI runs it as
//! root.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use daemoneye_e2e::{Agent, bin, has_exited, wait_for};
use daemoneye_lib::ledger::entry::{Body, Entry};
use daemoneye_lib::ledger::note::{
    CONSISTENCY_HEADER, NoteSigner, NoteVerifier, TLOG_PROOF_HEADER,
};
use daemoneye_lib::ledger::verify::verify_text;

/// The standard base64 alphabet (RFC 4648 §4), the one every ledger file uses.
const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root; CI runs it as root"
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// `daemoneye-cli ARGS` against the agent; panics unless it exits 0. Returns stdout.
fn cli_ok(agent: &Agent, args: &[&str]) -> String {
    let out = agent.cli(args);
    assert!(
        out.status.success(),
        "daemoneye-cli {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `daemoneye-cli audit verify FILE --key KEY [--old OLD]`, offline: run from `cwd`, with no
/// data directory and no agent involved.
fn verify_in(cwd: &Path, file: &Path, key: &str, old: Option<&Path>) -> Output {
    let mut command = Command::new(bin("daemoneye-cli"));
    command
        .current_dir(cwd)
        .args(["audit", "verify"])
        .arg(file)
        .args(["--key", key]);
    if let Some(old) = old {
        command.arg("--old").arg(old);
    }
    command
        .env_remove("DAEMONEYE_DATA_DIR")
        .output()
        .expect("running daemoneye-cli")
}

fn verify(file: &Path, key: &str, old: Option<&Path>) -> Output {
    verify_in(Path::new("/"), file, key, old)
}

/// Asserts that `audit verify` succeeded; returns its stdout.
fn assert_verified(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what} should verify\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("verified: "), "{what}: {stdout}");
    stdout
}

/// The reason of a failed `audit verify`, or why the output is not such a failure: exit 3
/// and a stderr line `daemoneye-cli: audit verify: FAILED: <reason>` with a non-empty reason.
fn failure_reason(out: &Output) -> Result<String, String> {
    let stderr = text(&out.stderr);
    if out.status.code() != Some(3) {
        return Err(format!(
            "exit status {} (not 3); stdout: {}; stderr: {stderr}",
            out.status,
            text(&out.stdout)
        ));
    }
    let reason = stderr
        .lines()
        .find_map(|line| line.strip_prefix("daemoneye-cli: audit verify: FAILED: "))
        .map(str::trim)
        .unwrap_or_default();
    if reason.is_empty() {
        return Err(format!("exit 3 but no FAILED reason line: {stderr:?}"));
    }
    Ok(reason.to_owned())
}

fn assert_failed(out: &Output, what: &str) -> String {
    failure_reason(out).unwrap_or_else(|err| panic!("{what} should fail verification: {err}"))
}

/// The tree size on the second line of a checkpoint note.
fn checkpoint_size(note: &str) -> u64 {
    note.lines()
        .nth(1)
        .and_then(|line| line.parse().ok())
        .unwrap_or_else(|| panic!("not a checkpoint: {note:?}"))
}

/// Asks for a fresh checkpoint until one covers at least `min` entries (slowly: each request
/// signs a new checkpoint).
fn wait_for_checkpoint(agent: &Agent, min: u64) -> String {
    wait_for(
        &format!("a ledger checkpoint of at least {min} entries"),
        Duration::from_secs(120),
        || {
            let out = agent.cli(&["audit", "checkpoint"]);
            if out.status.success() {
                let note = text(&out.stdout);
                if checkpoint_size(&note) >= min {
                    return Some(note);
                }
            }
            std::thread::sleep(Duration::from_millis(400));
            None
        },
    )
}

/// The entry a verified proof printed (`entry N: <time> <source> <kind> fields…`): its kind.
fn proved_kind(stdout: &str, index: u64) -> String {
    let prefix = format!("entry {index}: ");
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("the verified proof does not name entry {index}: {stdout}"));
    line.split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no kind in {line:?}"))
        .to_owned()
}

/// Changes the time line of a checkpoint note (signed text): still well formed, no longer
/// the text that was signed.
fn edit_time_line(note: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in note.split_inclusive('\n') {
        if !done && let Some(ms) = line.strip_prefix("time ") {
            let ms: i64 = ms.trim_end().parse().expect("a time line");
            writeln!(out, "time {}", ms + 1).unwrap();
            done = true;
        } else {
            out.push_str(line);
        }
    }
    assert!(done, "no time line in {note:?}");
    out
}

// ---------------------------------------------------------------------------------------------
// The tamper matrix
// ---------------------------------------------------------------------------------------------

/// One line of a ledger text file: what it is, its bytes (newline included) and, when it
/// carries base64, where that is.
#[derive(Debug, Clone)]
struct Line {
    region: &'static str,
    bytes: Range<usize>,
    base64: Option<Range<usize>>,
}

/// Splits a checkpoint, inclusion proof or consistency proof file into its regions.
fn layout(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        lines.push((offset, raw.trim_end_matches('\n'), raw.len()));
        offset += raw.len();
    }
    let mut out = Vec::new();
    let line = |region, (start, content, len): (usize, &str, usize), from: Option<usize>| Line {
        region,
        bytes: start..start + len,
        base64: from.map(|from| start + from..start + content.len()),
    };
    let mut rest = lines.as_slice();
    if let Some((&first, after)) = rest.split_first()
        && (first.1 == TLOG_PROOF_HEADER || first.1 == CONSISTENCY_HEADER)
    {
        out.push(line("proof header line", first, None));
        rest = after;
        while let Some((&current, after)) = rest.split_first() {
            rest = after;
            let content = current.1;
            if content.is_empty() {
                out.push(line("blank line before the checkpoint", current, None));
                break;
            } else if content.starts_with("extra ") {
                out.push(line("extra (entry) line", current, Some(6)));
            } else if content.starts_with("index ") {
                out.push(line("index line", current, None));
            } else if content.starts_with("size1 ") {
                out.push(line("size1 line", current, None));
            } else {
                out.push(line("proof hash lines", current, Some(0)));
            }
        }
    }
    let body = [
        ("checkpoint origin line", None),
        ("checkpoint size line", None),
        ("checkpoint root line", Some(0)),
        ("checkpoint hash line", None),
        ("checkpoint time line", None),
        ("checkpoint blank line", None),
    ];
    for ((region, from), &current) in body.iter().zip(rest) {
        out.push(line(region, current, *from));
    }
    for &current in rest.iter().skip(body.len()) {
        let from = current.1.rfind(' ').map(|space| space + 1);
        out.push(line("signature line", current, from));
    }
    assert_eq!(
        out.last().map(|l| l.bytes.end),
        Some(text.len()),
        "the layout covers the whole file"
    );
    out
}

/// One changed copy of a file.
struct Mutant {
    region: &'static str,
    kind: &'static str,
    pos: usize,
    bytes: Vec<u8>,
}

const XOR: &str = "xor 0x01";
const SUBSTITUTE: &str = "other base64 char";

/// The copy of `original` where the base64 character at `pos` (inside `token`) is replaced by
/// another one such that the token still decodes (canonically) to bytes of the same length:
/// the change gets past every parser and reaches the hashes and the signature.
fn substitute_base64(original: &[u8], token: &Range<usize>, pos: usize) -> Option<Vec<u8>> {
    let here = BASE64_ALPHABET.iter().position(|&c| c == original[pos])?;
    let decoded = BASE64.decode(&original[token.clone()]).ok()?;
    // 37 is odd, so the steps visit every other character, in an order that varies with `pos`.
    (1..64).find_map(|step| {
        let mut bytes = original.to_vec();
        bytes[pos] = BASE64_ALPHABET[(here + step * 37 + pos) % 64];
        if bytes[pos] == original[pos] {
            return None;
        }
        let changed = BASE64.decode(&bytes[token.clone()]).ok()?;
        (changed.len() == decoded.len() && changed != decoded).then_some(bytes)
    })
}

/// Every byte of the file XORed with 0x01, and every base64 character (padding aside)
/// replaced by another valid one.
fn mutants(text: &str) -> Vec<Mutant> {
    let original = text.as_bytes();
    let mut out = Vec::new();
    for line in layout(text) {
        for pos in line.bytes.clone() {
            let mut bytes = original.to_vec();
            bytes[pos] ^= 0x01;
            out.push(Mutant {
                region: line.region,
                kind: XOR,
                pos,
                bytes,
            });
        }
        if let Some(token) = &line.base64 {
            for pos in token.clone().filter(|&pos| original[pos] != b'=') {
                let bytes = substitute_base64(original, token, pos).unwrap_or_else(|| {
                    panic!("no valid base64 substitute at byte {pos} of {text:?}")
                });
                out.push(Mutant {
                    region: line.region,
                    kind: SUBSTITUTE,
                    pos,
                    bytes,
                });
            }
        }
    }
    out
}

/// Up to `per_group` mutants of each region and kind, spread over the region.
fn sample(all: &[Mutant], per_group: usize) -> Vec<&Mutant> {
    let mut groups: BTreeMap<(&str, &str), Vec<&Mutant>> = BTreeMap::new();
    for mutant in all {
        groups
            .entry((mutant.region, mutant.kind))
            .or_default()
            .push(mutant);
    }
    let mut out = Vec::new();
    for group in groups.values() {
        let take = group.len().min(per_group);
        out.extend((0..take).map(|i| group[i * group.len() / take]));
    }
    out
}

/// Mutants checked, by region and kind.
type Counts = BTreeMap<(&'static str, &'static str), usize>;

fn verify_bytes(bytes: &[u8], key: &NoteVerifier, old: Option<&str>) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|err| format!("not UTF-8: {err}"))?;
    verify_text(text, key, old)
        .map(|verified| format!("{verified:?}"))
        .map_err(|failure| failure.to_string())
}

/// Verifies every mutant with the library the CLI uses (two threads: the machine has two
/// cores); each must fail, with a reason.
fn in_process_matrix(name: &str, all: &[Mutant], key: &NoteVerifier, old: Option<&str>) -> Counts {
    const WORKERS: usize = 2;
    let chunk = all.len().div_ceil(WORKERS).max(1);
    let results: Vec<(Counts, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = all
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut counts = Counts::new();
                    let mut wrong = Vec::new();
                    for mutant in part {
                        match verify_bytes(&mutant.bytes, key, old) {
                            Ok(verified) => wrong.push(format!(
                                "{} at byte {} ({}) still verifies: {verified}",
                                mutant.kind, mutant.pos, mutant.region
                            )),
                            Err(reason) if reason.trim().is_empty() => wrong.push(format!(
                                "{} at byte {} ({}) fails without a reason",
                                mutant.kind, mutant.pos, mutant.region
                            )),
                            Err(_) => *counts.entry((mutant.region, mutant.kind)).or_default() += 1,
                        }
                    }
                    (counts, wrong)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a verifying thread"))
            .collect()
    });
    merge(name, all.len(), results, "were not refused")
}

/// Adds up the workers' counts; panics with every wrong outcome.
fn merge(name: &str, total: usize, results: Vec<(Counts, Vec<String>)>, what: &str) -> Counts {
    let mut counts = Counts::new();
    let mut wrong = Vec::new();
    for (part, errors) in results {
        for (group, n) in part {
            *counts.entry(group).or_default() += n;
        }
        wrong.extend(errors);
    }
    assert!(
        wrong.is_empty(),
        "{name}: {} of {total} changed copies {what}:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    counts
}

/// Runs `daemoneye-cli audit verify` on every mutant (two at a time: the machine has two
/// cores); each must exit 3 with a FAILED reason line.
fn cli_matrix(
    name: &str,
    mutants: &[&Mutant],
    dir: &Path,
    key_file: &Path,
    old: Option<&Path>,
) -> Counts {
    const WORKERS: usize = 2;
    let chunk = mutants.len().div_ceil(WORKERS).max(1);
    let results: Vec<(Counts, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = mutants
            .chunks(chunk)
            .enumerate()
            .map(|(worker, part)| {
                scope.spawn(move || {
                    let file = dir.join(format!("{name}.mutant-{worker}"));
                    let mut counts = Counts::new();
                    let mut wrong = Vec::new();
                    for mutant in part {
                        std::fs::write(&file, &mutant.bytes).unwrap();
                        match failure_reason(&verify(&file, path_str(key_file), old)) {
                            Ok(_) => *counts.entry((mutant.region, mutant.kind)).or_default() += 1,
                            Err(err) => wrong.push(format!(
                                "{} at byte {} ({}): {err}",
                                mutant.kind, mutant.pos, mutant.region
                            )),
                        }
                    }
                    (counts, wrong)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a CLI worker"))
            .collect()
    });
    merge(
        name,
        mutants.len(),
        results,
        "did not make the CLI exit 3 with a reason",
    )
}

fn report(name: &str, in_process: &Counts, cli: &Counts) {
    let mut table = format!(
        "tamper matrix of {name} (refused / changed copies):\n  {:<34} {:>18} {:>18} {:>14} {:>14}\n",
        "region", "xor lib", "base64 lib", "xor CLI", "base64 CLI"
    );
    let mut regions: Vec<&str> = in_process.keys().map(|(region, _)| *region).collect();
    regions.dedup();
    let get = |counts: &Counts, region, kind| counts.get(&(region, kind)).copied().unwrap_or(0);
    for region in regions {
        writeln!(
            table,
            "  {region:<34} {:>18} {:>18} {:>14} {:>14}",
            get(in_process, region, XOR),
            get(in_process, region, SUBSTITUTE),
            get(cli, region, XOR),
            get(cli, region, SUBSTITUTE),
        )
        .unwrap();
    }
    let total = |counts: &Counts| counts.values().sum::<usize>();
    writeln!(
        table,
        "  total: {} in the library, {} through the CLI",
        total(in_process),
        total(cli)
    )
    .unwrap();
    eprint!("{table}");
}

/// Asserts that every region of `regions` got changed copies of both kinds where it applies.
fn assert_covers(name: &str, counts: &Counts, regions: &[(&str, bool)]) {
    for &(region, has_base64) in regions {
        assert!(
            counts.get(&(region, XOR)).copied().unwrap_or(0) > 0,
            "{name}: no byte of the {region} was changed"
        );
        if has_base64 {
            assert!(
                counts.get(&(region, SUBSTITUTE)).copied().unwrap_or(0) > 0,
                "{name}: no base64 character of the {region} was replaced"
            );
        }
    }
}

const CHECKPOINT_REGIONS: [(&str, bool); 7] = [
    ("checkpoint origin line", false),
    ("checkpoint size line", false),
    ("checkpoint root line", true),
    ("checkpoint hash line", false),
    ("checkpoint time line", false),
    ("checkpoint blank line", false),
    ("signature line", true),
];

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn proofs_verify_offline_and_every_changed_byte_is_refused() {
    require_root();
    let work = tempfile::Builder::new()
        .prefix("de-audit-")
        .tempdir()
        .unwrap();
    let work = work.path();
    let agent = Agent::start("", 1.0);
    agent.wait_for_procmond();

    // 1. The key and inclusion proofs; they verify offline and name their entries.
    wait_for_checkpoint(&agent, 5);
    let key_file = work.join("k.pub");
    cli_ok(&agent, &["audit", "key", "--out", path_str(&key_file)]);
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    assert!(key_text.ends_with('\n'), "{key_text:?}");
    let key_text = key_text.trim().to_owned();
    let key = NoteVerifier::parse(&key_text).expect("the printed key parses");
    let key_on_stdout = cli_ok(&agent, &["audit", "key"]);
    assert_eq!(key_on_stdout.trim(), key_text);

    // Prove entries one by one until a scan was recorded and proved.
    let mut kinds: Vec<String> = Vec::new();
    let mut covered = 0;
    wait_for("a proved scan entry", Duration::from_secs(120), || {
        let note = wait_for_checkpoint(&agent, covered + 1);
        covered = checkpoint_size(&note);
        for index in kinds.len() as u64..covered {
            let proof = work.join(format!("p{index}"));
            cli_ok(
                &agent,
                &[
                    "audit",
                    "prove",
                    "--entry",
                    &index.to_string(),
                    "--out",
                    path_str(&proof),
                ],
            );
            let stdout = assert_verified(
                &verify(&proof, path_str(&key_file), None),
                &format!("the proof of entry {index}"),
            );
            assert!(
                stdout.starts_with(&format!("verified: entry {index} is in the ledger ")),
                "{stdout}"
            );
            kinds.push(proved_kind(&stdout, index));
        }
        kinds.iter().any(|kind| kind == "scan").then_some(())
    });
    eprintln!("proved entries: {kinds:?}");
    assert_eq!(kinds[0], "ledger_created");
    assert!(kinds.iter().any(|k| k == "procmond_started"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "scan"), "{kinds:?}");
    let last = kinds.len() as u64 - 1;

    // Nothing but the files and the key: copied to a fresh directory, verified from there.
    let auditor = tempfile::tempdir().unwrap();
    let auditor = auditor.path();
    for name in ["p0".to_owned(), format!("p{last}"), "k.pub".to_owned()] {
        std::fs::copy(work.join(&name), auditor.join(&name)).unwrap();
    }
    let p0 = assert_verified(
        &verify_in(auditor, Path::new("p0"), "k.pub", None),
        "p0 in a fresh directory",
    );
    assert!(p0.contains("entry 0: "), "{p0}");
    assert!(p0.contains(" procmond ledger_created "), "{p0}");
    assert!(p0.contains(&key_text), "entry 0 records the key: {p0}");
    let p_last = assert_verified(
        &verify_in(auditor, Path::new(&format!("p{last}")), "k.pub", None),
        "the last proof in a fresh directory",
    );
    assert_eq!(proved_kind(&p_last, last), kinds[last as usize]);
    // The key given as text rather than as a file.
    assert_verified(
        &verify_in(auditor, Path::new("p0"), &key_text, None),
        "p0 with the key as text",
    );

    // 2. Consistency: an old checkpoint, more scans, a proof that the new tree extends it.
    let old = work.join("old");
    cli_ok(&agent, &["audit", "checkpoint", "--out", path_str(&old)]);
    let old_note = std::fs::read_to_string(&old).unwrap();
    let old_size = checkpoint_size(&old_note);
    assert_verified(
        &verify(&old, path_str(&key_file), None),
        "the old checkpoint",
    );
    wait_for_checkpoint(&agent, old_size + 3);
    let cons = work.join("cons");
    cli_ok(
        &agent,
        &[
            "audit",
            "consistency",
            "--from",
            path_str(&old),
            "--out",
            path_str(&cons),
        ],
    );
    let cons_text = std::fs::read_to_string(&cons).unwrap();
    assert!(cons_text.starts_with(&format!("{CONSISTENCY_HEADER}\nsize1 {old_size}\n")));
    let stdout = assert_verified(
        &verify(&cons, path_str(&key_file), Some(&old)),
        "the consistency proof",
    );
    assert!(
        stdout.contains(&format!("extends the ledger of size {old_size} ")),
        "{stdout}"
    );
    // The old checkpoint edited (its signed time line): it no longer verifies.
    let tampered_old = work.join("old.tampered");
    std::fs::write(&tampered_old, edit_time_line(&old_note)).unwrap();
    let reason = assert_failed(
        &verify(&cons, path_str(&key_file), Some(&tampered_old)),
        "a consistency proof from a tampered old checkpoint",
    );
    assert!(reason.contains("older checkpoint"), "{reason}");
    // Without --old it cannot be checked at all: a usage error, saying what is needed.
    let out = verify(&cons, path_str(&key_file), None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a consistency proof without --old: {out:?}"
    );
    assert!(text(&out.stderr).contains("--old"), "{out:?}");
    // A genuine checkpoint, but not the one the proof starts from.
    let newest = work.join("newest");
    cli_ok(&agent, &["audit", "checkpoint", "--out", path_str(&newest)]);
    let newest_note = std::fs::read_to_string(&newest).unwrap();
    assert_verified(&verify(&newest, path_str(&key_file), None), "a checkpoint");
    let reason = assert_failed(
        &verify(&cons, path_str(&key_file), Some(&newest)),
        "a consistency proof with the wrong old checkpoint",
    );
    assert!(reason.contains("starts at size"), "{reason}");

    // 6. Errors: an entry that does not exist, garbage, a missing file, a bad key.
    let out = agent.cli(&["audit", "prove", "--entry", "999999999"]);
    let stderr = text(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "prove of a missing entry: {out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(stderr.contains("999999999"), "{stderr}");
    let garbage = work.join("garbage");
    std::fs::write(&garbage, b"\x00\x01 this is not a ledger file\n\xff").unwrap();
    assert_failed(
        &verify(&garbage, path_str(&key_file), None),
        "a binary garbage file",
    );
    std::fs::write(&garbage, "hello\nworld\n").unwrap();
    assert_failed(
        &verify(&garbage, path_str(&key_file), None),
        "a text garbage file",
    );
    std::fs::write(&garbage, "").unwrap();
    assert_failed(
        &verify(&garbage, path_str(&key_file), None),
        "an empty file",
    );
    let out = verify(&work.join("missing"), path_str(&key_file), None);
    assert_eq!(out.status.code(), Some(2), "a missing file: {out:?}");
    let out = verify(&work.join("p0"), "not a key", None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a key that does not parse: {out:?}"
    );
    // Another key of the same name: the proof's signature is not by it.
    let origin = old_note.lines().next().unwrap();
    let other_key = NoteSigner::from_seed(origin, [7; 32])
        .unwrap()
        .verifier()
        .to_string();
    assert_ne!(other_key, key_text);
    let reason = assert_failed(
        &verify(&work.join("p0"), &other_key, None),
        "a proof checked with another key",
    );
    assert!(reason.contains("does not verify"), "{reason}");

    // The matrix is offline: stop the agent first so it does not compete for the CPU.
    drop(agent);

    // 3. The tamper matrix. Every byte of the proof of entry 0 is changed in two ways and
    // verified both with the library (`verify_text`, what the CLI calls) and with the CLI
    // itself. The other files (the last entry's proof, the consistency proof, the old
    // checkpoint under it, a checkpoint) get every change through the library and a sample
    // of up to 6 changes per region and kind through the CLI.
    let started = Instant::now();
    let p0_text = std::fs::read_to_string(work.join("p0")).unwrap();
    let p0_mutants = mutants(&p0_text);
    let lib = in_process_matrix("p0", &p0_mutants, &key, None);
    eprintln!("p0 in the library took {:?}", started.elapsed());
    let all: Vec<&Mutant> = p0_mutants.iter().collect();
    let cli = cli_matrix("p0", &all, work, &key_file, None);
    report(
        &format!("the proof of entry 0 ({} bytes)", p0_text.len()),
        &lib,
        &cli,
    );
    for counts in [&lib, &cli] {
        assert_covers("p0", counts, &CHECKPOINT_REGIONS);
        assert_covers(
            "p0",
            counts,
            &[
                ("proof header line", false),
                ("extra (entry) line", true),
                ("index line", false),
                ("proof hash lines", true),
                ("blank line before the checkpoint", false),
            ],
        );
    }
    assert_eq!(
        cli.values().sum::<usize>(),
        p0_mutants.len(),
        "every change went through the CLI"
    );
    assert!(
        lib.iter()
            .filter(|((_, kind), _)| *kind == XOR)
            .map(|(_, n)| n)
            .sum::<usize>()
            == p0_text.len(),
        "every byte of p0 was changed"
    );
    eprintln!("p0 matrix took {:?}", started.elapsed());

    let last_text = std::fs::read_to_string(work.join(format!("p{last}"))).unwrap();
    let last_mutants = mutants(&last_text);
    let lib = in_process_matrix("the last proof", &last_mutants, &key, None);
    let cli = cli_matrix("plast", &sample(&last_mutants, 6), work, &key_file, None);
    report(
        &format!("the proof of entry {last} ({} bytes)", last_text.len()),
        &lib,
        &cli,
    );

    let cons_mutants = mutants(&cons_text);
    let lib = in_process_matrix("cons", &cons_mutants, &key, Some(&old_note));
    let cli = cli_matrix(
        "cons",
        &sample(&cons_mutants, 6),
        work,
        &key_file,
        Some(&old),
    );
    report(
        &format!("the consistency proof ({} bytes)", cons_text.len()),
        &lib,
        &cli,
    );
    for counts in [&lib, &cli] {
        assert_covers("cons", counts, &CHECKPOINT_REGIONS);
        assert_covers(
            "cons",
            counts,
            &[
                ("proof header line", false),
                ("size1 line", false),
                ("proof hash lines", true),
            ],
        );
    }

    // The old checkpoint changed under an intact consistency proof.
    let old_mutants = mutants(&old_note);
    let lib: Counts = {
        let mut counts = Counts::new();
        for mutant in &old_mutants {
            let Ok(old_text) = std::str::from_utf8(&mutant.bytes) else {
                // The CLI reads --old as UTF-8 text and refuses it (exit 3); nothing to verify.
                *counts.entry((mutant.region, mutant.kind)).or_default() += 1;
                continue;
            };
            let outcome = verify_text(&cons_text, &key, Some(old_text));
            assert!(
                outcome.is_err(),
                "{} at byte {} ({}) of the old checkpoint: {outcome:?}",
                mutant.kind,
                mutant.pos,
                mutant.region
            );
            *counts.entry((mutant.region, mutant.kind)).or_default() += 1;
        }
        counts
    };
    let mut cli = Counts::new();
    let changed_old = work.join("old.mutant");
    for mutant in sample(&old_mutants, 3) {
        if std::str::from_utf8(&mutant.bytes).is_err() {
            continue;
        }
        std::fs::write(&changed_old, &mutant.bytes).unwrap();
        let out = verify(&cons, path_str(&key_file), Some(&changed_old));
        if let Err(err) = failure_reason(&out) {
            panic!(
                "{} at byte {} ({}) of the old checkpoint: {err}",
                mutant.kind, mutant.pos, mutant.region
            );
        }
        *cli.entry((mutant.region, mutant.kind)).or_default() += 1;
    }
    report(
        &format!(
            "the old checkpoint under a consistency proof ({} bytes)",
            old_note.len()
        ),
        &lib,
        &cli,
    );
    assert_covers("old", &lib, &CHECKPOINT_REGIONS);

    let cp_mutants = mutants(&newest_note);
    let lib = in_process_matrix("checkpoint", &cp_mutants, &key, None);
    let cli = cli_matrix("checkpoint", &sample(&cp_mutants, 6), work, &key_file, None);
    report(
        &format!("a checkpoint ({} bytes)", newest_note.len()),
        &lib,
        &cli,
    );
    for counts in [&lib, &cli] {
        assert_covers("checkpoint", counts, &CHECKPOINT_REGIONS);
    }
    eprintln!("the whole tamper matrix took {:?}", started.elapsed());
}

/// The frames of an export's `entries.bin`: (start of the frame, the entry's bytes).
fn export_frames(bytes: &[u8]) -> Vec<(usize, Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, at + 4..at + 4 + len));
        at += 4 + len;
    }
    assert_eq!(at, bytes.len(), "entries.bin is a whole number of frames");
    out
}

/// The frames of a ledger file (`entries.log`, `checkpoints.log`) after its magic: (start of
/// the frame, the payload).
fn ledger_frames(bytes: &[u8], magic: &[u8; 8]) -> Vec<(usize, Range<usize>)> {
    assert_eq!(&bytes[..8], magic);
    let mut out = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if at + 8 + len > bytes.len() {
            break;
        }
        out.push((at, at + 8..at + 8 + len));
        at += 8 + len;
    }
    assert_eq!(at, bytes.len(), "the file is a whole number of frames");
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the export in `export`, changed by `edit`, must fail verification.
fn edited_export_fails(
    export: &Path,
    work: &Path,
    key_file: &Path,
    name: &str,
    edit: impl FnOnce(&Path),
) -> String {
    let copy = work.join(name);
    copy_dir(export, &copy);
    edit(&copy);
    let reason = assert_failed(&verify(&copy, path_str(key_file), None), name);
    eprintln!("{name}: {reason}");
    reason
}

#[test]
fn exports_and_ledger_directories_verify_and_edits_are_found() {
    require_root();
    let work = tempfile::Builder::new()
        .prefix("de-audit-export-")
        .tempdir()
        .unwrap();
    let work = work.path();
    let mut agent = Agent::start("", 1.0);
    let health = agent.wait_for_procmond();
    let procmond = u32::try_from(health["procmond"]["pid"].as_u64().unwrap()).unwrap();
    wait_for_checkpoint(&agent, 8);
    let key_file = work.join("k.pub");
    cli_ok(&agent, &["audit", "key", "--out", path_str(&key_file)]);

    // 5a. The live ledger directory verifies while procmond appends to it.
    let ledger = agent.data_dir.join("ledger");
    let stdout = assert_verified(
        &verify(&ledger, path_str(&key_file), None),
        "the live ledger directory",
    );
    assert!(stdout.contains(" entries, "), "{stdout}");

    // 4. The export.
    let export = work.join("export");
    let summary = cli_ok(
        &agent,
        &[
            "audit",
            "export",
            "--out",
            path_str(&export),
            "--proofs",
            "5",
        ],
    );
    assert!(summary.starts_with("exported "), "{summary}");
    for name in [
        "README.md",
        "ledger.pub",
        "checkpoint",
        "entries.bin",
        "entries.jsonl",
    ] {
        assert!(export.join(name).is_file(), "{name} missing in the export");
    }
    // What the agent recorded through procmond is in the ledger beside procmond's own entries.
    let kinds: Vec<String> = std::fs::read_to_string(export.join("entries.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            format!(
                "{}:{}",
                entry["source"].as_str().unwrap(),
                entry["kind"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "procmond:ledger_created",
        "procmond:procmond_started",
        "procmond:privileges_dropped",
        "procmond:scan",
        "agent:agent_started",
        "agent:config_changed",
    ] {
        assert!(
            kinds.iter().any(|kind| kind == want),
            "no {want} in {kinds:?}"
        );
    }
    let readme = std::fs::read_to_string(export.join("README.md")).unwrap();
    assert!(readme.contains("audit verify"), "{readme}");
    assert_eq!(
        std::fs::read_to_string(export.join("ledger.pub"))
            .unwrap()
            .trim(),
        std::fs::read_to_string(&key_file).unwrap().trim()
    );
    let export_key = export.join("ledger.pub");
    let stdout = assert_verified(&verify(&export, path_str(&export_key), None), "the export");
    eprintln!("the export: {stdout}");
    assert!(stdout.contains(" 5 inclusion proofs"), "{stdout}");
    // An export does not need the host: copied elsewhere, verified with the key beside it.
    let elsewhere = work.join("elsewhere");
    copy_dir(&export, &elsewhere);
    assert_verified(
        &verify_in(&elsewhere, Path::new("."), "ledger.pub", None),
        "the export from inside it",
    );

    let entries = std::fs::read(export.join("entries.bin")).unwrap();
    let frames = export_frames(&entries);
    assert!(frames.len() >= 8, "{} entries exported", frames.len());
    edited_export_fails(&export, work, &key_file, "one entry byte flipped", |dir| {
        let (_, payload) = &frames[frames.len() / 2];
        let mut bytes = entries.clone();
        bytes[payload.start + payload.len() / 2] ^= 0x01;
        std::fs::write(dir.join("entries.bin"), bytes).unwrap();
    });
    let reason = edited_export_fails(&export, work, &key_file, "last entry removed", |dir| {
        let (start, _) = frames[frames.len() - 1];
        std::fs::write(dir.join("entries.bin"), &entries[..start]).unwrap();
    });
    assert!(reason.contains("removed"), "{reason}");
    let reason = edited_export_fails(&export, work, &key_file, "an entry added", |dir| {
        // A copy of the last frame after it: well formed, but no checkpoint covers it.
        let (start, _) = frames[frames.len() - 1];
        let mut bytes = entries.clone();
        bytes.extend_from_slice(&entries[start..]);
        std::fs::write(dir.join("entries.bin"), bytes).unwrap();
    });
    assert!(reason.contains("entries were added"), "{reason}");
    let reason = edited_export_fails(&export, work, &key_file, "an entry replaced", |dir| {
        // Entry 1 replaced by entry 2, both well formed: only the tree can tell.
        let (start1, _) = frames[1];
        let (start2, payload2) = frames[2].clone();
        let (start3, _) = frames[3];
        let mut bytes = entries[..start1].to_vec();
        bytes.extend_from_slice(&entries[start2..payload2.end]);
        bytes.extend_from_slice(&entries[start2..start3]);
        bytes.extend_from_slice(&entries[start3..]);
        std::fs::write(dir.join("entries.bin"), bytes).unwrap();
    });
    assert!(reason.contains("another root"), "{reason}");
    let stored: Vec<PathBuf> = {
        let mut files: Vec<PathBuf> = std::fs::read_dir(export.join("checkpoints"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
    };
    assert!(!stored.is_empty(), "the export holds stored checkpoints");
    let first_stored = stored[0].file_name().unwrap().to_owned();
    let reason = edited_export_fails(
        &export,
        work,
        &key_file,
        "a stored checkpoint edited",
        |dir| {
            let path = dir.join("checkpoints").join(&first_stored);
            let note = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, edit_time_line(&note)).unwrap();
        },
    );
    assert!(reason.contains("does not verify"), "{reason}");
    edited_export_fails(
        &export,
        work,
        &key_file,
        "the newest checkpoint edited",
        |dir| {
            let path = dir.join("checkpoint");
            let note = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, edit_time_line(&note)).unwrap();
        },
    );
    edited_export_fails(&export, work, &key_file, "a proof file edited", |dir| {
        let proof = std::fs::read_dir(dir.join("proofs"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|ext| ext == "proof"))
            .expect("an inclusion proof in the export");
        let text = std::fs::read_to_string(&proof).unwrap();
        let index = text.find("\nindex ").unwrap() + "\nindex ".len();
        let mut bytes = text.into_bytes();
        bytes[index] = if bytes[index] == b'1' { b'2' } else { b'1' };
        std::fs::write(&proof, bytes).unwrap();
    });

    // 5b. Stop the agent: procmond notices, records its stop, signs a last checkpoint, exits.
    agent.kill();
    wait_for("procmond to exit", Duration::from_secs(30), || {
        has_exited(procmond).then_some(())
    });
    assert_verified(
        &verify(&ledger, path_str(&key_file), None),
        "the stopped ledger directory",
    );
    let log_path = ledger.join("entries.log");
    let log = std::fs::read(&log_path).unwrap();
    let frames = ledger_frames(&log, b"DEYELOG1");
    let decoded: Vec<Entry> = frames
        .iter()
        .map(|(_, payload)| Entry::decode(&log[payload.clone()]).expect("every entry decodes"))
        .collect();
    // procmond recorded its stop last (a scan still running when the agent went away is
    // recorded before it), and its last checkpoint covers everything.
    assert!(
        decoded
            .last()
            .is_some_and(|e| matches!(e.body, Body::ProcmondStopped { .. })),
        "procmond's stop is its last entry: {:?}",
        &decoded[decoded.len().saturating_sub(3)..]
    );
    let notes = std::fs::read(ledger.join("checkpoints.log")).unwrap();
    let covered = ledger_frames(&notes, b"DEYECKP1")
        .last()
        .map(|(_, note)| checkpoint_size(&text(&notes[note.clone()])))
        .expect("a checkpoint in checkpoints.log");
    assert_eq!(
        covered,
        decoded.len() as u64,
        "the last checkpoint covers the stop"
    );
    // Change one byte in the middle of a scan entry a checkpoint covers (inside its counts
    // and times: any value still decodes) and fix the frame's checksum, so that only the tree
    // can catch it.
    let scans: Vec<usize> = decoded
        .iter()
        .enumerate()
        .filter(|(index, entry)| {
            (*index as u64) < covered && matches!(entry.body, Body::Scan { .. })
        })
        .map(|(index, _)| index)
        .collect();
    let victim = *scans
        .get(scans.len() / 2)
        .expect("a covered scan entry in the ledger");
    let (start, payload) = frames[victim].clone();
    let mut changed = log.clone();
    changed[payload.start + payload.len() / 2] ^= 0x01;
    let changed_entry = Entry::decode(&changed[payload.clone()]).expect("still a valid entry");
    assert_ne!(changed_entry, decoded[victim]);
    let crc = crc32c::crc32c(&changed[payload.clone()]);
    changed[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&log_path, &changed).unwrap();
    let reason = assert_failed(
        &verify(&ledger, path_str(&key_file), None),
        "the ledger with a changed entry",
    );
    eprintln!("ledger entry {victim} changed: {reason}");
    assert!(
        reason.contains("another root"),
        "the tree caught it: {reason}"
    );
    assert!(!reason.contains("damaged"), "not the checksum: {reason}");
}
