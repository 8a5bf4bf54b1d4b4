//! JSON transformations on secret data: RFC 7386 merge-patch (PATCH on `data/`) and the
//! value-free structure returned by `subkeys/`.

use serde_json::{Map, Value};

/// Apply an RFC 7386 JSON merge-patch: objects merge recursively, `null` removes a key, any
/// other value replaces what was there.
pub(crate) fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner_patch) => {
                let slot = target
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(inner_target) = slot {
                    merge_patch(inner_target, inner_patch);
                }
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

/// The structure of `data` with every value replaced by `null`, as Vault's `subkeys` endpoint
/// returns it. Non-empty objects are descended into while their depth is within `max_depth`
/// (top level is depth 1; `0` means no limit); empty objects, arrays and scalars are leaves.
pub(crate) fn subkeys(data: &Map<String, Value>, max_depth: u64) -> Map<String, Value> {
    subkeys_at(data, max_depth, 1)
}

fn subkeys_at(data: &Map<String, Value>, max_depth: u64, depth: u64) -> Map<String, Value> {
    data.iter()
        .map(|(key, value)| {
            let child_depth = depth + 1;
            let within_limit = max_depth == 0 || child_depth <= max_depth;
            let structure = match value {
                Value::Object(inner) if within_limit && !inner.is_empty() => {
                    Value::Object(subkeys_at(inner, max_depth, child_depth))
                }
                _ => Value::Null,
            };
            (key.clone(), structure)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn merge_patch_follows_rfc_7386_examples() {
        let mut target = obj(json!({"a": "b", "c": {"d": "e", "f": "g"}}));
        merge_patch(&mut target, obj(json!({"a": "z", "c": {"f": null}})));
        assert_eq!(Value::Object(target), json!({"a": "z", "c": {"d": "e"}}));

        let mut target = obj(json!({"a": "foo"}));
        merge_patch(
            &mut target,
            obj(json!({"a": {"b": "c"}, "e": null, "l": [1]})),
        );
        assert_eq!(Value::Object(target), json!({"a": {"b": "c"}, "l": [1]}));
    }

    #[test]
    fn subkeys_hide_values_and_respect_depth() {
        let data =
            obj(json!({"foo": "abc", "bar": {"baz": {"deep": 1}}, "empty": {}, "list": [1, 2]}));
        assert_eq!(
            Value::Object(subkeys(&data, 0)),
            json!({"foo": null, "bar": {"baz": {"deep": null}}, "empty": null, "list": null})
        );
        assert_eq!(
            Value::Object(subkeys(&data, 1)),
            json!({"foo": null, "bar": null, "empty": null, "list": null})
        );
        assert_eq!(
            Value::Object(subkeys(&data, 2)),
            json!({"foo": null, "bar": {"baz": null}, "empty": null, "list": null})
        );
    }
}
