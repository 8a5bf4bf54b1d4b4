//! Property test: the compiled ACL agrees with a naive model written straight
//! from Vault's documented rules, on random policy sets over a tiny alphabet.

use coffer_policy::{parse_policy, Acl, Capabilities, Policy};
use proptest::prelude::*;

const GRANTABLE: [&str; 6] = ["create", "read", "update", "list", "sudo", "deny"];

/// A pattern of 1-3 segments from a tiny alphabet with `+`, maybe a trailing
/// slash, maybe a trailing `*` (never `+*`, which policies forbid).
fn pattern() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "+"]), 1..=3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(segments, slash, star)| {
            let mut text = segments.join("/");
            if slash {
                text.push('/');
            }
            if star && !text.ends_with('+') {
                text.push('*');
            }
            text
        })
}

fn capability_list() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(GRANTABLE.to_vec()), 1..=3).prop_map(|mut names| {
        names.sort_unstable();
        names.dedup();
        names
    })
}

fn policy_text() -> impl Strategy<Value = String> {
    prop::collection::vec((pattern(), capability_list()), 1..=4).prop_map(|rules| {
        rules
            .iter()
            .map(|(path, caps)| {
                let caps: Vec<String> = caps.iter().map(|c| format!("{c:?}")).collect();
                format!(
                    "path {path:?} {{\n  capabilities = [{}]\n}}\n",
                    caps.join(", ")
                )
            })
            .collect()
    })
}

fn request_path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "ab", "abc", "+", ""]),
            1..=4,
        ),
        any::<bool>(),
    )
        .prop_map(|(segments, slash)| {
            let mut text = segments.join("/");
            if slash {
                text.push('/');
            }
            text
        })
}

// ---- The naive model -------------------------------------------------------

fn is_wildcard_pattern(pattern: &str) -> bool {
    pattern.ends_with('*') || pattern.split('/').any(|segment| segment == "+")
}

/// Character-level matcher: `+` (a whole segment) eats one segment, a final
/// `*` eats the rest, anything else must be equal.
fn naive_matches(pattern: &[u8], path: &[u8]) -> bool {
    match pattern {
        [] => path.is_empty(),
        [b'*'] => true,
        [b'+', rest @ ..] => {
            let segment_end = path.iter().position(|&c| c == b'/').unwrap_or(path.len());
            naive_matches(rest, &path[segment_end..])
        }
        [c, rest @ ..] => path.first() == Some(c) && naive_matches(rest, &path[1..]),
    }
}

/// Higher is better: Vault's five documented tie-breaks, in order.
fn naive_priority(pattern: &str) -> (usize, bool, i64, usize, String) {
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    let first = pattern.find(['+', '*']).unwrap_or(pattern.len());
    let plus_segments = body.split('/').filter(|s| *s == "+").count() as i64;
    (
        first,
        !pattern.ends_with('*'),
        -plus_segments,
        body.len(),
        body.to_owned(),
    )
}

fn merged_rules(policies: &[Policy]) -> Vec<(String, Capabilities)> {
    let mut merged: Vec<(String, Capabilities)> = Vec::new();
    for rule in policies.iter().flat_map(|p| &p.rules) {
        match merged.iter_mut().find(|(path, _)| *path == rule.path) {
            Some((_, caps)) if caps.contains(Capabilities::DENY) => {}
            Some((_, caps)) if rule.capabilities.contains(Capabilities::DENY) => {
                *caps = Capabilities::DENY
            }
            Some((_, caps)) => *caps |= rule.capabilities,
            None => merged.push((rule.path.clone(), rule.capabilities)),
        }
    }
    merged
}

fn naive_best_glob(rules: &[(String, Capabilities)], path: &str) -> Option<Capabilities> {
    rules
        .iter()
        .filter(|(pattern, _)| is_wildcard_pattern(pattern))
        .filter(|(pattern, _)| naive_matches(pattern.as_bytes(), path.as_bytes()))
        .max_by_key(|(pattern, _)| naive_priority(pattern))
        .map(|(_, caps)| *caps)
}

fn naive_capabilities(policies: &[Policy], path: &str, list: bool) -> Option<Capabilities> {
    // Request paths lose their leading slashes before matching.
    let path = path.trim_start_matches('/');
    let rules = merged_rules(policies);
    let exact = |p: &str| {
        rules
            .iter()
            .find(|(pattern, _)| !is_wildcard_pattern(pattern) && pattern == p)
            .map(|(_, caps)| *caps)
    };
    let trimmed = path.strip_suffix('/');
    exact(path)
        .or_else(|| trimmed.filter(|_| list).and_then(exact))
        .or_else(|| {
            trimmed
                .filter(|_| list)
                .and_then(|t| naive_best_glob(&rules, t))
        })
        .or_else(|| naive_best_glob(&rules, path))
}

// ---- Properties -------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_acl_agrees_with_the_naive_model(
        texts in prop::collection::vec(policy_text(), 1..=3),
        paths in prop::collection::vec(request_path(), 1..=8),
    ) {
        let policies: Vec<Policy> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| parse_policy(&format!("p{i}"), text).unwrap())
            .collect();
        let acl = Acl::compile(&policies);
        let granted_anywhere = policies
            .iter()
            .flat_map(|p| &p.rules)
            .fold(Capabilities::NONE, |all, rule| all | rule.capabilities);

        for path in &paths {
            for required in [
                Capabilities::READ,
                Capabilities::LIST,
                Capabilities::UPDATE,
                Capabilities::CREATE,
                Capabilities::SUDO,
            ] {
                let list = required == Capabilities::LIST;
                let expected = naive_capabilities(&policies, path, list)
                    .is_some_and(|caps| !caps.contains(Capabilities::DENY) && caps.contains(required));
                let decision = acl.check(path, required, None);
                prop_assert_eq!(decision.allowed, expected, "path {:?} required {:?}", path, required);
                prop_assert!(!decision.root);
            }

            let expected = naive_capabilities(&policies, path, true).unwrap_or(Capabilities::NONE);
            let actual = acl.capabilities(path);
            prop_assert_eq!(actual, expected, "capabilities at {:?}", path);
            prop_assert!(
                granted_anywhere.contains(actual),
                "capability {:?} at {:?} granted by no policy", actual, path
            );
        }
    }
}

#[test]
fn naive_matcher_follows_the_documented_examples() {
    assert!(naive_matches(b"secret/+/teamb", b"secret/x/teamb"));
    assert!(!naive_matches(b"secret/+/teamb", b"secret/x/y/teamb"));
    assert!(naive_matches(b"secret/zip-*", b"secret/zip-zap/zong"));
    assert!(!naive_matches(b"secret/foo", b"secret/food"));
}
