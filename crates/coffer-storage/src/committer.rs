//! Group commit: one thread owns every write transaction.
//!
//! Invariants this module keeps:
//! - **Acknowledged means durable.** A writer's reply is sent only after the transaction holding
//!   its ops has committed with `Durability::Immediate`, i.e. after redb has fsynced it
//!   (unless the writer asked for an unsynced write, below). A
//!   crash before that point may lose the write, but the writer was never told it succeeded.
//! - **A request is never torn.** All ops of one request go into the same transaction, and a
//!   redb transaction is atomic across crashes, so a batch is on disk entirely or not at all.
//! - **Arrival order.** Requests are applied in the order they were queued, so of two
//!   acknowledged concurrent writes to one key, the one queued later wins.
//! - **Unsynced writes become durable with the next durable commit.** A request queued with
//!   [`Durability::Unsynced`] is acknowledged once its group committed with redb's
//!   `Durability::None`: applied atomically and visible to every later read, but a crash may
//!   undo it (whole) until a durable commit follows, which makes every earlier commit durable
//!   too. Groups with any durable request commit durably; a sync request (no ops) commits an
//!   empty durable transaction when unsynced commits are pending, and nothing otherwise.
//! - **One bad request does not sink its group.** Requests are validated before they are
//!   queued; if one still fails while being applied, the transaction is rolled back, that
//!   request alone gets the error, and the rest are retried in a fresh transaction.
//!
//! Why a dedicated thread: a durable commit blocks for a whole fsync (hundreds of µs to
//! milliseconds). Doing it on the async executor would stall unrelated requests, and letting
//! each writer commit for itself would serialise them behind redb's single-writer lock, one
//! fsync each. Here, while one fsync is in flight, new requests pile up in the queue and the
//! next transaction takes them all: N concurrent writers share one fsync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use redb::{Database, TableDefinition};
use tokio::sync::oneshot;

use crate::{BatchOp, StorageError};

/// Most requests folded into one transaction, so a flood of writers still gets acknowledged
/// in bounded slices.
const MAX_GROUP_REQUESTS: usize = 4096;

/// Most key + value bytes folded into one transaction (a single larger request still commits,
/// alone), bounding the memory a transaction dirties before its fsync.
const MAX_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// Commit counters, see [`crate::EmbeddedStorage::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Transactions committed on behalf of writers (durable or not).
    pub commits: u64,
    /// Of those, the ones committed durably (with an fsync).
    pub durable_commits: u64,
    /// Write ops (puts and deletes) those transactions applied.
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
    /// After the transaction holding the ops committed with an fsync.
    Durable,
    /// After the transaction committed without one (see the module documentation).
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

/// Handle to the committer thread; dropping it lets the thread finish every queued request and
/// waits for it to exit.
pub(crate) struct Committer {
    queue: Option<mpsc::Sender<CommitRequest>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<CommitCounters>,
}

