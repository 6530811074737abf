//! Tests of signed notes, keys, checkpoints and proof files: the Go sumdb vectors and byte-flip loops.

use super::*;
use std::fmt;

use super::keys::{hex_id, key_id};
use super::tlog::in_checkpoint;
use crate::ledger::HashAlg;

// golang.org/x/mod/sumdb/note, note_test.go (TestNewVerifier, TestNewSigner, TestSign,
// TestOpen) and the package documentation: the reference implementation's own vectors.
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter() -> NoteVerifier {
    NoteVerifier::parse(PETER_VKEY).expect("Go's verifier key parses")
}

fn enoch() -> NoteVerifier {
    NoteVerifier::parse(ENOCH_VKEY).expect("Go's verifier key parses")
}

fn go_note() -> String {
    format!("{GO_TEXT}\n{PETER_SIG}")
}

fn test_signer() -> NoteSigner {
    NoteSigner::from_seed("daemoneye.test/host-1", [7; 32]).expect("valid name")
}

fn test_checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "daemoneye.test/host-1".to_owned(),
        size: 7,
        root: [0xa5; 32],
        hash: HashAlg::Sha256,
        time_ms: 1_700_000_000_123,
    }
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Asserts `result` is the error `expected`, exactly.
#[track_caller]
fn check<T: fmt::Debug>(what: &str, result: Result<T, NoteError>, expected: &NoteError) {
    match result {
        Ok(value) => panic!("{what}: accepted, got {value:?}, expected error {expected}"),
        Err(error) => assert_eq!(&error, expected, "{what}: wrong error ({error})"),
    }
}

// ---- Negative tests: keys --------------------------------------------------------------

#[test]
fn verifier_key_rejects_every_substring_and_every_incremented_byte() {
    // As Go's TestNewVerifier: every proper substring, every byte plus one.
    let b = PETER_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i == 0 && j == b.len() {
                continue;
            }
            let text = std::str::from_utf8(&b[i..j]).expect("ASCII");
            assert!(NoteVerifier::parse(text).is_err(), "accepted {text:?}");
        }
    }
    for i in 0..b.len() {
        let mut mangled = b.to_vec();
        mangled[i] += 1;
        let text = std::str::from_utf8(&mangled).expect("ASCII");
        assert!(NoteVerifier::parse(text).is_err(), "accepted {text:?}");
    }
}

#[test]
fn verifier_key_rejects_each_fault_with_its_own_error() {
    const WHAT: &str = "verifier key";
    let cases: &[(&str, &str, NoteError)] = &[
        // Go's two extra cases, the key id adjusted so that only the defect remains. Go's
        // decoder takes "BADKEY==" (non-zero trailing bits); ours refuses it earlier.
        (
            "wrong length key",
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            NoteError::MalformedKey {
                what: WHAT,
                reason: "key is not canonical padded base64",
            },
        ),
        (
            "unknown algorithm",
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::UnknownAlgorithm {
                what: WHAT,
                alg: 0x65,
            },
        ),
        (
            "uppercase key id",
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::MalformedKey {
                what: WHAT,
                reason: "key id is not 8 lowercase hex digits",
            },
        ),
        (
            "wrong key id",
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::KeyIdMismatch {
                what: WHAT,
                stated: "c74f20a4".to_owned(),
                computed: "c74f20a3".to_owned(),
            },
        ),
        (
            "wrong name",
            "PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::KeyIdMismatch {
                what: WHAT,
                stated: "c74f20a3".to_owned(),
                computed: hex_id(key_id("PeterNeumanm", &peter().public_key())),
            },
        ),
        (
            "trailing newline",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
            NoteError::MalformedKey {
                what: WHAT,
                reason: "key is not canonical padded base64",
            },
        ),
        (
            "leading space",
            " PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::InvalidKeyName {
                name: "\" PeterNeumann\"".to_owned(),
                reason: "contains a space",
            },
        ),
        (
            "empty name",
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            NoteError::InvalidKeyName {
                name: "\"\"".to_owned(),
                reason: "is empty",
            },
        ),
        (
            "no key",
            "PeterNeumann+c74f20a3",
            NoteError::MalformedKey {
                what: WHAT,
                reason: "expected <name>+<key id>+<key>",
            },
        ),
        (
            "empty key",
            "PeterNeumann+c74f20a3+",
            NoteError::MalformedKey {
                what: WHAT,
                reason: "key is empty",
            },
        ),
        (
            "unpadded base64",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            NoteError::MalformedKey {
                what: WHAT,
                reason: "key is not canonical padded base64",
            },
        ),
    ];
    for (what, text, expected) in cases {
        check(what, NoteVerifier::parse(text), expected);
    }
    // Canonical base64 of 0x01 and 31 or 33 key bytes.
    for len in [31, 33] {
        let mut blob = vec![ALG_ED25519];
        blob.resize(len + 1, 0x42);
        check(
            "wrong length key",
            NoteVerifier::parse(&format!("PeterNeumann+c74f20a3+{}", b64(&blob))),
            &NoteError::KeyLength { what: WHAT, len },
        );
    }
    let long = format!("{}+00000000+AA==", "n".repeat(MAX_KEY_TEXT_BYTES));
    check(
        "too long",
        NoteVerifier::parse(&long),
        &NoteError::TooLarge {
            what: WHAT,
            len: long.len(),
            max: MAX_KEY_TEXT_BYTES,
        },
    );
}

