//! Group commit through a write-ahead log: one thread owns every write.
//!
//! A group is every request queued while the previous group was being made durable. The
//! committer appends the whole group to the write-ahead log (`wal` module) as one record,
//! fsyncs the log once if any request in it asked for durability, publishes the group's ops in
//! the **pending map** (newest value or deletion per key, which every read consults before
//! redb), and only then answers. redb receives pending ops in bulk: one non-durable
//! transaction when the pending map grows large or old ([`FLUSH_ENTRIES`], [`FLUSH_BYTES`],
//! [`FLUSH_AFTER`]), so many groups share the copy-on-write of each B-tree page. A
//! **checkpoint** (a durable redb commit that also moves the log's generation on) makes the
//! log redundant when it grows past [`CHECKPOINT_BYTES`] and on shutdown.
//!
//! Invariants this module keeps:
//! - **Acknowledged means durable.** A writer's reply is sent only after the log record
//!   holding its ops has been fsynced (unless the writer asked for an unsynced write, below).
//!   After a crash, opening the storage replays every record of the current generation.
//! - **Acknowledged means visible.** The ops are in the pending map before the reply, so every
//!   read started after it sees them; a durable write is never visible before it is durable.
//! - **A request is never torn.** A request's ops are in one record, and a record is replayed
//!   whole or not at all (checksummed; replay stops at the first bad one).
//! - **Arrival order.** Requests are logged and applied in the order they were queued, so of
//!   two acknowledged concurrent writes to one key, the one queued later wins.
//! - **Unsynced writes become durable with the next durable commit.** A request queued with
//!   [`Durability::Unsynced`] is logged but not fsynced before its reply; the next fsync of the
//!   log (any durable request's, or a sync's) covers it and every record before it. A sync
//!   request (no ops) fsyncs the log when unsynced records are pending, and nothing otherwise.
//! - **A failed log write stops writes.** If an append or fsync of the log fails, that group
//!   gets the error and every later write is refused until restart, which replays the records
//!   that are whole: nothing written after a possibly lost page can be acknowledged.
//! - **Nothing is lost to a failed bulk apply.** A failed transaction into redb leaves the
//!   pending map as it was (still logged, still visible) and is retried at the next flush.
//!
//! Why a dedicated thread: an fsync blocks for hundreds of µs to milliseconds. While one is in
//! flight, new requests pile up in the queue and the next group takes them all: N concurrent
//! writers share one fsync.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::wal::Wal;
use crate::{BatchOp, StorageError};

/// Most requests folded into one group, so a flood of writers still gets acknowledged in
/// bounded slices.
const MAX_GROUP_REQUESTS: usize = 4096;

/// Most key + value bytes folded into one group (a single larger request still commits,
/// alone), bounding the size of one log record.
const MAX_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// Pending keys that trigger a bulk apply into redb.
const FLUSH_ENTRIES: usize = 16 * 1024;

/// Pending value bytes that trigger a bulk apply into redb.
const FLUSH_BYTES: usize = 16 * 1024 * 1024;

/// The longest a write waits in the pending map before its bulk apply. The apply runs on the
/// committer thread, so writers wait while it runs; every 2 ms, under 64 writers, it took so
/// much of the thread's time that durable writes reached only 0.46-0.49 of the in-memory
/// rate; every 20 ms, 0.52-0.58 (every 50 ms added 4% and took the p99 from 7 to 11 ms).
const FLUSH_AFTER: Duration = Duration::from_millis(20);

/// Log size past which the next group is followed by a checkpoint. Bounds replay at open.
const CHECKPOINT_BYTES: u64 = 32 * 1024 * 1024;

/// Writes published but not yet in redb: the newest value per key (`None` for a deletion).
/// Readers consult it before redb. Only the committer thread changes it, and it empties it
/// only after redb committed what it held (and keeps it, to go out with the next flush, if
/// that failed).
pub(crate) type PendingMap = BTreeMap<String, Option<Vec<u8>>>;

/// The pending map, shared by the committer and readers.
pub(crate) type Pending = Arc<RwLock<PendingMap>>;

/// The entries table as of redb's latest commit, opened once per commit and shared by every
/// read, instead of a read transaction and table opened per read (under 64 writers that took
/// ~5% of the server's CPU, each KV v2 write reading twice). The committer replaces it after
/// each commit into redb and before it empties the pending map, so a read that misses the map
/// takes a snapshot holding everything the map held (see the `embedded` module).
pub(crate) struct LatestSnapshot {
    current: RwLock<Arc<ReadOnlyEntries>>,
}

