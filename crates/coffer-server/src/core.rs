//! The request pipeline and the seal lifecycle.
//!
//! Every front door (today the Vault HTTP dialect) turns its input into a
//! [`coffer_sdk::Request`] and calls [`Core::handle`]. That one function does, in order:
//! path validation → route to mount and path declaration → seal check → create/update
//! resolution (existence check) → token lookup → ACL check (capability, sudo, parameters) →
//! audit request hook → engine handler (with its rollback log) → lease registration → token
//! minting for logins → response wrapping → audit response hook → response. Engines never
//! see tokens (except the built-in token store) and never check policy.

use crate::audit::{AuditHook, AuditOutcome, AuditRequest};
use crate::barrier::{Barrier, BarrierView};
use crate::metrics::Metrics;
use crate::mounts::{LeaseLimits, Mounted, Router};
use crate::policies::PolicyStore;
use crate::shamir;
use crate::tokens::{NewToken, TokenEntry, TokenMemo, TokenStore};
use coffer_policy::Capabilities;
use coffer_sdk::clock::Clock;
use coffer_sdk::framework::Ctx;
use coffer_sdk::logical::Caller;
use coffer_sdk::{Error, Operation, Request, Response, Result};
use coffer_storage::Storage;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

/// Plaintext seal parameters (not secret).
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";

/// How the root key's wrapping key is split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SealConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: usize,
    pub secret_threshold: usize,
}

/// An in-progress rekey.
pub struct RekeyState {
    pub nonce: String,
    pub shares: usize,
    pub threshold: usize,
    pub parts: Vec<Zeroizing<Vec<u8>>>,
}

#[derive(Default)]
struct SealProgress {
    parts: Vec<Zeroizing<Vec<u8>>>,
    nonce: String,
    rekey: Option<RekeyState>,
}

/// What `sys/init` returns.
pub struct InitResult {
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    pub root_token: String,
}

/// Unseal progress, for `sys/seal-status` and `sys/unseal`.
#[derive(Debug, Clone, Serialize)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub kind: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: usize,
    pub n: usize,
    pub progress: usize,
    pub nonce: String,
    pub version: String,
    pub build_date: String,
    pub migration: bool,
    pub recovery_seal: bool,
    pub storage_type: String,
}

/// Outcome of one rekey key submission.
pub enum RekeyProgress {
    Pending {
        progress: usize,
        required: usize,
        nonce: String,
        shares: usize,
        threshold: usize,
    },
    Complete {
        keys: Vec<Zeroizing<Vec<u8>>>,
        nonce: String,
    },
}

/// The server's state and pipeline.
pub struct Core {
    pub clock: Arc<dyn Clock>,
    pub barrier: Arc<Barrier>,
    pub router: Arc<Router>,
    pub tokens: Arc<TokenStore>,
    pub policies: Arc<PolicyStore>,
    pub limits: LeaseLimits,
    pub metrics: Metrics,
    pub leases: Arc<crate::leases::LeaseManager>,
    pub identity: Arc<crate::identity::Identity>,
    pub wrapping: crate::wrapping::Wrapping,
    pub rollbacks: Arc<crate::rollback::Rollbacks>,
    pub scheduler: crate::scheduler::Scheduler,
    /// Audit hook points (see [`crate::audit`]); empty until a device is enabled.
    audit: parking_lot::RwLock<Arc<Vec<Arc<dyn AuditHook>>>>,
    /// Set (after the hook is in `audit`) once any hook is attached; hooks are never removed.
    /// Until then a request reads this alone instead of taking the lock, whose shared counter
    /// every worker thread would otherwise write on every request.
    audited: std::sync::atomic::AtomicBool,
    seal: tokio::sync::Mutex<SealProgress>,
}

/// The same outcome, borrowed again for the next hook.
fn outcome_ref<'a>(outcome: &AuditOutcome<'a>) -> AuditOutcome<'a> {
    match outcome {
        AuditOutcome::Response(r) => AuditOutcome::Response(r),
        AuditOutcome::Error(e) => AuditOutcome::Error(e),
    }
}

fn capability_for(op: Operation) -> Capabilities {
    match op {
        Operation::Read => Capabilities::READ,
        Operation::Create => Capabilities::CREATE,
        Operation::Update => Capabilities::UPDATE,
        Operation::Patch => Capabilities::PATCH,
        Operation::Delete => Capabilities::DELETE,
        Operation::List => Capabilities::LIST,
    }
}

