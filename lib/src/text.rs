//! Text for people and the small text formats every binary shares: the one escaping policy
//! for untrusted strings on a terminal, lowercase hex, and RFC 3339 times of Unix
//! milliseconds. Pure: no I/O, and no clock is read (a time to print is passed in).
//!
//! # Escaping
//!
//! Every untrusted string shown to a person (a process name or command line, a file name, a
//! rule's text, anything another process sent) goes through [`escape`], or [`quoted`] where it
//! stands inside a message. A process chooses its own name and command line; unescaped, a
//! control sequence could move the cursor, clear the screen or forge table rows, a bidi
//! override could make `evil\u{202e}fdp.sh` read as `evilhs.pdf`, and a zero-width space could
//! make two different names look the same.
//!
//! The escaped form is Rust's string notation, chosen because it is one form for every
//! character and reads back unambiguously:
//!
//! | input | output |
//! | --- | --- |
//! | `\` (backslash) | `\\` |
//! | newline, carriage return, tab | `\n`, `\r`, `\t` |
//! | any other character of [`needs_escape`] | `\u{X}`: lowercase hex, no leading zeros (ESC is `\u{1b}`, U+202E is `\u{202e}`) |
//! | anything else | itself |
//!
//! Because the backslash is escaped too, every backslash in the output starts an escape, and
//! one output comes from exactly one input. [`quoted`] adds double quotes around the text and
//! escapes `"` as `\"` as well.
//!
//! [`needs_escape`] holds:
//! - control characters: C0 (U+0000 to U+001F), DEL (U+007F), C1 (U+0080 to U+009F, NEL
//!   U+0085 among them);
//! - line and paragraph separators (U+2028, U+2029);
//! - bidirectional controls: the marks U+061C, U+200E, U+200F, the embeddings and overrides
//!   U+202A to U+202E, the isolates U+2066 to U+2069;
//! - the other invisible format characters (Unicode category Cf): zero-width space, non-joiner
//!   and joiner U+200B to U+200D, word joiner and invisible operators U+2060 to U+2064, the
//!   deprecated format characters U+206A to U+206F, the byte order mark U+FEFF, soft hyphen
//!   U+00AD, the Arabic, Syriac and other number signs and annotation characters, and the tag
//!   characters U+E0000 to U+E007F (invisible ASCII look-alikes);
//! - characters that render as nothing although they are not format characters: the
//!   combining grapheme joiner U+034F, the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, the
//!   Khmer inherent vowels U+17B4, U+17B5 and the Mongolian variation selectors and vowel
//!   separator U+180B to U+180F.
//!
//! Left as they are: visible spaces of other widths (U+00A0, U+2000 to U+200A, U+3000),
//! combining marks and variation selectors U+FE00 to U+FE0F (emoji need them), and every
//! printable character of any script (`é`, CJK). An emoji sequence joined with U+200D shows
//! its parts and the `\u{200d}` between them: the joiner is also a way to hide text.
//!
//! JSON output never goes through this module: serde_json writes control characters as JSON
//! escapes, and the programs that read JSON get the exact string.
//!
//! # Hex
//!
//! [`hex`] writes lowercase hex, two digits a byte; [`decode_hex`] reads only that form, so
//! that a value has one spelling.
//!
//! # Times
//!
//! [`format_time_ms`] writes milliseconds since the Unix epoch as RFC 3339 in UTC with
//! milliseconds, `YYYY-MM-DDTHH:MM:SS.mmmZ`, proleptic Gregorian calendar; a year outside 0 to
//! 9999 is written as ISO 8601's expanded year (`+10000-…`, `-00001-…`), so any `i64` prints
//! and none panics. [`parse_time_ms`] reads RFC 3339 §5.6 `date-time` (and the expanded years
//! `format_time_ms` writes) back, with one deliberate deviation: a leap second (`:60`) is
//! refused, because Unix time has none.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Why hex or a time did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// Hex text whose length is odd.
    #[error("hex text has an odd length ({0} characters)")]
    OddHexLength(usize),
    /// A character that is not a lowercase hex digit.
    #[error("not a lowercase hex digit at byte {0}")]
    NotHexDigit(usize),
    /// Text that is not an RFC 3339 time, or one out of range.
    #[error("invalid RFC 3339 time {text}: {reason}")]
    InvalidTime {
        /// The text, quoted and escaped (at most 64 characters of it).
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Whether `c` is escaped on a terminal (see the module doc for the list and why).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Soft hyphen, combining grapheme joiner.
            '\u{ad}' | '\u{34f}'
            // Arabic number signs, letter mark, end of ayah; Syriac abbreviation mark.
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
            // Hangul fillers, Khmer inherent vowels, Mongolian selectors and separator.
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
            // Zero-width characters, bidi marks, line and paragraph separators, bidi
            // embeddings and overrides.
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
            // Word joiner, invisible operators, bidi isolates, deprecated format characters
            // (U+2065 is unassigned and invisible too).
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{feff}'
                | '\u{ffa0}'
            // Interlinear annotation.
                | '\u{fff9}'..='\u{fffb}'
            // Kaithi, Egyptian, shorthand and musical format characters.
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
            // Tag characters.
                | '\u{e0000}'..='\u{e007f}'
        )
}

