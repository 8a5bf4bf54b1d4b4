//! Coffer's physical storage layer.
//!
//! Everything stored here is already ciphertext: the encryption barrier sits above this crate,
//! so nothing in it ever sees, logs or reports a plaintext secret. Error messages carry keys'
//! and values' *lengths* at most, never their contents.
//!
//! Two backends implement [`Storage`]:
//! - [`EmbeddedStorage`]: the default durable backend, a redb file and its write-ahead log in
//!   the data directory. Every acknowledged write is fsynced in the log; concurrent writers
//!   share fsyncs through group commit, and redb takes the writes in bulk (see the `committer`
//!   and `wal` modules).
//! - [`MemoryStorage`]: a sorted map in memory, for tests and dev mode.
//!
//! Keys are `/`-separated paths such as `logical/<uuid>/data/foo`; [`Storage::list`] follows
//! Vault's physical LIST semantics so the layers above can port Vault behaviour unchanged.

#![warn(missing_docs)]

mod committer;
mod embedded;
mod error;
mod keys;
mod memory;
mod probe;
mod wal;

pub use committer::CommitStats;
pub use embedded::EmbeddedStorage;
pub use error::StorageError;
pub use keys::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
pub use memory::MemoryStorage;
pub use probe::fsync_probe;

/// One write inside an atomic [`Storage::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Store `value` under `key`, replacing any previous value.
    Put {
        /// Full storage key.
        key: String,
        /// Ciphertext to store.
        value: Vec<u8>,
    },
    /// Remove `key`; removing an absent key is not an error.
    Delete {
        /// Full storage key.
        key: String,
    },
}

impl BatchOp {
    /// The key this operation writes.
    pub fn key(&self) -> &str {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
        }
    }
}

/// A sorted key/value store of ciphertext, the physical layer under the barrier.
///
/// Every method that returns `Ok` for a write has made that write visible to all later reads
/// (and, for durable backends, persistent across a crash).
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The value stored under `key`, or `None` if there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Store `value` under `key`, replacing any previous value.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError>;

    /// Remove `key`; removing an absent key succeeds.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Vault LIST semantics: the immediate children of `prefix` (prefix usually ends in '/' or
    /// is ""), keys relative to prefix, sorted; a deeper key contributes its first segment once,
    /// with a trailing '/'.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Every full key starting with `prefix`, sorted (used for unmount cleanup, snapshots,
    /// tests).
    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// At most `limit` full keys starting with `prefix` and sorting strictly after `after`
    /// (from the start of the prefix when `None`), in order. Paging through a large prefix
    /// with this never holds more than one page in memory (the lease expiry index relies on
    /// it to start instantly with millions of entries).
    async fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError>;

    /// Apply all ops atomically (all or nothing), durably, in order: a later op on the same key
    /// wins.
    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StorageError>;

    /// Like [`Storage::batch`] (atomic, in order, visible to every later read) but not yet
    /// durable: a crash before the next [`Storage::sync`] or durable write may undo it, whole.
    /// For bulk work that is acknowledged only after a final `sync`, so that its many commits
    /// share one fsync. Backends without a cheaper path apply it durably.
    async fn batch_unsynced(&self, ops: Vec<BatchOp>) -> Result<(), StorageError> {
        self.batch(ops).await
    }

    /// Make every write acknowledged so far durable (a no-op when they already are).
    async fn sync(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Short name of the backend: "inmem", "file", ...
    fn kind(&self) -> &'static str;

    /// Commit counters of a backend that groups writes into transactions (`None` for one
    /// that does not): how many writes each fsync carried, for metrics and benchmarks.
    fn commit_stats(&self) -> Option<CommitStats> {
        None
    }
}
