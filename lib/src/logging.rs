//! Logging set-up shared by the binaries: `tracing` to stderr, human or JSON lines, the level
//! from `RUST_LOG` or else from `-v`/`-q`.

use std::io;

/// The `--log-format` flag's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines, for a terminal.
    Human,
    /// One JSON object per line, for a log collector.
    Json,
}

impl LogFormat {
    /// The flag value, as a child process is given it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Json => "json",
        }
    }
}

/// Installs the global subscriber. Without `RUST_LOG`, `-q` means errors only and `verbose`
/// picks from `levels` (none, `-v`, `-vv` and more): each binary has its own idea of what is
/// worth saying by default.
pub fn init(format: LogFormat, verbose: u8, quiet: bool, levels: [&str; 3]) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet {
        "error"
    } else {
        levels[usize::from(verbose.min(2))]
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
