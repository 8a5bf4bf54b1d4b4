//! The one error type of the storage layer.
//!
//! Invariant: no variant carries a stored value or a key's contents. Keys are ciphertext
//! locations whose names can still be sensitive (a KV path names the secret), so only their
//! lengths appear here.

use std::path::PathBuf;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A filesystem operation on the data directory failed.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// Another process (or another handle in this process) holds the database open.
    #[error(
        "storage data directory {} is already in use by another Coffer process; \
         stop that process or point this one at a different directory",
        path.display()
    )]
    DataDirInUse {
        /// The data directory that could not be locked.
        path: PathBuf,
    },

    /// The embedded database engine reported a failure.
    #[error("storage backend failed during {operation}: {detail}")]
    Backend {
        /// What storage was doing, e.g. "commit" or "read".
        operation: &'static str,
        /// The engine's own description of the failure (never contains stored data).
        detail: String,
    },

    /// A key is longer than [`crate::MAX_KEY_BYTES`].
    #[error("storage key is {len} bytes, the limit is {max} bytes")]
    KeyTooLarge {
        /// Length of the rejected key.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A value is longer than [`crate::MAX_VALUE_BYTES`].
    #[error("storage value is {len} bytes, the limit is {max} bytes")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The storage has shut down (its committer is gone), so the write was not applied.
    #[error("storage is shut down; the write was not applied")]
    Closed,
}

impl StorageError {
    /// Wrap an engine error, keeping only its description.
    pub(crate) fn backend(operation: &'static str, error: impl std::fmt::Display) -> Self {
        StorageError::Backend {
            operation,
            detail: error.to_string(),
        }
    }
}
