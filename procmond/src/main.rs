//! `procmond` command line: parse arguments, load configuration, run one scan, print it.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use daemoneye_lib::config::{self, ConfigSources, Overrides};
use procmond::output::{self, Format};
use procmond::{Collector, CollectorOptions};

/// DaemonEye's privileged process collector.
#[derive(Debug, Parser)]
#[command(name = "procmond", version, about)]
struct Args {
    /// Enumerate every process once, hash the executables, print the scan and exit.
    #[arg(long, required = true)]
    once: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Configuration file, read after /etc/daemoneye/config.toml and the user's file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Largest executable to hash, in bytes (collection.hash_max_bytes).
    #[arg(long, value_name = "BYTES")]
    hash_max_bytes: Option<u64>,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Less log output (errors only).
    #[arg(short, long)]
    quiet: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args);
    let mut overrides = Overrides::default();
    if let Some(bytes) = args.hash_max_bytes {
        overrides.set("collection.hash_max_bytes", bytes);
    }
    let config = match config::load(&ConfigSources::standard(args.config.clone()), &overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("procmond: {err}");
            return ExitCode::from(2);
        }
    };
    match run(&args, CollectorOptions::from_config(&config.collection)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("procmond: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args, options: CollectorOptions) -> anyhow::Result<()> {
    for column in procmond::UNSEEN_COLUMNS {
        tracing::info!(
            column,
            "not available on this platform; reported as unknown"
        );
    }
    let mut collector = Collector::new(options).context("starting the collector")?;
    let scan = collector.scan();
    tracing::info!(
        scan_id = scan.summary.scan_id,
        processes = scan.summary.process_count,
        errors = scan.summary.error_count,
        hashed_files = scan.hashed_files,
        elapsed_ms = scan.summary.finished_at - scan.summary.started_at,
        "scan complete"
    );
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    output::write_scan(&scan, args.format, &mut out).context("writing the scan to stdout")?;
    out.flush().context("writing the scan to stdout")?;
    Ok(())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(args: &Args) {
    use tracing_subscriber::EnvFilter;
    let default = if args.quiet {
        "error"
    } else {
        match args.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match args.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
