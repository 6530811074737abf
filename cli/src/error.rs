//! The CLI's one error type. Every command returns `Result<(), CliError>`; `main` prints the
//! error as one line on stderr and maps it to INTERFACE.md's exit code, the only place that
//! picks one:
//!
//! | variant | exit code | meaning |
//! | --- | --- | --- |
//! | [`CliError::Failed`] | 1 | a runtime failure |
//! | [`CliError::Findings`] | 1 | the command ran and found something not ok (health, rules) |
//! | [`CliError::Usage`] | 2 | a usage or configuration error, or a request the agent refused as bad |
//! | [`CliError::Verification`] | 3 | a bundle, signature, proof or ledger that does not verify |
//! | [`CliError::Unreachable`] | 4 | no agent answers |
//!
//! Messages that carry what the agent (or procmond through it) sent are escaped here, once,
//! with the policy of `daemoneye_lib::text`.

use std::fmt;
use std::io;
use std::path::Path;

use daemoneye_lib::ipc::IpcError;
use daemoneye_lib::ipc::proto::ErrorCode;
use daemoneye_lib::text;

use crate::agent_client::ClientError;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum CliError {
    /// A runtime failure (exit 1).
    Failed(String),
    /// The command ran and found something not ok (exit 1); the message, if any, sums it up
    /// (the details went to stdout).
    Findings(Option<String>),
    /// A usage or configuration error (exit 2).
    Usage(String),
    /// Something does not verify (exit 3).
    Verification(String),
    /// No agent answers (exit 4).
    Unreachable(String),
}

impl CliError {
    /// The exit code INTERFACE.md gives this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Failed(_) | Self::Findings(_) => 1,
            Self::Usage(_) => 2,
            Self::Verification(_) => 3,
            Self::Unreachable(_) => 4,
        }
    }

    /// The one line for stderr, if the error has one.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Failed(message)
            | Self::Usage(message)
            | Self::Verification(message)
            | Self::Unreachable(message) => Some(message),
            Self::Findings(message) => message.as_deref(),
        }
    }

    /// A file that could not be read: the operator named it, so exit 2.
    pub fn reading(path: &Path, err: &io::Error) -> Self {
        Self::Usage(format!("reading {}: {err}", path.display()))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message().unwrap_or("the command found problems"))
    }
}

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> Self {
        // The message may carry what the agent (or procmond through it) sent.
        let message = text::escape(&err.to_string()).into_owned();
        match err {
            ClientError::Unreachable { .. } | ClientError::Silent(_) => Self::Unreachable(message),
            ClientError::Failed(IpcError::Refused {
                code: ErrorCode::BadRequest,
                ..
            }) => Self::Usage(message),
            _ => Self::Failed(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_the_contracts_exit_code() {
        let refused = |code| {
            CliError::from(ClientError::Failed(IpcError::Refused {
                code,
                message: "no\u{202e}".to_owned(),
            }))
        };
        assert_eq!(refused(ErrorCode::BadRequest).exit_code(), 2);
        assert_eq!(refused(ErrorCode::Internal).exit_code(), 1);
        let silent = CliError::from(ClientError::Silent(std::time::Duration::from_secs(1)));
        assert_eq!(silent.exit_code(), 4);
        assert_eq!(CliError::Verification(String::new()).exit_code(), 3);
        assert_eq!(CliError::Findings(None).exit_code(), 1);
        assert_eq!(CliError::Findings(None).message(), None);
        // What the agent sent is escaped.
        assert!(
            refused(ErrorCode::BadRequest)
                .to_string()
                .contains("no\\u{202e}"),
            "{}",
            refused(ErrorCode::BadRequest)
        );
    }
}
