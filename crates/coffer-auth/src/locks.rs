//! Per-key serialisation for read-modify-write cycles (a secret ID's remaining uses, a user's
//! failed-login counter): two concurrent logins must not both read "1 use left".

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use tokio::sync::{Mutex, MutexGuard};

/// How many independent locks keys are spread over; collisions only cost a little waiting.
const STRIPES: usize = 64;

/// A fixed set of async mutexes, one chosen per key by hash.
pub(crate) struct KeyLocks {
    stripes: Vec<Mutex<()>>,
}

impl KeyLocks {
    pub(crate) fn new() -> KeyLocks {
        KeyLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Hold this while reading and rewriting the state kept under `key`.
    pub(crate) async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = (hasher.finish() % STRIPES as u64) as usize;
        self.stripes[index].lock().await
    }
}
