//! The lease manager: every leased secret and every token with a TTL has a lease.
//!
//! Invariants kept here:
//! - **Nothing about idle leases lives in memory.** A lease is three barrier entries written
//!   in one atomic batch: `id/<lease id>` (the lease), `index/<expiry ms, hex>/<hash>` (the
//!   expiry index, whose key order is time order) and `owner/<token hash>/<hash>` (so revoking
//!   a token finds what it created). Expiry pages through `index/` from the start, so a
//!   restart with millions of leases loads nothing and answers at once.
//! - **A lease is either fully present or fully gone.** Revocation deletes all three entries
//!   in one batch, after the engine's revoke callback succeeded (or on `revoke-force`). A
//!   crash mid-way through `revoke-prefix` leaves each lease revoked or still listed.
//! - **Bulk revocation is durable when it answers.** `revoke-prefix` and each expiry pass go
//!   through one [`BulkRevocation`]: its revocations run in [`with_unsynced_writes`] (each an
//!   atomic commit without an fsync), and it calls `Barrier::sync` every [`REVOKES_PER_SYNC`]
//!   and before returning, so a large revocation costs a few fsyncs, not one per group of
//!   leases.
//! - **Failed revocations are retried, not lost.** The lease is rescheduled with exponential
//!   backoff; after [`MAX_REVOKE_ATTEMPTS`] it is marked irrevocable and listed by
//!   `sys/leases?type=irrevocable` until force-revoked.

use crate::barrier::{with_unsynced_writes, Barrier, BarrierView};
use crate::mounts::{LeaseLimits, Router};
use crate::tokens::{TokenEntry, TokenStore};
use chrono::{DateTime, Utc};
use coffer_sdk::clock::format_time;
use coffer_sdk::clock::Clock;
use coffer_sdk::framework::Ctx;
use coffer_sdk::logical::SecretLease;
use coffer_sdk::view::{get_json, to_json, View, ViewOp};
use coffer_sdk::{Error, Operation, Request, Result};
use ring::digest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Revocation attempts before a lease is declared irrevocable.
pub const MAX_REVOKE_ATTEMPTS: u32 = 6;
/// Leases revoked per expiry pass; bounds the work the background task does at once.
pub const EXPIRY_BATCH: usize = 512;
/// Revocations in flight at once during expiry and prefix revocation. Each ends in a commit;
/// many in flight let group commit fold them into few transactions.
const REVOKE_CONCURRENCY: usize = 2048;
/// A prefix revocation syncs after this many revocations, not only at its end: redb cannot
/// reuse a page of the durable state freed by an unsynced commit until a durable commit, so
/// this bounds how far the file grows (about 4 pages, 16 KiB, per revoked token: 1 GiB) and
/// how much work a crash undoes while millions of leases go. It is also faster than one sync at
/// the end: revoking 100k of 1.1M leases on a cold cache took 14 s with no intermediate sync,
/// 12.5 s syncing every 4,096, 9.5 s every 16,384 and 8.4 s every 65,536.
const REVOKES_PER_SYNC: usize = 65_536;

/// What a lease stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LeaseKind {
    /// A secret issued by an engine; `internal` goes back to its revoke/renew callbacks.
    Secret {
        secret_type: String,
        internal: Map<String, Value>,
    },
    /// A token's own lease.
    Token { id_hash: String },
}

/// One lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseEntry {
    pub lease_id: String,
    /// Uuid of the mount that issued it (survives `sys/remount`); for a token's lease, of the
    /// auth mount whose login created the token, or `token` for the token store's own.
    pub mount_uuid: String,
    /// Request path below the mount that created it.
    pub path: String,
    pub kind: LeaseKind,
    /// Hash of the token whose request created it (revoked with that token).
    pub owner: Option<String>,
    #[serde(with = "coffer_sdk::clock::rfc3339")]
    pub issue_time: DateTime<Utc>,
    #[serde(with = "coffer_sdk::clock::rfc3339")]
    pub expire_time: DateTime<Utc>,
    #[serde(default, with = "coffer_sdk::clock::rfc3339::option")]
    pub last_renewal: Option<DateTime<Utc>>,
    /// Latest time renewals may reach.
    #[serde(with = "coffer_sdk::clock::rfc3339")]
    pub max_expire: DateTime<Utc>,
    /// TTL granted at issue, seconds.
    pub ttl: u64,
    pub renewable: bool,
    #[serde(default)]
    pub revoke_attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub irrevocable: bool,
}

