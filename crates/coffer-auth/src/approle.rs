//! The `approle` auth method: machines log in with a role ID and a secret ID, following Vault's
//! AppRole API.
//!
//! | operation     | path                                          | effect                     |
//! |---------------|-----------------------------------------------|----------------------------|
//! | create/update/read/delete | `role/<role_name>`                | the role                   |
//! | list          | `role/`                                       | role names                 |
//! | read/update   | `role/<role_name>/role-id`                    | read or set the role ID    |
//! | update        | `role/<role_name>/secret-id`                  | generate a secret ID       |
//! | list          | `role/<role_name>/secret-id`                  | secret ID accessors        |
//! | update        | `role/<role_name>/custom-secret-id`           | register a given secret ID |
//! | update        | `role/<role_name>/secret-id/lookup`           | `{secret_id}` → its properties |
//! | update        | `role/<role_name>/secret-id/destroy`          | `{secret_id}` → gone       |
//! | update        | `role/<role_name>/secret-id-accessor/lookup`  | by accessor                |
//! | update        | `role/<role_name>/secret-id-accessor/destroy` | by accessor                |
//! | update        | `tidy/secret-id`                              | remove expired secret IDs  |
//! | update        | `login`                                       | `{role_id, secret_id}` → a [`Login`] |
//!
//! Storage (all keys relative to the mount's view, which encrypts below us):
//! - `salt`: the mount's random HMAC-SHA256 key, made on first use.
//! - `role/<name>`: the role, including its role ID.
//! - `role_id/<hmac(role_id)>`: which role a role ID belongs to.
//! - `secret_id/<hmac(role name)>/<hmac(secret_id)>`: one secret ID's properties. The secret ID
//!   itself is never stored; a login finds its entry by recomputing the HMAC.
//! - `accessor/<hmac(accessor)>`: which secret ID entry an accessor names.
//!
//! A secret ID with `num_uses` is consumed under a per-secret-ID lock, so `num_uses = 1` lets
//! exactly one of any number of concurrent logins through. Credential failures all answer 400
//! `invalid role or secret ID` (Vault's text), never saying which half was wrong.

use crate::cidr;
use crate::token::{with_token_fields, TokenSettings};
use chrono::{DateTime, Utc};
use coffer_sdk::cache::Remembered;
use coffer_sdk::clock::format_time;
use coffer_sdk::framework::de;
use coffer_sdk::locks::KeyLocks;
use coffer_sdk::logical::Login;
use coffer_sdk::view::{self, ViewOp};
use coffer_sdk::{Backend, Ctx, Engine, Error, Operation, Response, Result, View};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// Vault's answer to a login with an unknown role ID or an unknown, expired or used-up secret ID
/// (`builtin/credential/approle/path_login.go`).
pub const INVALID_CREDENTIALS: &str = "invalid role or secret ID";

/// Vault's tidy answer (`path_tidy_user_id.go`); Coffer tidies before answering.
pub const TIDY_STARTED: &str = "Tidy operation successfully started. Any information from the \
operation will be printed to Vault's server logs.";

const HELP: &str = "The AppRole auth method lets machines and services log in with a role ID \
and a secret ID issued for a role.";

/// Vault's name pattern for roles (`framework.GenericNameRegex`).
const ROLE_NAME: &str = r"(?P<role_name>\w(?:[\w.-]*\w)?)";

/// Go's zero time, which Vault prints for "never expires".
const NEVER: &str = "0001-01-01T00:00:00Z";

/// Shared state of one approle mount: locks only; everything else lives in the view.
struct AppRole {
    /// Serialises role writes, role-ID changes and role deletion (rare admin operations), so
    /// the role-ID index never points at two roles.
    roles: Mutex<()>,
    /// Serialises making the mount's HMAC key.
    salt: Mutex<()>,
    /// The mount's HMAC key once read or made, so a login does not decrypt it again. Forgotten
    /// on every init (mount, unseal) and cleanup (seal, unmount), so it never outlives the
    /// storage it was read from.
    key: Remembered<(), Arc<MountKey>>,
    /// Roles as logins find them, by role ID. Forgotten by every role write (they all hold
    /// `roles`, see [`AppRole::lock_roles`]) and on init and cleanup.
    login_roles: Remembered<String, Arc<LoginRole>>,
    /// One lock per secret ID (by HMAC): consuming a use is read-modify-write.
    secret_ids: KeyLocks,
}

