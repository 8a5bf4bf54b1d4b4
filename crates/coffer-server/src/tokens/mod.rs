//! The token store, mounted at `auth/token/`.
//!
//! Invariants kept here:
//! - A token is never stored. Its entry lives at `id/<HMAC-SHA256(salt, token)>`; the salt is
//!   per installation and lives in the barrier. Lookups hash the presented token and compare
//!   the stored hash in constant time.
//! - An accessor is derived from the token (`HMAC(accessor_key, token)`) and likewise stored
//!   only as a salted hash (`accessor/<hash>` → token hash), so neither is recoverable from
//!   storage.
//! - Every child is indexed under its parent (`parent/<parent hash>/<child hash>`), so revoking
//!   a parent revokes its whole tree.
//! - Token entries are cached in a [`Remembered`] map, each with the caller description built
//!   from it. Every change to a token replaces or forgets its cached entry after the change is
//!   stored, and a lookup caches what it read from storage only if no change happened while it
//!   read (a revocation finishing in between would otherwise leave the revoked entry cached).
//! - A client connection may remember the last token it presented with its entry
//!   ([`TokenMemo`]), so a repeat skips the salted hash. A memo is used only while the cache's
//!   generation (the epoch), which moves on with every change to a cached token and with the
//!   keys (seal, unseal), is the one it was taken at; the expiry is checked on every use.

use crate::barrier::{random_bytes, Barrier, BarrierView};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use coffer_sdk::cache::Remembered;
use coffer_sdk::clock::{format_time, Clock};
use coffer_sdk::logical::{Auth, Caller, Connection};
use coffer_sdk::view::{get_json, to_json, View, ViewOp};
use coffer_sdk::{Error, Result};
use parking_lot::RwLock;
use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const TOKEN_PREFIX: &str = "cs.";
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A stored token, keyed by the salted hash of its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub id_hash: String,
    pub accessor_hash: String,
    pub parent_hash: Option<String>,
    pub policies: Vec<String>,
    #[serde(default)]
    pub meta: Map<String, Value>,
    pub display_name: String,
    /// Remaining uses; 0 = unlimited.
    pub num_uses: i64,
    #[serde(with = "coffer_sdk::clock::rfc3339")]
    pub creation_time: DateTime<Utc>,
    /// TTL given at creation, seconds (0 = never expires).
    pub creation_ttl: u64,
    #[serde(default, with = "coffer_sdk::clock::rfc3339::option")]
    pub expire_time: Option<DateTime<Utc>>,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub renewable: bool,
    pub path: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub entity_id: String,
    #[serde(with = "coffer_sdk::clock::rfc3339")]
    pub issue_time: DateTime<Utc>,
    /// CIDR blocks the token may be used from (empty = anywhere).
    #[serde(default)]
    pub bound_cidrs: Vec<String>,
    /// Uuid of the auth mount whose login created this token; renewals ask it first.
    #[serde(default)]
    pub auth_mount: Option<String>,
    /// The login's identity alias name, for that renewal check.
    #[serde(default)]
    pub alias_name: String,
    /// The auth method's private data about the login (never shown in lookups).
    #[serde(default)]
    pub internal: Map<String, Value>,
    /// Seconds: the maximum TTL set by whatever issued the token (its auth method's role or
    /// user, or its token role); 0 = only the mount's and the system's maximums apply.
    #[serde(default)]
    pub max_ttl: u64,
    /// CIDR bindings of the token's creators: each list must allow the client address too, so
    /// a child is never usable from anywhere its parent was not.
    #[serde(default)]
    pub inherited_cidrs: Vec<Vec<String>>,
}

impl TokenEntry {
    /// Whether this token carries the root policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// Whether the token may be used from `addr`: its own binding and every creator's.
    pub fn usable_from(&self, addr: Option<std::net::SocketAddr>) -> bool {
        cidr_allows(&self.bound_cidrs, addr)
            && self
                .inherited_cidrs
                .iter()
                .all(|cidrs| cidr_allows(cidrs, addr))
    }

    /// Seconds left, 0 for non-expiring.
    pub fn remaining_ttl(&self, now: DateTime<Utc>) -> u64 {
        // Round up, so a token created with ttl=1h reports 3600 rather than 3599.
        self.expire_time
            .map(|t| ((t - now).num_milliseconds().max(0) as u64).div_ceil(1000))
            .unwrap_or(0)
    }
}

/// Whether a token bound to `cidrs` may be used from `addr` (unbound tokens: anywhere).
pub fn cidr_allows(cidrs: &[String], addr: Option<std::net::SocketAddr>) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let Some(addr) = addr else { return false };
    cidrs.iter().any(|c| {
        let c = c.trim();
        match c.parse::<ipnet::IpNet>() {
            Ok(net) => net.contains(&addr.ip()),
            Err(_) => c
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip == addr.ip()),
        }
    })
}