/// Short, fixed-length name of a lease id for index keys.
pub fn lease_hash(lease_id: &str) -> String {
    coffer_sdk::lower_hex(&digest::digest(&digest::SHA256, lease_id.as_bytes()).as_ref()[..16])
}

fn index_key(at: DateTime<Utc>, lease_id: &str) -> String {
    format!(
        "index/{:016x}/{}",
        at.timestamp_millis().max(0),
        lease_hash(lease_id)
    )
}

fn owner_key(owner: &str, lease_id: &str) -> String {
    format!("owner/{owner}/{}", lease_hash(lease_id))
}

/// Storage of leases (`sys/expire/` in the barrier).
pub struct LeaseStore {
    pub view: BarrierView,
}

impl LeaseStore {
    /// Read a lease.
    pub async fn get(&self, lease_id: &str) -> Result<Option<LeaseEntry>> {
        if lease_id.is_empty() || lease_id.contains("..") || lease_id.contains("//") {
            return Ok(None);
        }
        get_json(&self.view, &format!("id/{lease_id}")).await
    }

    /// Write a new lease with its index and owner entries.
    pub async fn insert(&self, lease: &LeaseEntry) -> Result<()> {
        let ops = self.insert_ops(lease)?;
        self.view.barrier().batch(ops).await
    }

    /// The barrier ops (absolute keys) that [`LeaseStore::insert`] applies, for callers that
    /// must write a lease in the same batch as what it stands for.
    pub fn insert_ops(&self, lease: &LeaseEntry) -> Result<Vec<ViewOp>> {
        let mut ops = vec![ViewOp::Put {
            key: format!("id/{}", lease.lease_id),
            value: to_json(lease)?,
        }];
        if !lease.irrevocable {
            ops.push(ViewOp::Put {
                key: index_key(lease.expire_time, &lease.lease_id),
                value: lease.lease_id.clone().into_bytes(),
            });
        }
        if let Some(owner) = &lease.owner {
            ops.push(ViewOp::Put {
                key: owner_key(owner, &lease.lease_id),
                value: lease.lease_id.clone().into_bytes(),
            });
        }
        Ok(self.view.absolute(ops))
    }

    /// Replace a lease whose expiry (or state) changed, moving its index entry atomically.
    pub async fn update(&self, old: &LeaseEntry, new: &LeaseEntry) -> Result<()> {
        let ops = self.update_ops(old, new)?;
        self.view.barrier().batch(ops).await
    }

    /// The barrier ops of [`LeaseStore::update`].
    pub fn update_ops(&self, old: &LeaseEntry, new: &LeaseEntry) -> Result<Vec<ViewOp>> {
        let mut ops = vec![
            ViewOp::Delete {
                key: index_key(old.expire_time, &old.lease_id),
            },
            ViewOp::Put {
                key: format!("id/{}", new.lease_id),
                value: to_json(new)?,
            },
        ];
        if !new.irrevocable {
            ops.push(ViewOp::Put {
                key: index_key(new.expire_time, &new.lease_id),
                value: new.lease_id.clone().into_bytes(),
            });
        }
        Ok(self.view.absolute(ops))
    }

    /// Delete a lease and its index and owner entries in one batch.
    pub async fn remove(&self, lease: &LeaseEntry) -> Result<()> {
        let ops = self.remove_ops(lease);
        self.view.barrier().batch(ops).await
    }

    /// The barrier ops of [`LeaseStore::remove`].
    pub fn remove_ops(&self, lease: &LeaseEntry) -> Vec<ViewOp> {
        let mut ops = vec![
            ViewOp::Delete {
                key: format!("id/{}", lease.lease_id),
            },
            ViewOp::Delete {
                key: index_key(lease.expire_time, &lease.lease_id),
            },
        ];
        if let Some(owner) = &lease.owner {
            ops.push(ViewOp::Delete {
                key: owner_key(owner, &lease.lease_id),
            });
        }
        self.view.absolute(ops)
    }
}

