//! Interop with stock `minisign` (the real binary, which `.ci/run` installs): keys made by
//! `daemoneye-bundler keygen` work with stock minisign and keys made by stock minisign work
//! with our signer; stock signatures verify with our verifier; and every tampered, legacy,
//! untrusted or truncated signature is refused with its own error. The refusals come first.
//!
//! No test is skipped when minisign is missing: it fails, naming what to install.

// A test's helpers panic on failure as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use daemoneye_lib::minisign::{
    FileKind, MinisignError, PublicKey, SecretKeyFile, SignatureFile, VerifiedSignature,
    sign_reader, verify_reader,
};

const BUNDLER: &str = env!("CARGO_BIN_EXE_daemoneye-bundler");

/// Runs stock minisign with `args`, `stdin` on its standard input.
fn minisign(args: &[&str], dir: &Path, stdin: &str) -> Output {
    let mut child = Command::new("minisign")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run stock minisign ({e}): install it (apt-get install minisign; .ci/run does)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A stock unencrypted key pair `NAME.key`, `NAME.pub` in `dir`.
fn stock_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (secret, public) = (format!("{name}.key"), format!("{name}.pub"));
    ok(
        minisign(&["-G", "-W", "-p", &public, "-s", &secret], dir, ""),
        "minisign -G -W",
    );
    (dir.join(secret), dir.join(public))
}

/// A file `data` in `dir`, signed by stock minisign with `secret` (extra flags in `flags`).
fn stock_signed(dir: &Path, secret: &Path, flags: &[&str], password: &str) -> PathBuf {
    let data = dir.join("data.bin");
    fs::write(&data, b"rules and more rules\n".repeat(5000)).unwrap();
    let mut args = vec!["-S", "-s", secret.to_str().unwrap(), "-m", "data.bin"];
    args.extend_from_slice(flags);
    ok(minisign(&args, dir, password), "minisign -S");
    data
}

fn public_key(path: &Path) -> PublicKey {
    PublicKey::parse(&fs::read_to_string(path).unwrap()).unwrap()
}

fn our_verify(
    trusted: &[PublicKey],
    data: &Path,
    signature_text: &str,
) -> Result<VerifiedSignature, MinisignError> {
    let signature = SignatureFile::parse(signature_text)?;
    verify_reader(trusted, &signature, fs::File::open(data).unwrap())
}

fn minisig(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

#[test]
fn a_legacy_signature_from_stock_minisign_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = stock_key(dir.path(), "stock");
    let data = stock_signed(dir.path(), &secret, &["-l"], "");
    let text = fs::read_to_string(minisig(&data)).unwrap();
    let err = our_verify(&[public_key(&public)], &data, &text).unwrap_err();
    assert!(matches!(err, MinisignError::LegacySignature), "{err:?}");
    assert!(err.to_string().contains("legacy"), "{err}");
}

#[test]
fn a_signature_by_an_untrusted_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = stock_key(dir.path(), "signer");
    let (_, other) = stock_key(dir.path(), "trusted");
    let data = stock_signed(dir.path(), &secret, &[], "");
    let text = fs::read_to_string(minisig(&data)).unwrap();
    let err = our_verify(&[public_key(&other)], &data, &text).unwrap_err();
    match err {
        MinisignError::UntrustedKey { key_id } => {
            assert_eq!(key_id, public_key(&public).key_id());
        }
        other => panic!("expected UntrustedKey, got {other:?}"),
    }
}

#[test]
fn a_flipped_byte_in_the_file_is_refused_by_us_and_by_stock_minisign() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = stock_key(dir.path(), "stock");
    let data = stock_signed(dir.path(), &secret, &[], "");
    let mut bytes = fs::read(&data).unwrap();
    bytes[50_000] ^= 0x01;
    fs::write(&data, &bytes).unwrap();
    let text = fs::read_to_string(minisig(&data)).unwrap();
    let err = our_verify(&[public_key(&public)], &data, &text).unwrap_err();
    assert!(matches!(err, MinisignError::FileMismatch { .. }), "{err:?}");
    let stock = minisign(
        &["-V", "-p", public.to_str().unwrap(), "-m", "data.bin"],
        dir.path(),
        "",
    );
    assert!(!stock.status.success());
}

