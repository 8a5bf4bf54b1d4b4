//! The host contract of an engine beyond its paths: typed state handed to every handler,
//! lifecycle hooks, rollback entries and periodic jobs.
//!
//! An engine is one value of [`Engine<S>`]: its state `S` (a connection pool, a store, a
//! cache), its path declarations, and what the host should call around them:
//!
//! - **handlers** get `(Arc<S>, Ctx, input)`; nothing else is needed to reach the state;
//! - **`init`** runs after the engine is mounted and after every unseal;
//! - **`cleanup`** runs on unmount, seal and shutdown (close pools, stop work);
//! - **rollback entries**: before an external side effect (creating a database user, calling
//!   a rotation function) a handler records an entry with [`Ctx::rollback`]; the host forgets
//!   the entry when the request succeeds, and calls the engine's rollback for it when the
//!   request fails or when the server died before the request ended, with backoff, until the
//!   rollback succeeds (it never gives up);
//! - **jobs**: named periodic functions; one scheduler in the server runs them while the node
//!   is active and unsealed, persisting each job's next due time so a run missed while the
//!   server was down happens once after it comes back.

use crate::framework::{Backend, Ctx, PathSpec};
pub use crate::host::{
    HookFn, JobSpec, Lifecycle, MountCtx, RollbackEntry, RollbackFn, RollbackLog,
};
use crate::logical::{Operation, Response};
use crate::{Error, Result};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How handlers reach the engine's state: owned, or weakly for state that itself owns the
/// mount table (the system backend), which would otherwise keep itself alive.
enum StateRef<S> {
    Owned(Arc<S>),
    Weak(Weak<S>),
}

impl<S> Clone for StateRef<S> {
    fn clone(&self) -> Self {
        match self {
            StateRef::Owned(s) => StateRef::Owned(s.clone()),
            StateRef::Weak(w) => StateRef::Weak(w.clone()),
        }
    }
}

impl<S> StateRef<S> {
    fn get(&self) -> Result<Arc<S>> {
        match self {
            StateRef::Owned(s) => Ok(s.clone()),
            StateRef::Weak(w) => w
                .upgrade()
                .ok_or_else(|| Error::Unavailable("server is shutting down".into())),
        }
    }
}

/// An engine under construction: its kind, help, state and declarations.
pub struct Engine<S> {
    kind: &'static str,
    help: &'static str,
    state: StateRef<S>,
    paths: Vec<PathSpec>,
    lifecycle: Lifecycle,
    finish: Vec<Box<dyn FnOnce(Backend) -> Backend>>,
}

impl<S: Send + Sync + 'static> Engine<S> {
    /// An engine whose handlers share `state`.
    pub fn new(kind: &'static str, help: &'static str, state: Arc<S>) -> Engine<S> {
        Engine::with_ref(kind, help, StateRef::Owned(state))
    }

    /// An engine whose handlers reach `state` weakly (for state that owns the router).
    pub fn weak(kind: &'static str, help: &'static str, state: &Arc<S>) -> Engine<S> {
        Engine::with_ref(kind, help, StateRef::Weak(Arc::downgrade(state)))
    }

    fn with_ref(kind: &'static str, help: &'static str, state: StateRef<S>) -> Engine<S> {
        Engine {
            kind,
            help,
            state,
            paths: Vec::new(),
            lifecycle: Lifecycle::default(),
            finish: Vec::new(),
        }
    }

    /// Start declaring a path whose handlers get this engine's state.
    pub fn path(&self, pattern: impl Into<String>) -> StatePath<S> {
        StatePath {
            spec: PathSpec::new(pattern),
            state: self.state.clone(),
        }
    }

    /// Add declared paths, in match order.
    pub fn paths(mut self, paths: impl IntoIterator<Item = StatePath<S>>) -> Engine<S> {
        self.paths.extend(paths.into_iter().map(|p| p.spec));
        self
    }

    /// Add a path declared without state.
    pub fn plain_path(mut self, spec: PathSpec) -> Engine<S> {
        self.paths.push(spec);
        self
    }

    fn hook<F, Fut>(&self, f: F) -> HookFn
    where
        F: Fn(Arc<S>, MountCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let state = self.state.clone();
        let f = Arc::new(f);
        Arc::new(move |ctx| {
            let (state, f) = (state.get(), f.clone());
            Box::pin(async move { f(state?, ctx).await })
        })
    }

    /// Run `f` after the engine is mounted and after every unseal.
    pub fn on_init<F, Fut>(mut self, f: F) -> Engine<S>
    where
        F: Fn(Arc<S>, MountCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.lifecycle.init = Some(self.hook(f));
        self
    }

    /// Run `f` on unmount, seal and shutdown.
    pub fn on_cleanup<F, Fut>(mut self, f: F) -> Engine<S>
    where
        F: Fn(Arc<S>, MountCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.lifecycle.cleanup = Some(self.hook(f));
        self
    }

    /// Undo a recorded side effect whose request failed or never finished. Must be safe to
    /// call more than once for the same entry (a crash may interrupt it).
    pub fn on_rollback<F, Fut>(mut self, f: F) -> Engine<S>
    where
        F: Fn(Arc<S>, MountCtx, RollbackEntry) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let state = self.state.clone();
        let f = Arc::new(f);
        self.lifecycle.rollback = Some(Arc::new(move |ctx, entry| {
            let (state, f) = (state.get(), f.clone());
            Box::pin(async move { f(state?, ctx, entry).await })
        }));
        self
    }

    /// Run `f` every `interval` while the node is active and unsealed.
    pub fn job<F, Fut>(mut self, name: &'static str, interval: Duration, f: F) -> Engine<S>
    where
        F: Fn(Arc<S>, MountCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let run = self.hook(f);
        self.lifecycle.jobs.push(JobSpec {
            name,
            interval,
            run,
        });
        self
    }

    /// Further [`Backend`] settings (secret types, the login renewal check).
    pub fn configure(mut self, f: impl FnOnce(Backend) -> Backend + 'static) -> Engine<S> {
        self.finish.push(Box::new(f));
        self
    }

    /// Compile the declarations.
    pub fn build(self) -> Backend {
        let mut backend = Backend::new(self.kind, self.help, self.paths);
        backend.lifecycle = self.lifecycle;
        for f in self.finish {
            backend = f(backend);
        }
        backend
    }
}