/// A token role (`auth/token/roles/:name`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenRole {
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    #[serde(default)]
    pub allowed_policies_glob: Vec<String>,
    #[serde(default)]
    pub disallowed_policies_glob: Vec<String>,
    #[serde(default)]
    pub token_bound_cidrs: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    pub token_period: u64,
    pub token_explicit_max_ttl: u64,
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    pub token_no_default_policy: bool,
    pub token_num_uses: i64,
    pub token_type: String,
}

#[derive(Serialize, Deserialize)]
struct Salts {
    salt: String,
    accessor_key: String,
}

struct Keys {
    salt: hmac::Key,
    accessor: hmac::Key,
}

/// A token just created: the secret itself (shown once), its accessor, and its entry.
pub struct IssuedToken {
    pub token: String,
    pub accessor: String,
    pub entry: TokenEntry,
}

/// Parameters for a new token, after policy and role checks.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    pub id: Option<String>,
    pub parent_hash: Option<String>,
    pub policies: Vec<String>,
    pub meta: Map<String, Value>,
    pub display_name: String,
    pub num_uses: i64,
    pub ttl: Duration,
    pub explicit_max_ttl: Duration,
    pub period: Duration,
    pub renewable: bool,
    pub path: String,
    pub role: Option<String>,
    pub bound_cidrs: Vec<String>,
    /// The creators' CIDR bindings, each of which must also allow the client.
    pub inherited_cidrs: Vec<Vec<String>>,
    /// Identity entity the token acts for ("" = none); children inherit it.
    pub entity_id: String,
    /// Ceiling for TTL and renewals (the auth mount's max); zero = system max.
    pub max_ttl: Duration,
    /// For login tokens: the auth mount's uuid, alias name and private login data.
    pub auth_mount: Option<String>,
    pub alias_name: String,
    pub internal: Map<String, Value>,
}

/// What else must happen when a token is created, renewed or revoked (its lease, the leases it
/// created, its cubbyhole). Implemented by the core; kept as a trait so the token store does
/// not depend on the lease manager.
#[async_trait::async_trait]
pub trait TokenHooks: Send + Sync {
    /// Barrier ops (absolute keys) to write in the same batch as a new token: its lease.
    async fn token_created(&self, entry: &TokenEntry) -> Result<Vec<ViewOp>>;
    /// Barrier ops to write in the same batch as a token whose expiry moved.
    async fn token_renewed(&self, entry: &TokenEntry) -> Result<Vec<ViewOp>>;
    /// A login token is being renewed: ask the auth method that issued it whether the login
    /// still holds (`connection` is the renewing request's, e.g. its client certificate).
    async fn check_renewal(&self, entry: &TokenEntry, connection: &Connection) -> Result<()>;
    /// A token is about to be deleted: revoke what it owns, and return the ops that delete
    /// its own lease in the same batch as the token.
    async fn token_revoking(&self, entry: &TokenEntry) -> Result<Vec<ViewOp>>;
    /// The current `max_lease_ttl` of the mount that issued the token (its auth method, or
    /// `auth/token/`), as tuned now: renewals never pass it.
    fn mount_max_ttl(&self, auth_mount: Option<&str>) -> Duration;
}

/// Cached token entries beyond this are dropped (idle tokens live in storage, not memory).
const TOKEN_CACHE_LIMIT: usize = 65_536;

/// The token store.
pub struct TokenStore {
    view: BarrierView,
    clock: Arc<dyn Clock>,
    keys: RwLock<Option<Arc<Keys>>>,
    /// Entries by token hash. Its generation is the epoch of [`TokenMemo`]s.
    cache: Remembered<String, Arc<CachedToken>>,
    /// System lease limits: default and max TTL for tokens.
    limits: RwLock<crate::mounts::LeaseLimits>,
    hooks: RwLock<Option<std::sync::Weak<dyn TokenHooks>>>,
    /// Held while a use of a limited-use token is counted.
    use_lock: tokio::sync::Mutex<()>,
}

/// A cached token entry and, once a request needed it, what engines are told about its
/// holder (built once: it costs an HMAC). The caller belongs to this entry: a change to the
/// token replaces both.
struct CachedToken {
    entry: Arc<TokenEntry>,
    caller: OnceLock<Arc<Caller>>,
}

impl CachedToken {
    fn new(entry: Arc<TokenEntry>) -> Arc<CachedToken> {
        Arc::new(CachedToken {
            entry,
            caller: OnceLock::new(),
        })
    }
}

/// A token found for a request: its live entry and what engines are told about its holder.
pub struct Authenticated {
    /// The token's entry.
    pub entry: Arc<TokenEntry>,
    /// The caller description engines get.
    pub caller: Arc<Caller>,
}

/// What one client connection remembers of the last token it presented, so that the next
/// request with the same token finds its entry without the salted hash (an HMAC per request
/// was the largest single cost of an authenticated read) or the shared caches.
///
/// Remembered only with the token cache's generation (the epoch) at the time of the lookup;
/// any later change to a token (a revocation, a use of a limited-use token, a renewal) or to
/// the keys (seal, unseal) moves the epoch on and the memo is ignored. The presented token is
/// compared with the remembered one in constant time, and the remembered copy is wiped when
/// replaced or when the connection ends.
#[derive(Default)]
pub struct TokenMemo {
    last: parking_lot::Mutex<Option<LastToken>>,
    /// Requests answered from the memo (tests show with it that the memo is used at all).
    recalled: AtomicU64,
}

