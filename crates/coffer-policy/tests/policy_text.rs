//! Parsing policy text: HCL, JSON, the legacy `policy =` form, and the errors an
//! operator sees for a broken policy.

use std::time::Duration;

use coffer_policy::{
    parse_policy, validate_policy_name, Capabilities, PolicyError, DEFAULT_POLICY,
};
use serde_json::json;

#[test]
fn hcl_path_stanzas_become_rules_in_written_order() {
    let policy = parse_policy(
        "app",
        r#"
        # comments are fine
        path "secret/data/app/*" {
          capabilities = ["create", "read", "update", "delete", "list"]
        }
        path "/sys/mounts" {
          capabilities = ["read", "sudo"]
        }
        "#,
    )
    .unwrap();
    assert_eq!(policy.name, "app");
    assert_eq!(policy.rules.len(), 2);
    assert_eq!(policy.rules[0].path, "secret/data/app/*");
    assert_eq!(
        policy.rules[0].capabilities.names(),
        vec!["create", "read", "update", "delete", "list"]
    );
    // A leading slash is dropped, as Vault does.
    assert_eq!(policy.rules[1].path, "sys/mounts");
    assert_eq!(
        policy.rules[1].capabilities,
        Capabilities::READ | Capabilities::SUDO
    );
}

#[test]
fn json_policies_parse_like_hcl() {
    let text = r#"{
      "path": {
        "secret/*": { "capabilities": ["read", "list"] },
        "secret/admin": { "capabilities": ["deny"] }
      }
    }"#;
    let policy = parse_policy("json", text).unwrap();
    assert_eq!(policy.rules.len(), 2);
    assert_eq!(policy.rules[0].path, "secret/*");
    assert_eq!(
        policy.rules[0].capabilities,
        Capabilities::READ | Capabilities::LIST
    );
    assert_eq!(policy.rules[1].capabilities, Capabilities::DENY);

    let list_form = r#"{"path": [{"a/b": {"capabilities": ["update"]}}]}"#;
    let policy = parse_policy("json", list_form).unwrap();
    assert_eq!(policy.rules[0].path, "a/b");
    assert_eq!(policy.rules[0].capabilities, Capabilities::UPDATE);
}

#[test]
fn legacy_policy_values_map_to_capabilities_as_vault_does() {
    let cases = [
        ("read", Capabilities::READ | Capabilities::LIST),
        (
            "write",
            Capabilities::CREATE
                | Capabilities::READ
                | Capabilities::UPDATE
                | Capabilities::DELETE
                | Capabilities::LIST,
        ),
        (
            "sudo",
            Capabilities::CREATE
                | Capabilities::READ
                | Capabilities::UPDATE
                | Capabilities::DELETE
                | Capabilities::LIST
                | Capabilities::SUDO,
        ),
        ("deny", Capabilities::DENY),
    ];
    for (legacy, expected) in cases {
        let text = format!(r#"path "secret/x" {{ policy = "{legacy}" }}"#);
        let policy = parse_policy("legacy", &text).unwrap();
        assert_eq!(policy.rules[0].capabilities, expected, "policy = {legacy}");
    }
}

#[test]
fn legacy_policy_adds_to_capabilities_and_deny_replaces_them() {
    let policy = parse_policy(
        "mixed",
        r#"path "secret/foo" {
             policy = "read"
             capabilities = ["create", "sudo"]
           }
           path "secret/bar" {
             policy = "deny"
             capabilities = ["create"]
           }"#,
    )
    .unwrap();
    assert_eq!(
        policy.rules[0].capabilities,
        Capabilities::CREATE | Capabilities::SUDO | Capabilities::READ | Capabilities::LIST
    );
    assert_eq!(policy.rules[1].capabilities, Capabilities::DENY);
}

#[test]
fn deny_in_capabilities_keeps_only_deny() {
    let policy = parse_policy(
        "p",
        r#"path "a" { capabilities = ["read", "deny", "update"] }"#,
    )
    .unwrap();
    assert_eq!(policy.rules[0].capabilities, Capabilities::DENY);
}

