//! Per-path write serialisation, and the cache of decoded key metadata it keeps coherent.
//!
//! KV v2 writes are read-modify-write cycles on a key's metadata (next version number,
//! check-and-set, pruning); two concurrent writers to one path must not both claim the same
//! version. Reads take no lock on a cache hit: each write lands as one atomic batch.
//!
//! Cache invariant: an entry is only ever inserted while holding the path's lock (a read that
//! misses loads under the lock), and every writer holds that lock while it writes and drops
//! the entry when it releases it ([`PathGuard`]'s `Drop`). So no reader can put back a value
//! older than the last completed write, and while a path's lock is held its cached entry, if
//! any, is what storage holds: a writer starts from it ([`PathGuard::metadata`]) instead of
//! reading storage again right after the existence check read it. A path without metadata is
//! cached too (as `None`): a first write's existence check and the write itself would
//! otherwise both look for it in storage. Only metadata is cached, never secret data, and the
//! engine assumes it is the only writer of its storage (one active node).

use crate::store::KeyMetadata;
use coffer_sdk::cache::CacheMap;
use coffer_sdk::locks::KeyGuard;
use coffer_sdk::locks::KeyLocks;
use coffer_sdk::{Result, View};
use parking_lot::RwLock;
use std::sync::Arc;

/// Cached metadata entries beyond this are dropped wholesale (idle keys live in storage).
const CACHE_LIMIT: usize = 100_000;

/// Per-path locks (striped, from the SDK) and the metadata cache.
pub(crate) struct PathLocks {
    locks: KeyLocks,
    /// Decoded metadata by path; `None` for a path that has none.
    cache: RwLock<CacheMap<String, Option<Arc<KeyMetadata>>>>,
}

/// Held while a path's metadata is read and rewritten; drops the path's cache entry on release.
pub(crate) struct PathGuard<'a> {
    _guard: KeyGuard<'a>,
    locks: &'a PathLocks,
    path: String,
}

impl PathGuard<'_> {
    /// The path's metadata, to change under this guard: the cached entry when there is one
    /// (current while the lock is held, see the module documentation), else read from storage.
    pub(crate) async fn metadata(&self, view: &dyn View) -> Result<Option<KeyMetadata>> {
        let cached = self.locks.cache.read().get(&self.path).cloned();
        match cached {
            Some(found) => Ok(found.map(|meta| KeyMetadata::clone(&meta))),
            None => KeyMetadata::load(view, &self.path).await,
        }
    }
}

impl Drop for PathGuard<'_> {
    fn drop(&mut self) {
        self.locks.cache.write().remove(&self.path);
    }
}

impl PathLocks {
    pub(crate) fn new() -> PathLocks {
        PathLocks {
            locks: KeyLocks::new(),
            cache: RwLock::new(CacheMap::default()),
        }
    }

    /// Drop every cached metadata entry (on init and cleanup: storage may change meanwhile).
    pub(crate) fn forget_metadata(&self) {
        self.cache.write().clear();
    }

    /// Hold this while reading and rewriting `path`'s metadata.
    pub(crate) async fn lock(&self, path: &str) -> PathGuard<'_> {
        PathGuard {
            _guard: self.locks.lock(path).await,
            locks: self,
            path: path.to_string(),
        }
    }

    /// The metadata of `path` for a read: from the cache, or loaded (under the path's lock)
    /// and cached, also when there is none.
    pub(crate) async fn metadata(
        &self,
        view: &dyn View,
        path: &str,
    ) -> Result<Option<Arc<KeyMetadata>>> {
        if let Some(found) = self.cache.read().get(path) {
            return Ok(found.clone());
        }
        let _guard = self.locks.lock(path).await;
        let found = KeyMetadata::load(view, path).await?.map(Arc::new);
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(path.to_string(), found.clone());
        Ok(found)
    }
}
