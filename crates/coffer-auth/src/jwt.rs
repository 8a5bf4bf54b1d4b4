//! The `jwt` auth method (also mountable as `oidc`): workloads log in with a signed JWT — a
//! GitHub Actions OIDC token, a Kubernetes service-account token, any OIDC provider's ID token —
//! following Vault's JWT auth API. Only the JWT login is implemented; the browser OIDC flow
//! (`oidc/auth_url`, `oidc/callback`) is not, and roles of `role_type = "oidc"` are refused.
//!
//! | operation               | path          | effect                                       |
//! |-------------------------|---------------|----------------------------------------------|
//! | read/update             | `config`      | where signing keys come from, issuer, algs   |
//! | create/update/read/delete | `role/<name>` | the role                                   |
//! | list                    | `role/`       | role names                                   |
//! | update                  | `login`       | `{role, jwt}` → a [`Login`]                  |
//!
//! Storage: `config` and `role/<name>`, as JSON. No token is ever stored.
//!
//! Key sources (exactly one per config): PEM public keys (`jwt_validation_pubkeys`), a JWKS URL
//! (`jwks_url`), or an OIDC discovery URL (`oidc_discovery_url`, whose `jwks_uri` is used).
//! Fetched key sets are cached in memory per mount for [`KEY_SET_TTL`]; a token naming a key id
//! the cache does not know triggers one refetch (keys rotate), at most once per
//! [`MIN_REFETCH_INTERVAL`] so that unauthenticated logins cannot make the server hammer the
//! provider. Fetches run on the blocking pool with a short timeout, never on async threads.
//!
//! Security invariants:
//! - `alg: none` and every HMAC algorithm are refused whatever the config says: the keys here
//!   are public, and a public key must never serve as an HMAC secret.
//! - Symmetric (`oct`) and encryption-only (`use: enc`) JWKS entries are never used.
//! - Time checks (`exp`, `nbf`, `iat`) use the request's clock with Vault's leeways; the JWT
//!   library's own time checks (system clock) are switched off.
//! - Failures are 400s with short reasons; the JWT and claim values are never echoed.

use crate::cidr;
use crate::token::{with_token_fields, TokenSettings};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use coffer_sdk::framework::de;
use coffer_sdk::logical::Login;
use coffer_sdk::view;
use coffer_sdk::{Backend, Ctx, Engine, Error, Operation, Response, Result};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// How long a fetched key set is trusted before it is fetched again.
pub const KEY_SET_TTL: Duration = Duration::from_secs(300);

/// The shortest gap between two fetches triggered by tokens naming an unknown key id.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// Timeout for one JWKS or discovery fetch, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest JWKS or discovery document accepted.
const FETCH_BODY_LIMIT: u64 = 1 << 20;

/// Vault's default leeways (seconds), used when a role's leeway is 0.
const DEFAULT_CLOCK_SKEW_LEEWAY: i64 = 60;
const DEFAULT_EXPIRATION_LEEWAY: i64 = 150;
const DEFAULT_NOT_BEFORE_LEEWAY: i64 = 150;

/// Signing algorithms accepted when the config names none.
pub const DEFAULT_SUPPORTED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// A signature no configured key validates (also: an unknown key id after refetching).
pub const BAD_SIGNATURE: &str =
    "error validating token: no known key successfully validated the token signature";
/// The header's `alg` is `none`, HMAC, unknown, or not in `jwt_supported_algs`.
pub const UNSUPPORTED_ALG: &str = "error validating token: unsupported signing algorithm";
/// Not three base64url parts with a JSON header and claims object.
pub const MALFORMED_TOKEN: &str = "error validating token: malformed token";
/// `exp` is past, beyond the leeways.
pub const EXPIRED: &str =
    "error validating token: invalid expiration time (exp) claim: token is expired";
/// `nbf` is in the future, beyond the leeways.
pub const NOT_YET_VALID: &str =
    "error validating token: invalid not before (nbf) claim: token not yet valid";
/// `iat` is in the future, beyond the clock-skew leeway.
pub const ISSUED_IN_FUTURE: &str =
    "error validating token: invalid issued at (iat) claim: token issued in the future";
/// `iss` differs from the config's `bound_issuer`.
pub const INVALID_ISSUER: &str = "error validating token: invalid issuer (iss) claim";
/// `sub` differs from the role's `bound_subject`.
pub const INVALID_SUBJECT: &str = "error validating token: invalid subject (sub) claim";
/// `aud` shares nothing with the role's `bound_audiences`.
pub const INVALID_AUDIENCE: &str = "error validating token: invalid audience (aud) claim";
/// The token has an `aud` but the role binds no audience (Vault ≥ 1.17 refuses this).
pub const UNBOUND_AUDIENCE: &str =
    "error validating claims: audience claim found in JWT but no audiences bound to the role";

const HELP: &str = "The JWT auth method lets workloads log in with a JWT signed by a trusted \
issuer (an OIDC provider, GitHub Actions, Kubernetes), checked against the issuer's public keys \
and the claims a role binds.";

/// Vault's name pattern for roles (`framework.GenericNameRegex`).
const ROLE_NAME: &str = r"(?P<name>\w(?:[\w.-]*\w)?)";

const CONFIG_KEY: &str = "config";

/// Shared state of one jwt mount: the in-memory key set cache.
struct JwtAuth {
    /// The last fetched key set. The lock is held across a fetch, so concurrent logins that
    /// need fresh keys wait for one fetch instead of each starting their own.
    key_set: Mutex<Option<CachedKeySet>>,
}

