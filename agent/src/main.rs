//! `daemoneye-agent`: DaemonEye's detection orchestrator (supervises procmond, runs rules, delivers alerts).
//!
//! This release ships only the collector (`procmond`); this binary parses its arguments and
//! says so, so that packaging and the workspace layout are in place for the work that follows.

use std::process::ExitCode;

use clap::Parser;

/// DaemonEye's detection orchestrator (supervises procmond, runs rules, delivers alerts).
#[derive(Debug, Parser)]
#[command(name = "daemoneye-agent", version, about)]
struct Args {}

fn main() -> ExitCode {
    let Args {} = Args::parse();
    eprintln!(
        "daemoneye-agent: not part of this release yet; run `procmond --once` (see README.md)"
    );
    ExitCode::from(2)
}
