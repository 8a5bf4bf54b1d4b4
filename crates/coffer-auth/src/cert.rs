//! The `cert` auth method: a host proves what it is with a TLS client certificate issued by a
//! CA a role trusts ("instance principal"), following Vault's TLS certificate auth API.
//!
//! | operation                 | path           | effect                                        |
//! |---------------------------|----------------|-----------------------------------------------|
//! | create/update/read/delete | `certs/<name>` | a role: trusted CA certificates + constraints |
//! | list                      | `certs/`       | role names                                    |
//! | update/read/delete        | `crls/<name>`  | a certificate revocation list                 |
//! | list                      | `crls/`        | CRL names                                     |
//! | update                    | `login`        | the mTLS client certificate → a [`Login`]     |
//!
//! Storage (relative to the mount's view): `cert/<name>` holds a role, `crls/<name>` a CRL.
//!
//! A login takes the DER chain the client presented during the TLS handshake (leaf first; the
//! listener accepts any well-formed chain and leaves trust to this method, as Vault does). For
//! each candidate role, in name order, the chain must lead to one of the role's CA certificates
//! (webpki path building, validity checked at the request clock's time, not the system's), no
//! certificate on the path may be revoked by a stored CRL of its issuer, and the leaf must pass
//! the role's name and extension constraints. The first role that accepts wins. Every refusal
//! answers the same 400 ([`INVALID_CERTIFICATE`]) so a caller cannot probe which check failed;
//! the precise reason is logged at debug level.
//!
//! Certificate attributes become identity metadata: `cert_name`, `common_name`,
//! `serial_number` (decimal, as Vault), `subject_key_id`, `authority_key_id` (colon-separated
//! hex, as Vault), `dns_sans`, `uri_sans`, `ou` (comma-joined), the values of the role's
//! `allowed_metadata_extensions` (keyed by OID with dots replaced by dashes, as Vault) and of
//! Coffer's `metadata_extensions` (keyed by the name the role gives each OID, e.g.
//! `instance.compartment.id`). The identity alias is the leaf's common name.

use crate::cidr;
use crate::token::{with_token_fields, TokenSettings};
use chrono::{DateTime, Utc};
use coffer_sdk::logical::{Login, LoginRenewal};
use coffer_sdk::view;
use coffer_sdk::{Backend, Ctx, Engine, Error, Operation, Response, Result, View};
use rustls_pki_types::{CertificateDer, UnixTime};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::time::ASN1Time;

/// Vault's answer to every refused certificate login, whatever the cause
/// (`builtin/credential/cert/path_login.go`).
pub const INVALID_CERTIFICATE: &str = "invalid certificate or no client certificate supplied";

/// Vault's answer to a login over a connection that presented no client certificate.
pub const CERTIFICATE_REQUIRED: &str = "client certificate must be supplied";

const HELP: &str = "The cert auth method lets hosts log in with a TLS client certificate \
issued by a CA that a role trusts; certificate attributes become identity metadata.";

/// Vault's name pattern (`framework.GenericNameRegex`).
const NAME: &str = r"(?P<name>\w(?:[\w.-]*\w)?)";

/// Login metadata keys the method fills itself; `metadata_extensions` may not reuse them.
const BUILTIN_METADATA: &[&str] = &[
    "cert_name",
    "common_name",
    "serial_number",
    "subject_key_id",
    "authority_key_id",
    "dns_sans",
    "uri_sans",
    "ou",
];

/// Shared state of one cert mount: a lock for admin writes (read-modify-write of a role).
struct CertAuth {
    writes: Mutex<()>,
}