/// The approle engine.
pub fn backend() -> Backend {
    let e = Engine::new(
        "approle",
        HELP,
        Arc::new(AppRole {
            roles: Mutex::new(()),
            salt: Mutex::new(()),
            key: Remembered::new(1),
            login_roles: Remembered::new(LOGIN_ROLE_CACHE_LIMIT),
            secret_ids: KeyLocks::new(),
        }),
    );

    let list = e
        .path("role/?")
        .help("List roles.", "LIST returns the names of all roles.")
        .op(Operation::List, "List roles.", |_, ctx| list_roles(ctx));

    let role_id = e
        .path(format!("role/{ROLE_NAME}/role-id"))
        .help(
            "Read or set a role's role ID.",
            "The role ID is the non-secret half of an AppRole login.",
        )
        .op(Operation::Read, "Read the role ID.", |_, ctx| {
            read_role_id(ctx)
        })
        .typed(Operation::Update, "Set a custom role ID.", write_role_id);

    let secret_id_lookup = e
        .path(format!("role/{ROLE_NAME}/secret-id/lookup/?"))
        .help(
            "Look up a secret ID.",
            "Returns the properties of a secret ID.",
        )
        .typed(Operation::Update, "Look up a secret ID.", lookup_secret_id);
    let secret_id_destroy = e
        .path(format!("role/{ROLE_NAME}/secret-id/destroy/?"))
        .help("Destroy a secret ID.", "Removes a secret ID for good.")
        .typed(Operation::Update, "Destroy a secret ID.", destroy_secret_id)
        .typed(Operation::Delete, "Destroy a secret ID.", destroy_secret_id);
    let accessor_lookup = e
        .path(format!("role/{ROLE_NAME}/secret-id-accessor/lookup/?"))
        .help(
            "Look up a secret ID by its accessor.",
            "Returns the properties of the secret ID an accessor names.",
        )
        .typed(
            Operation::Update,
            "Look up a secret ID by accessor.",
            lookup_accessor,
        );
    let accessor_destroy = e
        .path(format!("role/{ROLE_NAME}/secret-id-accessor/destroy/?"))
        .help(
            "Destroy a secret ID by its accessor.",
            "Removes the secret ID an accessor names.",
        )
        .typed(
            Operation::Update,
            "Destroy a secret ID by accessor.",
            destroy_accessor,
        )
        .typed(
            Operation::Delete,
            "Destroy a secret ID by accessor.",
            destroy_accessor,
        );
    let secret_id = e
        .path(format!("role/{ROLE_NAME}/secret-id/?"))
        .help(
            "Generate or list secret IDs.",
            "POST generates a new secret ID; LIST returns the accessors of the role's \
             secret IDs.",
        )
        .typed(
            Operation::Update,
            "Generate a secret ID.",
            |state, ctx, input: SecretIdWrite| issue_secret_id(state, ctx, input, None),
        )
        .op(
            Operation::List,
            "List secret ID accessors.",
            list_secret_ids,
        );
    let custom_secret_id = e
        .path(format!("role/{ROLE_NAME}/custom-secret-id"))
        .help(
            "Register a caller-chosen secret ID.",
            "Like secret-id, with the secret ID supplied by the caller.",
        )
        .typed(
            Operation::Update,
            "Register a custom secret ID.",
            |state, ctx, mut input: CustomSecretIdWrite| {
                let given = input.secret_id.take().map(Zeroizing::new);
                async move {
                    let given = match given {
                        Some(id) if !id.trim().is_empty() => id,
                        _ => return Err(Error::bad("missing secret_id")),
                    };
                    issue_secret_id(state, ctx, input.rest, Some(given)).await
                }
            },
        );
    let role = e
        .path(format!("role/{ROLE_NAME}"))
        .help(
            "Manage AppRoles.",
            "A role binds login constraints (secret IDs, CIDRs) to token settings.",
        )
        .existence(|_, ctx: Ctx| async move {
            Ok(ctx.view.get(&role_key(&role_name(&ctx))).await?.is_some())
        })
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Create or update a role.",
            write_role,
        )
        .op(Operation::Read, "Read a role.", |_, ctx| read_role(ctx))
        .op(
            Operation::Delete,
            "Delete a role and its secret IDs.",
            delete_role,
        );
    let tidy = e
        .path("tidy/secret-id")
        .help(
            "Remove expired secret IDs.",
            "Deletes expired secret IDs and accessors that point at nothing.",
        )
        .op(Operation::Update, "Tidy secret IDs.", tidy_secret_ids);
    let login = e
        .path("login")
        .unauthenticated()
        .help(
            "Log in with a role ID and secret ID.",
            "The role ID is always required; the secret ID when the role binds one.",
        )
        .typed(Operation::Update, "Log in.", login);

    e.paths(vec![
        list,
        role_id,
        secret_id_lookup,
        secret_id_destroy,
        accessor_lookup,
        accessor_destroy,
        secret_id,
        custom_secret_id,
        role,
        tidy,
        login,
    ])
    .on_init(|state, _ctx| async move {
        state.forget_key();
        Ok(())
    })
    .on_cleanup(|state, _ctx| async move {
        state.forget_key();
        Ok(())
    })
    .configure(|backend| {
        backend.with_login_renewal(
            |ctx: Ctx, renewal: coffer_sdk::logical::LoginRenewal| async move {
                let name = renewal
                    .metadata
                    .get("role_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if load_role(ctx.view.as_ref(), &name).await?.is_none() {
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

// ---------------------------------------------------------------------------------------------
// Storage

fn role_key(name: &str) -> String {
    format!("role/{name}")
}

/// Role names are case-insensitive, as for roles created by current Vault versions.
fn role_name(ctx: &Ctx) -> String {
    ctx.param("role_name").to_lowercase()
}

fn role_missing(name: &str) -> Error {
    Error::bad(format!("role \"{name}\" does not exist"))
}

/// A role as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RoleEntry {
    role_id: String,
    bind_secret_id: bool,
    secret_id_bound_cidrs: Vec<String>,
    secret_id_num_uses: i64,
    secret_id_ttl_secs: u64,
    local_secret_ids: bool,
    token: TokenSettings,
}

/// Which role a role ID belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct RoleIdIndex {
    role_name: String,
}

/// One secret ID's properties. The secret ID itself is not here: its HMAC is the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SecretIdEntry {
    accessor: String,
    /// Remaining uses; 0 = unlimited.
    num_uses: i64,
    ttl_secs: u64,
    creation_time: DateTime<Utc>,
    expiration_time: Option<DateTime<Utc>>,
    last_updated_time: DateTime<Utc>,
    metadata: Map<String, Value>,
    cidr_list: Vec<String>,
    token_bound_cidrs: Vec<String>,
}

impl SecretIdEntry {
    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration_time.is_some_and(|t| now >= t)
    }

    /// Vault's lookup answer.
    fn describe(&self) -> Response {
        Response::data(json!({
            "secret_id_accessor": self.accessor,
            "secret_id_num_uses": self.num_uses,
            "secret_id_ttl": self.ttl_secs,
            "creation_time": format_time(self.creation_time),
            "expiration_time": self.expiration_time.map(format_time).unwrap_or_else(|| NEVER.into()),
            "last_updated_time": format_time(self.last_updated_time),
            "metadata": self.metadata,
            "cidr_list": self.cidr_list,
            "token_bound_cidrs": self.token_bound_cidrs,
        }))
    }
}

/// Which secret ID entry an accessor names.
#[derive(Debug, Serialize, Deserialize)]
struct AccessorIndex {
    role_name: String,
    secret_id_hmac: String,
}

/// The mount's HMAC key. Every stored name of a secret value is `hmac(domain:value)`, so the
/// same value in two roles of one mount, or two mounts, never shares a key.
struct MountKey(hmac::Key);

impl MountKey {
    fn tag(&self, domain: &str, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(domain.as_bytes());
        ctx.update(b":");
        ctx.update(value.as_bytes());
        coffer_sdk::lower_hex(ctx.sign().as_ref())
    }

    fn role_id_key(&self, role_id: &str) -> String {
        format!("role_id/{}", self.tag("role_id", role_id))
    }

    fn secret_id_folder(&self, role_name: &str) -> String {
        format!("secret_id/{}/", self.tag("role", role_name))
    }

    fn secret_id_hmac(&self, secret_id: &str) -> String {
        self.tag("secret_id", secret_id)
    }

    fn accessor_key(&self, accessor: &str) -> String {
        format!("accessor/{}", self.tag("accessor", accessor))
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSalt {
    hmac_key: String,
}

const SALT_KEY: &str = "salt";

impl AppRole {
    fn forget_key(&self) {
        self.key.forget();
        self.login_roles.forget();
    }

    /// Hold while changing a role or its role ID; on release the login cache is emptied, after
    /// the change is stored.
    async fn lock_roles(&self) -> RolesGuard<'_> {
        RolesGuard {
            _held: self.roles.lock().await,
            state: self,
        }
    }

    /// The role a login's role ID names, remembered or read from storage.
    async fn login_role(
        &self,
        view: &dyn View,
        key: &MountKey,
        role_id: &str,
    ) -> Result<Option<Arc<LoginRole>>> {
        self.login_roles
            .get_or_load(role_id, || async {
                let Some(index) =
                    view::get_json::<RoleIdIndex>(view, &key.role_id_key(role_id)).await?
                else {
                    return Ok(None);
                };
                Ok(load_role(view, &index.role_name).await?.map(|role| {
                    Arc::new(LoginRole {
                        secret_id_folder: key.secret_id_folder(&index.role_name),
                        name: index.role_name,
                        role,
                    })
                }))
            })
            .await
    }
}

/// What a login needs of its role, cached by role ID.
struct LoginRole {
    name: String,
    role: RoleEntry,
    /// Where the role's secret IDs are stored (an HMAC of the name).
    secret_id_folder: String,
}

/// Cached login roles beyond this are dropped wholesale.
const LOGIN_ROLE_CACHE_LIMIT: usize = 10_000;

/// [`AppRole::lock_roles`]'s guard.
struct RolesGuard<'a> {
    _held: tokio::sync::MutexGuard<'a, ()>,
    state: &'a AppRole,
}

impl Drop for RolesGuard<'_> {
    fn drop(&mut self) {
        self.state.login_roles.forget();
    }
}