#[test]
fn verifier_key_rejects_small_order_and_non_canonical_points() {
    let with_id = |name: &str, public: [u8; 32]| {
        let mut blob = vec![ALG_ED25519];
        blob.extend_from_slice(&public);
        format!("{name}+{}+{}", hex_id(key_id(name, &public)), b64(&blob))
    };
    // The identity point (y = 1) has order 1.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    check(
        "identity point",
        NoteVerifier::parse(&with_id("weak", identity)),
        &NoteError::InvalidPublicKey {
            reason: "a point of small order",
        },
    );
    // y = p + 1 (p = 2^255 - 19) is a non-canonical spelling of the identity.
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    let result = NoteVerifier::parse(&with_id("odd", non_canonical));
    assert!(
        matches!(result, Err(NoteError::InvalidPublicKey { .. })),
        "{result:?}"
    );
}

#[test]
fn secret_key_rejects_every_substring_and_every_incremented_byte() {
    let b = PETER_SKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i == 0 && j == b.len() {
                continue;
            }
            let text = std::str::from_utf8(&b[i..j]).expect("ASCII");
            assert!(NoteSigner::parse_secret(text).is_err(), "accepted {text:?}");
        }
    }
    for i in 0..b.len() {
        let mut mangled = b.to_vec();
        mangled[i] += 1;
        let text = std::str::from_utf8(&mangled).expect("ASCII");
        assert!(NoteSigner::parse_secret(text).is_err(), "accepted {text:?}");
    }
    check(
        "verifier key as secret key",
        NoteSigner::parse_secret(PETER_VKEY),
        &NoteError::MalformedKey {
            what: "secret key",
            reason: "does not start with \"PRIVATE+KEY+\"",
        },
    );
    check(
        "secret key for another name",
        NoteSigner::parse_secret(
            "PRIVATE+KEY+EnochRoot+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        ),
        &NoteError::KeyIdMismatch {
            what: "secret key",
            stated: "c74f20a3".to_owned(),
            computed: hex_id(key_id("EnochRoot", &peter().public_key())),
        },
    );
}

#[test]
fn key_names_follow_the_spec() {
    for (name, reason) in [
        ("", "is empty"),
        ("a b", "contains a space"),
        ("a\tb", "contains a space"),
        ("a\u{a0}b", "contains a space"),
        ("a\u{3000}b", "contains a space"),
        ("a\u{2028}b", "contains a space"),
        ("a+b", "contains '+'"),
        ("a\u{1}b", "contains a control character"),
        ("a\u{7f}b", "contains a control character"),
    ] {
        check(
            name,
            NoteSigner::from_seed(name, [1; 32]),
            &NoteError::InvalidKeyName {
                name: format!("{name:?}"),
                reason,
            },
        );
    }
    for name in ["a", "example.com/log42", "PeterNeumann", "é/ü-π"] {
        assert!(NoteSigner::from_seed(name, [1; 32]).is_ok(), "{name}");
    }
    let long = "x".repeat(100);
    let error = NoteSigner::from_seed(&format!("{long} "), [1; 32]).unwrap_err();
    assert!(error.to_string().contains("…"), "{error}");
}

// ---- Negative tests: signing and verifying notes ------------------------------------------

#[test]
fn sign_refuses_texts_a_verifier_would_refuse() {
    let signer = test_signer();
    check(
        "empty",
        signer.sign(""),
        &NoteError::InvalidText { reason: "is empty" },
    );
    check(
        "no final newline",
        signer.sign("abc"),
        &NoteError::InvalidText {
            reason: "does not end in a newline",
        },
    );
    check(
        "carriage return",
        signer.sign("a\r\nb\r\n"),
        &NoteError::ControlCharacter { line: 1 },
    );
    check(
        "tab on line 2",
        signer.sign("a\nb\tc\n"),
        &NoteError::ControlCharacter { line: 2 },
    );
    let huge = "a".repeat(MAX_NOTE_BYTES) + "\n";
    assert!(matches!(
        signer.sign(&huge),
        Err(NoteError::TooLarge {
            what: "signed note",
            ..
        })
    ));
}