/// The cert engine.
pub fn backend() -> Backend {
    let e = Engine::new(
        "cert",
        HELP,
        Arc::new(CertAuth {
            writes: Mutex::new(()),
        }),
    );

    let list_certs = e
        .path("certs/?")
        .help(
            "List certificate roles.",
            "LIST returns the names of all roles.",
        )
        .op(Operation::List, "List roles.", |_, ctx: Ctx| async move {
            Response::list(ctx.view.list("cert/").await?)
        });
    let certs = e
        .path(format!("certs/{NAME}"))
        .help(
            "Manage trusted certificate roles.",
            "A role names the CA certificates it trusts, the constraints a client \
             certificate must meet, and the token a matching login gets.",
        )
        .existence(|_, ctx: Ctx| async move {
            Ok(ctx.view.get(&role_key(&name_of(&ctx))).await?.is_some())
        })
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Create or update a role.",
            write_role,
        )
        .op(Operation::Read, "Read a role.", |_, ctx| read_role(ctx))
        .op(
            Operation::Delete,
            "Delete a role.",
            |_, ctx: Ctx| async move {
                ctx.view.delete(&role_key(&name_of(&ctx))).await?;
                Ok(Response::empty())
            },
        );
    let list_crls = e
        .path("crls/?")
        .help("List CRLs.", "LIST returns the names of all stored CRLs.")
        .op(Operation::List, "List CRLs.", |_, ctx: Ctx| async move {
            Response::list(ctx.view.list("crls/").await?)
        });
    let crls = e
        .path(format!("crls/{NAME}"))
        .help(
            "Manage certificate revocation lists.",
            "A certificate listed in a stored CRL of its issuer cannot log in.",
        )
        .typed(Operation::Update, "Store a CRL.", |_, ctx, input| {
            write_crl(ctx, input)
        })
        .op(Operation::Read, "Read a CRL's serials.", |_, ctx| {
            read_crl(ctx)
        })
        .op(
            Operation::Delete,
            "Delete a CRL.",
            |_, ctx: Ctx| async move {
                ctx.view.delete(&crl_key(&name_of(&ctx))).await?;
                Ok(Response::empty())
            },
        );
    let config = e
        .path("config")
        .help(
            "Configure the cert auth method.",
            "`disable_binding`: when false (the default), a token renews only when the request \
             presents the same client certificate that logged in.",
        )
        .op(
            Operation::Read,
            "Read the configuration.",
            |_, ctx: Ctx| async move {
                let config = load_config(ctx.view.as_ref()).await?;
                Ok(Response::data(
                    json!({"disable_binding": config.disable_binding}),
                ))
            },
        )
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Write the configuration.",
            |_, ctx: Ctx, input: ConfigInput| async move {
                let mut config = load_config(ctx.view.as_ref()).await?;
                if let Some(v) = input.disable_binding {
                    config.disable_binding = v;
                }
                view::put_json(ctx.view.as_ref(), CONFIG_KEY, &config).await?;
                Ok(Response::empty())
            },
        );
    let login = e
        .path("login")
        .unauthenticated()
        .help(
            "Log in with the TLS client certificate.",
            "The certificate presented during the TLS handshake is checked against every \
             role (or the one named); the first role that accepts it issues the login.",
        )
        .typed(Operation::Update, "Log in.", |_, ctx, input| {
            login(ctx, input)
        });

    e.paths(vec![config, list_certs, certs, list_crls, crls, login])
        .configure(|backend| backend.with_login_renewal(renew_check))
        .build()
}

const CONFIG_KEY: &str = "config";

/// Mount-wide settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CertConfig {
    #[serde(default)]
    disable_binding: bool,
}

#[derive(Deserialize, JsonSchema)]
struct ConfigInput {
    #[serde(default, deserialize_with = "coffer_sdk::framework::de::opt_bool")]
    disable_binding: Option<bool>,
}

async fn load_config(view: &dyn View) -> Result<CertConfig> {
    Ok(view::get_json(view, CONFIG_KEY).await?.unwrap_or_default())
}

