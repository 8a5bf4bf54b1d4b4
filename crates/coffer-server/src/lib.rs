//! Coffer's server: the storage barrier, seal, mounts, token store, policy store, the request
//! pipeline ([`core::Core::handle`]) and the Vault HTTP dialect in front of it.

pub mod audit;
pub mod barrier;
pub mod connections;
pub mod core;
pub mod envelope;
pub mod host;
pub mod http;
pub mod identity;
pub mod leases;
pub mod listener;
pub mod metrics;
pub mod mounts;
pub mod openapi;
pub mod policies;
pub mod rollback;
pub mod scheduler;
pub mod server;
pub mod shamir;
pub mod sys;
pub mod tokens;
pub mod wrapping;

/// Server version reported by `sys/seal-status` and `sys/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
