//! Rule files on disk: the one place where loading rules touches the filesystem, so that
//! [`super`] (parsing, checking, fixtures) stays a pure function of text.

use std::path::{Path, PathBuf};

use super::{Diagnostic, Loaded, MAX_FILE_BYTES, parse};
use crate::detection::sandbox::Sandbox;

/// Reads and parses every file in `paths`; a directory contributes its `*.toml` files in name
/// order (not recursively).
pub fn load_paths(paths: &[PathBuf], sandbox: &Sandbox) -> Loaded {
    let mut loaded = Loaded::default();
    for path in paths {
        let files = match expand(path) {
            Ok(files) => files,
            Err(reason) => {
                loaded.diagnostics.push(Diagnostic {
                    source: path.display().to_string(),
                    rule_id: None,
                    reason,
                });
                continue;
            }
        };
        for file in files {
            let source = file.display().to_string();
            match read_bounded(&file) {
                Ok(text) => loaded.extend(parse(&source, &text, sandbox)),
                Err(reason) => loaded.diagnostics.push(Diagnostic {
                    source,
                    rule_id: None,
                    reason,
                }),
            }
        }
    }
    loaded
}

fn expand(path: &Path) -> Result<Vec<PathBuf>, String> {
    let metadata = std::fs::metadata(path).map_err(|err| format!("cannot read: {err}"))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|err| format!("cannot list: {err}"))? {
        let entry = entry.map_err(|err| format!("cannot list: {err}"))?;
        let file = entry.path();
        if file.extension().is_some_and(|ext| ext == "toml") && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|err| format!("cannot read: {err}"))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|err| format!("cannot read: {err}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "the file is larger than the {MAX_FILE_BYTES} bytes allowed"
        ));
    }
    Ok(text)
}
