//! KV version 2: versioned secrets with metadata, following Vault's "KV secrets engine -
//! version 2 (API)" field for field.
//!
//! | path                | operations                          |
//! |---------------------|-------------------------------------|
//! | `config`            | read, write                         |
//! | `data/<path>`       | read (`?version=`), write, patch, delete (latest version) |
//! | `delete/<path>`     | write `{"versions": [..]}`: soft delete   |
//! | `undelete/<path>`   | write `{"versions": [..]}`          |
//! | `destroy/<path>`    | write `{"versions": [..]}`: remove data for good |
//! | `metadata/<path>`   | read, write, patch, delete, list    |
//! | `subkeys/<path>`    | read (`?version=&depth=`)           |
//!
//! Storage layout and crash consistency: see `store.rs`. Reads take two storage gets (metadata,
//! then the one version) and no lock; writes hold a per-path lock and land as one batch.

use crate::json::{merge_patch, subkeys};
use crate::locks::PathLocks;
use crate::paths::{folder_prefix, secret_path};
use crate::store::{
    meta_folder, meta_key, version_key, CustomMetadata, KeyMetadata, MountConfig, CONFIG_KEY,
};
use chrono::{DateTime, Utc};
use coffer_sdk::cache::Remembered;
use coffer_sdk::framework::{de, decode_input};
use coffer_sdk::view::{self, ViewOp};
use coffer_sdk::{Backend, Ctx, Engine, Error, Operation, Response, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

const HELP: &str =
    "The KV secrets engine (version 2) stores versioned JSON objects with metadata: \
check-and-set, soft delete, undelete, destroy and automatic pruning of old versions.";

/// Vault's limits on `custom_metadata`.
const MAX_CUSTOM_METADATA_KEYS: usize = 64;
const MAX_CUSTOM_METADATA_KEY_BYTES: usize = 128;
const MAX_CUSTOM_METADATA_VALUE_BYTES: usize = 512;
const CUSTOM_METADATA_ERROR_PREFIX: &str = "custom_metadata validation failed";

const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";
const CAS_REQUIRED: &str = "check-and-set parameter required for this call";
const CAS_REQUIRED_BY_MOUNT_WARNING: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

/// The KV v2 engine's state.
struct KvV2 {
    /// Every handler that rewrites a key's metadata shares one set of per-path locks.
    locks: PathLocks,
    /// The mount's `config`, read once instead of on every write. Forgotten by `write_config`
    /// (its only writer) and on init and cleanup.
    config: Remembered<(), Arc<MountConfig>>,
}

impl KvV2 {
    /// The mount's settings, remembered or read.
    async fn config(&self, view: &dyn coffer_sdk::View) -> Result<Arc<MountConfig>> {
        let config = self
            .config
            .get_or_load(&(), || async {
                Ok::<_, Error>(Some(Arc::new(MountConfig::load(view).await?)))
            })
            .await?;
        Ok(config.unwrap_or_default())
    }
}

/// The KV v2 engine's path declarations.
pub fn backend() -> Backend {
    let e = Engine::new(
        "kv",
        HELP,
        Arc::new(KvV2 {
            locks: PathLocks::new(),
            config: Remembered::new(1),
        }),
    );

    let config = e
        .path("config")
        .help("Configures settings for the KV store.", CONFIG_DESCRIPTION)
        .op(
            Operation::Read,
            "Read the mount's KV v2 settings.",
            |_, ctx| read_config(ctx),
        )
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Change the mount's KV v2 settings.",
            write_config,
        );

    let data = e
        .path("data/(?P<path>.+)")
        .help(
            "Write, patch, read and delete versioned secret data.",
            DATA_DESCRIPTION,
        )
        .existence(metadata_exists)
        .op(
            Operation::Read,
            "Read a version of the secret (the latest unless ?version= is given).",
            read_data,
        )
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Write a new version of the secret.",
            write_data,
        )
        .typed(
            Operation::Patch,
            "Merge-patch the latest version into a new version.",
            patch_data,
        )
        .op(
            Operation::Delete,
            "Soft-delete the latest version.",
            delete_latest,
        );

    let version_ops = |pattern: &str, synopsis: &'static str, handler: VersionsHandler| {
        e.path(pattern).help(synopsis, VERSIONS_DESCRIPTION).typed(
            Operation::Update,
            synopsis,
            move |state, ctx, input| apply_to_versions(state, ctx, input, handler),
        )
    };
    let delete = version_ops(
        "delete/(?P<path>.+)",
        "Soft-delete the given versions.",
        VersionsHandler::Delete,
    );
    let undelete = version_ops(
        "undelete/(?P<path>.+)",
        "Undo the soft deletion of the given versions.",
        VersionsHandler::Undelete,
    );
    let destroy = version_ops(
        "destroy/(?P<path>.+)",
        "Permanently remove the data of the given versions.",
        VersionsHandler::Destroy,
    );

    let metadata = e
        .path("metadata/(?P<path>.*)")
        .help(
            "Read, configure, list and delete secrets with all their versions.",
            METADATA_DESCRIPTION,
        )
        .existence(metadata_exists)
        .op(
            Operation::Read,
            "Read the secret's metadata and version history.",
            |_, ctx| read_metadata(ctx),
        )
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Configure the secret's metadata.",
            write_metadata,
        )
        .typed(
            Operation::Patch,
            "Merge-patch the secret's metadata.",
            patch_metadata,
        )
        .op(
            Operation::Delete,
            "Delete the secret, all its versions and its metadata.",
            delete_metadata,
        )
        .op(
            Operation::List,
            "List the secrets and folders under this folder.",
            |_, ctx| list_metadata(ctx),
        );

    let subkeys = e
        .path("subkeys/(?P<path>.+)")
        .help(
            "Read the structure of a secret with its values removed.",
            SUBKEYS_DESCRIPTION,
        )
        .op(
            Operation::Read,
            "Read the secret's keys, values replaced by null.",
            read_subkeys,
        );

    e.paths(vec![
        config, data, delete, undelete, destroy, metadata, subkeys,
    ])
    // What is remembered of storage is dropped whenever storage may have changed under it.
    .on_init(|state, _ctx| async move {
        state.config.forget();
        state.locks.forget_metadata();
        Ok(())
    })
    .on_cleanup(|state, _ctx| async move {
        state.config.forget();
        state.locks.forget_metadata();
        Ok(())
    })
    .build()
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// Body of `config` writes.
#[derive(Debug, Deserialize, JsonSchema)]
struct ConfigInput {
    /// Versions kept per key; 0 means the default of 10.
    #[serde(default, deserialize_with = "de::opt_u64")]
    max_versions: Option<u64>,
    /// Require `options.cas` on every write to this mount.
    #[serde(default, deserialize_with = "de::opt_bool")]
    cas_required: Option<bool>,
    /// New versions read as deleted this long after creation; 0 means never.
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    delete_version_after: Option<Duration>,
}

