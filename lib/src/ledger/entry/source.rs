//! [`Source`]: who asked for an entry, the third byte of its encoding.

use std::fmt;

/// Who asked for an entry: procmond itself or the agent (through `AppendAudit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The collector, which owns the ledger (byte 1).
    Procmond,
    /// The agent (byte 2).
    Agent,
}

impl Source {
    /// The byte that encodes this source.
    pub const fn code(self) -> u8 {
        match self {
            Self::Procmond => 1,
            Self::Agent => 2,
        }
    }

    /// The source encoded by `code`, if any.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Procmond),
            2 => Some(Self::Agent),
            _ => None,
        }
    }

    /// The name in text output: `procmond` or `agent`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Procmond => "procmond",
            Self::Agent => "agent",
        }
    }

    /// The source called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "procmond" => Some(Self::Procmond),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