/// Keys fetched from a JWKS or discovery URL.
struct CachedKeySet {
    /// Which config source these keys came from (URL and CA), so a config change invalidates.
    source: String,
    keys: Arc<Vec<VerificationKey>>,
    fetched_at: DateTime<Utc>,
}

/// One public key a token may be verified with.
#[derive(Clone)]
struct VerificationKey {
    kid: Option<String>,
    /// The JWK's `alg`, when it pins one.
    alg: Option<Algorithm>,
    family: AlgorithmFamily,
    key: DecodingKey,
}

impl VerificationKey {
    fn fits(&self, alg: Algorithm) -> bool {
        self.family == alg.family() && self.alg.is_none_or(|a| a == alg)
    }
}

/// The jwt engine; `kind` is the mount type it was enabled as (`jwt` or `oidc`).
pub fn backend(kind: &'static str) -> Backend {
    let e = Engine::new(
        kind,
        HELP,
        Arc::new(JwtAuth {
            key_set: Mutex::new(None),
        }),
    );

    let config = e
        .path("config")
        .help(
            "Configure where signing keys come from.",
            "Exactly one of jwt_validation_pubkeys, jwks_url or oidc_discovery_url. URLs \
             are fetched once on write to check them; nothing is stored if that fails.",
        )
        .op(Operation::Read, "Read the configuration.", |_, ctx| {
            read_config(ctx)
        })
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Write the configuration.",
            write_config,
        );
    let list = e
        .path("role/?")
        .help("List roles.", "LIST returns the names of all roles.")
        .op(Operation::List, "List roles.", |_, ctx| list_roles(ctx));
    let role = e
        .path(format!("role/{ROLE_NAME}"))
        .help(
            "Manage roles.",
            "A role binds audiences, subject and claims a JWT must carry to token settings.",
        )
        .existence(|_, ctx: Ctx| async move {
            Ok(ctx.view.get(&role_key(ctx.param("name"))).await?.is_some())
        })
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Create or update a role.",
            |_, ctx, input| write_role(ctx, input),
        )
        .op(Operation::Read, "Read a role.", |_, ctx| read_role(ctx))
        .op(Operation::Delete, "Delete a role.", |_, ctx| {
            delete_role(ctx)
        });
    let login = e
        .path("login")
        .unauthenticated()
        .help(
            "Log in with a JWT.",
            "The JWT's signature, times and claims are checked against the role.",
        )
        .typed(Operation::Update, "Log in.", login);

    e.paths(vec![config, list, role, login])
        .configure(|backend| {
            backend.with_login_renewal(
                |ctx: Ctx, renewal: coffer_sdk::logical::LoginRenewal| async move {
                    let name = renewal
                        .metadata
                        .get("role")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    if ctx.view.get(&role_key(&name)).await?.is_none() {
                        return Err(Error::bad(format!(
                            "role {name:?} does not exist during renewal"
                        )));
                    }
                    Ok(())
                },
            )
        })
        .build()
}

fn role_key(name: &str) -> String {
    format!("role/{name}")
}

// ---------------------------------------------------------------------------------------------
// Config

/// The config as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ConfigEntry {
    jwks_url: String,
    jwks_ca_pem: String,
    jwt_validation_pubkeys: Vec<String>,
    oidc_discovery_url: String,
    oidc_discovery_ca_pem: String,
    bound_issuer: String,
    jwt_supported_algs: Vec<String>,
    default_role: String,
}

/// Where a config's verification keys come from.
enum KeySource<'a> {
    Pubkeys(&'a [String]),
    Jwks { url: &'a str, ca_pem: &'a str },
    Discovery { url: &'a str, ca_pem: &'a str },
}

impl ConfigEntry {
    fn key_source(&self) -> Result<KeySource<'_>> {
        let set = [
            !self.jwt_validation_pubkeys.is_empty(),
            !self.jwks_url.is_empty(),
            !self.oidc_discovery_url.is_empty(),
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            return Err(Error::bad(
                "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' \
                 must be set",
            ));
        }
        Ok(if set[0] {
            KeySource::Pubkeys(&self.jwt_validation_pubkeys)
        } else if set[1] {
            KeySource::Jwks {
                url: &self.jwks_url,
                ca_pem: &self.jwks_ca_pem,
            }
        } else {
            KeySource::Discovery {
                url: &self.oidc_discovery_url,
                ca_pem: &self.oidc_discovery_ca_pem,
            }
        })
    }

    /// The algorithms a token may be signed with.
    fn supported_algs(&self) -> Vec<Algorithm> {
        let names: Vec<&str> = if self.jwt_supported_algs.is_empty() {
            DEFAULT_SUPPORTED_ALGS.to_vec()
        } else {
            self.jwt_supported_algs.iter().map(String::as_str).collect()
        };
        names
            .into_iter()
            .filter_map(public_key_alg)
            .collect::<Vec<_>>()
    }
}

/// A public-key signing algorithm by its JOSE name; `None` for `none`, HMAC and unknown names.
fn public_key_alg(name: &str) -> Option<Algorithm> {
    Algorithm::from_str(name)
        .ok()
        .filter(|alg| alg.family() != AlgorithmFamily::Hmac)
}