/// Refuse paths with empty, `.` or `..` segments (a trailing slash is allowed for lists).
pub fn validate_request_path(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(Error::UnsupportedPath(String::new()));
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    // Split as bytes: `str::split` runs a pattern searcher, and this runs on every request.
    if trimmed
        .as_bytes()
        .split(|&b| b == b'/')
        .any(|seg| seg.is_empty() || seg == b"." || seg == b"..")
    {
        return Err(Error::bad(format!(
            "invalid request path {path:?}: empty, '.' or '..' segments are not allowed"
        )));
    }
    // Byte by byte (this runs on every request): C0 controls and DEL are single bytes, and the
    // C1 controls U+0080..=U+009F are the only other `char::is_control` characters, encoded as
    // 0xC2 followed by 0x80..=0x9F.
    let bytes = path.as_bytes();
    // Most paths hold none of the three bytes that can start a control character: a check in
    // blocks without an exit per byte (vector compares) clears them, and only a path with one
    // goes through the exact check.
    let maybe = |b: u8| (b < 0x20) | (b == 0x7f) | (b == 0xc2);
    let mut blocks = bytes.chunks_exact(16);
    let suspect = blocks.any(|block| block.iter().fold(false, |any, &b| any | maybe(b)))
        || blocks.remainder().iter().any(|&b| maybe(b));
    let control = suspect
        && bytes.iter().enumerate().any(|(i, &b)| {
            b < 0x20
                || b == 0x7f
                || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
        });
    if control {
        return Err(Error::bad(
            "invalid request path: control characters are not allowed",
        ));
    }
    Ok(())
}

impl Core {
    /// The core's parts over `storage`, with no mounts at all: [`crate::host::build_core`]
    /// adds the built-in ones (`sys/`, `auth/token/`, `identity/`, `cubbyhole/`).
    pub(crate) fn bare(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        limits: LeaseLimits,
        catalog: Arc<coffer_sdk::catalog::Catalog>,
    ) -> Arc<Core> {
        let barrier = Arc::new(Barrier::new(storage));
        let tokens = Arc::new(TokenStore::new(barrier.clone(), clock.clone(), limits));
        let policies = Arc::new(PolicyStore::new(barrier.clone()));
        let identity = Arc::new(crate::identity::Identity::new(
            BarrierView::new(barrier.clone(), "sys/identity/"),
            clock.clone(),
        ));
        let router = Arc::new(Router::new(catalog));
        let leases = Arc::new(crate::leases::LeaseManager::new(
            barrier.clone(),
            clock.clone(),
            router.clone(),
            tokens.clone(),
            limits,
        ));
        let hooks: std::sync::Weak<dyn crate::tokens::TokenHooks> = Arc::downgrade(&leases) as _;
        tokens.set_hooks(hooks);
        let rollbacks = Arc::new(crate::rollback::Rollbacks::new(
            barrier.clone(),
            clock.clone(),
        ));
        let scheduler = crate::scheduler::Scheduler::new(
            barrier.clone(),
            clock.clone(),
            router.clone(),
            leases.clone(),
            rollbacks.clone(),
        );
        Arc::new(Core {
            clock: clock.clone(),
            barrier: barrier.clone(),
            router,
            tokens: tokens.clone(),
            policies,
            limits,
            metrics: Metrics::default(),
            leases,
            wrapping: crate::wrapping::Wrapping::new(barrier, tokens, clock, limits.max_ttl),
            identity,
            rollbacks,
            scheduler,
            audit: parking_lot::RwLock::new(Arc::new(Vec::new())),
            audited: std::sync::atomic::AtomicBool::new(false),
            seal: tokio::sync::Mutex::new(SealProgress::default()),
        })
    }

