//! What a component remembers of what it read from storage, for the component that is the only
//! writer of that storage (an engine of its view, the identity store of its own).
//!
//! The rule that keeps it correct: every write that could change a remembered value calls
//! [`Remembered::forget`] after the write is stored. A reader that missed takes the ticket
//! before it reads storage and remembers what it read only if nothing was forgotten since
//! ([`Remembered::get_or_load`] does both), so a value read before a write can never be
//! remembered after that write's `forget`.

/// The hash map of the in-memory caches a request consults (tokens and their callers, compiled
/// ACLs, KV metadata, remembered values). It hashes with foldhash, seeded at random per
/// process, instead of std's SipHash: a KV read looked up five such maps, some keyed by
/// 64-character token hashes, and SipHash was about 3% of its instructions. The seed keeps
/// keys an attacker picks (secret paths) from being aimed at one bucket.
pub type CacheMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use parking_lot::RwLock;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

/// Values by key, bounded: past `limit` entries the map is emptied wholesale (whatever is
/// idle lives in storage anyway).
pub struct Remembered<K, V> {
    entries: RwLock<CacheMap<K, V>>,
    /// Moves on with every `forget`.
    generation: AtomicU64,
    limit: usize,
}

impl<K: Eq + Hash, V: Clone> Remembered<K, V> {
    /// Nothing remembered yet; at most `limit` entries at a time.
    pub fn new(limit: usize) -> Self {
        Remembered {
            entries: RwLock::new(CacheMap::default()),
            generation: AtomicU64::new(0),
            limit: limit.max(1),
        }
    }

    /// The value remembered for `key`, or else `load()` (a read of storage); a value it finds
    /// is remembered unless a `forget` happened while it ran. `load` answers `None` when
    /// storage has nothing, which is not remembered.
    pub async fn get_or_load<E, F, Fut>(&self, key: K, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let ticket = self.generation.load(Ordering::SeqCst);
        if let Some(value) = self.entries.read().get(&key) {
            return Ok(Some(value.clone()));
        }
        let loaded = load().await?;
        if let Some(value) = &loaded {
            let mut entries = self.entries.write();
            if self.generation.load(Ordering::SeqCst) == ticket {
                if entries.len() >= self.limit {
                    entries.clear();
                }
                entries.insert(key, value.clone());
            }
        }
        Ok(loaded)
    }

    /// Forget everything: call after every write that could change a remembered value, and
    /// whenever storage may have changed underneath (init, cleanup).
    pub fn forget(&self) {
        let mut entries = self.entries.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Remembered;
    use std::convert::Infallible;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_value_read_before_a_forget_is_not_remembered_after_it() {
        block_on(async {
            let cache: Remembered<&str, u32> = Remembered::new(10);
            // The load races a write: the write's forget lands while the old value is read.
            let got = cache
                .get_or_load("k", || async {
                    cache.forget();
                    Ok::<_, Infallible>(Some(1))
                })
                .await
                .unwrap();
            assert_eq!(got, Some(1));
            let reloaded = cache
                .get_or_load("k", || async { Ok::<_, Infallible>(Some(2)) })
                .await
                .unwrap();
            assert_eq!(reloaded, Some(2), "the stale value was remembered");
            // Without a race the value is remembered: the next load is not called.
            let kept = cache
                .get_or_load("k", || async { Ok::<_, Infallible>(Some(3)) })
                .await
                .unwrap();
            assert_eq!(kept, Some(2));
        });
    }

    #[test]
    fn absent_values_are_not_remembered_and_forget_and_the_limit_empty_it() {
        block_on(async {
            let cache: Remembered<u32, u32> = Remembered::new(2);
            let load = |v: Option<u32>| move || async move { Ok::<_, Infallible>(v) };
            assert_eq!(cache.get_or_load(1, load(None)).await.unwrap(), None);
            assert_eq!(cache.get_or_load(1, load(Some(5))).await.unwrap(), Some(5));
            cache.forget();
            assert_eq!(cache.get_or_load(1, load(Some(6))).await.unwrap(), Some(6));
            cache.get_or_load(2, load(Some(7))).await.unwrap();
            // A third key empties the full map before it goes in.
            cache.get_or_load(3, load(Some(8))).await.unwrap();
            assert_eq!(cache.get_or_load(1, load(Some(9))).await.unwrap(), Some(9));
        });
    }
}
