//! An engine's storage: a view onto its own prefix of the encrypted barrier. Keys are relative
//! to the mount; an engine cannot name another mount's keys, by construction.

use crate::{Error, Result};
use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;

/// One step of an atomic batch.
#[derive(Debug, Clone)]
pub enum ViewOp {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// Key/value storage scoped to one mount. Values are plaintext here; the implementation below
/// encrypts them.
#[async_trait]
pub trait View: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Immediate children of `prefix`, sub-folders once with a trailing `/`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Apply every op or none.
    async fn batch(&self, ops: Vec<ViewOp>) -> Result<()>;
}

/// Read and decode a JSON value.
pub async fn get_json<T: DeserializeOwned>(view: &dyn View, key: &str) -> Result<Option<T>> {
    match view.get(key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Internal(format!("corrupt entry at {key:?}: {e}"))),
    }
}

/// Encode to JSON bytes (for batches).
pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encode: {e}")))
}

/// Encode and write a JSON value.
pub async fn put_json<T: Serialize + Sync>(view: &dyn View, key: &str, value: &T) -> Result<()> {
    view.put(key, to_json(value)?).await
}

/// Vault LIST semantics over a sorted key set: children of `prefix`.
pub fn list_children<'a>(keys: impl Iterator<Item = &'a str>, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// An in-memory view, for engine unit tests and throw-away mounts.
#[derive(Debug, Default)]
pub struct MemoryView {
    entries: parking_lot::RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every key, for assertions.
    pub fn keys(&self) -> Vec<String> {
        self.entries.read().keys().cloned().collect()
    }
}

#[async_trait]
impl View for MemoryView {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.entries.read().get(key).cloned())
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.entries.write().insert(key.to_string(), value);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.entries.write().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let entries = self.entries.read();
        let keys = entries
            .range(prefix.to_string()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(list_children(keys, prefix))
    }
    async fn batch(&self, ops: Vec<ViewOp>) -> Result<()> {
        let mut entries = self.entries.write();
        for op in ops {
            match op {
                ViewOp::Put { key, value } => {
                    entries.insert(key, value);
                }
                ViewOp::Delete { key } => {
                    entries.remove(&key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn list_shows_children_and_folders_once() {
        let view = MemoryView::new();
        for k in ["a", "b/c", "b/d/e", "c/", "bb"] {
            view.put(k, vec![1]).await.unwrap();
        }
        assert_eq!(view.list("").await.unwrap(), vec!["a", "b/", "bb", "c/"]);
        assert_eq!(view.list("b/").await.unwrap(), vec!["c", "d/"]);
    }
}