/// The lease id of a token's own lease.
pub fn token_lease_id(entry: &TokenEntry) -> String {
    format!(
        "{}/{}",
        entry.path.trim_end_matches('/'),
        &entry.id_hash[..32]
    )
}

/// Whole seconds from `now` until `t`, rounded up (a fresh 1h lease reports 3600, not 3599).
pub fn secs_until(t: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    ((t - now).num_milliseconds().max(0) as u64).div_ceil(1000)
}

fn random_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    crate::barrier::random_bytes(24)
        .iter()
        .map(|b| ALPHABET[(*b as usize) % 62] as char)
        .collect()
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs((1u64 << attempts.min(8)).min(300))
}

/// The lease manager: registers, looks up, renews, revokes and expires leases, of secrets and
/// of tokens. Owned by the core; the token store reaches it only through [`TokenHooks`]
/// (it creates, renews and deletes a token's lease in the token's own batch).
///
/// [`TokenHooks`]: crate::tokens::TokenHooks
pub struct LeaseManager {
    /// The leases themselves (`sys/expire/`).
    pub store: LeaseStore,
    clock: Arc<dyn Clock>,
    barrier: Arc<Barrier>,
    router: Arc<Router>,
    tokens: Arc<TokenStore>,
    limits: LeaseLimits,
}

impl LeaseManager {
    /// A manager over `sys/expire/` that revokes through `router`'s engines and `tokens`.
    pub fn new(
        barrier: Arc<Barrier>,
        clock: Arc<dyn Clock>,
        router: Arc<Router>,
        tokens: Arc<TokenStore>,
        limits: LeaseLimits,
    ) -> LeaseManager {
        LeaseManager {
            store: LeaseStore {
                view: BarrierView::new(barrier.clone(), "sys/expire/"),
            },
            clock,
            barrier,
            router,
            tokens,
            limits,
        }
    }

    /// Register the lease of a secret an engine just issued. Fills `secret.lease_id` and clamps
    /// its TTL to the mount.
    pub(crate) async fn register_secret_lease(
        &self,
        secret: &mut SecretLease,
        mount: &coffer_sdk::MountInfo,
        rel_path: &str,
        owner: Option<&str>,
    ) -> Result<()> {
        let now = self.clock.now();
        let max_ttl = if secret.max_ttl.is_zero() {
            mount.max_lease_ttl
        } else {
            secret.max_ttl.min(mount.max_lease_ttl)
        };
        let ttl = if secret.ttl.is_zero() {
            mount.default_lease_ttl
        } else {
            secret.ttl
        }
        .min(max_ttl);
        let lease_id = format!(
            "{}{}/{}",
            mount.path,
            rel_path.trim_end_matches('/'),
            random_id()
        );
        let lease = LeaseEntry {
            lease_id: lease_id.clone(),
            mount_uuid: mount.uuid.clone(),
            path: rel_path.to_string(),
            kind: LeaseKind::Secret {
                secret_type: secret.kind.clone(),
                internal: secret.internal.clone(),
            },
            owner: owner.map(String::from),
            issue_time: now,
            expire_time: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
            last_renewal: None,
            max_expire: now + chrono::Duration::from_std(max_ttl).unwrap_or_default(),
            ttl: ttl.as_secs(),
            renewable: secret.renewable,
            revoke_attempts: 0,
            last_error: None,
            irrevocable: false,
        };
        self.store.insert(&lease).await?;
        secret.lease_id = lease_id;
        secret.ttl = ttl;
        Ok(())
    }

    /// Lease info as `sys/leases/lookup` shows it.
    pub async fn lookup(&self, lease_id: &str) -> Result<Value> {
        let lease = self
            .store
            .get(lease_id)
            .await?
            .ok_or_else(|| Error::bad("invalid lease"))?;
        let now = self.clock.now();
        Ok(json!({
            "id": lease.lease_id,
            "issue_time": format_time(lease.issue_time),
            "expire_time": format_time(lease.expire_time),
            "last_renewal": lease.last_renewal.map(format_time),
            "renewable": lease.renewable,
            "ttl": secs_until(lease.expire_time, now),
        }))
    }