/// SHA-256 of a certificate's DER, hex.
fn fingerprint(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// Renewal of a cert-auth token: the role must still exist and, unless `disable_binding`, the
/// renewing request must present the certificate that logged in, still valid for the role.
async fn renew_check(ctx: Ctx, renewal: LoginRenewal) -> Result<()> {
    let name = renewal
        .metadata
        .get("cert_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let view = ctx.view.as_ref();
    let Some(role) = view::get_json::<CertRole>(view, &role_key(&name)).await? else {
        return Err(Error::bad(format!(
            "role {name:?} does not exist during renewal"
        )));
    };
    if load_config(view).await?.disable_binding {
        return Ok(());
    }
    let chain = &ctx.request.connection.peer_certificates;
    let Some(leaf_der) = chain.first() else {
        return Err(Error::bad(CERTIFICATE_REQUIRED));
    };
    let bound = renewal
        .internal
        .get("fingerprint")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if fingerprint(leaf_der) != bound {
        tracing::debug!(role = %name, "cert renewal refused: not the certificate that logged in");
        return Err(Error::bad(INVALID_CERTIFICATE));
    }
    let crls = load_crls(view).await?;
    verify_chain(&role, chain, ctx.clock.now(), &crls).map_err(|reason| {
        tracing::debug!(role = %name, %reason, "cert renewal refused: the certificate no longer verifies");
        Error::bad(INVALID_CERTIFICATE)
    })
}

// ---------------------------------------------------------------------------------------------
// Storage

fn role_key(name: &str) -> String {
    format!("cert/{name}")
}

fn crl_key(name: &str) -> String {
    format!("crls/{name}")
}

/// Role and CRL names are case-insensitive, as in Vault.
fn name_of(ctx: &Ctx) -> String {
    ctx.param("name").to_lowercase()
}

/// A role as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CertRole {
    /// The PEM bundle as given; every block is a trust anchor.
    certificate: String,
    display_name: String,
    allowed_names: Vec<String>,
    allowed_common_names: Vec<String>,
    allowed_dns_sans: Vec<String>,
    allowed_email_sans: Vec<String>,
    allowed_uri_sans: Vec<String>,
    allowed_organizational_units: Vec<String>,
    required_extensions: Vec<String>,
    allowed_metadata_extensions: Vec<String>,
    /// Coffer's addition: metadata key → OID whose value fills it.
    metadata_extensions: BTreeMap<String, String>,
    token: TokenSettings,
}

/// A CRL as stored: its DER, hex-encoded.
#[derive(Debug, Serialize, Deserialize)]
struct StoredCrl {
    der_hex: String,
}

// ---------------------------------------------------------------------------------------------
// Roles

with_token_fields! {
    /// Create or update a certificate role.
    #[derive(Debug, Deserialize, JsonSchema)]
    struct RoleWrite {
        /// PEM: one or more CA certificates (or a pinned client certificate) to trust.
        #[serde(default)]
        certificate: Option<String>,
        /// Name shown for tokens of this role (default: the certificate's common name).
        #[serde(default)]
        display_name: Option<String>,
        /// Globs matched against the common name, DNS and email SANs (any may match).
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        allowed_names: Option<Vec<String>>,
        /// Globs the common name must match.
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        allowed_common_names: Option<Vec<String>>,
        /// Globs one DNS SAN must match (case-insensitive).
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        allowed_dns_sans: Option<Vec<String>>,
        /// Globs one email SAN must match.
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        allowed_email_sans: Option<Vec<String>>,
        /// Globs one URI SAN must match.
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        allowed_uri_sans: Option<Vec<String>>,
        /// Globs one organizational unit must match.
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        allowed_organizational_units: Option<Vec<String>>,
        /// `oid:glob` (or `hex:oid:glob` on the raw value) extensions the leaf must carry.
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        required_extensions: Option<Vec<String>>,
        /// OIDs whose values are copied into login metadata (key: OID with `-` for `.`).
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        allowed_metadata_extensions: Option<Vec<String>>,
        /// Metadata name → OID whose value is copied into login metadata under that name.
        #[serde(default)]
        metadata_extensions: Option<BTreeMap<String, String>>,
    }
}

async fn write_role(state: Arc<CertAuth>, ctx: Ctx, mut input: RoleWrite) -> Result<Response> {
    let name = name_of(&ctx);
    let view = ctx.view.as_ref();
    let _writes = state.writes.lock().await;
    let existing: Option<CertRole> = view::get_json(view, &role_key(&name)).await?;
    let creating = existing.is_none();
    let mut role = existing.unwrap_or_default();

    input.token_fields().apply(&mut role.token)?;
    match input.certificate.take() {
        Some(pem) => {
            parse_certificate_bundle(&pem)
                .map_err(|reason| Error::bad(format!("failed to parse certificate: {reason}")))?;
            role.certificate = pem;
        }
        None if creating => return Err(Error::bad("missing certificate")),
        None => {}
    }
    if let Some(d) = input.display_name.take() {
        role.display_name = d;
    }
    let lists = [
        (input.allowed_names.take(), &mut role.allowed_names),
        (
            input.allowed_common_names.take(),
            &mut role.allowed_common_names,
        ),
        (input.allowed_dns_sans.take(), &mut role.allowed_dns_sans),
        (
            input.allowed_email_sans.take(),
            &mut role.allowed_email_sans,
        ),
        (input.allowed_uri_sans.take(), &mut role.allowed_uri_sans),
        (
            input.allowed_organizational_units.take(),
            &mut role.allowed_organizational_units,
        ),
    ];
    for (given, stored) in lists {
        if let Some(list) = given {
            *stored = list;
        }
    }
    if let Some(list) = input.required_extensions.take() {
        for entry in &list {
            let (_, oid, _) = split_required_extension(entry).ok_or_else(|| {
                Error::bad("required_extensions entries must be \"oid:value\" or \"hex:oid:value\"")
            })?;
            if !is_oid(oid) {
                return Err(Error::bad(format!(
                    "invalid OID {oid:?} in required_extensions"
                )));
            }
        }
        role.required_extensions = list;
    }
    if let Some(list) = input.allowed_metadata_extensions.take() {
        if let Some(bad) = list.iter().find(|oid| !is_oid(oid)) {
            return Err(Error::bad(format!(
                "invalid OID {bad:?} in allowed_metadata_extensions"
            )));
        }
        role.allowed_metadata_extensions = list;
    }
    if let Some(map) = input.metadata_extensions.take() {
        for (key, oid) in &map {
            if key.trim().is_empty() {
                return Err(Error::bad("metadata_extensions names cannot be empty"));
            }
            if BUILTIN_METADATA.contains(&key.as_str()) {
                return Err(Error::bad(format!(
                    "metadata_extensions name {key:?} is reserved for built-in metadata"
                )));
            }
            if !is_oid(oid) {
                return Err(Error::bad(format!(
                    "invalid OID {oid:?} in metadata_extensions"
                )));
            }
        }
        role.metadata_extensions = map;
    }
    view::put_json(view, &role_key(&name), &role).await?;
    Ok(Response::empty())
}

async fn read_role(ctx: Ctx) -> Result<Response> {
    let role: CertRole = view::get_json(ctx.view.as_ref(), &role_key(&name_of(&ctx)))
        .await?
        .ok_or(Error::NotFound)?;
    let mut data = Map::new();
    data.insert("certificate".into(), role.certificate.into());
    data.insert("display_name".into(), role.display_name.into());
    data.insert("allowed_names".into(), json!(role.allowed_names));
    data.insert(
        "allowed_common_names".into(),
        json!(role.allowed_common_names),
    );
    data.insert("allowed_dns_sans".into(), json!(role.allowed_dns_sans));
    data.insert("allowed_email_sans".into(), json!(role.allowed_email_sans));
    data.insert("allowed_uri_sans".into(), json!(role.allowed_uri_sans));
    data.insert(
        "allowed_organizational_units".into(),
        json!(role.allowed_organizational_units),
    );
    data.insert(
        "required_extensions".into(),
        json!(role.required_extensions),
    );
    data.insert(
        "allowed_metadata_extensions".into(),
        json!(role.allowed_metadata_extensions),
    );
    data.insert(
        "metadata_extensions".into(),
        json!(role.metadata_extensions),
    );
    role.token.read_fields(&mut data);
    Ok(Response {
        data: Some(data),
        ..Response::default()
    })
}

/// Decode a PEM bundle into DER certificates, each usable as a trust anchor. The reason for a
/// refusal never quotes the input.
fn parse_certificate_bundle(pem: &str) -> std::result::Result<Vec<Vec<u8>>, &'static str> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|_| "invalid PEM block")?;
        if block.label != "CERTIFICATE" {
            return Err("PEM block is not a CERTIFICATE");
        }
        match X509Certificate::from_der(&block.contents) {
            Ok(([], _)) => {}
            _ => return Err("invalid X.509 certificate"),
        }
        webpki::anchor_from_trusted_cert(&CertificateDer::from(block.contents.as_slice()))
            .map_err(|_| "certificate cannot be used as a trust anchor")?;
        out.push(block.contents);
    }
    if out.is_empty() {
        return Err("no PEM certificates found");
    }
    Ok(out)
}

