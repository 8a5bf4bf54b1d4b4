//! The `sys/` backend: seal lifecycle, mounts, policies, leases, wrapping, and what the server
//! says about itself. Declared like any engine, one file per concern; its handlers get the
//! [`Core`] as their state.

use crate::core::Core;
use coffer_sdk::logical::RawBody;
use coffer_sdk::{Backend, Engine, Response};
use serde_json::{json, Map, Value};
use std::sync::Arc;

mod internal;
mod leases;
mod mounts;
mod policies;
mod seal;
mod tools;
mod wrapping;

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

/// The declaration of `sys/`.
pub fn backend(core: &Arc<Core>) -> Backend {
    // Weak: the core owns the router that owns this backend.
    let e = Engine::weak(
        "system",
        "System endpoints used for control, policy and debugging.",
        core,
    );
    let paths: Vec<_> = [
        seal::paths(&e),
        mounts::paths(&e),
        leases::paths(&e),
        wrapping::paths(&e),
        policies::paths(&e),
        internal::paths(&e),
        tools::paths(&e),
    ]
    .into_iter()
    .flatten()
    .collect();
    e.paths(paths).build()
}
