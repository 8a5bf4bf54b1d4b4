//! Drives the engine the way the request pipeline does: route the mount-relative path, run the
//! existence check to turn an update into a create, pick the handler, call it with a context
//! over a real in-memory view and a manual clock.

#![allow(dead_code)] // each test binary uses a different part of the harness

use coffer_sdk::clock::ManualClock;
use coffer_sdk::view::{MemoryView, View, ViewOp};
use coffer_sdk::{Backend, Ctx, MountInfo, Operation, Request, Response, Result};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The real in-memory view, counting the storage calls made through it so tests can pin the
/// number of round trips (reads are the hot path) and that writes are single batches.
#[derive(Default)]
pub struct CountingView {
    inner: MemoryView,
    pub gets: AtomicUsize,
    pub single_writes: AtomicUsize,
    pub batches: AtomicUsize,
}

impl CountingView {
    pub fn keys(&self) -> Vec<String> {
        self.inner.keys()
    }

    /// Zero the counters.
    pub fn reset(&self) {
        for c in [&self.gets, &self.single_writes, &self.batches] {
            c.store(0, Ordering::SeqCst);
        }
    }

    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.gets.load(Ordering::SeqCst),
            self.single_writes.load(Ordering::SeqCst),
            self.batches.load(Ordering::SeqCst),
        )
    }
}

#[async_trait::async_trait]
impl View for CountingView {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.single_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.single_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn batch(&self, ops: Vec<ViewOp>) -> Result<()> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.inner.batch(ops).await
    }
}

/// One mounted KV engine with its storage and clock.
pub struct Mount {
    pub backend: Backend,
    pub view: Arc<CountingView>,
    pub clock: ManualClock,
    pub info: MountInfo,
}

impl Mount {
    /// A `kv` mount with `version` = `version` (None: option absent).
    pub fn new(version: Option<&str>) -> Mount {
        let mut info = MountInfo {
            path: "secret/".into(),
            kind: "kv".into(),
            uuid: "test-mount".into(),
            ..MountInfo::default()
        };
        if let Some(v) = version {
            info.options.insert("version".into(), v.into());
        }
        let backend = coffer_kv::backend(&info).expect("backend");
        Mount {
            backend,
            view: Arc::new(CountingView::default()),
            clock: ManualClock::new(),
            info,
        }
    }

    pub fn v1() -> Mount {
        Mount::new(None)
    }

    pub fn v2() -> Mount {
        Mount::new(Some("2"))
    }

    /// Run one request through the SDK's dispatch (route, create/update, handler).
    pub async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response> {
        let mut request = Request::new(op, path).with_data(data);
        request.mount_point = self.info.path.clone();
        let ctx = Ctx::new(
            request,
            self.view.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(self.info.clone()),
        );
        self.backend.dispatch(ctx).await
    }

    pub async fn read(&self, path: &str) -> Result<Response> {
        self.call(Operation::Read, path, json!({})).await
    }

    pub async fn read_with(&self, path: &str, query: Value) -> Result<Response> {
        self.call(Operation::Read, path, query).await
    }

    pub async fn write(&self, path: &str, body: Value) -> Result<Response> {
        self.call(Operation::Update, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Result<Response> {
        self.call(Operation::Patch, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Result<Response> {
        self.call(Operation::Delete, path, json!({})).await
    }

    pub async fn list(&self, path: &str) -> Result<Response> {
        self.call(Operation::List, path, json!({})).await
    }

    /// Every storage key, for asserting what was (not) written.
    pub fn keys(&self) -> Vec<String> {
        self.view.keys()
    }

    /// Storage keys belonging to the secret at `path` (its metadata and version data).
    pub fn keys_of_secret(&self, path: &str) -> Vec<String> {
        let meta = format!("meta/{path}");
        self.keys()
            .into_iter()
            .filter(|k| {
                *k == meta
                    || (k.starts_with("ver/")
                        && k.split_once('/')
                            .and_then(|(_, r)| r.split_once('/'))
                            .is_some_and(|(_, p)| p == path))
            })
            .collect()
    }
}

/// The response's data as a JSON value (`null` when it has none).
pub fn body(resp: &Response) -> Value {
    resp.data_map().map(Value::Object).unwrap_or(Value::Null)
}

/// The `keys` of a LIST answer.
pub fn keys_of(resp: &Response) -> Vec<String> {
    serde_json::from_value(body(resp)["keys"].clone()).expect("keys")
}

/// A JSON object literal as a map.
pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}