/// A read-only view of the entries table at one commit.
pub(crate) type ReadOnlyEntries = redb::ReadOnlyTable<&'static str, &'static [u8]>;

impl LatestSnapshot {
    fn open(db: &Database, table: EntriesTable) -> Result<Self, StorageError> {
        let current = RwLock::new(Arc::new(open_entries(db, table)?));
        Ok(Self { current })
    }

    /// The entries as of the latest commit into redb.
    pub(crate) fn get(&self) -> Arc<ReadOnlyEntries> {
        Arc::clone(&self.current.read())
    }

    /// Take the latest commit of `db`; called by the committer after each one.
    fn refresh(&self, db: &Database, table: EntriesTable) -> Result<(), StorageError> {
        let latest = Arc::new(open_entries(db, table)?);
        *self.current.write() = latest;
        Ok(())
    }
}

fn open_entries(db: &Database, table: EntriesTable) -> Result<ReadOnlyEntries, StorageError> {
    db.begin_read()
        .map_err(|e| StorageError::backend("begin read", e))?
        .open_table(table)
        .map_err(|e| StorageError::backend("open table", e))
}

/// Where the log's generation lives in redb.
const WAL_META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("wal");

/// The key of the generation in [`WAL_META`].
const GENERATION_KEY: &str = "generation";

/// Commit counters, see [`crate::EmbeddedStorage::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Groups committed on behalf of writers (logged, durably or not).
    pub commits: u64,
    /// fsyncs made for writers: of the log, and of redb at checkpoints.
    pub durable_commits: u64,
    /// Write ops (puts and deletes) those groups carried.
    pub ops: u64,
}

#[derive(Default)]
struct CommitCounters {
    commits: AtomicU64,
    durable_commits: AtomicU64,
    ops: AtomicU64,
}

/// When a writer may be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// After the log record holding the ops has been fsynced.
    Durable,
    /// After the record was written, without waiting for an fsync (see the module docs).
    Unsynced,
}

/// One writer's ops, waiting for the committer.
struct CommitRequest {
    ops: Vec<BatchOp>,
    durability: Durability,
    /// Key + value bytes, for the group size bound.
    bytes: usize,
    reply: oneshot::Sender<Result<(), StorageError>>,
}

/// What the committer thread works on.
pub(crate) struct CommitterParts {
    pub(crate) db: Arc<Database>,
    pub(crate) table: EntriesTable,
    pub(crate) wal: Wal,
    pub(crate) generation: u64,
    pub(crate) pending: Pending,
    pub(crate) snapshot: Arc<LatestSnapshot>,
}

/// Handle to the committer thread; dropping it lets the thread finish every queued request and
/// waits for it to exit.
pub(crate) struct Committer {
    queue: Option<mpsc::Sender<CommitRequest>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<CommitCounters>,
}

impl Committer {
    /// Start the committer thread over `parts`.
    pub(crate) fn start(parts: CommitterParts) -> std::io::Result<Self> {
        let (queue, requests) = mpsc::channel();
        let counters = Arc::new(CommitCounters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("coffer-storage-committer".into())
            .spawn(move || run(parts, &requests, &thread_counters))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            counters,
        })
    }

    /// Queue already-validated `ops` and wait until they are committed as `durability` asks.
    /// Empty `ops` with [`Durability::Durable`] is a sync: it returns once every earlier
    /// acknowledged write is durable.
    pub(crate) async fn submit(
        &self,
        ops: Vec<BatchOp>,
        bytes: usize,
        durability: Durability,
    ) -> Result<(), StorageError> {
        let (reply, acknowledged) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or(StorageError::Closed)?;
        queue
            .send(CommitRequest {
                ops,
                durability,
                bytes,
                reply,
            })
            .map_err(|_| StorageError::Closed)?;
        acknowledged.await.map_err(|_| StorageError::Closed)?
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            durable_commits: self.counters.durable_commits.load(Ordering::Relaxed),
            ops: self.counters.ops.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the queue is the shutdown signal: the thread drains what is already queued
        // (mpsc delivers buffered messages before reporting disconnection), then exits.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("storage committer thread panicked");
            }
        }
    }
}