/// A memo's token and what it was found to be.
struct LastToken {
    token: Zeroizing<String>,
    epoch: u64,
    entry: Arc<TokenEntry>,
    caller: Arc<Caller>,
    /// Whether `entry` and `caller` are this connection's own copies. The first lookup shares
    /// the cache's; a repeat makes private ones, so that each request's reference-count
    /// updates stay in memory only this connection's thread writes.
    private: bool,
}

impl TokenMemo {
    /// How many requests the memo has answered.
    pub fn recalled(&self) -> u64 {
        self.recalled.load(Ordering::Relaxed)
    }

    fn recall(&self, token: &str, epoch: u64) -> Option<Authenticated> {
        let mut last = self.last.lock();
        let remembered = last.as_mut()?;
        if remembered.epoch != epoch
            || remembered.token.len() != token.len()
            || !bool::from(remembered.token.as_bytes().ct_eq(token.as_bytes()))
        {
            return None;
        }
        if !remembered.private {
            remembered.entry = Arc::new((*remembered.entry).clone());
            remembered.caller = Arc::new((*remembered.caller).clone());
            remembered.private = true;
        }
        // Only this connection's thread writes it.
        self.recalled.fetch_add(1, Ordering::Relaxed);
        Some(Authenticated {
            entry: remembered.entry.clone(),
            caller: remembered.caller.clone(),
        })
    }

    fn remember(&self, token: &str, epoch: u64, found: &Authenticated) {
        *self.last.lock() = Some(LastToken {
            token: Zeroizing::new(token.to_string()),
            epoch,
            entry: found.entry.clone(),
            caller: found.caller.clone(),
            private: false,
        });
    }
}

fn encode_b62(bytes: &[u8], len: usize) -> String {
    bytes
        .iter()
        .take(len)
        .map(|b| BASE62[(*b as usize) % 62] as char)
        .collect()
}