/// Body of `data/<path>` writes and patches.
#[derive(Debug, Deserialize, JsonSchema)]
struct DataInput {
    /// The secret (write) or the merge-patch to apply to the latest version (patch).
    #[serde(default)]
    data: Option<Map<String, Value>>,
    /// Write options.
    #[serde(default)]
    options: Option<WriteOptions>,
}

/// `options` of a data write.
#[derive(Debug, Default, Deserialize, JsonSchema)]
struct WriteOptions {
    /// Check-and-set: 0 writes only if the key has no versions, N only if N is the current one.
    #[serde(default, deserialize_with = "de::opt_u64")]
    cas: Option<u64>,
}

/// Body of `delete/`, `undelete/` and `destroy/` writes.
#[derive(Debug, Deserialize, JsonSchema)]
struct VersionsInput {
    /// Version numbers, as a list or a comma-separated string.
    #[serde(default, deserialize_with = "version_numbers")]
    #[schemars(with = "Vec<u64>")]
    versions: Vec<u64>,
}

/// Body of `metadata/<path>` writes and patches.
#[derive(Debug, Deserialize, JsonSchema)]
struct MetadataInput {
    /// Versions kept for this key; 0 defers to the mount.
    #[serde(default, deserialize_with = "de::opt_u64")]
    max_versions: Option<u64>,
    /// Require `options.cas` on writes to this key.
    #[serde(default, deserialize_with = "de::opt_bool")]
    cas_required: Option<bool>,
    /// New versions of this key read as deleted this long after creation; 0 defers to the mount.
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    delete_version_after: Option<Duration>,
    /// Version-independent string annotations (at most 64; keys ≤ 128 bytes, values ≤ 512).
    #[serde(default)]
    custom_metadata: Option<Map<String, Value>>,
}