    /// Attach an audit hook: it sees every request from now on.
    pub fn add_audit_hook(&self, hook: Arc<dyn AuditHook>) {
        let mut hooks = self.audit.write();
        let mut list = (**hooks).clone();
        list.push(hook);
        *hooks = Arc::new(list);
        self.audited
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Run background work (lease expiry, rollbacks, engine jobs) on a short tick while the
    /// core lives; the scheduler itself skips ticks while sealed or standby.
    pub fn start_background(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let Some(core) = weak.upgrade() else { break };
                match core.scheduler.run_due().await {
                    Ok(report) if report.leases_expired > 0 || !report.jobs_run.is_empty() => {
                        tracing::debug!(leases = report.leases_expired, jobs = ?report.jobs_run, "background pass")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "background pass failed"),
                }
            }
        });
    }

    /// Reload the mount tables into the router, then `init` every engine built new and
    /// `cleanup` every engine no longer serving.
    pub async fn reload_mounts(&self) -> Result<()> {
        let changes = self.router.load(&self.barrier, self.limits).await?;
        for mounted in &changes.removed {
            self.run_hook(mounted, "cleanup").await;
        }
        for mounted in &changes.added {
            self.run_hook(mounted, "init").await;
        }
        Ok(())
    }

    /// Run a mount's `init` or `cleanup` hook, if it has one; a failure is logged (the mount
    /// keeps serving: its requests report their own errors).
    async fn run_hook(&self, mounted: &Mounted, which: &str) {
        let hook = match which {
            "init" => mounted.backend.lifecycle.init.clone(),
            _ => mounted.backend.lifecycle.cleanup.clone(),
        };
        let Some(hook) = hook else { return };
        let ctx = coffer_sdk::engine::MountCtx {
            view: mounted.view.clone(),
            clock: self.clock.clone(),
            mount: mounted.info.clone(),
        };
        if let Err(e) = hook(ctx).await {
            tracing::warn!(mount = %mounted.route_path, hook = which, error = %e, "engine hook failed");
        }
    }

    /// Stop every engine (their `cleanup`), for a clean process exit.
    pub async fn shutdown(&self) {
        for mounted in self.router.table().all().iter() {
            self.run_hook(mounted, "cleanup").await;
        }
    }

    // ----- seal lifecycle -------------------------------------------------------------------

    /// The stored seal configuration, if initialised.
    pub async fn seal_config(&self) -> Result<Option<SealConfig>> {
        match self.barrier.physical().get(SEAL_CONFIG_PATH).await {
            Ok(Some(bytes)) => Ok(serde_json::from_slice(&bytes).ok()),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "reading seal configuration failed");
                Err(Error::Internal("storage failure".into()))
            }
        }
    }

    /// Initialise: create keys, split the unseal key, create the root token. The server is
    /// left sealed, as Vault leaves it.
    pub async fn init(&self, shares: usize, threshold: usize) -> Result<InitResult> {
        shamir::check_params(shares, threshold)?;
        let _guard = self.seal.lock().await;
        if self.seal_config().await?.is_some() {
            return Err(Error::bad("Coffer is already initialized"));
        }
        let unseal_key = self.barrier.initialize(self.clock.now()).await?;
        let keys = shamir::split(&unseal_key[..], shares, threshold)?;
        self.post_unseal().await?;
        let (root_token, _) = self.create_root_token(None).await?;
        let config = SealConfig {
            kind: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
        };
        self.barrier
            .physical()
            .put(
                SEAL_CONFIG_PATH,
                serde_json::to_vec(&config).expect("encodes"),
            )
            .await
            .map_err(|_| Error::Internal("storage failure".into()))?;
        self.pre_seal().await;
        Ok(InitResult { keys, root_token })
    }

    /// A root token (optionally with a chosen id, for `-dev-root-token-id`).
    pub async fn create_root_token(
        &self,
        id: Option<String>,
    ) -> Result<(String, crate::tokens::TokenEntry)> {
        self.tokens
            .create(NewToken {
                id,
                policies: vec!["root".into()],
                display_name: "root".into(),
                path: "auth/token/root".into(),
                renewable: false,
                ..NewToken::default()
            })
            .await
    }

    /// Current seal status.
    pub async fn seal_status(&self) -> Result<SealStatus> {
        let config = self.seal_config().await?;
        let progress = self.seal.lock().await;
        Ok(SealStatus {
            kind: "shamir".into(),
            initialized: config.is_some(),
            sealed: self.barrier.is_sealed(),
            t: config.as_ref().map_or(0, |c| c.secret_threshold),
            n: config.as_ref().map_or(0, |c| c.secret_shares),
            progress: progress.parts.len(),
            nonce: progress.nonce.clone(),
            version: crate::VERSION.into(),
            build_date: String::new(),
            migration: false,
            recovery_seal: false,
            storage_type: self.barrier.physical().kind().into(),
        })
    }

    /// Submit one unseal key share (or reset progress).
    pub async fn unseal(&self, key: Option<Zeroizing<Vec<u8>>>, reset: bool) -> Result<SealStatus> {
        let config = self.seal_config().await?.ok_or(Error::NotInitialized)?;
        {
            let mut progress = self.seal.lock().await;
            if reset {
                progress.parts.clear();
                progress.nonce.clear();
            } else if self.barrier.is_sealed() {
                let key = key.ok_or_else(|| Error::bad("missing required field 'key'"))?;
                if progress.parts.iter().any(|p| p[..] == key[..]) {
                    // Vault ignores a repeated share rather than counting it twice.
                } else {
                    if progress.parts.is_empty() {
                        progress.nonce = uuid::Uuid::new_v4().to_string();
                    }
                    progress.parts.push(key);
                }
                if progress.parts.len() >= config.secret_threshold {
                    let parts = std::mem::take(&mut progress.parts);
                    progress.nonce.clear();
                    let unseal_key = shamir::combine(&parts)?;
                    self.barrier.unseal(&unseal_key).await?;
                    if let Err(e) = self.post_unseal().await {
                        self.pre_seal().await;
                        return Err(e);
                    }
                    tracing::info!("unsealed");
                }
            }
        }
        self.seal_status().await
    }

    /// Load everything that lives in the barrier.
    async fn post_unseal(&self) -> Result<()> {
        self.tokens.load().await?;
        self.policies.ensure_default().await?;
        self.reload_mounts().await?;
        // Whatever requests a crash interrupted left behind is undone now, not a tick later.
        if let Err(e) = self.rollbacks.pass(&self.router, None).await {
            tracing::warn!(error = %e, "rollback pass after unseal failed; the scheduler retries");
        }
        Ok(())
    }

    async fn pre_seal(&self) {
        for mounted in self.router.clear() {
            self.run_hook(&mounted, "cleanup").await;
        }
        self.identity.invalidate();
        self.tokens.unload();
        self.policies.clear_caches();
        self.barrier.seal();
    }

    /// Seal: forget every key.
    pub async fn seal(&self) -> Result<()> {
        let mut progress = self.seal.lock().await;
        progress.parts.clear();
        progress.rekey = None;
        self.pre_seal().await;
        tracing::info!("sealed");
        Ok(())
    }

    /// Start a rekey.
    pub async fn rekey_init(&self, shares: usize, threshold: usize) -> Result<()> {
        shamir::check_params(shares, threshold)?;
        self.seal_config().await?.ok_or(Error::NotInitialized)?;
        if self.barrier.is_sealed() {
            return Err(Error::Sealed);
        }
        let mut progress = self.seal.lock().await;
        if progress.rekey.is_some() {
            return Err(Error::bad("rekey already in progress"));
        }
        progress.rekey = Some(RekeyState {
            nonce: uuid::Uuid::new_v4().to_string(),
            shares,
            threshold,
            parts: Vec::new(),
        });
        Ok(())
    }

    /// Cancel a rekey.
    pub async fn rekey_cancel(&self) {
        self.seal.lock().await.rekey = None;
    }

    /// Rekey status: (nonce, started, shares, threshold, progress, required).
    pub async fn rekey_status(&self) -> Result<(String, bool, usize, usize, usize, usize)> {
        let config = self.seal_config().await?;
        let required = config.as_ref().map_or(0, |c| c.secret_threshold);
        let progress = self.seal.lock().await;
        Ok(match &progress.rekey {
            Some(r) => (
                r.nonce.clone(),
                true,
                r.shares,
                r.threshold,
                r.parts.len(),
                required,
            ),
            None => (String::new(), false, 0, 0, 0, required),
        })
    }

    /// Submit one current unseal share toward a rekey.
    pub async fn rekey_update(
        &self,
        key: Zeroizing<Vec<u8>>,
        nonce: &str,
    ) -> Result<RekeyProgress> {
        let config = self.seal_config().await?.ok_or(Error::NotInitialized)?;
        let mut progress = self.seal.lock().await;
        let rekey = progress
            .rekey
            .as_mut()
            .ok_or_else(|| Error::bad("no rekey in progress"))?;
        if rekey.nonce != nonce {
            return Err(Error::bad(format!(
                "incorrect nonce supplied; nonce for this rekey operation is {}",
                rekey.nonce
            )));
        }
        if !rekey.parts.iter().any(|p| p[..] == key[..]) {
            rekey.parts.push(key);
        }
        if rekey.parts.len() < config.secret_threshold {
            return Ok(RekeyProgress::Pending {
                progress: rekey.parts.len(),
                required: config.secret_threshold,
                nonce: rekey.nonce.clone(),
                shares: rekey.shares,
                threshold: rekey.threshold,
            });
        }
        let state = progress.rekey.take().expect("present");
        let old_key = shamir::combine(&state.parts)?;
        // Prove the submitted shares are the current ones before replacing anything.
        let probe = Barrier::new(self.barrier.physical().clone());
        probe.unseal(&old_key).await.map_err(|_| {
            Error::bad("the unseal keys provided are not valid for this server; rekey cancelled")
        })?;
        probe.seal();
        let new_key = self.barrier.rewrap_root_key().await?;
        let keys = shamir::split(&new_key[..], state.shares, state.threshold)?;
        let new_config = SealConfig {
            kind: "shamir".into(),
            secret_shares: state.shares,
            secret_threshold: state.threshold,
        };
        self.barrier
            .physical()
            .put(
                SEAL_CONFIG_PATH,
                serde_json::to_vec(&new_config).expect("encodes"),
            )
            .await
            .map_err(|_| Error::Internal("storage failure".into()))?;
        Ok(RekeyProgress::Complete {
            keys,
            nonce: state.nonce,
        })
    }

    // ----- the pipeline ---------------------------------------------------------------------

    /// Handle one request. `token` is the client token, if any.
    pub async fn handle(&self, req: Request, token: Option<&str>) -> Result<Response> {
        self.handle_at_mount(req, token, None)
            .await
            .map(|(response, _)| response)
    }

    /// Handle one request that came over a client connection whose token memo is `memo` (see
    /// [`TokenMemo`]).
    pub async fn handle_on_connection(
        &self,
        req: Request,
        token: Option<&str>,
        memo: &TokenMemo,
    ) -> Result<Response> {
        self.handle_at_mount(req, token, Some(memo))
            .await
            .map(|(response, _)| response)
    }

    /// Handle one request; with the answer, the type of the mount that gave it (for the
    /// envelope's `mount_type`), so the front door does not resolve the mount a second time.
    /// `memo` is the token memo of the connection the request came over, if any.
    pub async fn handle_at_mount(
        &self,
        req: Request,
        token: Option<&str>,
        memo: Option<&TokenMemo>,
    ) -> Result<(Response, String)> {
        let started = Instant::now();
        let operation = req.operation;
        let attached = self
            .audited
            .load(std::sync::atomic::Ordering::Acquire)
            .then(|| self.audit.read().clone())
            .filter(|hooks| !hooks.is_empty());
        // An audited request goes through its own boxed future: what auditing holds across
        // awaits (the request as logged, the answer while the hooks see it) would otherwise
        // be room in every request's future, which is copied whole as it is handed down.
        let result = match attached {
            Some(hooks) => Box::pin(self.handle_audited(req, token, memo, &hooks)).await,
            None => self.handle_inner(req, token, memo, &[], None).await,
        };
        self.metrics.record(
            operation,
            result
                .as_ref()
                .map_or_else(|e| e.status(), |(r, _)| r.status.unwrap_or(200)),
            started.elapsed(),
        );
        result
    }

    /// [`Core::handle_inner`] with the audit hooks seeing the request and its answer.
    async fn handle_audited(
        &self,
        req: Request,
        token: Option<&str>,
        memo: Option<&TokenMemo>,
        hooks: &[Arc<dyn AuditHook>],
    ) -> Result<(Response, String)> {
        let mut audit = AuditRequest {
            id: req.id.clone(),
            operation: req.operation,
            path: req.path.clone(),
            mount_point: String::new(),
            mount_type: String::new(),
            accessor: None,
            policies: Vec::new(),
            remote_addr: req.connection.remote_addr,
            data: req.data.clone(),
            wrap_ttl: req.wrap_ttl,
        };
        let result = self
            .handle_inner(req, token, memo, hooks, Some(&mut audit))
            .await;
        {
            let outcome = match &result {
                Ok((response, _)) => AuditOutcome::Response(response),
                Err(e) => AuditOutcome::Error(e),
            };
            for hook in hooks {
                hook.response(&audit, outcome_ref(&outcome)).await;
            }
        }
        result
    }

    async fn handle_inner(
        &self,
        mut req: Request,
        token: Option<&str>,
        memo: Option<&TokenMemo>,
        hooks: &[Arc<dyn AuditHook>],
        mut audit: Option<&mut AuditRequest>,
    ) -> Result<(Response, String)> {
        validate_request_path(&req.path)?;
        let table = self.router.table();
        let sealed = self.barrier.is_sealed();
        let resolved = table.resolve(&req.path);
        let route = resolved
            .as_ref()
            .and_then(|(m, rel)| m.backend.route(rel).map(|r| (m, rel, r)));

        let Some((mounted, rel, route)) = route else {
            if sealed {
                return Err(Error::Sealed);
            }
            // Do not reveal which paths exist to callers without a valid token.
            let valid = match token {
                Some(t) => Box::pin(self.tokens.lookup(t)).await?.is_some(),
                None => false,
            };
            return Err(if valid {
                Error::UnsupportedPath(req.path.clone())
            } else {
                Error::PermissionDenied
            });
        };
        let spec = route.spec;
        if sealed && !(mounted.route_path == "sys/" && spec.unauthenticated) {
            return Err(Error::Sealed);
        }

        // Authenticate (unauthenticated paths still learn who is calling, if anyone is).
        let (entry, caller) = match token {
            Some(t) if !sealed => match self.tokens.authenticate(t, memo).await? {
                Some(found) => (Some(found.entry), Some(found.caller)),
                None => (None, None),
            },
            _ => (None, None),
        };
        if !spec.unauthenticated && entry.is_none() {
            return Err(Error::PermissionDenied);
        }
        if let Some(e) = &entry {
            if !e.usable_from(req.connection.remote_addr) {
                return Err(Error::PermissionDenied);
            }
        }

        let full_path = req.path.clone();
        let wrap_ttl = req.wrap_ttl;
        let request_id = req.id.clone();
        req.mount_point = mounted.route_path.clone();
        req.path = rel.clone();
        if let (Some(e), Some(caller), Some(token)) = (&entry, caller, token) {
            if let Some(audit) = audit.as_deref_mut() {
                audit.accessor = Some(caller.accessor.clone());
                audit.policies = e.policies.clone();
            }
            // Only the built-in token store and sys/ may see the token itself.
            req.caller = Some(
                if mounted.route_path == "auth/token/" || mounted.route_path == "sys/" {
                    Arc::new(Caller {
                        client_token: Some(token.to_string()),
                        ..(*caller).clone()
                    })
                } else {
                    caller
                },
            );
        }
        if let Some(audit) = audit.as_deref_mut() {
            audit.mount_point = mounted.route_path.clone();
            audit.mount_type = mounted.entry.kind.clone();
        }
        let view: Arc<dyn coffer_sdk::View> = match (&entry, mounted.entry.kind.as_str()) {
            (Some(e), "cubbyhole") => Arc::new(BarrierView::new(
                self.barrier.clone(),
                format!("cubbyhole/{}/", e.id_hash),
            )),
            (None, "cubbyhole") => return Err(Error::PermissionDenied),
            _ => mounted.view.clone(),
        };
        let mut ctx = Ctx::new(req, view, self.clock.clone(), mounted.info.clone());
        // Captures, and POST/PUT as a create when the target does not exist yet.
        let op_spec = route.resolve(&mut ctx).await?;

        let mut exhausted_token = None;
        if let (Some(entry), false) = (&entry, spec.unauthenticated) {
            let acl = if entry.entity_id.is_empty() {
                self.policies.acl(&entry.policies).await?
            } else {
                let identity = Box::pin(self.identity.policies_for(&entry.entity_id)).await?;
                if identity.disabled {
                    return Err(Error::Forbidden("entity is disabled".into()));
                }
                let mut all = entry.policies.clone();
                all.extend(identity.policies.iter().cloned());
                self.policies.acl(&all).await?
            };
            let required = capability_for(ctx.request.operation);
            let params = ctx.request.operation.writes().then_some(&ctx.request.data);
            let decision = acl.check_wrapped(&full_path, required, params, wrap_ttl);
            if !decision.allowed {
                if let Some(reason) = decision.denial.filter(|r| r != "permission denied") {
                    return Err(Error::bad(reason));
                }
                return Err(Error::PermissionDenied);
            }
            let has_sudo = decision.sudo || decision.root;
            if spec.needs_sudo(ctx.request.operation) && !has_sudo {
                return Err(Error::PermissionDenied);
            }
            if has_sudo {
                if let Some(caller) = ctx
                    .request
                    .caller
                    .as_mut()
                    .filter(|c| c.client_token.is_some())
                {
                    Arc::make_mut(caller).sudo = true;
                }
            }
            if entry.num_uses != 0 && Box::pin(self.tokens.use_token(entry)).await? {
                exhausted_token = Some(entry.id_hash.clone());
            }
        }

        // The request as it will be logged: a device that cannot record it refuses it.
        if let Some(audit) = audit {
            audit.operation = ctx.request.operation;
            for hook in hooks {
                hook.request(audit).await?;
            }
        }
        let rollback_log = mounted
            .backend
            .lifecycle
            .rollback
            .is_some()
            .then(|| self.rollbacks.request_log(mounted));
        ctx.rollback_log = rollback_log
            .clone()
            .map(|log| log as Arc<dyn coffer_sdk::engine::RollbackLog>);
        let result = (op_spec.handler)(ctx).await;
        // What may follow the handler is boxed, and the answer is handed to it by value: a
        // `Response` is ~900 bytes, and one held across an await here would make every
        // request's future (which is copied whole as it is handed down) that much larger.
        let result = if rollback_log.is_some() || exhausted_token.is_some() {
            Box::pin(self.after_handler(result, rollback_log, exhausted_token)).await
        } else {
            result
        };
        let response = result?;
        // A secret that already has a lease id (a renewal) is not a new lease.
        let unfinished = response
            .secret
            .as_ref()
            .is_some_and(|s| s.lease_id.is_empty())
            || response.login.is_some()
            || wrap_ttl.is_some_and(|t| !t.is_zero());
        let response = if unfinished {
            Box::pin(self.finish_response(
                response,
                mounted,
                rel,
                entry.as_deref(),
                wrap_ttl,
                &full_path,
                &request_id,
            ))
            .await?
        } else {
            response
        };
        Ok((response, mounted.entry.kind.clone()))
    }

    /// After the handler: close its rollback log and revoke a token whose last use it was.
    async fn after_handler(
        &self,
        result: Result<Response>,
        rollback_log: Option<Arc<crate::rollback::RequestLog>>,
        exhausted_token: Option<String>,
    ) -> Result<Response> {
        if let Some(log) = rollback_log {
            log.finish(result.is_ok()).await;
        }
        if let Some(id_hash) = exhausted_token {
            self.tokens.revoke_tree(&id_hash).await?;
        }
        result
    }

    /// Register a new secret's lease, turn a login into a token and wrap the answer, as the
    /// answer and the request ask.
    #[allow(clippy::too_many_arguments)]
    async fn finish_response(
        &self,
        mut response: Response,
        mounted: &Mounted,
        rel: &str,
        entry: Option<&TokenEntry>,
        wrap_ttl: Option<std::time::Duration>,
        full_path: &str,
        request_id: &str,
    ) -> Result<Response> {
        if let Some(secret) = response.secret.as_mut().filter(|s| s.lease_id.is_empty()) {
            self.leases
                .register_secret_lease(
                    secret,
                    &mounted.info,
                    rel,
                    entry.map(|e| e.id_hash.as_str()),
                )
                .await?;
        }
        if let Some(login) = response.login.take() {
            if !mounted.is_auth {
                return Err(Error::Internal("a secrets engine returned a login".into()));
            }
            response.auth = Some(
                Box::pin(self.mint_login_token(&mounted.entry, login, &mounted.info, full_path))
                    .await?,
            );
        }
        if let Some(ttl) = wrap_ttl.filter(|t| !t.is_zero()) {
            if !crate::envelope::is_empty(&response) {
                let wrapped_accessor = response
                    .auth
                    .as_ref()
                    .map(|a| a.accessor.clone())
                    .unwrap_or_default();
                let body = match &response.raw {
                    Some(raw) => raw.body.clone(),
                    None => crate::envelope::to_bytes_from_mount(
                        &response,
                        request_id,
                        &mounted.entry.kind,
                    ),
                };
                response = self
                    .wrapping
                    .wrap(body, ttl, full_path, wrapped_accessor)
                    .await?;
            }
        }
        Ok(response)
    }

    /// Turn an auth method's login grant into a token: the one place logins create tokens.
    async fn mint_login_token(
        &self,
        mount_entry: &crate::mounts::MountEntry,
        login: coffer_sdk::logical::Login,
        mount: &coffer_sdk::MountInfo,
        path: &str,
    ) -> Result<coffer_sdk::logical::Auth> {
        let mut policies: Vec<String> = login
            .policies
            .iter()
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        if policies.iter().any(|p| p == "root") {
            return Err(Error::bad("auth methods cannot grant the root policy"));
        }
        if !login.no_default_policy {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();
        let max_ttl = if login.max_ttl.is_zero() {
            mount.max_lease_ttl
        } else {
            login.max_ttl.min(mount.max_lease_ttl)
        };
        let ttl = if login.ttl.is_zero() {
            mount.default_lease_ttl
        } else {
            login.ttl
        };
        let prefix = mount
            .path
            .trim_start_matches("auth/")
            .trim_end_matches('/')
            .replace('/', "-");
        let display_name = if login.display_name.is_empty() {
            prefix
        } else {
            format!("{prefix}-{}", login.display_name)
        };
        let entity_id = if login.alias_name.is_empty() {
            String::new()
        } else {
            self.identity
                .login_entity(
                    &mount_entry.accessor,
                    &format!("auth/{}", mount_entry.path),
                    &mount_entry.kind,
                    &login.alias_name,
                    &login.alias_metadata,
                    &login.verified_attributes,
                )
                .await?
        };
        let issued = self
            .tokens
            .issue(NewToken {
                id: None,
                parent_hash: None,
                entity_id: entity_id.clone(),
                policies,
                meta: login.metadata,
                display_name,
                num_uses: login.num_uses.max(0),
                ttl: ttl.min(max_ttl),
                explicit_max_ttl: login.explicit_max_ttl,
                period: login.period,
                renewable: login.renewable,
                path: path.to_string(),
                role: None,
                bound_cidrs: login.bound_cidrs,
                inherited_cidrs: Vec::new(),
                max_ttl,
                auth_mount: Some(mount_entry.uuid.clone()),
                alias_name: login.alias_name.clone(),
                internal: login.internal,
            })
            .await?;
        let mut auth = self.tokens.issued_auth_block(&issued);
        if !entity_id.is_empty() {
            let identity = self.identity.policies_for(&entity_id).await?;
            if identity.disabled {
                return Err(Error::Forbidden("entity is disabled".into()));
            }
            auth.identity_policies = Some(identity.policies.clone());
            auth.policies.extend(identity.policies.iter().cloned());
            auth.policies.sort();
            auth.policies.dedup();
        }
        Ok(auth)
    }

    /// Mount table snapshot helper for sys handlers.
    pub fn mounted(&self) -> Vec<Arc<Mounted>> {
        self.router.table().all().to_vec()
    }
}