#[test]
fn verify_rejects_malformed_and_forged_notes() {
    let note = go_note();
    let bad_sig = NoteError::BadSignature {
        name: "PeterNeumann".to_owned(),
        key_id: "c74f20a3".to_owned(),
    };
    let no_sig = NoteError::NoSignature {
        name: "PeterNeumann".to_owned(),
        key_id: "c74f20a3".to_owned(),
    };
    let malformed = |line, reason| NoteError::MalformedSignatureLine { line, reason };
    let invalid_base64 = "has a signature that is not canonical padded base64";
    let cases = [
        (
            "one letter changed in the text",
            note.replace("cryptography", "cryptographY"),
            bad_sig.clone(),
        ),
        (
            // Go's "Invalid signature" case: four more base64 characters in the signature.
            "four characters inserted in the signature",
            format!("{GO_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]),
            bad_sig.clone(),
        ),
        (
            "one signature character changed",
            note.replace("x08go/ZJ", "x08go/ZK"),
            bad_sig.clone(),
        ),
        (
            "a good and a bad signature by the trusted key",
            format!(
                "{GO_TEXT}\n{PETER_SIG}{}",
                PETER_SIG.replace("x08go/ZJ", "x08go/ZK")
            ),
            bad_sig.clone(),
        ),
        (
            "signed by another key only",
            format!("{GO_TEXT}\n{ENOCH_SIG}"),
            no_sig.clone(),
        ),
        (
            "right name, other key id",
            note.replace("x08g", "AAAA"),
            no_sig.clone(),
        ),
        (
            "no blank line and no signature",
            GO_TEXT.to_owned(),
            NoteError::MissingSignatureSeparator,
        ),
        (
            "blank line but no signature line",
            format!("{GO_TEXT}\n"),
            NoteError::NoSignatureLines,
        ),
        (
            "truncated: no final newline",
            note[..note.len() - 1].to_owned(),
            NoteError::UnterminatedLine { line: 4 },
        ),
        (
            "truncated in the signature",
            note[..note.len() - 10].to_owned(),
            NoteError::UnterminatedLine { line: 4 },
        ),
        (
            "truncated in the text",
            GO_TEXT[..20].to_owned(),
            NoteError::MissingSignatureSeparator,
        ),
        (
            "CRLF line endings",
            note.replace('\n', "\r\n"),
            NoteError::ControlCharacter { line: 1 },
        ),
        (
            "control character before the text",
            format!("\u{1}{note}"),
            NoteError::ControlCharacter { line: 1 },
        ),
        (
            "duplicate blank line",
            format!("{GO_TEXT}\n\n{PETER_SIG}"),
            bad_sig.clone(),
        ),
        (
            "space on the blank line",
            format!("{GO_TEXT} \n{PETER_SIG}"),
            NoteError::MissingSignatureSeparator,
        ),
        (
            "two spaces after the name",
            note.replace("PeterNeumann ", "PeterNeumann  "),
            malformed(4, invalid_base64),
        ),
        (
            "space after the signature",
            note.replace("AM=\n", "AM= \n"),
            malformed(4, invalid_base64),
        ),
        (
            "space before the em dash",
            note.replace("\n—", "\n —"),
            malformed(4, "does not start with an em dash (U+2014) and a space"),
        ),
        (
            "hyphen for the em dash",
            note.replace('—', "-"),
            malformed(4, "does not start with an em dash (U+2014) and a space"),
        ),
        (
            "no space after the em dash",
            note.replace("— ", "—"),
            malformed(4, "does not start with an em dash (U+2014) and a space"),
        ),
        (
            "name only",
            format!("{GO_TEXT}\n— PeterNeumann\n"),
            malformed(4, "has no space between the key name and the signature"),
        ),
        (
            "Go's bad name case",
            format!(
                "{GO_TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            malformed(4, invalid_base64),
        ),
        (
            "name with a plus",
            format!("{GO_TEXT}\n— Peter+Neumann AAAAAAA=\n"),
            malformed(4, "has an invalid key name"),
        ),
        (
            "bad base64",
            format!("{GO_TEXT}\n— PeterNeumann x08go/ZJ!!!=\n"),
            malformed(4, invalid_base64),
        ),
        (
            "base64 missing its padding",
            note.replace("AM=\n", "AM\n"),
            malformed(4, invalid_base64),
        ),
        (
            "base64 with non-zero trailing bits",
            note.replace("AM=\n", "AN=\n"),
            malformed(4, invalid_base64),
        ),
        (
            "signature of four bytes",
            format!("{GO_TEXT}\n— PeterNeumann x08gow==\n"),
            malformed(4, "has a signature shorter than 5 bytes"),
        ),
        (
            "empty signature",
            format!("{GO_TEXT}\n— PeterNeumann \n"),
            malformed(4, "has a signature shorter than 5 bytes"),
        ),
        (
            "trailing garbage after the signature",
            format!("{note}Unexpected line.\n"),
            malformed(5, "does not start with an em dash (U+2014) and a space"),
        ),
        (
            "an unknown key's malformed line",
            format!("{note}— EnochRoot !!!!\n"),
            malformed(5, invalid_base64),
        ),
        (
            "101 signature lines",
            format!("{GO_TEXT}\n{}", PETER_SIG.repeat(101)),
            NoteError::TooManySignatures { max: 100 },
        ),
    ];
    for (what, text, expected) in cases {
        check(what, peter().verify(&text), &expected);
    }
    let huge = format!("{}\n\n{PETER_SIG}", "a".repeat(MAX_NOTE_BYTES));
    check(
        "over the size limit",
        peter().verify(&huge),
        &NoteError::TooLarge {
            what: "signed note",
            len: huge.len(),
            max: MAX_NOTE_BYTES,
        },
    );
    check(
        "not UTF-8",
        text_from_bytes(b"abc\n\xff\n"),
        &NoteError::NotUtf8 { offset: 4 },
    );
}

// ---- Negative tests: checkpoints ------------------------------------------------------------

#[test]
fn checkpoint_body_rejects_every_deviation() {
    let root = b64(&[0xa5; 32]);
    let good = format!("o\n7\n{root}\nhash sha256\ntime 5\n");
    assert!(Checkpoint::parse_body(&good).is_ok());
    let number = |line, what| NoteError::BadNumber { line, what };
    let size = "checkpoint tree size";
    let time = "checkpoint time";
    let cases = [
        (
            "empty",
            String::new(),
            NoteError::MissingLine {
                line: 1,
                what: "checkpoint origin",
            },
        ),
        (
            "empty origin",
            format!("\n7\n{root}\nhash sha256\ntime 5\n"),
            NoteError::InvalidOrigin { reason: "is empty" },
        ),
        (
            "origin with a space",
            format!("o x\n7\n{root}\nhash sha256\ntime 5\n"),
            NoteError::InvalidOrigin {
                reason: "contains a space",
            },
        ),
        (
            "origin with a trailing space",
            format!("o \n7\n{root}\nhash sha256\ntime 5\n"),
            NoteError::InvalidOrigin {
                reason: "contains a space",
            },
        ),
        (
            "origin with a plus",
            format!("o+x\n7\n{root}\nhash sha256\ntime 5\n"),
            NoteError::InvalidOrigin {
                reason: "contains '+'",
            },
        ),
        (
            "size with a leading zero",
            good.replace("\n7\n", "\n07\n"),
            number(2, size),
        ),
        ("size 00", good.replace("\n7\n", "\n00\n"), number(2, size)),
        (
            "size with a plus",
            good.replace("\n7\n", "\n+7\n"),
            number(2, size),
        ),
        (
            "negative size",
            good.replace("\n7\n", "\n-7\n"),
            number(2, size),
        ),
        (
            "size with a space",
            good.replace("\n7\n", "\n 7\n"),
            number(2, size),
        ),
        ("empty size", good.replace("\n7\n", "\n\n"), number(2, size)),
        (
            "size over u64",
            good.replace("\n7\n", "\n18446744073709551616\n"),
            number(2, size),
        ),
        (
            "root of 31 bytes",
            good.replace(&root, &b64(&[0xa5; 31])),
            NoteError::BadHashLength {
                line: 3,
                what: "checkpoint root hash",
                len: 31,
            },
        ),
        (
            "root of 33 bytes",
            good.replace(&root, &b64(&[0xa5; 33])),
            NoteError::BadHashLength {
                line: 3,
                what: "checkpoint root hash",
                len: 33,
            },
        ),
        (
            "root without padding",
            good.replace(&root, root.trim_end_matches('=')),
            NoteError::BadBase64 {
                line: 3,
                what: "checkpoint root hash",
            },
        ),
        (
            "root in hex",
            good.replace(&root, &"a5".repeat(32)),
            NoteError::BadHashLength {
                line: 3,
                what: "checkpoint root hash",
                len: 48,
            },
        ),
        (
            "root in URL-safe base64",
            good.replace(&root, &b64(&[0xfb; 32]).replace('+', "-").replace('/', "_")),
            NoteError::BadBase64 {
                line: 3,
                what: "checkpoint root hash",
            },
        ),
        (
            "unknown hash",
            good.replace("hash sha256", "hash md5"),
            NoteError::UnknownHash {
                line: 4,
                name: "\"md5\"".to_owned(),
            },
        ),
        (
            "hash in capitals",
            good.replace("hash sha256", "hash SHA256"),
            NoteError::UnknownHash {
                line: 4,
                name: "\"SHA256\"".to_owned(),
            },
        ),
        (
            "two spaces after hash",
            good.replace("hash sha256", "hash  sha256"),
            NoteError::UnknownHash {
                line: 4,
                name: "\" sha256\"".to_owned(),
            },
        ),
        (
            "Hash keyword capitalised",
            good.replace("hash sha256", "Hash sha256"),
            NoteError::ExpectedKeyword {
                line: 4,
                keyword: "hash",
            },
        ),
        (
            "time before hash",
            format!("o\n7\n{root}\ntime 5\nhash sha256\n"),
            NoteError::ExpectedKeyword {
                line: 4,
                keyword: "hash",
            },
        ),
        (
            "no time line",
            format!("o\n7\n{root}\nhash sha256\n"),
            NoteError::MissingLine {
                line: 5,
                what: "checkpoint \"time\" line",
            },
        ),
        (
            "time with a leading zero",
            good.replace("time 5", "time 05"),
            number(5, time),
        ),
        (
            "time -0",
            good.replace("time 5", "time -0"),
            number(5, time),
        ),
        (
            "time with a plus",
            good.replace("time 5", "time +5"),
            number(5, time),
        ),
        (
            "time over i64",
            good.replace("time 5", "time 9223372036854775808"),
            number(5, time),
        ),
        (
            "time under i64",
            good.replace("time 5", "time -9223372036854775809"),
            number(5, time),
        ),
        (
            "an extension line too many",
            format!("{good}extra\n"),
            NoteError::TrailingData {
                line: 6,
                after: "checkpoint \"time\" line",
            },
        ),
        (
            "a blank line at the end",
            format!("{good}\n"),
            NoteError::TrailingData {
                line: 6,
                after: "checkpoint \"time\" line",
            },
        ),
        (
            "no final newline",
            good.trim_end().to_owned(),
            NoteError::UnterminatedLine { line: 5 },
        ),
        (
            "CRLF",
            good.replace('\n', "\r\n"),
            NoteError::ControlCharacter { line: 1 },
        ),
    ];
    for (what, text, expected) in cases {
        check(what, Checkpoint::parse_body(&text), &expected);
    }
}

#[test]
fn checkpoint_sign_refuses_an_origin_that_would_not_parse_back() {
    let signer = test_signer();
    for (origin, reason) in [
        ("", "is empty"),
        ("two words", "contains a space"),
        ("a+b", "contains '+'"),
    ] {
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            ..test_checkpoint()
        };
        check(
            origin,
            checkpoint.sign(&signer),
            &NoteError::InvalidOrigin { reason },
        );
    }
    let checkpoint = Checkpoint {
        origin: "a\nb".to_owned(),
        ..test_checkpoint()
    };
    assert!(checkpoint.sign(&signer).is_err());
}

#[test]
fn verify_signed_rejects_a_checkpoint_signed_by_another_key() {
    let note = test_checkpoint().sign(&test_signer()).expect("signs");
    let other = NoteSigner::from_seed("daemoneye.test/host-1", [8; 32]).expect("valid");
    let verifier = other.verifier();
    check(
        "same name, other key",
        Checkpoint::verify_signed(&note, &verifier),
        &NoteError::NoSignature {
            name: "daemoneye.test/host-1".to_owned(),
            key_id: hex_id(other.key_id()),
        },
    );
    // A note that verifies but is not a checkpoint.
    let note = test_signer().sign("hello\n").expect("signs");
    check(
        "not a checkpoint",
        Checkpoint::verify_signed(&note, &test_signer().verifier()),
        &NoteError::MissingLine {
            line: 2,
            what: "checkpoint tree size",
        },
    );
}

// ---- Negative tests: proof files --------------------------------------------------------

fn signed_checkpoint() -> String {
    test_checkpoint().sign(&test_signer()).expect("signs")
}

fn inclusion_file() -> InclusionProofFile {
    InclusionProofFile {
        entry: b"entry bytes".to_vec(),
        index: 5,
        proof: vec![[1; 32], [2; 32], [3; 32]],
        checkpoint: signed_checkpoint(),
    }
}

#[test]
fn inclusion_file_rejects_every_deviation() {
    let checkpoint = signed_checkpoint();
    let h1 = b64(&[1; 32]);
    let entry = b64(b"entry bytes");
    let good = inclusion_file().to_text();
    assert_eq!(
        good,
        format!(
            "c2sp.org/tlog-proof@v1\nextra {entry}\nindex 5\n{h1}\n{}\n{}\n\n{checkpoint}",
            b64(&[2; 32]),
            b64(&[3; 32])
        )
    );
    let header = NoteError::BadHeader {
        expected: TLOG_PROOF_HEADER,
    };
    let cases = [
        ("empty", String::new(), header.clone()),
        (
            "wrong header",
            good.replace("tlog-proof@v1", "tlog-proof@v2"),
            header.clone(),
        ),
        (
            "header with a trailing space",
            good.replacen("@v1\n", "@v1 \n", 1),
            header.clone(),
        ),
        (
            "no extra line",
            good.replace(&format!("extra {entry}\n"), ""),
            NoteError::ExpectedKeyword {
                line: 2,
                keyword: "extra",
            },
        ),
        (
            "extra not base64",
            good.replace(&entry, "not base64!"),
            NoteError::BadBase64 {
                line: 2,
                what: "entry bytes",
            },
        ),
        (
            "extra without its padding",
            good.replace(&entry, entry.trim_end_matches('=')),
            NoteError::BadBase64 {
                line: 2,
                what: "entry bytes",
            },
        ),
        (
            "index with a leading zero",
            good.replace("index 5", "index 05"),
            NoteError::BadNumber {
                line: 3,
                what: "index",
            },
        ),
        (
            "index with two spaces",
            good.replace("index 5", "index  5"),
            NoteError::BadNumber {
                line: 3,
                what: "index",
            },
        ),
        (
            "index missing",
            format!("c2sp.org/tlog-proof@v1\nextra {entry}\n"),
            NoteError::MissingLine {
                line: 3,
                what: "\"index\" line",
            },
        ),
        (
            "a proof hash of 31 bytes",
            good.replace(&h1, &b64(&[1; 31])),
            NoteError::BadHashLength {
                line: 4,
                what: "proof hash",
                len: 31,
            },
        ),
        (
            "a proof hash of 33 bytes",
            good.replace(&h1, &b64(&[1; 33])),
            NoteError::BadHashLength {
                line: 4,
                what: "proof hash",
                len: 33,
            },
        ),
        (
            "a proof hash without padding",
            good.replace(&h1, h1.trim_end_matches('=')),
            NoteError::BadBase64 {
                line: 4,
                what: "proof hash",
            },
        ),
        (
            "a proof hash with a trailing space",
            good.replace(&h1, &format!("{h1} ")),
            NoteError::BadBase64 {
                line: 4,
                what: "proof hash",
            },
        ),
        (
            "no blank line before the checkpoint",
            good.replace("\n\n", "\n"),
            NoteError::BadBase64 {
                line: 7,
                what: "proof hash",
            },
        ),
        (
            "ends before the blank line",
            good[..good.find("\n\n").expect("blank line") + 1].to_owned(),
            NoteError::MissingCheckpointSeparator,
        ),
        (
            "no checkpoint",
            good[..good.find("\n\n").expect("blank line") + 2].to_owned(),
            NoteError::MissingCheckpoint { line: 7 },
        ),
        (
            "duplicate blank line",
            good.replacen("\n\n", "\n\n\n", 1),
            NoteError::DuplicateBlankLine { line: 8 },
        ),
        (
            "CRLF",
            good.replace('\n', "\r\n"),
            NoteError::ControlCharacter { line: 1 },
        ),
        (
            "trailing garbage after the checkpoint",
            format!("{good}garbage\n"),
            in_checkpoint(
                8,
                NoteError::MalformedSignatureLine {
                    line: 8,
                    reason: "does not start with an em dash (U+2014) and a space",
                },
            ),
        ),
        (
            "trailing bytes without a newline",
            format!("{good}x"),
            in_checkpoint(8, NoteError::UnterminatedLine { line: 8 }),
        ),
        (
            "checkpoint without signature",
            good.replace(&checkpoint, &test_checkpoint().body()),
            in_checkpoint(8, NoteError::MissingSignatureSeparator),
        ),
        (
            "checkpoint with an extension line too many",
            good.replace("\n\n— ", "\nx\n\n— "),
            in_checkpoint(
                8,
                NoteError::TrailingData {
                    line: 6,
                    after: "checkpoint \"time\" line",
                },
            ),
        ),
    ];
    for (what, text, expected) in cases {
        check(what, InclusionProofFile::parse(&text), &expected);
    }
}

#[test]
fn consistency_file_rejects_every_deviation() {
    let file = ConsistencyProofFile {
        size1: 3,
        proof: vec![[9; 32]],
        checkpoint: signed_checkpoint(),
    };
    let good = file.to_text();
    let h = b64(&[9; 32]);
    assert_eq!(
        good,
        format!(
            "daemoneye/tlog-consistency@v1\nsize1 3\n{h}\n\n{}",
            file.checkpoint
        )
    );
    let cases = [
        (
            "inclusion header",
            good.replace(CONSISTENCY_HEADER, TLOG_PROOF_HEADER),
            NoteError::BadHeader {
                expected: CONSISTENCY_HEADER,
            },
        ),
        (
            "size1 with a leading zero",
            good.replace("size1 3", "size1 03"),
            NoteError::BadNumber {
                line: 2,
                what: "size1",
            },
        ),
        (
            "size1 negative",
            good.replace("size1 3", "size1 -3"),
            NoteError::BadNumber {
                line: 2,
                what: "size1",
            },
        ),
        (
            "no size1 line",
            good.replace("size1 3\n", ""),
            NoteError::ExpectedKeyword {
                line: 2,
                keyword: "size1",
            },
        ),
        (
            "hash of 31 bytes",
            good.replace(&h, &b64(&[9; 31])),
            NoteError::BadHashLength {
                line: 3,
                what: "proof hash",
                len: 31,
            },
        ),
        (
            "duplicate blank line",
            good.replacen("\n\n", "\n\n\n", 1),
            NoteError::DuplicateBlankLine { line: 5 },
        ),
        (
            "trailing garbage",
            format!("{good}\n"),
            in_checkpoint(5, NoteError::NoSignatureLines),
        ),
    ];
    for (what, text, expected) in cases {
        check(what, ConsistencyProofFile::parse(&text), &expected);
    }
}

// ---- Known answers: Go's golang.org/x/mod/sumdb/note vectors -------------------------------

#[test]
fn go_reference_vectors_match_byte_for_byte() {
    let verifier = peter();
    assert_eq!(verifier.name(), "PeterNeumann");
    assert_eq!(verifier.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
    assert_eq!(verifier.to_string(), PETER_VKEY);

    let signer = NoteSigner::parse_secret(PETER_SKEY).expect("Go's secret key parses");
    assert_eq!(signer.secret_key_text(), PETER_SKEY);
    assert_eq!(signer.verifier(), verifier);
    assert_eq!(signer.verifier().to_string(), PETER_VKEY);
    // Ed25519 is deterministic: signing Go's text must give Go's note.
    assert_eq!(signer.sign(GO_TEXT).expect("signs"), go_note());
    assert_eq!(verifier.verify(&go_note()).expect("verifies"), GO_TEXT);

    // Go's TestOpen: two signatures; each key verifies its own and ignores the other.
    let both = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    assert_eq!(verifier.verify(&both).expect("Peter"), GO_TEXT);
    assert_eq!(enoch().verify(&both).expect("Enoch"), GO_TEXT);
    assert_eq!(enoch().key_id(), [0xaf, 0x0c, 0xfe, 0x78]);
    // Repeated lines by the trusted key all verify; repeated unknown lines are ignored.
    let repeated = format!(
        "{GO_TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{}ABCD{}",
        &ENOCH_SIG[..60],
        &ENOCH_SIG[60..]
    );
    assert_eq!(verifier.verify(&repeated).expect("Peter"), GO_TEXT);
    // Exactly 100 lines are accepted.
    let hundred = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(100));
    assert_eq!(verifier.verify(&hundred).expect("100 lines"), GO_TEXT);
}

#[test]
fn c2sp_spec_checkpoint_example_is_well_formed() {
    // The example in c2sp.org/tlog-checkpoint: three lines, so not one of ours, but its
    // signed-note framing parses and its (unknown) signature is ignored, not rejected.
    let note = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
    check(
        "spec example against Peter's key",
        peter().verify(note),
        &NoteError::NoSignature {
            name: "PeterNeumann".to_owned(),
            key_id: "c74f20a3".to_owned(),
        },
    );
    check(
        "spec example as our checkpoint",
        NoteFile::parse(note),
        &NoteError::MissingLine {
            line: 4,
            what: "checkpoint \"hash\" line",
        },
    );
}

// ---- Round trips ----------------------------------------------------------------------

#[test]
fn keys_round_trip() {
    let signer = NoteSigner::generate("daemoneye.test/generated").expect("generates");
    let again = NoteSigner::parse_secret(&signer.secret_key_text()).expect("parses");
    assert_eq!(again.seed(), signer.seed());
    assert_eq!(again.name(), signer.name());
    assert_eq!(again.key_id(), signer.key_id());
    let verifier = signer.verifier();
    assert_eq!(
        NoteVerifier::parse(&verifier.to_string()),
        Ok(verifier.clone())
    );
    let from_seed = NoteSigner::from_seed(signer.name(), signer.seed()).expect("valid");
    assert_eq!(from_seed.verifier(), verifier);
    assert_ne!(
        NoteSigner::generate("daemoneye.test/generated")
            .expect("generates")
            .seed(),
        signer.seed()
    );
    let debug = format!("{signer:?}");
    assert!(!debug.contains(&b64(&signer.seed())), "{debug}");
    check(
        "generate with a bad name",
        NoteSigner::generate("bad name"),
        &NoteError::InvalidKeyName {
            name: "\"bad name\"".to_owned(),
            reason: "contains a space",
        },
    );
}

#[test]
fn notes_with_blank_lines_and_unicode_round_trip() {
    let signer = test_signer();
    for text in ["\n", "a\n\nb\n", "a\n\n", "ed è subito sera.\n", "— x y\n"] {
        let note = signer.sign(text).expect("signs");
        assert_eq!(signer.verifier().verify(&note).expect("verifies"), text);
    }
}

#[test]
fn checkpoints_round_trip() {
    let signer = test_signer();
    for checkpoint in [
        test_checkpoint(),
        Checkpoint {
            size: 0,
            root: HashAlg::Blake3.empty_root(),
            hash: HashAlg::Blake3,
            time_ms: 0,
            ..test_checkpoint()
        },
        Checkpoint {
            size: u64::MAX,
            time_ms: i64::MIN,
            ..test_checkpoint()
        },
        Checkpoint {
            time_ms: i64::MAX,
            ..test_checkpoint()
        },
    ] {
        let body = checkpoint.body();
        assert_eq!(Checkpoint::parse_body(&body), Ok(checkpoint.clone()));
        let note = checkpoint.sign(&signer).expect("signs");
        assert_eq!(note, signer.sign(&body).expect("signs"));
        assert_eq!(
            Checkpoint::verify_signed(&note, &signer.verifier()),
            Ok(checkpoint.clone())
        );
        assert_eq!(
            NoteFile::parse(&note),
            Ok(NoteFile::Checkpoint(note.clone()))
        );
    }
    assert_eq!(
        test_checkpoint().body(),
        format!(
            "daemoneye.test/host-1\n7\n{}\nhash sha256\ntime 1700000000123\n",
            b64(&[0xa5; 32])
        )
    );
}

#[test]
fn proof_files_round_trip() {
    let verifier = test_signer().verifier();
    for file in [
        inclusion_file(),
        InclusionProofFile {
            entry: Vec::new(),
            index: 0,
            proof: Vec::new(),
            checkpoint: signed_checkpoint(),
        },
    ] {
        let text = file.to_text();
        assert_eq!(InclusionProofFile::parse(&text), Ok(file.clone()));
        assert_eq!(
            NoteFile::parse(&text),
            Ok(NoteFile::Inclusion(file.clone()))
        );
        assert_eq!(file.verify_checkpoint(&verifier), Ok(test_checkpoint()));
    }
    let file = ConsistencyProofFile {
        size1: 0,
        proof: Vec::new(),
        checkpoint: signed_checkpoint(),
    };
    let text = file.to_text();
    assert_eq!(ConsistencyProofFile::parse(&text), Ok(file.clone()));
    let parsed = NoteFile::parse(&text).expect("parses");
    assert_eq!(parsed.checkpoint_note(), file.checkpoint);
    assert_eq!(parsed, NoteFile::Consistency(file.clone()));
    assert_eq!(file.verify_checkpoint(&verifier), Ok(test_checkpoint()));

    // A checkpoint signed by someone else is reported with its place in the file.
    let other = NoteSigner::from_seed("other", [3; 32])
        .expect("valid")
        .verifier();
    check(
        "wrong key",
        inclusion_file().verify_checkpoint(&other),
        &in_checkpoint(
            8,
            NoteError::NoSignature {
                name: "other".to_owned(),
                key_id: hex_id(other.key_id()),
            },
        ),
    );
}

// ---- Every byte flipped ---------------------------------------------------------------

const FLIPS: [u8; 4] = [0x01, 0x20, 0x80, 0xff];

/// Every single-byte change of `original`, as bytes.
fn flips(original: &str) -> impl Iterator<Item = (usize, u8, Vec<u8>)> + '_ {
    (0..original.len()).flat_map(move |i| {
        FLIPS.iter().map(move |&pattern| {
            let mut bytes = original.as_bytes().to_vec();
            bytes[i] ^= pattern;
            (i, pattern, bytes)
        })
    })
}