#[test]
fn a_flipped_byte_in_the_trusted_comment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = stock_key(dir.path(), "stock");
    let data = stock_signed(dir.path(), &secret, &["-t", "bundle core-rules 3"], "");
    let text = fs::read_to_string(minisig(&data)).unwrap();
    // "core-rules 3" becomes "core-rules 4": one byte, still printable.
    let forged = text.replace("core-rules 3", "core-rules 4");
    assert_ne!(forged, text);
    let err = our_verify(&[public_key(&public)], &data, &forged).unwrap_err();
    assert!(
        matches!(err, MinisignError::TrustedCommentForged { .. }),
        "{err:?}"
    );
}

#[test]
fn a_truncated_signature_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = stock_key(dir.path(), "stock");
    let data = stock_signed(dir.path(), &secret, &[], "");
    let text = fs::read_to_string(minisig(&data)).unwrap();
    for cut in [0, 10, text.len() / 2, text.len() - 20] {
        let err = our_verify(&[public_key(&public)], &data, &text[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                MinisignError::Malformed {
                    file: FileKind::Signature,
                    ..
                }
            ),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn a_stock_prehashed_signature_verifies_with_our_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = stock_key(dir.path(), "stock");
    let data = stock_signed(dir.path(), &secret, &["-t", "bundle core-rules 3"], "");
    let text = fs::read_to_string(minisig(&data)).unwrap();
    let verified = our_verify(&[public_key(&public)], &data, &text).unwrap();
    assert_eq!(verified.trusted_comment(), "bundle core-rules 3");
    assert_eq!(verified.key_id(), public_key(&public).key_id());
}

/// Signs `data` with our signer and the secret key at `secret`, writes `data.minisig`, and
/// checks that stock minisign verifies it (prehashed required, `-H`) and shows our comment.
fn sign_and_check_with_stock(dir: &Path, secret: &Path, password: Option<&[u8]>, public: &Path) {
    let key = SecretKeyFile::parse(&fs::read_to_string(secret).unwrap())
        .unwrap()
        .unlock(password)
        .unwrap();
    assert_eq!(key.public_key(), public_key(public));
    let data = dir.join("ours.bin");
    fs::write(&data, b"a bundle, say\n".repeat(10_000)).unwrap();
    let comment = "bundle core-rules 7";
    let signature = sign_reader(&key, fs::File::open(&data).unwrap(), comment, "test").unwrap();
    fs::write(minisig(&data), signature.to_text()).unwrap();
    let out = ok(
        minisign(
            &["-V", "-H", "-p", public.to_str().unwrap(), "-m", "ours.bin"],
            dir,
            "",
        ),
        "stock minisign -V of our signature",
    );
    assert!(
        out.contains(&format!("Trusted comment: {comment}")),
        "stock minisign printed: {out}"
    );
}

#[test]
fn a_bundler_key_signs_and_stock_minisign_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("bundle");
    let status = Command::new(BUNDLER)
        .args(["keygen", "--unencrypted", "--out"])
        .arg(&prefix)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let secret = dir.path().join("bundle.key");
    sign_and_check_with_stock(dir.path(), &secret, None, &dir.path().join("bundle.pub"));
    // Stock minisign signs with our unencrypted key too.
    let data = stock_signed(dir.path(), &secret, &[], "");
    ok(
        minisign(
            &["-V", "-p", "bundle.pub", "-m", "data.bin"],
            dir.path(),
            "",
        ),
        "stock minisign -V",
    );
    assert!(data.exists());
}