/// A path declaration whose handlers receive the engine's state.
pub struct StatePath<S> {
    spec: PathSpec,
    state: StateRef<S>,
}

impl<S: Send + Sync + 'static> StatePath<S> {
    /// An operation whose handler reads the raw request itself (reads, deletes, lists).
    pub fn op<F, Fut>(mut self, operation: Operation, summary: &'static str, f: F) -> StatePath<S>
    where
        F: Fn(Arc<S>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        let state = self.state.clone();
        let f = Arc::new(f);
        self.spec = self.spec.op(operation, summary, move |ctx| {
            let (state, f) = (state.get(), f.clone());
            async move { f(state?, ctx).await }
        });
        self
    }

    /// An operation with a typed input (see [`PathSpec::typed`]).
    pub fn typed<T, F, Fut>(self, operation: Operation, summary: &'static str, f: F) -> StatePath<S>
    where
        T: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(Arc<S>, Ctx, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        self.typed_ops(&[operation], summary, f)
    }

    /// Several operations sharing one typed handler (create + update).
    pub fn typed_ops<T, F, Fut>(
        mut self,
        operations: &[Operation],
        summary: &'static str,
        f: F,
    ) -> StatePath<S>
    where
        T: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(Arc<S>, Ctx, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        let state = self.state.clone();
        let f = Arc::new(f);
        self.spec = self
            .spec
            .typed_ops(operations, summary, move |ctx, input: T| {
                let (state, f) = (state.get(), f.clone());
                async move { f(state?, ctx, input).await }
            });
        self
    }

    /// How to tell create from update for writes on this path.
    pub fn existence<F, Fut>(mut self, f: F) -> StatePath<S>
    where
        F: Fn(Arc<S>, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool>> + Send + 'static,
    {
        let state = self.state.clone();
        let f = Arc::new(f);
        self.spec = self.spec.existence(move |ctx| {
            let (state, f) = (state.get(), f.clone());
            async move { f(state?, ctx).await }
        });
        self
    }

    /// Help text.
    pub fn help(mut self, synopsis: &'static str, description: &'static str) -> StatePath<S> {
        self.spec = self.spec.help(synopsis, description);
        self
    }

    /// No token needed.
    pub fn unauthenticated(mut self) -> StatePath<S> {
        self.spec = self.spec.unauthenticated();
        self
    }

    /// Needs `sudo` on top of the operation's capability.
    pub fn sudo(mut self) -> StatePath<S> {
        self.spec = self.spec.sudo();
        self
    }

    /// One operation needs `sudo`.
    pub fn sudo_for(mut self, operation: Operation) -> StatePath<S> {
        self.spec = self.spec.sudo_for(operation);
        self
    }
}