/// Load the mount's HMAC key, making it on first use.
async fn mount_key(state: &AppRole, view: &dyn View) -> Result<Arc<MountKey>> {
    let stored = || async { Ok(existing_mount_key(view).await?.map(Arc::new)) };
    if let Some(key) = state.key.get_or_load(&(), stored).await? {
        return Ok(key);
    }
    let _making = state.salt.lock().await;
    let key = state
        .key
        .get_or_load(&(), || async {
            if let Some(key) = existing_mount_key(view).await? {
                return Ok(Some(Arc::new(key)));
            }
            let bytes = Zeroizing::new(random_bytes::<32>()?);
            let stored = StoredSalt {
                hmac_key: hex::encode(bytes.as_ref()),
            };
            view::put_json(view, SALT_KEY, &stored).await?;
            Ok::<_, Error>(Some(Arc::new(MountKey(hmac::Key::new(
                hmac::HMAC_SHA256,
                bytes.as_ref(),
            )))))
        })
        .await?;
    key.ok_or_else(|| Error::Internal("approle key was not made".into()))
}

/// The mount's HMAC key if it has one yet.
async fn existing_mount_key(view: &dyn View) -> Result<Option<MountKey>> {
    match view::get_json::<StoredSalt>(view, SALT_KEY).await? {
        None => Ok(None),
        Some(stored) => {
            let bytes = Zeroizing::new(
                hex::decode(&stored.hmac_key)
                    .map_err(|_| Error::Internal("corrupt approle salt".into()))?,
            );
            Ok(Some(MountKey(hmac::Key::new(hmac::HMAC_SHA256, &bytes))))
        }
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| Error::Internal("random number generator failed".into()))?;
    Ok(out)
}

