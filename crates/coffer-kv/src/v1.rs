//! KV version 1: one JSON object per path, stored under the path itself, no history.
//!
//! | operation | path            | effect                                   |
//! |-----------|-----------------|------------------------------------------|
//! | read      | `<path>`        | the object, or 404                       |
//! | write     | `<path>`        | replace the object (204)                 |
//! | delete    | `<path>`        | remove it (204, also when absent)        |
//! | list      | `<folder>/`     | children, folders with a trailing `/`    |

use crate::paths::{folder_prefix, secret_path};
use coffer_sdk::view;
use coffer_sdk::{Backend, Ctx, Engine, Error, Operation, Response, Result};
use serde_json::{Map, Value};
use std::sync::Arc;

const HELP: &str =
    "The KV secrets engine (version 1) stores arbitrary JSON objects at arbitrary paths, \
without versioning.";

/// The KV v1 engine's state: none; everything lives in the mount's view.
struct KvV1;

/// The KV v1 engine's path declarations.
pub fn backend() -> Backend {
    let e = Engine::new("kv", HELP, Arc::new(KvV1));
    let secrets = e
        .path("(?P<path>.*)")
        .help(
            "Pass-through secret storage to the mount's storage view.",
            "Any JSON object may be written to any path; reading the path returns it. \
             LIST on a folder returns its children, sub-folders with a trailing slash.",
        )
        .existence(|_, ctx: Ctx| async move {
            let path = secret_path(ctx.param("path"))?;
            Ok(ctx.view.get(path).await?.is_some())
        })
        .op(
            Operation::Read,
            "Read the secret at this path.",
            |_, ctx| read(ctx),
        )
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Write the secret at this path.",
            |_, ctx, data| write(ctx, data),
        )
        .op(
            Operation::Delete,
            "Delete the secret at this path.",
            |_, ctx| delete(ctx),
        )
        .op(
            Operation::List,
            "List the secrets and folders under this folder.",
            |_, ctx| list(ctx),
        );
    e.paths(vec![secrets]).build()
}

async fn read(ctx: Ctx) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    let data: Map<String, Value> = view::get_json(ctx.view.as_ref(), path)
        .await?
        .ok_or(Error::NotFound)?;
    // Vault reports a refresh interval for KV v1: the secret's own `ttl` key if it has a valid
    // one, else the mount's default lease TTL. It is advice to caching clients, not a lease.
    let refresh = data
        .get("ttl")
        .and_then(|v| coffer_sdk::duration::duration_from_json(v).ok())
        .unwrap_or(ctx.mount.default_lease_ttl);
    Ok(Response {
        data: Some(data),
        refresh_interval: Some(refresh),
        ..Response::default()
    })
}

/// The whole request body is the secret (`Map` has no declared fields, so nothing is
/// reported as unrecognised).
async fn write(ctx: Ctx, data: Map<String, Value>) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    if data.is_empty() {
        return Err(Error::bad("missing data fields"));
    }
    view::put_json(ctx.view.as_ref(), path, &data).await?;
    Ok(Response::empty())
}

async fn delete(ctx: Ctx) -> Result<Response> {
    let path = secret_path(ctx.param("path"))?;
    ctx.view.delete(path).await?;
    Ok(Response::empty())
}

async fn list(ctx: Ctx) -> Result<Response> {
    let prefix = folder_prefix(ctx.param("path"))?;
    Response::list(ctx.view.list(&prefix).await?)
}
