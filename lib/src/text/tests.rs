//! Tests of the escaping policy, hex and RFC 3339 times.

use proptest::prelude::*;

use super::*;

/// Reads escaped text back (the inverse of [`escape`]); `None` for a lone or unknown escape.
/// Only tests need it: it shows that the escaped form is unambiguous.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let digits: String = chars.by_ref().take_while(|c| *c != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&digits, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[test]
fn escape_makes_hostile_characters_visible() {
    fn check(input: &str, expected: &str) {
        assert_eq!(escape(input), expected, "{input:?}");
        assert_eq!(unescape(expected).as_deref(), Some(input), "{expected}");
    }
    // Hostile: each one must come out escaped.
    check("evil\u{202e}fdp.sh", "evil\\u{202e}fdp.sh");
    check("a\u{2066}b\u{2069}", "a\\u{2066}b\\u{2069}");
    check("ad\u{200b}min", "ad\\u{200b}min");
    check("\u{feff}bom", "\\u{feff}bom");
    check("\u{1b}[2Jcleared", "\\u{1b}[2Jcleared");
    check("two\nlines", "two\\nlines");
    check("a\tb\rc", "a\\tb\\rc");
    check("del\u{7f}", "del\\u{7f}");
    check("nel\u{85}", "nel\\u{85}");
    check("\u{9b}31m", "\\u{9b}31m");
    check("\0", "\\u{0}");
    check("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}");
    check(
        "\u{202a}\u{202b}\u{202c}\u{202d}",
        "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
    );
    check("\u{2067}\u{2068}", "\\u{2067}\\u{2068}");
    check("\u{200c}\u{200d}\u{2060}", "\\u{200c}\\u{200d}\\u{2060}");
    check("\u{2028}\u{2029}", "\\u{2028}\\u{2029}");
    check("soft\u{ad}hyphen", "soft\\u{ad}hyphen");
    check("tag\u{e0041}", "tag\\u{e0041}");
    check("\u{3164}", "\\u{3164}");
    // The backslash itself, so that the output reads back to one input only.
    check("C:\\temp", "C:\\\\temp");
    check("\\u{202e}", "\\\\u{202e}");
    check("\\n", "\\\\n");
    // Ordinary text, ASCII or not, passes unchanged.
    check("", "");
    check(
        "/usr/sbin/nginx -g daemon off;",
        "/usr/sbin/nginx -g daemon off;",
    );
    check("\"quoted\" 'x' $HOME %s {}", "\"quoted\" 'x' $HOME %s {}");
    check("café résumé", "café résumé");
    check("日本語のプロセス", "日本語のプロセス");
    check("Ελληνικά עברית", "Ελληνικά עברית");
    check("\u{a0}\u{3000}", "\u{a0}\u{3000}");
    check("❤\u{fe0f}", "❤\u{fe0f}");
}

#[test]
fn escape_borrows_when_nothing_changes() {
    assert!(matches!(escape("kworker/0:1"), Cow::Borrowed(_)));
    assert!(matches!(escape("日本"), Cow::Borrowed(_)));
    assert!(matches!(escape("a\\b"), Cow::Owned(_)));
}

#[test]
fn quoted_adds_quotes_and_escapes_them() {
    fn check(input: &str, expected: &str) {
        assert_eq!(quoted(input).to_string(), expected, "{input:?}");
    }
    check("", "\"\"");
    check("plant 7", "\"plant 7\"");
    check("a\"b", "\"a\\\"b\"");
    check("a\\b\n\u{202e}", "\"a\\\\b\\n\\u{202e}\"");
}

