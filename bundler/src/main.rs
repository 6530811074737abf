//! `daemoneye-bundler`: builds and signs DaemonEye bundles of rules, configuration and
//! licenses, on the office side of an air gap.
//!
//! This binary parses its arguments and calls into its modules and `daemoneye-lib`; the
//! formats it writes (minisign key and signature files) live in `daemoneye_lib::minisign`. It
//! never links the agent or procmond, and never opens a network socket. Today it has
//! `keygen`; `build`, `verify`, `inspect` and `license issue` arrive with the rest of the
//! bundle work.
//!
//! Exit codes (INTERFACE.md): 0 success, 1 runtime failure, 2 usage error (clap's own, a
//! password that is empty or typed differently twice), mapped in [`main`] alone.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod keygen;
mod password;

/// Builds and signs DaemonEye bundles of rules, configuration and licenses.
#[derive(Debug, Parser)]
#[command(name = "daemoneye-bundler", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new signing key pair: PREFIX.key (minisign secret key, password-protected
    /// unless --unencrypted) and PREFIX.pub (minisign public key).
    ///
    /// The password is read from the terminal, twice, without echo; when standard input is
    /// not a terminal, from its first two lines, as stock `minisign -G` reads it.
    Keygen {
        /// Path prefix of the two files written; neither may exist yet.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        /// Do not encrypt the secret key (as `minisign -G -W`): for test keys and keys kept
        /// on an encrypted, offline medium.
        #[arg(long)]
        unencrypted: bool,
    },
}

/// A problem with what the operator gave: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Keygen { out, unencrypted } => keygen::run(&out, unencrypted),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = if error.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            };
            let message = daemoneye_lib::text::error_chain(error.as_ref());
            // Nothing more can be done if stderr is gone.
            let _ = writeln!(io::stderr(), "daemoneye-bundler: {message}");
            ExitCode::from(code)
        }
    }
}