impl Committer {
    /// Start the committer thread writing into `table` of `db`.
    pub(crate) fn start(
        db: Arc<Database>,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
    ) -> std::io::Result<Self> {
        let (queue, requests) = mpsc::channel();
        let counters = Arc::new(CommitCounters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("coffer-storage-committer".into())
            .spawn(move || run(&db, table, &requests, &thread_counters))?;
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

type EntriesTable = TableDefinition<'static, &'static str, &'static [u8]>;

fn run(
    db: &Database,
    table: EntriesTable,
    requests: &mpsc::Receiver<CommitRequest>,
    counters: &CommitCounters,
) {
    // A request taken off the queue that would have pushed the previous group over its byte
    // bound; it opens the next group.
    let mut carried: Option<CommitRequest> = None;
    // Whether an unsynced commit happened since the last durable one.
    let mut unsynced_pending = false;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => match requests.recv() {
                Ok(request) => request,
                Err(mpsc::RecvError) => return,
            },
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
        let durable = group.iter().any(|r| r.durability == Durability::Durable);
        if durable && !unsynced_pending && group.iter().all(|r| r.ops.is_empty()) {
            // Only syncs, and everything acknowledged is already durable.
            for request in group {
                let _ = request.reply.send(Ok(()));
            }
            continue;
        }
        let durability = if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        if commit_group(db, table, group, durability, counters) {
            unsynced_pending = !durable;
        }
    }
}

/// Why a group's transaction did not commit.
enum GroupFailure {
    /// One request could not be applied; the others may still commit without it.
    Request { index: usize, error: StorageError },
    /// The transaction itself failed; every request in it fails.
    Transaction {
        operation: &'static str,
        detail: String,
    },
}

/// Commit `group` (retrying without a request that cannot be applied); returns whether a
/// transaction committed.
fn commit_group(
    db: &Database,
    table: EntriesTable,
    mut group: Vec<CommitRequest>,
    durability: redb::Durability,
    counters: &CommitCounters,
) -> bool {
    // Each retry removes one request, so this ends after at most `group.len()` attempts.
    while !group.is_empty() {
        match apply_and_commit(db, table, &group, durability) {
            Ok(ops) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                if matches!(durability, redb::Durability::Immediate) {
                    counters.durable_commits.fetch_add(1, Ordering::Relaxed);
                }
                counters.ops.fetch_add(ops, Ordering::Relaxed);
                tracing::trace!(requests = group.len(), ops, "storage group committed");
                for request in group {
                    // A writer that stopped waiting (cancelled future) still had its write
                    // applied; there is nobody to tell.
                    let _ = request.reply.send(Ok(()));
                }
                return true;
            }
            Err(GroupFailure::Request { index, error }) => {
                tracing::warn!(%error, "storage write rejected; committing the rest of its group");
                let rejected = group.remove(index);
                let _ = rejected.reply.send(Err(error));
            }
            Err(GroupFailure::Transaction { operation, detail }) => {
                tracing::error!(operation, %detail, requests = group.len(), "storage commit failed");
                for request in group {
                    let _ = request
                        .reply
                        .send(Err(StorageError::backend(operation, &detail)));
                }
                return false;
            }
        }
    }
    false
}

/// Apply every request of `group` in one write transaction and commit it durably; returns the
/// number of ops applied. Dropping the transaction on an error path rolls it back.
fn apply_and_commit(
    db: &Database,
    table: EntriesTable,
    group: &[CommitRequest],
    durability: redb::Durability,
) -> Result<u64, GroupFailure> {
    let mut txn = db.begin_write().map_err(failed("begin write"))?;
    txn.set_durability(durability)
        .map_err(failed("set durability"))?;
    let mut ops = 0u64;
    {
        let mut entries = txn.open_table(table).map_err(failed("open table"))?;
        for (index, request) in group.iter().enumerate() {
            for op in &request.ops {
                let applied = match op {
                    BatchOp::Put { key, value } => {
                        entries.insert(key.as_str(), value.as_slice()).map(drop)
                    }
                    BatchOp::Delete { key } => entries.remove(key.as_str()).map(drop),
                };
                match applied {
                    Ok(()) => ops += 1,
                    // Specific to this request's data; the rest of the group is fine.
                    Err(error @ redb::StorageError::ValueTooLarge(_)) => {
                        return Err(GroupFailure::Request {
                            index,
                            error: StorageError::backend("apply write", error),
                        });
                    }
                    Err(error) => return Err(failed("apply write")(error)),
                }
            }
        }
    }
    txn.commit().map_err(failed("commit"))?;
    Ok(ops)
}

/// Map an engine error to a failure of the whole transaction.
fn failed<E: std::fmt::Display>(operation: &'static str) -> impl FnOnce(E) -> GroupFailure {
    move |error| GroupFailure::Transaction {
        operation,
        detail: error.to_string(),
    }
}