/// Write the configuration (replaces the whole config, as Vault does).
#[derive(Debug, Deserialize, JsonSchema)]
struct ConfigWrite {
    /// JWKS URL to fetch signing keys from.
    #[serde(default)]
    jwks_url: Option<String>,
    /// CA certificates (PEM) to trust for `jwks_url`.
    #[serde(default)]
    jwks_ca_pem: Option<String>,
    /// PEM-encoded public keys to verify tokens with.
    #[serde(default, deserialize_with = "crate::token::opt_string_list")]
    jwt_validation_pubkeys: Option<Vec<String>>,
    /// OIDC discovery URL (the issuer); its `jwks_uri` supplies the keys.
    #[serde(default)]
    oidc_discovery_url: Option<String>,
    /// CA certificates (PEM) to trust for `oidc_discovery_url`.
    #[serde(default)]
    oidc_discovery_ca_pem: Option<String>,
    /// Value the `iss` claim must have.
    #[serde(default)]
    bound_issuer: Option<String>,
    /// Signing algorithms to accept (default: RSA, ECDSA and EdDSA ones).
    #[serde(default, deserialize_with = "crate::token::opt_string_list")]
    jwt_supported_algs: Option<Vec<String>>,
    /// Role used when a login names none.
    #[serde(default)]
    default_role: Option<String>,
}

async fn read_config(ctx: Ctx) -> Result<Response> {
    let config: ConfigEntry = view::get_json(ctx.view.as_ref(), CONFIG_KEY)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Response::data(json!({
        "jwks_url": config.jwks_url,
        "jwks_ca_pem": config.jwks_ca_pem,
        "jwt_validation_pubkeys": config.jwt_validation_pubkeys,
        "oidc_discovery_url": config.oidc_discovery_url,
        "oidc_discovery_ca_pem": config.oidc_discovery_ca_pem,
        "bound_issuer": config.bound_issuer,
        "jwt_supported_algs": config.jwt_supported_algs,
        "default_role": config.default_role,
    })))
}

async fn write_config(state: Arc<JwtAuth>, ctx: Ctx, input: ConfigWrite) -> Result<Response> {
    let trim = |s: Option<String>| s.map(|s| s.trim().to_string()).unwrap_or_default();
    let config = ConfigEntry {
        jwks_url: trim(input.jwks_url),
        jwks_ca_pem: trim(input.jwks_ca_pem),
        jwt_validation_pubkeys: input
            .jwt_validation_pubkeys
            .unwrap_or_default()
            .into_iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        oidc_discovery_url: trim(input.oidc_discovery_url),
        oidc_discovery_ca_pem: trim(input.oidc_discovery_ca_pem),
        bound_issuer: trim(input.bound_issuer),
        jwt_supported_algs: input.jwt_supported_algs.unwrap_or_default(),
        default_role: trim(input.default_role),
    };
    for name in &config.jwt_supported_algs {
        if public_key_alg(name).is_none() {
            // The name is configuration, not a secret; saying which one is wrong helps.
            return Err(Error::bad(format!(
                "invalid jwt_supported_algs: {name:?} is not a supported public-key signing \
                 algorithm"
            )));
        }
    }
    // Check the key source now, so a typo is a 400 here rather than failed logins later.
    let mut key_set = state.key_set.lock().await;
    let fetched = match config.key_source()? {
        KeySource::Pubkeys(pems) => {
            parse_pubkeys(pems)?;
            None
        }
        KeySource::Jwks { url, ca_pem } => Some(
            fetch_jwks(url, ca_pem)
                .await
                .map_err(|reason| Error::bad(format!("error checking jwks URL: {reason}")))?,
        ),
        KeySource::Discovery { url, ca_pem } => {
            Some(fetch_discovered_keys(url, ca_pem).await.map_err(|reason| {
                Error::bad(format!("error checking oidc discovery URL: {reason}"))
            })?)
        }
    };
    view::put_json(ctx.view.as_ref(), CONFIG_KEY, &config).await?;
    *key_set = fetched.map(|keys| CachedKeySet {
        source: source_id(&config),
        keys: Arc::new(keys),
        fetched_at: ctx.clock.now(),
    });
    Ok(Response::empty())
}

/// Parse PEM public keys (RSA, EC or Ed25519); the error names the entry's position only.
fn parse_pubkeys(pems: &[String]) -> Result<Vec<VerificationKey>> {
    pems.iter()
        .enumerate()
        .map(|(i, pem)| {
            let bytes = pem.as_bytes();
            let parsed = DecodingKey::from_rsa_pem(bytes)
                .map(|k| (AlgorithmFamily::Rsa, k))
                .or_else(|_| DecodingKey::from_ec_pem(bytes).map(|k| (AlgorithmFamily::Ec, k)))
                .or_else(|_| DecodingKey::from_ed_pem(bytes).map(|k| (AlgorithmFamily::Ed, k)));
            match parsed {
                Ok((family, key)) => Ok(VerificationKey {
                    kid: None,
                    alg: None,
                    family,
                    key,
                }),
                Err(_) => Err(Error::bad(format!(
                    "error parsing jwt_validation_pubkeys: entry {} is not a PEM-encoded RSA, \
                     EC or Ed25519 public key",
                    i + 1
                ))),
            }
        })
        .collect()
}

