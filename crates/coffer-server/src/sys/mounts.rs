//! `sys/mounts`, `sys/auth` and `sys/remount`: enabling, tuning, moving and disabling engines.

use super::*;
use crate::core::Core;
use crate::mounts::{self, MountConfig, MountEntry, AUTH_PATH, MOUNTS_PATH};
use coffer_sdk::catalog::EngineClass;
use coffer_sdk::engine::StatePath;
use coffer_sdk::framework::de;
use coffer_sdk::{Engine, Error, Operation, Response, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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
struct RemountInput {
    from: String,
    to: String,
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

pub(super) fn mount_json(entry: &MountEntry, core: &Core) -> Value {
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
            return Err(core.router.unknown_type(&kind, true));
        }
    } else if !core.router.knows(&kind, false) {
        return Err(core.router.unknown_type(&kind, false));
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
        former_paths: Vec::new(),
    };
    // Build the engine first so a bad option fails before anything is written.
    core.router
        .mount(&core.barrier, entry.clone(), is_auth, core.limits)?;
    table.push(entry);
    mounts::write_table(&core.barrier, table_path, &table).await?;
    core.reload_mounts().await?;
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
    // Side effects the engine left half-done are undone first, while it can still undo them.
    let uuid = table[pos].uuid.clone();
    let pending = core.rollbacks.pass(&core.router, Some(&uuid)).await?;
    if pending > 0 {
        return Err(Error::bad(format!(
            "{pending} rollback entries of this mount could not be rolled back yet; the mount stays until they are (they are retried)"
        )));
    }
    core.leases.revoke_prefix(&lease_prefix, false).await?;
    let entry = table.remove(pos);
    mounts::write_table(&core.barrier, table_path, &table).await?;
    core.reload_mounts().await?;
    core.scheduler.forget_mount(&uuid).await?;
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

/// A mount's tuning, built-in mounts included.
async fn read_tune(core: &Core, path: &str, is_auth: bool) -> Result<Response> {
    if let Some(v) = builtin_tune(core, path, is_auth) {
        return Ok(Response::data(v));
    }
    let (table, pos) = find_entry(core, path, is_auth).await?;
    Ok(Response::data(tune_json(&table[pos], core)))
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
    core.reload_mounts().await?;
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
    // Leases issued before the move keep ids under the old path; the lease manager looks for
    // them there when this mount is revoked by path or disabled.
    if !table[pos].former_paths.contains(&source) {
        table[pos].former_paths.push(source.clone());
    }
    // Storage is keyed by the mount's uuid, so moving is a mount-table update only.
    table[pos].path = to.clone();
    mounts::write_table(
        &core.barrier,
        if from_auth { AUTH_PATH } else { MOUNTS_PATH },
        &table,
    )
    .await?;
    core.reload_mounts().await?;
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

/// `sys/plugins/catalog`, Vault's shape: names by class, plus details.
fn plugin_catalog(core: &Core) -> Value {
    let catalog = core.router.catalog();
    let mut out = Map::new();
    let mut detailed = Vec::new();
    for class in [EngineClass::Auth, EngineClass::Secrets] {
        out.insert(
            class.vault_name().to_string(),
            json!(catalog.mountable(class)),
        );
    }
    out.insert("database".into(), json!([]));
    for entry in catalog.entries().filter(|e| e.user_mountable) {
        detailed.push(json!({
            "name": entry.name,
            "type": entry.class.vault_name(),
            "builtin": true,
            "deprecation_status": "supported",
            "version": format!("v{}+builtin.coffer", crate::VERSION),
            "description": entry.description,
        }));
    }
    out.insert("detailed".into(), Value::Array(detailed));
    Value::Object(out)
}

fn plugin_class(name: &str) -> Result<EngineClass> {
    match name {
        "auth" => Ok(EngineClass::Auth),
        "secret" => Ok(EngineClass::Secrets),
        _ => Err(Error::bad("plugin type must be auth or secret")),
    }
}

/// The paths of this concern.
pub(super) fn paths(e: &Engine<Core>) -> Vec<StatePath<Core>> {
    vec![
        e.path("plugins/catalog/?")
            .op(Operation::Read, "Engine kinds this server can mount.", |core, _ctx| async move { Ok(Response::data(plugin_catalog(&core))) })
            .help("Every engine kind built into this server, by class.", "Coffer runs no external plugins: every kind is built in."),
        e.path("plugins/catalog/(?P<type>[^/]+)/?")
            .op(Operation::List, "Engine kinds of one class.", |core, ctx| async move {
                let class = plugin_class(ctx.param("type"))?;
                Response::list(core.router.catalog().mountable(class).into_iter().map(String::from).collect())
            })
            .help("Engine kinds of one class (auth or secret).", ""),
        e.path("plugins/catalog/(?P<type>[^/]+)/(?P<name>[^/]+)")
            .op(Operation::Read, "One engine kind.", |core, ctx| async move {
                let class = plugin_class(ctx.param("type"))?;
                let entry = core.router.catalog().get(class, ctx.param("name")).filter(|e| e.user_mountable).ok_or(Error::NotFound)?;
                Ok(Response::data(json!({
                    "name": entry.name, "type": class.vault_name(), "builtin": true,
                    "command": "", "args": [], "sha256": "", "version": format!("v{}+builtin.coffer", crate::VERSION),
                    "description": entry.description,
                })))
            })
            .op(Operation::Update, "Register an external plugin (not supported).", |_core, _ctx| async move {
                Err(Error::bad("Coffer runs no external plugins: every engine kind is built in; see sys/plugins/catalog"))
            })
            .sudo()
            .help("One engine kind; registering external plugins is not supported.", ""),
        e.path("mounts/?")
            .op(
                Operation::Read,
                "List secrets engines.",
                |core, _ctx| async move {
                    {
                        let mut data = Map::new();
                        for m in core.mounted().iter().filter(|m| !m.is_auth) {
                            data.insert(m.route_path.clone(), mount_json(&m.entry, &core));
                        }
                        Ok(legacy(data))
                    }
                },
            )
            .help("List mounted secrets engines.", ""),
        e.path("mounts/(?P<path>.+?)/tune/?")
            .op(
                Operation::Read,
                "Read mount tuning.",
                |core, ctx| async move { read_tune(&core, ctx.param("path"), false).await },
            )
            .typed(
                Operation::Update,
                "Tune a mount.",
                |core, ctx, input: TuneInput| async move {
                    tune_mount(&core, ctx.param("path"), input, false).await
                },
            )
            .help(
                "Tune a secrets engine's lease TTLs, description and options.",
                "",
            ),
        e.path("mounts/(?P<path>.+)")
            .op(Operation::Read, "Read a mount.", |core, ctx| async move {
                {
                    let (table, pos) = find_entry(&core, ctx.param("path"), false).await?;
                    Ok(Response::data(mount_json(&table[pos], &core)))
                }
            })
            .typed_ops(
                &[Operation::Update, Operation::Create],
                "Enable a secrets engine.",
                |core, ctx, input: MountInput| async move {
                    enable_mount(&core, ctx.param("path"), input, false).await
                },
            )
            .op(
                Operation::Delete,
                "Disable a secrets engine.",
                |core, ctx| async move { disable_mount(&core, ctx.param("path"), false).await },
            )
            .help(
                "Enable, read or disable a secrets engine.",
                "Disabling deletes every entry the engine stored.",
            ),
        e.path("auth/?")
            .op(
                Operation::Read,
                "List auth methods.",
                |core, _ctx| async move {
                    {
                        let mut data = Map::new();
                        for m in core.mounted().iter().filter(|m| m.is_auth) {
                            data.insert(
                                m.route_path.trim_start_matches("auth/").to_string(),
                                mount_json(&m.entry, &core),
                            );
                        }
                        Ok(legacy(data))
                    }
                },
            )
            .help("List enabled auth methods.", ""),
        e.path("auth/(?P<path>.+?)/tune/?")
            .op(
                Operation::Read,
                "Read auth tuning.",
                |core, ctx| async move { read_tune(&core, ctx.param("path"), true).await },
            )
            .typed(
                Operation::Update,
                "Tune an auth method.",
                |core, ctx, input: TuneInput| async move {
                    tune_mount(&core, ctx.param("path"), input, true).await
                },
            )
            .help("Tune an auth method.", ""),
        e.path("auth/(?P<path>.+)")
            .sudo()
            .typed_ops(
                &[Operation::Update, Operation::Create],
                "Enable an auth method.",
                |core, ctx, input: MountInput| async move {
                    enable_mount(&core, ctx.param("path"), input, true).await
                },
            )
            .op(
                Operation::Delete,
                "Disable an auth method.",
                |core, ctx| async move { disable_mount(&core, ctx.param("path"), true).await },
            )
            .help("Enable or disable an auth method.", ""),
        e.path("remount/status/(?P<id>[^/]+)")
            .op(
                Operation::Read,
                "Status of a mount move.",
                |core, ctx| async move {
                    {
                        let record = ctx
                            .view
                            .get(&format!("remount/{}", ctx.param("id")))
                            .await?
                            .ok_or(Error::NotFound)?;
                        let info: Value = serde_json::from_slice(&record)
                            .map_err(|e| Error::Internal(e.to_string()))?;
                        let _ = core;
                        Ok(Response::data(
                            json!({"migration_id": ctx.param("id"), "migration_info": info}),
                        ))
                    }
                },
            )
            .help("Status of a mount move.", ""),
        e.path("remount")
            .sudo()
            .typed(
                Operation::Update,
                "Move a mount.",
                |core, _ctx, input: RemountInput| async move { remount(&core, input).await },
            )
            .help(
                "Move a secrets engine or auth method to a new path.",
                "Data is kept: storage is keyed by the mount's id, not its path.",
            ),
    ]
}
