//! The default durable backend: one redb database file in the data directory.
//!
//! Writes go through the group committer (see the `committer` module); reads open their own
//! redb read transaction inline. A read transaction is a snapshot of the latest committed
//! state, and a writer is acknowledged only after its commit, so every read started after an
//! acknowledgement sees that write.
//!
//! The database is opened in redb's default `ExclusiveWriter` mode, which locks the whole file:
//! a second process (or a second handle in this process) opening the same directory fails with
//! [`StorageError::DataDirInUse`] instead of corrupting it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, DatabaseError, ReadOnlyTable, ReadableDatabase, TableDefinition};

use crate::committer::{CommitStats, Committer, Durability};
use crate::keys::{list_children, validate_ops};
use crate::{BatchOp, Storage, StorageError};

/// Name of the database file inside the data directory.
const DATABASE_FILE: &str = "coffer.redb";

/// The single table: full storage key → ciphertext.
const ENTRIES: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("entries");

/// Durable [`Storage`] in a redb file, with group commit.
///
/// Dropping it commits every write already queued, then closes the file. The drop waits for
/// that final commit (at most one group's fsync), so the directory can be reopened right after.
pub struct EmbeddedStorage {
    // Field order matters: the committer is dropped first, which drains its queue and joins
    // its thread, releasing its handle on the database before `db` closes it.
    committer: Committer,
    db: Arc<Database>,
    dir: PathBuf,
}

impl std::fmt::Debug for EmbeddedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStorage")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// redb page cache size.
pub const PAGE_CACHE_BYTES: usize = 128 * 1024 * 1024;

impl EmbeddedStorage {
    /// Open (creating if missing) the storage in data directory `dir` and start its committer.
    ///
    /// Fails with [`StorageError::DataDirInUse`] if another handle has the directory open.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        fs::create_dir_all(dir)?;
        // A bounded page cache: memory use must not grow with the number of stored entries
        // (redb's default is 1 GiB); hot pages still stay cached.
        let db = Database::builder()
            .set_cache_size(PAGE_CACHE_BYTES)
            .create(dir.join(DATABASE_FILE))
            .map_err(|error| match error {
                DatabaseError::DatabaseAlreadyOpen => StorageError::DataDirInUse {
                    path: dir.to_path_buf(),
                },
                other => StorageError::backend("open database", other),
            })?;
        // Create the table up front so readers never meet a missing table.
        let txn = db
            .begin_write()
            .map_err(|e| StorageError::backend("create table", e))?;
        txn.open_table(ENTRIES)
            .map_err(|e| StorageError::backend("create table", e))?;
        txn.commit()
            .map_err(|e| StorageError::backend("create table", e))?;

        let db = Arc::new(db);
        let committer = Committer::start(Arc::clone(&db), ENTRIES)?;
        tracing::debug!(dir = %dir.display(), "embedded storage opened");
        Ok(Self {
            committer,
            db,
            dir: dir.to_path_buf(),
        })
    }

    /// Commit counters since open: how many durable transactions the committer made and how
    /// many ops they carried. `ops / commits` is the average group size.
    pub fn stats(&self) -> CommitStats {
        self.committer.stats()
    }

    /// The data directory this storage lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A snapshot of the entries table at the latest commit.
    fn snapshot(&self) -> Result<ReadOnlyTable<&'static str, &'static [u8]>, StorageError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StorageError::backend("begin read", e))?;
        txn.open_table(ENTRIES)
            .map_err(|e| StorageError::backend("open table", e))
    }

    /// Validate `ops` and hand them to the committer; resolves once they are committed as
    /// `durability` asks.
    async fn write(&self, ops: Vec<BatchOp>, durability: Durability) -> Result<(), StorageError> {
        let bytes = validate_ops(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        self.committer.submit(ops, bytes, durability).await
    }
}

/// The smallest key `>= from` in `table`.
fn first_key_from(
    table: &ReadOnlyTable<&'static str, &'static [u8]>,
    from: &str,
) -> Result<Option<String>, StorageError> {
    let mut range = table
        .range(from..)
        .map_err(|e| StorageError::backend("read", e))?;
    match range.next() {
        Some(Ok((key, _))) => Ok(Some(key.value().to_owned())),
        Some(Err(e)) => Err(StorageError::backend("read", e)),
        None => Ok(None),
    }
}

#[async_trait::async_trait]
impl Storage for EmbeddedStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let table = self.snapshot()?;
        let value = table
            .get(key)
            .map_err(|e| StorageError::backend("read", e))?;
        Ok(value.map(|guard| guard.value().to_vec()))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.write(
            vec![BatchOp::Put {
                key: key.to_owned(),
                value,
            }],
            Durability::Durable,
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.write(
            vec![BatchOp::Delete {
                key: key.to_owned(),
            }],
            Durability::Durable,
        )
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let table = self.snapshot()?;
        list_children(prefix, |from| first_key_from(&table, from))
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let table = self.snapshot()?;
        let mut keys = Vec::new();
        for entry in table
            .range(prefix..)
            .map_err(|e| StorageError::backend("read", e))?
        {
            let (key, _) = entry.map_err(|e| StorageError::backend("read", e))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_owned());
        }
        Ok(keys)
    }

    async fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let table = self.snapshot()?;
        let start = match after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(a),
            _ => std::ops::Bound::Included(prefix),
        };
        let mut keys = Vec::new();
        for entry in table
            .range::<&str>((start, std::ops::Bound::Unbounded))
            .map_err(|e| StorageError::backend("read", e))?
        {
            if keys.len() >= limit {
                break;
            }
            let (key, _) = entry.map_err(|e| StorageError::backend("read", e))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_owned());
        }
        Ok(keys)
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StorageError> {
        self.write(ops, Durability::Durable).await
    }

    async fn batch_unsynced(&self, ops: Vec<BatchOp>) -> Result<(), StorageError> {
        self.write(ops, Durability::Unsynced).await
    }

    async fn sync(&self) -> Result<(), StorageError> {
        self.committer
            .submit(Vec::new(), 0, Durability::Durable)
            .await
    }

    fn kind(&self) -> &'static str {
        "file"
    }

    fn commit_stats(&self) -> Option<CommitStats> {
        Some(self.stats())
    }
}
