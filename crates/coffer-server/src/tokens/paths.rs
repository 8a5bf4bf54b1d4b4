//! The `auth/token/` declaration: paths, inputs, and the rules for creating tokens.

use super::{NewToken, TokenEntry, TokenRole, TokenStore};
use coffer_sdk::framework::de;
use coffer_sdk::logical::Caller;
use coffer_sdk::{Backend, Ctx, Engine, Error, Operation, Response, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize, JsonSchema, Default)]
struct CreateInput {
    /// Custom token id (root only).
    #[serde(default)]
    id: Option<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    policies: Vec<String>,
    #[serde(default)]
    meta: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    no_parent: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    no_default_policy: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    renewable: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    lease: Option<Duration>,
    #[serde(default, rename = "type")]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    explicit_max_ttl: Option<Duration>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    num_uses: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    period: Option<Duration>,
    #[serde(default)]
    role_name: Option<String>,
    #[serde(default)]
    entity_alias: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct TokenInput {
    token: String,
}

#[derive(Deserialize, JsonSchema)]
struct AccessorInput {
    accessor: String,
}

#[derive(Deserialize, JsonSchema)]
struct RenewInput {
    token: String,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    increment: Option<Duration>,
}

#[derive(Deserialize, JsonSchema)]
struct RenewSelfInput {
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    increment: Option<Duration>,
}

#[derive(Deserialize, JsonSchema)]
struct RenewAccessorInput {
    accessor: String,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    increment: Option<Duration>,
}

#[derive(Deserialize, JsonSchema, Default)]
struct RoleInput {
    #[serde(default, deserialize_with = "de::string_list")]
    allowed_policies: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    disallowed_policies: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    allowed_policies_glob: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    disallowed_policies_glob: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    token_bound_cidrs: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    bound_cidrs: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    orphan: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    renewable: Option<bool>,
    #[serde(default)]
    path_suffix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    period: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    token_period: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    explicit_max_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    token_explicit_max_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    token_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    token_max_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    token_no_default_policy: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    token_num_uses: Option<i64>,
    #[serde(default)]
    token_type: Option<String>,
}

fn caller(ctx: &Ctx) -> Result<&Caller> {
    ctx.request.caller.as_deref().ok_or(Error::PermissionDenied)
}

async fn caller_entry(ts: &TokenStore, ctx: &Ctx) -> Result<(String, Arc<TokenEntry>)> {
    let token = caller(ctx)?
        .client_token
        .clone()
        .ok_or(Error::PermissionDenied)?;
    let entry = ts
        .lookup_caller(&token)
        .await?
        .ok_or(Error::PermissionDenied)?;
    Ok((token, entry))
}

fn validate_role_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(Error::bad(
            "role name must be 1-128 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

/// CIDR blocks (or single addresses) for a binding, trimmed; a malformed one is a 400.
fn validate_cidrs(list: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in list.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        if c.parse::<ipnet::IpNet>().is_err() && c.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::bad(
                "token_bound_cidrs must be CIDR blocks or IP addresses",
            ));
        }
        out.push(c.to_string());
    }
    Ok(out)
}

