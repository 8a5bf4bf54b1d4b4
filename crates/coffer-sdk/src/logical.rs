//! Requests and responses as every front door (Vault HTTP, later AWS/OCI dialects) hands them
//! to the pipeline and the pipeline hands them to engines.

use serde::Serialize;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// What a request wants to do. POST/PUT arrive as `Update` and become `Create` when the path's
/// existence check says the target does not exist yet (Vault's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Read,
    Create,
    Update,
    Patch,
    Delete,
    List,
}

impl Operation {
    /// Lower-case name, as used in OpenAPI and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
        }
    }

    /// Whether this operation carries a body whose parameters policies may constrain.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Update | Operation::Patch
        )
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// The client's address, when known.
    pub remote_addr: Option<SocketAddr>,
    /// DER certificates the client presented over mTLS, leaf first.
    pub peer_certificates: Vec<Vec<u8>>,
}

/// Who is asking, as far as an engine needs to know (never the token itself).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The token's accessor (stable, non-secret id; cubbyhole keys by it).
    pub accessor: String,
    /// Display name of the token.
    pub display_name: String,
    /// Policies attached to the token.
    pub policies: Vec<String>,
    /// Entity the token belongs to, if any.
    pub entity_id: Option<String>,
    /// Token metadata.
    pub metadata: Map<String, Value>,
    /// The client token itself. The pipeline fills this only for the built-in token store
    /// (`auth/token/`), which must echo it in `lookup-self`; engines never receive it.
    pub client_token: Option<String>,
    /// Whether the caller's policies grant `sudo` (or root) on this request's path. Set by the
    /// pipeline per request, for the built-in token store and `sys/` (Vault's root-protected
    /// options such as periodic or orphan tokens); false everywhere else.
    pub sudo: bool,
}

/// A request as an engine sees it. `path` is relative to the mount.
#[derive(Debug, Clone)]
pub struct Request {
    /// Unique id, echoed as `request_id` in the response.
    pub id: String,
    pub operation: Operation,
    /// Path below the mount point, e.g. `data/app/db` for `secret/data/app/db`.
    pub path: String,
    /// The mount point, with trailing slash, e.g. `secret/`.
    pub mount_point: String,
    /// Body fields for writes; query parameters for reads and lists.
    pub data: Map<String, Value>,
    /// The authenticated caller; `None` on unauthenticated paths. Shared: built once per token.
    pub caller: Option<std::sync::Arc<Caller>>,
    pub connection: Connection,
    /// `X-Vault-Wrap-TTL`: the pipeline wraps the response in a single-use token.
    pub wrap_ttl: Option<Duration>,
}

impl Request {
    /// A request with empty data, mainly for tests and internal calls.
    pub fn new(operation: Operation, path: impl Into<String>) -> Request {
        Request {
            id: String::new(),
            operation,
            path: path.into(),
            mount_point: String::new(),
            data: Map::new(),
            caller: None,
            connection: Connection::default(),
            wrap_ttl: None,
        }
    }

    /// Builder-style body.
    pub fn with_data(mut self, data: Value) -> Request {
        if let Value::Object(map) = data {
            self.data = map;
        }
        self
    }
}

/// Authentication result of a login or token creation, rendered as the `auth` block.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Auth {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub identity_policies: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
    pub lease_duration: u64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: String,
    pub orphan: bool,
    pub mfa_requirement: Option<Value>,
    pub num_uses: u64,
}

/// What an auth method grants after a successful login. The engine decides *who* the caller
/// is and *what* they get; the pipeline mints the token (the only place tokens are created for
/// logins), clamps TTLs to the mount, and renders the `auth` block.
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// Policies for the token (the pipeline adds `default` unless `no_default_policy`).
    pub policies: Vec<String>,
    pub no_default_policy: bool,
    /// Token metadata (string values), e.g. `{"username": "alice"}`.
    pub metadata: Map<String, Value>,
    /// Name shown for the token; the pipeline prefixes the mount path, as Vault does.
    pub display_name: String,
    /// Requested TTL (0 = the mount's default).
    pub ttl: Duration,
    /// Maximum TTL for renewals (0 = the mount's maximum).
    pub max_ttl: Duration,
    pub explicit_max_ttl: Duration,
    pub period: Duration,
    /// 0 = unlimited.
    pub num_uses: i64,
    pub renewable: bool,
    /// CIDR blocks the token may be used from (empty = anywhere).
    pub bound_cidrs: Vec<String>,
    /// The identity alias this login maps to (name unique within the mount).
    pub alias_name: String,
    /// Metadata recorded on the identity alias. It may hold values the caller chose (an
    /// AppRole secret id's metadata), so dynamic-group rules see it only as
    /// `alias.metadata.<key>`.
    pub alias_metadata: Map<String, Value>,
    /// Attributes the auth method itself verified (fields and extensions of a certificate it
    /// validated, claims of a signed JWT mapped by its role), under the names the method's
    /// configuration gives them. Only these are seen by dynamic-group rules unprefixed (e.g.
    /// `instance.compartment.id`); a method that verifies nothing leaves this empty.
    pub verified_attributes: std::collections::BTreeMap<String, String>,
    /// Kept with the token, never shown to clients, and handed back to the auth method's
    /// renewal check (e.g. the fingerprint of the certificate that logged in).
    pub internal: Map<String, Value>,
}