/// A fresh random UUID (Vault's format for role IDs, secret IDs and accessors).
fn random_uuid() -> Result<String> {
    Ok(uuid::Builder::from_random_bytes(random_bytes::<16>()?)
        .into_uuid()
        .to_string())
}

async fn load_role(view: &dyn View, name: &str) -> Result<Option<RoleEntry>> {
    view::get_json(view, &role_key(name)).await
}

// ---------------------------------------------------------------------------------------------
// Roles

with_token_fields! {
    /// Create or update a role.
    #[derive(Debug, Deserialize, JsonSchema)]
    struct RoleWrite {
        /// Require a secret ID at login (default true).
        #[serde(default, deserialize_with = "de::opt_bool")]
        bind_secret_id: Option<bool>,
        /// CIDR blocks logins with this role must come from.
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        secret_id_bound_cidrs: Option<Vec<String>>,
        /// Deprecated alias of `secret_id_bound_cidrs`.
        #[serde(default, deserialize_with = "crate::token::opt_string_list")]
        bound_cidr_list: Option<Vec<String>>,
        /// Uses of each secret ID (0 = unlimited).
        #[serde(default, deserialize_with = "de::opt_i64")]
        secret_id_num_uses: Option<i64>,
        /// Lifetime of each secret ID (0 = forever).
        #[serde(default, deserialize_with = "de::opt_duration")]
        secret_id_ttl: Option<Duration>,
        /// Keep secret IDs local to this cluster (settable only at creation).
        #[serde(default, deserialize_with = "de::opt_bool")]
        local_secret_ids: Option<bool>,
        /// A custom role ID (default: a random UUID).
        #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
        role_id: Option<String>,
    }
}

async fn write_role(state: Arc<AppRole>, ctx: Ctx, mut input: RoleWrite) -> Result<Response> {
    let name = role_name(&ctx);
    let view = ctx.view.as_ref();
    let _roles = state.lock_roles().await;
    let existing = load_role(view, &name).await?;

    let mut role = existing.clone().unwrap_or(RoleEntry {
        role_id: String::new(),
        bind_secret_id: true,
        secret_id_bound_cidrs: Vec::new(),
        secret_id_num_uses: 0,
        secret_id_ttl_secs: 0,
        local_secret_ids: false,
        token: TokenSettings::default(),
    });
    input.token_fields().apply(&mut role.token)?;
    if let Some(b) = input.bind_secret_id {
        role.bind_secret_id = b;
    }
    if let Some(list) = input.secret_id_bound_cidrs.or(input.bound_cidr_list) {
        role.secret_id_bound_cidrs = cidr::parse_list("secret_id_bound_cidrs", &list)?;
    }
    if let Some(n) = input.secret_id_num_uses {
        if n < 0 {
            return Err(Error::bad("secret_id_num_uses cannot be negative"));
        }
        role.secret_id_num_uses = n;
    }
    if let Some(ttl) = input.secret_id_ttl {
        role.secret_id_ttl_secs = ttl.as_secs();
    }
    if let Some(local) = input.local_secret_ids {
        match &existing {
            None => role.local_secret_ids = local,
            Some(old) if old.local_secret_ids != local => {
                return Err(Error::bad(
                    "local_secret_ids can only be modified during role creation",
                ))
            }
            Some(_) => {}
        }
    }
    // Vault: a role must constrain logins somehow.
    if !role.bind_secret_id
        && role.secret_id_bound_cidrs.is_empty()
        && role.token.bound_cidrs.is_empty()
    {
        return Err(Error::bad(
            "at least one constraint should be enabled on the role",
        ));
    }

    let key = mount_key(&state, view).await?;
    let mut ops = Vec::new();
    let requested_role_id = input.role_id.take().map(|r| r.trim().to_string());
    match requested_role_id {
        Some(id) if id.is_empty() => return Err(Error::bad("missing role_id")),
        Some(id) if id != role.role_id => {
            claim_role_id(view, &key, &name, &id, &role.role_id, &mut ops).await?;
            role.role_id = id;
        }
        Some(_) => {}
        None if role.role_id.is_empty() => {
            let id = random_uuid()?;
            claim_role_id(view, &key, &name, &id, "", &mut ops).await?;
            role.role_id = id;
        }
        None => {}
    }
    ops.push(ViewOp::Put {
        key: role_key(&name),
        value: view::to_json(&role)?,
    });
    view.batch(ops).await?;
    Ok(Response::empty())
}

/// Queue the index writes that move role `name` from `old` to role ID `new`, refusing a role
/// ID another role holds.
async fn claim_role_id(
    view: &dyn View,
    key: &MountKey,
    name: &str,
    new: &str,
    old: &str,
    ops: &mut Vec<ViewOp>,
) -> Result<()> {
    let new_key = key.role_id_key(new);
    if let Some(holder) = view::get_json::<RoleIdIndex>(view, &new_key).await? {
        if holder.role_name != name {
            return Err(Error::bad("role_id already in use"));
        }
    }
    if !old.is_empty() {
        ops.push(ViewOp::Delete {
            key: key.role_id_key(old),
        });
    }
    ops.push(ViewOp::Put {
        key: new_key,
        value: view::to_json(&RoleIdIndex {
            role_name: name.to_string(),
        })?,
    });
    Ok(())
}