pub(crate) type EntriesTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// The answer to every write after the log failed.
fn log_failure() -> StorageError {
    StorageError::backend(
        "write-ahead log",
        "an earlier append or fsync failed; writes are refused until the server restarts",
    )
}

fn reply_all(group: Vec<CommitRequest>, result: &Result<(), StorageError>) {
    for request in group {
        // A writer that stopped waiting (cancelled future) has nobody to tell.
        let _ = request.reply.send(match result {
            Ok(()) => Ok(()),
            Err(error) => Err(StorageError::backend("commit", error)),
        });
    }
}

fn run(
    mut parts: CommitterParts,
    requests: &mpsc::Receiver<CommitRequest>,
    counters: &CommitCounters,
) {
    // A request taken off the queue that would have pushed the previous group over its byte
    // bound; it opens the next group.
    let mut carried: Option<CommitRequest> = None;
    // When the oldest write in the pending map was published, and the map's value bytes.
    let mut oldest_pending: Option<Instant> = None;
    let mut pending_bytes = 0usize;
    // Set when the log failed to take or sync a record. After a failed fsync the kernel may
    // have dropped the unwritten pages, and records after it could be replayed over a hole, so
    // no write is accepted again until the process restarts (and replays what is whole).
    let mut log_failed = false;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => {
                let next = match oldest_pending {
                    // Wait for work, but not past the pending map's flush deadline.
                    Some(since) => {
                        let wait = (since + FLUSH_AFTER).saturating_duration_since(Instant::now());
                        requests.recv_timeout(wait)
                    }
                    None => requests
                        .recv()
                        .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                };
                match next {
                    Ok(request) => request,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if flush(&parts) {
                            oldest_pending = None;
                            pending_bytes = 0;
                        } else {
                            // Retry after another interval; the writes stay logged and visible.
                            oldest_pending = Some(Instant::now());
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        let mut group_bytes = first.bytes;
        let mut group = vec![first];
        while group.len() < MAX_GROUP_REQUESTS {
            // Empty or disconnected: commit what we have; a disconnection surfaces at the next
            // blocking recv, after this group is acknowledged.
            let Ok(next) = requests.try_recv() else {
                break;
            };
            if group_bytes.saturating_add(next.bytes) > MAX_GROUP_BYTES {
                carried = Some(next);
                break;
            }
            group_bytes += next.bytes;
            group.push(next);
        }
        if log_failed {
            reply_all(group, &Err(log_failure()));
            continue;
        }
        let durable = group.iter().any(|r| r.durability == Durability::Durable);
        let ops: u64 = group.iter().map(|r| r.ops.len() as u64).sum();
        if ops > 0 {
            let writes: Vec<&[BatchOp]> = group
                .iter()
                .filter(|r| !r.ops.is_empty())
                .map(|r| r.ops.as_slice())
                .collect();
            if let Err(error) = parts.wal.append(&writes) {
                tracing::error!(%error, requests = group.len(), "write-ahead log append failed; refusing writes until restart");
                log_failed = true;
                reply_all(group, &Err(error));
                continue;
            }
        }
        if durable {
            match parts.wal.sync() {
                Ok(true) => {
                    counters.durable_commits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(error) => {
                    // The record may or may not be on disk: the writers were not told it is.
                    tracing::error!(%error, requests = group.len(), "write-ahead log fsync failed; refusing writes until restart");
                    log_failed = true;
                    reply_all(group, &Err(error));
                    continue;
                }
            }
        }
        if ops > 0 {
            // The log has the ops now; they move into the pending map rather than being copied.
            let mut pending = parts.pending.write();
            for op in group.iter_mut().flat_map(|r| std::mem::take(&mut r.ops)) {
                match op {
                    BatchOp::Put { key, value } => {
                        pending_bytes += key.len() + value.len();
                        pending.insert(key, Some(value));
                    }
                    BatchOp::Delete { key } => {
                        pending_bytes += key.len();
                        pending.insert(key, None);
                    }
                }
            }
            drop(pending);
            oldest_pending.get_or_insert_with(Instant::now);
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters.ops.fetch_add(ops, Ordering::Relaxed);
            tracing::trace!(requests = group.len(), ops, "storage group committed");
        }
        reply_all(group, &Ok(()));

        if parts.wal.len() >= CHECKPOINT_BYTES {
            if checkpoint(&mut parts).is_ok() {
                counters.durable_commits.fetch_add(1, Ordering::Relaxed);
                oldest_pending = None;
                pending_bytes = 0;
            }
        } else if (oldest_pending.is_some_and(|since| since.elapsed() >= FLUSH_AFTER)
            || pending_bytes >= FLUSH_BYTES
            || parts.pending.read().len() >= FLUSH_ENTRIES)
            && flush(&parts)
        {
            oldest_pending = None;
            pending_bytes = 0;
        }
    }
    // Shutting down: everything goes into redb durably, so the next open replays nothing.
    if checkpoint(&mut parts).is_err() {
        tracing::error!("final checkpoint failed; the write-ahead log will be replayed at open");
    }
}

/// Write the pending map into redb without an fsync. Returns whether redb took it.
fn flush(parts: &CommitterParts) -> bool {
    apply_pending(parts, None).is_ok()
}

/// Write the pending map into redb in one transaction, then empty it. With `generation`, the
/// transaction is durable and records that generation (a checkpoint). On failure the map stays
/// (still logged, still visible) and goes out with the next apply.
fn apply_pending(parts: &CommitterParts, generation: Option<u64>) -> Result<(), StorageError> {
    // Readers keep reading the map meanwhile; only this thread changes it.
    let result = {
        let pending = parts.pending.read();
        if pending.is_empty() && generation.is_none() {
            return Ok(());
        }
        write_to_redb(&parts.db, parts.table, &pending, generation)
            .and_then(|()| parts.snapshot.refresh(&parts.db, parts.table))
    };
    match &result {
        Ok(()) => parts.pending.write().clear(),
        // Also when redb took the writes but the new snapshot could not be opened: readers
        // still find them in the map, and the next apply writes them again (idempotent).
        Err(error) => tracing::error!(%error, "applying pending writes to the database failed"),
    }
    result
}

fn write_to_redb(
    db: &Database,
    table: EntriesTable,
    writes: &PendingMap,
    generation: Option<u64>,
) -> Result<(), StorageError> {
    let mut txn = db
        .begin_write()
        .map_err(|e| StorageError::backend("begin write", e))?;
    txn.set_durability(if generation.is_some() {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    })
    .map_err(|e| StorageError::backend("set durability", e))?;
    {
        let mut entries = txn
            .open_table(table)
            .map_err(|e| StorageError::backend("open table", e))?;
        for (key, value) in writes {
            match value {
                Some(value) => entries.insert(key.as_str(), value.as_slice()).map(drop),
                None => entries.remove(key.as_str()).map(drop),
            }
            .map_err(|e| StorageError::backend("apply write", e))?;
        }
    }
    if let Some(generation) = generation {
        let mut meta = txn
            .open_table(WAL_META)
            .map_err(|e| StorageError::backend("open table", e))?;
        meta.insert(GENERATION_KEY, generation)
            .map_err(|e| StorageError::backend("apply write", e))?;
    }
    txn.commit().map_err(|e| StorageError::backend("commit", e))
}

/// Make redb hold everything durably under the next generation, then start the log over.
fn checkpoint(parts: &mut CommitterParts) -> Result<(), StorageError> {
    let next = parts.generation + 1;
    apply_pending(parts, Some(next))?;
    parts.generation = next;
    parts.wal.restart(next);
    Ok(())
}

/// Open-time recovery: the generation redb holds (1 for a new database, whose log is emptied),
/// the log replayed into redb and checkpointed when it held any record. Returns the parts the
/// committer starts from.
pub(crate) fn recover(
    db: Arc<Database>,
    table: EntriesTable,
    wal_path: &std::path::Path,
) -> Result<CommitterParts, StorageError> {
    let txn = db
        .begin_write()
        .map_err(|e| StorageError::backend("begin write", e))?;
    let stored = {
        txn.open_table(table)
            .map_err(|e| StorageError::backend("create table", e))?;
        let mut meta = txn
            .open_table(WAL_META)
            .map_err(|e| StorageError::backend("create table", e))?;
        let stored = meta
            .get(GENERATION_KEY)
            .map_err(|e| StorageError::backend("read", e))?
            .map(|g| g.value());
        if stored.is_none() {
            meta.insert(GENERATION_KEY, 1)
                .map_err(|e| StorageError::backend("apply write", e))?;
        }
        stored
    };
    txn.commit()
        .map_err(|e| StorageError::backend("commit", e))?;
    if stored.is_none() {
        // A database without a generation has never had a log: whatever file is there
        // belongs to something else and must not be replayed into it.
        std::fs::File::create(wal_path)?;
    }
    let mut generation = stored.unwrap_or(1);
    let (mut wal, records) = Wal::open(wal_path, generation)?;
    if !records.is_empty() {
        let mut replayed = PendingMap::new();
        let mut ops = 0usize;
        for op in records.into_iter().flatten().flatten() {
            ops += 1;
            match op {
                BatchOp::Put { key, value } => replayed.insert(key, Some(value)),
                BatchOp::Delete { key } => replayed.insert(key, None),
            };
        }
        generation += 1;
        write_to_redb(&db, table, &replayed, Some(generation))?;
        wal.restart(generation);
        tracing::info!(ops, "write-ahead log replayed");
    }
    // Opened after the replay, so the first reads see it.
    let snapshot = Arc::new(LatestSnapshot::open(&db, table)?);
    Ok(CommitterParts {
        db,
        table,
        wal,
        generation,
        pending: Pending::default(),
        snapshot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: EntriesTable = TableDefinition::new("entries");

    fn put(key: &str) -> Vec<BatchOp> {
        vec![BatchOp::Put {
            key: key.into(),
            value: b"v".to_vec(),
        }]
    }

    /// Writes leave the pending map for redb only once the snapshot every read shares holds
    /// them: a read that misses the map must find them there.
    #[tokio::test]
    async fn writes_leaving_the_pending_map_are_in_the_shared_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("db")).unwrap());
        let parts = recover(Arc::clone(&db), TABLE, &dir.path().join("log")).unwrap();
        let (pending, snapshot) = (Arc::clone(&parts.pending), Arc::clone(&parts.snapshot));
        let committer = Committer::start(parts).unwrap();
        let before = snapshot.get();
        // Enough keys that the committer applies the map to redb right after this group.
        let ops: Vec<BatchOp> = (0..FLUSH_ENTRIES)
            .flat_map(|n| put(&format!("k{n:05}")))
            .collect();
        committer.submit(ops, 0, Durability::Durable).await.unwrap();
        // The committer takes the next request only after that apply.
        committer
            .submit(Vec::new(), 0, Durability::Durable)
            .await
            .unwrap();
        assert!(pending.read().is_empty(), "the map was not applied");
        let value = |table: &ReadOnlyEntries, key: &str| {
            table.get(key).unwrap().map(|v| v.value().to_vec())
        };
        assert_eq!(value(&snapshot.get(), "k00000"), Some(b"v".to_vec()));
        assert_eq!(value(&snapshot.get(), "k16383"), Some(b"v".to_vec()));
        assert_eq!(value(&before, "k00000"), None, "a snapshot is one commit");
        drop(committer);
    }

    #[tokio::test]
    async fn after_a_failed_log_write_every_write_is_refused_and_none_is_visible() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("db")).unwrap());
        let log = dir.path().join("log");
        let mut parts = recover(Arc::clone(&db), TABLE, &log).unwrap();
        // A read-only handle: every append fails as a full or failing disk would.
        parts
            .wal
            .replace_file_for_test(std::fs::File::open(&log).unwrap());
        let pending = Arc::clone(&parts.pending);
        let committer = Committer::start(parts).unwrap();
        assert!(committer
            .submit(put("a"), 2, Durability::Durable)
            .await
            .is_err());
        let refused = committer
            .submit(put("b"), 2, Durability::Durable)
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("refused until the server restarts"),
            "{refused}"
        );
        assert!(committer
            .submit(Vec::new(), 0, Durability::Durable)
            .await
            .is_err());
        assert!(pending.read().get("a").is_none() && pending.read().get("b").is_none());
        assert_eq!(committer.stats().commits, 0);
        drop(committer);

        // A restart takes writes again, and neither refused write is there.
        let parts = recover(Arc::clone(&db), TABLE, &log).unwrap();
        let pending = Arc::clone(&parts.pending);
        let committer = Committer::start(parts).unwrap();
        committer
            .submit(put("c"), 2, Durability::Durable)
            .await
            .unwrap();
        assert!(pending.read().get("c").is_some());
        drop(committer);
        let read = db.begin_read().unwrap();
        let table = read.open_table(TABLE).unwrap();
        assert!(table.get("a").unwrap().is_none());
        assert!(table.get("b").unwrap().is_none());
        assert!(
            table.get("c").unwrap().is_some(),
            "the shutdown checkpoint applied c"
        );
    }
}