    /// Renew a lease by `increment` (or its original TTL). Returns the new TTL and a warning
    /// when the TTL was capped by the lease's maximum.
    pub async fn renew(
        &self,
        lease_id: &str,
        increment: Option<Duration>,
        connection: &coffer_sdk::logical::Connection,
    ) -> Result<(LeaseEntry, Option<String>)> {
        let lease = self
            .store
            .get(lease_id)
            .await?
            .ok_or_else(|| Error::bad("invalid lease"))?;
        if lease.irrevocable {
            return Err(Error::bad("lease is irrevocable and cannot be renewed"));
        }
        match &lease.kind {
            LeaseKind::Token { id_hash } => {
                let token = self
                    .tokens
                    .lookup_by_hash(id_hash)
                    .await?
                    .ok_or_else(|| Error::bad("invalid lease"))?;
                let (_updated, warning) = self.tokens.renew(&token, increment, connection).await?;
                let refreshed = self
                    .store
                    .get(lease_id)
                    .await?
                    .ok_or_else(|| Error::bad("invalid lease"))?;
                Ok((refreshed, warning))
            }
            LeaseKind::Secret {
                secret_type,
                internal,
            } => {
                if !lease.renewable {
                    return Err(Error::bad("lease is not renewable"));
                }
                let (ctx, renew) = {
                    let (ctx, backend) = self.lease_ctx(&lease)?;
                    let renew = backend
                        .secret_type(secret_type)
                        .and_then(|t| t.renew.clone())
                        .ok_or_else(|| Error::bad("lease is not renewable"))?;
                    (ctx, renew)
                };
                let mount_max = ctx.mount.max_lease_ttl;
                renew(ctx, internal.clone()).await?;
                let now = self.clock.now();
                let wanted = increment
                    .filter(|d| !d.is_zero())
                    .unwrap_or(Duration::from_secs(lease.ttl));
                // The maximum fixed at issue, or the mount's as tuned since, whichever is less.
                let max_expire = chrono::Duration::from_std(mount_max)
                    .ok()
                    .and_then(|d| lease.issue_time.checked_add_signed(d))
                    .map_or(lease.max_expire, |t| t.min(lease.max_expire));
                let left = (max_expire - now).to_std().unwrap_or_default();
                let mut warning = None;
                let granted = if wanted > left {
                    warning = Some(format!(
                        "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                        coffer_sdk::duration::format_go(wanted),
                        coffer_sdk::duration::format_go(left)
                    ));
                    left
                } else {
                    wanted
                };
                let mut renewed = lease.clone();
                renewed.expire_time = now + chrono::Duration::from_std(granted).unwrap_or_default();
                renewed.last_renewal = Some(now);
                self.store.update(&lease, &renewed).await?;
                Ok((renewed, warning))
            }
        }
    }

    fn lease_ctx(&self, lease: &LeaseEntry) -> Result<(Ctx, Arc<coffer_sdk::Backend>)> {
        let table = self.router.table();
        let mounted = table
            .all()
            .iter()
            .find(|m| m.entry.uuid == lease.mount_uuid)
            .cloned()
            .ok_or_else(|| Error::bad("the mount that issued this lease no longer exists"))?;
        let ctx = Ctx {
            request: Request::new(Operation::Delete, lease.path.clone()),
            view: mounted.view.clone(),
            clock: self.clock.clone(),
            mount: mounted.info.clone(),
            params: Default::default(),
            rollback_log: None,
        };
        Ok((ctx, mounted.backend.clone()))
    }

    /// Revoke one lease. With `force`, the lease is removed even if the engine fails to revoke.
    pub async fn revoke(&self, lease_id: &str, force: bool) -> Result<()> {
        let lease = self
            .store
            .get(lease_id)
            .await?
            .ok_or_else(|| Error::bad("invalid lease"))?;
        self.revoke_lease_entry(lease, force).await
    }