/// Identifies a fetched key source, so that cached keys from an older config are not used.
fn source_id(config: &ConfigEntry) -> String {
    match config.key_source() {
        Ok(KeySource::Jwks { url, ca_pem }) => format!("jwks\n{url}\n{ca_pem}"),
        Ok(KeySource::Discovery { url, ca_pem }) => format!("discovery\n{url}\n{ca_pem}"),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Fetching keys

/// GET a JSON document on the blocking pool. The error is a short reason fit for a client:
/// URLs and CA certificates are configuration, not secrets.
async fn fetch_json(url: String, ca_pem: String) -> std::result::Result<Value, String> {
    tokio::task::spawn_blocking(move || fetch_json_blocking(&url, &ca_pem))
        .await
        .map_err(|_| "fetch task failed".to_string())?
}

fn fetch_json_blocking(url: &str, ca_pem: &str) -> std::result::Result<Value, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("URL must use http or https".into());
    }
    let mut tls = ureq::tls::TlsConfig::builder();
    if !ca_pem.is_empty() {
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(ca_pem.as_bytes()) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(_) => return Err("CA PEM could not be parsed".into()),
            }
        }
        if certs.is_empty() {
            return Err("CA PEM contains no certificates".into());
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(3)
        .build()
        .new_agent();
    let mut resp = agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => "request timed out".to_string(),
            other => format!("request failed: {other}"),
        })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("server answered HTTP {status}"));
    }
    resp.body_mut()
        .with_config()
        .limit(FETCH_BODY_LIMIT)
        .read_json::<Value>()
        .map_err(|_| "response is not a JSON document".to_string())
}

/// Fetch a JWKS and keep its usable signing keys.
async fn fetch_jwks(url: &str, ca_pem: &str) -> std::result::Result<Vec<VerificationKey>, String> {
    let doc = fetch_json(url.to_string(), ca_pem.to_string()).await?;
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "response has no \"keys\" list".to_string())?;
    // One exotic entry (an unknown `alg`, an encryption key) must not hide the others.
    let keys: Vec<VerificationKey> = entries
        .iter()
        .filter_map(|entry| serde_json::from_value::<Jwk>(entry.clone()).ok())
        .filter_map(|jwk| verification_key(&jwk))
        .collect();
    if keys.is_empty() {
        return Err("key set contains no usable public signing keys".into());
    }
    Ok(keys)
}

