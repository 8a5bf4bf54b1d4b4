//! The OpenAPI document, generated from the live mounts' path declarations: it cannot drift
//! from the code because it is the code's own declaration.
//!
//! The document is OpenAPI 3.1 because the input schemas are JSON Schema 2020-12 (what
//! `schemars` emits: `"type": ["string", "null"]`, `$defs`), which is 3.1's schema dialect. Each
//! input schema's `$defs` move to `components/schemas` (a `#/$defs/...` reference inside a path
//! item would point at the document root, where nothing is). LIST operations are written the
//! way Vault's own document writes them: a `get` on the path with a trailing slash that
//! requires `list=true`, because OpenAPI has no `list` method.

use crate::core::Core;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The document as JSON bytes. It depends only on which engines are mounted where (kind and
/// options decide the declarations), so it is built once per such mount set: building it walks
/// every declaration and costs milliseconds.
pub fn document_bytes(core: &Core) -> Arc<Vec<u8>> {
    static CACHE: Mutex<Option<(String, Arc<Vec<u8>>)>> = Mutex::new(None);
    let table = core.router.table();
    let mut key = String::new();
    for m in table.all() {
        key.push_str(&m.route_path);
        key.push('\0');
        key.push_str(&m.entry.kind);
        for (k, v) in &m.entry.options {
            key.push('\0');
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
        key.push('\n');
    }
    if let Some((cached_key, bytes)) = CACHE.lock().as_ref() {
        if *cached_key == key {
            return bytes.clone();
        }
    }
    let bytes = Arc::new(serde_json::to_vec(&document(core)).expect("json encodes"));
    *CACHE.lock() = Some((key, bytes.clone()));
    bytes
}

/// Build the OpenAPI 3.1 document for every mounted engine.
pub fn document(core: &Core) -> Value {
    let mut paths = Map::new();
    let mut components = Map::new();
    for mounted in core.mounted() {
        for (spec, tail) in mounted.backend.paths().iter().flat_map(|spec| {
            spec.openapi_paths()
                .into_iter()
                .map(move |tail| (spec, tail))
        }) {
            let path = format!("/{}{}", mounted.route_path, tail);
            let path = if path.len() > 1 {
                path.trim_end_matches('/').to_string()
            } else {
                path
            };
            let list_path = format!("{path}/");
            let mut item = Map::new();
            let params: Vec<Value> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
                .collect();
            if !params.is_empty() {
                item.insert("parameters".into(), Value::Array(params));
            }
            item.insert("description".into(), json!(spec.description));
            item.insert("summary".into(), json!(spec.synopsis));
            if spec.unauthenticated {
                item.insert("x-vault-unauthenticated".into(), json!(true));
            }
            if spec.sudo {
                item.insert("x-vault-sudo".into(), json!(true));
            }
            // The LIST operation's own path item (`<path>/`), sharing the item's metadata.
            let mut list_item = item.clone();
            for op in &spec.operations {
                let method = match op.operation {
                    coffer_sdk::Operation::Read | coffer_sdk::Operation::List => "get",
                    coffer_sdk::Operation::Create | coffer_sdk::Operation::Update => "post",
                    coffer_sdk::Operation::Patch => "patch",
                    coffer_sdk::Operation::Delete => "delete",
                };
                let is_list = op.operation == coffer_sdk::Operation::List;
                let (target, target_path) = if is_list {
                    (&mut list_item, &list_path)
                } else {
                    (&mut item, &path)
                };
                if target.contains_key(method) {
                    continue;
                }
                let id_prefix = if is_list { "list" } else { method };
                let mut operation = json!({
                    "summary": op.summary,
                    "operationId": format!("{}-{}", id_prefix, target_path.trim_matches('/').replace(['/', '{', '}'], "-")),
                    "tags": [mounted.entry.kind],
                    "responses": {"200": {"description": "OK"}, "204": {"description": "empty body"}},
                });
                if is_list {
                    operation["parameters"] = json!([{"name": "list", "in": "query", "required": true, "schema": {"type": "string", "enum": ["true"]}}]);
                }
                let bodiless = matches!(
                    op.operation,
                    coffer_sdk::Operation::Read
                        | coffer_sdk::Operation::List
                        | coffer_sdk::Operation::Delete
                );
                if let (Some(schema), true) = (&op.input_schema, bodiless) {
                    // A read, list or delete takes its input from the query string.
                    let schema = hoist_definitions(schema, &mut components);
                    let mut params = operation["parameters"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if let Some(properties) = schema["properties"].as_object() {
                        for (name, property) in properties {
                            params.push(json!({"name": name, "in": "query", "required": false, "schema": property}));
                        }
                    }
                    if !params.is_empty() {
                        operation["parameters"] = Value::Array(params);
                    }
                } else if let Some(schema) = &op.input_schema {
                    let content_type = if op.operation == coffer_sdk::Operation::Patch {
                        "application/merge-patch+json"
                    } else {
                        "application/json"
                    };
                    let schema = hoist_definitions(schema, &mut components);
                    operation["requestBody"] =
                        json!({"required": false, "content": {content_type: {"schema": schema}}});
                }
                target.insert(method.into(), operation);
            }
            if list_item.contains_key("get") {
                paths.insert(list_path, Value::Object(list_item));
            }
            if ["get", "post", "patch", "delete"]
                .iter()
                .any(|m| item.contains_key(*m))
            {
                paths.insert(path, Value::Object(item));
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Coffer API", "description": "HTTP API of Coffer, compatible with the HashiCorp Vault API.", "version": crate::VERSION, "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "paths": paths,
        "components": {"schemas": components},
    })
}

/// `schema` with its `$defs` moved into `components` and every `#/$defs/NAME` reference
/// rewritten to `#/components/schemas/NAME`. A definition whose name is already taken by a
/// different schema gets a numbered name (`NAME2`, ...), and this schema's references follow it.
fn hoist_definitions(schema: &Value, components: &mut Map<String, Value>) -> Value {
    let mut schema = schema.clone();
    let Some(Value::Object(defs)) = schema.as_object_mut().and_then(|s| s.remove("$defs")) else {
        return schema;
    };
    // Pick every definition's component name first: definitions may refer to each other.
    let unchanged: Map<String, Value> = defs
        .keys()
        .map(|name| (name.clone(), Value::String(name.clone())))
        .collect();
    let mut renamed = Map::new();
    for (name, def) in &defs {
        // What this definition is stored as if no name changes (refs already rewritten), so
        // that the same type used by several inputs is stored once.
        let mut as_stored = def.clone();
        rewrite_refs(&mut as_stored, &unchanged);
        let mut candidate = name.clone();
        let mut n = 2;
        while components
            .get(&candidate)
            .is_some_and(|taken| *taken != as_stored)
        {
            candidate = format!("{name}{n}");
            n += 1;
        }
        // Reserve the name now so a later definition of this schema cannot take it.
        components.entry(candidate.clone()).or_insert(Value::Null);
        renamed.insert(name.clone(), Value::String(candidate));
    }
    for (name, def) in defs {
        let target = renamed[&name].as_str().unwrap_or_default().to_owned();
        let mut def = def;
        rewrite_refs(&mut def, &renamed);
        components.insert(target, def);
    }
    rewrite_refs(&mut schema, &renamed);
    schema
}

fn rewrite_refs(value: &mut Value, renamed: &Map<String, Value>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref") {
                if let Some(target) = reference
                    .strip_prefix("#/$defs/")
                    .and_then(|name| renamed.get(name))
                    .and_then(Value::as_str)
                {
                    *reference = format!("#/components/schemas/{target}");
                }
            }
            for v in map.values_mut() {
                rewrite_refs(v, renamed);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, renamed)),
        _ => {}
    }
}