/// `text` made safe for a terminal: see the module doc. Borrowed when nothing needed escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    match text.find(|c: char| c == '\\' || needs_escape(c)) {
        None => Cow::Borrowed(text),
        Some(first) => {
            let mut out = String::with_capacity(text.len() + 8);
            out.push_str(&text[..first]);
            // Writing to a String cannot fail.
            let _ = write_escaped(&mut out, &text[first..], false);
            Cow::Owned(out)
        }
    }
}

/// `text` in double quotes, escaped as [`escape`] does and with `"` written as `\"`: for an
/// untrusted string inside a message, where it must not pass for the message's own words.
pub fn quoted(text: &str) -> Quoted<'_> {
    Quoted(text)
}

/// What [`quoted`] returns: written by its `Display`, without an intermediate string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        write_escaped(f, self.0, true)?;
        f.write_char('"')
    }
}

fn write_escaped(out: &mut impl fmt::Write, text: &str, in_quotes: bool) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '"' if in_quotes => out.write_str("\\\"")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if needs_escape(c) => write!(out, "\\u{{{:x}}}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// Lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The bytes of lowercase hex text (as [`hex`] writes it; uppercase digits are refused).
pub fn decode_hex(text: &str) -> Result<Vec<u8>, TextError> {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(TextError::OddHexLength(bytes.len()));
    }
    bytes
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| {
            let high = digit(pair[0]).ok_or(TextError::NotHexDigit(2 * i))?;
            let low = digit(pair[1]).ok_or(TextError::NotHexDigit(2 * i + 1))?;
            Ok(high << 4 | low)
        })
        .collect()
}

const MS_PER_DAY: i64 = 86_400_000;
/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_SHIFT_DAYS: i64 = 719_468;
const DAYS_PER_ERA: i64 = 146_097;