    async fn revoke_lease_entry(&self, lease: LeaseEntry, force: bool) -> Result<()> {
        let mut token_was_live = false;
        let outcome = match &lease.kind {
            LeaseKind::Token { id_hash } => self.tokens.revoke_tree(id_hash).await.map(|existed| {
                token_was_live = existed;
            }),
            LeaseKind::Secret {
                secret_type,
                internal,
            } => match self.lease_ctx(&lease) {
                // The issuing mount is gone, so nothing can revoke the secret: that is a
                // failure (retried, then listed as irrevocable with this reason), never a
                // silent success. `revoke-force` removes such a lease.
                Err(e) => Err(e),
                Ok((ctx, backend)) => match backend.secret_type(secret_type) {
                    Some(t) => (t.revoke)(ctx, internal.clone()).await,
                    None => Err(Error::Internal(format!(
                        "the engine declares no secret type {secret_type:?} to revoke"
                    ))),
                },
            },
        };
        match outcome {
            Ok(()) => match lease.kind {
                // Revoking the token removed its lease in the same batch; only a lease whose
                // token was already gone is left to remove (a read, not another commit).
                LeaseKind::Token { .. } if token_was_live => Ok(()),
                LeaseKind::Token { .. } => self.store.remove(&lease).await,
                LeaseKind::Secret { .. } => self.store.remove(&lease).await,
            },
            Err(_) if force => self.store.remove(&lease).await,
            Err(e) => {
                let now = self.clock.now();
                let mut failed = lease.clone();
                failed.revoke_attempts += 1;
                failed.last_error = Some(e.to_string());
                if failed.revoke_attempts >= MAX_REVOKE_ATTEMPTS {
                    failed.irrevocable = true;
                    tracing::warn!(lease_id = %lease.lease_id, "lease is irrevocable after repeated failures");
                } else {
                    failed.expire_time = now
                        + chrono::Duration::from_std(backoff(failed.revoke_attempts))
                            .unwrap_or_default();
                }
                self.store.update(&lease, &failed).await?;
                Err(Error::bad(format!(
                    "failed to revoke lease {}: {e}",
                    lease.lease_id
                )))
            }
        }
    }

    /// Revoke every lease whose id starts with `prefix`, a page at a time. Returns how many.
    pub async fn revoke_prefix(self: &Arc<Self>, prefix: &str, force: bool) -> Result<usize> {
        let prefix = prefix.trim_start_matches('/');
        if prefix.contains("..") {
            return Err(Error::bad("invalid prefix"));
        }
        // Revocations stay REVOKE_CONCURRENCY deep across page boundaries (no barrier per page).
        let mut run = BulkRevocation::new(self, force);
        for (id_prefix, only_mount) in self.prefixes_for(prefix) {
            let mut pages = self.store.view.pages(format!("id/{id_prefix}"), 1024);
            while let Some(page) = pages.next().await? {
                for key in page {
                    run.start(key["id/".len()..].to_string(), only_mount.clone())
                        .await?;
                }
            }
        }
        let outcome = run.finish().await?;
        if let Some((_, first)) = outcome.failures.first() {
            return Err(Error::bad(format!(
                "{} of the leases under the prefix failed to revoke; first error: {first}",
                outcome.failures.len(),
            )));
        }
        Ok(outcome.revoked)
    }

    /// The lease-id prefixes a revocation of `prefix` covers, each with the mount (uuid) its
    /// leases must belong to. Lease ids keep the path their mount had when they were issued,
    /// so a mount moved by `sys/remount` is also looked for under its former paths; and a
    /// prefix inside a mount means that mount's leases only, not those of a mount that used
    /// to live at the same path.
    fn prefixes_for(&self, prefix: &str) -> Vec<(String, Option<String>)> {
        let table = self.router.table();
        let mut out = Vec::new();
        let within = table
            .all()
            .iter()
            .find(|m| prefix.starts_with(m.route_path.as_str()));
        out.push((prefix.to_string(), within.map(|m| m.entry.uuid.clone())));
        for mounted in table.all().iter() {
            let former_root = |former: &str| {
                if mounted.is_auth {
                    format!("auth/{former}")
                } else {
                    former.to_string()
                }
            };
            for former in &mounted.entry.former_paths {
                let former = former_root(former);
                let covered = if let Some(rest) = prefix.strip_prefix(mounted.route_path.as_str()) {
                    Some(format!("{former}{rest}"))
                } else if mounted.route_path.starts_with(prefix) {
                    Some(former)
                } else {
                    None
                };
                if let Some(p) = covered {
                    out.push((p, Some(mounted.entry.uuid.clone())));
                }
            }
        }
        out
    }