#[test]
fn every_flipped_byte_of_a_signed_checkpoint_fails() {
    // One signature line: no part of the note may change without failing.
    let note = signed_checkpoint();
    let verifier = test_signer().verifier();
    assert_eq!(
        Checkpoint::verify_signed(&note, &verifier),
        Ok(test_checkpoint())
    );
    let mut tried = 0;
    for (i, pattern, bytes) in flips(&note) {
        let result =
            text_from_bytes(&bytes).and_then(|text| Checkpoint::verify_signed(text, &verifier));
        assert!(
            result.is_err(),
            "byte {i} ^ {pattern:#04x} accepted: {result:?}"
        );
        tried += 1;
    }
    assert_eq!(tried, note.len() * FLIPS.len());
}

#[test]
fn flips_in_a_cosignature_by_another_key_are_the_only_ones_ignored() {
    // The only part of a note a verifier ignores is a signature line by another key (a
    // witness cosignature, say): changing it may leave the note verifying, but then it must
    // give exactly the same checkpoint. Everything else must fail.
    let witness = NoteSigner::from_seed("witness.example", [5; 32]).expect("valid");
    let note = signed_checkpoint();
    let body = test_checkpoint().body();
    let cosignature = &witness.sign(&body).expect("signs")[body.len() + 1..];
    let cosigned = format!("{note}{cosignature}");
    let foreign = note.len()..cosigned.len();
    let verifier = test_signer().verifier();
    let mut ignored = 0;
    for (i, pattern, bytes) in flips(&cosigned) {
        let result =
            text_from_bytes(&bytes).and_then(|text| Checkpoint::verify_signed(text, &verifier));
        match result {
            Err(_) => {}
            Ok(checkpoint) => {
                assert!(foreign.contains(&i), "byte {i} ^ {pattern:#04x} accepted");
                // The last byte is the newline: changing it must fail.
                assert_ne!(i, cosigned.len() - 1);
                assert_eq!(checkpoint, test_checkpoint());
                ignored += 1;
            }
        }
    }
    assert!(ignored > 0, "some cosignature changes stay well formed");
}

