//! Writes the bundle attack fixtures: the TEST keys under `tests/fixtures/keys/` and one folder
//! per attack under `tests/fixtures/bundles/attacks/` (see `lib/tests/support/bundle_fixtures.rs`,
//! which `lib/tests/bundle_attacks.rs` also includes to check that the committed files are what
//! it makes).
//!
//! ```text
//! cargo run -p daemoneye-lib --features bundle --example make_bundle_fixtures [ROOT]
//! ```
//!
//! ROOT defaults to the workspace's `tests/fixtures`.

use std::path::PathBuf;
use std::process::ExitCode;

#[path = "../tests/support/bundle_fixtures.rs"]
mod bundle_fixtures;

fn main() -> ExitCode {
    let root = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures"),
        PathBuf::from,
    );
    match bundle_fixtures::write_all(&root) {
        Ok(count) => {
            println!("wrote {count} files under {}", root.display());
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("make_bundle_fixtures: {reason}");
            ExitCode::FAILURE
        }
    }
}
