//! Tests of the checked ids: what each accepts and refuses.

use super::*;

/// Which of the four types accept `text`: rule id, site id, bundle name, alert id.
fn accepted(text: &str) -> [bool; 4] {
    [
        RuleId::parse(text).is_ok(),
        SiteId::parse(text).is_ok(),
        BundleName::parse(text).is_ok(),
        AlertId::parse(text).is_ok(),
    ]
}

#[test]
fn bad_ids_are_refused_by_every_type() {
    fn check(text: &str, expected: [bool; 4]) {
        assert_eq!(accepted(text), expected, "{text:?}");
    }
    const NONE: [bool; 4] = [false; 4];
    let long = "a".repeat(MAX_ID_LEN + 1);
    check("", NONE);
    check(&long, NONE);
    check("a\nb", NONE);
    check("a\u{1b}[2J", NONE);
    check("a\0", NONE);
    check("a\u{7f}", NONE);
    check("a/b", NONE);
    check("/", NONE);
    check("..", NONE);
    check(".", NONE);
    check("../etc", NONE);
    check(".hidden", NONE);
    check("-rf", NONE);
    check("_x", NONE);
    check("a b", NONE);
    check(" a", NONE);
    check("a\t", NONE);
    check("plänt", NONE);
    check("evil\u{202e}", NONE);
    check("a\u{200b}", NONE);
    check("日本", NONE);
    check("a\\b", NONE);
    check("a:b", NONE);
    check("a+b", NONE);
}

#[test]
fn good_ids_are_accepted_by_their_types() {
    fn check(text: &str, expected: [bool; 4]) {
        assert_eq!(accepted(text), expected, "{text:?}");
    }
    let longest = "a".repeat(MAX_ID_LEN);
    check("DE-LNX-0001", [true, true, false, false]);
    check("Plant_7.eu-west", [true, true, false, false]);
    check("sigma.proc_creation_lnx", [true, true, false, false]);
    check("a..b", [true, true, false, false]);
    check("core-rules", [true, true, true, false]);
    check("sigma_linux-2", [true, true, true, false]);
    check("0", [true, true, true, false]);
    check("007", [true, true, true, false]);
    check(&longest, [true, true, true, false]);
    check("0123456789abcdef0123456789abcdef", [true, true, true, true]);
    // Alert ids: exactly 32 lowercase hex digits.
    check(&"0".repeat(31), [true, true, true, false]);
    check(&"0".repeat(33), [true, true, true, false]);
    check(
        "0123456789abcdef0123456789abcdeF",
        [true, true, false, false],
    );
    check(
        "0123456789abcdef0123456789abcdeg",
        [true, true, true, false],
    );
}

#[test]
fn ids_print_and_serialize_as_given() {
    let id = RuleId::parse("DE-LNX-0001").unwrap();
    assert_eq!(id.as_str(), "DE-LNX-0001");
    assert_eq!(id.to_string(), "DE-LNX-0001");
    assert_eq!(RuleId::try_from("DE-LNX-0001"), Ok(id.clone()));
    assert_eq!("DE-LNX-0001".parse::<RuleId>(), Ok(id.clone()));
    assert_eq!(serde_json::to_string(&id).unwrap(), "\"DE-LNX-0001\"");
    assert_eq!(
        serde_json::from_str::<RuleId>("\"DE-LNX-0001\"").unwrap(),
        id
    );
}

#[test]
fn deserializing_validates_and_refuses_numbers() {
    fn check<T: serde::de::DeserializeOwned + fmt::Debug>(json: &str, expected: &str) {
        let err = serde_json::from_str::<T>(json).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{json}: {err}");
    }
    check::<SiteId>(
        "\"plant 7\"",
        "invalid site id \"plant 7\": expected 1 to 64 letters, digits",
    );
    check::<SiteId>("7", "invalid type: integer `7`, expected a site id string");
    check::<RuleId>("\"..\"", "invalid rule id \"..\"");
    check::<BundleName>("\"Core\"", "invalid bundle name \"Core\"");
    check::<AlertId>(
        "\"x\"",
        "invalid alert id \"x\": expected 32 lowercase hex digits",
    );
}

#[test]
fn errors_are_one_short_escaped_line() {
    fn check(err: IdError, expected: &str) {
        assert_eq!(err.to_string(), expected);
    }
    check(
        RuleId::parse("a\n\u{202e}\"b").unwrap_err(),
        "invalid rule id \"a\\n\\u{202e}\\\"b\": expected 1 to 64 letters, digits, '.', '_' or \
         '-', starting with a letter or digit",
    );
    let huge = "x".repeat(10_000);
    let message = AlertId::parse(&huge).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "invalid alert id \"{}\"…: expected 32 lowercase hex digits",
            "x".repeat(72)
        )
    );
}
