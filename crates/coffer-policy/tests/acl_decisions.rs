//! Deciding requests with a compiled ACL: Vault's priority matching, merging
//! across policies, parameter constraints, root and the default policy.

use std::time::Duration;

use coffer_policy::{parse_policy, Acl, Capabilities, DEFAULT_POLICY};
use serde_json::{json, Map, Value};

const C: Capabilities = Capabilities::CREATE;
const R: Capabilities = Capabilities::READ;
const U: Capabilities = Capabilities::UPDATE;
const L: Capabilities = Capabilities::LIST;

fn acl(policies: &[&str]) -> Acl {
    let parsed: Vec<_> = policies
        .iter()
        .enumerate()
        .map(|(i, text)| parse_policy(&format!("p{i}"), text).unwrap())
        .collect();
    Acl::compile(&parsed)
}

fn params(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("params must be an object"),
    }
}

#[test]
fn exact_path_only_matches_itself() {
    let acl = acl(&[r#"path "secret/foo" { capabilities = ["read"] }"#]);
    assert!(acl.check("secret/foo", R, None).allowed);
    assert!(!acl.check("secret/food", R, None).allowed);
    assert!(!acl.check("secret/foo/bar", R, None).allowed);
    assert!(!acl.check("secret/foo", U, None).allowed);
}

#[test]
fn glob_matches_by_prefix_not_by_segment() {
    let acl = acl(&[r#"path "secret/bar/*" { capabilities = ["read"] }
           path "secret/zip-*" { capabilities = ["read"] }"#]);
    assert!(acl.check("secret/bar/zip", R, None).allowed);
    assert!(acl.check("secret/bar/zip/zap", R, None).allowed);
    assert!(!acl.check("secret/bars/zip", R, None).allowed);
    assert!(acl.check("secret/zip-zap", R, None).allowed);
    assert!(acl.check("secret/zip-zap/zong", R, None).allowed);
    assert!(!acl.check("secret/zip/zap", R, None).allowed);
}

#[test]
fn plus_matches_exactly_one_segment() {
    let acl = acl(&[r#"path "secret/+/teamb" { capabilities = ["read"] }
           path "secret/+/+/teamc" { capabilities = ["read"] }"#]);
    assert!(acl.check("secret/foo/teamb", R, None).allowed);
    assert!(!acl.check("secret/foo/bar/teamb", R, None).allowed);
    assert!(!acl.check("secret/teamb", R, None).allowed);
    assert!(acl.check("secret/foo/bar/teamc", R, None).allowed);
    assert!(!acl.check("secret/foo/teamc", R, None).allowed);
}

#[test]
fn exact_rule_wins_over_any_glob() {
    let acl = acl(
        &[r#"path "secret/foo*" { capabilities = ["read", "update"] }
           path "secret/foo/bar" { capabilities = ["list"] }"#],
    );
    assert_eq!(acl.capabilities("secret/foo/bar"), L);
    assert_eq!(acl.capabilities("secret/foo/baz"), R | U);
}

#[test]
fn later_first_wildcard_wins() {
    // secret/foo/* puts its glob at 11, secret/+/bar its wildcard at 7.
    let acl = acl(&[r#"path "secret/+/bar" { capabilities = ["update"] }
           path "secret/foo/*" { capabilities = ["read"] }"#]);
    assert_eq!(acl.capabilities("secret/foo/bar"), R);
    assert_eq!(acl.capabilities("secret/baz/bar"), U);
}

#[test]
fn non_glob_wins_when_first_wildcard_ties() {
    let acl = acl(&[r#"path "secret/*" { capabilities = ["read"] }
           path "secret/+/foo" { capabilities = ["update"] }"#]);
    assert_eq!(acl.capabilities("secret/bar/foo"), U);
    assert_eq!(acl.capabilities("secret/bar/food"), R);
}

#[test]
fn fewer_plus_segments_win() {
    // The Policies doc example: secret/* beats secret/+/+/foo/*.
    let acl = acl(&[r#"path "secret/+/+/foo/*" { capabilities = ["update"] }
           path "secret/*" { capabilities = ["read"] }"#]);
    assert_eq!(acl.capabilities("secret/a/b/foo/c"), R);

    let acl2 = self::acl(&[r#"path "foo/+/+/baz" { capabilities = ["update"] }
           path "foo/+/bar/baz" { capabilities = ["read"] }"#]);
    assert_eq!(acl2.capabilities("foo/x/bar/baz"), R);
}

#[test]
fn longer_pattern_wins_when_otherwise_tied() {
    let acl = acl(&[r#"path "foo/+/bar/b*" { capabilities = ["update"] }
           path "foo/+/bar/ba*" { capabilities = ["read"] }"#]);
    assert_eq!(acl.capabilities("foo/x/bar/baz"), R);
    assert_eq!(acl.capabilities("foo/x/bar/bz"), U);
}

#[test]
fn lexicographically_larger_pattern_wins_last() {
    let acl = acl(&[r#"path "+/+/x" { capabilities = ["update"] }
           path "+/x/+" { capabilities = ["read"] }"#]);
    assert_eq!(acl.capabilities("x/x/x"), R);
}

#[test]
fn list_on_trailing_slash_falls_back_to_rules_without_it() {
    let acl = acl(&[r#"path "secret/metadata" { capabilities = ["list"] }
           path "+/sys/policies/acl" { capabilities = ["list"] }"#]);
    assert!(acl.check("secret/metadata/", L, None).allowed);
    assert!(acl.check("ns1/sys/policies/acl/", L, None).allowed);
    // Only LIST gets the fallback.
    let read_only = self::acl(&[r#"path "secret/metadata" { capabilities = ["read"] }"#]);
    assert!(!read_only.check("secret/metadata/", R, None).allowed);
}

#[test]
fn leading_slashes_on_request_paths_are_ignored() {
    let acl = acl(&[r#"path "secret/foo" { capabilities = ["read"] }"#]);
    assert!(acl.check("//secret/foo", R, None).allowed);
}

#[test]
fn no_matching_rule_is_denied() {
    let acl = acl(&[r#"path "secret/foo" { capabilities = ["read"] }"#]);
    let decision = acl.check("other/path", R, None);
    assert!(!decision.allowed);
    assert_eq!(decision.denial.as_deref(), Some("permission denied"));
    assert_eq!(acl.capabilities("other/path"), Capabilities::NONE);
    assert_eq!(acl.capability_names("other/path"), vec!["deny"]);
}

#[test]
fn deny_in_one_policy_overrides_grants_in_another() {
    let acl = acl(&[
        r#"path "secret/*" { capabilities = ["read", "update", "sudo"] }"#,
        r#"path "secret/*" { capabilities = ["deny"] }"#,
        r#"path "secret/*" { capabilities = ["list"] }"#,
    ]);
    let decision = acl.check("secret/anything", R, None);
    assert!(!decision.allowed);
    assert!(!decision.sudo);
    assert_eq!(acl.capabilities("secret/anything"), Capabilities::DENY);
    assert_eq!(acl.capability_names("secret/anything"), vec!["deny"]);
}

#[test]
fn deny_on_a_more_specific_path_beats_a_broad_grant() {
    let acl = acl(&[
        r#"path "secret/*" { capabilities = ["read"] }"#,
        r#"path "secret/super-secret" { capabilities = ["deny"] }"#,
    ]);
    assert!(acl.check("secret/other", R, None).allowed);
    assert!(!acl.check("secret/super-secret", R, None).allowed);
}

#[test]
fn same_path_across_policies_unions_capabilities() {
    let acl = acl(&[
        r#"path "secret/app" { capabilities = ["read"] }"#,
        r#"path "secret/app" { capabilities = ["update", "sudo"] }"#,
    ]);
    assert_eq!(acl.capabilities("secret/app"), R | U | Capabilities::SUDO);
    let decision = acl.check("secret/app", U, None);
    assert!(decision.allowed && decision.sudo && !decision.root);
}

#[test]
fn every_required_capability_must_be_granted() {
    let acl = acl(&[r#"path "sys/mounts" { capabilities = ["read"] }"#]);
    assert!(
        !acl.check("sys/mounts", R | Capabilities::SUDO, None)
            .allowed
    );
    assert!(!acl.check("sys/mounts", Capabilities::NONE, None).allowed);
}

#[test]
fn allowed_parameters_restrict_names_and_values() {
    let acl = acl(&[r#"
        path "secret/foo" {
          capabilities = ["create", "update", "read"]
          allowed_parameters = {
            "bar" = ["zip", "zap"]
            "free" = []
          }
        }"#]);
    let check = |body: Value| acl.check("secret/foo", U, Some(&params(body)));
    assert!(check(json!({"bar": "zip"})).allowed);
    assert!(check(json!({"bar": "zap", "free": 42})).allowed);
    let wrong_value = check(json!({"bar": "zoom-secret-value"}));
    assert!(!wrong_value.allowed);
    let reason = wrong_value.denial.unwrap();
    assert!(
        reason.contains("\"bar\"") && !reason.contains("zoom"),
        "{reason}"
    );
    let unknown = check(json!({"other": "x"}));
    assert_eq!(
        unknown.denial.as_deref(),
        Some("parameter \"other\" is not allowed")
    );
    // Parameters are not checked for reads.
    assert!(
        acl.check("secret/foo", R, Some(&params(json!({"other": 1}))))
            .allowed
    );
}

#[test]
fn allowed_parameter_values_support_globs() {
    let acl = acl(&[r#"
        path "secret/foo" {
          capabilities = ["create"]
          allowed_parameters = { "name" = ["app-*", "*-suffix", "*mid*"] }
        }"#]);
    let check = |v: &str| {
        acl.check("secret/foo", C, Some(&params(json!({"name": v}))))
            .allowed
    };
    assert!(check("app-one"));
    assert!(check("x-suffix"));
    assert!(check("xxmidxx"));
    assert!(!check("other"));
}

#[test]
fn star_key_allows_any_parameter_while_named_keys_stay_restricted() {
    let acl = acl(&[r#"
        path "secret/foo" {
          capabilities = ["create"]
          allowed_parameters = { "*" = [], "mode" = ["safe"] }
        }"#]);
    let check = |body: Value| acl.check("secret/foo", C, Some(&params(body))).allowed;
    assert!(check(json!({"anything": 1, "mode": "safe"})));
    assert!(!check(json!({"anything": 1, "mode": "unsafe"})));
}

#[test]
fn denied_parameters_refuse_names_or_values_and_beat_allowed() {
    let acl = acl(&[r#"
        path "secret/foo" {
          capabilities = ["create"]
          allowed_parameters = { "*" = [] }
          denied_parameters = { "admin" = [], "role" = ["root", "sys-*"] }
        }"#]);
    let check = |body: Value| acl.check("secret/foo", C, Some(&params(body)));
    assert!(check(json!({"role": "reader"})).allowed);
    assert!(!check(json!({"role": "sys-admin"})).allowed);
    assert!(!check(json!({"role": ["reader", "root"]})).allowed);
    let denied = check(json!({"admin": false}));
    assert_eq!(
        denied.denial.as_deref(),
        Some("parameter \"admin\" is denied")
    );
    // Parameter names compare lower-cased.
    assert!(!check(json!({"ADMIN": true})).allowed);
}

#[test]
fn star_in_denied_parameters_refuses_any_parameter() {
    let acl = acl(&[r#"
        path "secret/foo" {
          capabilities = ["update"]
          denied_parameters = { "*" = [] }
        }"#]);
    assert!(
        !acl.check("secret/foo", U, Some(&params(json!({"x": 1}))))
            .allowed
    );
    assert!(acl.check("secret/foo", U, Some(&Map::new())).allowed);
}

#[test]
fn required_parameters_must_be_present() {
    let acl = acl(&[r#"
        path "secret/foo" {
          capabilities = ["create", "read"]
          required_parameters = ["owner"]
        }"#]);
    assert!(
        acl.check("secret/foo", C, Some(&params(json!({"owner": "me"}))))
            .allowed
    );
    let missing = acl.check("secret/foo", C, Some(&params(json!({"x": 1}))));
    assert_eq!(
        missing.denial.as_deref(),
        Some("required parameter \"owner\" is missing")
    );
    assert!(!acl.check("secret/foo", C, None).allowed);
    assert!(acl.check("secret/foo", R, None).allowed);
}

#[test]
fn parameter_maps_merge_across_policies() {
    let acl = acl(&[
        r#"path "secret/foo" {
             capabilities = ["create"]
             allowed_parameters = { "color" = ["red"] }
           }"#,
        r#"path "secret/foo" {
             capabilities = ["update"]
             allowed_parameters = { "color" = ["blue"], "size" = [] }
           }"#,
    ]);
    let check = |body: Value| acl.check("secret/foo", C | U, Some(&params(body))).allowed;
    assert!(check(json!({"color": "red"})));
    assert!(check(json!({"color": "blue", "size": 9})));
    assert!(!check(json!({"color": "green"})));
    assert!(!check(json!({"shape": "round"})));
}

#[test]
fn wrapping_ttl_bounds_require_a_wrapped_response() {
    let acl = acl(&[r#"
        path "secret/wrapped" {
          capabilities = ["read"]
          min_wrapping_ttl = "1m"
          max_wrapping_ttl = "1h"
        }"#]);
    let wrapped = |ttl: Option<u64>| {
        acl.check_wrapped("secret/wrapped", R, None, ttl.map(Duration::from_secs))
            .allowed
    };
    assert!(!wrapped(None));
    assert!(!wrapped(Some(30)));
    assert!(wrapped(Some(600)));
    assert!(!wrapped(Some(7200)));
}

#[test]
fn root_acl_allows_everything_with_sudo() {
    let acl = Acl::root();
    assert!(acl.is_root());
    let decision = acl.check("sys/raw/anything", Capabilities::SUDO | U, None);
    assert!(decision.allowed && decision.root && decision.sudo);
    assert_eq!(acl.capability_names("any/path"), vec!["root"]);
    assert!(acl.capabilities("x").contains(Capabilities::SUDO));

    let root_policy = parse_policy("root", "").unwrap();
    assert!(Acl::compile(std::slice::from_ref(&root_policy)).is_root());
    let other = parse_policy("other", "").unwrap();
    assert!(!Acl::compile(&[root_policy, other]).is_root());
}

#[test]
fn default_policy_grants_token_self_service() {
    let acl = acl(&[DEFAULT_POLICY]);
    assert!(acl.check("auth/token/lookup-self", R, None).allowed);
    assert!(acl.check("auth/token/renew-self", U, None).allowed);
    assert!(acl.check("cubbyhole/my/secret", C, None).allowed);
    assert!(acl.check("sys/tools/hash/sha2-256", U, None).allowed);
    assert!(!acl.check("auth/token/create", U, None).allowed);
    assert!(!acl.check("secret/data/x", R, None).allowed);
}

#[test]
fn acl_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Acl>();
}