async fn read_role(ctx: Ctx) -> Result<Response> {
    let role = load_role(ctx.view.as_ref(), &role_name(&ctx))
        .await?
        .ok_or(Error::NotFound)?;
    let mut data = Map::new();
    data.insert("bind_secret_id".into(), role.bind_secret_id.into());
    data.insert(
        "secret_id_bound_cidrs".into(),
        json!(role.secret_id_bound_cidrs),
    );
    data.insert("secret_id_num_uses".into(), role.secret_id_num_uses.into());
    data.insert("secret_id_ttl".into(), role.secret_id_ttl_secs.into());
    data.insert("local_secret_ids".into(), role.local_secret_ids.into());
    role.token.read_fields(&mut data);
    Ok(Response {
        data: Some(data),
        ..Response::default()
    })
}

async fn list_roles(ctx: Ctx) -> Result<Response> {
    Response::list(ctx.view.list("role/").await?)
}

async fn delete_role(state: Arc<AppRole>, ctx: Ctx) -> Result<Response> {
    let name = role_name(&ctx);
    let view = ctx.view.as_ref();
    let _roles = state.lock_roles().await;
    let Some(role) = load_role(view, &name).await? else {
        return Ok(Response::empty());
    };
    let key = mount_key(&state, view).await?;
    let folder = key.secret_id_folder(&name);
    let mut ops = vec![
        ViewOp::Delete {
            key: role_key(&name),
        },
        ViewOp::Delete {
            key: key.role_id_key(&role.role_id),
        },
    ];
    for hmac in view.list(&folder).await? {
        let entry_key = format!("{folder}{hmac}");
        let _secret = state.secret_ids.lock(&hmac).await;
        if let Some(entry) = view::get_json::<SecretIdEntry>(view, &entry_key).await? {
            ops.push(ViewOp::Delete {
                key: key.accessor_key(&entry.accessor),
            });
        }
        ops.push(ViewOp::Delete { key: entry_key });
    }
    view.batch(ops).await?;
    Ok(Response::empty())
}

async fn read_role_id(ctx: Ctx) -> Result<Response> {
    let role = load_role(ctx.view.as_ref(), &role_name(&ctx))
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Response::data(json!({ "role_id": role.role_id })))
}

/// Set a role's role ID.
#[derive(Debug, Deserialize, JsonSchema)]
struct RoleIdWrite {
    /// The new role ID.
    #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
    role_id: Option<String>,
}

async fn write_role_id(state: Arc<AppRole>, ctx: Ctx, input: RoleIdWrite) -> Result<Response> {
    let name = role_name(&ctx);
    let view = ctx.view.as_ref();
    let new = input.role_id.unwrap_or_default().trim().to_string();
    if new.is_empty() {
        return Err(Error::bad("missing role_id"));
    }
    let _roles = state.lock_roles().await;
    let mut role = load_role(view, &name)
        .await?
        .ok_or_else(|| role_missing(&name))?;
    if role.role_id == new {
        return Ok(Response::empty());
    }
    let key = mount_key(&state, view).await?;
    let mut ops = Vec::new();
    claim_role_id(view, &key, &name, &new, &role.role_id, &mut ops).await?;
    role.role_id = new;
    ops.push(ViewOp::Put {
        key: role_key(&name),
        value: view::to_json(&role)?,
    });
    view.batch(ops).await?;
    Ok(Response::empty())
}

// ---------------------------------------------------------------------------------------------
// Secret IDs

/// Generate a secret ID.
#[derive(Debug, Deserialize, JsonSchema)]
struct SecretIdWrite {
    /// Key/value metadata (string values), as an object or a JSON string; added to the token's
    /// metadata at login.
    #[serde(default)]
    metadata: Option<Value>,
    /// CIDR blocks logins with this secret ID must come from.
    #[serde(default, deserialize_with = "crate::token::opt_string_list")]
    cidr_list: Option<Vec<String>>,
    /// CIDR blocks tokens from this secret ID may be used from (overrides the role's).
    #[serde(default, deserialize_with = "crate::token::opt_string_list")]
    token_bound_cidrs: Option<Vec<String>>,
    /// Uses of this secret ID (default: the role's; at most the role's).
    #[serde(default, deserialize_with = "de::opt_i64")]
    num_uses: Option<i64>,
    /// Lifetime of this secret ID (default: the role's; at most the role's).
    #[serde(default, deserialize_with = "de::opt_duration")]
    ttl: Option<Duration>,
}

/// Register a caller-chosen secret ID.
#[derive(Debug, Deserialize, JsonSchema)]
struct CustomSecretIdWrite {
    /// The secret ID to register.
    #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
    secret_id: Option<String>,
    #[serde(flatten)]
    rest: SecretIdWrite,
}

/// Vault accepts `metadata` as a JSON string holding an object of strings, or that object.
fn parse_metadata(raw: Option<Value>) -> Result<Map<String, Value>> {
    let invalid = || Error::bad("failed to parse metadata: must be a JSON object of strings");
    let map = match raw {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Map::new()),
        Some(Value::String(s)) => {
            serde_json::from_str::<Map<String, Value>>(&s).map_err(|_| invalid())?
        }
        Some(Value::Object(map)) => map,
        Some(_) => return Err(invalid()),
    };
    if map.values().all(Value::is_string) {
        Ok(map)
    } else {
        Err(invalid())
    }
}