/// Whether `s` is a dotted-decimal object identifier (`1.3.6.1.4.1.57264.1.1`).
fn is_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
}

/// Split a `required_extensions` entry into (raw-hex?, OID, value glob).
fn split_required_extension(entry: &str) -> Option<(bool, &str, &str)> {
    let (hex, rest) = match entry.strip_prefix("hex:") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    let (oid, glob) = rest.split_once(':')?;
    Some((hex, oid, glob))
}

// ---------------------------------------------------------------------------------------------
// CRLs

/// Store a CRL.
#[derive(Debug, Deserialize, JsonSchema)]
struct CrlWrite {
    /// The CRL, PEM-encoded (`-----BEGIN X509 CRL-----`).
    #[serde(default)]
    crl: Option<String>,
}

async fn write_crl(ctx: Ctx, input: CrlWrite) -> Result<Response> {
    let pem = input
        .crl
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| Error::bad("missing crl"))?;
    let der = parse_crl_pem(&pem)
        .map_err(|reason| Error::bad(format!("failed to parse CRL: {reason}")))?;
    let stored = StoredCrl {
        der_hex: hex::encode(&der),
    };
    view::put_json(ctx.view.as_ref(), &crl_key(&name_of(&ctx)), &stored).await?;
    Ok(Response::empty())
}

