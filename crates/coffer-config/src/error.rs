//! The one error type of this crate. Every message names where the problem is (file, line,
//! column when known) and never repeats the value of a key that looks secret.

use std::fmt;
use std::path::PathBuf;

/// Why a server configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read from disk.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The text is not well-formed HCL or JSON.
    #[error("line {line}, column {column}: syntax error: {message}")]
    Syntax {
        /// One-based line of the error.
        line: usize,
        /// One-based column of the error.
        column: usize,
        /// What the parser expected; never includes the source text itself.
        message: String,
    },
    /// The text parsed but says something Coffer cannot run with.
    #[error("{}{message}", LinePrefix(*line))]
    Invalid {
        /// One-based line of the offending key or stanza, when the problem has a place
        /// (a missing storage stanza, for instance, has none).
        line: Option<usize>,
        /// What is wrong and, where it helps, what to write instead.
        message: String,
    },
    /// An error found while reading a particular file; wraps one of the other variants.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The configuration file.
        path: PathBuf,
        /// The problem in it.
        source: Box<ConfigError>,
    },
}

impl ConfigError {
    /// The one-based source line the error points at, if it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { line, .. } => Some(*line),
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::InFile { source, .. } => source.line(),
        }
    }

    pub(crate) fn at(line: usize, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            line: Some(line),
            message: message.into(),
        }
    }
}

/// Renders `line N: ` or nothing, so `Invalid` reads naturally with and without a place.
struct LinePrefix(Option<usize>);

impl fmt::Display for LinePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, "line {line}: "),
            None => Ok(()),
        }
    }
}