async fn issue_secret_id(
    state: Arc<AppRole>,
    ctx: Ctx,
    input: SecretIdWrite,
    custom: Option<Zeroizing<String>>,
) -> Result<Response> {
    let name = role_name(&ctx);
    let view = ctx.view.as_ref();
    let role = load_role(view, &name)
        .await?
        .ok_or_else(|| role_missing(&name))?;
    if !role.bind_secret_id {
        return Err(Error::bad("bind_secret_id is not set on the role"));
    }
    let metadata = parse_metadata(input.metadata)?;
    let cidr_list = cidr::parse_list("cidr_list", &input.cidr_list.unwrap_or_default())?;
    if !cidr::is_subset(&cidr_list, &role.secret_id_bound_cidrs) {
        return Err(Error::bad(
            "failed to verify the CIDR restrictions set on the secret ID: \
             \"cidr_list\" must be a subset of the role's \"secret_id_bound_cidrs\"",
        ));
    }
    let token_bound_cidrs = cidr::parse_list(
        "token_bound_cidrs",
        &input.token_bound_cidrs.unwrap_or_default(),
    )?;
    if !cidr::is_subset(&token_bound_cidrs, &role.token.bound_cidrs) {
        return Err(Error::bad(
            "failed to verify the token bound CIDR restrictions set on the secret ID: \
             \"token_bound_cidrs\" must be a subset of the role's \"token_bound_cidrs\"",
        ));
    }
    let num_uses = match input.num_uses {
        None => role.secret_id_num_uses,
        Some(n) if n < 0 => return Err(Error::bad("num_uses cannot be negative")),
        Some(n) => n,
    };
    if role.secret_id_num_uses > 0 && (num_uses == 0 || num_uses > role.secret_id_num_uses) {
        return Err(Error::bad(
            "num_uses cannot be higher than the role's secret_id_num_uses",
        ));
    }
    let ttl_secs = input
        .ttl
        .map(|t| t.as_secs())
        .unwrap_or(role.secret_id_ttl_secs);
    if role.secret_id_ttl_secs > 0 && (ttl_secs == 0 || ttl_secs > role.secret_id_ttl_secs) {
        return Err(Error::bad(
            "ttl cannot be longer than the role's secret_id_ttl",
        ));
    }

    let secret_id = match custom {
        Some(id) => id,
        None => Zeroizing::new(random_uuid()?),
    };
    let accessor = random_uuid()?;
    let key = mount_key(&state, view).await?;
    let secret_hmac = key.secret_id_hmac(&secret_id);
    let entry_key = format!("{}{secret_hmac}", key.secret_id_folder(&name));
    let now = ctx.clock.now();
    let expiration_time = (ttl_secs > 0).then(|| {
        now + chrono::Duration::from_std(Duration::from_secs(ttl_secs))
            .unwrap_or(chrono::Duration::MAX)
    });
    let entry = SecretIdEntry {
        accessor: accessor.clone(),
        num_uses,
        ttl_secs,
        creation_time: now,
        expiration_time,
        last_updated_time: now,
        metadata,
        cidr_list,
        token_bound_cidrs,
    };

    let _secret = state.secret_ids.lock(&secret_hmac).await;
    if view.get(&entry_key).await?.is_some() {
        return Err(Error::bad("SecretID is already registered"));
    }
    view.batch(vec![
        ViewOp::Put {
            key: entry_key,
            value: view::to_json(&entry)?,
        },
        ViewOp::Put {
            key: key.accessor_key(&accessor),
            value: view::to_json(&AccessorIndex {
                role_name: name,
                secret_id_hmac: secret_hmac,
            })?,
        },
    ])
    .await?;
    Ok(Response::data(json!({
        "secret_id": secret_id.as_str(),
        "secret_id_accessor": accessor,
        "secret_id_ttl": ttl_secs,
        "secret_id_num_uses": num_uses,
    })))
}

async fn list_secret_ids(state: Arc<AppRole>, ctx: Ctx) -> Result<Response> {
    let name = role_name(&ctx);
    let view = ctx.view.as_ref();
    if load_role(view, &name).await?.is_none() {
        return Err(role_missing(&name));
    }
    let folder = mount_key(&state, view).await?.secret_id_folder(&name);
    let mut accessors = Vec::new();
    for hmac in view.list(&folder).await? {
        if let Some(entry) =
            view::get_json::<SecretIdEntry>(view, &format!("{folder}{hmac}")).await?
        {
            accessors.push(entry.accessor);
        }
    }
    accessors.sort();
    Response::list(accessors)
}

/// Name a secret ID.
#[derive(Debug, Deserialize, JsonSchema)]
struct SecretIdRef {
    /// The secret ID.
    #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
    secret_id: Option<String>,
}

/// Name a secret ID by its accessor.
#[derive(Debug, Deserialize, JsonSchema)]
struct AccessorRef {
    /// The secret ID's accessor.
    #[serde(default)]
    secret_id_accessor: Option<String>,
}

/// Where a role's secret ID lives: its HMAC (the lock key) and its storage key.
struct SecretIdLocation {
    hmac: String,
    key: String,
}

/// Resolve a secret ID named by value.
async fn locate_by_secret_id(
    state: &AppRole,
    ctx: &Ctx,
    secret_id: Option<String>,
) -> Result<(Arc<MountKey>, SecretIdLocation)> {
    let secret_id = Zeroizing::new(secret_id.unwrap_or_default());
    if secret_id.trim().is_empty() {
        return Err(Error::bad("missing secret_id"));
    }
    let name = role_name(ctx);
    let view = ctx.view.as_ref();
    if load_role(view, &name).await?.is_none() {
        return Err(role_missing(&name));
    }
    let key = mount_key(state, view).await?;
    let hmac = key.secret_id_hmac(secret_id.trim());
    let location = SecretIdLocation {
        key: format!("{}{hmac}", key.secret_id_folder(&name)),
        hmac,
    };
    Ok((key, location))
}