/// Query parameters of reads on `data/` and `subkeys/`.
#[derive(Debug, Default, Deserialize)]
struct ReadQuery {
    #[serde(default, deserialize_with = "de::opt_u64")]
    version: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    depth: Option<u64>,
}

/// `[1, "2"]`, `"1,2"` or `3`, as Vault's comma-int-slice fields accept.
fn version_numbers<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Num(u64),
        Str(String),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Versions {
        List(Vec<Item>),
        One(Item),
    }
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| serde::de::Error::custom("expected version numbers"))
    };
    let items = match Option::<Versions>::deserialize(d)? {
        None => return Ok(Vec::new()),
        Some(Versions::List(items)) => items,
        Some(Versions::One(item)) => vec![item],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Num(n) => out.push(n),
            Item::Str(s) => {
                for part in s.split(',').filter(|p| !p.trim().is_empty()) {
                    out.push(parse(part)?);
                }
            }
        }
    }
    Ok(out)
}

fn max_versions_u32(value: u64) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::bad("max_versions must fit in 32 bits"))
}

// ---------------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------------

async fn read_config(ctx: Ctx) -> Result<Response> {
    Ok(Response::data(
        MountConfig::load(ctx.view.as_ref()).await?.to_response(),
    ))
}

async fn write_config(state: Arc<KvV2>, ctx: Ctx, input: ConfigInput) -> Result<Response> {
    let mut config = MountConfig::load(ctx.view.as_ref()).await?;
    if let Some(max) = input.max_versions {
        config.max_versions = max_versions_u32(max)?;
    }
    if let Some(required) = input.cas_required {
        config.cas_required = required;
    }
    if let Some(after) = input.delete_version_after {
        config.delete_version_after = after;
    }
    view::put_json(ctx.view.as_ref(), CONFIG_KEY, &config).await?;
    state.config.forget();
    Ok(Response::empty())
}

// ---------------------------------------------------------------------------------------------
// data
// ---------------------------------------------------------------------------------------------

/// Existence check of `data/` and `metadata/` writes: the key has metadata (Vault's rule, so a
/// first write is `create` and later ones `update` for policy purposes).
async fn metadata_exists(state: Arc<KvV2>, ctx: Ctx) -> Result<bool> {
    let path = secret_path(ctx.param("path"))?;
    Ok(state
        .locks
        .metadata(ctx.view.as_ref(), path)
        .await?
        .is_some())
}

fn read_query(ctx: &mut Ctx) -> Result<ReadQuery> {
    if ctx.request.data.is_empty() {
        return Ok(ReadQuery::default());
    }
    decode_input(std::mem::take(&mut ctx.request.data))
}

/// A read of a deleted or destroyed version: 404, but with the version's metadata and the
/// content field (`data` or `subkeys`) null, exactly as Vault answers.
fn unreadable_version(content_field: &str, metadata: Value) -> Response {
    let mut data = Map::with_capacity(2);
    data.insert(content_field.to_string(), Value::Null);
    data.insert("metadata".to_string(), metadata);
    Response {
        data: Some(data),
        status: Some(404),
        ..Response::default()
    }
}

/// Where a read lands: the version's number and metadata, or why there is nothing to return.
enum VersionLookup {
    Readable {
        version: u64,
        meta: Arc<KeyMetadata>,
    },
    Unreadable(Value),
}

async fn lookup_version(
    ctx: &Ctx,
    locks: &PathLocks,
    path: &str,
    requested: Option<u64>,
) -> Result<VersionLookup> {
    let meta = locks
        .metadata(ctx.view.as_ref(), path)
        .await?
        .ok_or(Error::NotFound)?;
    let version = requested.filter(|&v| v > 0).unwrap_or(meta.current_version);
    let version_meta = meta.versions.get(&version).ok_or(Error::NotFound)?;
    if version_meta.is_readable(ctx.clock.now()) {
        Ok(VersionLookup::Readable { version, meta })
    } else {
        Ok(VersionLookup::Unreadable(
            version_meta
                .to_response(version, &meta.custom_metadata)
                .into(),
        ))
    }
}

