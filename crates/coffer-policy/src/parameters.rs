//! Matching request parameter values against a rule's allowed/denied value lists,
//! as Vault's `valueInAllowedParameterList` / `valueInDeniedParameterList` do.

use serde_json::Value;

/// True if `value` is allowed by `list`. An empty list allows any value. Besides a
/// direct match, a list value passes if every element is allowed, and a string
/// passes if every comma-separated part is allowed (Vault assumes the field may
/// be a comma-separated list, so `"a,b"` is checked as `a` and `b`).
pub(crate) fn allowed_by(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().all(|item| in_list(item, list)),
        // Vault quirk kept on purpose: an empty string splits into no parts and
        // is therefore always allowed.
        Value::String(text) => comma_parts(text).all(|part| in_list_str(part, list)),
        _ => false,
    }
}

/// True if `value` is denied by `list`. An empty list denies any value; a list
/// value is denied if any element is, a string if any comma-separated part is.
pub(crate) fn denied_by(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(|item| in_list(item, list)),
        Value::String(text) => comma_parts(text).any(|part| in_list_str(part, list)),
        _ => false,
    }
}

/// Splits like Vault's `ParseCommaStringSlice`: on commas, each part trimmed; an
/// empty input has no parts.
fn comma_parts(text: &str) -> impl Iterator<Item = &str> {
    let parts = if text.is_empty() {
        None
    } else {
        Some(text.split(','))
    };
    parts.into_iter().flatten().map(str::trim)
}

fn in_list(value: &Value, list: &[Value]) -> bool {
    match value {
        Value::String(text) => in_list_str(text, list),
        _ => list.iter().any(|element| values_equal(element, value)),
    }
}

fn in_list_str(text: &str, list: &[Value]) -> bool {
    list.iter().any(|element| match element {
        Value::String(pattern) => globbed_match(pattern, text),
        _ => false,
    })
}

/// A policy value with a leading and/or trailing `*` matches by suffix, prefix or
/// substring; otherwise exactly. A lone `*` matches only itself, as in Vault.
fn globbed_match(pattern: &str, value: &str) -> bool {
    if pattern.len() < 2 {
        return pattern == value;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) => value.contains(&pattern[1..pattern.len() - 1]),
        (Some(suffix), None) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => pattern == value,
    }
}

/// Structural equality where numbers compare by value (policy `1` equals request
/// `1.0`), since HCL and JSON may encode the same number differently.
fn values_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
                a == b
            } else if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
                a == b
            } else {
                a.as_f64() == b.as_f64()
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_equal(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, x)| b.get(key).is_some_and(|y| values_equal(x, y)))
        }
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_prefix_suffix_and_substring() {
        assert!(globbed_match("foo*", "foobar"));
        assert!(!globbed_match("foo*", "barfoo"));
        assert!(globbed_match("*bar", "foobar"));
        assert!(globbed_match("*oba*", "foobar"));
        assert!(globbed_match("*", "*"));
        assert!(!globbed_match("*", "anything"));
        assert!(globbed_match("exact", "exact"));
    }

    #[test]
    fn lists_and_comma_strings_are_checked_element_by_element() {
        let list = [json!("a"), json!("b")];
        assert!(allowed_by(&json!(["a", "b"]), &list));
        assert!(!allowed_by(&json!(["a", "c"]), &list));
        assert!(allowed_by(&json!("a, b"), &list));
        assert!(!allowed_by(&json!("a,c"), &list));
        assert!(denied_by(&json!(["c", "b"]), &list));
        assert!(denied_by(&json!("c,b"), &list));
        assert!(!denied_by(&json!("c"), &list));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(allowed_by(&json!(1.0), &[json!(1)]));
        assert!(!allowed_by(&json!(2), &[json!(1)]));
        assert!(allowed_by(&json!(true), &[json!(true)]));
        assert!(allowed_by(&Value::Null, &[Value::Null]));
    }
}
