//! The default durable backend: one redb database file and its write-ahead log in the data
//! directory.
//!
//! Writes go through the group committer (see the `committer` module), which logs them,
//! publishes them in its pending map and applies them to redb in bulk later. Reads run inline:
//! first the pending map, then redb's latest commit through one read snapshot that all reads
//! share and the committer replaces after each commit. The order matters: the committer
//! empties the pending map only after redb committed what it held and the snapshot was
//! replaced, so a key missing from the map when a read looks is already in the snapshot the
//! read takes afterwards. A writer is acknowledged only once its ops are in the map, so every
//! read started after an acknowledgement sees that write.
//!
//! The database is opened in redb's default `ExclusiveWriter` mode, which locks the whole file:
//! a second process (or a second handle in this process) opening the same directory fails with
//! [`StorageError::DataDirInUse`] instead of corrupting it.

use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, DatabaseError, TableDefinition};

use crate::committer::{
    recover, CommitStats, Committer, Durability, LatestSnapshot, Pending, PendingMap,
    ReadOnlyEntries,
};
use crate::keys::{list_children, validate_ops};
use crate::{BatchOp, Storage, StorageError};

/// Name of the database file inside the data directory.
const DATABASE_FILE: &str = "coffer.redb";

/// Name of the write-ahead log inside the data directory.
const WAL_FILE: &str = "coffer.wal";

/// The single table: full storage key → ciphertext.
const ENTRIES: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("entries");