/// A version's data as stored: the text of the JSON object its write was given.
async fn load_version_json(ctx: &Ctx, path: &str, version: u64) -> Result<Vec<u8>> {
    ctx.view
        .get(&version_key(path, version))
        .await?
        .ok_or_else(|| Error::Internal("could not find version data".to_string()))
}

async fn load_version_data(ctx: &Ctx, path: &str, version: u64) -> Result<Map<String, Value>> {
    let bytes = load_version_json(ctx, path, version).await?;
    serde_json::from_slice(&bytes).map_err(|_| corrupt_version_data())
}

fn corrupt_version_data() -> Error {
    Error::Internal("corrupt version data".to_string())
}

async fn read_data(state: Arc<KvV2>, mut ctx: Ctx) -> Result<Response> {
    let query = read_query(&mut ctx)?;
    let path = secret_path(ctx.param("path"))?;
    let (version, meta) = match lookup_version(&ctx, &state.locks, path, query.version).await? {
        VersionLookup::Readable { version, meta } => (version, meta),
        VersionLookup::Unreadable(metadata) => return Ok(unreadable_version("data", metadata)),
    };
    // The answer is written as text: the stored data is the JSON object the write stored
    // (`commit_version`), and the metadata block is rendered once per remembered metadata.
    // Parsing the data into a map only to write it out again, and building the metadata map,
    // were a sixth of a read's work in the server.
    let data = load_version_json(&ctx, path, version).await?;
    if data.first() != Some(&b'{') || data.last() != Some(&b'}') {
        return Err(corrupt_version_data());
    }
    let metadata = meta.versions[&version].rendered_response(version, &meta.custom_metadata);
    let mut body = Vec::with_capacity(data.len() + metadata.len() + 22);
    body.extend_from_slice(b"{\"data\":");
    body.extend_from_slice(&data);
    body.extend_from_slice(b",\"metadata\":");
    body.extend_from_slice(metadata);
    body.push(b'}');
    Ok(Response {
        data_json: Some(body),
        ..Response::default()
    })
}

/// Vault's check-and-set rule: a given `cas` must equal the current version (0 for a key with
/// no versions); without one, the write is refused when the mount or the key requires it.
fn check_and_set(cas: Option<u64>, config: &MountConfig, meta: &KeyMetadata) -> Result<()> {
    match cas {
        Some(cas) if cas != meta.current_version => Err(Error::Conflict(CAS_MISMATCH.to_string())),
        Some(_) => Ok(()),
        None if config.cas_required || meta.cas_required => Err(Error::bad(CAS_REQUIRED)),
        None => Ok(()),
    }
}

/// Add a version holding `data` and write it, the updated metadata and the removal of pruned
/// versions as one batch. Returns the new version's metadata block.
async fn commit_version(
    ctx: &Ctx,
    path: &str,
    mut meta: KeyMetadata,
    config: &MountConfig,
    data: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Response> {
    let (version, pruned) = meta.add_version(now, config);
    let mut ops = Vec::with_capacity(2 + pruned.len());
    ops.push(ViewOp::Put {
        key: version_key(path, version),
        value: view::to_json(data)?,
    });
    ops.push(ViewOp::Put {
        key: meta_key(path),
        value: view::to_json(&meta)?,
    });
    ops.extend(pruned.into_iter().map(|old| ViewOp::Delete {
        key: version_key(path, old),
    }));
    ctx.view.batch(ops).await?;
    Ok(Response {
        data: Some(meta.versions[&version].to_response(version, &meta.custom_metadata)),
        ..Response::default()
    })
}

async fn write_data(state: Arc<KvV2>, ctx: Ctx, input: DataInput) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    let data = input.data.ok_or_else(|| Error::bad("no data provided"))?;
    let cas = input.options.unwrap_or_default().cas;
    let config = state.config(ctx.view.as_ref()).await?;

    let guard = state.locks.lock(path).await;
    let now = ctx.clock.now();
    let meta = guard
        .metadata(ctx.view.as_ref())
        .await?
        .unwrap_or_else(|| KeyMetadata::new(now));
    check_and_set(cas, &config, &meta)?;
    commit_version(&ctx, path, meta, &config, &data, now).await
}

