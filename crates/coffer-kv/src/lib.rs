//! The KV secrets engine, versions 1 and 2, answering exactly as HashiCorp Vault's `kv` engine
//! does over HTTP (field names, status codes, error texts), so Vault clients such as hvac work
//! unchanged.
//!
//! - **Version 1** ([`v1`]) stores one JSON object per path, nothing else.
//! - **Version 2** ([`v2`]) keeps numbered versions of each secret with metadata: soft delete,
//!   undelete, destroy, check-and-set, `max_versions` pruning, `delete_version_after` expiry,
//!   custom metadata, JSON merge-patch and subkeys.
//!
//! Invariant: this crate only declares paths and reads/writes its mount's storage view. It
//! never checks policy, authenticates, or writes audit records — the request pipeline does,
//! before and after calling the handlers declared here. Time comes only from the request's
//! clock, so expiry is tested by moving a manual clock, never by sleeping.

mod json;
mod locks;
mod paths;
mod store;
pub mod v1;
pub mod v2;

use coffer_sdk::catalog::{Catalog, EngineClass};
use coffer_sdk::{Backend, MountInfo, Result};

/// Add the KV engine to a server's catalog: `kv` (version by the `version` option), `kv-v2`,
/// Vault's old name `generic`, and the built-in per-token `cubbyhole`.
pub fn register(catalog: &mut Catalog) {
    catalog.register(
        EngineClass::Secrets,
        "kv",
        "key/value secret storage, versioned with version=2",
        backend,
    );
    catalog.register(
        EngineClass::Secrets,
        "kv-v2",
        "versioned key/value secret storage",
        |_| Ok(v2::backend()),
    );
    catalog.register(
        EngineClass::Secrets,
        "generic",
        "key/value secret storage (Vault's former name for kv)",
        backend,
    );
    catalog.register_builtin(
        EngineClass::Secrets,
        "cubbyhole",
        "per-token private secret storage",
        |_| Ok(v1::backend()),
    );
}

/// Build the engine for one mount: `mount.options["version"] == "2"` selects KV v2, anything
/// else KV v1 (Vault's default for `kv`; the server mounts `secret/` as v2 explicitly).
pub fn backend(mount: &MountInfo) -> Result<Backend> {
    match mount.options.get("version").map(|v| v.trim()) {
        Some("2") => Ok(v2::backend()),
        Some("1") | Some("") | None => Ok(v1::backend()),
        Some(_) => Err(coffer_sdk::Error::bad(
            "kv: unsupported \"version\" option (use 1 or 2)",
        )),
    }
}