/// Durable [`Storage`] in a redb file, with group commit.
///
/// Dropping it commits every write already queued, then closes the file. The drop waits for
/// that final commit (at most one group's fsync), so the directory can be reopened right after.
pub struct EmbeddedStorage {
    // Field order matters: the committer is dropped first, which drains its queue and joins
    // its thread, releasing the database; the snapshot's read transaction is the last hold on
    // the file, and dropping it closes the file.
    committer: Committer,
    /// redb's latest commit, which reads consult after the pending map.
    snapshot: Arc<LatestSnapshot>,
    /// Acknowledged writes not yet applied to redb; consulted before it.
    pending: Pending,
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
        // Creates the tables up front (readers never meet a missing table) and replays the
        // write-ahead log left by a crash.
        let db = Arc::new(db);
        let parts = recover(Arc::clone(&db), ENTRIES, &dir.join(WAL_FILE))?;
        let pending = Arc::clone(&parts.pending);
        let snapshot = Arc::clone(&parts.snapshot);
        let committer = Committer::start(parts)?;
        tracing::debug!(dir = %dir.display(), "embedded storage opened");
        Ok(Self {
            committer,
            snapshot,
            pending,
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

/// Keys of the merged view (pending map over a redb snapshot) in `start..`, in order, that
/// start with `prefix`, at most `limit` of them. A pending entry shadows redb's entry for the
/// same key: a value there means the key exists, a deletion that it does not.
fn merged_keys(
    pending: &PendingMap,
    table: &ReadOnlyEntries,
    start: Bound<&str>,
    prefix: &str,
    limit: usize,
) -> Result<Vec<String>, StorageError> {
    let read = |e| StorageError::backend("read", e);
    let mut stored = table
        .range::<&str>((start, Bound::Unbounded))
        .map_err(read)?;
    let mut shadow = pending
        .range::<str, _>((start, Bound::Unbounded))
        .take_while(|(key, _)| key.starts_with(prefix))
        .map(|(key, value)| (key.as_str(), value.is_some()))
        .peekable();
    let mut next_stored = || -> Result<Option<String>, StorageError> {
        match stored.next() {
            Some(Ok((key, _))) => {
                let key = key.value();
                Ok(key.starts_with(prefix).then(|| key.to_owned()))
            }
            Some(Err(e)) => Err(read(e)),
            None => Ok(None),
        }
    };
    let mut keys = Vec::new();
    let mut from_redb = next_stored()?;
    while keys.len() < limit {
        let from_pending = shadow.peek().copied();
        match (from_redb.as_deref(), from_pending) {
            (None, None) => break,
            (Some(stored), Some((shadowing, _))) if stored < shadowing => {
                keys.push(from_redb.take().expect("just matched"));
                from_redb = next_stored()?;
            }
            (Some(stored), None) => {
                keys.push(stored.to_owned());
                from_redb = next_stored()?;
            }
            (stored, Some((shadowing, exists))) => {
                if stored == Some(shadowing) {
                    from_redb = next_stored()?;
                }
                if exists {
                    keys.push(shadowing.to_owned());
                }
                shadow.next();
            }
        }
    }
    Ok(keys)
}

#[async_trait::async_trait]
impl Storage for EmbeddedStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        // The pending map first, then redb (see the module documentation for why this order).
        if let Some(pending) = self.pending.read().get(key) {
            return Ok(pending.clone());
        }
        let table = self.snapshot.get();
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
        // The pending map is held (read) while redb is read, so it cannot be emptied between
        // the two: see the module documentation.
        let pending = self.pending.read();
        let table = self.snapshot.get();
        list_children(prefix, |from| {
            Ok(merged_keys(&pending, &table, Bound::Included(from), "", 1)?.pop())
        })
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let pending = self.pending.read();
        let table = self.snapshot.get();
        merged_keys(
            &pending,
            &table,
            Bound::Included(prefix),
            prefix,
            usize::MAX,
        )
    }

    async fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let pending = self.pending.read();
        let table = self.snapshot.get();
        merged_keys(&pending, &table, start, prefix, limit)
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

#[cfg(test)]
mod merge_tests {
    use super::*;
    use crate::committer::PendingMap;
    use redb::ReadableDatabase;
    use std::collections::BTreeSet;

    /// redb holds some keys and the pending map puts and deletes some of them and others (two
    /// rounds of writes, the later on top): the merged view must equal applying them in order.
    #[test]
    fn merged_keys_layer_pending_writes_over_redb() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        let names: Vec<String> = ["", "a/", "a/b/", "b/"]
            .iter()
            .flat_map(|folder| (0..12).map(move |n| format!("{folder}k{n:02}")))
            .collect();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(ENTRIES).unwrap();
            for name in names.iter().step_by(2) {
                table.insert(name.as_str(), b"redb".as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        let layer = |every: usize, offset: usize| -> PendingMap {
            names
                .iter()
                .enumerate()
                .filter(|(i, _)| i % every == offset)
                .map(|(i, name)| (name.clone(), (i % 2 == 1).then(|| b"new".to_vec())))
                .collect()
        };
        let (earlier, later) = (layer(3, 0), layer(5, 1));
        let mut pending = earlier.clone();
        pending.extend(later.clone());
        let mut expected: BTreeSet<String> = names.iter().step_by(2).cloned().collect();
        for layer in [&earlier, &later] {
            for (key, value) in layer {
                if value.is_some() {
                    expected.insert(key.clone());
                } else {
                    expected.remove(key);
                }
            }
        }
        let table = db.begin_read().unwrap().open_table(ENTRIES).unwrap();
        for prefix in ["", "a/", "a/b/", "b/", "k0", "z"] {
            for start in [None, Some("a/k05"), Some("a/b/k11"), Some("b/k00")] {
                let bound = match start {
                    Some(s) if s >= prefix => Bound::Excluded(s),
                    _ => Bound::Included(prefix),
                };
                let want: Vec<String> = expected
                    .iter()
                    .filter(|k| k.starts_with(prefix))
                    .filter(|k| match bound {
                        Bound::Excluded(s) => k.as_str() > s,
                        Bound::Included(s) => k.as_str() >= s,
                        Bound::Unbounded => true,
                    })
                    .cloned()
                    .collect();
                for limit in [1, 4, usize::MAX] {
                    let got = merged_keys(&pending, &table, bound, prefix, limit).unwrap();
                    let want: Vec<String> = want.iter().take(limit).cloned().collect();
                    assert_eq!(got, want, "prefix {prefix:?} start {start:?} limit {limit}");
                }
            }
        }
    }
}