#[test]
fn parameter_constraints_and_wrapping_ttls_are_read() {
    let policy = parse_policy(
        "params",
        r#"
        path "secret/foo" {
          capabilities = ["create", "update"]
          allowed_parameters = {
            "Bar" = ["zip", "zap"]
            "any" = []
          }
          denied_parameters = {
            "secret" = []
          }
          required_parameters = ["bar"]
          min_wrapping_ttl = "1m"
          max_wrapping_ttl = 3600
        }
        "#,
    )
    .unwrap();
    let rule = &policy.rules[0];
    // Keys are lower-cased as Vault stores them.
    assert_eq!(
        rule.allowed_parameters.get("bar"),
        Some(&vec![json!("zip"), json!("zap")])
    );
    assert_eq!(rule.allowed_parameters.get("any"), Some(&vec![]));
    assert_eq!(rule.denied_parameters.get("secret"), Some(&vec![]));
    assert_eq!(rule.required_parameters, vec!["bar".to_owned()]);
    assert_eq!(rule.min_wrapping_ttl, Some(Duration::from_secs(60)));
    assert_eq!(rule.max_wrapping_ttl, Some(Duration::from_secs(3600)));
}

#[test]
fn unknown_capability_error_names_the_capability_and_path() {
    let error = parse_policy("p", r#"path "secret/x" { capabilities = ["reed"] }"#).unwrap_err();
    assert_eq!(
        error,
        PolicyError::UnknownCapability {
            path: "secret/x".into(),
            capability: "reed".into()
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("\"reed\"") && message.contains("\"secret/x\""),
        "{message}"
    );
}

#[test]
fn hcl_syntax_error_reports_the_line() {
    let error = parse_policy(
        "p",
        "path \"a\" {\n  capabilities = [\"read\"]\n\npath \"b\" {\n",
    )
    .unwrap_err();
    let PolicyError::Syntax { line, .. } = &error else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert!(*line >= 2, "line {line}");
    assert!(error.to_string().contains(&format!("line {line}")));
}

#[test]
fn deeply_nested_policy_text_is_refused_before_parsing() {
    // Objects nested in an expression make hcl-rs backtrack, doubling its work per level:
    // at 40 levels this would take the parser hours (a policy write is a request anyone with
    // access to sys/policy can send). The guard refuses it at once, naming where.
    let text = format!(
        "path \"a\" {{\n  capabilities = (r{}\n}}\n",
        " % { r / l".repeat(40)
    );
    let error = parse_policy("p", &text).unwrap_err();
    let PolicyError::Syntax { line, message, .. } = &error else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert_eq!(*line, 2);
    assert!(message.contains("nest more than 10 levels"), "{message}");
    // Real nesting still parses.
    parse_policy(
        "p",
        "path \"a\" {\n  capabilities = [\"read\"]\n  allowed_parameters = { \"k\" = [\"v\"] }\n}\n",
    )
    .unwrap();
}

#[test]
fn malformed_stanzas_are_rejected_with_the_reason() {
    let cases = [
        (r#"path "a" { capabilites = ["read"] }"#, "capabilites"),
        (r#"path "a" { policy = "admin" }"#, "admin"),
        (r#"path "a/+*" { capabilities = ["read"] }"#, "+*"),
        (r#"pat "a" { capabilities = ["read"] }"#, "pat"),
        (r#"path "a" { capabilities = "read" }"#, "capabilities"),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n max_wrapping_ttl = \"soon\"\n}",
            "max_wrapping_ttl",
        ),
        (
            "path \"a\" {\n min_wrapping_ttl = 60\n max_wrapping_ttl = 30\n}",
            "max_wrapping_ttl",
        ),
        (r#"path "a" { allowed_parameters = { "fo*" = [] } }"#, "fo*"),
        (r#"path "a" { capabilities = [var.caps] }"#, "capabilities"),
    ];
    for (text, named) in cases {
        let message = parse_policy("p", text).unwrap_err().to_string();
        assert!(message.contains(named), "{text}: {message}");
    }
}

#[test]
fn default_policy_parses() {
    let policy = parse_policy("default", DEFAULT_POLICY).unwrap();
    let lookup = policy
        .rules
        .iter()
        .find(|rule| rule.path == "auth/token/lookup-self")
        .unwrap();
    assert_eq!(lookup.capabilities, Capabilities::READ);
    assert!(policy.rules.iter().any(|rule| rule.path == "cubbyhole/*"));
}

#[test]
fn policy_names_reject_paths_and_traversal() {
    for good in ["default", "app-reader", "team_a.prod", "x"] {
        assert!(validate_policy_name(good).is_ok(), "{good}");
    }
    for bad in ["", "a/b", "..", "a..b", "Admin", " padded", "tab\there"] {
        assert!(
            matches!(
                validate_policy_name(bad),
                Err(PolicyError::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
}