/// What an auth method's renewal check is told about a token it issued.
#[derive(Debug, Clone, Default)]
pub struct LoginRenewal {
    pub metadata: Map<String, Value>,
    pub internal: Map<String, Value>,
    pub alias_name: String,
    pub policies: Vec<String>,
}

/// A secret with a lease. The pipeline registers the lease and fills `lease_id`.
#[derive(Debug, Clone, Default)]
pub struct SecretLease {
    /// Which of the engine's declared secret types this is (its revoke/renew callbacks).
    pub kind: String,
    /// Requested TTL (0 = the mount's default); the pipeline clamps it to the mount's maximum.
    pub ttl: Duration,
    /// Requested maximum lifetime (0 = the mount's maximum).
    pub max_ttl: Duration,
    pub renewable: bool,
    /// Engine-private data kept with the lease for renew/revoke callbacks (encrypted at rest,
    /// never returned to clients).
    pub internal: Map<String, Value>,
    /// Filled by the pipeline once the lease is registered.
    pub lease_id: String,
}

/// Response-wrapping information, rendered as `wrap_info`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WrapInfo {
    pub token: String,
    pub accessor: String,
    pub ttl: u64,
    pub creation_time: String,
    pub creation_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub wrapped_accessor: String,
}

/// A body that is not Vault's JSON envelope (metrics text, some health answers).
#[derive(Debug, Clone)]
pub struct RawBody {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// An engine's answer.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    /// The data already rendered as the text of a JSON object, set instead of `data` by an
    /// engine that holds its answer as JSON (a KV v2 read returns the JSON it stored): the
    /// envelope copies it whole rather than building a map only to write it out again.
    /// [`Response::data_map`] gives either form as a map.
    pub data_json: Option<Vec<u8>>,
    pub warnings: Vec<String>,
    pub auth: Option<Auth>,
    pub secret: Option<SecretLease>,
    /// A successful login; the pipeline turns it into a token and fills `auth`.
    pub login: Option<Login>,
    /// Set by the pipeline when the response was wrapped.
    pub wrap_info: Option<WrapInfo>,
    /// How long a client may cache this answer, without a lease: rendered as
    /// `lease_duration` with an empty `lease_id` (Vault's KV v1 "refresh interval").
    pub refresh_interval: Option<Duration>,
    /// Status override (e.g. 429/472/473 for `sys/health`).
    pub status: Option<u16>,
    /// Replace the JSON envelope with this body.
    pub raw: Option<RawBody>,
}

impl Response {
    /// A response with `data`.
    pub fn data(data: Value) -> Response {
        match data {
            Value::Object(map) => Response {
                data: Some(map),
                ..Response::default()
            },
            other => {
                let mut map = Map::new();
                map.insert("value".into(), other);
                Response {
                    data: Some(map),
                    ..Response::default()
                }
            }
        }
    }

    /// The data as a map, whichever form the engine gave it in (rendered data is parsed).
    pub fn data_map(&self) -> Option<Map<String, Value>> {
        match (&self.data, &self.data_json) {
            (Some(map), _) => Some(map.clone()),
            (None, Some(json)) => serde_json::from_slice(json).ok(),
            (None, None) => None,
        }
    }

    /// An empty success; HTTP renders it as 204 No Content.
    pub fn empty() -> Response {
        Response::default()
    }

    /// A LIST answer: `{"keys": [...]}`; an empty list is a 404 in Vault.
    pub fn list(keys: Vec<String>) -> crate::Result<Response> {
        if keys.is_empty() {
            return Err(crate::Error::NotFound);
        }
        Ok(Response::data(serde_json::json!({ "keys": keys })))
    }

    /// Add a warning.
    pub fn warn(mut self, warning: impl Into<String>) -> Response {
        self.warnings.push(warning.into());
        self
    }
}