/// A JWK usable for signature verification: a public RSA, EC or OKP key not marked for
/// encryption. Symmetric keys are dropped: this method never verifies HMACs.
fn verification_key(jwk: &Jwk) -> Option<VerificationKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
        // Symmetric, unknown and future key types: never.
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(public_key_alg(&a.to_string())?),
    };
    Some(VerificationKey {
        kid: jwk.common.key_id.clone(),
        alg,
        family,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

/// Follow an OIDC discovery document to its JWKS. Like go-oidc (Vault), the document's
/// `issuer` must be the discovery URL itself.
async fn fetch_discovered_keys(
    issuer: &str,
    ca_pem: &str,
) -> std::result::Result<Vec<VerificationKey>, String> {
    let base = issuer.trim_end_matches('/');
    let doc = fetch_json(
        format!("{base}/.well-known/openid-configuration"),
        ca_pem.to_string(),
    )
    .await?;
    let announced = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
    if announced.trim_end_matches('/') != base {
        return Err("issuer in the discovery document does not match the discovery URL".into());
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| "discovery document has no jwks_uri".to_string())?;
    fetch_jwks(jwks_uri, ca_pem).await
}

async fn fetch_for(config: &ConfigEntry) -> std::result::Result<Vec<VerificationKey>, String> {
    match config.key_source().map_err(|e| e.to_string())? {
        KeySource::Pubkeys(_) => Err("no URL to fetch".into()),
        KeySource::Jwks { url, ca_pem } => fetch_jwks(url, ca_pem).await,
        KeySource::Discovery { url, ca_pem } => fetch_discovered_keys(url, ca_pem).await,
    }
}

/// The keys a token with key id `kid` may be verified with, from the cache when it is fresh.
/// An unknown `kid` refetches once (the issuer may have rotated its keys).
async fn fetched_keys(
    state: &JwtAuth,
    config: &ConfigEntry,
    now: DateTime<Utc>,
    kid: Option<&str>,
) -> Result<Arc<Vec<VerificationKey>>> {
    let source = source_id(config);
    let age = |c: &CachedKeySet| (now - c.fetched_at).to_std().unwrap_or(Duration::ZERO);
    let mut cache = state.key_set.lock().await;
    let usable = cache
        .as_ref()
        .filter(|c| c.source == source && age(c) < KEY_SET_TTL);
    let knows_kid = |c: &CachedKeySet| match kid {
        None => true,
        Some(kid) => c.keys.iter().any(|k| k.kid.as_deref() == Some(kid)),
    };
    let refetch = match usable {
        None => true,
        Some(c) => !knows_kid(c) && age(c) >= MIN_REFETCH_INTERVAL,
    };
    if refetch {
        match fetch_for(config).await {
            Ok(keys) => {
                *cache = Some(CachedKeySet {
                    source: source.clone(),
                    keys: Arc::new(keys),
                    fetched_at: now,
                });
            }
            // Keep serving with the keys we have (possibly stale) if the provider is down.
            Err(_) if cache.as_ref().is_some_and(|c| c.source == source) => {}
            Err(_) => {
                return Err(Error::bad(
                    "error validating token: unable to fetch the issuer's signing keys",
                ))
            }
        }
    }
    Ok(cache
        .as_ref()
        .map(|c| Arc::clone(&c.keys))
        .unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Roles

/// How `bound_claims` values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BoundClaimsType {
    /// Exact string comparison.
    String,
    /// `*` matches any run of characters.
    Glob,
}

/// A role as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RoleEntry {
    role_type: String,
    bound_audiences: Vec<String>,
    bound_subject: String,
    bound_claims: Map<String, Value>,
    bound_claims_type: BoundClaimsType,
    claim_mappings: BTreeMap<String, String>,
    user_claim: String,
    user_claim_json_pointer: bool,
    groups_claim: String,
    /// Seconds; 0 = Vault's default, negative = no leeway.
    clock_skew_leeway: i64,
    expiration_leeway: i64,
    not_before_leeway: i64,
    token: TokenSettings,
}

impl Default for RoleEntry {
    fn default() -> Self {
        RoleEntry {
            role_type: "jwt".into(),
            bound_audiences: Vec::new(),
            bound_subject: String::new(),
            bound_claims: Map::new(),
            bound_claims_type: BoundClaimsType::String,
            claim_mappings: BTreeMap::new(),
            user_claim: String::new(),
            user_claim_json_pointer: false,
            groups_claim: String::new(),
            clock_skew_leeway: DEFAULT_CLOCK_SKEW_LEEWAY,
            expiration_leeway: DEFAULT_EXPIRATION_LEEWAY,
            not_before_leeway: DEFAULT_NOT_BEFORE_LEEWAY,
            token: TokenSettings::default(),
        }
    }
}

/// A leeway as Vault reads it: 0 means the default, a negative value means none.
fn effective_leeway(configured: i64, default: i64) -> i64 {
    match configured {
        0 => default,
        n if n < 0 => 0,
        n => n,
    }
}

/// A leeway: seconds (`-1` disables) or a duration string.
fn opt_leeway<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("expected a whole number of seconds")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => coffer_sdk::duration::parse_duration(&s)
                .map(|d| Some(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
                .map_err(serde::de::Error::custom),
        },
        Some(_) => Err(serde::de::Error::custom(
            "expected a number of seconds or a duration string",
        )),
    }
}

/// A map field Vault reads as `TypeMap`: a JSON object, or a string holding one.
fn json_object(field: &str, raw: Value) -> Result<Map<String, Value>> {
    let invalid = || {
        Error::bad(format!(
            "invalid value for \"{field}\": must be a JSON object"
        ))
    };
    match raw {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        Value::String(s) if s.trim().is_empty() => Ok(Map::new()),
        Value::String(s) => serde_json::from_str(&s).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

with_token_fields! {
    /// Create or update a role.
    #[derive(Debug, Deserialize, JsonSchema)]
    struct RoleWrite {
        /// `jwt` (the only type supported here; `oidc` roles are refused).
        #[serde(default)]
        role_type: Option<String>,
        /// Audiences the token's `aud` must include one of.
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        bound_audiences: Option<Vec<String>>,
        /// Value the token's `sub` must have.
        #[serde(default)]
        bound_subject: Option<String>,
        /// Claims the token must carry: claim (or JSON pointer) → value or list of values.
        #[serde(default)]
        bound_claims: Option<Value>,
        /// `string` (exact) or `glob` (`*` wildcards) comparison of `bound_claims`.
        #[serde(default)]
        bound_claims_type: Option<String>,
        /// Claim (or JSON pointer) → metadata key copied into the token and alias metadata.
        #[serde(default)]
        claim_mappings: Option<Value>,
        /// Claim whose value names the user (the identity alias).
        #[serde(default)]
        user_claim: Option<String>,
        /// Read `user_claim` as a JSON pointer.
        #[serde(default, deserialize_with = "de::opt_bool")]
        user_claim_json_pointer: Option<bool>,
        /// Claim holding the user's groups.
        #[serde(default)]
        groups_claim: Option<String>,
        /// Leeway for clock skew on exp/nbf/iat (seconds; 0 = 60s default, -1 = none).
        #[serde(default, deserialize_with = "opt_leeway")]
        clock_skew_leeway: Option<i64>,
        /// Extra leeway after exp (seconds; 0 = 150s default, -1 = none).
        #[serde(default, deserialize_with = "opt_leeway")]
        expiration_leeway: Option<i64>,
        /// Extra leeway before nbf (seconds; 0 = 150s default, -1 = none).
        #[serde(default, deserialize_with = "opt_leeway")]
        not_before_leeway: Option<i64>,
    }
}

async fn write_role(ctx: Ctx, mut input: RoleWrite) -> Result<Response> {
    let name = ctx.param("name").to_string();
    let view = ctx.view.as_ref();
    let mut role: RoleEntry = view::get_json(view, &role_key(&name))
        .await?
        .unwrap_or_default();
    input.token_fields().apply(&mut role.token)?;
    if let Some(t) = input.role_type {
        role.role_type = t.trim().to_string();
    }
    match role.role_type.as_str() {
        "jwt" => {}
        "oidc" => {
            return Err(Error::bad(
                "role_type \"oidc\" is not supported: only \"jwt\" roles can be created",
            ))
        }
        _ => return Err(Error::bad("invalid 'role_type': must be \"jwt\"")),
    }
    if let Some(list) = input.bound_audiences {
        role.bound_audiences = list.into_iter().filter(|a| !a.is_empty()).collect();
    }
    if let Some(s) = input.bound_subject {
        role.bound_subject = s;
    }
    if let Some(t) = input.bound_claims_type {
        role.bound_claims_type = match t.trim() {
            "string" | "" => BoundClaimsType::String,
            "glob" => BoundClaimsType::Glob,
            _ => {
                return Err(Error::bad(
                    "invalid 'bound_claims_type': must be \"string\" or \"glob\"",
                ))
            }
        };
    }
    if let Some(raw) = input.bound_claims {
        role.bound_claims = json_object("bound_claims", raw)?;
    }
    check_bound_claims(&role.bound_claims, role.bound_claims_type)?;
    if let Some(raw) = input.claim_mappings {
        role.claim_mappings = claim_mappings(json_object("claim_mappings", raw)?)?;
    }
    if let Some(c) = input.user_claim {
        role.user_claim = c.trim().to_string();
    }
    if role.user_claim.is_empty() {
        return Err(Error::bad("a user claim must be defined on the role"));
    }
    if let Some(b) = input.user_claim_json_pointer {
        role.user_claim_json_pointer = b;
    }
    if let Some(g) = input.groups_claim {
        role.groups_claim = g.trim().to_string();
    }
    if let Some(n) = input.clock_skew_leeway {
        role.clock_skew_leeway = n;
    }
    if let Some(n) = input.expiration_leeway {
        role.expiration_leeway = n;
    }
    if let Some(n) = input.not_before_leeway {
        role.not_before_leeway = n;
    }
    // Vault: a jwt role must constrain which tokens it accepts.
    if role.bound_audiences.is_empty()
        && role.bound_subject.is_empty()
        && role.bound_claims.is_empty()
        && role.token.bound_cidrs.is_empty()
    {
        return Err(Error::bad(
            "must have at least one bound constraint when creating/updating a role",
        ));
    }
    view::put_json(view, &role_key(&name), &role).await?;
    Ok(Response::empty())
}

/// Bound claim values must be scalars or lists of them; globs must be strings.
fn check_bound_claims(claims: &Map<String, Value>, kind: BoundClaimsType) -> Result<()> {
    for (claim, expected) in claims {
        let values: Vec<&Value> = match expected {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let ok = values.iter().all(|v| match kind {
            BoundClaimsType::Glob => v.is_string(),
            BoundClaimsType::String => v.is_string() || v.is_number() || v.is_boolean(),
        });
        if !ok {
            let wanted = match kind {
                BoundClaimsType::Glob => "a string or a list of strings",
                BoundClaimsType::String => "a string, number, boolean or a list of them",
            };
            return Err(Error::bad(format!(
                "invalid bound_claims: value of claim {claim:?} must be {wanted}"
            )));
        }
    }
    Ok(())
}

/// Validate `claim_mappings`: string targets, no target twice, `role` reserved.
fn claim_mappings(raw: Map<String, Value>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut targets = HashSet::new();
    for (claim, target) in raw {
        let Value::String(target) = target else {
            return Err(Error::bad(format!(
                "invalid claim_mappings: value for claim {claim:?} must be a string"
            )));
        };
        if target == "role" {
            return Err(Error::bad(
                "metadata key \"role\" is reserved and may not be a mapping destination",
            ));
        }
        if !targets.insert(target.clone()) {
            return Err(Error::bad(format!(
                "multiple keys are mapped to metadata key {target:?}"
            )));
        }
        out.insert(claim, target);
    }
    Ok(out)
}

async fn read_role(ctx: Ctx) -> Result<Response> {
    let role: RoleEntry = view::get_json(ctx.view.as_ref(), &role_key(ctx.param("name")))
        .await?
        .ok_or(Error::NotFound)?;
    let null_if_empty = |v: Value| match &v {
        Value::Object(m) if m.is_empty() => Value::Null,
        _ => v,
    };
    let mut data = Map::new();
    data.insert("role_type".into(), role.role_type.into());
    data.insert("bound_audiences".into(), json!(role.bound_audiences));
    data.insert("bound_subject".into(), role.bound_subject.into());
    data.insert(
        "bound_claims".into(),
        null_if_empty(Value::Object(role.bound_claims)),
    );
    data.insert("bound_claims_type".into(), json!(role.bound_claims_type));
    data.insert(
        "claim_mappings".into(),
        null_if_empty(json!(role.claim_mappings)),
    );
    data.insert("user_claim".into(), role.user_claim.into());
    data.insert(
        "user_claim_json_pointer".into(),
        role.user_claim_json_pointer.into(),
    );
    data.insert("groups_claim".into(), role.groups_claim.into());
    data.insert("clock_skew_leeway".into(), role.clock_skew_leeway.into());
    data.insert("expiration_leeway".into(), role.expiration_leeway.into());
    data.insert("not_before_leeway".into(), role.not_before_leeway.into());
    role.token.read_fields(&mut data);
    Ok(Response {
        data: Some(data),
        ..Response::default()
    })
}

async fn list_roles(ctx: Ctx) -> Result<Response> {
    Response::list(ctx.view.list("role/").await?)
}

async fn delete_role(ctx: Ctx) -> Result<Response> {
    ctx.view.delete(&role_key(ctx.param("name"))).await?;
    Ok(Response::empty())
}

// ---------------------------------------------------------------------------------------------
// Login

/// Log in with a JWT.
#[derive(Deserialize, JsonSchema)]
struct LoginInput {
    /// The role to log in against (default: the config's `default_role`).
    #[serde(default)]
    role: Option<String>,
    /// The signed JWT.
    #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
    jwt: Option<String>,
}

async fn login(state: Arc<JwtAuth>, ctx: Ctx, input: LoginInput) -> Result<Response> {
    let jwt = Zeroizing::new(input.jwt.unwrap_or_default());
    if jwt.trim().is_empty() {
        return Err(Error::bad("missing token"));
    }
    let view = ctx.view.as_ref();
    let config: Option<ConfigEntry> = view::get_json(view, CONFIG_KEY).await?;
    let role_name = match input.role.filter(|r| !r.trim().is_empty()) {
        Some(r) => r.trim().to_string(),
        None => match config.as_ref().map(|c| c.default_role.as_str()) {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => return Err(Error::bad("missing role")),
        },
    };
    let role: RoleEntry = view::get_json(view, &role_key(&role_name))
        .await?
        .ok_or_else(|| Error::bad(format!("role {role_name:?} could not be found")))?;
    if role.role_type != "jwt" {
        return Err(Error::bad("role with oidc role_type is not allowed"));
    }
    if !role.token.bound_cidrs.is_empty()
        && !cidr::allows(&role.token.bound_cidrs, ctx.request.connection.remote_addr)
    {
        return Err(Error::bad("request originated from invalid CIDR"));
    }
    let config = config.ok_or_else(|| Error::bad("could not load configuration"))?;
    let now = ctx.clock.now();

    let claims = verify_signature(&state, &config, now, jwt.trim()).await?;
    check_registered_claims(&claims, &config, &role, now)?;
    check_bound_claims_match(&claims, &role)?;

    let user = match claim_value(&claims, &role.user_claim, role.user_claim_json_pointer) {
        None => {
            return Err(Error::bad(format!(
                "claim {:?} not found in token",
                role.user_claim
            )))
        }
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return Err(Error::bad(format!(
                "claim {:?} could not be converted to string",
                role.user_claim
            )))
        }
    };

    let mut mapped = Map::new();
    for (claim, target) in &role.claim_mappings {
        if let Some(value) = claim_value(&claims, claim, true) {
            let text = scalar_text(value)
                .ok_or_else(|| Error::bad(format!("error converting claim {claim:?} to string")))?;
            mapped.insert(target.clone(), Value::String(text));
        }
    }
    let mut alias_metadata = mapped.clone();
    if !role.groups_claim.is_empty() {
        let groups = groups(&claims, &role.groups_claim)?;
        alias_metadata.insert("groups".into(), Value::String(groups.join(",")));
    }
    // Claims of a token whose signature and bound claims this method verified, under the
    // names the role maps them to.
    let verified_attributes = alias_metadata
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect();
    let mut metadata = mapped;
    metadata.insert("role".into(), Value::String(role_name));

    Ok(Response {
        login: Some(Login {
            metadata,
            display_name: user.clone(),
            alias_name: user,
            alias_metadata,
            verified_attributes,
            ..role.token.login()
        }),
        ..Response::default()
    })
}

/// Check the header's algorithm, find the key and verify the signature; the claims on success.
async fn verify_signature(
    state: &JwtAuth,
    config: &ConfigEntry,
    now: DateTime<Utc>,
    jwt: &str,
) -> Result<Map<String, Value>> {
    let header = decode_header(jwt).ok_or_else(|| Error::bad(MALFORMED_TOKEN))?;
    // `none` and HS* never parse as public-key algorithms, so they never get this far.
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(public_key_alg)
        .filter(|alg| config.supported_algs().contains(alg))
        .ok_or_else(|| Error::bad(UNSUPPORTED_ALG))?;
    let kid = header.get("kid").and_then(Value::as_str);

    let candidates: Vec<VerificationKey> = match config.key_source()? {
        KeySource::Pubkeys(pems) => parse_pubkeys(pems)?,
        KeySource::Jwks { .. } | KeySource::Discovery { .. } => {
            let keys = fetched_keys(state, config, now, kid).await?;
            keys.iter()
                .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
                .cloned()
                .collect()
        }
    };
    let mut validation = Validation::new(alg);
    // Only the signature is checked here: times use the request's clock and Vault's leeways
    // (check_registered_claims), not the library's system-clock checks.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    for key in candidates.iter().filter(|k| k.fits(alg)) {
        match jsonwebtoken::decode::<Map<String, Value>>(jwt, &key.key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::Json(_)) => {
                return Err(Error::bad(MALFORMED_TOKEN))
            }
            Err(_) => continue,
        }
    }
    Err(Error::bad(BAD_SIGNATURE))
}

/// The JOSE header as JSON, without trusting anything in it yet.
fn decode_header(jwt: &str) -> Option<Map<String, Value>> {
    let mut parts = jwt.split('.');
    let header = parts.next()?;
    let (_claims, _signature) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A NumericDate claim: `None` if absent, an error if present but not a number.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|f| Some(f.floor() as i64))
            .ok_or_else(|| Error::bad(MALFORMED_TOKEN)),
        Some(_) => Err(Error::bad(format!(
            "error validating token: invalid {name} claim: not a number"
        ))),
    }
}

