//! The OpenAPI document, generated from the live mounts' path declarations: it cannot drift
//! from the code because it is the code's own declaration.

use crate::core::Core;
use serde_json::{json, Map, Value};

/// Build the OpenAPI 3 document for every mounted engine.
pub fn document(core: &Core) -> Value {
    let mut paths = Map::new();
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
            for op in &spec.operations {
                let method = match op.operation {
                    coffer_sdk::Operation::Read => "get",
                    coffer_sdk::Operation::List => "list",
                    coffer_sdk::Operation::Create | coffer_sdk::Operation::Update => "post",
                    coffer_sdk::Operation::Patch => "patch",
                    coffer_sdk::Operation::Delete => "delete",
                };
                if item.contains_key(method) {
                    continue;
                }
                let mut operation = json!({
                    "summary": op.summary,
                    "operationId": format!("{}-{}", method, path.trim_matches('/').replace(['/', '{', '}'], "-")),
                    "tags": [mounted.entry.kind],
                    "responses": {"200": {"description": "OK"}, "204": {"description": "empty body"}},
                });
                if op.operation == coffer_sdk::Operation::List {
                    operation["parameters"] = json!([{"name": "list", "in": "query", "required": true, "schema": {"type": "string", "enum": ["true"]}}]);
                }
                if let Some(schema) = &op.input_schema {
                    let content_type = if op.operation == coffer_sdk::Operation::Patch {
                        "application/merge-patch+json"
                    } else {
                        "application/json"
                    };
                    operation["requestBody"] =
                        json!({"required": false, "content": {content_type: {"schema": schema}}});
                }
                item.insert(method.into(), operation);
            }
            paths.insert(path, Value::Object(item));
        }
    }
    json!({
        "openapi": "3.0.2",
        "info": {"title": "Coffer API", "description": "HTTP API of Coffer, compatible with the HashiCorp Vault API.", "version": crate::VERSION, "license": {"name": "Apache-2.0"}},
        "paths": paths,
    })
}