#[test]
fn a_stock_unencrypted_key_with_a_zero_checksum_signs_with_our_signer() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = stock_key(dir.path(), "stock");
    // The case the issue names: stock -G -W leaves the checksum (the last 32 bytes) zero.
    let text = fs::read_to_string(&secret).unwrap();
    let line = text.lines().nth(1).unwrap();
    let bytes = base64_decode(line);
    assert_eq!(bytes.len(), 158);
    assert!(
        bytes[126..].iter().all(|b| *b == 0),
        "this minisign writes a checksum"
    );
    sign_and_check_with_stock(dir.path(), &secret, None, &public);
}

#[test]
fn a_password_protected_bundler_key_works_with_stock_minisign() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("locked");
    let mut child = Command::new(BUNDLER)
        .args(["keygen", "--out"])
        .arg(&prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\ncorrect horse\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let secret = dir.path().join("locked.key");
    let public = dir.path().join("locked.pub");
    assert!(
        SecretKeyFile::parse(&fs::read_to_string(&secret).unwrap())
            .unwrap()
            .is_encrypted()
    );
    // Stock minisign decrypts it (it checks the checksum: a wrong layout is "Wrong password").
    stock_signed(dir.path(), &secret, &[], "correct horse\n");
    let text = fs::read_to_string(dir.path().join("data.bin.minisig")).unwrap();
    our_verify(&[public_key(&public)], &dir.path().join("data.bin"), &text).unwrap();
    sign_and_check_with_stock(dir.path(), &secret, Some(b"correct horse"), &public);
}

#[test]
fn a_password_protected_stock_key_is_loaded_and_signs() {
    let dir = tempfile::tempdir().unwrap();
    ok(
        minisign(
            &["-G", "-p", "locked.pub", "-s", "locked.key"],
            dir.path(),
            "s3cret pass\ns3cret pass\n",
        ),
        "minisign -G with a password on stdin",
    );
    let secret = dir.path().join("locked.key");
    let file = SecretKeyFile::parse(&fs::read_to_string(&secret).unwrap()).unwrap();
    assert!(file.is_encrypted());
    assert!(matches!(
        file.unlock(None),
        Err(MinisignError::PasswordNeeded)
    ));
    assert!(matches!(
        file.unlock(Some(b"s3cret pasS")),
        Err(MinisignError::WrongPassword)
    ));
    sign_and_check_with_stock(
        dir.path(),
        &secret,
        Some(b"s3cret pass"),
        &dir.path().join("locked.pub"),
    );
}

#[test]
fn keygen_refuses_to_overwrite_and_mismatched_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k");
    fs::write(dir.path().join("k.pub"), "keep me").unwrap();
    let out = Command::new(BUNDLER)
        .args(["keygen", "--unencrypted", "--out"])
        .arg(&prefix)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(
        fs::read_to_string(dir.path().join("k.pub")).unwrap(),
        "keep me"
    );
    assert!(!dir.path().join("k.key").exists());

    let mut child = Command::new(BUNDLER)
        .args(["keygen", "--out"])
        .arg(dir.path().join("m"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("do not match"));
    assert!(!dir.path().join("m.key").exists());
}

fn base64_decode(line: &str) -> Vec<u8> {
    // The public key parser is the only base64 decoder the library exports; decode by hand.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in line.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[test]
fn keygen_asks_for_the_password_on_a_terminal() {
    // Under `script` (a pseudo-terminal; .ci/run installs it) the password is read from the
    // terminal with rpassword's prompts, not from lines of standard input.
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("tty");
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!(
            "exec '{BUNDLER}' keygen --out '{}'",
            prefix.display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"on a tty\non a tty\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("Password (one more time): "), "{shown}");
    let secret = dir.path().join("tty.key");
    let file = SecretKeyFile::parse(&fs::read_to_string(&secret).unwrap()).unwrap();
    assert!(file.is_encrypted());
    ok(
        minisign(
            &["-S", "-s", secret.to_str().unwrap(), "-m", "tty.pub"],
            dir.path(),
            "on a tty\n",
        ),
        "stock minisign signing with the terminal-made key",
    );
}