impl TokenStore {
    /// A store over `sys/token/` in the barrier.
    pub fn new(
        barrier: Arc<Barrier>,
        clock: Arc<dyn Clock>,
        limits: crate::mounts::LeaseLimits,
    ) -> TokenStore {
        TokenStore {
            view: BarrierView::new(barrier, "sys/token/"),
            clock,
            keys: RwLock::new(None),
            cache: Remembered::new(TOKEN_CACHE_LIMIT),
            limits: RwLock::new(limits),
            hooks: RwLock::new(None),
            use_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Install lifecycle hooks.
    pub fn set_hooks(&self, hooks: std::sync::Weak<dyn TokenHooks>) {
        *self.hooks.write() = Some(hooks);
    }

    fn hooks(&self) -> Option<Arc<dyn TokenHooks>> {
        self.hooks.read().as_ref().and_then(|w| w.upgrade())
    }

    /// Cache `entry`, which a storage write just made the stored one: a change, so lookups
    /// that read storage before it do not cache what they read, and memos are dropped.
    fn cache_put(&self, hash: String, entry: Arc<TokenEntry>) {
        self.cache.replace(hash, CachedToken::new(entry));
    }

    /// The caller description engines get for `token` (whose entry is `entry`), cached with
    /// the entry while that is the cached one.
    pub fn caller(&self, token: &str, entry: &Arc<TokenEntry>) -> Result<Arc<Caller>> {
        let cached = self
            .cache
            .peek(entry.id_hash.as_str())
            .filter(|cached| Arc::ptr_eq(&cached.entry, entry));
        if let Some(caller) = cached.as_ref().and_then(|cached| cached.caller.get()) {
            return Ok(caller.clone());
        }
        let caller = Arc::new(Caller {
            accessor: self.accessor_of(token)?,
            display_name: entry.display_name.clone(),
            policies: entry.policies.clone(),
            entity_id: (!entry.entity_id.is_empty()).then(|| entry.entity_id.clone()),
            metadata: entry.meta.clone(),
            client_token: None,
            sudo: false,
        });
        if let Some(cached) = cached {
            // Another request may have set it meanwhile; theirs is the same description.
            let _ = cached.caller.set(caller.clone());
        }
        Ok(caller)
    }

    /// Load (or on first use create) the salts. Called after unseal.
    pub async fn load(&self) -> Result<()> {
        let salts = match get_json::<Salts>(&self.view, "salt").await? {
            Some(s) => s,
            None => {
                let b64 = base64::engine::general_purpose::STANDARD;
                let s = Salts {
                    salt: b64.encode(random_bytes(32)),
                    accessor_key: b64.encode(random_bytes(32)),
                };
                self.view.put("salt", to_json(&s)?).await?;
                s
            }
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = Zeroizing::new(
            b64.decode(&salts.salt)
                .map_err(|_| Error::Internal("token salt is corrupt".into()))?,
        );
        let acc = Zeroizing::new(
            b64.decode(&salts.accessor_key)
                .map_err(|_| Error::Internal("token salt is corrupt".into()))?,
        );
        *self.keys.write() = Some(Arc::new(Keys {
            salt: hmac::Key::new(hmac::HMAC_SHA256, &salt),
            accessor: hmac::Key::new(hmac::HMAC_SHA256, &acc),
        }));
        // New keys: memos and callers made with others must go.
        self.cache.forget();
        Ok(())
    }

    /// Forget keys and cached entries (on seal).
    pub fn unload(&self) {
        *self.keys.write() = None;
        self.cache.forget();
    }

    fn keys(&self) -> Result<Arc<Keys>> {
        self.keys.read().clone().ok_or(Error::Sealed)
    }

    /// Salted hash of a token or accessor: the only form in which either is stored.
    pub fn hash(&self, secret: &str) -> Result<String> {
        // Borrowed under the read lock rather than cloned out, which would write the keys'
        // shared reference count on every request.
        let keys = self.keys.read();
        let keys = keys.as_ref().ok_or(Error::Sealed)?;
        Ok(coffer_sdk::lower_hex(
            hmac::sign(&keys.salt, secret.as_bytes()).as_ref(),
        ))
    }

    /// The accessor of a token (derived, never stored).
    pub fn accessor_of(&self, token: &str) -> Result<String> {
        let tag = hmac::sign(&self.keys()?.accessor, token.as_bytes());
        Ok(encode_b62(tag.as_ref(), 24))
    }

    /// Current system lease limits.
    pub fn limits(&self) -> crate::mounts::LeaseLimits {
        *self.limits.read()
    }

    /// Find a live token. Expired tokens are revoked on sight and reported as absent.
    pub async fn lookup(&self, token: &str) -> Result<Option<Arc<TokenEntry>>> {
        if token.is_empty() || token.len() > 512 {
            return Ok(None);
        }
        let hash = self.hash(token)?;
        self.lookup_hash(&hash).await
    }

    /// Authenticate a request's `token`: its live entry (as [`TokenStore::lookup`] finds it)
    /// and its caller description. `memo` is the connection's, when the request came over one:
    /// a repeat of its last token is answered from it while nothing has changed since.
    pub async fn authenticate(
        &self,
        token: &str,
        memo: Option<&TokenMemo>,
    ) -> Result<Option<Authenticated>> {
        // Read before the lookup: a change during it leaves the memo taken at an older epoch.
        let epoch = self.cache.generation();
        if let Some(found) = memo.and_then(|m| m.recall(token, epoch)) {
            let live = found.entry.num_uses >= 0
                && found
                    .entry
                    .expire_time
                    .is_none_or(|exp| exp > self.clock.now());
            if live {
                return Ok(Some(found));
            }
            // Expired (or spent): the full lookup revokes it on sight.
        }
        // Boxed: the full lookup's state is large and a memo hit never needs it, while every
        // request's future would otherwise carry room for it (and be copied with it).
        let Some(entry) = Box::pin(self.lookup(token)).await? else {
            return Ok(None);
        };
        let caller = self.caller(token, &entry)?;
        let found = Authenticated { entry, caller };
        if let Some(memo) = memo {
            memo.remember(token, epoch, &found);
        }
        Ok(Some(found))
    }

    /// Like [`TokenStore::lookup`], but also finds a token whose last use is the request in
    /// flight (the token store's own handlers look up their caller again).
    pub async fn lookup_caller(&self, token: &str) -> Result<Option<Arc<TokenEntry>>> {
        if token.is_empty() || token.len() > 512 {
            return Ok(None);
        }
        let hash = self.hash(token)?;
        self.lookup_hash_with(&hash, true).await
    }

    /// Find a live token by its salted hash (for leases, which store only the hash).
    pub async fn lookup_by_hash(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>> {
        self.lookup_hash(hash).await
    }

    async fn lookup_hash(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>> {
        self.lookup_hash_with(hash, false).await
    }

    async fn lookup_hash_with(
        &self,
        hash: &str,
        allow_exhausted: bool,
    ) -> Result<Option<Arc<TokenEntry>>> {
        let stored = || async {
            let entry = get_json::<TokenEntry>(&self.view, &format!("id/{hash}")).await?;
            Ok::<_, Error>(entry.map(|entry| CachedToken::new(Arc::new(entry))))
        };
        let Some(cached) = self.cache.get_or_load(hash, stored).await? else {
            return Ok(None);
        };
        let entry = cached.entry.clone();
        if !bool::from(entry.id_hash.as_bytes().ct_eq(hash.as_bytes()))
            || (entry.num_uses < 0 && !allow_exhausted)
        {
            return Ok(None);
        }
        if let Some(exp) = entry.expire_time {
            if exp <= self.clock.now() {
                self.revoke_tree(hash).await?;
                return Ok(None);
            }
        }
        Ok(Some(entry))
    }

    /// Find a token by accessor.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<Arc<TokenEntry>>> {
        if accessor.is_empty() || accessor.len() > 128 {
            return Ok(None);
        }
        let acc_hash = self.hash(accessor)?;
        let Some(id_hash) = self.view.get(&format!("accessor/{acc_hash}")).await? else {
            return Ok(None);
        };
        let id_hash = String::from_utf8(id_hash)
            .map_err(|_| Error::Internal("corrupt accessor index".into()))?;
        self.lookup_hash(&id_hash).await
    }

    /// Count one use of a limited-use token. Returns true when this was its last use: the
    /// caller revokes it after the request it authorises has run (Vault's order). An exhausted
    /// token is stored with `num_uses = -1` so a concurrent request cannot use it again.
    pub async fn use_token(&self, entry: &TokenEntry) -> Result<bool> {
        if entry.num_uses == 0 {
            return Ok(false);
        }
        // Count under one lock, from the stored count rather than the caller's snapshot, so
        // concurrent requests with one token never spend the same use twice. Only limited-use
        // tokens take it.
        let _counting = self.use_lock.lock().await;
        let current = get_json::<TokenEntry>(&self.view, &format!("id/{}", entry.id_hash))
            .await?
            .ok_or(Error::PermissionDenied)?;
        if current.num_uses <= 0 {
            return Err(Error::PermissionDenied);
        }
        let mut updated = current;
        updated.num_uses -= 1;
        let last = updated.num_uses == 0;
        if last {
            updated.num_uses = -1;
        }
        self.save(&updated).await?;
        Ok(last)
    }

    /// Apply this store's ops plus `extra` (absolute barrier keys) as one atomic batch: a token
    /// and its lease are never written or deleted apart.
    async fn batch_with(&self, ops: Vec<ViewOp>, extra: Vec<ViewOp>) -> Result<()> {
        let mut all = self.view.absolute(ops);
        all.extend(extra);
        self.view.barrier().batch(all).await
    }

    async fn save(&self, entry: &TokenEntry) -> Result<()> {
        self.save_with(entry, Vec::new()).await
    }

    async fn save_with(&self, entry: &TokenEntry, extra: Vec<ViewOp>) -> Result<()> {
        self.batch_with(
            vec![ViewOp::Put {
                key: format!("id/{}", entry.id_hash),
                value: to_json(entry)?,
            }],
            extra,
        )
        .await?;
        self.cache_put(entry.id_hash.clone(), Arc::new(entry.clone()));
        Ok(())
    }

    /// Create and persist a token. Returns the token and its entry.
    pub async fn create(&self, req: NewToken) -> Result<(String, TokenEntry)> {
        let issued = self.issue(req).await?;
        Ok((issued.token, issued.entry))
    }

    /// Create and persist a token, keeping its accessor for the `auth` block (deriving it
    /// again would cost another HMAC on every login).
    pub async fn issue(&self, req: NewToken) -> Result<IssuedToken> {
        let token = match &req.id {
            Some(id) => {
                if id.is_empty() || id.len() > 256 || id.contains(char::is_whitespace) {
                    return Err(Error::bad(
                        "custom token id must be 1-256 characters without whitespace",
                    ));
                }
                if self.lookup(id).await?.is_some() {
                    return Err(Error::bad("cannot create a token with a duplicate ID"));
                }
                id.clone()
            }
            None => format!("{TOKEN_PREFIX}{}", encode_b62(&random_bytes(64), 32)),
        };
        let now = self.clock.now();
        let id_hash = self.hash(&token)?;
        let accessor = self.accessor_of(&token)?;
        let accessor_hash = self.hash(&accessor)?;
        let limits = self.limits();
        let mut ttl = if req.period > Duration::ZERO {
            req.period
        } else {
            req.ttl
        };
        let root_without_ttl = req.policies.iter().any(|p| p == "root")
            && ttl.is_zero()
            && req.path == "auth/token/root";
        if ttl.is_zero() && !root_without_ttl {
            ttl = limits.default_ttl;
        }
        let max_ttl = self.effective_max_ttl(req.auth_mount.as_deref(), req.max_ttl.as_secs());
        if req.period.is_zero() && ttl > max_ttl && !root_without_ttl {
            ttl = max_ttl;
        }
        if !req.explicit_max_ttl.is_zero() && ttl > req.explicit_max_ttl {
            ttl = req.explicit_max_ttl;
        }
        let expire_time = if ttl.is_zero() {
            None
        } else {
            Some(now + chrono::Duration::from_std(ttl).map_err(|_| Error::bad("ttl too large"))?)
        };
        let entry = TokenEntry {
            id_hash: id_hash.clone(),
            accessor_hash: accessor_hash.clone(),
            parent_hash: req.parent_hash.clone(),
            policies: req.policies,
            meta: req.meta,
            display_name: req.display_name,
            num_uses: req.num_uses,
            creation_time: now,
            creation_ttl: ttl.as_secs(),
            expire_time,
            explicit_max_ttl: req.explicit_max_ttl.as_secs(),
            period: req.period.as_secs(),
            renewable: req.renewable && expire_time.is_some(),
            path: req.path,
            role: req.role,
            entity_id: req.entity_id,
            issue_time: now,
            bound_cidrs: req.bound_cidrs,
            auth_mount: req.auth_mount,
            alias_name: req.alias_name,
            internal: req.internal,
            max_ttl: req.max_ttl.as_secs(),
            inherited_cidrs: req.inherited_cidrs,
        };
        let mut ops = vec![
            ViewOp::Put {
                key: format!("id/{id_hash}"),
                value: to_json(&entry)?,
            },
            ViewOp::Put {
                key: format!("accessor/{accessor_hash}"),
                value: id_hash.clone().into_bytes(),
            },
        ];
        if let Some(parent) = &req.parent_hash {
            ops.push(ViewOp::Put {
                key: format!("parent/{parent}/{id_hash}"),
                value: Vec::new(),
            });
        }
        let lease_ops = match self.hooks() {
            Some(hooks) => hooks.token_created(&entry).await?,
            None => Vec::new(),
        };
        self.batch_with(ops, lease_ops).await?;
        // Not cached here: the first lookup caches it. A login's token is often never
        // presented to this server, and caching every new token cost each login a copy of its
        // entry, a later eviction, and an epoch move that made every connection's memo look
        // its token up again; a token nobody has looked up cannot be in any memo.
        Ok(IssuedToken {
            token,
            accessor,
            entry,
        })
    }

    /// The longest life a token may have from its creation: the smallest of the system
    /// maximum, its mount's maximum as tuned now, and the maximum its issuer set (`own`,
    /// seconds, 0 = none).
    pub fn effective_max_ttl(&self, auth_mount: Option<&str>, own: u64) -> Duration {
        let mut max = self.limits().max_ttl;
        if let Some(hooks) = self.hooks() {
            let mount = hooks.mount_max_ttl(auth_mount);
            if !mount.is_zero() {
                max = max.min(mount);
            }
        }
        if own > 0 {
            max = max.min(Duration::from_secs(own));
        }
        max
    }

    /// Revoke a token and, depth first, every descendant.
    /// Returns whether the token itself still existed.
    pub async fn revoke_tree(&self, id_hash: &str) -> Result<bool> {
        let mut stack = vec![id_hash.to_string()];
        let mut order = Vec::new();
        while let Some(h) = stack.pop() {
            let children = self.view.list(&format!("parent/{h}/")).await?;
            stack.extend(children.into_iter().filter(|c| !c.ends_with('/')));
            order.push(h);
        }
        // Children first, so a crash part-way never leaves a child whose parent is gone but
        // which is itself still valid and unreachable from any tree.
        let mut root_existed = false;
        for h in order.into_iter().rev() {
            root_existed = self.revoke_one(&h).await?;
        }
        Ok(root_existed)
    }

    /// Returns whether the token existed.
    async fn revoke_one(&self, id_hash: &str) -> Result<bool> {
        let entry = get_json::<TokenEntry>(&self.view, &format!("id/{id_hash}")).await?;
        let lease_ops = match (&entry, self.hooks()) {
            (Some(e), Some(hooks)) => hooks.token_revoking(e).await?,
            _ => Vec::new(),
        };
        let mut ops = vec![ViewOp::Delete {
            key: format!("id/{id_hash}"),
        }];
        if let Some(e) = &entry {
            ops.push(ViewOp::Delete {
                key: format!("accessor/{}", e.accessor_hash),
            });
            if let Some(p) = &e.parent_hash {
                ops.push(ViewOp::Delete {
                    key: format!("parent/{p}/{id_hash}"),
                });
            }
        }
        self.batch_with(ops, lease_ops).await?;
        self.cache.forget_key(id_hash);
        Ok(entry.is_some())
    }

    /// Revoke only this token; its children become orphans.
    pub async fn revoke_orphan(&self, id_hash: &str) -> Result<()> {
        let children = self.view.list(&format!("parent/{id_hash}/")).await?;
        for child in children.into_iter().filter(|c| !c.ends_with('/')) {
            if let Some(mut e) = get_json::<TokenEntry>(&self.view, &format!("id/{child}")).await? {
                e.parent_hash = None;
                self.view
                    .batch(vec![
                        ViewOp::Put {
                            key: format!("id/{child}"),
                            value: to_json(&e)?,
                        },
                        ViewOp::Delete {
                            key: format!("parent/{id_hash}/{child}"),
                        },
                    ])
                    .await?;
                self.cache_put(child.clone(), Arc::new(e));
            }
        }
        self.revoke_one(id_hash).await.map(|_| ())
    }

    /// Extend a token's life. Returns the updated entry and a warning when the TTL was capped.
    pub async fn renew(
        &self,
        entry: &TokenEntry,
        increment: Option<Duration>,
        connection: &Connection,
    ) -> Result<(TokenEntry, Option<String>)> {
        if !entry.renewable || entry.expire_time.is_none() {
            return Err(Error::bad("lease is not renewable"));
        }
        if entry.auth_mount.is_some() {
            if let Some(hooks) = self.hooks() {
                hooks.check_renewal(entry, connection).await?;
            }
        }
        let now = self.clock.now();
        let age = (now - entry.creation_time).to_std().unwrap_or_default();
        let mut warning = None;
        let mut ttl = if entry.period > 0 {
            // Periodic tokens renew for their period each time and have no maximum other
            // than an explicit one (Vault's rule).
            Duration::from_secs(entry.period)
        } else {
            let wanted = increment
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(entry.creation_ttl));
            let max = self.effective_max_ttl(entry.auth_mount.as_deref(), entry.max_ttl);
            let max_left = max.saturating_sub(age);
            if wanted > max_left {
                warning = Some(format!(
                    "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                    coffer_sdk::duration::format_go(wanted),
                    coffer_sdk::duration::format_go(max_left)
                ));
                max_left
            } else {
                wanted
            }
        };
        if entry.explicit_max_ttl > 0 {
            let left = Duration::from_secs(entry.explicit_max_ttl).saturating_sub(age);
            if ttl > left {
                warning = Some(format!(
                    "TTL of \"{}\" exceeded the explicit max TTL; TTL value is capped to \"{}\"",
                    coffer_sdk::duration::format_go(ttl),
                    coffer_sdk::duration::format_go(left)
                ));
                ttl = left;
            }
        }
        let mut updated = entry.clone();
        updated.expire_time =
            Some(now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::zero()));
        let lease_ops = match self.hooks() {
            Some(hooks) => hooks.token_renewed(&updated).await?,
            None => Vec::new(),
        };
        self.save_with(&updated, lease_ops).await?;
        Ok((updated, warning))
    }

    /// Repair the indexes after crashes or partial failures: drop accessor and parent entries
    /// pointing at missing tokens, revoke children whose parent is gone (they would otherwise
    /// outlive a revoked tree), and revoke expired tokens. Returns counts of what was done.
    pub async fn tidy(&self) -> Result<Value> {
        let mut dangling_accessors = 0;
        let mut dangling_parent_links = 0;
        let mut orphaned_children_revoked = 0;
        let mut expired_revoked = 0;
        for acc in self.view.list("accessor/").await? {
            let key = format!("accessor/{acc}");
            let Some(id) = self.view.get(&key).await? else {
                continue;
            };
            if self
                .view
                .get(&format!("id/{}", String::from_utf8_lossy(&id)))
                .await?
                .is_none()
            {
                self.view.delete(&key).await?;
                dangling_accessors += 1;
            }
        }
        for parent in self.view.list("parent/").await? {
            let parent = parent.trim_end_matches('/').to_string();
            let parent_alive = self.view.get(&format!("id/{parent}")).await?.is_some();
            for child in self.view.list(&format!("parent/{parent}/")).await? {
                let link = format!("parent/{parent}/{child}");
                if self.view.get(&format!("id/{child}")).await?.is_none() {
                    self.view.delete(&link).await?;
                    dangling_parent_links += 1;
                } else if !parent_alive {
                    self.revoke_tree(&child).await?;
                    self.view.delete(&link).await?;
                    orphaned_children_revoked += 1;
                }
            }
        }
        let now = self.clock.now();
        for id in self.view.list("id/").await? {
            if let Some(entry) = get_json::<TokenEntry>(&self.view, &format!("id/{id}")).await? {
                if entry.expire_time.is_some_and(|t| t <= now) {
                    self.revoke_tree(&id).await?;
                    expired_revoked += 1;
                }
            }
        }
        Ok(json!({
            "dangling_accessors_removed": dangling_accessors,
            "dangling_parent_links_removed": dangling_parent_links,
            "children_of_missing_parents_revoked": orphaned_children_revoked,
            "expired_tokens_revoked": expired_revoked,
        }))
    }

    /// Persist a role.
    pub async fn put_role(&self, role: &TokenRole) -> Result<()> {
        self.view
            .put(&format!("roles/{}", role.name), to_json(role)?)
            .await
    }

    /// Role names.
    pub async fn list_roles(&self) -> Result<Vec<String>> {
        self.view.list("roles/").await
    }

    /// Delete a role (absent is fine).
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.view.delete(&format!("roles/{name}")).await
    }

    /// Read a role.
    pub async fn get_role(&self, name: &str) -> Result<Option<TokenRole>> {
        get_json(&self.view, &format!("roles/{name}")).await
    }

    /// The `auth` block for a token.
    pub fn auth_block(&self, token: &str, entry: &TokenEntry) -> Result<Auth> {
        Ok(self.auth_block_with(token, self.accessor_of(token)?, entry))
    }

    /// The `auth` block for a token just issued.
    pub fn issued_auth_block(&self, issued: &IssuedToken) -> Auth {
        self.auth_block_with(&issued.token, issued.accessor.clone(), &issued.entry)
    }

    fn auth_block_with(&self, token: &str, accessor: String, entry: &TokenEntry) -> Auth {
        let now = self.clock.now();
        Auth {
            client_token: token.to_string(),
            accessor,
            policies: entry.policies.clone(),
            token_policies: entry.policies.clone(),
            identity_policies: None,
            metadata: if entry.meta.is_empty() {
                None
            } else {
                Some(entry.meta.clone())
            },
            lease_duration: entry.remaining_ttl(now),
            renewable: entry.renewable,
            entity_id: entry.entity_id.clone(),
            token_type: "service".into(),
            orphan: entry.parent_hash.is_none(),
            mfa_requirement: None,
            num_uses: entry.num_uses.max(0) as u64,
        }
    }

    /// The `data` of a lookup, as Vault shapes it. `id` is shown only to the token's holder.
    pub fn lookup_data(&self, entry: &TokenEntry, id: &str, accessor: &str) -> Value {
        let now = self.clock.now();
        json!({
            "accessor": accessor,
            "bound_cidrs": entry.bound_cidrs,
            "creation_time": entry.creation_time.timestamp(),
            "creation_ttl": entry.creation_ttl,
            "display_name": entry.display_name,
            "entity_id": entry.entity_id,
            "expire_time": entry.expire_time.map(format_time),
            "explicit_max_ttl": entry.explicit_max_ttl,
            "id": id,
            "issue_time": format_time(entry.issue_time),
            "meta": if entry.meta.is_empty() { Value::Null } else { Value::Object(entry.meta.clone()) },
            "num_uses": entry.num_uses,
            "orphan": entry.parent_hash.is_none(),
            "path": entry.path,
            "period": if entry.period > 0 { json!(entry.period) } else { Value::Null },
            "policies": entry.policies,
            "renewable": entry.renewable,
            "role": entry.role.clone().unwrap_or_default(),
            "ttl": entry.remaining_ttl(now),
            "type": "service",
        })
    }
}

mod paths;
pub use paths::backend;

#[cfg(test)]
mod token_cache_tests {
    use super::*;
    use crate::mounts::LeaseLimits;
    use coffer_sdk::clock::ManualClock;
    use coffer_storage::MemoryStorage;

