//! Policy text (HCL or JSON) to [`Policy`]: the internal rule form.
//!
//! Both syntaxes are first lowered to the same shape — a list of `(path, fields)`
//! stanzas whose fields are JSON values — so one function interprets fields the
//! way Vault's `parsePaths` does, whatever the syntax.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::{Capabilities, PathRule, Policy, PolicyError};

/// Keys Vault accepts inside a `path` stanza. `comment`, `mfa_methods`,
/// `control_group` and `subscribe_event_types` are accepted and ignored: Vault's
/// community edition parses but never enforces them either.
const STANZA_KEYS: [&str; 11] = [
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
];

/// One `path "..." { ... }` stanza before interpretation.
struct RawStanza {
    path: String,
    fields: Map<String, Value>,
}

/// Parses HCL or JSON policy text into a [`Policy`] called `name`.
///
/// The text is read as JSON when, trimmed, it starts with `{` and parses as JSON;
/// otherwise as HCL. Supported per path: `capabilities`, the legacy
/// `policy = "deny" | "read" | "write" | "sudo"` (mapped as Vault maps it),
/// `allowed_parameters`, `denied_parameters`, `required_parameters`,
/// `min_wrapping_ttl` and `max_wrapping_ttl`. A leading `/` on a path is dropped,
/// as Vault does. Stanzas are kept in the order written; merging happens in
/// [`crate::Acl::compile`].
pub fn parse_policy(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let trimmed = text.trim_start();
    let json_document = if trimmed.starts_with('{') {
        serde_json::from_str::<Value>(trimmed).ok()
    } else {
        None
    };
    let stanzas = match json_document {
        Some(document) => stanzas_from_json(document)?,
        None => stanzas_from_hcl(text)?,
    };
    let rules = stanzas
        .into_iter()
        .map(interpret_stanza)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy {
        name: name.to_owned(),
        rules,
    })
}

fn stanzas_from_json(document: Value) -> Result<Vec<RawStanza>, PolicyError> {
    let Value::Object(top) = document else {
        return Err(PolicyError::Structure(
            "does not contain a root object".into(),
        ));
    };
    let mut stanzas = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "name" => {}
            "path" => match value {
                Value::Object(paths) => collect_json_paths(paths, &mut stanzas)?,
                // HCL1's JSON dialect also allows a list of single-path objects.
                Value::Array(items) => {
                    for item in items {
                        let Value::Object(paths) = item else {
                            return Err(PolicyError::Structure(
                                "\"path\" list entries must be objects".into(),
                            ));
                        };
                        collect_json_paths(paths, &mut stanzas)?;
                    }
                }
                _ => {
                    return Err(PolicyError::Structure(
                        "\"path\" must be an object keyed by path".into(),
                    ))
                }
            },
            other => return Err(PolicyError::Structure(format!("invalid key {other:?}"))),
        }
    }
    Ok(stanzas)
}

fn collect_json_paths(
    paths: Map<String, Value>,
    stanzas: &mut Vec<RawStanza>,
) -> Result<(), PolicyError> {
    for (path, body) in paths {
        match body {
            Value::Object(fields) => stanzas.push(RawStanza { path, fields }),
            // HCL1's JSON dialect wraps repeated stanzas in a list.
            Value::Array(bodies) => {
                for body in bodies {
                    let Value::Object(fields) = body else {
                        return Err(PolicyError::Structure(format!(
                            "path {path:?}: stanza must be an object"
                        )));
                    };
                    stanzas.push(RawStanza {
                        path: path.clone(),
                        fields,
                    });
                }
            }
            _ => {
                return Err(PolicyError::Structure(format!(
                    "path {path:?}: stanza must be an object"
                )))
            }
        }
    }
    Ok(())
}