/// RFC 9162 §2.1.1 MTH, for the tests only (the ledger's own tree is in `merkle`).
fn tree_root(alg: HashAlg, leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => alg.empty_root(),
        1 => alg.leaf_hash(&leaves[0]),
        n => {
            let k = split_point(n);
            alg.node_hash(&tree_root(alg, &leaves[..k]), &tree_root(alg, &leaves[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (n > 1).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 9162 §2.1.3.1 PATH(m, D[n]), for the tests only.
fn inclusion_path(alg: HashAlg, m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split_point(leaves.len());
    let (mut path, sibling) = if m < k {
        (
            inclusion_path(alg, m, &leaves[..k]),
            tree_root(alg, &leaves[k..]),
        )
    } else {
        (
            inclusion_path(alg, m - k, &leaves[k..]),
            tree_root(alg, &leaves[..k]),
        )
    };
    path.push(sibling);
    path
}

/// RFC 9162 §2.1.3.2, step by step, for the tests only.
fn inclusion_verifies(alg: HashAlg, file: &InclusionProofFile, size: u64, root: &Hash) -> bool {
    if file.index >= size {
        return false;
    }
    let (mut f, mut s) = (file.index, size - 1);
    let mut r = alg.leaf_hash(&file.entry);
    for p in &file.proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = alg.node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = alg.node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

#[test]
fn every_flipped_byte_of_an_inclusion_proof_file_fails() {
    // Parse, verify the checkpoint, then the inclusion proof: the whole path an auditor's
    // `audit verify` takes. Nothing in the file is ignorable.
    let alg = HashAlg::Sha256;
    let leaves: Vec<Vec<u8>> = (0..7u8).map(|i| vec![b'e', i]).collect();
    let index = 5;
    let signer = test_signer();
    let checkpoint = Checkpoint {
        size: leaves.len() as u64,
        root: tree_root(alg, &leaves),
        hash: alg,
        ..test_checkpoint()
    };
    let file = InclusionProofFile {
        entry: leaves[index].clone(),
        index: index as u64,
        proof: inclusion_path(alg, index, &leaves),
        checkpoint: checkpoint.sign(&signer).expect("signs"),
    };
    let verifier = signer.verifier();
    let audit = |text: &str| -> Result<(), String> {
        let file = InclusionProofFile::parse(text).map_err(|e| e.to_string())?;
        // Strict parsing: whatever parses writes back to the same text.
        assert_eq!(file.to_text(), text);
        let checkpoint = file
            .verify_checkpoint(&verifier)
            .map_err(|e| e.to_string())?;
        if inclusion_verifies(checkpoint.hash, &file, checkpoint.size, &checkpoint.root) {
            Ok(())
        } else {
            Err("inclusion proof does not verify".to_owned())
        }
    };
    let text = file.to_text();
    assert_eq!(audit(&text), Ok(()));
    for (i, pattern, bytes) in flips(&text) {
        let result = text_from_bytes(&bytes)
            .map_err(|e| e.to_string())
            .and_then(&audit);
        assert!(result.is_err(), "byte {i} ^ {pattern:#04x} accepted");
    }
}

#[test]
fn every_flipped_byte_of_a_consistency_file_fails_or_changes_what_it_says() {
    // Without the Merkle check (in `merkle`), a flip may only survive parsing and the
    // checkpoint signature by changing size1 or a proof hash, values the consistency check
    // then tests; and it must write back to exactly the flipped text.
    let file = ConsistencyProofFile {
        size1: 3,
        proof: vec![[9; 32], [10; 32]],
        checkpoint: signed_checkpoint(),
    };
    let text = file.to_text();
    let checkpoint_start = text.len() - file.checkpoint.len();
    let verifier = test_signer().verifier();
    for (i, pattern, bytes) in flips(&text) {
        let Ok(flipped) = text_from_bytes(&bytes) else {
            continue;
        };
        let Ok(parsed) = ConsistencyProofFile::parse(flipped) else {
            continue;
        };
        assert_eq!(parsed.to_text(), flipped);
        if parsed.verify_checkpoint(&verifier).is_err() {
            continue;
        }
        assert!(
            i < checkpoint_start,
            "byte {i} ^ {pattern:#04x} in the checkpoint accepted"
        );
        assert!(
            parsed.size1 != file.size1 || parsed.proof != file.proof,
            "byte {i} ^ {pattern:#04x} accepted with nothing changed"
        );
    }
}

#[test]
fn note_file_tells_the_formats_apart() {
    check(
        "garbage",
        NoteFile::parse("garbage"),
        &NoteError::MissingSignatureSeparator,
    );
    check(
        "empty",
        NoteFile::parse(""),
        &NoteError::MissingSignatureSeparator,
    );
    check(
        "proof header alone",
        NoteFile::parse("c2sp.org/tlog-proof@v1"),
        &NoteError::BadHeader {
            expected: TLOG_PROOF_HEADER,
        },
    );
    let text = inclusion_file().to_text();
    assert!(matches!(NoteFile::parse(&text), Ok(NoteFile::Inclusion(_))));
}
