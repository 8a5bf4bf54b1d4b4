//! The policy store: named ACL policies in the barrier, parsed once, and compiled policy sets
//! cached per distinct combination of names (many tokens share a few combinations).

use crate::barrier::{Barrier, BarrierView};
use coffer_policy::{parse_policy, validate_policy_name, Acl, Policy, DEFAULT_POLICY};
use coffer_sdk::cache::CacheMap;
use coffer_sdk::{Error, Result, View};
use parking_lot::RwLock;
use std::sync::Arc;

/// Policies that always exist and cannot be deleted.
pub const BUILTIN: &[&str] = &["root", "default"];

/// Stored policies and compiled ACLs.
pub struct PolicyStore {
    view: BarrierView,
    parsed: RwLock<CacheMap<String, Arc<(Policy, String)>>>,
    acls: RwLock<CacheMap<Vec<String>, Arc<Acl>>>,
}

impl PolicyStore {
    /// A store over `sys/policy/` in the barrier.
    pub fn new(barrier: Arc<Barrier>) -> PolicyStore {
        PolicyStore {
            view: BarrierView::new(barrier, "sys/policy/"),
            parsed: RwLock::default(),
            acls: RwLock::default(),
        }
    }

    /// Forget caches (on seal).
    pub fn clear_caches(&self) {
        self.parsed.write().clear();
        self.acls.write().clear();
    }

    /// Create the `default` policy if this is a new installation.
    pub async fn ensure_default(&self) -> Result<()> {
        if self.view.get("default").await?.is_none() {
            self.view
                .put("default", DEFAULT_POLICY.as_bytes().to_vec())
                .await?;
        }
        Ok(())
    }

    /// Validate, parse and store a policy; invalidates compiled ACLs.
    pub async fn put(&self, name: &str, text: &str) -> Result<()> {
        let name = name.to_lowercase();
        if name == "root" {
            return Err(Error::bad("cannot update root policy"));
        }
        validate_policy_name(&name).map_err(|e| Error::bad(e.to_string()))?;
        let policy = parse_policy(&name, text)
            .map_err(|e| Error::bad(format!("failed to parse policy: {e}")))?;
        self.view.put(&name, text.as_bytes().to_vec()).await?;
        self.parsed
            .write()
            .insert(name, Arc::new((policy, text.to_string())));
        self.acls.write().clear();
        Ok(())
    }

    /// Policy text, if it exists (`root` has none).
    pub async fn get(&self, name: &str) -> Result<Option<Arc<(Policy, String)>>> {
        let name = name.to_lowercase();
        if let Some(p) = self.parsed.read().get(&name) {
            return Ok(Some(p.clone()));
        }
        let Some(bytes) = self.view.get(&name).await? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Internal("stored policy is not UTF-8".into()))?;
        let policy = parse_policy(&name, &text)
            .map_err(|e| Error::Internal(format!("stored policy {name} is invalid: {e}")))?;
        let entry = Arc::new((policy, text));
        self.parsed.write().insert(name, entry.clone());
        Ok(Some(entry))
    }

    /// Delete a policy; built-ins are refused.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = name.to_lowercase();
        if BUILTIN.contains(&name.as_str()) {
            return Err(Error::bad(format!("cannot delete \"{name}\" policy")));
        }
        self.view.delete(&name).await?;
        self.parsed.write().remove(&name);
        self.acls.write().clear();
        Ok(())
    }

    /// All policy names, `root` included, sorted.
    pub async fn list(&self) -> Result<Vec<String>> {
        let mut names = self.view.list("").await.unwrap_or_default();
        names.retain(|n| !n.ends_with('/'));
        names.push("root".into());
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The compiled ACL for a set of policy names. Unknown names are ignored (as Vault does:
    /// a token may name a policy that is created later).
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>> {
        // Token policies are stored sorted and deduplicated: look those up without allocating.
        if names.windows(2).all(|w| w[0] < w[1]) {
            if let Some(acl) = self.acls.read().get(names) {
                return Ok(acl.clone());
            }
        }
        let mut key: Vec<String> = names.to_vec();
        key.sort();
        key.dedup();
        if let Some(acl) = self.acls.read().get(&key) {
            return Ok(acl.clone());
        }
        let acl = if key.iter().any(|n| n == "root") {
            Arc::new(Acl::root())
        } else {
            let mut policies = Vec::with_capacity(key.len());
            for name in &key {
                if let Some(p) = self.get(name).await? {
                    policies.push(p.0.clone());
                }
            }
            Arc::new(Acl::compile(&policies))
        };
        self.acls.write().insert(key, acl.clone());
        Ok(acl)
    }
}