fn stanzas_from_hcl(text: &str) -> Result<Vec<RawStanza>, PolicyError> {
    coffer_hcl::check_nesting(text).map_err(|e| PolicyError::Syntax {
        line: e.line,
        column: e.column,
        message: e.to_string(),
    })?;
    let body = hcl::parse(text).map_err(|error| match error {
        hcl::Error::Parse(parse) => PolicyError::Syntax {
            line: parse.location().line(),
            column: parse.location().column(),
            message: parse.message().to_owned(),
        },
        other => PolicyError::Syntax {
            line: 0,
            column: 0,
            message: other.to_string(),
        },
    })?;
    let mut stanzas = Vec::new();
    for structure in body.into_iter() {
        match structure {
            hcl::Structure::Attribute(attribute) if attribute.key() == "name" => {}
            hcl::Structure::Attribute(attribute) => {
                return Err(PolicyError::Structure(format!(
                    "invalid key {:?}",
                    attribute.key()
                )))
            }
            hcl::Structure::Block(block) if block.identifier() == "path" => {
                let [label] = block.labels() else {
                    return Err(PolicyError::Structure(
                        "a path block needs exactly one label: path \"secret/*\" { ... }".into(),
                    ));
                };
                let path = label.as_str().to_owned();
                let fields = hcl_body_to_object(block.body(), &path)?;
                stanzas.push(RawStanza { path, fields });
            }
            hcl::Structure::Block(block) => {
                return Err(PolicyError::Structure(format!(
                    "invalid key {:?}",
                    block.identifier()
                )))
            }
        }
    }
    Ok(stanzas)
}

fn hcl_body_to_object(body: &hcl::Body, path: &str) -> Result<Map<String, Value>, PolicyError> {
    let mut object = Map::new();
    for structure in body.iter() {
        match structure {
            hcl::Structure::Attribute(attribute) => {
                let value = hcl_expression_to_json(attribute.expr(), path, attribute.key())?;
                object.insert(attribute.key().to_owned(), value);
            }
            hcl::Structure::Block(block) => {
                // Nested blocks only appear in fields we ignore (control_group);
                // labels become nested object keys, as HCL1 decodes them.
                let mut value = Value::Object(hcl_body_to_object(block.body(), path)?);
                for label in block.labels().iter().rev() {
                    let mut wrapper = Map::new();
                    wrapper.insert(label.as_str().to_owned(), value);
                    value = Value::Object(wrapper);
                }
                object.insert(block.identifier().to_owned(), value);
            }
        }
    }
    Ok(object)
}

fn hcl_expression_to_json(
    expression: &hcl::Expression,
    path: &str,
    field: &str,
) -> Result<Value, PolicyError> {
    use hcl::Expression;
    let unsupported = || PolicyError::InvalidField {
        path: path.to_owned(),
        field: field.to_owned(),
        reason: "only literal values are allowed (no variables, functions or operators)".into(),
    };
    Ok(match expression {
        Expression::Null => Value::Null,
        Expression::Bool(flag) => Value::Bool(*flag),
        Expression::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Value::from(integer)
            } else if let Some(integer) = number.as_u64() {
                Value::from(integer)
            } else {
                number
                    .as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(unsupported)?
            }
        }
        Expression::String(text) => Value::String(text.clone()),
        // Vault's HCL1 never interpolated policy strings: keep `${...}` literally.
        Expression::TemplateExpr(template) => Value::String(match template.as_ref() {
            hcl::TemplateExpr::QuotedString(text) => text.clone(),
            hcl::TemplateExpr::Heredoc(heredoc) => heredoc.template.clone(),
        }),
        Expression::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| hcl_expression_to_json(item, path, field))
                .collect::<Result<_, _>>()?,
        ),
        Expression::Object(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                let key = match key {
                    hcl::ObjectKey::Identifier(identifier) => identifier.as_str().to_owned(),
                    hcl::ObjectKey::Expression(Expression::String(text)) => text.clone(),
                    hcl::ObjectKey::Expression(Expression::TemplateExpr(template)) => {
                        match template.as_ref() {
                            hcl::TemplateExpr::QuotedString(text) => text.clone(),
                            hcl::TemplateExpr::Heredoc(heredoc) => heredoc.template.clone(),
                        }
                    }
                    _ => return Err(unsupported()),
                };
                object.insert(key, hcl_expression_to_json(value, path, field)?);
            }
            Value::Object(object)
        }
        Expression::Parenthesis(inner) => hcl_expression_to_json(inner, path, field)?,
        _ => return Err(unsupported()),
    })
}