#[test]
fn hex_round_trips_and_refuses_other_spellings() {
    fn check(text: &str, expected: Result<&[u8], TextError>) {
        assert_eq!(
            decode_hex(text).as_deref().map_err(Clone::clone),
            expected,
            "{text:?}"
        );
        if let Ok(bytes) = expected {
            assert_eq!(hex(bytes), text);
        }
    }
    check("", Ok(&[]));
    check("00ff7f", Ok(&[0x00, 0xff, 0x7f]));
    check(
        "0123456789abcdef",
        Ok(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
    );
    check("abc", Err(TextError::OddHexLength(3)));
    check("AB", Err(TextError::NotHexDigit(0)));
    check("0g", Err(TextError::NotHexDigit(1)));
    check("00 1", Err(TextError::NotHexDigit(2)));
    check("é", Err(TextError::NotHexDigit(0)));
    check("é0", Err(TextError::OddHexLength(3)));
}

#[test]
fn times_format_at_the_edges() {
    fn check(time_ms: i64, expected: &str) {
        assert_eq!(format_time_ms(time_ms), expected, "{time_ms}");
        assert_eq!(parse_time_ms(expected), Ok(time_ms), "{expected}");
    }
    check(0, "1970-01-01T00:00:00.000Z");
    check(-1, "1969-12-31T23:59:59.999Z");
    check(951_782_400_000, "2000-02-29T00:00:00.000Z");
    check(1_763_719_200_123, "2025-11-21T10:00:00.123Z");
    check(253_402_300_799_999, "9999-12-31T23:59:59.999Z");
    check(253_402_300_800_000, "+10000-01-01T00:00:00.000Z");
    check(-62_167_219_200_000, "0000-01-01T00:00:00.000Z");
    check(-62_167_219_200_001, "-00001-12-31T23:59:59.999Z");
    // Never panics at the extremes, and reads back.
    for extreme in [i64::MIN, i64::MAX] {
        let text = format_time_ms(extreme);
        assert_eq!(parse_time_ms(&text), Ok(extreme), "{text}");
    }
}

#[test]
fn times_parse_per_rfc_3339_and_refuse_the_rest() {
    fn check(text: &str, expected: Result<i64, &str>) {
        let parsed = parse_time_ms(text).map_err(|err| match err {
            TextError::InvalidTime { reason, .. } => reason,
            other => panic!("{other}"),
        });
        assert_eq!(parsed, expected, "{text:?}");
    }
    let t = 1_763_719_200_000;
    check("2025-11-21T10:00:00Z", Ok(t));
    check("2025-11-21t10:00:00z", Ok(t));
    check("2025-11-21T10:00:00.5Z", Ok(t + 500));
    check("2025-11-21T10:00:00.123456789Z", Ok(t + 123));
    check("2025-11-21T11:30:00+01:30", Ok(t));
    check("2025-11-21T05:00:00-05:00", Ok(t));
    check("2024-02-29T00:00:00Z", Ok(1_709_164_800_000));
    check("", Err("expected a 4-digit year"));
    check("25-11-21T10:00:00Z", Err("expected a 4-digit year"));
    check("2025-11-21 10:00:00Z", Err("expected \"T\" after the date"));
    check(
        "2025-11-21T10:00:00",
        Err("expected \"Z\" or an offset such as \"+01:00\""),
    );
    check("2025-11-21T10:00:00.Z", Err("expected digits after \".\""));
    check(
        "2025-11-21T10:00:00Z ",
        Err("unexpected text after the time"),
    );
    check("2025-13-01T00:00:00Z", Err("no such date"));
    check("2025-02-29T00:00:00Z", Err("no such date"));
    check("1900-02-29T00:00:00Z", Err("no such date"));
    check("2025-04-31T00:00:00Z", Err("no such date"));
    check("2025-11-00T00:00:00Z", Err("no such date"));
    check("2025-11-21T24:00:00Z", Err("no such time of day"));
    check("2025-11-21T10:60:00Z", Err("no such time of day"));
    check(
        "2016-12-31T23:59:60Z",
        Err("a leap second (or more) cannot be a Unix time"),
    );
    check(
        "2025-11-21T10:00:00+24:00",
        Err("the offset is out of range"),
    );
    check(
        "+1000-01-01T00:00:00Z",
        Err("an expanded year has a sign and at least 5 digits"),
    );
    check(
        "+999999999999999999-01-01T00:00:00Z",
        Err("out of the range of Unix milliseconds"),
    );
    check(
        "2025-11-21T10:00:00\u{202e}Z",
        Err("expected \"Z\" or an offset such as \"+01:00\""),
    );
}

#[test]
fn time_errors_quote_and_escape_the_text() {
    let err = parse_time_ms("2025\n\u{202e}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid RFC 3339 time \"2025\\n\\u{202e}\": expected \"-MM\" after the year"
    );
}

proptest! {
    #[test]
    fn prop_escaped_text_is_safe_and_reads_back(s in any::<String>()) {
        let escaped = escape(&s);
        prop_assert!(!escaped.chars().any(needs_escape), "{:?}", escaped);
        prop_assert_eq!(unescape(&escaped), Some(s.clone()));
        let quoted = quoted(&s).to_string();
        prop_assert!(!quoted.chars().any(needs_escape), "{:?}", quoted);
    }

    #[test]
    fn prop_hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(decode_hex(&hex(&bytes)), Ok(bytes));
    }

    #[test]
    fn prop_time_matches_humantime(time_ms in 0i64..253_402_300_800_000) {
        let system = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(time_ms).unwrap());
        let expected = humantime::format_rfc3339_millis(system).to_string();
        prop_assert_eq!(format_time_ms(time_ms), expected);
    }

    #[test]
    fn prop_time_round_trips(time_ms in any::<i64>()) {
        prop_assert_eq!(parse_time_ms(&format_time_ms(time_ms)), Ok(time_ms));
    }
}

#[test]
fn an_error_chain_names_each_cause_once() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            // Prints its source, as a thiserror `{source}` message does.
            write!(f, "creating /x: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    #[derive(Debug)]
    struct Context(Outer);
    impl std::fmt::Display for Context {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("preparing the data directory")
        }
    }
    impl std::error::Error for Context {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let exists = || std::io::Error::from(std::io::ErrorKind::AlreadyExists);
    let shown = error_chain(&Context(Outer(exists())));
    assert_eq!(
        shown,
        format!("preparing the data directory: creating /x: {}", exists())
    );
    assert_eq!(shown.matches(&exists().to_string()).count(), 1);
}
