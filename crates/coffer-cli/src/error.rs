//! The one error type of the CLI, and how each kind maps to a process exit code.

use std::fmt;

/// A failed HTTP call: the server answered with a non-success status.
///
/// Rendered the way Vault's CLI renders `api.ResponseError`, so scripts and people that
/// read Vault's messages read ours the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP method of the failed request (`GET`, `LIST`, ...).
    pub method: String,
    /// Full URL of the failed request, without the query string.
    pub url: String,
    /// HTTP status the server answered with.
    pub status: u16,
    /// The server's `errors` array, in order; empty when the body had none.
    pub errors: Vec<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Error making API request.\n\nURL: {} {}\nCode: {}. Errors:\n",
            self.method, self.url, self.status
        )?;
        for error in &self.errors {
            write!(f, "\n* {error}")?;
        }
        Ok(())
    }
}

/// Everything that can make a CLI command fail.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line itself is wrong: missing or extra arguments, a malformed flag value.
    /// The message names the fix. Exit code 2, as Vault uses for usage errors.
    #[error("{0}")]
    Usage(String),
    /// The server answered with an error status.
    #[error("{0}")]
    Api(ApiError),
    /// The server could not be reached or the connection failed mid-request.
    #[error("error contacting the server at {address}: {reason}")]
    Transport {
        /// Address the CLI tried to reach.
        address: String,
        /// Why the request did not complete.
        reason: String,
    },
    /// The server is sealed (a 503 whose error says so): nothing but `sys/` status and unseal
    /// paths answer until enough key shares are given.
    #[error("{}", if *initialized { "the server is sealed: run coffer operator unseal" } else { "the server is not initialized: run coffer operator init, then coffer operator unseal" })]
    Sealed {
        /// False when the server has never been initialized (it answers sealed then too).
        initialized: bool,
    },
    /// The request carried no token and the server refused it (403).
    #[error("no token: set VAULT_TOKEN or run coffer login")]
    NoToken,
    /// The connection or its TLS handshake failed in a way with a known remedy; the message
    /// names it (a flag or variable to set, the scheme to use).
    #[error("{0}")]
    Connection(String),
    /// The server answered with a body that is not the JSON Vault's API promises.
    #[error("the server sent a response that is not valid JSON: {0}")]
    InvalidResponse(String),
    /// Reading a local file, stdin or the token file failed.
    #[error("{context}: {source}")]
    Io {
        /// What the CLI was doing, naming the file.
        context: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The CA certificate bundle could not be used.
    #[error("error loading CA certificate {path}: {reason}")]
    Tls {
        /// Path of the bundle.
        path: String,
        /// Why it could not be used.
        reason: String,
    },
    /// The TLS client certificate or its private key could not be used.
    #[error("error loading client certificate {path}: {reason}")]
    ClientCertificate {
        /// Path of the certificate or key file that failed.
        path: String,
        /// Why it could not be used (never the key material itself).
        reason: String,
    },
    /// The command ran but its outcome is a "not found" or similar soft failure that Vault
    /// reports with exit code 2 (e.g. `No value found at secret/foo`).
    #[error("{0}")]
    NotFound(String),
    /// The server accepted the request but reports that the operation failed.
    #[error("{0}")]
    OperationFailed(String),
    /// `-field=NAME` named a field the response does not have.
    #[error("Field \"{0}\" not present in secret")]
    FieldMissing(String),
    /// Another error, prefixed with what the command was doing (`Error reading secret/foo`),
    /// the way Vault's CLI prefixes every failure.
    #[error("{action}: {source}")]
    Context {
        /// What was being attempted, starting with `Error`.
        action: String,
        /// The underlying failure.
        source: Box<CliError>,
    },
}

impl CliError {
    /// Process exit code for this error, matching Vault: 2 for usage errors and "no value
    /// found", 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        // Vault's convention: 1 for local errors (usage, files, a missing -field), 2 for
        // anything the server or the connection said (including "No value found").
        match self {
            CliError::Context { source, .. } => source.exit_code(),
            CliError::Usage(_)
            | CliError::Io { .. }
            | CliError::FieldMissing(_)
            | CliError::Tls { .. }
            | CliError::ClientCertificate { .. } => 1,
            _ => 2,
        }
    }

    /// Build a usage error from anything printable.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// Wrap an I/O error with what the CLI was doing when it happened.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    /// The status code when this is an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            CliError::Api(api) => Some(api.status),
            CliError::Context { source, .. } => source.status(),
            _ => None,
        }
    }
}

/// Result alias for the CLI.
pub type CliResult<T> = Result<T, CliError>;

/// Prefix an error with what the command was doing, as Vault does (`Error reading x: ...`).
pub trait ErrorContext<T> {
    /// Wrap the error, if any, with `action`.
    fn context(self, action: impl FnOnce() -> String) -> CliResult<T>;
}

impl<T> ErrorContext<T> for CliResult<T> {
    fn context(self, action: impl FnOnce() -> String) -> CliResult<T> {
        self.map_err(|source| match source {
            // Usage errors, "not found" and the errors that name their own remedy already
            // read as complete sentences.
            CliError::Usage(_)
            | CliError::NotFound(_)
            | CliError::Sealed { .. }
            | CliError::NoToken
            | CliError::Connection(_)
            | CliError::FieldMissing(_)
            | CliError::Context { .. } => source,
            other => CliError::Context {
                action: action(),
                source: Box::new(other),
            },
        })
    }
}