fn normalize_policies(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = list
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether `name` matches a role's policy glob (`*` matches any run of characters).
fn glob_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The policies a new token gets, by Vault's rules:
/// - through a role that names allowed policies (exact or glob), the request (or, if it names
///   none, the role's allowed list) must stay within them;
/// - otherwise (no role, or a role that allows nothing in particular) the request (or, if it
///   names none, the caller's own policies) must be a subset of the caller's policies unless
///   the caller is root;
/// - a role's disallowed policies and globs always apply;
/// - `root` only ever comes from a root caller, whatever the path.
///
/// `default` is outside these checks (every token may carry it) and is added unless
/// `no_default` or the role disallows it.
fn child_policies(
    parent: &TokenEntry,
    requested: &[String],
    role: Option<&TokenRole>,
    no_default: bool,
) -> Result<Vec<String>> {
    let caller_is_root = parent.is_root();
    let parent_policies = normalize_policies(&parent.policies);
    let allowed = role
        .map(|r| normalize_policies(&r.allowed_policies))
        .unwrap_or_default();
    let allowed_glob = role
        .map(|r| r.allowed_policies_glob.clone())
        .unwrap_or_default();
    let role_restricts = !allowed.is_empty() || !allowed_glob.is_empty();
    let mut chosen: Vec<String> = if !requested.is_empty() {
        requested.to_vec()
    } else if role_restricts {
        allowed.clone()
    } else {
        parent_policies.clone()
    };
    chosen.retain(|p| p != "default");
    if role_restricts {
        for p in &chosen {
            if !allowed.contains(p) && !allowed_glob.iter().any(|g| glob_matches(g, p)) {
                return Err(Error::bad(
                    "token policies must be a subset of the role's allowed policies",
                ));
            }
        }
    } else if !caller_is_root && chosen.iter().any(|p| !parent_policies.contains(p)) {
        return Err(Error::bad(
            "child policies must be a subset of the parent token's policies",
        ));
    }
    if chosen.iter().any(|p| p == "root") && !caller_is_root {
        return Err(Error::bad(
            "root tokens may not be created without parent token being root",
        ));
    }
    let default_disallowed = role.is_some_and(|r| {
        normalize_policies(&r.disallowed_policies).contains(&"default".to_string())
            || r.disallowed_policies_glob
                .iter()
                .any(|g| glob_matches(g, "default"))
    });
    if !no_default && !default_disallowed && !chosen.iter().any(|p| p == "root") {
        chosen.push("default".into());
    }
    if let Some(role) = role {
        let disallowed = normalize_policies(&role.disallowed_policies);
        for p in &chosen {
            if disallowed.contains(p)
                || role
                    .disallowed_policies_glob
                    .iter()
                    .any(|g| glob_matches(g, p))
            {
                return Err(Error::bad(format!(
                    "token policy {p:?} is disallowed by this role"
                )));
            }
        }
    }
    chosen.sort();
    chosen.dedup();
    Ok(chosen)
}

async fn handle_create(
    ts: Arc<TokenStore>,
    ctx: Ctx,
    input: CreateInput,
    orphan_path: bool,
    role_name: Option<String>,
) -> Result<Response> {
    let (_, parent) = caller_entry(&ts, &ctx).await?;
    let caller_is_root = parent.is_root();
    let caller_has_sudo = caller_is_root || caller(&ctx)?.sudo;
    if let Some(t) = &input.token_type {
        match t.as_str() {
            "" | "service" | "default" => {}
            "batch" => {
                return Err(Error::bad(
                    "batch tokens are not supported yet; use type \"service\"",
                ))
            }
            _ => return Err(Error::bad("invalid token type: use \"service\"")),
        }
    }
    if input.entity_alias.as_deref().is_some_and(|a| !a.is_empty()) {
        return Err(Error::bad(
            "entity_alias requires identity entities, which are not available yet",
        ));
    }
    // A role is used only through its own path, so the ACL on that path decides who may.
    if let Some(body_role) = input.role_name.as_deref().filter(|r| !r.is_empty()) {
        if role_name.as_deref() != Some(body_role) {
            return Err(Error::bad(
                "role_name is not accepted in the request body: create tokens from a role at auth/token/create/<role_name>",
            ));
        }
    }
    if parent.num_uses != 0 {
        return Err(Error::bad("a limited-use token cannot create child tokens"));
    }
    if input.id.is_some() && !caller_has_sudo {
        return Err(Error::bad(
            "root or sudo privileges required to specify token id",
        ));
    }
    if input.no_parent == Some(true) && !caller_has_sudo && !orphan_path {
        return Err(Error::bad(
            "root or sudo privileges required to create orphan token",
        ));
    }
    if input.period.is_some_and(|p| !p.is_zero()) && !caller_has_sudo {
        return Err(Error::bad(
            "root or sudo privileges required to create periodic token",
        ));
    }
    let mut num_uses = input.num_uses.unwrap_or(0);
    if num_uses < 0 {
        return Err(Error::bad("number of uses cannot be negative"));
    }
    let role = match role_name {
        Some(name) => Some(
            ts.get_role(&name)
                .await?
                .ok_or_else(|| Error::bad("unknown role"))?,
        ),
        None => None,
    };
    let requested = normalize_policies(&input.policies);
    let no_default = input.no_default_policy.unwrap_or(false)
        || role.as_ref().is_some_and(|r| r.token_no_default_policy);
    let policies = child_policies(&parent, &requested, role.as_ref(), no_default)?;
    let orphan =
        orphan_path || input.no_parent == Some(true) || role.as_ref().is_some_and(|r| r.orphan);
    let display = input.display_name.clone().unwrap_or_default();
    let display_name = if display.is_empty() {
        "token".to_string()
    } else {
        format!("token-{}", display.trim_start_matches("token-"))
    };
    let mut ttl = input.ttl.or(input.lease).unwrap_or_default();
    let mut explicit_max = input.explicit_max_ttl.unwrap_or_default();
    let mut period = input.period.unwrap_or_default();
    let mut renewable = input.renewable.unwrap_or(true);
    let mut max_ttl = Duration::ZERO;
    // A child is usable only where its creator is: it keeps the creator's bindings, and a
    // role's own binding narrows them further.
    let mut bound_cidrs = parent.bound_cidrs.clone();
    let mut inherited_cidrs = parent.inherited_cidrs.clone();
    let mut path = if orphan_path {
        "auth/token/create-orphan".to_string()
    } else {
        "auth/token/create".to_string()
    };
    if let Some(role) = &role {
        if role.token_period > 0 {
            period = Duration::from_secs(role.token_period);
        }
        if role.token_explicit_max_ttl > 0 {
            explicit_max = if explicit_max.is_zero() {
                Duration::from_secs(role.token_explicit_max_ttl)
            } else {
                explicit_max.min(Duration::from_secs(role.token_explicit_max_ttl))
            };
        }
        if ttl.is_zero() && role.token_ttl > 0 {
            ttl = Duration::from_secs(role.token_ttl);
        }
        if role.token_max_ttl > 0 {
            max_ttl = Duration::from_secs(role.token_max_ttl);
            ttl = ttl.min(max_ttl);
        }
        if num_uses == 0 {
            num_uses = role.token_num_uses;
        }
        if !role.token_bound_cidrs.is_empty() {
            if !parent.bound_cidrs.is_empty() {
                inherited_cidrs.push(parent.bound_cidrs.clone());
            }
            bound_cidrs = role.token_bound_cidrs.clone();
        }
        renewable = renewable && role.renewable;
        let suffix = role.path_suffix.trim_matches('/');
        path = if suffix.is_empty() {
            format!("auth/token/create/{}", role.name)
        } else {
            format!("auth/token/create/{}/{suffix}", role.name)
        };
    }
    let meta = match input.meta {
        None => Map::new(),
        Some(m) => {
            for v in m.values() {
                if !v.is_string() {
                    return Err(Error::bad("meta values must be strings"));
                }
            }
            m
        }
    };
    let issued = ts
        .issue(NewToken {
            id: input.id,
            parent_hash: if orphan {
                None
            } else {
                Some(parent.id_hash.clone())
            },
            policies,
            meta,
            display_name,
            num_uses,
            ttl,
            explicit_max_ttl: explicit_max,
            period,
            renewable,
            path,
            role: role.map(|r| r.name),
            bound_cidrs,
            inherited_cidrs,
            max_ttl,
            entity_id: parent.entity_id.clone(),
            ..NewToken::default()
        })
        .await?;
    let auth = ts.issued_auth_block(&issued);
    Ok(Response {
        auth: Some(auth),
        ..Response::default()
    })
}

/// The declaration of `auth/token/`.
pub fn backend(ts: &Arc<TokenStore>) -> Backend {
    let e = Engine::new(
        "token",
        "The token store: create, look up, renew and revoke tokens.",
        ts.clone(),
    );
    let lookup_self = |ts: Arc<TokenStore>, ctx: Ctx| async move {
        {
            let (token, entry) = caller_entry(&ts, &ctx).await?;
            let accessor = ts.accessor_of(&token)?;
            Ok(Response::data(ts.lookup_data(&entry, &token, &accessor)))
        }
    };
    let renew_self = |ts: Arc<TokenStore>, ctx: Ctx, input: RenewSelfInput| async move {
        {
            let (token, entry) = caller_entry(&ts, &ctx).await?;
            let (updated, warning) = ts
                .renew(&entry, input.increment, &ctx.request.connection)
                .await?;
            let mut resp = Response {
                auth: Some(ts.auth_block(&token, &updated)?),
                ..Response::default()
            };
            resp.warnings.extend(warning);
            Ok(resp)
        }
    };
    let paths = vec![
        e.path("create-orphan")
            .typed_ops(&[Operation::Update, Operation::Create], "Create an orphan token.", |ts, ctx, input: CreateInput| async move { handle_create(ts, ctx, input, true, None).await })
            .help("Create an orphan token.", "The new token has no parent: revoking the creator does not revoke it."),
        e.path("create/(?P<role_name>[^/]+)")
            .typed_ops(&[Operation::Update, Operation::Create], "Create a token from a role.", |ts, ctx, input: CreateInput| async move { {
                let role = ctx.param("role_name").to_string();
                handle_create(ts, ctx, input, false, Some(role)).await
            } })
            .help("Create a token from a role.", "Policies, TTLs and orphan status come from the role."),
        e.path("create")
            .typed_ops(&[Operation::Update, Operation::Create], "Create a token.", |ts, ctx, input: CreateInput| async move { handle_create(ts, ctx, input, false, None).await })
            .help("Create a child token.", "The new token is a child of the calling token unless no_parent is set (root only)."),
        e.path("lookup-self")
            .op(Operation::Read, "Look up the calling token.", lookup_self)
            .op(Operation::Update, "Look up the calling token.", lookup_self)
            .help("Look up the calling token.", ""),
        e.path("lookup-accessor")
            .typed(Operation::Update, "Look up a token by accessor.", |ts, _ctx, input: AccessorInput| async move { {
                let entry = ts.lookup_accessor(&input.accessor).await?.ok_or_else(|| Error::bad("invalid accessor"))?;
                Ok(Response::data(ts.lookup_data(&entry, "", &input.accessor)))
            } })
            .help("Look up a token by its accessor.", "The token id is not returned."),
        e.path("lookup")
            .typed(Operation::Update, "Look up a token.", |ts, _ctx, input: TokenInput| async move { {
                let entry = ts.lookup(&input.token).await?.ok_or_else(|| Error::Forbidden("bad token".into()))?;
                let accessor = ts.accessor_of(&input.token)?;
                Ok(Response::data(ts.lookup_data(&entry, &input.token, &accessor)))
            } })
            .op(Operation::Read, "Look up the calling token.", |ts, ctx| async move { {
                let (token, entry) = caller_entry(&ts, &ctx).await?;
                let accessor = ts.accessor_of(&token)?;
                Ok(Response::data(ts.lookup_data(&entry, &token, &accessor)))
            } })
            .help("Look up a token.", ""),
        e.path("renew-self")
            .typed(Operation::Update, "Renew the calling token.", renew_self)
            .help("Renew the calling token.", ""),
        e.path("renew-accessor")
            .typed(Operation::Update, "Renew a token by accessor.", |ts, ctx, input: RenewAccessorInput| async move { {
                let entry = ts.lookup_accessor(&input.accessor).await?.ok_or_else(|| Error::bad("invalid accessor"))?;
                let (updated, warning) = ts.renew(&entry, input.increment, &ctx.request.connection).await?;
                let mut auth = ts.auth_block("", &updated)?;
                auth.accessor = input.accessor.clone();
                let mut resp = Response { auth: Some(auth), ..Response::default() };
                resp.warnings.extend(warning);
                Ok(resp)
            } })
            .help("Renew a token by its accessor.", ""),
        e.path("renew")
            .typed(Operation::Update, "Renew a token.", |ts, ctx, input: RenewInput| async move { {
                let entry = ts.lookup(&input.token).await?.ok_or_else(|| Error::bad("invalid token"))?;
                let (updated, warning) = ts.renew(&entry, input.increment, &ctx.request.connection).await?;
                let mut resp = Response { auth: Some(ts.auth_block(&input.token, &updated)?), ..Response::default() };
                resp.warnings.extend(warning);
                Ok(resp)
            } })
            .help("Renew a token.", ""),
        e.path("revoke-self")
            .op(Operation::Update, "Revoke the calling token and its children.", |ts, ctx| async move { {
                let (_, entry) = caller_entry(&ts, &ctx).await?;
                ts.revoke_tree(&entry.id_hash).await?;
                Ok(Response::empty())
            } })
            .help("Revoke the calling token and all its children.", ""),
        e.path("revoke-accessor")
            .typed(Operation::Update, "Revoke a token by accessor.", |ts, _ctx, input: AccessorInput| async move { {
                let entry = ts.lookup_accessor(&input.accessor).await?.ok_or_else(|| Error::bad("invalid accessor"))?;
                ts.revoke_tree(&entry.id_hash).await?;
                Ok(Response::empty())
            } })
            .help("Revoke a token by accessor, with its children.", ""),
        e.path("revoke-orphan")
            .typed(Operation::Update, "Revoke a token, orphaning its children.", |ts, _ctx, input: TokenInput| async move { {
                let entry = ts.lookup(&input.token).await?.ok_or_else(|| Error::bad("token to revoke not found"))?;
                ts.revoke_orphan(&entry.id_hash).await?;
                Ok(Response::empty())
            } })
            .sudo()
            .help("Revoke a token but not its children, which become orphans.", ""),
        e.path("revoke")
            .typed(Operation::Update, "Revoke a token and its children.", |ts, _ctx, input: TokenInput| async move { {
                if let Some(entry) = ts.lookup(&input.token).await? {
                    ts.revoke_tree(&entry.id_hash).await?;
                }
                Ok(Response::empty())
            } })
            .help("Revoke a token and all its children.", ""),
        e.path("accessors/?")
            .sudo()
            .op(Operation::List, "List accessors (not available).", |_ts, _ctx| async {
                Err(Error::bad(
                    "listing accessors is not available: Coffer stores accessors only as salted hashes; \
                     look tokens up by accessor, or list token leases under sys/leases/lookup/auth/token/",
                ))
            })
            .help("Listing accessors is refused by design.", "Accessors are stored only as salted hashes, so there is nothing to list."),
        e.path("tidy")
            .sudo()
            .op(
                Operation::Update,
                "Tidy the token store.",
                |ts, _ctx| async move { {
                    let counts = ts.tidy().await?;
                    Ok(Response::data(counts).warn("tidy of the token store finished"))
                } },
            )
            .help(
                "Clean up the token store's indexes.",
                "Removes accessor and parent entries of missing tokens, revokes children whose parent is gone, and revokes expired tokens.",
            ),
        e.path("roles/?")
            .op(Operation::List, "List token roles.", |ts, _ctx| async move { {
                Response::list(ts.list_roles().await?)
            } })
            .help("List token roles.", ""),
        e.path("roles/(?P<role_name>[^/]+)")
            .existence(|ts, ctx| async move { Ok(ts.get_role(ctx.param("role_name")).await?.is_some()) })
            .op(Operation::Read, "Read a token role.", |ts, ctx| async move { {
                let role = ts.get_role(ctx.param("role_name")).await?.ok_or(Error::NotFound)?;
                Ok(Response::data(json!({
                    "name": role.name,
                    "allowed_policies": role.allowed_policies,
                    "disallowed_policies": role.disallowed_policies,
                    "allowed_policies_glob": role.allowed_policies_glob,
                    "disallowed_policies_glob": role.disallowed_policies_glob,
                    "token_bound_cidrs": role.token_bound_cidrs,
                    "orphan": role.orphan,
                    "renewable": role.renewable,
                    "path_suffix": role.path_suffix,
                    "period": role.token_period,
                    "token_period": role.token_period,
                    "explicit_max_ttl": role.token_explicit_max_ttl,
                    "token_explicit_max_ttl": role.token_explicit_max_ttl,
                    "token_ttl": role.token_ttl,
                    "token_max_ttl": role.token_max_ttl,
                    "token_no_default_policy": role.token_no_default_policy,
                    "token_num_uses": role.token_num_uses,
                    "token_type": if role.token_type.is_empty() { "default-service".to_string() } else { role.token_type.clone() },
                })))
            } })
            .typed_ops(&[Operation::Create, Operation::Update], "Create or update a token role.", |ts, ctx, input: RoleInput| async move { {
                let name = ctx.param("role_name").to_string();
                validate_role_name(&name)?;
                let mut role = ts.get_role(&name).await?.unwrap_or(TokenRole { name: name.clone(), renewable: true, ..TokenRole::default() });
                if !input.allowed_policies.is_empty() || ctx.request.data.contains_key("allowed_policies") {
                    role.allowed_policies = normalize_policies(&input.allowed_policies);
                }
                if !input.disallowed_policies.is_empty() || ctx.request.data.contains_key("disallowed_policies") {
                    role.disallowed_policies = normalize_policies(&input.disallowed_policies);
                }
                if !input.allowed_policies_glob.is_empty() || ctx.request.data.contains_key("allowed_policies_glob") {
                    role.allowed_policies_glob = normalize_policies(&input.allowed_policies_glob);
                }
                if !input.disallowed_policies_glob.is_empty() || ctx.request.data.contains_key("disallowed_policies_glob") {
                    role.disallowed_policies_glob = normalize_policies(&input.disallowed_policies_glob);
                }
                if ctx.request.data.contains_key("token_bound_cidrs") || ctx.request.data.contains_key("bound_cidrs") {
                    let cidrs = if ctx.request.data.contains_key("token_bound_cidrs") { &input.token_bound_cidrs } else { &input.bound_cidrs };
                    role.token_bound_cidrs = validate_cidrs(cidrs)?;
                }
                if let Some(v) = input.orphan { role.orphan = v; }
                if let Some(v) = input.renewable { role.renewable = v; }
                if let Some(v) = input.path_suffix {
                    if v.contains("..") { return Err(Error::bad("path_suffix cannot contain '..'")); }
                    role.path_suffix = v;
                }
                if let Some(v) = input.token_period.or(input.period) { role.token_period = v.as_secs(); }
                if let Some(v) = input.token_explicit_max_ttl.or(input.explicit_max_ttl) { role.token_explicit_max_ttl = v.as_secs(); }
                if let Some(v) = input.token_ttl { role.token_ttl = v.as_secs(); }
                if let Some(v) = input.token_max_ttl { role.token_max_ttl = v.as_secs(); }
                if let Some(v) = input.token_no_default_policy { role.token_no_default_policy = v; }
                if let Some(v) = input.token_num_uses {
                    if v < 0 { return Err(Error::bad("token_num_uses cannot be negative")); }
                    role.token_num_uses = v;
                }
                if let Some(v) = input.token_type {
                    if !matches!(v.as_str(), "service" | "default-service" | "default") {
                        return Err(Error::bad("only service tokens are supported by token roles"));
                    }
                    role.token_type = v;
                }
                ts.put_role(&role).await?;
                Ok(Response::empty())
            } })
            .op(Operation::Delete, "Delete a token role.", |ts, ctx| async move { {
                ts.delete_role(ctx.param("role_name")).await?;
                Ok(Response::empty())
            } })
            .help("Manage token roles.", "A role fixes the policies, TTLs and orphan status of tokens created through it."),
    ];
    e.paths(paths).build()
}
