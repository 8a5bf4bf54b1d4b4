//! The mount table: which engine serves which path prefix, and the router that finds it.
//!
//! Invariant: a mount's storage view is `logical/<uuid>/` (secrets) or `auth/<uuid>/` (auth
//! methods), derived from its uuid, never from its path. So moving a mount (`sys/remount`)
//! moves no data, and no path an engine can name reaches another mount's entries.

use crate::barrier::{Barrier, BarrierView};
use coffer_sdk::catalog::{Catalog, EngineClass};
use coffer_sdk::framework::{Backend, MountInfo};
use coffer_sdk::view::get_json;
use coffer_sdk::{Error, Result, View};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Barrier path of the secrets-engine mount table.
pub const MOUNTS_PATH: &str = "core/mounts";
/// Barrier path of the auth-method mount table.
pub const AUTH_PATH: &str = "core/auth";

/// Per-mount tunables.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MountConfig {
    /// Seconds; 0 means "use the system default".
    #[serde(default)]
    pub default_lease_ttl: u64,
    /// Seconds; 0 means "use the system maximum".
    #[serde(default)]
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default)]
    pub listing_visibility: String,
    #[serde(default)]
    pub audit_non_hmac_request_keys: Vec<String>,
    #[serde(default)]
    pub audit_non_hmac_response_keys: Vec<String>,
    #[serde(default)]
    pub passthrough_request_headers: Vec<String>,
}

/// One mounted engine or auth method.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountEntry {
    /// Path below `/v1/` (auth mounts below `auth/`), with trailing slash.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    #[serde(default)]
    pub config: MountConfig,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
    /// Paths the mount had before `sys/remount` moved it, oldest first: lease ids issued there
    /// keep their path, so revocations by path look under these too.
    #[serde(default)]
    pub former_paths: Vec<String>,
}

/// System-wide lease limits (from the server config).
#[derive(Debug, Clone, Copy)]
pub struct LeaseLimits {
    pub default_ttl: Duration,
    pub max_ttl: Duration,
}

impl MountEntry {
    /// What the engine is told about its mount.
    pub fn info(&self, limits: LeaseLimits) -> MountInfo {
        let max = if self.config.max_lease_ttl > 0 {
            Duration::from_secs(self.config.max_lease_ttl)
        } else {
            limits.max_ttl
        };
        let default = if self.config.default_lease_ttl > 0 {
            Duration::from_secs(self.config.default_lease_ttl)
        } else {
            limits.default_ttl
        };
        MountInfo {
            path: self.path.clone(),
            kind: self.kind.clone(),
            uuid: self.uuid.clone(),
            options: self.options.clone(),
            default_lease_ttl: default.min(max),
            max_lease_ttl: max,
        }
    }

    /// The storage prefix of this mount.
    pub fn storage_prefix(&self, is_auth: bool) -> String {
        if is_auth {
            format!("auth/{}/", self.uuid)
        } else {
            format!("logical/{}/", self.uuid)
        }
    }
}

/// A mount ready to serve.
pub struct Mounted {
    /// Full routing prefix, e.g. `secret/` or `auth/token/`.
    pub route_path: String,
    pub entry: MountEntry,
    pub is_auth: bool,
    pub backend: Arc<Backend>,
    pub view: Arc<dyn View>,
    pub info: Arc<MountInfo>,
}

/// Immutable snapshot of all mounts, longest prefix first.
#[derive(Default)]
pub struct RouteTable {
    mounts: Vec<Arc<Mounted>>,
}

impl RouteTable {
    /// The mount serving `path` and the path relative to it. `secret` matches `secret/`.
    ///
    /// The mount is lent, not cloned: its reference count is shared by every request to the
    /// mount on every core, and writing it on each request made the cores wait for the line.
    pub fn resolve(&self, path: &str) -> Option<(&Arc<Mounted>, String)> {
        for m in &self.mounts {
            if let Some(rest) = path.strip_prefix(m.route_path.as_str()) {
                return Some((m, rest.to_string()));
            }
            if path.len() + 1 == m.route_path.len() && m.route_path.starts_with(path) {
                return Some((m, String::new()));
            }
        }
        None
    }