/// Decode one PEM CRL and check both parsers accept it (x509-parser to list serials, webpki
/// to check revocation at login).
fn parse_crl_pem(pem: &str) -> std::result::Result<Vec<u8>, &'static str> {
    let block = Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .ok_or("no PEM block found")?
        .map_err(|_| "invalid PEM block")?;
    if block.label != "X509 CRL" {
        return Err("PEM block is not an X509 CRL");
    }
    match CertificateRevocationList::from_der(&block.contents) {
        Ok(([], _)) => {}
        _ => return Err("invalid certificate revocation list"),
    }
    OwnedCertRevocationList::from_der(&block.contents)
        .map_err(|_| "unsupported certificate revocation list")?;
    Ok(block.contents)
}

async fn load_crl_der(view: &dyn View, key: &str) -> Result<Option<Vec<u8>>> {
    match view::get_json::<StoredCrl>(view, key).await? {
        None => Ok(None),
        Some(stored) => hex::decode(&stored.der_hex)
            .map(Some)
            .map_err(|_| Error::Internal(format!("corrupt CRL at {key:?}"))),
    }
}

async fn read_crl(ctx: Ctx) -> Result<Response> {
    let der = load_crl_der(ctx.view.as_ref(), &crl_key(&name_of(&ctx)))
        .await?
        .ok_or(Error::NotFound)?;
    let (_, crl) = CertificateRevocationList::from_der(&der)
        .map_err(|_| Error::Internal("stored CRL no longer parses".into()))?;
    // Vault's shape: serial (decimal) → an empty object.
    let serials: Map<String, Value> = crl
        .iter_revoked_certificates()
        .map(|r| (r.serial().to_string(), json!({})))
        .collect();
    Ok(Response::data(json!({ "serials": serials })))
}

// ---------------------------------------------------------------------------------------------
// Login

/// Log in with the connection's client certificate.
#[derive(Debug, Deserialize, JsonSchema)]
struct LoginInput {
    /// Only try the role with this name.
    #[serde(default)]
    name: Option<String>,
}

/// Why one role refused a certificate; logged, never returned.
type Refusal = String;

async fn login(ctx: Ctx, input: LoginInput) -> Result<Response> {
    let chain = &ctx.request.connection.peer_certificates;
    let Some(leaf_der) = chain.first() else {
        return Err(Error::bad(CERTIFICATE_REQUIRED));
    };
    let invalid = || Error::bad(INVALID_CERTIFICATE);
    let leaf = match X509Certificate::from_der(leaf_der) {
        Ok((_, cert)) => cert,
        Err(_) => {
            tracing::debug!("cert login refused: the client certificate does not parse");
            return Err(invalid());
        }
    };
    let view = ctx.view.as_ref();
    let names = match input.name.map(|n| n.trim().to_lowercase()) {
        Some(name) if !name.is_empty() => vec![name],
        _ => {
            let mut names = ctx.view.list("cert/").await?;
            names.retain(|n| !n.ends_with('/'));
            names
        }
    };
    let crls = load_crls(view).await?;
    let now = ctx.clock.now();

    for name in names {
        let Some(role) = view::get_json::<CertRole>(view, &role_key(&name)).await? else {
            tracing::debug!(role = %name, "cert login: no such role");
            continue;
        };
        let verdict =
            verify_chain(&role, chain, now, &crls).and_then(|()| check_constraints(&role, &leaf));
        match verdict {
            Ok(()) => {
                if !role.token.bound_cidrs.is_empty()
                    && !cidr::allows(&role.token.bound_cidrs, ctx.request.connection.remote_addr)
                {
                    tracing::debug!(role = %name, "cert login refused: caller outside token_bound_cidrs");
                    return Err(Error::PermissionDenied);
                }
                let mut login = issue_login(&name, &role, &leaf);
                // Renewal is bound to this exact certificate (Vault's default).
                login
                    .internal
                    .insert("fingerprint".into(), Value::String(fingerprint(leaf_der)));
                return Ok(Response {
                    login: Some(login),
                    ..Response::default()
                });
            }
            Err(reason) => {
                tracing::debug!(role = %name, %reason, "cert login: role refused the certificate");
            }
        }
    }
    Err(invalid())
}

