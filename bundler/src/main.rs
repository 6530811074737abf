//! `daemoneye-bundler`: builds and signs DaemonEye bundles of rules, configuration and
//! licenses, on the office side of an air gap.
//!
//! This binary parses its arguments and calls into its modules and `daemoneye-lib`; the
//! formats it writes (minisign keys and signatures, bundles, manifests, licenses) live in
//! `daemoneye_lib::minisign` and `daemoneye_lib::bundle`, so the agent reads exactly what this
//! writes. It never links the agent or procmond, and never opens a network socket.
//!
//! Exit codes (INTERFACE.md), mapped in [`main`] alone: 0 success; 1 runtime failure (an I/O
//! error, a source that does not validate, a rule whose fixture fails); 2 usage error (clap's
//! own, a password that is empty or typed differently twice, a `--out` that does not fit, a
//! bad site id, tier, feature or date); 3 a bundle that does not verify.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod build;
mod keygen;
mod keys;
mod license;
mod password;
mod show;
mod verify;

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
    /// Validate a bundle source, run every rule's fixtures, pack it and sign it:
    /// NAME-VERSION.bundle and NAME-VERSION.bundle.minisig. Nothing is written when any
    /// check fails. The same source and key always give the same bytes.
    ///
    /// A password-protected key asks for its password on the terminal; when standard input
    /// is not a terminal, its first line is the password, as stock `minisign -S` reads it.
    Build {
        /// The source directory: bundle.toml and rules/, config/, license/ or keys/.
        #[arg(value_name = "SRC_DIR")]
        source: PathBuf,
        /// The minisign secret key to sign with (PREFIX.key).
        #[arg(long, value_name = "PREFIX.key")]
        key: PathBuf,
        /// A directory (the bundle is written there as NAME-VERSION.bundle), or the bundle's
        /// path, which must end in NAME-VERSION.bundle as the manifest names it.
        #[arg(long, value_name = "FILE.bundle|DIR")]
        out: PathBuf,
    },
    /// Verify a bundle (its signature is FILE.bundle.minisig) with PREFIX.pub trusted to
    /// sign bundles and licenses, check every file against the manifest and validate the
    /// content, then print the manifest. Exit 3 when it does not verify.
    Verify {
        /// The bundle.
        #[arg(value_name = "FILE.bundle")]
        bundle: PathBuf,
        /// The public key to trust (PREFIX.pub, minisign public key format).
        #[arg(long = "pub", value_name = "PREFIX.pub")]
        public: PathBuf,
    },
    /// Print a bundle's manifest and entry list WITHOUT verifying anything.
    Inspect {
        /// The bundle.
        #[arg(value_name = "FILE.bundle")]
        bundle: PathBuf,
    },
    /// Licenses for sites.
    #[command(subcommand)]
    License(LicenseCommand),
}

#[derive(Debug, Subcommand)]
enum LicenseCommand {
    /// Write a license source directory (bundle.toml and license/license.toml) for one site,
    /// to be built and signed with a license key by `build`.
    Issue {
        /// The site's `site.id`.
        #[arg(long)]
        site: String,
        /// The tier bought (a-z, 0-9, _ and -, the first a letter).
        #[arg(long)]
        tier: String,
        /// The features it allows, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "FEATURE,...")]
        features: Vec<String>,
        /// When it expires: RFC 3339 (2027-12-03T00:00:00Z) or a date (2027-12-03, midnight
        /// UTC).
        #[arg(long, value_name = "DATE")]
        expires: String,
        /// The directory to write; it must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// A problem with what the operator gave: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A bundle that does not verify: exit 3. Its message is the whole line.
#[derive(Debug, thiserror::Error)]
#[error("verification failed: {0}")]
pub struct VerifyFailed(pub String);

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Keygen { out, unencrypted } => keygen::run(&out, unencrypted),
        Command::Build { source, key, out } => build::run(&source, &key, &out),
        Command::Verify { bundle, public } => verify::run(&bundle, &public),
        Command::Inspect { bundle } => verify::inspect(&bundle),
        Command::License(LicenseCommand::Issue {
            site,
            tier,
            features,
            expires,
            out,
        }) => license::issue(&site, &tier, &features, &expires, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let (code, message) = if let Some(failed) = error.downcast_ref::<VerifyFailed>() {
                (3, failed.to_string())
            } else if error.downcast_ref::<UsageError>().is_some() {
                (2, daemoneye_lib::text::error_chain(error.as_ref()))
            } else {
                (1, daemoneye_lib::text::error_chain(error.as_ref()))
            };
            // Nothing more can be done if stderr is gone.
            let _ = writeln!(io::stderr(), "daemoneye-bundler: {message}");
            ExitCode::from(code)
        }
    }
}

/// Writes `text` to standard output; a closed pipe (`| head`) is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(error).context("writing to standard output")
        }
        _ => Ok(()),
    }
}