#[cfg(test)]
mod path_tests {
    #[test]
    fn request_paths_with_empty_dot_or_control_segments_are_refused() {
        for ok in [
            "a",
            "a/",
            "secret/data/x",
            "é/ß",
            "a.b/..c/...",
            "sys/mounts/",
        ] {
            assert!(super::validate_request_path(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", "/", "a//b", "//", "a/./b", "a/../b", "./a", "../a", "a/.", "a/..", "a//",
            "a\u{0}b", "a\nb", "a\u{7f}", "a\u{85}b", "a\u{9f}",
        ] {
            let err = super::validate_request_path(bad).unwrap_err();
            assert_eq!(
                err.status(),
                if bad.is_empty() { 404 } else { 400 },
                "{bad:?}"
            );
        }
    }

    use super::validate_request_path;

    #[test]
    fn control_characters_are_refused_exactly_as_char_is_control_says() {
        for code in (0u32..0x800).chain([0x2028, 0xfeff, 0x10ffff]) {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let path = format!("secret/a{c}b");
            let refused = validate_request_path(&path).is_err();
            assert_eq!(refused, c.is_control(), "U+{code:04X}");
        }
        // At every position of paths longer than the check's 16-byte blocks, and beside the
        // non-control characters that share a first byte with controls (U+00A0 is 0xC2 0xA0).
        for c in [
            '\u{0}', '\u{1f}', '\u{7f}', '\u{80}', '\u{9f}', '\u{a0}', 'é', '/',
        ] {
            for at in 1..40 {
                let path = format!("{}{c}{}", "x".repeat(at), "y".repeat(40 - at));
                let refused = validate_request_path(&path).is_err();
                assert_eq!(refused, c.is_control(), "U+{:04X} at {at}", c as u32);
            }
        }
    }

    #[test]
    fn empty_and_dot_segments_are_refused() {
        for bad in [
            "",
            "secret//x",
            "secret/./x",
            "secret/../x",
            "/secret",
            "secret/..",
        ] {
            assert!(validate_request_path(bad).is_err(), "{bad:?}");
        }
        for good in ["secret/x", "secret/x/", "secret/.x", "secret/..x/"] {
            assert!(validate_request_path(good).is_ok(), "{good:?}");
        }
    }
}