async fn patch_data(state: Arc<KvV2>, ctx: Ctx, input: DataInput) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    let patch = input.data.ok_or_else(|| Error::bad("no data provided"))?;
    let cas = input.options.unwrap_or_default().cas;

    let guard = state.locks.lock(path).await;
    let meta = guard
        .metadata(ctx.view.as_ref())
        .await?
        .ok_or(Error::NotFound)?;
    let config = state.config(ctx.view.as_ref()).await?;
    check_and_set(cas, &config, &meta)?;
    let current = meta.current_version;
    let current_meta = meta.versions.get(&current).ok_or(Error::NotFound)?;
    let now = ctx.clock.now();
    if !current_meta.is_readable(now) {
        // Vault answers a patch of a deleted latest version with that version's metadata.
        return Ok(Response {
            data: Some(current_meta.to_response(current, &meta.custom_metadata)),
            status: Some(404),
            ..Response::default()
        });
    }
    let mut data = load_version_data(&ctx, path, current).await?;
    merge_patch(&mut data, patch);
    commit_version(&ctx, path, meta, &config, &data, now).await
}

async fn delete_latest(state: Arc<KvV2>, ctx: Ctx) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    let guard = state.locks.lock(path).await;
    let Some(mut meta) = guard.metadata(ctx.view.as_ref()).await? else {
        return Ok(Response::empty());
    };
    let now = ctx.clock.now();
    let current = meta.current_version;
    match meta.versions.get_mut(&current) {
        Some(latest) if !latest.destroyed && !latest.is_deleted(now) => {
            latest.deletion_time = Some(now)
        }
        _ => return Ok(Response::empty()),
    }
    view::put_json(ctx.view.as_ref(), &meta_key(path), &meta).await?;
    Ok(Response::empty())
}

// ---------------------------------------------------------------------------------------------
// delete / undelete / destroy
// ---------------------------------------------------------------------------------------------

/// What `delete/`, `undelete/` or `destroy/` does to each named version.
#[derive(Debug, Clone, Copy)]
enum VersionsHandler {
    Delete,
    Undelete,
    Destroy,
}

async fn apply_to_versions(
    state: Arc<KvV2>,
    ctx: Ctx,
    input: VersionsInput,
    handler: VersionsHandler,
) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    if input.versions.is_empty() {
        return Err(Error::bad("no version number provided"));
    }
    let guard = state.locks.lock(path).await;
    let Some(mut meta) = guard.metadata(ctx.view.as_ref()).await? else {
        return Ok(Response::empty());
    };
    let now = ctx.clock.now();
    let mut ops = Vec::new();
    for version in &input.versions {
        // Unknown (never written or pruned) and destroyed versions are skipped, as in Vault.
        let Some(entry) = meta.versions.get_mut(version).filter(|v| !v.destroyed) else {
            continue;
        };
        match handler {
            VersionsHandler::Delete => {
                if !entry.is_deleted(now) {
                    entry.deletion_time = Some(now);
                }
            }
            VersionsHandler::Undelete => entry.deletion_time = None,
            VersionsHandler::Destroy => {
                entry.destroyed = true;
                ops.push(ViewOp::Delete {
                    key: version_key(path, *version),
                });
            }
        }
    }
    ops.push(ViewOp::Put {
        key: meta_key(path),
        value: view::to_json(&meta)?,
    });
    ctx.view.batch(ops).await?;
    Ok(Response::empty())
}

// ---------------------------------------------------------------------------------------------
// metadata
// ---------------------------------------------------------------------------------------------

async fn read_metadata(ctx: Ctx) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    let meta = KeyMetadata::load(ctx.view.as_ref(), path)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Response::data(meta.to_response()))
}

async fn list_metadata(ctx: Ctx) -> Result<Response> {
    let prefix = folder_prefix(ctx.param("path"))?;
    Response::list(ctx.view.list(&meta_folder(&prefix)).await?)
}

