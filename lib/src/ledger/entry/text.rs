//! The one-line text form of an entry (`Display`), as `audit verify` prints it.

use std::fmt::{self, Write as _};

use super::{Entry, Field, format_time_ms, hex};

/// One line: `TIME SOURCE KIND name=value …`, fields in encoding order. Strings are quoted,
/// with `"` and `\` escaped and every control, line-separator and bidirectional-formatting
/// character written as `\n`, `\r`, `\t` or `\u{…}`, so the line never breaks; an absent
/// optional string is `-`; numbers are decimal; hashes lowercase hex.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            format_time_ms(self.time_ms),
            self.source,
            self.body.kind()
        )?;
        for (name, field) in self.body.fields() {
            write!(f, " {name}=")?;
            match field {
                Field::Str(s) | Field::OptStr(Some(s)) => write_quoted(f, s)?,
                Field::OptStr(None) => f.write_char('-')?,
                Field::U32(v) => write!(f, "{v}")?,
                Field::U64(v) => write!(f, "{v}")?,
                Field::I64(v) => write!(f, "{v}")?,
                Field::Hash(h) => f.write_str(&hex(h))?,
            }
        }
        Ok(())
    }
}

/// Write `s` in double quotes so that it stays on one line and cannot pass for anything else:
/// `crate::text`'s escaping, the one policy for text shown to people.
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    write!(f, "{}", crate::text::quoted(s))
}