/// Every stored CRL that webpki accepts; one that no longer parses is skipped with a warning
/// (it was checked on write), rather than locking every client out.
async fn load_crls(view: &dyn View) -> Result<Vec<(Vec<u8>, CertRevocationList<'static>)>> {
    let mut out = Vec::new();
    for name in view.list("crls/").await? {
        if name.ends_with('/') {
            continue;
        }
        let Some(der) = load_crl_der(view, &crl_key(&name)).await? else {
            continue;
        };
        match OwnedCertRevocationList::from_der(&der) {
            Ok(crl) => out.push((der, CertRevocationList::from(crl))),
            Err(e) => tracing::warn!(crl = %name, error = ?e, "stored CRL does not parse; ignored"),
        }
    }
    Ok(out)
}

fn unix_time(now: DateTime<Utc>) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(now.timestamp().max(0) as u64))
}

/// Check that `chain` (leaf first) leads to one of the role's certificates, is valid at `now`
/// and is not revoked by a stored CRL of any issuer on the path.
fn verify_chain(
    role: &CertRole,
    chain: &[Vec<u8>],
    now: DateTime<Utc>,
    crls: &[(Vec<u8>, CertRevocationList<'static>)],
) -> std::result::Result<(), Refusal> {
    let trusted = parse_certificate_bundle(&role.certificate)
        .map_err(|e| format!("role certificate unusable: {e}"))?;
    let leaf_der = &chain[0];

    // A role may pin the client certificate itself (Vault's "non-CA" trusted certificates).
    if trusted.iter().any(|t| t == leaf_der) {
        return verify_pinned_leaf(leaf_der, now, crls);
    }

    let trusted_ders: Vec<CertificateDer<'_>> = trusted
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    let anchors = trusted_ders
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("role certificate unusable: {e:?}"))?;
    let leaf_cert_der = CertificateDer::from(leaf_der.as_slice());
    let leaf = EndEntityCert::try_from(&leaf_cert_der)
        .map_err(|e| format!("client certificate rejected by webpki: {e:?}"))?;
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let crl_refs: Vec<&CertRevocationList<'_>> = crls.iter().map(|(_, c)| c).collect();
    let revocation = if crl_refs.is_empty() {
        None
    } else {
        Some(
            RevocationOptionsBuilder::new(&crl_refs)
                .map_err(|_| "no CRLs".to_string())?
                .with_depth(RevocationCheckDepth::Chain)
                // A CA without a stored CRL has no revocations to check, as in Vault.
                .with_status_policy(UnknownStatusPolicy::Allow)
                // Vault does not refuse logins because a stored CRL's nextUpdate has passed.
                .with_expiration_policy(ExpirationPolicy::Ignore)
                .build(),
        )
    };
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        unix_time(now),
        KeyUsage::client_auth(),
        revocation,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("chain verification failed: {e:?}"))
}

