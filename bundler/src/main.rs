//! `daemoneye-bundler`: Builds and signs DaemonEye bundles of rules, configuration and licenses.
//!
//! This release ships only the collector (`procmond`); this binary parses its arguments and
//! says so, so that packaging and the workspace layout are in place for the work that follows.

use std::process::ExitCode;

use clap::Parser;

/// Builds and signs DaemonEye bundles of rules, configuration and licenses.
#[derive(Debug, Parser)]
#[command(name = "daemoneye-bundler", version, about)]
struct Args {}

fn main() -> ExitCode {
    let Args {} = Args::parse();
    eprintln!(
        "daemoneye-bundler: not part of this release yet; run `procmond --once` (see README.md)"
    );
    ExitCode::from(2)
}