/// A `custom_metadata` value as Vault weakly decodes it: strings as they are, numbers and
/// booleans as their text. `null` is `None` (a removal in a patch).
fn custom_metadata_value(key: &str, value: Value) -> Result<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => Err(Error::bad(format!(
            "{CUSTOM_METADATA_ERROR_PREFIX}: value for key {key:?} must be a string"
        ))),
    }
}

/// Vault's limits: at most 64 pairs; keys 1..=128 bytes, values 1..=512 bytes, both printable.
/// Messages name offending keys (custom metadata is not secret) but never values.
fn validate_custom_metadata(custom: &CustomMetadata) -> Result<()> {
    if custom.len() > MAX_CUSTOM_METADATA_KEYS {
        return Err(Error::bad(format!(
            "{CUSTOM_METADATA_ERROR_PREFIX}: payload must contain at most {MAX_CUSTOM_METADATA_KEYS} keys, provided {}",
            custom.len()
        )));
    }
    let printable = |s: &str| !s.chars().any(char::is_control);
    let mut problems = Vec::new();
    for (key, value) in custom {
        if key.is_empty() || key.len() > MAX_CUSTOM_METADATA_KEY_BYTES {
            problems.push(format!(
                "length of key {key:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_BYTES}",
                key.len()
            ));
        }
        if value.is_empty() || value.len() > MAX_CUSTOM_METADATA_VALUE_BYTES {
            problems.push(format!(
                "length of value for key {key:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_BYTES}",
                value.len()
            ));
        }
        if !printable(key) {
            problems.push(format!("key {key:?} contains unprintable characters"));
        }
        if !printable(value) {
            problems.push(format!(
                "value for key {key:?} contains unprintable characters"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::bad(format!(
            "{CUSTOM_METADATA_ERROR_PREFIX}: {}",
            problems.join("; ")
        )))
    }
}

/// Settings shared by metadata writes and patches, validated before anything is stored.
struct MetadataChanges {
    max_versions: Option<u32>,
    cas_required: Option<bool>,
    delete_version_after: Option<Duration>,
    warnings: Vec<String>,
}

impl MetadataChanges {
    async fn from_input(ctx: &Ctx, input: &MetadataInput) -> Result<MetadataChanges> {
        let mut warnings = Vec::new();
        if input.cas_required == Some(false)
            && MountConfig::load(ctx.view.as_ref()).await?.cas_required
        {
            warnings.push(CAS_REQUIRED_BY_MOUNT_WARNING.to_string());
        }
        Ok(MetadataChanges {
            max_versions: input.max_versions.map(max_versions_u32).transpose()?,
            cas_required: input.cas_required,
            delete_version_after: input.delete_version_after,
            warnings,
        })
    }

    fn apply(&self, meta: &mut KeyMetadata) {
        if let Some(max) = self.max_versions {
            meta.max_versions = max;
        }
        if let Some(required) = self.cas_required {
            meta.cas_required = required;
        }
        if let Some(after) = self.delete_version_after {
            meta.delete_version_after = after;
        }
    }

    fn into_response(self) -> Response {
        Response {
            warnings: self.warnings,
            ..Response::empty()
        }
    }
}

async fn write_metadata(state: Arc<KvV2>, ctx: Ctx, input: MetadataInput) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    let nothing_to_set = input.max_versions.is_none()
        && input.cas_required.is_none()
        && input.delete_version_after.is_none()
        && input.custom_metadata.is_none();
    if nothing_to_set {
        // Vault writes nothing for an empty body, not even an empty key.
        return Ok(Response::empty());
    }
    let custom = match &input.custom_metadata {
        None => None,
        Some(raw) => {
            let mut custom = CustomMetadata::new();
            for (key, value) in raw {
                // A null value stores as "" (Vault's weak decoding), which validation refuses.
                let value = custom_metadata_value(key, value.clone())?.unwrap_or_default();
                custom.insert(key.clone(), value);
            }
            validate_custom_metadata(&custom)?;
            Some(custom)
        }
    };
    let changes = MetadataChanges::from_input(&ctx, &input).await?;

    let guard = state.locks.lock(path).await;
    let now = ctx.clock.now();
    let mut meta = guard
        .metadata(ctx.view.as_ref())
        .await?
        .unwrap_or_else(|| KeyMetadata::new(now));
    changes.apply(&mut meta);
    if custom.is_some() {
        meta.custom_metadata = custom;
    }
    view::put_json(ctx.view.as_ref(), &meta_key(path), &meta).await?;
    Ok(changes.into_response())
}

async fn patch_metadata(state: Arc<KvV2>, ctx: Ctx, input: MetadataInput) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    let mut custom_patch = Vec::new();
    for (key, value) in input.custom_metadata.iter().flatten() {
        custom_patch.push((key.clone(), custom_metadata_value(key, value.clone())?));
    }
    let changes = MetadataChanges::from_input(&ctx, &input).await?;

    let guard = state.locks.lock(path).await;
    let mut meta = guard
        .metadata(ctx.view.as_ref())
        .await?
        .ok_or(Error::NotFound)?;
    changes.apply(&mut meta);
    if input.custom_metadata.is_some() {
        let mut custom = meta.custom_metadata.take().unwrap_or_default();
        for (key, value) in custom_patch {
            match value {
                Some(value) => custom.insert(key, value),
                None => custom.remove(&key),
            };
        }
        validate_custom_metadata(&custom)?;
        meta.custom_metadata = Some(custom);
    }
    view::put_json(ctx.view.as_ref(), &meta_key(path), &meta).await?;
    Ok(changes.into_response())
}