/// exp/nbf/iat against the request clock with the role's leeways, then iss, sub and aud.
fn check_registered_claims(
    claims: &Map<String, Value>,
    config: &ConfigEntry,
    role: &RoleEntry,
    now: DateTime<Utc>,
) -> Result<()> {
    let now = now.timestamp();
    let skew = effective_leeway(role.clock_skew_leeway, DEFAULT_CLOCK_SKEW_LEEWAY);
    let exp_leeway = effective_leeway(role.expiration_leeway, DEFAULT_EXPIRATION_LEEWAY);
    let nbf_leeway = effective_leeway(role.not_before_leeway, DEFAULT_NOT_BEFORE_LEEWAY);
    if let Some(exp) = numeric_date(claims, "exp")? {
        if now > exp.saturating_add(skew).saturating_add(exp_leeway) {
            return Err(Error::bad(EXPIRED));
        }
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if now.saturating_add(skew).saturating_add(nbf_leeway) < nbf {
            return Err(Error::bad(NOT_YET_VALID));
        }
    }
    if let Some(iat) = numeric_date(claims, "iat")? {
        if now.saturating_add(skew) < iat {
            return Err(Error::bad(ISSUED_IN_FUTURE));
        }
    }
    if !config.bound_issuer.is_empty()
        && claims.get("iss").and_then(Value::as_str) != Some(config.bound_issuer.as_str())
    {
        return Err(Error::bad(INVALID_ISSUER));
    }
    if !role.bound_subject.is_empty()
        && claims.get("sub").and_then(Value::as_str) != Some(role.bound_subject.as_str())
    {
        return Err(Error::bad(INVALID_SUBJECT));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(Error::bad(INVALID_AUDIENCE)),
    };
    if role.bound_audiences.is_empty() {
        if !audiences.is_empty() {
            return Err(Error::bad(UNBOUND_AUDIENCE));
        }
    } else if !audiences
        .iter()
        .any(|a| role.bound_audiences.iter().any(|b| b == a))
    {
        return Err(Error::bad(INVALID_AUDIENCE));
    }
    Ok(())
}