/// `time_ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC with milliseconds; see
/// the module doc for years outside 0 to 9999.
pub fn format_time_ms(time_ms: i64) -> String {
    let days = time_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = time_ms.rem_euclid(MS_PER_DAY);
    // Howard Hinnant's `civil_from_days`: days since 1970-01-01 to year, month, day.
    let z = days + EPOCH_SHIFT_DAYS;
    let era = z.div_euclid(DAYS_PER_ERA);
    let doe = z - era * DAYS_PER_ERA;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1_000 % 60, ms_of_day % 1_000);
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+06}")
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Milliseconds since the Unix epoch of an RFC 3339 `date-time` such as
/// `2026-11-21T10:00:00.123Z` or `2026-11-21t11:00:00+01:00`. Digits of the fraction past
/// the milliseconds are dropped (rounding towards the past).
pub fn parse_time_ms(text: &str) -> Result<i64, TextError> {
    let invalid = |reason| TextError::InvalidTime {
        text: quoted(&text.chars().take(64).collect::<String>()).to_string(),
        reason,
    };
    let mut cursor = Cursor(text.as_bytes());
    let year = match cursor.peek() {
        Some(sign @ (b'+' | b'-')) => {
            cursor.0 = &cursor.0[1..];
            let digits = cursor.digits_while(18);
            if digits.len() < 5 {
                return Err(invalid("an expanded year has a sign and at least 5 digits"));
            }
            let magnitude = number(digits);
            if sign == b'-' { -magnitude } else { magnitude }
        }
        _ => number(
            cursor
                .exactly(4)
                .ok_or_else(|| invalid("expected a 4-digit year"))?,
        ),
    };
    let month = cursor
        .field(b'-', 2)
        .ok_or_else(|| invalid("expected \"-MM\" after the year"))?;
    let day = cursor
        .field(b'-', 2)
        .ok_or_else(|| invalid("expected \"-DD\" after the month"))?;
    if !cursor.eat(b'T') && !cursor.eat(b't') {
        return Err(invalid("expected \"T\" after the date"));
    }
    let hour = cursor
        .field_bare(2)
        .ok_or_else(|| invalid("expected \"HH\" after \"T\""))?;
    let minute = cursor
        .field(b':', 2)
        .ok_or_else(|| invalid("expected \":MM\" after the hour"))?;
    let second = cursor
        .field(b':', 2)
        .ok_or_else(|| invalid("expected \":SS\" after the minutes"))?;
    let mut milli = 0;
    if cursor.eat(b'.') {
        let digits = cursor.digits_while(usize::MAX);
        if digits.is_empty() {
            return Err(invalid("expected digits after \".\""));
        }
        // Three digits of the fraction, padded: ".5" is 500 ms.
        milli = digits
            .iter()
            .chain(b"00".iter())
            .take(3)
            .fold(0, |acc, d| acc * 10 + i128::from(d - b'0'));
    }
    let offset_minutes = match cursor.peek() {
        Some(b'Z' | b'z') => {
            cursor.0 = &cursor.0[1..];
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            cursor.0 = &cursor.0[1..];
            let hours = cursor
                .field_bare(2)
                .ok_or_else(|| invalid("expected \"HH:MM\" in the offset"))?;
            let minutes = cursor
                .field(b':', 2)
                .ok_or_else(|| invalid("expected \"HH:MM\" in the offset"))?;
            if hours > 23 || minutes > 59 {
                return Err(invalid("the offset is out of range"));
            }
            let total = hours * 60 + minutes;
            if sign == b'-' { -total } else { total }
        }
        _ => return Err(invalid("expected \"Z\" or an offset such as \"+01:00\"")),
    };
    if !cursor.0.is_empty() {
        return Err(invalid("unexpected text after the time"));
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(invalid("no such date"));
    }
    if hour > 23 || minute > 59 {
        return Err(invalid("no such time of day"));
    }
    if second > 59 {
        return Err(invalid("a leap second (or more) cannot be a Unix time"));
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_minutes * 60;
    i64::try_from(seconds * 1_000 + milli)
        .map_err(|_| invalid("out of the range of Unix milliseconds"))
}

/// Days from 1970-01-01 to the date (Howard Hinnant's `days_from_civil`), in `i128` so that
/// no year an `i64` of milliseconds can reach, nor any 18-digit year, overflows.
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * shifted_month + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * i128::from(DAYS_PER_ERA) + doe - i128::from(EPOCH_SHIFT_DAYS)
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Decimal digits (already checked) as a number; at most 18 of them, so it fits.
fn number(digits: &[u8]) -> i128 {
    digits
        .iter()
        .fold(0, |acc, d| acc * 10 + i128::from(d - b'0'))
}

/// The rest of a time being parsed.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.0 = &self.0[1..];
        }
        found
    }

    /// Up to `max` leading digits.
    fn digits_while(&mut self, max: usize) -> &'a [u8] {
        let len = self
            .0
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let (digits, rest) = self.0.split_at(len);
        self.0 = rest;
        digits
    }

    /// Exactly `n` digits.
    fn exactly(&mut self, n: usize) -> Option<&'a [u8]> {
        let digits = self.digits_while(n);
        (digits.len() == n).then_some(digits)
    }

    /// Exactly `n` digits as a number.
    fn field_bare(&mut self, n: usize) -> Option<i128> {
        self.exactly(n).map(number)
    }

    /// `separator`, then exactly `n` digits as a number.
    fn field(&mut self, separator: u8, n: usize) -> Option<i128> {
        if self.eat(separator) {
            self.field_bare(n)
        } else {
            None
        }
    }
}

/// An error and its causes on one line, `outer: cause: root`, each cause once: a cause
/// whose text an outer message already carries (a `thiserror` message that prints its
/// `source`, under an `anyhow` context) is not repeated, so an operator reads "creating X: File
/// exists (os error 17)", not the same cause twice.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = next.source();
    }
    line
}

#[cfg(test)]
mod tests;
