//! Drives an auth engine the way the request pipeline does: route the mount-relative path, run
//! the existence check to turn an update into a create, pick the handler, call it with a
//! context over a real in-memory view and a manual clock.

#![allow(dead_code)] // each test binary uses a different part of the harness

use coffer_sdk::clock::ManualClock;
use coffer_sdk::logical::Connection;
use coffer_sdk::view::{MemoryView, View, ViewOp};
use coffer_sdk::{Backend, Ctx, MountInfo, Operation, Request, Response, Result};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// The real in-memory view, yielding to the scheduler before every call so that concurrent
/// requests interleave at each storage step, as they would over a real backend.
#[derive(Default)]
pub struct InterleavingView {
    inner: MemoryView,
}

#[async_trait::async_trait]
impl View for InterleavingView {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        tokio::task::yield_now().await;
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        tokio::task::yield_now().await;
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        tokio::task::yield_now().await;
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        tokio::task::yield_now().await;
        self.inner.list(prefix).await
    }
    async fn batch(&self, ops: Vec<ViewOp>) -> Result<()> {
        tokio::task::yield_now().await;
        self.inner.batch(ops).await
    }
}

/// One mounted auth method with its storage and clock.
pub struct Mount {
    pub backend: Backend,
    pub view: Arc<InterleavingView>,
    pub clock: ManualClock,
    pub info: MountInfo,
}

impl Mount {
    /// An auth mount of `kind` with mount `options`.
    pub fn new(kind: &str, options: &[(&str, &str)]) -> Mount {
        let mut info = MountInfo {
            path: format!("auth/{kind}/"),
            kind: kind.into(),
            uuid: "test-mount".into(),
            ..MountInfo::default()
        };
        for (k, v) in options {
            info.options.insert(k.to_string(), v.to_string());
        }
        let backend = coffer_auth::backend(kind, &info)
            .expect("known auth type")
            .expect("valid options");
        Mount {
            backend,
            view: Arc::new(InterleavingView::default()),
            clock: ManualClock::new(),
            info,
        }
    }

    /// Run one request from `from`; `Update` becomes `Create` when the existence check says so.
    pub async fn call_from(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        from: Option<SocketAddr>,
    ) -> Result<Response> {
        let connection = Connection {
            remote_addr: from,
            peer_certificates: Vec::new(),
        };
        self.call_over(op, path, data, &connection).await
    }

    /// Run one request arriving over `connection` (its address and mTLS client certificates),
    /// through the SDK's dispatch (route, create/update, handler).
    pub async fn call_over(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        connection: &Connection,
    ) -> Result<Response> {
        let mut request = Request::new(op, path).with_data(data);
        request.mount_point = self.info.path.clone();
        request.connection = connection.clone();
        let ctx = Ctx::new(
            request,
            self.view.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(self.info.clone()),
        );
        self.backend.dispatch(ctx).await
    }

    /// Whether the path is marked as needing no token.
    pub fn is_unauthenticated(&self, path: &str) -> bool {
        self.backend
            .route(path)
            .expect("route")
            .spec
            .unauthenticated
    }

    pub async fn read(&self, path: &str) -> Result<Response> {
        self.call_from(Operation::Read, path, json!({}), None).await
    }

    pub async fn write(&self, path: &str, body: Value) -> Result<Response> {
        self.call_from(Operation::Update, path, body, None).await
    }

    pub async fn write_from(&self, path: &str, body: Value, from: &str) -> Result<Response> {
        let addr: SocketAddr = from.parse().expect("socket address");
        self.call_from(Operation::Update, path, body, Some(addr))
            .await
    }

    /// A write over an mTLS connection that presented `peer_certificates` (DER, leaf first).
    pub async fn write_with_certs(
        &self,
        path: &str,
        body: Value,
        peer_certificates: Vec<Vec<u8>>,
    ) -> Result<Response> {
        let connection = Connection {
            remote_addr: Some("127.0.0.1:50000".parse().expect("socket address")),
            peer_certificates,
        };
        self.call_over(Operation::Update, path, body, &connection)
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<Response> {
        self.call_from(Operation::Delete, path, json!({}), None)
            .await
    }

    pub async fn list(&self, path: &str) -> Result<Response> {
        self.call_from(Operation::List, path, json!({}), None).await
    }

    /// Every storage key.
    pub fn keys(&self) -> Vec<String> {
        self.view.inner.keys()
    }

    /// Every stored key and value, as text, for scanning for secrets.
    pub async fn dump(&self) -> String {
        let mut out = String::new();
        for key in self.keys() {
            let value = self.view.inner.get(&key).await.unwrap().unwrap_or_default();
            out.push_str(&key);
            out.push('=');
            out.push_str(&String::from_utf8_lossy(&value));
            out.push('\n');
        }
        out
    }

    /// Every stored key and value, to compare before and after a refused request.
    pub async fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for key in self.keys() {
            let value = self.view.inner.get(&key).await.unwrap().unwrap_or_default();
            out.push((key, value));
        }
        out
    }
}

/// The response's data as a JSON value (`null` when it has none).
pub fn body(resp: &Response) -> Value {
    resp.data.clone().map(Value::Object).unwrap_or(Value::Null)
}

/// The `keys` of a LIST answer.
pub fn keys_of(resp: &Response) -> Vec<String> {
    serde_json::from_value(body(resp)["keys"].clone()).expect("keys")
}

/// Assert a request failed with `status` and exactly `message`.
pub fn assert_error(result: Result<Response>, status: u16, message: &str) {
    match result {
        Ok(resp) => panic!(
            "expected {status} {message:?}, got success {:?}",
            body(&resp)
        ),
        Err(e) => {
            assert_eq!(e.status(), status, "{e}");
            assert_eq!(e.to_string(), message);
        }
    }
}