/// Resolve a secret ID named by accessor; an accessor of another role is not found.
async fn locate_by_accessor(
    state: &AppRole,
    ctx: &Ctx,
    accessor: Option<String>,
) -> Result<(Arc<MountKey>, SecretIdLocation)> {
    let accessor = accessor.unwrap_or_default();
    let accessor = accessor.trim();
    if accessor.is_empty() {
        return Err(Error::bad("missing secret_id_accessor"));
    }
    let name = role_name(ctx);
    let view = ctx.view.as_ref();
    if load_role(view, &name).await?.is_none() {
        return Err(role_missing(&name));
    }
    let key = mount_key(state, view).await?;
    let index = view::get_json::<AccessorIndex>(view, &key.accessor_key(accessor))
        .await?
        .filter(|index| index.role_name == name)
        .ok_or_else(|| {
            Error::bad(format!(
                "failed to find accessor entry for secret_id_accessor: \"{accessor}\""
            ))
        })?;
    let location = SecretIdLocation {
        key: format!("{}{}", key.secret_id_folder(&name), index.secret_id_hmac),
        hmac: index.secret_id_hmac,
    };
    Ok((key, location))
}

async fn lookup_secret_id(state: Arc<AppRole>, ctx: Ctx, input: SecretIdRef) -> Result<Response> {
    let (_, at) = locate_by_secret_id(&state, &ctx, input.secret_id).await?;
    describe(&ctx, &at).await
}

async fn lookup_accessor(state: Arc<AppRole>, ctx: Ctx, input: AccessorRef) -> Result<Response> {
    let (_, at) = locate_by_accessor(&state, &ctx, input.secret_id_accessor).await?;
    describe(&ctx, &at).await
}

/// The properties of a live secret ID; like Vault, an unknown one answers with no data.
async fn describe(ctx: &Ctx, at: &SecretIdLocation) -> Result<Response> {
    match view::get_json::<SecretIdEntry>(ctx.view.as_ref(), &at.key).await? {
        Some(entry) if !entry.expired(ctx.clock.now()) => Ok(entry.describe()),
        _ => Ok(Response::empty()),
    }
}

async fn destroy_secret_id(state: Arc<AppRole>, ctx: Ctx, input: SecretIdRef) -> Result<Response> {
    let (key, at) = locate_by_secret_id(&state, &ctx, input.secret_id).await?;
    destroy(&state, &ctx, &key, &at).await
}

async fn destroy_accessor(state: Arc<AppRole>, ctx: Ctx, input: AccessorRef) -> Result<Response> {
    let (key, at) = locate_by_accessor(&state, &ctx, input.secret_id_accessor).await?;
    destroy(&state, &ctx, &key, &at).await
}

async fn destroy(
    state: &AppRole,
    ctx: &Ctx,
    key: &MountKey,
    at: &SecretIdLocation,
) -> Result<Response> {
    let view = ctx.view.as_ref();
    let _secret = state.secret_ids.lock(&at.hmac).await;
    if let Some(entry) = view::get_json::<SecretIdEntry>(view, &at.key).await? {
        view.batch(vec![
            ViewOp::Delete {
                key: key.accessor_key(&entry.accessor),
            },
            ViewOp::Delete {
                key: at.key.clone(),
            },
        ])
        .await?;
    }
    Ok(Response::empty())
}

async fn tidy_secret_ids(state: Arc<AppRole>, ctx: Ctx) -> Result<Response> {
    let view = ctx.view.as_ref();
    let now = ctx.clock.now();
    let answer = Response {
        status: Some(202),
        ..Response::default()
    }
    .warn(TIDY_STARTED);
    // Without a key no secret ID was ever issued; tidy never needs to make one.
    let Some(key) = existing_mount_key(view).await? else {
        return Ok(answer);
    };
    // Expired secret IDs, with their accessors.
    for folder in view.list("secret_id/").await? {
        let folder = format!("secret_id/{folder}");
        for hmac in view.list(&folder).await? {
            let entry_key = format!("{folder}{hmac}");
            let _secret = state.secret_ids.lock(&hmac).await;
            let Some(entry) = view::get_json::<SecretIdEntry>(view, &entry_key).await? else {
                continue;
            };
            if entry.expired(now) {
                view.batch(vec![
                    ViewOp::Delete {
                        key: key.accessor_key(&entry.accessor),
                    },
                    ViewOp::Delete { key: entry_key },
                ])
                .await?;
            }
        }
    }
    // Accessors whose secret ID is gone (e.g. a role deleted mid-way by a crash).
    for accessor in view.list("accessor/").await? {
        let accessor_key = format!("accessor/{accessor}");
        let Some(index) = view::get_json::<AccessorIndex>(view, &accessor_key).await? else {
            continue;
        };
        let _secret = state.secret_ids.lock(&index.secret_id_hmac).await;
        let entry_key = format!(
            "{}{}",
            key.secret_id_folder(&index.role_name),
            index.secret_id_hmac
        );
        if view.get(&entry_key).await?.is_none() {
            view.delete(&accessor_key).await?;
        }
    }
    Ok(answer)
}

// ---------------------------------------------------------------------------------------------
// Login

