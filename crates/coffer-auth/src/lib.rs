//! Coffer's auth methods, declared on the engine SDK like any other engine.
//!
//! - **userpass** ([`userpass`]): users with argon2id-hashed passwords and Vault's user lockout.
//! - **approle** ([`approle`]): machine logins with a role ID and salted-hash secret IDs.
//! - **cert** ([`cert`]): hosts log in with an mTLS client certificate from a trusted CA;
//!   certificate attributes become identity metadata (Coffer's instance principal).
//! - **jwt** / **oidc** ([`jwt`]): workloads log in with a JWT verified against an issuer's
//!   public keys (PEM, JWKS or OIDC discovery) and the claims a role binds.
//!
//! Invariant: an auth method decides *who* the caller is and *what* they are granted, and says
//! so by returning a [`coffer_sdk::logical::Login`] from its login path. It never mints tokens,
//! never checks policy and never writes audit records: the request pipeline does, once. Secrets
//! (passwords, secret IDs) are never stored, logged or echoed in errors; only their argon2id or
//! HMAC digests reach the mount's storage view. Time comes only from the request's clock.

pub mod approle;
pub mod cert;
mod cidr;
pub mod jwt;
mod token;
pub mod userpass;

use coffer_sdk::catalog::{Catalog, EngineClass};
use coffer_sdk::{Backend, MountInfo, Result};

/// Add every auth method to a server's catalog.
pub fn register(catalog: &mut Catalog) {
    catalog.register(
        EngineClass::Auth,
        "userpass",
        "usernames and passwords",
        userpass::backend,
    );
    catalog.register(
        EngineClass::Auth,
        "approle",
        "machine logins with a role id and a secret id",
        |_| Ok(approle::backend()),
    );
    catalog.register(
        EngineClass::Auth,
        "cert",
        "TLS client certificates (machine identity)",
        |_| Ok(cert::backend()),
    );
    catalog.register(
        EngineClass::Auth,
        "jwt",
        "JWTs verified against an issuer's keys",
        |_| Ok(jwt::backend("jwt")),
    );
    catalog.register(
        EngineClass::Auth,
        "oidc",
        "OIDC discovery and JWT logins",
        |_| Ok(jwt::backend("oidc")),
    );
}

/// Auth method types that can be enabled with `sys/auth`.
pub const AUTH_TYPES: &[&str] = &["approle", "cert", "jwt", "oidc", "userpass"];

/// Build the engine for an auth mount of type `kind`, or `None` if the type is unknown. A mount
/// whose options are invalid (e.g. a malformed `lockout_duration`) is refused with a 400.
pub fn backend(kind: &str, mount: &MountInfo) -> Option<Result<Backend>> {
    match kind {
        "userpass" => Some(userpass::backend(mount)),
        "approle" => Some(Ok(approle::backend())),
        "cert" => Some(Ok(cert::backend())),
        "jwt" => Some(Ok(jwt::backend("jwt"))),
        "oidc" => Some(Ok(jwt::backend("oidc"))),
        _ => None,
    }
}
