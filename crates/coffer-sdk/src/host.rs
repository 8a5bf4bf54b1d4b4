//! What the host gives an engine outside a request: the description of its mount, the
//! context of lifecycle hooks and jobs, rollback entries and the log handlers record them in,
//! and the [`Lifecycle`] a backend carries. Depends on nothing else of the framework, so the
//! framework and the engine builder can both build on it.

use crate::clock::Clock;
use crate::view::View;
use crate::Result;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the pipeline knows about the mount a request landed in.
#[derive(Debug, Clone, Default)]
pub struct MountInfo {
    /// Mount point with trailing slash, e.g. `secret/`.
    pub path: String,
    /// Engine type, e.g. `kv`.
    pub kind: String,
    /// Stable id of the mount (its storage prefix is derived from it, not from the path).
    pub uuid: String,
    /// Engine options, e.g. `version = "2"` for kv.
    pub options: BTreeMap<String, String>,
    /// Effective default lease TTL (mount's, else system's).
    pub default_lease_ttl: Duration,
    /// Effective maximum lease TTL.
    pub max_lease_ttl: Duration,
}

/// What a lifecycle hook, a job or a rollback gets: the mount's view, the clock and the mount.
#[derive(Clone)]
pub struct MountCtx {
    pub view: Arc<dyn View>,
    pub clock: Arc<dyn Clock>,
    pub mount: Arc<MountInfo>,
}

/// A lifecycle hook or a job.
pub type HookFn = Arc<dyn Fn(MountCtx) -> BoxFuture<Result<()>> + Send + Sync>;
/// Undo one recorded side effect.
pub type RollbackFn = Arc<dyn Fn(MountCtx, RollbackEntry) -> BoxFuture<Result<()>> + Send + Sync>;

/// A side effect recorded before it was made, handed back to the engine to undo.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackEntry {
    /// The engine's own name for the kind of side effect, e.g. `"db-user"`.
    pub kind: String,
    /// What the engine needs to undo it.
    pub data: Value,
}

/// Where a handler records rollback entries. The host gives every request its own log.
#[async_trait::async_trait]
pub trait RollbackLog: Send + Sync {
    /// Record `entry` durably before making the side effect it describes; returns its id.
    async fn record(&self, entry: RollbackEntry) -> Result<String>;
    /// The side effect is committed (or already undone): forget entry `id`.
    async fn clear(&self, id: &str) -> Result<()>;
}

/// A named periodic function of an engine.
#[derive(Clone)]
pub struct JobSpec {
    pub name: &'static str,
    pub interval: Duration,
    pub run: HookFn,
}

/// Everything the host calls around an engine's paths.
#[derive(Clone, Default)]
pub struct Lifecycle {
    pub init: Option<HookFn>,
    pub cleanup: Option<HookFn>,
    pub rollback: Option<RollbackFn>,
    pub jobs: Vec<JobSpec>,
}