/// A certificate the role trusts byte for byte: only its validity period and revocation by a
/// stored CRL of its issuer remain to check.
fn verify_pinned_leaf(
    leaf_der: &[u8],
    now: DateTime<Utc>,
    crls: &[(Vec<u8>, CertRevocationList<'static>)],
) -> std::result::Result<(), Refusal> {
    let (_, leaf) =
        X509Certificate::from_der(leaf_der).map_err(|_| "pinned certificate does not parse")?;
    let at = ASN1Time::from_timestamp(now.timestamp()).map_err(|_| "clock out of range")?;
    if !leaf.validity().is_valid_at(at) {
        return Err("pinned certificate is outside its validity period".into());
    }
    for (der, _) in crls {
        let Ok((_, crl)) = CertificateRevocationList::from_der(der) else {
            continue;
        };
        if crl.issuer().as_raw() == leaf.issuer().as_raw()
            && crl
                .iter_revoked_certificates()
                .any(|r| r.raw_serial() == leaf.raw_serial())
        {
            return Err("pinned certificate is revoked".into());
        }
    }
    Ok(())
}

/// The leaf's names and extensions, as the constraints and metadata need them.
struct LeafAttributes {
    common_name: String,
    dns_sans: Vec<String>,
    email_sans: Vec<String>,
    uri_sans: Vec<String>,
    organizational_units: Vec<String>,
    subject_key_id: Vec<u8>,
    authority_key_id: Vec<u8>,
    /// OID (dotted) → (raw extension value, value decoded as an ASN.1 string if it is one).
    extensions: BTreeMap<String, (Vec<u8>, Option<String>)>,
}

impl LeafAttributes {
    fn of(cert: &X509Certificate<'_>) -> LeafAttributes {
        let text = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| {
            attr.as_str().map(str::to_string).unwrap_or_default()
        };
        let mut out = LeafAttributes {
            common_name: cert
                .subject()
                .iter_common_name()
                .next()
                .map(text)
                .unwrap_or_default(),
            dns_sans: Vec::new(),
            email_sans: Vec::new(),
            uri_sans: Vec::new(),
            organizational_units: cert
                .subject()
                .iter_organizational_unit()
                .map(text)
                .collect(),
            subject_key_id: Vec::new(),
            authority_key_id: Vec::new(),
            extensions: BTreeMap::new(),
        };
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(d) => out.dns_sans.push(d.to_string()),
                            GeneralName::RFC822Name(e) => out.email_sans.push(e.to_string()),
                            GeneralName::URI(u) => out.uri_sans.push(u.to_string()),
                            _ => {}
                        }
                    }
                }
                ParsedExtension::SubjectKeyIdentifier(id) => out.subject_key_id = id.0.to_vec(),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    if let Some(id) = &aki.key_identifier {
                        out.authority_key_id = id.0.to_vec();
                    }
                }
                _ => {}
            }
            out.extensions.insert(
                ext.oid.to_id_string(),
                (ext.value.to_vec(), der_string(ext.value)),
            );
        }
        out
    }
}

/// The value of a DER string (UTF8String, PrintableString, IA5String, T61String or
/// NumericString) that spans all of `der`, the way Vault reads extension values with Go's
/// `asn1.Unmarshal` into a string.
fn der_string(der: &[u8]) -> Option<String> {
    let (&tag, rest) = der.split_first()?;
    if !matches!(tag, 0x0c | 0x12 | 0x13 | 0x14 | 0x16) {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, body) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if body.len() != len {
        return None;
    }
    String::from_utf8(body.to_vec()).ok()
}