async fn delete_metadata(state: Arc<KvV2>, ctx: Ctx) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    let guard = state.locks.lock(path).await;
    let Some(meta) = guard.metadata(ctx.view.as_ref()).await? else {
        return Ok(Response::empty());
    };
    let mut ops: Vec<ViewOp> = meta
        .versions
        .keys()
        .map(|&v| ViewOp::Delete {
            key: version_key(path, v),
        })
        .collect();
    ops.push(ViewOp::Delete {
        key: meta_key(path),
    });
    ctx.view.batch(ops).await?;
    Ok(Response::empty())
}

// ---------------------------------------------------------------------------------------------
// subkeys
// ---------------------------------------------------------------------------------------------

async fn read_subkeys(state: Arc<KvV2>, mut ctx: Ctx) -> Result<Response> {
    let query = read_query(&mut ctx)?;
    let path = secret_path(ctx.param("path"))?;
    let (version, meta) = match lookup_version(&ctx, &state.locks, path, query.version).await? {
        VersionLookup::Readable { version, meta } => (version, meta),
        VersionLookup::Unreadable(metadata) => return Ok(unreadable_version("subkeys", metadata)),
    };
    let data = load_version_data(&ctx, path, version).await?;
    let metadata = meta.versions[&version]
        .to_response(version, &meta.custom_metadata)
        .into();
    let mut body = Map::with_capacity(2);
    body.insert(
        "subkeys".to_string(),
        Value::Object(subkeys(&data, query.depth.unwrap_or(0))),
    );
    body.insert("metadata".to_string(), metadata);
    Ok(Response {
        data: Some(body),
        ..Response::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Help text
// ---------------------------------------------------------------------------------------------

const CONFIG_DESCRIPTION: &str = "max_versions sets how many versions each key keeps (0: the default of 10); \
cas_required makes options.cas mandatory on every write; delete_version_after makes new versions read as \
deleted that long after they were written (0s: never).";

const DATA_DESCRIPTION: &str = "A write stores {\"data\": {...}} as a new version and answers with its metadata; \
options.cas makes it conditional on the current version (0: only if the key has none). A read returns the \
latest version, or ?version=N; a deleted or destroyed version answers 404 with its metadata. PATCH applies a \
JSON merge-patch to the latest version. DELETE soft-deletes the latest version.";

const VERSIONS_DESCRIPTION: &str = "Takes {\"versions\": [..]}. delete/ hides versions until undeleted; \
undelete/ restores soft-deleted versions; destroy/ removes their data for good (their metadata remains, marked \
destroyed).";

const METADATA_DESCRIPTION: &str = "Read a key's settings and version history; write or patch max_versions, \
cas_required, delete_version_after and custom_metadata; DELETE removes the key with all versions; LIST shows \
keys and folders.";

const SUBKEYS_DESCRIPTION: &str =
    "Returns the secret's structure with every value replaced by null; depth limits \
how many levels of nested objects are shown (0: all).";