    /// Revoke the lease `id` if it still exists (another revocation may have got there first).
    /// With `only_mount`, a lease of another mount is left alone.
    async fn revoke_lease_by_id(
        &self,
        id: &str,
        force: bool,
        only_mount: Option<&str>,
    ) -> Result<()> {
        let Some(lease) = self.store.get(id).await? else {
            return Ok(());
        };
        // A lease's mount is its issuing mount's uuid, or for a token's lease the auth mount
        // whose login created the token (`token` for the token store's own), fixed when the
        // lease is written with the token (see `token_created`), so the token is not read.
        if only_mount.is_some_and(|mount| lease.mount_uuid != mount) {
            return Ok(());
        }
        self.revoke_lease_entry(lease, force).await
    }

    /// Revoke, at most `limit`, leases whose expiry has passed. Returns how many were attempted.
    pub async fn expire_due(self: &Arc<Self>, limit: usize) -> Result<usize> {
        let now_key = format!(
            "index/{:016x}",
            self.clock.now().timestamp_millis().max(0) + 1
        );
        let page = self.store.view.scan_page("index/", None, limit).await?;
        let mut ids = Vec::new();
        let mut stale = Vec::new();
        let mut count = 0;
        for key in page {
            if key.as_str() >= now_key.as_str() {
                break;
            }
            count += 1;
            let lease = match self.store.view.get(&key).await? {
                Some(id) => self.store.get(&String::from_utf8_lossy(&id)).await?,
                None => None,
            };
            match lease {
                // Only an entry that is this lease's current index entry expires it.
                Some(lease)
                    if !lease.irrevocable
                        && index_key(lease.expire_time, &lease.lease_id) == key =>
                {
                    ids.push(lease.lease_id)
                }
                // An entry outliving its lease (a revoked token's, see `token_revoking`), or
                // left by an older expiry, would otherwise sit at the front of the index
                // forever: drop it so expiry always makes progress.
                _ => stale.push(ViewOp::Delete { key }),
            }
        }
        // One batch for the page's stale entries: they are neighbours in the index.
        self.store.view.batch(stale).await?;
        let mut run = BulkRevocation::new(self, false);
        for id in ids {
            run.start(id, None).await?;
        }
        match run.finish().await {
            Ok(outcome) => {
                for (id, e) in outcome.failures {
                    tracing::debug!(lease_id = %id, error = %e, "expiry revocation failed; will retry");
                }
            }
            // Nothing of this pass is known durable; what a crash undoes expires again.
            Err(e) => tracing::debug!(error = %e, "expiry revocations not synced; will retry"),
        }
        Ok(count)
    }

    /// Count leases (all, or only irrevocable ones), by mount.
    pub async fn counts(
        &self,
        irrevocable_only: bool,
    ) -> Result<(usize, Map<String, Value>, Vec<Value>)> {
        let mut total = 0;
        let mut by_mount: Map<String, Value> = Map::new();
        let mut listed = Vec::new();
        let mut pages = self.store.view.pages("id/", 4096);
        while let Some(page) = pages.next().await? {
            for key in page {
                if irrevocable_only {
                    let Some(lease) = get_json::<LeaseEntry>(&self.store.view, &key).await? else {
                        continue;
                    };
                    if !lease.irrevocable {
                        continue;
                    }
                    listed.push(json!({"lease_id": lease.lease_id, "mount_id": lease.mount_uuid, "error": lease.last_error, "expire_time": format_time(lease.expire_time)}));
                }
                total += 1;
                let mount = key["id/".len()..]
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_string()
                    + "/";
                let n = by_mount.get(&mount).and_then(Value::as_u64).unwrap_or(0) + 1;
                by_mount.insert(mount, json!(n));
            }
        }
        Ok((total, by_mount, listed))
    }