/// Go's `ryanuber/go-glob`, which Vault uses: `*` matches any run of characters, nothing else
/// is special.
fn glob(pattern: &str, subject: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == subject;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    let Some(mut rest) = subject.strip_prefix(first) else {
        return false;
    };
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Whether some `pattern` matches some `value`; an empty pattern list restricts nothing.
fn any_match(patterns: &[String], values: &[String], fold_case: bool) -> bool {
    if patterns.is_empty() {
        return true;
    }
    patterns.iter().any(|p| {
        values.iter().any(|v| {
            if fold_case {
                glob(&p.to_lowercase(), &v.to_lowercase())
            } else {
                glob(p, v)
            }
        })
    })
}

/// Vault's `matchesConstraints` on the leaf.
fn check_constraints(
    role: &CertRole,
    cert: &X509Certificate<'_>,
) -> std::result::Result<(), Refusal> {
    let leaf = LeafAttributes::of(cert);
    let cn = std::slice::from_ref(&leaf.common_name);
    let mut names = vec![leaf.common_name.clone()];
    names.extend(leaf.dns_sans.iter().cloned());
    names.extend(leaf.email_sans.iter().cloned());
    let checks: [(&str, bool); 6] = [
        (
            "allowed_names",
            any_match(&role.allowed_names, &names, false),
        ),
        (
            "allowed_common_names",
            any_match(&role.allowed_common_names, cn, false),
        ),
        (
            "allowed_dns_sans",
            any_match(&role.allowed_dns_sans, &leaf.dns_sans, true),
        ),
        (
            "allowed_email_sans",
            any_match(&role.allowed_email_sans, &leaf.email_sans, false),
        ),
        (
            "allowed_uri_sans",
            any_match(&role.allowed_uri_sans, &leaf.uri_sans, false),
        ),
        (
            "allowed_organizational_units",
            any_match(
                &role.allowed_organizational_units,
                &leaf.organizational_units,
                false,
            ),
        ),
    ];
    if let Some((field, _)) = checks.iter().find(|(_, ok)| !ok) {
        return Err(format!("leaf does not satisfy {field}"));
    }
    for required in &role.required_extensions {
        let Some((hex_form, oid, pattern)) = split_required_extension(required) else {
            return Err("malformed required_extensions entry".into());
        };
        let matched = match leaf.extensions.get(oid) {
            None => false,
            Some((raw, _)) if hex_form => glob(&pattern.to_lowercase(), &hex::encode(raw)),
            Some((_, Some(text))) => glob(pattern, text),
            Some((_, None)) => false,
        };
        if !matched {
            return Err(format!("leaf lacks required extension {oid}"));
        }
    }
    Ok(())
}

/// Colon-separated lower-case hex, as Vault's `certutil.GetHexFormatted`.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The login a matching role grants, with the certificate's attributes as metadata.
fn issue_login(name: &str, role: &CertRole, cert: &X509Certificate<'_>) -> Login {
    let leaf = LeafAttributes::of(cert);
    let serial = cert.serial.to_string();
    let mut metadata = Map::new();
    let mut put = |k: &str, v: String| {
        metadata.insert(k.to_string(), Value::String(v));
    };
    put("cert_name", name.to_string());
    put("common_name", leaf.common_name.clone());
    put("serial_number", serial.clone());
    put("subject_key_id", colon_hex(&leaf.subject_key_id));
    put("authority_key_id", colon_hex(&leaf.authority_key_id));
    put("dns_sans", leaf.dns_sans.join(","));
    put("uri_sans", leaf.uri_sans.join(","));
    put("ou", leaf.organizational_units.join(","));
    for oid in &role.allowed_metadata_extensions {
        if let Some((_, Some(text))) = leaf.extensions.get(oid) {
            put(&oid.replace('.', "-"), text.clone());
        }
    }
    for (key, oid) in &role.metadata_extensions {
        if let Some((_, Some(text))) = leaf.extensions.get(oid) {
            put(key, text.clone());
        }
    }

    // Entities are keyed by the common name; a certificate without one falls back to its
    // serial so the alias is never empty.
    let alias_name = if leaf.common_name.is_empty() {
        serial
    } else {
        leaf.common_name.clone()
    };
    let display_name = if !role.display_name.is_empty() {
        role.display_name.clone()
    } else if !leaf.common_name.is_empty() {
        leaf.common_name
    } else {
        name.to_string()
    };
    // Every attribute here was read from a certificate this method just verified.
    let verified_attributes = metadata
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect();
    Login {
        metadata: metadata.clone(),
        display_name,
        alias_name,
        alias_metadata: metadata,
        verified_attributes,
        ..role.token.login()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_go_glob() {
        assert!(glob("*", "anything"));
        assert!(glob("web-*.prod", "web-01.prod"));
        assert!(!glob("web-*.prod", "web-01.dev"));
        assert!(glob("*.example.com", "a.example.com"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXcYYb"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn der_strings_decode_and_other_values_do_not() {
        assert_eq!(der_string(b"\x0c\x04prod").as_deref(), Some("prod"));
        assert_eq!(der_string(b"\x13\x02ab").as_deref(), Some("ab"));
        assert_eq!(
            der_string(b"\x02\x01\x05"),
            None,
            "an INTEGER is not a string"
        );
        assert_eq!(
            der_string(b"\x0c\x05prod"),
            None,
            "length must span the value"
        );
    }

    #[test]
    fn oids_and_required_extensions_are_validated() {
        assert!(is_oid("1.3.6.1.4.1.57264.1.1"));
        assert!(!is_oid("1"));
        assert!(!is_oid("1..2"));
        assert!(!is_oid("a.b"));
        assert_eq!(
            split_required_extension("1.2.3:prod*"),
            Some((false, "1.2.3", "prod*"))
        );
        assert_eq!(
            split_required_extension("hex:1.2.3:0c04*"),
            Some((true, "1.2.3", "0c04*"))
        );
        assert_eq!(split_required_extension("1.2.3"), None);
    }
}
