//! Logging set-up shared by the binaries: `tracing` to stderr, human or JSON lines, the level
//! from `RUST_LOG` or else from `-v`/`-q`.
//!
//! Human lines carry ANSI colour only where a person reads them: stderr is a terminal,
//! `NO_COLOR` is unset or empty (<https://no-color.org>) and `TERM` is not `dumb`
//! ([`use_colour`]). A file, a pipe or the systemd journal never receives an escape sequence,
//! and JSON lines never carry one. procmond inherits the agent's stderr and environment, so
//! both make the same decision without the agent passing it on.

use std::ffi::OsStr;
use std::io::{self, IsTerminal};

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

/// Whether human log lines may be coloured: only on a terminal, with `NO_COLOR` unset or
/// empty, and with a `TERM` other than `dumb` (an unset `TERM` is not `dumb`). Pure: the caller
/// reads the terminal and the environment.
pub fn use_colour(
    stderr_is_terminal: bool,
    no_color: Option<&OsStr>,
    term: Option<&OsStr>,
) -> bool {
    stderr_is_terminal
        && no_color.is_none_or(OsStr::is_empty)
        && term.is_none_or(|term| term != "dumb")
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
    let colour = format == LogFormat::Human
        && use_colour(
            io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
        );
    // tracing-subscriber's own default colours whatever stderr is, unless NO_COLOR is set.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(colour);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::use_colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color_or_term_dumb() {
        fn check(terminal: bool, no_color: Option<&str>, term: Option<&str>, want: bool) {
            let got = use_colour(terminal, no_color.map(OsStr::new), term.map(OsStr::new));
            assert_eq!(
                got, want,
                "terminal {terminal}, NO_COLOR {no_color:?}, TERM {term:?}"
            );
        }
        check(true, None, Some("xterm-256color"), true);
        check(true, None, None, true);
        check(true, Some(""), Some("xterm"), true);
        check(true, Some("1"), Some("xterm"), false);
        check(true, Some("0"), Some("xterm"), false);
        check(true, None, Some("dumb"), false);
        check(true, Some(""), Some("dumb"), false);
        check(true, None, Some("dumb-ish"), true);
        check(false, None, Some("xterm"), false);
        check(false, None, None, false);
    }
}