    async fn store_with_token() -> (TokenStore, String, String) {
        let barrier = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
        barrier.initialize(Utc::now()).await.unwrap();
        let limits = LeaseLimits {
            default_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(7200),
        };
        let store = TokenStore::new(barrier, Arc::new(ManualClock::new()), limits);
        store.load().await.unwrap();
        let (token, entry) = store
            .create(NewToken {
                policies: vec!["default".into()],
                ..NewToken::default()
            })
            .await
            .unwrap();
        (store, token, entry.id_hash)
    }

    /// A lookup that missed the cache read the entry, then the token was revoked before the
    /// lookup cached what it read: the revoked entry must not be cached and accepted after.
    #[tokio::test]
    async fn a_lookup_that_read_storage_before_a_revocation_caches_nothing() {
        let (store, _, hash) = store_with_token().await;
        let stored = || async {
            let read = get_json::<TokenEntry>(&store.view, &format!("id/{hash}")).await?;
            // The revocation finishes between the lookup's storage read and its fill.
            assert!(store.revoke_one(&hash).await?);
            Ok::<_, Error>(read.map(|entry| CachedToken::new(Arc::new(entry))))
        };
        let read = store.cache.get_or_load(hash.as_str(), stored).await;
        assert!(read.unwrap().is_some(), "the lookup read the entry first");
        assert!(store.cache.peek(hash.as_str()).is_none());
        assert!(store.lookup_hash(&hash).await.unwrap().is_none());
    }

