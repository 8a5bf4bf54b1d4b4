//! Per-path write serialisation. KV v2 writes are read-modify-write cycles on a key's metadata
//! (next version number, check-and-set, pruning); two concurrent writers to one path must not
//! both claim the same version. Reads take no lock: each write lands as one atomic batch, so a
//! reader sees either the old or the new metadata, never a half-written one.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use tokio::sync::{Mutex, MutexGuard};

/// How many independent locks paths are spread over; collisions only cost a little waiting.
const STRIPES: usize = 64;

/// A fixed set of async mutexes, one chosen per path by hash.
pub(crate) struct PathLocks {
    stripes: Vec<Mutex<()>>,
}

impl PathLocks {
    pub(crate) fn new() -> PathLocks {
        PathLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Hold this while reading and rewriting `path`'s metadata.
    pub(crate) async fn lock(&self, path: &str) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        path.hash(&mut hasher);
        let index = (hasher.finish() % STRIPES as u64) as usize;
        self.stripes[index].lock().await
    }
}
