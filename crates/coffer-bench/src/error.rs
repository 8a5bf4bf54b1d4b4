//! The one error type of the harness.

use std::fmt;

/// Why a benchmark could not produce a figure.
#[derive(Debug)]
pub enum BenchError {
    /// An I/O operation (spawning a server, a socket, a temp dir) failed.
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An HTTP exchange failed at the connection or protocol level.
    Http {
        /// What the harness was doing.
        context: String,
        /// The underlying error, rendered.
        detail: String,
    },
    /// A server answered, but not as the benchmark needs (wrong status, bad JSON).
    UnexpectedResponse {
        /// What the harness was doing.
        context: String,
        /// The status and (non-secret) body excerpt.
        detail: String,
    },
    /// A server process did not come up or exited early.
    Server(String),
    /// The run was set up so that it cannot measure anything.
    Config(String),
}

impl BenchError {
    /// An I/O error with what the harness was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }

    /// An HTTP-level failure with what the harness was doing.
    pub fn http(context: impl Into<String>, detail: impl fmt::Display) -> Self {
        BenchError::Http {
            context: context.into(),
            detail: detail.to_string(),
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Io { context, source } => write!(f, "{context}: {source}"),
            BenchError::Http { context, detail } => write!(f, "{context}: {detail}"),
            BenchError::UnexpectedResponse { context, detail } => {
                write!(f, "{context}: unexpected response: {detail}")
            }
            BenchError::Server(msg) | BenchError::Config(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