    /// A token is cached by its first lookup, not when it is issued, and that fill leaves the
    /// epoch (and so every connection's memo) as it was.
    #[tokio::test]
    async fn the_first_lookup_caches_a_token_without_moving_the_epoch() {
        let (store, _, hash) = store_with_token().await;
        assert!(store.cache.peek(hash.as_str()).is_none(), "cached on issue");
        let before = store.cache.generation();
        assert!(store.lookup_hash(&hash).await.unwrap().is_some());
        assert!(store.cache.peek(hash.as_str()).is_some());
        assert_eq!(store.cache.generation(), before);
    }

    /// The caller description is cached with the entry it was built from: a change to the
    /// token brings a description of the changed entry, never the old one.
    #[tokio::test]
    async fn a_changed_token_is_described_from_its_new_entry() {
        let (store, token, hash) = store_with_token().await;
        let entry = store.lookup(&token).await.unwrap().unwrap();
        let first = store.caller(&token, &entry).unwrap();
        assert!(
            Arc::ptr_eq(&first, &store.caller(&token, &entry).unwrap()),
            "not cached"
        );
        assert_eq!(first.policies, vec!["default".to_string()]);
        let mut changed = TokenEntry::clone(&entry);
        changed.policies = vec!["default".into(), "ops".into()];
        store.save(&changed).await.unwrap();
        let entry = store.lookup_hash(&hash).await.unwrap().unwrap();
        let second = store.caller(&token, &entry).unwrap();
        assert_eq!(second.policies, changed.policies);
        // An entry that is not the cached one (a request's own copy) is described apart.
        let old = store
            .caller(&token, &Arc::new(TokenEntry::clone(&entry)))
            .unwrap();
        assert!(!Arc::ptr_eq(&old, &second));
    }
}
