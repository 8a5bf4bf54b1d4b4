//! The one error type engines and the pipeline return. [`Error::status`] is the only place an
//! error becomes an HTTP status; messages are what the client sees, so they never contain
//! secret values.

/// A request failure, as the client will see it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request is malformed or invalid (400).
    #[error("{0}")]
    BadRequest(String),
    /// The token is missing, invalid, or lacks the capability (403).
    #[error("permission denied")]
    PermissionDenied,
    /// Denied, with Vault's specific message (e.g. `bad token`) (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing at this path (404 with an empty `errors` list, as Vault answers a missing secret).
    #[error("")]
    NotFound,
    /// No mount or no route for this path (404). The path is kept for logs in the server but
    /// never repeated to the client: a path can carry a secret (a token pasted into a URL).
    #[error("unsupported path: no handler for this route")]
    UnsupportedPath(String),
    /// The path exists but not for this operation (405).
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// The server is sealed (503).
    #[error("Coffer is sealed")]
    Sealed,
    /// The server has not been initialised (400, like Vault).
    #[error("Coffer is not initialized")]
    NotInitialized,
    /// The body is larger than allowed (413).
    #[error("request body too large")]
    TooLarge,
    /// A precondition such as check-and-set failed (400 in Vault's API).
    #[error("{0}")]
    Conflict(String),
    /// Temporarily unable to serve (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a storage failure (500). The message must be safe to show.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for a 400 with a message.
    pub fn bad(msg: impl Into<String>) -> Error {
        Error::BadRequest(msg.into())
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) | Error::Conflict(_) | Error::NotInitialized => 400,
            Error::PermissionDenied | Error::Forbidden(_) => 403,
            Error::NotFound | Error::UnsupportedPath(_) => 404,
            Error::UnsupportedOperation => 405,
            Error::TooLarge => 413,
            Error::Sealed | Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
        }
    }

    /// The `errors` array of the JSON body.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Error::NotFound => Vec::new(),
            other => vec![other.to_string()],
        }
    }
}

/// Result with Coffer's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