    /// Every mount.
    pub fn all(&self) -> &[Arc<Mounted>] {
        &self.mounts
    }
}

/// What a reload of the mount tables changed: engines built new (to `init`) and engines no
/// longer serving (to `cleanup`).
#[derive(Default)]
pub struct MountChanges {
    pub added: Vec<Arc<Mounted>>,
    pub removed: Vec<Arc<Mounted>>,
}

/// The live routing table plus the persistent mount tables.
pub struct Router {
    table: RwLock<Arc<RouteTable>>,
    builtins: RwLock<Vec<Arc<Mounted>>>,
    /// Every engine kind that can be mounted, filled in by the binary.
    catalog: Arc<Catalog>,
}

fn class_of(is_auth: bool) -> EngineClass {
    if is_auth {
        EngineClass::Auth
    } else {
        EngineClass::Secrets
    }
}

impl Router {
    /// An empty router over `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Router {
        Router {
            table: RwLock::new(Arc::new(RouteTable::default())),
            builtins: RwLock::new(Vec::new()),
            catalog,
        }
    }

    /// The engine kinds this server knows.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Whether a type can be enabled by users (as an auth method when `is_auth`).
    pub fn knows(&self, kind: &str, is_auth: bool) -> bool {
        self.catalog
            .get(class_of(is_auth), kind)
            .is_some_and(|e| e.user_mountable)
    }

    /// The 400 for enabling a type the catalog does not have, listing the ones it has.
    pub fn unknown_type(&self, kind: &str, is_auth: bool) -> Error {
        let what = if is_auth {
            "auth method"
        } else {
            "secrets engine"
        };
        let mut known = self.catalog.mountable(class_of(is_auth));
        if is_auth {
            known.insert(0, "token (built in)");
        }
        Error::bad(format!(
            "unknown {what} type \"{kind}\"; known types: {}",
            known.join(", ")
        ))
    }

    /// Build the engine for a mount entry.
    pub fn build_backend(
        &self,
        entry: &MountEntry,
        info: &MountInfo,
        is_auth: bool,
    ) -> Result<Backend> {
        match self.catalog.get(class_of(is_auth), &entry.kind) {
            Some(catalog_entry) => (catalog_entry.factory)(info),
            None => Err(self.unknown_type(&entry.kind, is_auth)),
        }
    }

    /// Build a live mount from an entry.
    pub fn mount(
        &self,
        barrier: &Arc<Barrier>,
        entry: MountEntry,
        is_auth: bool,
        limits: LeaseLimits,
    ) -> Result<Mounted> {
        let info = Arc::new(entry.info(limits));
        let backend = Arc::new(self.build_backend(&entry, &info, is_auth)?);
        let view: Arc<dyn View> = Arc::new(BarrierView::new(
            barrier.clone(),
            entry.storage_prefix(is_auth),
        ));
        let route_path = if is_auth {
            format!("auth/{}", entry.path)
        } else {
            entry.path.clone()
        };
        Ok(Mounted {
            route_path,
            entry,
            is_auth,
            backend,
            view,
            info,
        })
    }

    /// Register a built-in mount (sys/, auth/token/) that exists whether or not the
    /// persistent tables are loaded.
    pub fn add_builtin(&self, mounted: Mounted) {
        self.builtins.write().push(Arc::new(mounted));
        self.install(Vec::new());
    }

    /// Current snapshot.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.read().clone()
    }

    fn install(&self, user: Vec<Arc<Mounted>>) {
        let mut mounts: Vec<Arc<Mounted>> = self.builtins.read().clone();
        mounts.extend(user);
        mounts.sort_by(|a, b| {
            b.route_path
                .len()
                .cmp(&a.route_path.len())
                .then(a.route_path.cmp(&b.route_path))
        });
        *self.table.write() = Arc::new(RouteTable { mounts });
    }

    /// Forget user mounts (on seal); returns them, for their cleanup.
    pub fn clear(&self) -> Vec<Arc<Mounted>> {
        let builtins = self.builtins.read().clone();
        let user = self
            .table()
            .all()
            .iter()
            .filter(|m| !builtins.iter().any(|b| Arc::ptr_eq(b, m)))
            .cloned()
            .collect();
        self.install(Vec::new());
        user
    }

    /// Load both persistent tables from the barrier and build their engines.
    pub async fn load(&self, barrier: &Arc<Barrier>, limits: LeaseLimits) -> Result<MountChanges> {
        // Engines keep per-path write locks, so a mount whose engine did not change keeps its
        // engine instance across reloads.
        let current: HashMap<String, Arc<Mounted>> = self
            .table()
            .all()
            .iter()
            .map(|m| (m.entry.uuid.clone(), m.clone()))
            .collect();
        let mut user = Vec::new();
        let mut changes = MountChanges::default();
        for (table_path, is_auth) in [(MOUNTS_PATH, false), (AUTH_PATH, true)] {
            for entry in read_table(barrier, table_path).await? {
                let reuse = current
                    .get(&entry.uuid)
                    .filter(|m| m.entry.kind == entry.kind && m.entry.options == entry.options)
                    .map(|m| (m.backend.clone(), m.view.clone()));
                let built_new = reuse.is_none();
                let mounted = match reuse {
                    Some((backend, view)) => {
                        let info = Arc::new(entry.info(limits));
                        let route_path = if is_auth {
                            format!("auth/{}", entry.path)
                        } else {
                            entry.path.clone()
                        };
                        Mounted {
                            route_path,
                            entry,
                            is_auth,
                            backend,
                            view,
                            info,
                        }
                    }
                    None => self.mount(barrier, entry, is_auth, limits)?,
                };
                let mounted = Arc::new(mounted);
                if built_new {
                    changes.added.push(mounted.clone());
                }
                user.push(mounted);
            }
        }
        let builtins = self.builtins.read().clone();
        changes.removed = current
            .into_values()
            .filter(|old| !builtins.iter().any(|b| Arc::ptr_eq(b, old)))
            .filter(|old| !user.iter().any(|m| Arc::ptr_eq(&m.backend, &old.backend)))
            .collect();
        self.install(user);
        Ok(changes)
    }
}

