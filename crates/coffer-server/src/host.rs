//! Assembles a core: its parts ([`Core`]) plus the built-in mounts every server has, `sys/`,
//! `auth/token/`, `identity/` and `cubbyhole/`. Kept apart from `core.rs` so the pipeline does
//! not depend on the `sys/` declaration that depends on it.

use crate::barrier::BarrierView;
use crate::core::Core;
use crate::mounts::{LeaseLimits, MountEntry, Mounted};
use coffer_sdk::catalog::{Catalog, EngineClass};
use coffer_sdk::clock::Clock;
use coffer_sdk::{Backend, MountInfo};
use coffer_storage::Storage;
use std::sync::Arc;

/// A core over `storage` with the built-in mounts and every engine kind of `catalog`. Call
/// [`Core::init`] or [`Core::unseal`] before serving secrets.
pub fn build_core(
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    limits: LeaseLimits,
    catalog: Arc<Catalog>,
) -> Arc<Core> {
    let core = Core::bare(storage, clock, limits, catalog.clone());
    let builtin = |route_path: &str,
                   path: &str,
                   kind: &str,
                   description: &str,
                   is_auth: bool,
                   backend: Backend,
                   view_prefix: &str| Mounted {
        route_path: route_path.into(),
        entry: MountEntry {
            path: path.into(),
            kind: kind.into(),
            description: description.into(),
            uuid: kind.into(),
            accessor: format!("{kind}_builtin"),
            config: Default::default(),
            options: Default::default(),
            local: false,
            seal_wrap: false,
            former_paths: Vec::new(),
        },
        is_auth,
        backend: Arc::new(backend),
        view: Arc::new(BarrierView::new(core.barrier.clone(), view_prefix)),
        info: Arc::new(MountInfo {
            path: route_path.into(),
            kind: kind.into(),
            uuid: kind.into(),
            options: Default::default(),
            default_lease_ttl: limits.default_ttl,
            max_lease_ttl: limits.max_ttl,
        }),
    };
    core.router.add_builtin(builtin(
        "sys/",
        "sys/",
        "system",
        "system endpoints used for control, policy and debugging",
        false,
        crate::sys::backend(&core),
        "sys/state/",
    ));
    core.router.add_builtin(builtin(
        "auth/token/",
        "token/",
        "token",
        "token based credentials",
        true,
        crate::tokens::backend(&core.tokens),
        "sys/token/",
    ));
    core.router.add_builtin(builtin(
        "identity/",
        "identity/",
        "identity",
        "identity store",
        false,
        crate::identity::backend(&core.identity),
        "sys/identity/",
    ));
    // Each token's cubbyhole is its own view (`cubbyhole/<token hash>/`), chosen per request
    // by the pipeline; the view given here is never used.
    if let Some(entry) = catalog.get(EngineClass::Secrets, "cubbyhole") {
        let info = MountInfo {
            path: "cubbyhole/".into(),
            kind: "cubbyhole".into(),
            uuid: "cubbyhole".into(),
            ..MountInfo::default()
        };
        match (entry.factory)(&info) {
            Ok(backend) => core.router.add_builtin(builtin(
                "cubbyhole/",
                "cubbyhole/",
                "cubbyhole",
                "per-token private secret storage",
                false,
                backend,
                "cubbyhole/-/",
            )),
            Err(e) => tracing::error!(error = %e, "the catalog's cubbyhole engine failed to build"),
        }
    }
    core
}
