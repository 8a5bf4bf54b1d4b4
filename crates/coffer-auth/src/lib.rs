//! Auth methods. Each is an engine declaration whose login path returns a
//! [`coffer_sdk::logical::Login`]; the pipeline mints the token.

use coffer_sdk::{Backend, MountInfo, Result};

/// Auth method types that can be enabled with `sys/auth`.
pub const AUTH_TYPES: &[&str] = &[];

/// Build the engine for an auth mount of type `kind`, or `None` if the type is unknown.
pub fn backend(kind: &str, mount: &MountInfo) -> Option<Result<Backend>> {
    let _ = (kind, mount);
    None
}