/// Read one persistent mount table.
pub async fn read_table(barrier: &Arc<Barrier>, table_path: &str) -> Result<Vec<MountEntry>> {
    let view = BarrierView::new(barrier.clone(), "core/");
    let key = table_path.trim_start_matches("core/");
    Ok(get_json::<Vec<MountEntry>>(&view, key)
        .await?
        .unwrap_or_default())
}

/// Write one persistent mount table.
pub async fn write_table(
    barrier: &Arc<Barrier>,
    table_path: &str,
    entries: &[MountEntry],
) -> Result<()> {
    let bytes = serde_json::to_vec(entries).map_err(|e| Error::Internal(e.to_string()))?;
    barrier.put(table_path, &bytes).await
}

/// Normalise and validate a user-supplied mount path: no empty or `..` segments, trailing `/`.
pub fn normalize_mount_path(path: &str) -> Result<String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err(Error::bad("mount path cannot be empty"));
    }
    if trimmed
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(Error::bad(format!(
            "invalid mount path \"{path}\": empty, '.' or '..' segments are not allowed"
        )));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() || c == '*' || c == '+' || c == '?' || c == '#')
    {
        return Err(Error::bad(format!(
            "invalid mount path \"{path}\": contains a reserved character"
        )));
    }
    Ok(format!("{trimmed}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_normalised_and_traversal_refused() {
        assert_eq!(normalize_mount_path("secret").unwrap(), "secret/");
        assert_eq!(normalize_mount_path("/a/b/").unwrap(), "a/b/");
        for bad in ["", "/", "a//b", "../x", "a/./b", "a*"] {
            assert!(normalize_mount_path(bad).is_err(), "{bad}");
        }
    }
}
