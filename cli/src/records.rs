//! Printing records as a table, JSON or CSV: one helper for every command that prints rows.
//!
//! Table and CSV cells are text for people (a CSV file ends up in a terminal or a
//! spreadsheet), so every value goes through `daemoneye_lib::text::escape`; JSON is for
//! programs and keeps the exact strings (serde_json writes control characters as escapes).

use std::io::{self, Write};

use daemoneye_lib::text;
use serde_json::Value;

use crate::Format;

/// Widest column of a table that does not fit a terminal, in characters; longer values are
/// cut with "…".
const MAX_CELL_CHARS: usize = 80;
/// A column is never squeezed below this many characters (fewer if it is narrower already).
const MIN_COLUMN_CHARS: usize = 6;

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Table, JSON or CSV.
    pub format: Format,
    /// A table's whole width in characters (the terminal's), or none when stdout is not a
    /// terminal: then each cell is cut at [`MAX_CELL_CHARS`].
    pub width: Option<usize>,
    /// Every cell whole, whatever the width (`--wide`).
    pub wide: bool,
}

impl Style {
    /// `format` on stdout: the terminal's width when stdout is one (`COLUMNS` wins when set).
    pub fn for_stdout(format: Format, wide: bool) -> Self {
        use std::io::IsTerminal;
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|columns| columns.trim().parse::<usize>().ok())
            .filter(|&columns| columns > 0)
            .or_else(|| {
                io::stdout()
                    .is_terminal()
                    .then(|| terminal_size::terminal_size().map(|(w, _)| usize::from(w.0)))
                    .flatten()
            });
        Self {
            format,
            width,
            wide,
        }
    }
}

/// Column names made unique for JSON objects: the second `name` becomes `name_2`, the third
/// `name_3` (skipping a suffix that another column already has), so a self-join's columns
/// do not overwrite each other.
pub fn unique_names(columns: &[String]) -> Vec<String> {
    let mut taken: std::collections::HashSet<String> = columns.iter().cloned().collect();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    columns
        .iter()
        .map(|column| {
            let count = seen.entry(column.as_str()).or_insert(0);
            *count += 1;
            if *count == 1 {
                return column.clone();
            }
            let mut n = *count;
            loop {
                let candidate = format!("{column}_{n}");
                if taken.insert(candidate.clone()) {
                    return candidate;
                }
                n += 1;
            }
        })
        .collect()
}

/// Prints `rows` under `columns` in `style`.
pub fn print(
    columns: &[String],
    rows: &[Vec<Value>],
    style: Style,
    out: &mut impl Write,
) -> io::Result<()> {
    match style.format {
        Format::Json => {
            let names = unique_names(columns);
            let objects: Vec<serde_json::Map<String, Value>> = rows
                .iter()
                .map(|row| names.iter().cloned().zip(row.iter().cloned()).collect())
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
            let header: Vec<String> = columns
                .iter()
                .map(|column| text::escape(column).into_owned())
                .collect();
            let mut cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|value| text::escape(&plain(value)).into_owned())
                        .collect()
                })
                .collect();
            let mut widths: Vec<usize> = header
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
            if !style.wide {
                match style.width {
                    Some(width) => fit(&mut widths, width),
                    None => widths
                        .iter_mut()
                        .for_each(|w| *w = (*w).min(MAX_CELL_CHARS)),
                }
                for row in &mut cells {
                    for (cell, width) in row.iter_mut().zip(&widths) {
                        *cell = cut(cell, *width);
                    }
                }
            }
            let line = |fields: &[String]| -> String {
                let padded: Vec<String> = fields
                    .iter()
                    .zip(&widths)
                    .map(|(field, width)| format!("{field:width$}"))
                    .collect();
                padded.join("  ").trim_end().to_owned()
            };
            let header: Vec<String> = header
                .iter()
                .zip(&widths)
                .map(|(column, width)| cut(column, *width))
                .collect();
            writeln!(out, "{}", line(&header))?;
            for row in &cells {
                writeln!(out, "{}", line(row))?;
            }
            Ok(())
        }
    }
}

/// Narrows the widest columns, one character at a time, until the table (columns and two
/// spaces between them) fits `width`, or every column is at its minimum.
fn fit(widths: &mut [usize], width: usize) {
    let floor: Vec<usize> = widths.iter().map(|w| (*w).min(MIN_COLUMN_CHARS)).collect();
    let gaps = 2 * widths.len().saturating_sub(1);
    let mut total: usize = widths.iter().sum::<usize>() + gaps;
    while total > width {
        let widest = widths
            .iter()
            .enumerate()
            .filter(|(i, w)| **w > floor[*i])
            .max_by_key(|(i, w)| (**w, std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        let Some(widest) = widest else { break };
        widths[widest] -= 1;
        total -= 1;
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

/// `text` cut to `width` characters, the last one "…" when anything was cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
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

    fn style(format: Format) -> Style {
        Style {
            format,
            width: None,
            wide: false,
        }
    }

    fn print_to_string(columns: &[&str], rows: &[Vec<Value>], style: Style) -> String {
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        let mut out = Vec::new();
        print(&columns, rows, style, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn printed(format: Format) -> String {
        let rows = vec![
            vec![json!(1), json!("a,\"b\"\n\u{1b}[2J")],
            vec![json!(22), Value::Null],
        ];
        print_to_string(&["pid", "cmdline"], &rows, style(format))
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
    fn long_cells_are_cut_off_a_terminal_and_whole_with_wide() {
        let long = "x".repeat(200);
        let rows = vec![vec![json!(1), json!(long)]];
        let table = print_to_string(&["pid", "cmdline"], &rows, style(Format::Table));
        let last = table.lines().nth(1).unwrap();
        assert!(last.ends_with('…'), "{table}");
        assert_eq!(last.chars().count(), 5 + MAX_CELL_CHARS, "{table}");
        let wide = Style {
            wide: true,
            width: Some(40),
            ..style(Format::Table)
        };
        let table = print_to_string(&["pid", "cmdline"], &rows, wide);
        assert!(table.contains(&long), "{table}");
    }

    #[test]
    fn tables_fit_the_terminal_cutting_the_widest_columns_first() {
        let rows = vec![vec![
            json!(4242),
            json!("bash"),
            json!("/usr/bin/python3 -c 'import socket,subprocess;s=socket.socket()'"),
        ]];
        for width in [20, 40, 60] {
            let fitted = Style {
                width: Some(width),
                ..style(Format::Table)
            };
            let table = print_to_string(&["pid", "name", "cmdline"], &rows, fitted);
            for line in table.lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}\n{table}");
            }
            // The narrow columns stay whole: the long command line gave way.
            assert!(table.contains("4242  bash"), "{width}: {table}");
            assert!(table.contains('…'), "{width}: {table}");
        }
    }

    #[test]
    fn json_makes_repeated_column_names_unique() {
        // SELECT p.name, parent.name, p.name_2 ... : the parent's value must not overwrite.
        let rows = vec![vec![json!("sh"), json!("bash"), json!("x"), json!("zsh")]];
        let text = print_to_string(
            &["name", "name", "name_2", "name"],
            &rows,
            style(Format::Json),
        );
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            json!([{"name": "sh", "name_3": "bash", "name_2": "x", "name_4": "zsh"}])
        );
        assert_eq!(
            unique_names(&["a".into(), "b".into(), "a".into()]),
            ["a", "b", "a_2"]
        );
    }
}
