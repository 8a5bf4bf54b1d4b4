//! Vault-compatible ACL policies.
//!
//! Policy text (HCL or JSON, exactly as Vault accepts it) is parsed by
//! [`parse_policy`] into a [`Policy`]: a list of [`PathRule`]s, the internal rule
//! form. Other policy languages compile into the same form. A token's policies are
//! then compiled once into an [`Acl`], which answers "may this request proceed?"
//! ([`Acl::check`]) and "what may I do here?" ([`Acl::capabilities`]) following
//! Vault's priority-matching rules.
//!
//! Invariant: this crate is pure — no I/O, no async, no clock.

#![warn(missing_docs)]

mod acl;
mod capabilities;
mod error;
mod parameters;
mod parse;

use std::collections::BTreeMap;
use std::time::Duration;

pub use acl::{Acl, AclDecision};
pub use capabilities::Capabilities;
pub use error::PolicyError;
pub use parse::parse_policy;

/// Name of the built-in policy that makes a token root. It cannot be written.
pub const ROOT_POLICY_NAME: &str = "root";

/// Name of the built-in policy attached to tokens by default. It can be
/// rewritten but not deleted.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// One path stanza, in the internal rule form.
#[derive(Clone, Debug, PartialEq)]
pub struct PathRule {
    /// The path pattern as written (without a leading `/`), e.g.
    /// `"secret/data/+/config*"`: a trailing `*` is a prefix glob and a `+`
    /// segment matches exactly one path segment.
    pub path: String,
    /// What the rule grants; `DENY` (alone) denies everything at matching paths.
    pub capabilities: Capabilities,
    /// Parameter name (lower-case) to the values allowed for it; an empty list
    /// allows any value, and the key `*` allows any parameter. When non-empty,
    /// request parameters not listed here are refused.
    pub allowed_parameters: BTreeMap<String, Vec<serde_json::Value>>,
    /// Parameter name (lower-case) to the values denied for it; an empty list
    /// denies any value, and the key `*` denies every parameter.
    pub denied_parameters: BTreeMap<String, Vec<serde_json::Value>>,
    /// Parameters that must be present in a create/update/patch request.
    pub required_parameters: Vec<String>,
    /// Responses must be wrapped with at least this TTL.
    pub min_wrapping_ttl: Option<Duration>,
    /// Responses must be wrapped with at most this TTL.
    pub max_wrapping_ttl: Option<Duration>,
}

impl PathRule {
    /// A rule granting `capabilities` at `path`, with no further constraints.
    pub fn new(path: impl Into<String>, capabilities: Capabilities) -> PathRule {
        PathRule {
            path: path.into(),
            capabilities,
            allowed_parameters: BTreeMap::new(),
            denied_parameters: BTreeMap::new(),
            required_parameters: Vec::new(),
            min_wrapping_ttl: None,
            max_wrapping_ttl: None,
        }
    }
}

/// A named set of path rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The policy's name (lower-case).
    pub name: String,
    /// The path stanzas, in the order written.
    pub rules: Vec<PathRule>,
}

/// Checks a policy name as the policy endpoints accept it. The caller lowercases
/// and trims it first, as Vault does; whether the name may be written (`root`
/// may not) is the caller's decision.
pub fn validate_policy_name(name: &str) -> Result<(), PolicyError> {
    let reject = |reason| {
        Err(PolicyError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return reject("policy name must not be empty");
    }
    if name.len() > 256 {
        return reject("policy name must be at most 256 bytes");
    }
    if name.contains('/') {
        return reject("policy name must not contain '/'");
    }
    if name.contains("..") {
        return reject("policy name must not contain '..'");
    }
    if name.chars().any(|c| c.is_control()) {
        return reject("policy name must not contain control characters");
    }
    if name.trim() != name {
        return reject("policy name must not start or end with whitespace");
    }
    if name.chars().any(char::is_uppercase) {
        return reject("policy names are lower-case");
    }
    Ok(())
}

/// Vault's built-in `default` policy, minus the paths that need identity
/// templating (`identity/entity/id/{{identity.entity.id}}`), which this crate does
/// not evaluate.
pub const DEFAULT_POLICY: &str = r#"
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path for
# old clients, new path for newer
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}
path "sys/tools/random" {
    capabilities = ["update"]
}
path "sys/tools/random/*" {
    capabilities = ["update"]
}

# Allow checking the status of a Control Group request if the user has the
# accessor
path "sys/control-group/request" {
    capabilities = ["update"]
}

# Allow a token to make requests to the Authorization Endpoint for OIDC providers.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
"#;