    /// Remove index and owner entries that point at missing leases, and leases whose token is
    /// gone. Returns how many entries were removed.
    pub async fn tidy(&self) -> Result<usize> {
        let mut removed = 0;
        for prefix in ["index/", "owner/"] {
            let mut pages = self.store.view.pages(prefix, 4096);
            while let Some(page) = pages.next().await? {
                for key in page {
                    let Some(id) = self.store.view.get(&key).await? else {
                        continue;
                    };
                    let id = String::from_utf8_lossy(&id).into_owned();
                    if self.store.get(&id).await?.is_none() {
                        self.store.view.delete(&key).await?;
                        removed += 1;
                    }
                }
            }
        }
        let mut pages = self.store.view.pages("id/", 4096);
        while let Some(page) = pages.next().await? {
            for key in page {
                let Some(lease) = get_json::<LeaseEntry>(&self.store.view, &key).await? else {
                    continue;
                };
                if let LeaseKind::Token { id_hash } = &lease.kind {
                    if self.tokens.lookup_by_hash(id_hash).await?.is_none() {
                        self.store.remove(&lease).await?;
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// Many revocations at once, for revoke-prefix and expiry: at most [`REVOKE_CONCURRENCY`] in
/// flight, each committed unsynced (see [`with_unsynced_writes`]), synced every
/// [`REVOKES_PER_SYNC`] and by [`BulkRevocation::finish`], before the caller tells anyone.
struct BulkRevocation {
    manager: Arc<LeaseManager>,
    force: bool,
    in_flight: tokio::task::JoinSet<(String, Result<()>)>,
    started: usize,
    revoked: usize,
    /// Lease id and error of each failed revocation (a panicked task has no id).
    failures: Vec<(String, Error)>,
}

/// What a [`BulkRevocation`] did, once durable.
struct BulkOutcome {
    revoked: usize,
    failures: Vec<(String, Error)>,
}

impl BulkRevocation {
    fn new(manager: &Arc<LeaseManager>, force: bool) -> BulkRevocation {
        BulkRevocation {
            manager: manager.clone(),
            force,
            in_flight: tokio::task::JoinSet::new(),
            started: 0,
            revoked: 0,
            failures: Vec::new(),
        }
    }

    /// Start revoking lease `id`, once there is room in flight.
    async fn start(&mut self, id: String, only_mount: Option<String>) -> Result<()> {
        self.started += 1;
        if self.started.is_multiple_of(REVOKES_PER_SYNC) {
            self.manager.barrier.sync().await?;
        }
        while self.in_flight.len() >= REVOKE_CONCURRENCY {
            self.join_one().await;
        }
        let (manager, force) = (self.manager.clone(), self.force);
        self.in_flight.spawn(with_unsynced_writes(async move {
            let result = manager
                .revoke_lease_by_id(&id, force, only_mount.as_deref())
                .await;
            (id, result)
        }));
        Ok(())
    }

    /// Record the next revocation to end; false when none is in flight.
    async fn join_one(&mut self) -> bool {
        let Some(joined) = self.in_flight.join_next().await else {
            return false;
        };
        match joined {
            Ok((_, Ok(()))) => self.revoked += 1,
            Ok((id, Err(e))) => self.failures.push((id, e)),
            Err(e) => self
                .failures
                .push((String::new(), Error::Internal(e.to_string()))),
        }
        true
    }

    /// Wait for every revocation and make them all durable.
    async fn finish(mut self) -> Result<BulkOutcome> {
        while self.join_one().await {}
        if self.started > 0 {
            // A crash before this undoes whole revocations, never half of one, and the caller
            // has told nobody of them yet.
            self.manager.barrier.sync().await?;
        }
        Ok(BulkOutcome {
            revoked: self.revoked,
            failures: self.failures,
        })
    }
}

#[async_trait::async_trait]
impl crate::tokens::TokenHooks for LeaseManager {
    async fn token_created(&self, entry: &TokenEntry) -> Result<Vec<ViewOp>> {
        let Some(expire) = entry.expire_time else {
            return Ok(Vec::new());
        };
        let lease_id = token_lease_id(entry);
        let max_ttl = if entry.explicit_max_ttl > 0 {
            entry.explicit_max_ttl
        } else {
            self.limits.max_ttl.as_secs()
        };
        let lease = LeaseEntry {
            lease_id,
            // A login token belongs to its auth mount (revoking that mount revokes it).
            mount_uuid: entry.auth_mount.clone().unwrap_or_else(|| "token".into()),
            path: entry.path.clone(),
            kind: LeaseKind::Token {
                id_hash: entry.id_hash.clone(),
            },
            owner: None,
            issue_time: entry.creation_time,
            expire_time: expire,
            last_renewal: None,
            max_expire: entry.creation_time + chrono::Duration::seconds(max_ttl as i64),
            ttl: entry.creation_ttl,
            renewable: entry.renewable,
            revoke_attempts: 0,
            last_error: None,
            irrevocable: false,
        };
        self.store.insert_ops(&lease)
    }

    async fn token_renewed(&self, entry: &TokenEntry) -> Result<Vec<ViewOp>> {
        let lease_id = token_lease_id(entry);
        if let (Some(old), Some(expire)) = (self.store.get(&lease_id).await?, entry.expire_time) {
            let mut new = old.clone();
            new.expire_time = expire;
            new.last_renewal = Some(self.clock.now());
            return self.store.update_ops(&old, &new);
        }
        Ok(Vec::new())
    }

    fn mount_max_ttl(&self, auth_mount: Option<&str>) -> std::time::Duration {
        let table = self.router.table();
        let found = match auth_mount {
            Some(uuid) => table
                .all()
                .iter()
                .find(|m| m.is_auth && m.entry.uuid == uuid)
                .map(|m| m.info.max_lease_ttl),
            None => table
                .all()
                .iter()
                .find(|m| m.route_path == "auth/token/")
                .map(|m| m.info.max_lease_ttl),
        };
        found.unwrap_or(self.limits.max_ttl)
    }

    async fn check_renewal(
        &self,
        entry: &TokenEntry,
        connection: &coffer_sdk::logical::Connection,
    ) -> Result<()> {
        let Some(uuid) = &entry.auth_mount else {
            return Ok(());
        };
        let table = self.router.table();
        let mounted = table
            .all()
            .iter()
            .find(|m| m.is_auth && m.entry.uuid == *uuid)
            .cloned()
            .ok_or_else(|| {
                Error::Forbidden(
                    "the auth method that issued this token is no longer enabled".into(),
                )
            })?;
        let Some(check) = mounted.backend.login_renewal() else {
            return Ok(());
        };
        let mut request = Request::new(Operation::Update, "login");
        request.connection = connection.clone();
        request.mount_point = mounted.route_path.clone();
        let ctx = Ctx {
            request,
            view: mounted.view.clone(),
            clock: self.clock.clone(),
            mount: mounted.info.clone(),
            params: Default::default(),
            rollback_log: None,
        };
        check(
            ctx,
            coffer_sdk::logical::LoginRenewal {
                metadata: entry.meta.clone(),
                internal: entry.internal.clone(),
                alias_name: entry.alias_name.clone(),
                policies: entry.policies.clone(),
            },
        )
        .await
    }

    async fn token_revoking(&self, entry: &TokenEntry) -> Result<Vec<ViewOp>> {
        // Leases the token created go first; a failure keeps the token (and so the tree) so
        // the revocation can be retried.
        let prefix = format!("owner/{}/", entry.id_hash);
        let mut pages = self.store.view.pages(&prefix, 1024);
        while let Some(page) = pages.next().await? {
            for key in page {
                let Some(id) = self.store.view.get(&key).await? else {
                    continue;
                };
                let id = String::from_utf8_lossy(&id).into_owned();
                match self.store.get(&id).await? {
                    Some(lease) => Box::pin(self.revoke_lease_entry(lease, false)).await?,
                    None => self.store.view.delete(&key).await?,
                }
            }
        }
        crate::barrier::BarrierView::new(
            self.barrier.clone(),
            format!("cubbyhole/{}/", entry.id_hash),
        )
        .clear()
        .await?;
        // The token's own lease goes in the same batch as the token itself; its key follows
        // from the token entry, so no read is needed (deleting an absent key is harmless).
        //
        // Its expiry index entry is left behind on purpose: index keys are ordered by time, so
        // deleting them while revoking many tokens touches a random B-tree page per token (a
        // quarter of a large revoke-prefix's writes). The entry names only the lease id, and
        // `expire_due` drops it, in time order and in batches, when its time comes (as does
        // `sys/leases/tidy`).
        if entry.expire_time.is_none() {
            return Ok(Vec::new());
        }
        let lease_id = token_lease_id(entry);
        Ok(self.store.view.absolute(vec![ViewOp::Delete {
            key: format!("id/{lease_id}"),
        }]))
    }
}
