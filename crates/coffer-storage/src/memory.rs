//! In-memory storage: a sorted map under a read/write lock.
//!
//! Nothing survives the process; used by tests and dev mode. A batch is applied under one write
//! lock after validation, so readers see all of it or none of it.

use std::collections::BTreeMap;
use std::convert::Infallible;

use parking_lot::RwLock;

use crate::keys::{list_children, validate_key, validate_ops};
use crate::{BatchOp, Storage, StorageError};

/// Volatile [`Storage`] backed by a `BTreeMap`.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    entries: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry as it is now (a fuzzer's or a test's starting point).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.entries.read().clone()
    }

    /// Put every entry back as it was in `snapshot`.
    pub fn restore(&self, snapshot: &BTreeMap<String, Vec<u8>>) {
        *self.entries.write() = snapshot.clone();
    }
}

#[async_trait::async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.entries.read().get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.batch(vec![BatchOp::Put {
            key: key.to_owned(),
            value,
        }])
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        self.entries.write().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let entries = self.entries.read();
        let children = list_children::<Infallible>(prefix, |from| {
            Ok(entries
                .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
                .next()
                .map(|(key, _)| key.clone()))
        });
        Ok(children.unwrap_or_else(|never| match never {}))
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let entries = self.entries.read();
        Ok(entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let entries = self.entries.read();
        let start = match after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(a),
            _ => std::ops::Bound::Included(prefix),
        };
        Ok(entries
            .range::<str, _>((start, std::ops::Bound::Unbounded))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn batch(&self, ops: Vec<BatchOp>) -> Result<(), StorageError> {
        validate_ops(&ops)?;
        let mut entries = self.entries.write();
        for op in ops {
            match op {
                BatchOp::Put { key, value } => {
                    entries.insert(key, value);
                }
                BatchOp::Delete { key } => {
                    entries.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}
