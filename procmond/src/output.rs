//! Printing a scan: one JSON document (exact strings, as JSON escapes them), or a table for
//! people, where every text a process chose is escaped by `daemoneye_lib::text`.

use std::io::{self, Write};

use serde::Serialize;

use crate::collector::Scan;
use daemoneye_lib::models::{ProcessRecord, ScanErrors, ScanSummary};
use daemoneye_lib::text;

/// The `--format` of `procmond --once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON object: `{"scan": {...}, "processes": [...]}`.
    Json,
}

#[derive(Serialize)]
struct JsonScan<'a> {
    scan: JsonSummary<'a>,
    processes: &'a [ProcessRecord],
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    #[serde(flatten)]
    summary: &'a ScanSummary,
    errors: &'a ScanErrors,
    hashed_files: u64,
    cached_files: u64,
}

/// Writes the scan in the given format.
pub fn write_scan(scan: &Scan, format: Format, out: &mut impl Write) -> io::Result<()> {
    match format {
        Format::Json => {
            let doc = JsonScan {
                scan: JsonSummary {
                    summary: &scan.summary,
                    errors: &scan.errors,
                    hashed_files: scan.hashed_files,
                    cached_files: scan.cached_files,
                },
                processes: &scan.records,
            };
            serde_json::to_writer(&mut *out, &doc)?;
            writeln!(out)?;
        }
        Format::Table => write_table(&scan.records, out)?,
    }
    out.flush()
}

fn write_table(records: &[ProcessRecord], out: &mut impl Write) -> io::Result<()> {
    let unknown = || "-".to_owned();
    let num = |v: Option<u32>| v.map_or_else(unknown, |v| v.to_string());
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            [
                r.pid.to_string(),
                num(r.parent),
                num(r.uid),
                r.state.as_deref().map_or_else(unknown, printable),
                r.on_disk.as_i8().to_string(),
                r.exe_sha256
                    .as_deref()
                    .map_or_else(unknown, |h| h.chars().take(12).collect()),
                r.name.as_deref().map_or_else(unknown, printable),
                r.cmdline
                    .as_deref()
                    .map(printable)
                    .or_else(|| r.name.as_deref().map(|n| format!("[{}]", printable(n))))
                    .unwrap_or_else(unknown),
            ]
        })
        .collect();
    let header = [
        "PID", "PPID", "UID", "S", "ON_DISK", "SHA256", "NAME", "CMDLINE",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row.iter()) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let right_aligned = [true, true, true, false, true, false, false, false];
    let mut line = String::new();
    let mut emit = |cells: [&str; 8], out: &mut dyn Write| -> io::Result<()> {
        line.clear();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                // The command line is last and unpadded, as `ps` prints it.
                line.push_str(cell);
            } else if right_aligned[i] {
                line.push_str(&format!("{cell:>w$} ", w = widths[i]));
            } else {
                line.push_str(&format!("{cell:<w$} ", w = widths[i]));
            }
        }
        writeln!(out, "{line}")
    };
    emit(header, out)?;
    for row in &rows {
        emit(row.each_ref().map(String::as_str), out)?;
    }
    Ok(())
}

/// A process chooses its own name and command line, and must not be able to move the cursor,
/// forge rows or disguise itself on the operator's terminal: see `daemoneye_lib::text`.
fn printable(value: &str) -> String {
    text::escape(value).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_of(records: Vec<ProcessRecord>) -> Scan {
        Scan {
            summary: ScanSummary {
                scan_id: 7,
                process_count: records.len() as u64,
                ..ScanSummary::default()
            },
            errors: ScanErrors {
                vanished: 1,
                ..ScanErrors::default()
            },
            hashed_files: 1,
            cached_files: 0,
            light_reads: 0,
            records,
        }
    }

    #[test]
    fn json_carries_the_summary_and_every_record() {
        let scan = scan_of(vec![ProcessRecord {
            pid: 9,
            name: Some("x".into()),
            ..ProcessRecord::default()
        }]);
        let mut out = Vec::new();
        write_scan(&scan, Format::Json, &mut out).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["scan"]["scan_id"], 7);
        assert_eq!(doc["scan"]["errors"]["vanished"], 1);
        assert_eq!(doc["processes"][0]["pid"], 9);
        assert_eq!(doc["processes"][0]["name"], "x");
        assert!(doc["processes"][0]["parent"].is_null());
    }

    #[test]
    fn table_escapes_what_processes_chose() {
        let scan = scan_of(vec![
            ProcessRecord {
                pid: 5,
                name: Some("ev\u{1b}[2Jil".into()),
                cmdline: Some("x\n    1    0   0 S 1 fake-row\r".into()),
                ..ProcessRecord::default()
            },
            ProcessRecord {
                pid: 6,
                name: Some("gnp.\u{202e}exe\u{200b}".into()),
                ..ProcessRecord::default()
            },
        ]);
        let mut out = Vec::new();
        write_scan(&scan, Format::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3, "{text:?}");
        for raw in ['\u{1b}', '\r', '\u{202e}', '\u{200b}'] {
            assert!(!text.contains(raw), "{raw:?} in {text:?}");
        }
        assert!(text.contains("ev\\u{1b}[2Jil"), "{text:?}");
        assert!(
            text.contains("x\\n    1    0   0 S 1 fake-row\\r"),
            "{text:?}"
        );
        assert!(text.contains("[gnp.\\u{202e}exe\\u{200b}]"), "{text:?}");
    }

    #[test]
    fn json_keeps_the_exact_strings() {
        let name = "gnp.\u{202e}exe\u{200b}\u{1b}[2J\n";
        let scan = scan_of(vec![ProcessRecord {
            pid: 6,
            name: Some(name.into()),
            ..ProcessRecord::default()
        }]);
        let mut out = Vec::new();
        write_scan(&scan, Format::Json, &mut out).unwrap();
        assert!(!out.contains(&0x1b) && out.iter().filter(|b| **b == b'\n').count() == 1);
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["processes"][0]["name"], name);
    }

    #[test]
    fn table_aligns_columns_and_marks_unknowns() {
        let scan = scan_of(vec![
            ProcessRecord {
                pid: 1,
                parent: Some(0),
                uid: Some(0),
                state: Some("S".into()),
                name: Some("init".into()),
                cmdline: Some("/sbin/init splash".into()),
                exe_sha256: Some("0123456789abcdef".into()),
                ..ProcessRecord::default()
            },
            ProcessRecord {
                pid: 31337,
                name: Some("kworker/0:1".into()),
                ..ProcessRecord::default()
            },
        ]);
        let mut out = Vec::new();
        write_scan(&scan, Format::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("  PID PPID UID S ON_DISK SHA256"),
            "{text}"
        );
        assert!(lines[1].contains("0123456789ab init"), "{text}");
        assert!(lines[1].ends_with("/sbin/init splash"), "{text}");
        assert!(lines[2].starts_with("31337    -   -"), "{text}");
        assert!(lines[2].ends_with("[kworker/0:1]"), "{text}");
    }
}
