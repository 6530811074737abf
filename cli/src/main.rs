//! `daemoneye-cli`: the operator's interface to a running DaemonEye agent.
//!
//! In this release only the offline `completions` command exists; the commands that talk to
//! the agent arrive with the agent. It must never open a network socket nor write the event
//! store directly.

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

/// DaemonEye's operator interface.
#[derive(Debug, Parser)]
#[command(name = "daemoneye-cli", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print shell completions (offline).
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "daemoneye-cli",
                &mut io::stdout(),
            );
        }
    }
    ExitCode::SUCCESS
}
