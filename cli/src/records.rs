//! Printing records as a table, JSON or CSV: one helper for every command that prints rows.
//!
//! Table and CSV cells are text for people (a CSV file ends up in a terminal or a
//! spreadsheet), so every value goes through `daemoneye_lib::text::escape`; JSON is for
//! programs and keeps the exact strings (serde_json writes control characters as escapes).

use std::io::{self, Write};

use daemoneye_lib::text;
use serde_json::Value;

use crate::Format;

/// Widest column of a table, in characters; longer values are cut with "…".
const MAX_CELL_CHARS: usize = 80;

/// Prints `rows` under `columns` in `format`.
pub fn print(
    columns: &[String],
    rows: &[Vec<Value>],
    format: Format,
    out: &mut impl Write,
) -> io::Result<()> {
    match format {
        Format::Json => {
            let objects: Vec<serde_json::Map<String, Value>> = rows
                .iter()
                .map(|row| columns.iter().cloned().zip(row.iter().cloned()).collect())
                .collect();
            serde_json::to_writer_pretty(&mut *out, &objects)?;
            writeln!(out)
        }
        Format::Csv => {
            let header: Vec<String> = columns.iter().map(|column| csv_cell(column)).collect();
            writeln!(out, "{}", header.join(","))?;
            for row in rows {
                let fields: Vec<String> = row.iter().map(|value| csv_cell(&plain(value))).collect();
                writeln!(out, "{}", fields.join(","))?;
            }
            Ok(())
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|value| cut(&text::escape(&plain(value))))
                        .collect()
                })
                .collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(index, column)| {
                    cells
                        .iter()
                        .filter_map(|row| row.get(index))
                        .map(|cell| cell.chars().count())
                        .chain([column.chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |fields: &[String]| -> String {
                let padded: Vec<String> = fields
                    .iter()
                    .zip(&widths)
                    .map(|(field, width)| format!("{field:width$}"))
                    .collect();
                padded.join("  ").trim_end().to_owned()
            };
            let header: Vec<String> = columns
                .iter()
                .map(|column| text::escape(column).into_owned())
                .collect();
            writeln!(out, "{}", line(&header))?;
            for row in &cells {
                writeln!(out, "{}", line(row))?;
            }
            Ok(())
        }
    }
}

/// A value as text: strings bare, NULL empty, the rest as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_CELL_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_CELL_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// A CSV field: escaped for people, then quoted when it must be (RFC 4180; after escaping only
/// `,` and `"` can call for it).
pub fn csv_cell(field: &str) -> String {
    let field = text::escape(field);
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn printed(format: Format) -> String {
        let columns = vec!["pid".to_owned(), "cmdline".to_owned()];
        let rows = vec![
            vec![json!(1), json!("a,\"b\"\n\u{1b}[2J")],
            vec![json!(22), Value::Null],
        ];
        let mut out = Vec::new();
        print(&columns, &rows, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_aligns_and_escapes() {
        assert_eq!(
            printed(Format::Table),
            "pid  cmdline\n1    a,\"b\"\\n\\u{1b}[2J\n22\n"
        );
    }

    #[test]
    fn csv_escapes_and_quotes_and_json_keeps_types() {
        assert_eq!(
            printed(Format::Csv),
            "pid,cmdline\n1,\"a,\"\"b\"\"\\n\\u{1b}[2J\"\n22,\n"
        );
        let json: Value = serde_json::from_str(&printed(Format::Json)).unwrap();
        assert_eq!(json[0]["cmdline"], "a,\"b\"\n\u{1b}[2J");
        assert_eq!(json[1], json!({"pid": 22, "cmdline": null}));
    }

    #[test]
    fn long_cells_are_cut() {
        let long = "x".repeat(200);
        assert_eq!(cut(&long).chars().count(), MAX_CELL_CHARS);
        assert!(cut(&long).ends_with('…'));
    }
}
