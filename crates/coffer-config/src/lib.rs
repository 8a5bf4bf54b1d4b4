//! Reads the server configuration file given to `coffer server -config FILE`.
//!
//! The file is written exactly as for HashiCorp Vault, in HCL or in JSON, so an operator can
//! point Coffer at an existing Vault config:
//!
//! ```hcl
//! storage "file" {
//!   path = "/var/lib/coffer"
//! }
//!
//! listener "tcp" {
//!   address     = "127.0.0.1:8200"
//!   tls_disable = true
//!   http_idle_timeout = "5m"
//! }
//!
//! default_lease_ttl = "768h"
//! ui = true
//! ```
//!
//! Parsing happens in two steps: the text becomes a format-neutral tree of settings and
//! stanzas that remember their source lines (`tree`), then that tree is interpreted into a
//! [`ServerConfig`] (`interpret`). Invariants kept here:
//!
//! - every error about something in the file names its line;
//! - nothing Vault accepts but Coffer does not implement is an error, except the storage
//!   type (running on a different storage than the operator asked for would be worse than
//!   refusing to start); the rest is reported in [`ServerConfig::warnings`];
//! - a key Vault does not know either (a typo: `adress` in `listener "tcp"`) is an error,
//!   naming the key that was probably meant, never a warning followed by a default;
//! - no message repeats the value of a key that looks secret.
//!
//! This crate does no I/O beyond reading the file in [`load_config`].

#![warn(missing_docs)]

mod error;
mod interpret;
mod tree;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::ConfigError;

/// The listener address Vault uses when `address` is not given.
pub const DEFAULT_LISTENER_ADDRESS: &str = "127.0.0.1:8200";

/// `http_read_header_timeout` when not given (Vault's).
pub const DEFAULT_HTTP_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `http_read_timeout` when not given (Vault's).
pub const DEFAULT_HTTP_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `http_write_timeout` when not given: zero, no limit (Vault's).
pub const DEFAULT_HTTP_WRITE_TIMEOUT: Duration = Duration::ZERO;
/// `http_idle_timeout` when not given (Vault's).
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// `max_connections` when not given. Vault sets no limit; Coffer caps each listener so that
/// a flood of connections runs into a bound before it runs into the process's file limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Everything `coffer server` needs from its configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Where the (encrypted) data lives.
    pub storage: StorageConfig,
    /// The TCP listeners serving the HTTP API, in file order. May be empty (a warning says so).
    pub listeners: Vec<ListenerConfig>,
    /// `api_addr`: the address advertised to clients for redirects.
    pub api_addr: Option<String>,
    /// `cluster_addr`: the address advertised to other cluster members.
    pub cluster_addr: Option<String>,
    /// `default_lease_ttl`: lease length when a mount or role sets none.
    pub default_lease_ttl: Option<Duration>,
    /// `max_lease_ttl`: the ceiling for any lease.
    pub max_lease_ttl: Option<Duration>,
    /// `disable_mlock`: do not lock memory to keep secrets out of swap.
    pub disable_mlock: bool,
    /// `ui`: serve the web UI.
    pub ui: bool,
    /// `log_level`, normalised to one of `trace`, `debug`, `info`, `warn`, `error`.
    pub log_level: Option<String>,
    /// Human-readable warnings for keys and stanzas Vault knows that Coffer accepts but ignores.
    pub warnings: Vec<String>,
}

/// The storage backend named by the `storage` (or legacy `backend`) stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// Vault `storage "file" { path = "..." }` and also `storage "coffer"`/`"embedded"` → Coffer's embedded durable storage in that directory.
    Embedded {
        /// The directory holding the database.
        path: PathBuf,
    },
    /// Vault `storage "inmem" {}`: nothing survives a restart.
    Memory,
}

/// One `listener "tcp" { ... }` stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `host:port` to bind; [`DEFAULT_LISTENER_ADDRESS`] when not given. A Go-style empty
    /// host (`":8200"`) is written out as `0.0.0.0`.
    pub address: String,
    /// Serve plain HTTP. When false, `tls_cert_file` and `tls_key_file` are present.
    pub tls_disable: bool,
    /// PEM certificate chain presented to clients.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// PEM bundle of CAs trusted to sign client certificates.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Refuse TLS clients that do not present a certificate signed by a trusted CA.
    pub tls_require_and_verify_client_cert: bool,
    /// `http_read_header_timeout`: how long a client has to send a request's headers, counted
    /// from the connection's accept for its first request (TLS handshake included) and from the
    /// first byte for later ones. Zero: no limit.
    pub http_read_header_timeout: Duration,
    /// `http_read_timeout`: how long a client has to send a request's body once its headers are
    /// in. Zero: no limit.
    pub http_read_timeout: Duration,
    /// `http_write_timeout`: how long the server has, from a request's arrival, to write its
    /// response. Zero: no limit.
    pub http_write_timeout: Duration,
    /// `http_idle_timeout`: how long a kept-alive connection may wait for its next request.
    /// Zero: no limit.
    pub http_idle_timeout: Duration,
    /// `max_connections`: how many connections the listener keeps open at once; further
    /// clients wait to be accepted until one closes. Zero: no limit.
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            address: DEFAULT_LISTENER_ADDRESS.to_string(),
            tls_disable: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_require_and_verify_client_cert: false,
            http_read_header_timeout: DEFAULT_HTTP_READ_HEADER_TIMEOUT,
            http_read_timeout: DEFAULT_HTTP_READ_TIMEOUT,
            http_write_timeout: DEFAULT_HTTP_WRITE_TIMEOUT,
            http_idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The syntax a configuration is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// HashiCorp Configuration Language.
    Hcl,
    /// JSON, laid out as Vault's JSON configs are (`{"storage": {"file": {...}}}`).
    Json,
}

impl ConfigFormat {
    /// Pick the format the way Vault does: a `.json` file is JSON, anything else is HCL.
    pub fn from_path(path: &Path) -> ConfigFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => ConfigFormat::Json,
            _ => ConfigFormat::Hcl,
        }
    }
}

/// Parse configuration text.
pub fn parse_config(text: &str, format: ConfigFormat) -> Result<ServerConfig, ConfigError> {
    let body = match format {
        ConfigFormat::Hcl => tree::from_hcl(text)?,
        ConfigFormat::Json => tree::from_json(text)?,
    };
    interpret::server_config(body)
}

/// Read and parse a configuration file, choosing the format by its extension. Errors about the
/// contents are prefixed with the file's path.
pub fn load_config(path: &Path) -> Result<ServerConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_config(&text, ConfigFormat::from_path(path)).map_err(|e| ConfigError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests;
