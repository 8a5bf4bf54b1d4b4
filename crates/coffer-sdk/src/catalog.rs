//! The catalog of engine kinds a server can mount: secrets engines and auth methods now, audit
//! devices next. The binary fills it (each engine crate offers a `register` function), and the
//! server builds every mount from it, so the server itself depends on no engine.

use crate::framework::{Backend, MountInfo};
use crate::Result;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Builds the engine of one mount.
pub type EngineFactory = Arc<dyn Fn(&MountInfo) -> Result<Backend> + Send + Sync>;

/// What kind of thing an engine is, and so where it is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EngineClass {
    /// Mounted under `sys/mounts/` (Vault's "secret" plugins).
    Secrets,
    /// Mounted under `sys/auth/` (Vault's "auth" plugins).
    Auth,
    /// Enabled under `sys/audit/`.
    Audit,
}

impl EngineClass {
    /// Vault's name for the class in `sys/plugins/catalog`.
    pub fn vault_name(self) -> &'static str {
        match self {
            EngineClass::Secrets => "secret",
            EngineClass::Auth => "auth",
            EngineClass::Audit => "audit",
        }
    }
}

/// One kind of engine.
#[derive(Clone)]
pub struct CatalogEntry {
    pub class: EngineClass,
    pub name: &'static str,
    pub description: &'static str,
    /// False for kinds only the server itself mounts (e.g. `cubbyhole`).
    pub user_mountable: bool,
    pub factory: EngineFactory,
}

/// Every engine kind the server knows.
#[derive(Clone, Default)]
pub struct Catalog {
    entries: BTreeMap<(EngineClass, &'static str), CatalogEntry>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Add a kind users may enable.
    pub fn register<F>(
        &mut self,
        class: EngineClass,
        name: &'static str,
        description: &'static str,
        factory: F,
    ) where
        F: Fn(&MountInfo) -> Result<Backend> + Send + Sync + 'static,
    {
        self.entries.insert(
            (class, name),
            CatalogEntry {
                class,
                name,
                description,
                user_mountable: true,
                factory: Arc::new(factory),
            },
        );
    }

    /// Add a kind only the server mounts (a built-in mount such as `cubbyhole/`).
    pub fn register_builtin<F>(
        &mut self,
        class: EngineClass,
        name: &'static str,
        description: &'static str,
        factory: F,
    ) where
        F: Fn(&MountInfo) -> Result<Backend> + Send + Sync + 'static,
    {
        self.register(class, name, description, factory);
        if let Some(entry) = self.entries.get_mut(&(class, name)) {
            entry.user_mountable = false;
        }
    }

    /// The entry for `name` of `class`.
    pub fn get(&self, class: EngineClass, name: &str) -> Option<&CatalogEntry> {
        self.entries
            .iter()
            .find(|((c, n), _)| *c == class && *n == name)
            .map(|(_, e)| e)
    }

    /// Names users may enable, sorted.
    pub fn mountable(&self, class: EngineClass) -> Vec<&'static str> {
        self.entries
            .values()
            .filter(|e| e.class == class && e.user_mountable)
            .map(|e| e.name)
            .collect()
    }

    /// Every entry, by class then name.
    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }
}
