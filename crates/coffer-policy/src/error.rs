//! The one error type of this crate.

use thiserror::Error;

/// Why a policy text or name was rejected. Messages name the offending path and
/// field so an operator can fix the policy; they never echo parameter values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// The text is neither valid HCL nor a JSON policy document.
    #[error("failed to parse policy: HCL syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// The document parsed but its shape is not a policy (unknown top-level key,
    /// a `path` block without exactly one label, ...).
    #[error("failed to parse policy: {0}")]
    Structure(String),
    /// A `capabilities` entry is not a capability Vault knows.
    #[error("failed to parse policy: unknown capability {capability:?} at path {path:?}")]
    UnknownCapability {
        /// The path stanza, as written.
        path: String,
        /// The unknown name, as written.
        capability: String,
    },
    /// A legacy `policy = "..."` value is not one of deny, read, write, sudo.
    #[error("failed to parse policy: path {path:?}: invalid policy {policy:?} (expected deny, read, write or sudo)")]
    UnknownLegacyPolicy {
        /// The path stanza, as written.
        path: String,
        /// The unknown legacy policy value.
        policy: String,
    },
    /// A field inside a path stanza is malformed (wrong type, bad duration,
    /// unknown key, misplaced wildcard, ...).
    #[error("failed to parse policy: path {path:?}: {field}: {reason}")]
    InvalidField {
        /// The path stanza, as written.
        path: String,
        /// The field, e.g. `allowed_parameters`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The path pattern itself is not allowed (e.g. `+*`).
    #[error("failed to parse policy: path {path:?}: {reason}")]
    InvalidPath {
        /// The path stanza, as written.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A policy name that Vault would not accept.
    #[error("invalid policy name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