/// A claim by name, or by JSON pointer (`/a/b`) when `pointer` and the name starts with `/`.
fn claim_value<'a>(claims: &'a Map<String, Value>, name: &str, pointer: bool) -> Option<&'a Value> {
    if pointer && name.starts_with('/') {
        let mut current: Option<&Value> = None;
        for token in name[1..].split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            current = match current {
                None => claims.get(&token),
                Some(Value::Object(m)) => m.get(&token),
                Some(Value::Array(a)) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
                Some(_) => None,
            };
            current?;
        }
        current.filter(|v| !v.is_null())
    } else {
        claims.get(name).filter(|v| !v.is_null())
    }
}

/// A scalar claim as text (strings as-is, numbers and booleans as JSON writes them).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `*` matches any run of characters (including none and `/`); everything else literally.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Every bound claim must be present and one of its values must match (a list claim matches
/// if any of its items does).
fn check_bound_claims_match(claims: &Map<String, Value>, role: &RoleEntry) -> Result<()> {
    for (claim, expected) in &role.bound_claims {
        let expected: Vec<String> = match expected {
            Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
            other => scalar_text(other).into_iter().collect(),
        };
        let actual = claim_value(claims, claim, true).ok_or_else(|| {
            Error::bad(format!(
                "error validating claims: claim {claim:?} is missing"
            ))
        })?;
        let actual: Vec<String> = match actual {
            Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
            other => scalar_text(other).into_iter().collect(),
        };
        let matched = actual.iter().any(|a| {
            expected.iter().any(|e| match role.bound_claims_type {
                BoundClaimsType::String => a == e,
                BoundClaimsType::Glob => glob_matches(e, a),
            })
        });
        if !matched {
            return Err(Error::bad(format!(
                "error validating claims: claim {claim:?} does not match any associated bound \
                 claim values"
            )));
        }
    }
    Ok(())
}

