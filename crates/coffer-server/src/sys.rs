//! The `sys/` backend: seal lifecycle, mounts, policies, capabilities, health, metrics and the
//! OpenAPI document. Declared like any engine; its handlers call into [`Core`].

use crate::core::{Core, RekeyProgress, SealStatus};
use crate::mounts::{self, MountConfig, MountEntry, AUTH_PATH, MOUNTS_PATH};
use base64::Engine as _;
use coffer_sdk::framework::de;
use coffer_sdk::logical::RawBody;
use coffer_sdk::{Backend, Ctx, Error, Operation, PathSpec, Response, Result, View};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use zeroize::Zeroizing;

fn core(weak: &Weak<Core>) -> Result<Arc<Core>> {
    weak.upgrade()
        .ok_or_else(|| Error::Unavailable("server is shutting down".into()))
}

/// A JSON body outside Vault's envelope (seal status, init, health...).
pub fn raw_json(value: Value) -> Response {
    Response {
        raw: Some(RawBody {
            content_type: "application/json".into(),
            body: serde_json::to_vec(&value).expect("json encodes"),
        }),
        ..Response::default()
    }
}

/// Vault's legacy shape for some sys reads: the data both at the top level and under `data`.
fn legacy(data: Map<String, Value>) -> Response {
    let mut body = data.clone();
    body.insert("request_id".into(), json!(uuid::Uuid::new_v4().to_string()));
    body.insert("lease_id".into(), json!(""));
    body.insert("renewable".into(), json!(false));
    body.insert("lease_duration".into(), json!(0));
    body.insert("data".into(), Value::Object(data));
    body.insert("wrap_info".into(), Value::Null);
    body.insert("warnings".into(), Value::Null);
    body.insert("auth".into(), Value::Null);
    raw_json(Value::Object(body))
}

fn decode_key(key: &str) -> Result<Zeroizing<Vec<u8>>> {
    let key = key.trim();
    if key.is_empty() {
        return Err(Error::bad("missing required field 'key'"));
    }
    if let Ok(bytes) = hex::decode(key) {
        return Ok(Zeroizing::new(bytes));
    }
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map(Zeroizing::new)
        .map_err(|_| Error::bad("'key' must be a valid hex or base64 string"))
}

fn seal_status_json(s: &SealStatus) -> Value {
    serde_json::to_value(s).expect("encodes")
}

