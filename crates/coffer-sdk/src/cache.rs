//! What a component remembers of what it read from storage, for the component that is the only
//! writer of that storage (an engine of its view, the identity store of its own).
//!
//! The rule that keeps it correct: every write that could change a remembered value calls
//! [`Remembered::forget`] (everything), [`Remembered::forget_key`] (one key) or
//! [`Remembered::replace`] (one key, with the value just stored) after the write is stored.
//! Each of them moves the generation on while holding the map's lock. A reader that missed
//! takes the generation as its ticket before it reads storage and remembers what it read only
//! if the generation has not moved since ([`Remembered::get_or_load`] does both), so a value
//! read before a write can never be remembered after that write. Loads never move the
//! generation: whoever took something from the cache at one generation may keep relying on it
//! while the generation stands (the token store's per-connection memos do).

/// The hash map of the in-memory caches a request consults (tokens and their callers, compiled
/// ACLs, KV metadata, remembered values). It hashes with foldhash, seeded at random per
/// process, instead of std's SipHash: a KV read looked up five such maps, some keyed by
/// 64-character token hashes, and SipHash was about 3% of its instructions. The seed keeps
/// keys an attacker picks (secret paths) from being aimed at one bucket.
pub type CacheMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use parking_lot::RwLock;
use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

/// Values by key, bounded: past `limit` entries the map is emptied wholesale (whatever is
/// idle lives in storage anyway).
pub struct Remembered<K, V> {
    entries: RwLock<CacheMap<K, V>>,
    /// Moves on with every change: `forget`, `forget_key`, `replace`.
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
    /// is remembered unless a change (see the module documentation) happened while it ran.
    /// `load` answers `None` when storage has nothing, which is not remembered.
    pub async fn get_or_load<Q, E, F, Fut>(&self, key: &Q, load: F) -> Result<Option<V>, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let ticket = self.generation.load(Ordering::SeqCst);
        if let Some(value) = self.entries.read().get(key) {
            return Ok(Some(value.clone()));
        }
        let loaded = load().await?;
        if let Some(value) = &loaded {
            let mut entries = self.entries.write();
            if self.generation.load(Ordering::SeqCst) == ticket {
                self.insert(&mut entries, key.to_owned(), value.clone());
            }
        }
        Ok(loaded)
    }

    /// The value remembered for `key`, without reading storage.
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.read().get(key).cloned()
    }

    /// Remember `value` for `key`: call after a write stored it. A change, like `forget_key`.
    pub fn replace(&self, key: K, value: V) {
        let mut entries = self.entries.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.insert(&mut entries, key, value);
    }

    /// Forget `key` alone: call after a write changed or removed its value.
    pub fn forget_key<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(key);
    }

    /// Forget everything: call after every write that could change a remembered value, and
    /// whenever storage may have changed underneath (init, cleanup).
    pub fn forget(&self) {
        let mut entries = self.entries.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    /// Moves on with every change, never with a load: what was taken from the cache at one
    /// generation is what storage holds while the generation stands (for the writes that
    /// follow the rule in the module documentation).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Insert, emptying the map first when it is full (a bound on memory, not an eviction
    /// policy: whatever is idle lives in storage anyway). Emptying changes no value, so it
    /// does not move the generation.
    fn insert(&self, entries: &mut CacheMap<K, V>, key: K, value: V) {
        if entries.len() >= self.limit {
            entries.clear();
        }
        entries.insert(key, value);
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
                .get_or_load(&"k", || async {
                    cache.forget();
                    Ok::<_, Infallible>(Some(1))
                })
                .await
                .unwrap();
            assert_eq!(got, Some(1));
            let reloaded = cache
                .get_or_load(&"k", || async { Ok::<_, Infallible>(Some(2)) })
                .await
                .unwrap();
            assert_eq!(reloaded, Some(2), "the stale value was remembered");
            // Without a race the value is remembered: the next load is not called.
            let kept = cache
                .get_or_load(&"k", || async { Ok::<_, Infallible>(Some(3)) })
                .await
                .unwrap();
            assert_eq!(kept, Some(2));
        });
    }

    /// `replace` and `forget_key` are changes like `forget`: a load that read storage before
    /// one is not remembered, and the generation moves; loads and a full map emptying do not
    /// move it.
    #[test]
    fn replacing_or_forgetting_one_key_drops_a_racing_load_and_moves_the_generation() {
        block_on(async {
            let cache: Remembered<String, u32> = Remembered::new(2);
            let start = cache.generation();
            type Change = fn(&Remembered<String, u32>);
            let changes: [(&str, Change); 2] = [
                ("replace", |cache| cache.replace("b".to_string(), 20)),
                ("forget_key", |cache| cache.forget_key("b")),
            ];
            for (moves, (name, change)) in (1..).zip(changes) {
                let load = || async {
                    change(&cache);
                    Ok::<_, Infallible>(Some(1))
                };
                assert_eq!(cache.get_or_load("a", load).await.unwrap(), Some(1));
                assert_eq!(cache.peek("a"), None, "a load racing {name} was remembered");
                assert_eq!(cache.generation(), start + moves, "{name}");
                let b = (name == "replace").then_some(20);
                assert_eq!(cache.peek("b"), b, "{name}");
            }

            let settled = cache.generation();
            let load = |v: u32| move || async move { Ok::<_, Infallible>(Some(v)) };
            cache.get_or_load("a", load(3)).await.unwrap();
            cache.get_or_load("b", load(4)).await.unwrap();
            assert_eq!((cache.peek("a"), cache.peek("b")), (Some(3), Some(4)));
            cache.get_or_load("c", load(5)).await.unwrap(); // the full map empties first
            assert_eq!((cache.peek("a"), cache.peek("c")), (None, Some(5)));
            assert_eq!(
                cache.generation(),
                settled,
                "a load or emptying moved the generation"
            );
            cache.forget_key("c");
            assert_eq!(cache.peek("c"), None);
            assert_eq!(cache.generation(), settled + 1);
        });
    }

    #[test]
    fn absent_values_are_not_remembered_and_forget_and_the_limit_empty_it() {
        block_on(async {
            let cache: Remembered<u32, u32> = Remembered::new(2);
            let load = |v: Option<u32>| move || async move { Ok::<_, Infallible>(v) };
            assert_eq!(cache.get_or_load(&1, load(None)).await.unwrap(), None);
            assert_eq!(cache.get_or_load(&1, load(Some(5))).await.unwrap(), Some(5));
            cache.forget();
            assert_eq!(cache.get_or_load(&1, load(Some(6))).await.unwrap(), Some(6));
            cache.get_or_load(&2, load(Some(7))).await.unwrap();
            // A third key empties the full map before it goes in.
            cache.get_or_load(&3, load(Some(8))).await.unwrap();
            assert_eq!(cache.get_or_load(&1, load(Some(9))).await.unwrap(), Some(9));
        });
    }
}