/// Interprets one stanza the way Vault's `parsePaths` does, in the same order, so
/// the same texts are accepted and rejected.
fn interpret_stanza(stanza: RawStanza) -> Result<PathRule, PolicyError> {
    let RawStanza {
        path: written,
        fields,
    } = stanza;
    let field_error = |field: &str, reason: String| PolicyError::InvalidField {
        path: written.clone(),
        field: field.to_owned(),
        reason,
    };

    for key in fields.keys() {
        if !STANZA_KEYS.contains(&key.as_str()) {
            return Err(field_error(key, "unknown key".into()));
        }
    }

    let path = written.strip_prefix('/').unwrap_or(&written).to_owned();
    if path.contains("+*") {
        return Err(PolicyError::InvalidPath {
            path: written.clone(),
            reason: "invalid use of wildcards ('+*' is forbidden)".into(),
        });
    }

    let mut capability_names: Vec<String> = Vec::new();
    if let Some(listed) = fields.get("capabilities") {
        capability_names = string_list(listed).ok_or_else(|| {
            field_error("capabilities", "must be a list of capability names".into())
        })?;
    }
    if let Some(legacy) = fields.get("policy") {
        let Value::String(legacy) = legacy else {
            return Err(field_error("policy", "must be a string".into()));
        };
        let mapped: &[&str] = match legacy.as_str() {
            "" => &[],
            "deny" => {
                capability_names.clear();
                &["deny"]
            }
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            _ => {
                return Err(PolicyError::UnknownLegacyPolicy {
                    path: written.clone(),
                    policy: legacy.clone(),
                })
            }
        };
        capability_names.extend(mapped.iter().map(|name| (*name).to_owned()));
    }

    let mut rule = PathRule::new(path, Capabilities::NONE);
    for name in &capability_names {
        match Capabilities::parse(name) {
            // Vault stops reading the stanza at `deny`: nothing else can matter.
            Some(Capabilities::DENY) => {
                rule.capabilities = Capabilities::DENY;
                return Ok(rule);
            }
            Some(capability) => rule.capabilities |= capability,
            None => {
                return Err(PolicyError::UnknownCapability {
                    path: written.clone(),
                    capability: name.clone(),
                })
            }
        }
    }

    for (field, target) in [
        ("allowed_parameters", &mut rule.allowed_parameters),
        ("denied_parameters", &mut rule.denied_parameters),
    ] {
        let Some(value) = fields.get(field) else {
            continue;
        };
        let Value::Object(parameters) = value else {
            return Err(field_error(
                field,
                "must be an object of parameter name to list of values".into(),
            ));
        };
        for (key, values) in parameters {
            validate_parameter_key(key, true).map_err(|reason| field_error(field, reason))?;
            let values = match values {
                Value::Array(values) => values.clone(),
                Value::Null => Vec::new(),
                single => vec![single.clone()],
            };
            target.insert(key.to_lowercase(), values);
        }
    }

    for (field, target) in [
        ("min_wrapping_ttl", &mut rule.min_wrapping_ttl),
        ("max_wrapping_ttl", &mut rule.max_wrapping_ttl),
    ] {
        if let Some(value) = fields.get(field) {
            let duration =
                parse_duration_seconds(value).map_err(|reason| field_error(field, reason))?;
            *target = (!duration.is_zero()).then_some(duration);
        }
    }
    if let (Some(min), Some(max)) = (rule.min_wrapping_ttl, rule.max_wrapping_ttl) {
        if max < min {
            return Err(field_error(
                "max_wrapping_ttl",
                "cannot be less than min_wrapping_ttl".into(),
            ));
        }
    }

    if let Some(value) = fields.get("required_parameters") {
        let names = string_list(value).ok_or_else(|| {
            field_error(
                "required_parameters",
                "must be a list of parameter names".into(),
            )
        })?;
        for name in &names {
            validate_parameter_key(name, false)
                .map_err(|reason| field_error("required_parameters", reason))?;
        }
        rule.required_parameters = names;
    }

    Ok(rule)
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// Vault allows a wildcard parameter key only as `*` (or the tail of a JSON
/// pointer key such as `/a/*`).
fn validate_parameter_key(key: &str, wildcard_permitted: bool) -> Result<(), String> {
    if !key.contains('*') {
        return Ok(());
    }
    if !wildcard_permitted {
        return Err(format!(
            "parameter key {key:?}: wildcard is not permitted here"
        ));
    }
    let pointer_tail =
        key.starts_with('/') && key.ends_with("/*") && !key[..key.len() - 2].contains('*');
    if key == "*" || pointer_tail {
        Ok(())
    } else {
        Err(format!(
            "parameter key {key:?} cannot contain non-tail wildcards"
        ))
    }
}

/// Parses a TTL as Vault's `ParseDurationSecond` does: a number of seconds, a
/// string of digits (seconds), `<n>d` (days) or a Go duration such as `1h30m`.
pub(crate) fn parse_duration_seconds(value: &Value) -> Result<Duration, String> {
    match value {
        Value::Number(number) => {
            if let Some(seconds) = number.as_u64() {
                Ok(Duration::from_secs(seconds))
            } else if let Some(seconds) = number.as_f64().filter(|s| *s >= 0.0 && s.is_finite()) {
                // Go converts a float to whole seconds by truncation.
                Ok(Duration::from_secs(seconds as u64))
            } else {
                Err("must not be negative".into())
            }
        }
        Value::String(text) => parse_duration_text(text.trim()),
        Value::Null => Ok(Duration::ZERO),
        _ => Err("must be a number of seconds or a duration string like \"1h\"".into()),
    }
}

fn parse_duration_text(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}");
    if text.is_empty() {
        return Ok(Duration::ZERO);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map(Duration::from_secs).map_err(|_| invalid());
    }
    if let Some(days) = text.strip_suffix('d') {
        if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) {
            let days: u64 = days.parse().map_err(|_| invalid())?;
            return days
                .checked_mul(86_400)
                .map(Duration::from_secs)
                .ok_or_else(invalid);
        }
    }
    // Go's time.ParseDuration: one or more <decimal><unit> terms.
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err("must not be negative".into());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let number: f64 = number.parse().map_err(|_| invalid())?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let seconds_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds_per_unit;
        rest = after;
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_follow_vaults_parse_duration_second() {
        let parse = |v: Value| parse_duration_seconds(&v);
        assert_eq!(parse(json!(90)), Ok(Duration::from_secs(90)));
        assert_eq!(parse(json!("90")), Ok(Duration::from_secs(90)));
        assert_eq!(parse(json!("1h30m")), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(json!("1.5h")), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(json!("2d")), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse(json!("500ms")), Ok(Duration::from_millis(500)));
        assert!(parse(json!("5 parsecs")).is_err());
        assert!(parse(json!("-5s")).is_err());
        assert!(parse(json!(true)).is_err());
    }

    #[test]
    fn wildcard_parameter_keys_must_be_bare_or_pointer_tails() {
        assert!(validate_parameter_key("*", true).is_ok());
        assert!(validate_parameter_key("/nested/*", true).is_ok());
        assert!(validate_parameter_key("foo*", true).is_err());
        assert!(validate_parameter_key("*", false).is_err());
    }
}