#[derive(Deserialize, JsonSchema)]
struct InitInput {
    #[serde(default, deserialize_with = "de::opt_u64")]
    secret_shares: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    secret_threshold: Option<u64>,
    #[serde(default)]
    pgp_keys: Option<Vec<String>>,
    #[serde(default)]
    root_token_pgp_key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    stored_shares: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    recovery_shares: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    recovery_threshold: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
struct UnsealInput {
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    reset: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    migrate: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
struct RekeyInitInput {
    #[serde(default, deserialize_with = "de::opt_u64")]
    secret_shares: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    secret_threshold: Option<u64>,
    #[serde(default)]
    pgp_keys: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    backup: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    require_verification: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
struct RekeyUpdateInput {
    key: String,
    nonce: String,
}

#[derive(Deserialize, JsonSchema, Default)]
struct MountConfigInput {
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    default_lease_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    max_lease_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    force_no_cache: Option<bool>,
    #[serde(default)]
    listing_visibility: Option<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    audit_non_hmac_request_keys: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    audit_non_hmac_response_keys: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    passthrough_request_headers: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
struct MountInput {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    config: Option<MountConfigInput>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    local: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    seal_wrap: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    external_entropy_access: Option<bool>,
    #[serde(default)]
    plugin_name: Option<String>,
    #[serde(default)]
    plugin_version: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct TuneInput {
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    default_lease_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    max_lease_ttl: Option<Duration>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(default)]
    listing_visibility: Option<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    force_no_cache: Option<bool>,
    #[serde(default)]
    audit_non_hmac_request_keys: Option<Vec<String>>,
    #[serde(default)]
    audit_non_hmac_response_keys: Option<Vec<String>>,
    #[serde(default)]
    passthrough_request_headers: Option<Vec<String>>,
}

#[derive(Deserialize, JsonSchema)]
struct LeaseInput {
    #[serde(default)]
    lease_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    increment: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    sync: Option<bool>,
}

fn lease_id_of(ctx: &Ctx, input: &LeaseInput) -> Result<String> {
    let from_url = ctx.param("url_lease_id");
    let id = if !from_url.is_empty() {
        from_url.to_string()
    } else {
        input.lease_id.clone().unwrap_or_default()
    };
    if id.trim().is_empty() {
        return Err(Error::bad("missing required field 'lease_id'"));
    }
    Ok(id.trim_start_matches('/').to_string())
}

async fn renew_lease(core: &Core, ctx: &Ctx, input: &LeaseInput) -> Result<Response> {
    let id = lease_id_of(ctx, input)?;
    let (lease, warning) = core
        .leases
        .renew(&id, input.increment, &ctx.request.connection)
        .await?;
    let ttl = Duration::from_secs(crate::leases::secs_until(
        lease.expire_time,
        core.clock.now(),
    ));
    let mut resp = Response {
        secret: Some(coffer_sdk::logical::SecretLease {
            lease_id: lease.lease_id,
            ttl,
            renewable: lease.renewable,
            ..Default::default()
        }),
        ..Response::default()
    };
    resp.warnings.extend(warning);
    Ok(resp)
}

async fn revoke_lease(
    core: &Arc<Core>,
    ctx: &Ctx,
    input: &LeaseInput,
    force: bool,
) -> Result<Response> {
    let id = lease_id_of(ctx, input)?;
    if input.sync == Some(false) {
        core.leases
            .store
            .get(&id)
            .await?
            .ok_or_else(|| Error::bad("invalid lease"))?;
        let core = core.clone();
        tokio::spawn(async move {
            if let Err(e) = core.leases.revoke(&id, force).await {
                tracing::warn!(error = %e, "asynchronous lease revocation failed; the lease stays and expiry retries it");
            }
        });
        let mut resp = Response::empty();
        resp.status = Some(202);
        resp.warnings.push("revocation queued".into());
        return Ok(resp);
    }
    core.leases.revoke(&id, force).await?;
    Ok(Response::empty())
}

async fn revoke_prefix(core: &Arc<Core>, ctx: &Ctx, force: bool) -> Result<Response> {
    let prefix = ctx.param("prefix").to_string();
    if prefix.is_empty() {
        return Err(Error::bad("missing required field 'prefix'"));
    }
    core.leases.revoke_prefix(&prefix, force).await?;
    Ok(Response::empty())
}

#[derive(Deserialize, JsonSchema)]
struct WrapTokenInput {
    #[serde(default)]
    token: Option<String>,
}

/// The wrapping token: the `token` field, else the request's own token.
fn wrapping_token(ctx: &Ctx, input: &WrapTokenInput) -> Result<String> {
    input
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            ctx.request
                .caller
                .as_ref()
                .and_then(|c| c.client_token.clone())
        })
        .ok_or_else(|| Error::bad("wrapping token is not valid or does not exist"))
}

#[derive(Deserialize, JsonSchema)]
struct RemountInput {
    from: String,
    to: String,
}

#[derive(Deserialize, JsonSchema)]
struct PolicyInput {
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    rules: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct CapabilitiesInput {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    accessor: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    paths: Vec<String>,
}

fn options_to_strings(options: Option<Map<String, Value>>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in options.unwrap_or_default() {
        let s = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => return Err(Error::bad(format!("option \"{k}\" must be a string"))),
        };
        out.insert(k, s);
    }
    Ok(out)
}

fn mount_json(entry: &MountEntry, core: &Core) -> Value {
    let info = entry.info(core.limits);
    let mut options = Map::new();
    for (k, v) in &entry.options {
        options.insert(k.clone(), json!(v));
    }
    json!({
        "accessor": entry.accessor,
        "config": {
            "default_lease_ttl": if entry.config.default_lease_ttl > 0 { entry.config.default_lease_ttl } else { 0 },
            "max_lease_ttl": if entry.config.max_lease_ttl > 0 { entry.config.max_lease_ttl } else { 0 },
            "force_no_cache": entry.config.force_no_cache,
        },
        "description": entry.description,
        "external_entropy_access": false,
        "local": entry.local,
        "options": if entry.options.is_empty() { Value::Null } else { Value::Object(options) },
        "plugin_version": "",
        "running_plugin_version": "",
        "running_sha256": "",
        "seal_wrap": entry.seal_wrap,
        "type": entry.kind,
        "uuid": entry.uuid,
        "deprecation_status": "supported",
        "effective_default_lease_ttl": info.default_lease_ttl.as_secs(),
    })
}

fn tune_json(entry: &MountEntry, core: &Core) -> Value {
    let info = entry.info(core.limits);
    let mut out = json!({
        "default_lease_ttl": info.default_lease_ttl.as_secs(),
        "max_lease_ttl": info.max_lease_ttl.as_secs(),
        "force_no_cache": entry.config.force_no_cache,
        "description": entry.description,
    });
    if !entry.options.is_empty() {
        out["options"] = json!(entry.options);
    }
    if !entry.config.listing_visibility.is_empty() {
        out["listing_visibility"] = json!(entry.config.listing_visibility);
    }
    out
}

const RESERVED_SECRET_PREFIXES: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/"];

async fn enable_mount(
    core: &Core,
    path: &str,
    input: MountInput,
    is_auth: bool,
) -> Result<Response> {
    let path = mounts::normalize_mount_path(path)?;
    let table_path = if is_auth { AUTH_PATH } else { MOUNTS_PATH };
    let mut kind = input.kind.trim().to_string();
    let mut options = options_to_strings(input.options)?;
    if is_auth {
        if kind == "token" {
            return Err(Error::bad(
                "token credential backend cannot be instantiated",
            ));
        }
        if !core.router.knows(&kind, true) {
            return Err(Error::bad(format!(
                "unknown auth method type \"{kind}\"; available: token (built in){}",
                coffer_auth::AUTH_TYPES
                    .iter()
                    .map(|t| format!(", {t}"))
                    .collect::<String>()
            )));
        }
    } else if !core.router.knows(&kind, false) {
        return Err(Error::bad(format!(
            "plugin not found in the catalog: {kind}"
        )));
    }
    if kind == "kv-v2" {
        kind = "kv".into();
        options.insert("version".into(), "2".into());
    }
    if let Some(v) = options.get("version") {
        if !matches!(v.as_str(), "1" | "2") {
            return Err(Error::bad(format!(
                "invalid kv version \"{v}\": must be 1 or 2"
            )));
        }
    }
    if RESERVED_SECRET_PREFIXES.iter().any(|r| path.starts_with(r)) {
        return Err(Error::bad(format!(
            "cannot mount at reserved path \"{path}\""
        )));
    }
    let config_in = input.config.unwrap_or_default();
    let config = MountConfig {
        default_lease_ttl: config_in.default_lease_ttl.map_or(0, |d| d.as_secs()),
        max_lease_ttl: config_in.max_lease_ttl.map_or(0, |d| d.as_secs()),
        force_no_cache: config_in.force_no_cache.unwrap_or(false),
        listing_visibility: config_in.listing_visibility.unwrap_or_default(),
        audit_non_hmac_request_keys: config_in.audit_non_hmac_request_keys,
        audit_non_hmac_response_keys: config_in.audit_non_hmac_response_keys,
        passthrough_request_headers: config_in.passthrough_request_headers,
    };
    check_ttls(core, config.default_lease_ttl, config.max_lease_ttl)?;
    let _ = (
        input.seal_wrap,
        input.external_entropy_access,
        input.plugin_name,
        input.plugin_version,
    );
    let mut table = mounts::read_table(&core.barrier, table_path).await?;
    let route = if is_auth {
        format!("auth/{path}")
    } else {
        path.clone()
    };
    for existing in core.mounted() {
        let existing_path = &existing.route_path;
        if existing_path.starts_with(&route) || route.starts_with(existing_path.as_str()) {
            return Err(Error::bad(format!(
                "path is already in use at {existing_path}"
            )));
        }
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let entry = MountEntry {
        path: path.clone(),
        kind: kind.clone(),
        description: input.description.unwrap_or_default(),
        accessor: format!("{}_{}", kind, &uuid.replace('-', "")[..8]),
        uuid,
        config,
        options,
        local: input.local.unwrap_or(false),
        seal_wrap: false,
    };
    // Build the engine first so a bad option fails before anything is written.
    core.router
        .mount(&core.barrier, entry.clone(), is_auth, core.limits)?;
    table.push(entry);
    mounts::write_table(&core.barrier, table_path, &table).await?;
    core.router.load(&core.barrier, core.limits).await?;
    Ok(Response::empty())
}

fn check_ttls(core: &Core, default: u64, max: u64) -> Result<()> {
    if max > 0 && max > core.limits.max_ttl.as_secs() {
        return Err(Error::bad(
            "max_lease_ttl cannot be larger than the system max lease TTL",
        ));
    }
    let effective_max = if max > 0 {
        max
    } else {
        core.limits.max_ttl.as_secs()
    };
    if default > effective_max {
        return Err(Error::bad(
            "default_lease_ttl cannot be larger than max_lease_ttl",
        ));
    }
    Ok(())
}

async fn disable_mount(core: &Arc<Core>, path: &str, is_auth: bool) -> Result<Response> {
    let path = mounts::normalize_mount_path(path)?;
    if !is_auth && RESERVED_SECRET_PREFIXES.iter().any(|r| path.starts_with(r)) {
        return Err(Error::bad(format!("cannot unmount \"{path}\"")));
    }
    if is_auth && path == "token/" {
        return Err(Error::bad("token credential backend cannot be disabled"));
    }
    let table_path = if is_auth { AUTH_PATH } else { MOUNTS_PATH };
    let mut table = mounts::read_table(&core.barrier, table_path).await?;
    let Some(pos) = table.iter().position(|e| e.path == path) else {
        // Vault answers success for a path that is not mounted.
        return Ok(Response::empty());
    };
    // Everything the mount issued goes first, while its engine can still revoke it: the
    // leases of a secrets engine, every token an auth method issued. If a revocation fails the
    // mount stays, so nothing it issued outlives it unnoticed.
    let lease_prefix = if is_auth {
        format!("auth/{path}")
    } else {
        path.clone()
    };
    core.leases.revoke_prefix(&lease_prefix, false).await?;
    let entry = table.remove(pos);
    mounts::write_table(&core.barrier, table_path, &table).await?;
    core.router.load(&core.barrier, core.limits).await?;
    crate::barrier::BarrierView::new(core.barrier.clone(), entry.storage_prefix(is_auth))
        .clear()
        .await?;
    Ok(Response::empty())
}

async fn find_entry(core: &Core, path: &str, is_auth: bool) -> Result<(Vec<MountEntry>, usize)> {
    let path = mounts::normalize_mount_path(path)?;
    let table =
        mounts::read_table(&core.barrier, if is_auth { AUTH_PATH } else { MOUNTS_PATH }).await?;
    let pos = table
        .iter()
        .position(|e| e.path == path)
        .ok_or_else(|| Error::bad(format!("no mount at \"{path}\"")))?;
    Ok((table, pos))
}

fn builtin_tune(core: &Core, path: &str, is_auth: bool) -> Option<Value> {
    let route = if is_auth {
        format!("auth/{}", path.trim_matches('/'))
    } else {
        path.trim_matches('/').to_string()
    } + "/";
    core.mounted()
        .iter()
        .find(|m| m.route_path == route && (m.entry.kind == "system" || m.entry.kind == "token"))
        .map(|m| tune_json(&m.entry, core))
}

async fn tune_mount(core: &Core, path: &str, input: TuneInput, is_auth: bool) -> Result<Response> {
    let (mut table, pos) = find_entry(core, path, is_auth).await?;
    let entry = &mut table[pos];
    let mut config = entry.config.clone();
    if let Some(d) = input.default_lease_ttl {
        config.default_lease_ttl = d.as_secs();
    }
    if let Some(d) = input.max_lease_ttl {
        config.max_lease_ttl = d.as_secs();
    }
    check_ttls(core, config.default_lease_ttl, config.max_lease_ttl)?;
    if let Some(v) = input.force_no_cache {
        config.force_no_cache = v;
    }
    if let Some(v) = input.listing_visibility {
        if !matches!(v.as_str(), "" | "hidden" | "unauth") {
            return Err(Error::bad(
                "listing_visibility must be \"\", \"hidden\" or \"unauth\"",
            ));
        }
        config.listing_visibility = v;
    }
    if let Some(v) = input.audit_non_hmac_request_keys {
        config.audit_non_hmac_request_keys = v;
    }
    if let Some(v) = input.audit_non_hmac_response_keys {
        config.audit_non_hmac_response_keys = v;
    }
    if let Some(v) = input.passthrough_request_headers {
        config.passthrough_request_headers = v;
    }
    let mut options = entry.options.clone();
    for (k, v) in options_to_strings(input.options)? {
        if k == "version" && entry.kind == "kv" {
            let current = entry
                .options
                .get("version")
                .map(String::as_str)
                .unwrap_or("1");
            if v != current {
                return Err(Error::bad(
                    "changing the kv version of an existing mount is not supported yet",
                ));
            }
        }
        options.insert(k, v);
    }
    if let Some(d) = input.description {
        entry.description = d;
    }
    entry.config = config;
    entry.options = options;
    mounts::write_table(
        &core.barrier,
        if is_auth { AUTH_PATH } else { MOUNTS_PATH },
        &table,
    )
    .await?;
    core.router.load(&core.barrier, core.limits).await?;
    Ok(Response::empty())
}

async fn remount(core: &Core, input: RemountInput) -> Result<Response> {
    let (from_auth, from) = match input.from.trim_start_matches('/').strip_prefix("auth/") {
        Some(rest) => (true, rest.to_string()),
        None => (false, input.from.clone()),
    };
    let (to_auth, to) = match input.to.trim_start_matches('/').strip_prefix("auth/") {
        Some(rest) => (true, rest.to_string()),
        None => (false, input.to.clone()),
    };
    if from_auth != to_auth {
        return Err(Error::bad(
            "cannot move a mount between secrets engines and auth methods",
        ));
    }
    let to = mounts::normalize_mount_path(&to)?;
    if !from_auth && RESERVED_SECRET_PREFIXES.iter().any(|r| to.starts_with(r)) {
        return Err(Error::bad(format!(
            "cannot remount to reserved path \"{to}\""
        )));
    }
    let (mut table, pos) = find_entry(core, &from, from_auth).await?;
    let target_route = if to_auth {
        format!("auth/{to}")
    } else {
        to.clone()
    };
    for existing in core.mounted() {
        if existing.route_path.starts_with(&target_route)
            || target_route.starts_with(existing.route_path.as_str())
        {
            if existing.entry.uuid == table[pos].uuid {
                continue;
            }
            return Err(Error::bad(format!(
                "path already in use at {}",
                existing.route_path
            )));
        }
    }
    let source = table[pos].path.clone();
    // Storage is keyed by the mount's uuid, so moving is a mount-table update only.
    table[pos].path = to.clone();
    mounts::write_table(
        &core.barrier,
        if from_auth { AUTH_PATH } else { MOUNTS_PATH },
        &table,
    )
    .await?;
    core.router.load(&core.barrier, core.limits).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let state = core
        .mounted()
        .into_iter()
        .find(|m| m.route_path == "sys/")
        .expect("sys is built in")
        .view
        .clone();
    let record = json!({"source_mount": source, "target_mount": to, "status": "success"});
    state
        .put(
            &format!("remount/{id}"),
            serde_json::to_vec(&record).expect("encodes"),
        )
        .await?;
    Ok(Response::data(json!({"migration_id": id})))
}

fn requested_paths(input: &CapabilitiesInput) -> Result<Vec<String>> {
    let mut paths = input.paths.clone();
    if let Some(p) = &input.path {
        paths.push(p.clone());
    }
    if paths.is_empty() {
        return Err(Error::bad("missing required field 'paths'"));
    }
    Ok(paths
        .into_iter()
        .map(|p| p.trim_start_matches('/').to_string())
        .collect())
}

async fn capabilities_for(
    core: &Core,
    policies: &[String],
    paths: Vec<String>,
) -> Result<Response> {
    let acl = core.policies.acl(policies).await?;
    let mut data = Map::new();
    let mut all: Vec<&'static str> = Vec::new();
    for p in &paths {
        let names = acl.capability_names(p);
        for n in &names {
            if !all.contains(n) {
                all.push(n);
            }
        }
        data.insert(p.clone(), json!(names));
    }
    if paths.len() == 1 {
        data.insert("capabilities".into(), data[&paths[0]].clone());
    } else {
        all.sort();
        data.insert("capabilities".into(), json!(all));
    }
    Ok(legacy(data))
}

fn health_status(q: &Map<String, Value>, key: &str, default: u16) -> Result<u16> {
    match q.get(key).and_then(Value::as_str) {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<u16>()
            .ok()
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| Error::bad(format!("invalid {key}: must be an HTTP status code"))),
    }
}

async fn rekey_status_response(core: &Core) -> Result<Response> {
    let (nonce, started, n, t, progress, required) = core.rekey_status().await?;
    Ok(raw_json(json!({
        "nonce": nonce, "started": started, "t": t, "n": n, "progress": progress, "required": required,
        "pgp_fingerprints": null, "backup": false, "verification_required": false, "verification_nonce": "",
    })))
}

/// The declaration of `sys/`.
pub fn backend(weak: Weak<Core>) -> Backend {
    macro_rules! with_core {
        (|$core:ident, $ctx:ident $(, $input:ident : $ty:ty)?| $body:expr) => {{
            let w = weak.clone();
            move |$ctx: Ctx $(, $input: $ty)?| {
                let w = w.clone();
                async move {
                    #[allow(unused_variables)]
                    let $core = core(&w)?;
                    #[allow(unused_variables)]
                    let $ctx = $ctx;
                    $body
                }
            }
        }};
    }
    let seal_status =
        with_core!(|core, ctx| Ok(raw_json(seal_status_json(&core.seal_status().await?))));
    let health = with_core!(|core, ctx| {
        let q = &ctx.request.data;
        let status = core.seal_status().await?;
        let code = if !status.initialized {
            health_status(q, "uninitcode", 501)?
        } else if status.sealed {
            health_status(q, "sealedcode", 503)?
        } else {
            health_status(q, "activecode", 200)?
        };
        let mut resp = raw_json(json!({
            "initialized": status.initialized,
            "sealed": status.sealed,
            "standby": false,
            "performance_standby": false,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": core.clock.now().timestamp(),
            "version": crate::VERSION,
            "enterprise": false,
            "cluster_name": "coffer",
            "cluster_id": "",
        }));
        resp.status = Some(code);
        Ok(resp)
    });
    let rekey_status = with_core!(|core, ctx| rekey_status_response(&core).await);
    let list_policies = with_core!(|core, ctx| {
        let names = core.policies.list().await?;
        let mut data = Map::new();
        data.insert("policies".into(), json!(names));
        data.insert("keys".into(), json!(names));
        Ok(legacy(data))
    });
    let write_policy = with_core!(|core, ctx, input: PolicyInput| {
        let text = input
            .policy
            .or(input.rules)
            .ok_or_else(|| Error::bad("'policy' parameter not supplied or empty"))?;
        if text.trim().is_empty() {
            return Err(Error::bad("'policy' parameter not supplied or empty"));
        }
        core.policies.put(ctx.param("name"), &text).await?;
        Ok(Response::empty())
    });
    let delete_policy = with_core!(|core, ctx| {
        core.policies.delete(ctx.param("name")).await?;
        Ok(Response::empty())
    });

    let paths = vec![
        PathSpec::new("init")
            .unauthenticated()
            .op(Operation::Read, "Is the server initialized?", with_core!(|core, ctx| Ok(raw_json(json!({"initialized": core.seal_config().await?.is_some()})))))
            .typed_ops(&[Operation::Update, Operation::Create], "Initialize a new server.", with_core!(|core, ctx, input: InitInput| {
                if input.pgp_keys.as_ref().is_some_and(|k| !k.is_empty()) || input.root_token_pgp_key.as_ref().is_some_and(|k| !k.is_empty()) {
                    return Err(Error::bad("PGP encryption of unseal keys is not supported yet"));
                }
                if input.recovery_shares.unwrap_or(0) > 0 || input.recovery_threshold.unwrap_or(0) > 0 || input.stored_shares.unwrap_or(0) > 0 {
                    return Err(Error::bad("recovery and stored shares apply to auto-unseal, which is not configured"));
                }
                let shares = input.secret_shares.ok_or_else(|| Error::bad("missing required field 'secret_shares'"))? as usize;
                let threshold = input.secret_threshold.ok_or_else(|| Error::bad("missing required field 'secret_threshold'"))? as usize;
                let result = core.init(shares, threshold).await?;
                let b64 = base64::engine::general_purpose::STANDARD;
                Ok(raw_json(json!({
                    "keys": result.keys.iter().map(|k| hex::encode(&k[..])).collect::<Vec<_>>(),
                    "keys_base64": result.keys.iter().map(|k| b64.encode(&k[..])).collect::<Vec<_>>(),
                    "root_token": result.root_token,
                })))
            }))
            .help("Initialize a new server.", "Creates the keyring and root key, splits the unseal key into shares, and returns them with the initial root token."),
        PathSpec::new("seal-status").unauthenticated().op(Operation::Read, "Seal status.", seal_status).help("Seal status and unseal progress.", ""),
        PathSpec::new("unseal")
            .unauthenticated()
            .typed_ops(&[Operation::Update, Operation::Create], "Submit an unseal key share.", with_core!(|core, ctx, input: UnsealInput| {
                if input.migrate == Some(true) {
                    return Err(Error::bad("seal migration is not supported yet"));
                }
                let reset = input.reset.unwrap_or(false);
                let key = if reset { None } else { Some(decode_key(input.key.as_deref().unwrap_or(""))?) };
                Ok(raw_json(seal_status_json(&core.unseal(key, reset).await?)))
            }))
            .help("Submit an unseal key share.", "When the threshold of shares is reached the server unseals."),
        PathSpec::new("seal")
            .sudo()
            .op(Operation::Update, "Seal the server.", with_core!(|core, ctx| {
                core.seal().await?;
                Ok(Response::empty())
            }))
            .help("Seal the server: every key is dropped from memory.", "An emergency stop."),
        PathSpec::new("health").unauthenticated().op(Operation::Read, "Health.", health).help("Health and seal state as an HTTP status code.", ""),
        PathSpec::new("leader")
            .unauthenticated()
            .op(Operation::Read, "HA leader.", with_core!(|core, ctx| Ok(raw_json(json!({
                "ha_enabled": false, "is_self": false, "active_time": "0001-01-01T00:00:00Z",
                "leader_address": "", "leader_cluster_address": "", "performance_standby": false,
                "performance_standby_last_remote_wal": 0,
            })))))
            .help("High-availability status.", ""),
        PathSpec::new("rekey/init")
            .unauthenticated()
            .op(Operation::Read, "Rekey status.", rekey_status.clone())
            .typed_ops(&[Operation::Update, Operation::Create], "Start a rekey.", {
                with_core!(|core, ctx, input: RekeyInitInput| {
                    if input.pgp_keys.as_ref().is_some_and(|k| !k.is_empty()) || input.backup == Some(true) {
                        return Err(Error::bad("PGP-encrypted and backed-up rekey shares are not supported yet"));
                    }
                    if input.require_verification == Some(true) {
                        return Err(Error::bad("rekey verification is not supported yet"));
                    }
                    let shares = input.secret_shares.ok_or_else(|| Error::bad("missing required field 'secret_shares'"))? as usize;
                    let threshold = input.secret_threshold.ok_or_else(|| Error::bad("missing required field 'secret_threshold'"))? as usize;
                    core.rekey_init(shares, threshold).await?;
                    rekey_status_response(&core).await
                })
            })
            .op(Operation::Delete, "Cancel a rekey.", with_core!(|core, ctx| {
                core.rekey_cancel().await;
                Ok(Response::empty())
            }))
            .help("Start, inspect or cancel a rekey of the unseal key shares.", ""),
        PathSpec::new("rekey/update")
            .unauthenticated()
            .typed_ops(&[Operation::Update, Operation::Create], "Submit a current unseal share for a rekey.", with_core!(|core, ctx, input: RekeyUpdateInput| {
                let key = decode_key(&input.key)?;
                match core.rekey_update(key, &input.nonce).await? {
                    RekeyProgress::Pending { progress, required, nonce, shares, threshold } => Ok(raw_json(json!({
                        "nonce": nonce, "started": true, "t": threshold, "n": shares, "progress": progress, "required": required,
                        "pgp_fingerprints": null, "backup": false, "verification_required": false, "complete": false,
                    }))),
                    RekeyProgress::Complete { keys, nonce } => {
                        let b64 = base64::engine::general_purpose::STANDARD;
                        Ok(raw_json(json!({
                            "complete": true, "nonce": nonce,
                            "keys": keys.iter().map(|k| hex::encode(&k[..])).collect::<Vec<_>>(),
                            "keys_base64": keys.iter().map(|k| b64.encode(&k[..])).collect::<Vec<_>>(),
                            "pgp_fingerprints": null, "backup": false, "verification_required": false,
                        })))
                    }
                }
            }))
            .help("Submit a current unseal key share toward a rekey.", ""),
        PathSpec::new("rotate")
            .sudo()
            .op(Operation::Update, "Rotate the barrier key.", with_core!(|core, ctx| {
                core.barrier.rotate(core.clock.now()).await?;
                Ok(Response::empty())
            }))
            .help("Add a new barrier key term; new writes use it, old entries stay readable.", ""),
        PathSpec::new("key-status")
            .op(Operation::Read, "Barrier key status.", with_core!(|core, ctx| {
                let s = core.barrier.key_status()?;
                Ok(Response::data(json!({"term": s.term, "install_time": s.install_time})))
            }))
            .help("The active barrier key term.", ""),
        PathSpec::new("mounts/?")
            .op(Operation::Read, "List secrets engines.", with_core!(|core, ctx| {
                let mut data = Map::new();
                for m in core.mounted().iter().filter(|m| !m.is_auth) {
                    data.insert(m.route_path.clone(), mount_json(&m.entry, &core));
                }
                Ok(legacy(data))
            }))
            .help("List mounted secrets engines.", ""),
        PathSpec::new("mounts/(?P<path>.+?)/tune/?")
            .op(Operation::Read, "Read mount tuning.", with_core!(|core, ctx| {
                if let Some(v) = builtin_tune(&core, ctx.param("path"), false) { return Ok(Response::data(v)); }
                let (table, pos) = find_entry(&core, ctx.param("path"), false).await?;
                Ok(Response::data(tune_json(&table[pos], &core)))
            }))
            .typed(Operation::Update, "Tune a mount.", with_core!(|core, ctx, input: TuneInput| tune_mount(&core, ctx.param("path"), input, false).await))
            .help("Tune a secrets engine's lease TTLs, description and options.", ""),
        PathSpec::new("mounts/(?P<path>.+)")
            .op(Operation::Read, "Read a mount.", with_core!(|core, ctx| {
                let (table, pos) = find_entry(&core, ctx.param("path"), false).await?;
                Ok(Response::data(mount_json(&table[pos], &core)))
            }))
            .typed_ops(&[Operation::Update, Operation::Create], "Enable a secrets engine.", with_core!(|core, ctx, input: MountInput| enable_mount(&core, ctx.param("path"), input, false).await))
            .op(Operation::Delete, "Disable a secrets engine.", with_core!(|core, ctx| disable_mount(&core, ctx.param("path"), false).await))
            .help("Enable, read or disable a secrets engine.", "Disabling deletes every entry the engine stored."),
        PathSpec::new("auth/?")
            .op(Operation::Read, "List auth methods.", with_core!(|core, ctx| {
                let mut data = Map::new();
                for m in core.mounted().iter().filter(|m| m.is_auth) {
                    data.insert(m.route_path.trim_start_matches("auth/").to_string(), mount_json(&m.entry, &core));
                }
                Ok(legacy(data))
            }))
            .help("List enabled auth methods.", ""),
        PathSpec::new("auth/(?P<path>.+?)/tune/?")
            .op(Operation::Read, "Read auth tuning.", with_core!(|core, ctx| {
                if let Some(v) = builtin_tune(&core, ctx.param("path"), true) { return Ok(Response::data(v)); }
                let (table, pos) = find_entry(&core, ctx.param("path"), true).await?;
                Ok(Response::data(tune_json(&table[pos], &core)))
            }))
            .typed(Operation::Update, "Tune an auth method.", with_core!(|core, ctx, input: TuneInput| tune_mount(&core, ctx.param("path"), input, true).await))
            .help("Tune an auth method.", ""),
        PathSpec::new("auth/(?P<path>.+)")
            .sudo()
            .typed_ops(&[Operation::Update, Operation::Create], "Enable an auth method.", with_core!(|core, ctx, input: MountInput| enable_mount(&core, ctx.param("path"), input, true).await))
            .op(Operation::Delete, "Disable an auth method.", with_core!(|core, ctx| disable_mount(&core, ctx.param("path"), true).await))
            .help("Enable or disable an auth method.", ""),
        PathSpec::new("remount/status/(?P<id>[^/]+)")
            .op(Operation::Read, "Status of a mount move.", with_core!(|core, ctx| {
                let record = ctx.view.get(&format!("remount/{}", ctx.param("id"))).await?.ok_or(Error::NotFound)?;
                let info: Value = serde_json::from_slice(&record).map_err(|e| Error::Internal(e.to_string()))?;
                let _ = core;
                Ok(Response::data(json!({"migration_id": ctx.param("id"), "migration_info": info})))
            }))
            .help("Status of a mount move.", ""),
        PathSpec::new("remount")
            .sudo()
            .typed(Operation::Update, "Move a mount.", with_core!(|core, ctx, input: RemountInput| remount(&core, input).await))
            .help("Move a secrets engine or auth method to a new path.", "Data is kept: storage is keyed by the mount's id, not its path."),
        PathSpec::new("leases/lookup(?:/(?P<prefix>.*))?")
            .sudo_for(Operation::List)
            .op(Operation::List, "List leases under a prefix.", with_core!(|core, ctx| {
                let prefix = ctx.param("prefix").trim_start_matches('/').to_string();
                if prefix.contains("..") {
                    return Err(Error::bad("invalid prefix"));
                }
                Response::list(core.leases.store.view.list(&format!("id/{prefix}")).await?)
            }))
            .typed(Operation::Update, "Look up a lease.", with_core!(|core, ctx, input: LeaseInput| {
                let id = lease_id_of(&ctx, &input)?;
                Ok(Response::data(core.leases.lookup(&id).await?))
            }))
            .help("Look up a lease, or list lease ids under a prefix.", ""),
        PathSpec::new("leases/renew(?:/(?P<url_lease_id>.+))?")
            .typed(Operation::Update, "Renew a lease.", with_core!(|core, ctx, input: LeaseInput| renew_lease(&core, &ctx, &input).await))
            .help("Renew a lease by an increment, clamped to its maximum TTL.", ""),
        PathSpec::new("renew(?:/(?P<url_lease_id>.+))?")
            .typed(Operation::Update, "Renew a lease (legacy path).", with_core!(|core, ctx, input: LeaseInput| renew_lease(&core, &ctx, &input).await))
            .help("Renew a lease (legacy path).", ""),
        PathSpec::new("leases/revoke-prefix/(?P<prefix>.+)")
            .sudo()
            .op(Operation::Update, "Revoke every lease under a prefix.", with_core!(|core, ctx| revoke_prefix(&core, &ctx, false).await))
            .help("Revoke every lease whose id starts with the prefix.", ""),
        PathSpec::new("revoke-prefix/(?P<prefix>.+)")
            .sudo()
            .op(Operation::Update, "Revoke every lease under a prefix (legacy path).", with_core!(|core, ctx| revoke_prefix(&core, &ctx, false).await))
            .help("Revoke every lease under a prefix (legacy path).", ""),
        PathSpec::new("leases/revoke-force/(?P<prefix>.+)")
            .sudo()
            .op(Operation::Update, "Remove leases under a prefix even if the engine cannot revoke them.", with_core!(|core, ctx| revoke_prefix(&core, &ctx, true).await))
            .help("Remove leases under a prefix, ignoring engine revocation errors.", "Use only when the secrets were cleaned up by other means."),
        PathSpec::new("revoke-force/(?P<prefix>.+)")
            .sudo()
            .op(Operation::Update, "Force-revoke (legacy path).", with_core!(|core, ctx| revoke_prefix(&core, &ctx, true).await))
            .help("Force-revoke leases under a prefix (legacy path).", ""),
        PathSpec::new("leases/revoke(?:/(?P<url_lease_id>.+))?")
            .typed(Operation::Update, "Revoke a lease.", with_core!(|core, ctx, input: LeaseInput| revoke_lease(&core, &ctx, &input, false).await))
            .help("Revoke a lease (sync by default).", ""),
        PathSpec::new("revoke(?:/(?P<url_lease_id>.+))?")
            .typed(Operation::Update, "Revoke a lease (legacy path).", with_core!(|core, ctx, input: LeaseInput| revoke_lease(&core, &ctx, &input, false).await))
            .help("Revoke a lease (legacy path).", ""),
        PathSpec::new("leases/tidy")
            .op(Operation::Update, "Tidy the lease index.", with_core!(|core, ctx| {
                let removed = core.leases.tidy().await?;
                Ok(Response::data(json!({"removed_entries": removed})).warn("tidy of the lease index finished"))
            }))
            .help("Remove index entries that point at missing leases, and leases of missing tokens.", ""),
        PathSpec::new("leases/count")
            .op(Operation::Read, "Count leases.", with_core!(|core, ctx| {
                let kind = ctx.request.data.get("type").and_then(Value::as_str).unwrap_or("all").to_string();
                let irrevocable = match kind.as_str() {
                    "irrevocable" => true,
                    "all" | "" => false,
                    other => return Err(Error::bad(format!("invalid type \"{other}\": use irrevocable or all"))),
                };
                let (total, counts, _) = core.leases.counts(irrevocable).await?;
                Ok(Response::data(json!({"lease_count": total, "counts": counts})))
            }))
            .help("Count leases, optionally only irrevocable ones.", ""),
        PathSpec::new("leases/?")
            .op(Operation::Read, "List irrevocable leases.", with_core!(|core, ctx| {
                match ctx.request.data.get("type").and_then(Value::as_str) {
                    Some("irrevocable") => {}
                    _ => return Err(Error::bad("only type=irrevocable listing is supported; use LIST sys/leases/lookup/<prefix> for the rest")),
                }
                let (total, _, leases) = core.leases.counts(true).await?;
                Ok(Response::data(json!({"lease_count": total, "leases": leases})))
            }))
            .help("List leases that failed to revoke.", ""),
        PathSpec::new("wrapping/unwrap")
            .unauthenticated()
            .typed(Operation::Update, "Unwrap a wrapped response.", with_core!(|core, ctx, input: WrapTokenInput| core.wrapping.unwrap(&wrapping_token(&ctx, &input)?).await))
            .help("Return a wrapped response once; the wrapping token is revoked.", "Pass the wrapping token as the request token or as `token`."),
        PathSpec::new("wrapping/lookup")
            .unauthenticated()
            .typed(Operation::Update, "Look up a wrapping token.", with_core!(|core, ctx, input: WrapTokenInput| core.wrapping.wrap_lookup(&wrapping_token(&ctx, &input)?).await))
            .op(Operation::Read, "Look up the request's wrapping token.", with_core!(|core, ctx| core.wrapping.wrap_lookup(&wrapping_token(&ctx, &WrapTokenInput { token: None })?).await))
            .help("Creation path, time and TTL of a wrapping token.", ""),
        PathSpec::new("wrapping/rewrap")
            .unauthenticated()
            .typed(Operation::Update, "Rewrap a wrapped response.", with_core!(|core, ctx, input: WrapTokenInput| core.wrapping.rewrap(&wrapping_token(&ctx, &input)?).await))
            .help("Move a wrapped response to a new wrapping token.", ""),
        PathSpec::new("wrapping/wrap")
            .op(Operation::Update, "Wrap arbitrary data.", with_core!(|core, ctx| {
                if ctx.request.wrap_ttl.is_none() {
                    return Err(Error::bad("wrapping requires the X-Vault-Wrap-TTL header"));
                }
                if ctx.request.data.is_empty() {
                    return Err(Error::bad("no data provided to wrap"));
                }
                let _ = core;
                Ok(Response::data(Value::Object(ctx.request.data.clone())))
            }))
            .help("Wrap the request's data in a single-use token (needs X-Vault-Wrap-TTL).", ""),
        PathSpec::new("policy/?").op(Operation::Read, "List policies.", list_policies.clone()).op(Operation::List, "List policies.", list_policies).help("List ACL policies.", ""),
        PathSpec::new("policy/(?P<name>.+)")
            .op(Operation::Read, "Read a policy.", with_core!(|core, ctx| {
                let name = ctx.param("name").to_lowercase();
                if name == "root" {
                    let mut data = Map::new();
                    data.insert("name".into(), json!("root"));
                    data.insert("rules".into(), json!(""));
                    return Ok(legacy(data));
                }
                let p = core.policies.get(&name).await?.ok_or(Error::NotFound)?;
                let mut data = Map::new();
                data.insert("name".into(), json!(name));
                data.insert("rules".into(), json!(p.1));
                Ok(legacy(data))
            }))
            .typed_ops(&[Operation::Update, Operation::Create], "Write a policy.", write_policy.clone())
            .op(Operation::Delete, "Delete a policy.", delete_policy.clone())
            .help("Read, write or delete an ACL policy (legacy path).", ""),
        PathSpec::new("policies/acl/?")
            .op(Operation::List, "List ACL policies.", with_core!(|core, ctx| Response::list(core.policies.list().await?)))
            .help("List ACL policies.", ""),
        PathSpec::new("policies/acl/(?P<name>.+)")
            .op(Operation::Read, "Read an ACL policy.", with_core!(|core, ctx| {
                let name = ctx.param("name").to_lowercase();
                if name == "root" {
                    return Ok(Response::data(json!({"name": "root", "policy": ""})));
                }
                let p = core.policies.get(&name).await?.ok_or(Error::NotFound)?;
                Ok(Response::data(json!({"name": name, "policy": p.1})))
            }))
            .typed_ops(&[Operation::Update, Operation::Create], "Write an ACL policy.", write_policy)
            .op(Operation::Delete, "Delete an ACL policy.", delete_policy)
            .help("Read, write or delete an ACL policy.", "Policies are HCL or JSON."),
        PathSpec::new("capabilities-self")
            .typed(Operation::Update, "Capabilities of the calling token.", with_core!(|core, ctx, input: CapabilitiesInput| {
                let caller = ctx.request.caller.clone().ok_or(Error::PermissionDenied)?;
                capabilities_for(&core, &caller.policies, requested_paths(&input)?).await
            }))
            .help("Capabilities of the calling token on paths.", ""),
        PathSpec::new("capabilities-accessor")
            .typed(Operation::Update, "Capabilities of a token by accessor.", with_core!(|core, ctx, input: CapabilitiesInput| {
                let accessor = input.accessor.clone().ok_or_else(|| Error::bad("missing required field 'accessor'"))?;
                let entry = core.tokens.lookup_accessor(&accessor).await?.ok_or_else(|| Error::bad("invalid accessor"))?;
                capabilities_for(&core, &entry.policies, requested_paths(&input)?).await
            }))
            .help("Capabilities of a token, named by accessor, on paths.", ""),
        PathSpec::new("capabilities")
            .typed(Operation::Update, "Capabilities of a token.", with_core!(|core, ctx, input: CapabilitiesInput| {
                let token = input.token.clone().ok_or_else(|| Error::bad("missing required field 'token'"))?;
                let entry = core.tokens.lookup(&token).await?.ok_or_else(|| Error::bad("invalid token"))?;
                capabilities_for(&core, &entry.policies, requested_paths(&input)?).await
            }))
            .help("Capabilities of a token on paths.", ""),
        PathSpec::new("internal/ui/mounts/(?P<path>.+)")
            .unauthenticated()
            .op(Operation::Read, "Mount serving a path.", with_core!(|core, ctx| {
                if ctx.request.caller.is_none() {
                    return Err(Error::PermissionDenied);
                }
                let path = ctx.param("path").trim_start_matches('/').to_string();
                let table = core.router.table();
                let (m, _) = table.resolve(&path).ok_or_else(|| Error::bad(format!("no mount matches path \"{path}\"")))?;
                let mut v = mount_json(&m.entry, &core);
                v["path"] = json!(m.route_path);
                Ok(Response::data(v))
            }))
            .help("The mount serving a path (used by `kv` clients to detect v1/v2).", ""),
        PathSpec::new("internal/ui/mounts/?")
            .unauthenticated()
            .op(Operation::Read, "Visible mounts.", with_core!(|core, ctx| {
                if ctx.request.caller.is_none() {
                    return Err(Error::PermissionDenied);
                }
                let mut secret = Map::new();
                let mut auth = Map::new();
                for m in core.mounted() {
                    if m.is_auth {
                        auth.insert(m.route_path.trim_start_matches("auth/").to_string(), mount_json(&m.entry, &core));
                    } else {
                        secret.insert(m.route_path.clone(), mount_json(&m.entry, &core));
                    }
                }
                Ok(Response::data(json!({"secret": secret, "auth": auth})))
            }))
            .help("Mounts visible to the caller.", ""),
        PathSpec::new("internal/specs/openapi")
            .unauthenticated()
            .op(Operation::Read, "OpenAPI document.", with_core!(|core, ctx| Ok(raw_json(crate::openapi::document(&core)))))
            .help("The OpenAPI document, generated from every engine's declarations.", ""),
        PathSpec::new("metrics")
            .op(Operation::Read, "Metrics.", with_core!(|core, ctx| {
                match ctx.request.data.get("format").and_then(Value::as_str) {
                    Some("prometheus") => Ok(Response {
                        raw: Some(RawBody { content_type: "text/plain; version=0.0.4".into(), body: core.metrics.prometheus().into_bytes() }),
                        ..Response::default()
                    }),
                    None | Some("") | Some("json") => Ok(raw_json(core.metrics.json(core.clock.now()))),
                    Some(other) => Err(Error::bad(format!("unsupported metrics format \"{other}\": use prometheus or json"))),
                }
            }))
            .help("Request metrics, as Prometheus text (`?format=prometheus`) or JSON.", ""),
    ];
    Backend::new(
        "system",
        "System endpoints used for control, policy and debugging.",
        paths,
    )
}