/// The groups claim: a list of strings, or a single string.
fn groups(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>> {
    let not_list = || {
        Error::bad(format!(
            "claim {name:?} could not be converted to string list"
        ))
    };
    match claim_value(claims, name, true) {
        None => Err(Error::bad(format!("claim {name:?} not found in token"))),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or_else(not_list))
            .filter(|g| !matches!(g, Ok(s) if s.is_empty()))
            .collect(),
        Some(_) => Err(not_list()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_any_run_of_characters() {
        assert!(glob_matches(
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/web:ref:refs/heads/main"
        ));
        assert!(glob_matches("refs/heads/*", "refs/heads/feature/x"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "abc"));
        assert!(!glob_matches("a*b*c", "acb"));
        assert!(!glob_matches("refs/heads/*", "refs/tags/v1"));
        assert!(!glob_matches("exact", "exact-not"));
        assert!(
            !glob_matches("ab*ba", "aba"),
            "prefix and suffix may not overlap"
        );
    }

    #[test]
    fn hmac_and_none_are_never_public_key_algorithms() {
        for refused in ["none", "HS256", "HS384", "HS512", "", "RS1"] {
            assert!(public_key_alg(refused).is_none(), "{refused}");
        }
        assert_eq!(public_key_alg("ES256"), Some(Algorithm::ES256));
    }

    #[test]
    fn leeway_zero_means_default_and_negative_means_none() {
        assert_eq!(effective_leeway(0, 150), 150);
        assert_eq!(effective_leeway(-1, 150), 0);
        assert_eq!(effective_leeway(30, 150), 30);
    }

    #[test]
    fn json_pointers_reach_nested_claims() {
        let claims = json!({"a": {"b/c": ["x", "y"]}, "top": "t"});
        let claims = claims.as_object().unwrap();
        assert_eq!(claim_value(claims, "/a/b~1c/1", true), Some(&json!("y")));
        assert_eq!(claim_value(claims, "top", true), Some(&json!("t")));
        assert_eq!(claim_value(claims, "/a/missing", true), None);
    }
}