/// A login attempt.
#[derive(Debug, Deserialize, JsonSchema)]
struct LoginInput {
    /// The role's role ID.
    #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
    role_id: Option<String>,
    /// A secret ID issued for the role.
    #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
    secret_id: Option<String>,
}

/// Vault's refusal of a caller outside a secret ID's or role's CIDR blocks.
fn cidr_refusal(ctx: &Ctx, on: &str) -> Error {
    let addr = ctx
        .request
        .connection
        .remote_addr
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    Error::bad(format!(
        "source address \"{addr}\" unauthorized by CIDR restrictions on the {on}"
    ))
}

async fn login(state: Arc<AppRole>, ctx: Ctx, input: LoginInput) -> Result<Response> {
    let role_id = input.role_id.unwrap_or_default();
    let role_id = role_id.trim();
    if role_id.is_empty() {
        return Err(Error::bad("missing role_id"));
    }
    let secret_id = Zeroizing::new(input.secret_id.unwrap_or_default());
    let view = ctx.view.as_ref();
    let key = mount_key(&state, view).await?;
    let invalid = || Error::bad(INVALID_CREDENTIALS);

    let found = state
        .login_role(view, &key, role_id)
        .await?
        .ok_or_else(invalid)?;
    let (name, role) = (found.name.clone(), &found.role);
    let remote = ctx.request.connection.remote_addr;

    let mut metadata = Map::new();
    let mut token_bound_cidrs = role.token.bound_cidrs.clone();
    if role.bind_secret_id {
        let secret_id = secret_id.trim();
        if secret_id.is_empty() {
            return Err(Error::bad("missing secret_id"));
        }
        let hmac = key.secret_id_hmac(secret_id);
        let entry_key = format!("{}{hmac}", found.secret_id_folder);
        let now = ctx.clock.now();
        // A secret ID without a use limit is not changed by a login, so its logins hold it
        // shared and queue behind no other login (with one secret ID shared by many clients
        // they all did, one at a time); a destroy still waits for them, and they for it. A
        // limited one is read again with the secret ID held alone, from reading the remaining
        // uses to writing them back. (A limit is set when a secret ID is made and never
        // changes; a spent one is deleted, so 0 always means unlimited.) An unknown or expired
        // secret ID is refused after the one read.
        let shared = state.secret_ids.shared(&hmac).await;
        let read = view::get_json::<SecretIdEntry>(view, &entry_key)
            .await?
            .filter(|e| !e.expired(now))
            .ok_or_else(invalid)?;
        let (_shared, _alone, mut entry) = if read.num_uses == 0 {
            (Some(shared), None, read)
        } else {
            drop(shared);
            let alone = state.secret_ids.lock(&hmac).await;
            let entry = view::get_json::<SecretIdEntry>(view, &entry_key)
                .await?
                .filter(|e| !e.expired(now))
                .ok_or_else(invalid)?;
            (None, Some(alone), entry)
        };
        // CIDRs are checked before a use is consumed, so a refused caller burns nothing.
        if !entry.cidr_list.is_empty() && !cidr::allows(&entry.cidr_list, remote) {
            return Err(cidr_refusal(&ctx, "secret ID"));
        }
        if !role.secret_id_bound_cidrs.is_empty()
            && !cidr::allows(&role.secret_id_bound_cidrs, remote)
        {
            return Err(cidr_refusal(&ctx, "role"));
        }
        match entry.num_uses {
            0 => {}
            1 => {
                view.batch(vec![
                    ViewOp::Delete {
                        key: key.accessor_key(&entry.accessor),
                    },
                    ViewOp::Delete { key: entry_key },
                ])
                .await?
            }
            _ => {
                entry.num_uses -= 1;
                entry.last_updated_time = now;
                view::put_json(view, &entry_key, &entry).await?;
            }
        }
        if !entry.token_bound_cidrs.is_empty() {
            token_bound_cidrs = entry.token_bound_cidrs.clone();
        }
        metadata = entry.metadata;
    } else if !role.secret_id_bound_cidrs.is_empty()
        && !cidr::allows(&role.secret_id_bound_cidrs, remote)
    {
        return Err(cidr_refusal(&ctx, "role"));
    }

    // Always include the role name (Vault does, for later filtering).
    metadata.insert("role_name".into(), Value::String(name.clone()));
    let login = Login {
        metadata: metadata.clone(),
        display_name: name,
        alias_name: role.role_id.clone(),
        alias_metadata: metadata,
        bound_cidrs: token_bound_cidrs,
        ..role.token.login()
    };
    Ok(Response {
        login: Some(login),
        ..Response::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_accepts_objects_and_json_strings_of_strings_only() {
        let expected = json!({"env": "prod"});
        assert_eq!(
            Value::Object(parse_metadata(Some(json!({"env": "prod"}))).unwrap()),
            expected
        );
        assert_eq!(
            Value::Object(parse_metadata(Some(json!("{\"env\":\"prod\"}"))).unwrap()),
            expected
        );
        assert!(parse_metadata(None).unwrap().is_empty());
        for bad in [json!({"n": 1}), json!("not json"), json!(5)] {
            assert_eq!(parse_metadata(Some(bad)).unwrap_err().status(), 400);
        }
    }

    #[test]
    fn hmac_names_are_domain_separated() {
        let key = MountKey(hmac::Key::new(hmac::HMAC_SHA256, b"k"));
        assert_ne!(key.tag("secret_id", "x"), key.tag("accessor", "x"));
        assert_eq!(key.tag("secret_id", "x"), key.tag("secret_id", "x"));
    }
}
