//! Escalation attempts against the token store, the identity store and the lease API, each
//! asserting the refusal *and* that storage did not change (a byte-for-byte snapshot of the
//! physical store before and after). Every path named in Vault's token, identity and lease
//! rules that could hand a caller more than it holds is tried here.

mod common;
use coffer_sdk::logical::Connection;
use coffer_sdk::Operation::{self, *};
use coffer_sdk::{Request, Response};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Write a policy as root.
async fn policy(h: &Harness, name: &str, text: &str) {
    h.ok(
        Update,
        &format!("sys/policies/acl/{name}"),
        json!({ "policy": text }),
    )
    .await;
}

/// A token (created by root) holding exactly `policies`, with default dropped.
async fn holder(h: &Harness, policies: &[&str]) -> String {
    h.token(json!({"policies": policies, "no_default_policy": true}))
        .await
}

/// Attempt a request that must be refused with `status`; storage must be unchanged.
async fn refused(h: &Harness, op: Operation, path: &str, data: Value, token: &str, status: u16) {
    let before = h.snapshot().await;
    let result = h.call(op, path, data.clone(), token).await;
    match result {
        Ok(resp) => panic!(
            "{op:?} {path} {data} was allowed: {:?}",
            resp.auth.map(|a| a.policies)
        ),
        Err(e) => assert_eq!(e.status(), status, "{op:?} {path} {data}: {e}"),
    }
    assert!(
        before == h.snapshot().await,
        "{op:?} {path} {data} was refused but changed storage"
    );
}

fn auth_of(resp: Response) -> coffer_sdk::logical::Auth {
    resp.auth.expect("an auth block")
}

async fn lookup(h: &Harness, token: &str) -> Value {
    data(
        &h.ok(Update, "auth/token/lookup", json!({ "token": token }))
            .await,
    )
}

const CREATE_WITH_ROLES: &str =
    r#"path "auth/token/create/*" { capabilities = ["create", "update"] }"#;
const CREATE_PLAIN: &str = r#"
path "auth/token/create" { capabilities = ["create", "update"] }
path "auth/token/create-orphan" { capabilities = ["create", "update"] }
"#;
const CREATE_SUDO: &str = r#"
path "auth/token/create" { capabilities = ["create", "update", "sudo"] }
path "auth/token/create-orphan" { capabilities = ["create", "update", "sudo"] }
"#;

#[tokio::test]
async fn the_reported_attack_a_role_without_allowed_policies_does_not_yield_root() {
    let h = Harness::new().await;
    policy(&h, "token-creator", CREATE_WITH_ROLES).await;
    let attacker = holder(&h, &["token-creator"]).await;
    h.ok(Update, "auth/token/roles/plain", json!({})).await;
    for policies in [
        json!(["root"]),
        json!(["ROOT"]),
        json!([" Root "]),
        json!("root,default"),
    ] {
        refused(
            &h,
            Update,
            "auth/token/create/plain",
            json!({ "policies": policies }),
            &attacker,
            400,
        )
        .await;
    }
    // Nor anything else the attacker does not hold.
    refused(
        &h,
        Update,
        "auth/token/create/plain",
        json!({"policies": ["admin"]}),
        &attacker,
        400,
    )
    .await;
    // And a mount by anything the attacker could make is impossible: it still cannot mount.
    refused(
        &h,
        Update,
        "sys/mounts/x",
        json!({"type": "kv"}),
        &attacker,
        403,
    )
    .await;
    // Asking for nothing gives the caller's own policies, which is all it may have.
    let child = auth_of(
        h.call(Update, "auth/token/create/plain", json!({}), &attacker)
            .await
            .unwrap(),
    );
    assert_eq!(child.policies, vec!["default", "token-creator"]);
}

#[tokio::test]
async fn root_comes_only_from_root_through_every_path() {
    let h = Harness::new().await;
    policy(
        &h,
        "creator",
        &format!("{CREATE_PLAIN}\n{CREATE_WITH_ROLES}"),
    )
    .await;
    policy(
        &h,
        "sudo-creator",
        &format!("{CREATE_SUDO}\n{CREATE_WITH_ROLES}"),
    )
    .await;
    h.ok(
        Update,
        "auth/token/roles/allows-root",
        json!({"allowed_policies": ["root", "creator"]}),
    )
    .await;
    h.ok(
        Update,
        "auth/token/roles/glob-all",
        json!({"allowed_policies_glob": ["*"]}),
    )
    .await;
    for caller_policies in [vec!["creator"], vec!["sudo-creator"]] {
        let caller = holder(&h, &caller_policies).await;
        for (path, body) in [
            ("auth/token/create", json!({"policies": ["root"]})),
            (
                "auth/token/create",
                json!({"policies": ["Root"], "no_parent": true}),
            ),
            ("auth/token/create-orphan", json!({"policies": ["root"]})),
            (
                "auth/token/create/allows-root",
                json!({"policies": ["root"]}),
            ),
            (
                "auth/token/create/allows-root",
                json!({"policies": ["ROOT", "creator"]}),
            ),
            ("auth/token/create/glob-all", json!({"policies": ["root"]})),
        ] {
            refused(&h, Update, path, body, &caller, 400).await;
        }
    }
    // A role whose allowed list is exactly root: asking for nothing picks the allowed list.
    h.ok(
        Update,
        "auth/token/roles/only-root",
        json!({"allowed_policies": ["root"]}),
    )
    .await;
    let caller = holder(&h, &["creator"]).await;
    refused(
        &h,
        Update,
        "auth/token/create/only-root",
        json!({}),
        &caller,
        400,
    )
    .await;
    // Root itself may, through a role that allows it.
    let made = auth_of(
        h.ok(
            Update,
            "auth/token/create/allows-root",
            json!({"policies": ["root"]}),
        )
        .await,
    );
    assert_eq!(made.policies, vec!["root"]);
}

#[tokio::test]
async fn children_are_subsets_of_their_creator_and_disallowed_always_applies() {
    let h = Harness::new().await;
    policy(
        &h,
        "creator",
        &format!("{CREATE_PLAIN}\n{CREATE_WITH_ROLES}"),
    )
    .await;
    policy(
        &h,
        "sudo-creator",
        &format!("{CREATE_SUDO}\n{CREATE_WITH_ROLES}"),
    )
    .await;
    policy(
        &h,
        "a",
        r#"path "secret/data/a" { capabilities = ["read"] }"#,
    )
    .await;
    policy(
        &h,
        "b",
        r#"path "secret/data/b" { capabilities = ["read"] }"#,
    )
    .await;
    let caller = holder(&h, &["creator", "a"]).await;
    let sudo_caller = holder(&h, &["sudo-creator", "a"]).await;
    h.ok(Update, "auth/token/roles/open", json!({})).await;
    h.ok(
        Update,
        "auth/token/roles/no-a",
        json!({"disallowed_policies": ["a"]}),
    )
    .await;
    h.ok(
        Update,
        "auth/token/roles/no-a-glob",
        json!({"disallowed_policies_glob": ["a*"]}),
    )
    .await;
    h.ok(
        Update,
        "auth/token/roles/b-only",
        json!({"allowed_policies": ["b"], "disallowed_policies": ["b"]}),
    )
    .await;
    for who in [&caller, &sudo_caller] {
        refused(
            &h,
            Update,
            "auth/token/create",
            json!({"policies": ["b"]}),
            who,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            "auth/token/create-orphan",
            json!({"policies": ["a", "b"]}),
            who,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            "auth/token/create/open",
            json!({"policies": ["b"]}),
            who,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            "auth/token/create/no-a",
            json!({"policies": ["a"]}),
            who,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            "auth/token/create/no-a-glob",
            json!({"policies": ["a"]}),
            who,
            400,
        )
        .await;
        // A role that both allows and disallows b: disallowed wins.
        refused(
            &h,
            Update,
            "auth/token/create/b-only",
            json!({"policies": ["b"]}),
            who,
            400,
        )
        .await;
    }
    // No role and no request: the caller's own set. A subset is fine.
    let own = auth_of(
        h.call(Update, "auth/token/create", json!({}), &caller)
            .await
            .unwrap(),
    );
    assert_eq!(own.policies, vec!["a", "creator", "default"]);
    let sub = auth_of(
        h.call(
            Update,
            "auth/token/create",
            json!({"policies": ["a"]}),
            &caller,
        )
        .await
        .unwrap(),
    );
    assert_eq!(sub.policies, vec!["a", "default"]);
    // A role that names allowed policies grants them (root wrote the role).
    h.ok(
        Update,
        "auth/token/roles/b-ok",
        json!({"allowed_policies": ["b"]}),
    )
    .await;
    let via_role = auth_of(
        h.call(Update, "auth/token/create/b-ok", json!({}), &caller)
            .await
            .unwrap(),
    );
    assert_eq!(via_role.policies, vec!["b", "default"]);
    let via_glob_role = {
        h.ok(
            Update,
            "auth/token/roles/b-glob",
            json!({"allowed_policies_glob": ["b*"]}),
        )
        .await;
        auth_of(
            h.call(
                Update,
                "auth/token/create/b-glob",
                json!({"policies": ["b"]}),
                &caller,
            )
            .await
            .unwrap(),
        )
    };
    assert_eq!(via_glob_role.policies, vec!["b", "default"]);
    refused(
        &h,
        Update,
        "auth/token/create/b-glob",
        json!({"policies": ["a"]}),
        &caller,
        400,
    )
    .await;
}

#[tokio::test]
async fn a_role_is_used_only_through_its_own_path() {
    let h = Harness::new().await;
    policy(&h, "creator", CREATE_PLAIN).await;
    policy(
        &h,
        "admin",
        r#"path "sys/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#,
    )
    .await;
    h.ok(
        Update,
        "auth/token/roles/admin-role",
        json!({"allowed_policies": ["admin"]}),
    )
    .await;
    let caller = holder(&h, &["creator"]).await;
    refused(
        &h,
        Update,
        "auth/token/create",
        json!({"role_name": "admin-role"}),
        &caller,
        400,
    )
    .await;
    refused(
        &h,
        Update,
        "auth/token/create",
        json!({"role_name": "admin-role", "policies": ["admin"]}),
        &caller,
        400,
    )
    .await;
    refused(
        &h,
        Update,
        "auth/token/create-orphan",
        json!({"role_name": "admin-role"}),
        &caller,
        400,
    )
    .await;
    // The role's own path is governed by its ACL, which this caller lacks.
    refused(
        &h,
        Update,
        "auth/token/create/admin-role",
        json!({}),
        &caller,
        403,
    )
    .await;
}

#[tokio::test]
async fn renewal_respects_the_token_roles_max_ttl_and_says_so() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "auth/token/roles/short",
        json!({"token_max_ttl": "2h", "token_ttl": "1h"}),
    )
    .await;
    let t = auth_of(h.ok(Update, "auth/token/create/short", json!({})).await).client_token;
    h.clock.advance(Duration::from_secs(50 * 60));
    let resp = h
        .call(
            Update,
            "auth/token/renew-self",
            json!({"increment": "1h"}),
            &t,
        )
        .await
        .unwrap();
    assert!(resp.warnings.is_empty(), "{:?}", resp.warnings);
    h.clock.advance(Duration::from_secs(50 * 60));
    let resp = h
        .call(
            Update,
            "auth/token/renew-self",
            json!({"increment": "1h"}),
            &t,
        )
        .await
        .unwrap();
    assert!(
        resp.warnings.iter().any(|w| w.contains("max_ttl")),
        "a capped renewal says so: {:?}",
        resp.warnings
    );
    assert_eq!(auth_of(resp).lease_duration, 20 * 60);
    h.clock.advance(Duration::from_secs(20 * 60 + 1));
    assert_eq!(
        h.call(Read, "auth/token/lookup-self", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403,
        "the token is gone at its role's maximum"
    );
}

#[tokio::test]
async fn renewal_respects_explicit_max_ttl_the_mount_tune_and_the_auth_methods_role() {
    let h = Harness::new().await;
    // explicit_max_ttl
    let t = h
        .token(json!({"ttl": "1h", "explicit_max_ttl": "2h"}))
        .await;
    h.clock.advance(Duration::from_secs(50 * 60));
    h.call(
        Update,
        "auth/token/renew-self",
        json!({"increment": "1h"}),
        &t,
    )
    .await
    .unwrap();
    h.clock.advance(Duration::from_secs(50 * 60));
    let resp = h
        .call(
            Update,
            "auth/token/renew-self",
            json!({"increment": "10h"}),
            &t,
        )
        .await
        .unwrap();
    assert!(!resp.warnings.is_empty());
    assert_eq!(auth_of(resp).lease_duration, 20 * 60);

    // An AppRole whose role caps token_max_ttl at 2h; the mount is later tuned to 1h.
    h.ok(Update, "sys/auth/approle", json!({"type": "approle"}))
        .await;
    h.ok(
        Update,
        "auth/approle/role/r",
        json!({"token_ttl": "30m", "token_max_ttl": "2h"}),
    )
    .await;
    let role_id = data(&h.ok(Read, "auth/approle/role/r/role-id", json!({})).await)["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let login = || async {
        let sid = h.secret_id("r").await;
        auth_of(
            h.call(
                Update,
                "auth/approle/login",
                json!({"role_id": role_id, "secret_id": sid}),
                "",
            )
            .await
            .unwrap(),
        )
        .client_token
    };
    let t = login().await;
    h.clock.advance(Duration::from_secs(25 * 60));
    h.call(
        Update,
        "auth/token/renew-self",
        json!({"increment": "1h"}),
        &t,
    )
    .await
    .unwrap();
    h.clock.advance(Duration::from_secs(55 * 60));
    let resp = h
        .call(
            Update,
            "auth/token/renew-self",
            json!({"increment": "1h"}),
            &t,
        )
        .await
        .unwrap();
    assert!(
        resp.warnings.iter().any(|w| w.contains("max_ttl")),
        "{:?}",
        resp.warnings
    );
    assert_eq!(
        auth_of(resp).lease_duration,
        40 * 60,
        "the role's 2h from creation"
    );

    let t = login().await;
    h.ok(
        Update,
        "sys/auth/approle/tune",
        json!({"max_lease_ttl": "1h"}),
    )
    .await;
    h.clock.advance(Duration::from_secs(20 * 60));
    let resp = h
        .call(
            Update,
            "auth/token/renew-self",
            json!({"increment": "2h"}),
            &t,
        )
        .await
        .unwrap();
    assert!(
        resp.warnings.iter().any(|w| w.contains("max_ttl")),
        "{:?}",
        resp.warnings
    );
    assert_eq!(
        auth_of(resp).lease_duration,
        40 * 60,
        "the mount's tuned 1h from creation"
    );

    // Renewing through the lease API is held to the same maximum.
    let resp = h
        .call(
            Update,
            "auth/token/renew",
            json!({"token": t, "increment": "5h"}),
            &h.root,
        )
        .await
        .unwrap();
    assert_eq!(auth_of(resp).lease_duration, 40 * 60);
}

#[tokio::test]
async fn periodic_tokens_need_sudo_or_root_unless_a_role_sets_the_period() {
    let h = Harness::new().await;
    policy(
        &h,
        "creator",
        &format!("{CREATE_PLAIN}\n{CREATE_WITH_ROLES}"),
    )
    .await;
    policy(&h, "sudo-creator", CREATE_SUDO).await;
    let caller = holder(&h, &["creator"]).await;
    refused(
        &h,
        Update,
        "auth/token/create",
        json!({"period": "1h"}),
        &caller,
        400,
    )
    .await;
    refused(
        &h,
        Update,
        "auth/token/create-orphan",
        json!({"period": "24h"}),
        &caller,
        400,
    )
    .await;
    refused(
        &h,
        Update,
        "auth/token/create",
        json!({"no_parent": true}),
        &caller,
        400,
    )
    .await;
    refused(
        &h,
        Update,
        "auth/token/create",
        json!({"id": "chosen-id"}),
        &caller,
        400,
    )
    .await;
    let sudo = holder(&h, &["sudo-creator"]).await;
    let made = auth_of(
        h.call(Update, "auth/token/create", json!({"period": "1h"}), &sudo)
            .await
            .unwrap(),
    );
    assert_eq!(lookup(&h, &made.client_token).await["period"], 3600);
    h.ok(
        Update,
        "auth/token/roles/periodic",
        json!({"token_period": "1h"}),
    )
    .await;
    let via_role = auth_of(
        h.call(Update, "auth/token/create/periodic", json!({}), &caller)
            .await
            .unwrap(),
    );
    assert_eq!(lookup(&h, &via_role.client_token).await["period"], 3600);
}

fn from(addr: &str) -> Connection {
    Connection {
        remote_addr: Some(format!("{addr}:40000").parse().unwrap()),
        peer_certificates: Vec::new(),
    }
}

async fn call_from(
    h: &Harness,
    op: Operation,
    path: &str,
    body: Value,
    token: &str,
    addr: &str,
) -> coffer_sdk::Result<Response> {
    let mut req = Request::new(op, path).with_data(body);
    req.connection = from(addr);
    h.call_on_connection(req, Some(token)).await
}

#[tokio::test]
async fn children_inherit_their_creators_cidr_binding_and_roles_only_narrow_it() {
    let h = Harness::new().await;
    policy(
        &h,
        "creator",
        &format!("{CREATE_PLAIN}\n{CREATE_WITH_ROLES}"),
    )
    .await;
    h.ok(
        Update,
        "auth/token/roles/bound",
        json!({"allowed_policies": ["creator"], "token_bound_cidrs": ["10.0.0.0/8"]}),
    )
    .await;
    h.ok(
        Update,
        "auth/token/roles/elsewhere",
        json!({"token_bound_cidrs": ["192.168.0.0/16"]}),
    )
    .await;
    h.ok(
        Update,
        "auth/token/roles/narrower",
        json!({"token_bound_cidrs": ["10.1.0.0/16"]}),
    )
    .await;
    refused(
        &h,
        Update,
        "auth/token/roles/bad",
        json!({"token_bound_cidrs": ["not-a-cidr"]}),
        &h.root.clone(),
        400,
    )
    .await;
    let parent = auth_of(
        h.ok(
            Update,
            "auth/token/create/bound",
            json!({"policies": ["creator"]}),
        )
        .await,
    )
    .client_token;
    assert_eq!(
        lookup(&h, &parent).await["bound_cidrs"],
        json!(["10.0.0.0/8"])
    );
    assert_eq!(
        call_from(
            &h,
            Read,
            "auth/token/lookup-self",
            json!({}),
            &parent,
            "192.168.1.1"
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
    for path in ["auth/token/create", "auth/token/create-orphan"] {
        let child = auth_of(
            call_from(&h, Update, path, json!({}), &parent, "10.2.3.4")
                .await
                .unwrap(),
        )
        .client_token;
        assert_eq!(
            call_from(
                &h,
                Read,
                "auth/token/lookup-self",
                json!({}),
                &child,
                "192.168.1.1"
            )
            .await
            .unwrap_err()
            .status(),
            403,
            "{path}: the child is bound like its parent"
        );
        call_from(
            &h,
            Read,
            "auth/token/lookup-self",
            json!({}),
            &child,
            "10.9.9.9",
        )
        .await
        .expect("usable inside the binding");
    }
    // A role binding elsewhere cannot widen the parent's: the child is usable nowhere.
    let child = auth_of(
        call_from(
            &h,
            Update,
            "auth/token/create/elsewhere",
            json!({}),
            &parent,
            "10.2.3.4",
        )
        .await
        .unwrap(),
    )
    .client_token;
    for addr in ["192.168.1.1", "10.2.3.4", "127.0.0.1"] {
        assert_eq!(
            call_from(&h, Read, "auth/token/lookup-self", json!({}), &child, addr)
                .await
                .unwrap_err()
                .status(),
            403,
            "{addr}"
        );
    }
    // A narrower role binding narrows.
    let child = auth_of(
        call_from(
            &h,
            Update,
            "auth/token/create/narrower",
            json!({}),
            &parent,
            "10.2.3.4",
        )
        .await
        .unwrap(),
    )
    .client_token;
    assert_eq!(
        call_from(
            &h,
            Read,
            "auth/token/lookup-self",
            json!({}),
            &child,
            "10.2.3.4"
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
    call_from(
        &h,
        Read,
        "auth/token/lookup-self",
        json!({}),
        &child,
        "10.1.3.4",
    )
    .await
    .expect("inside both bindings");
}

async fn token_leases(h: &Harness) -> usize {
    h.ok(List, "sys/leases/lookup/auth/token/", json!({}))
        .await
        .data
        .and_then(|d| d.get("keys").and_then(|k| k.as_array()).map(|k| k.len()))
        .unwrap_or(0)
}

#[tokio::test]
async fn a_limited_use_token_cannot_create_children() {
    let h = Harness::new().await;
    policy(
        &h,
        "creator",
        &format!("{CREATE_PLAIN}\n{CREATE_WITH_ROLES}"),
    )
    .await;
    h.ok(Update, "auth/token/roles/open", json!({})).await;
    let limited = h
        .token(json!({"policies": ["creator"], "num_uses": 5}))
        .await;
    let before = token_leases(&h).await;
    for path in [
        "auth/token/create",
        "auth/token/create-orphan",
        "auth/token/create/open",
    ] {
        let err = h.call(Update, path, json!({}), &limited).await.unwrap_err();
        assert_eq!(err.status(), 400, "{path}: {err}");
    }
    assert_eq!(token_leases(&h).await, before, "no token was created");
    // The last use is no loophole either.
    let once = h
        .token(json!({"policies": ["creator"], "num_uses": 1}))
        .await;
    assert_eq!(
        h.call(Update, "auth/token/create", json!({}), &once)
            .await
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(token_leases(&h).await, before);
}

#[tokio::test]
async fn identity_policies_cannot_contain_root() {
    let h = Harness::new().await;
    let root = h.root.clone();
    let entity = data(
        &h.ok(
            Update,
            "identity/entity",
            json!({"name": "e1", "policies": ["a"]}),
        )
        .await,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let group = data(
        &h.ok(
            Update,
            "identity/group",
            json!({"name": "g1", "policies": ["a"]}),
        )
        .await,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    for policies in [json!(["root"]), json!(["ROOT", "a"]), json!(" root ")] {
        refused(
            &h,
            Update,
            "identity/entity",
            json!({"name": "e2", "policies": policies}),
            &root,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            "identity/entity",
            json!({"name": "e1", "policies": policies}),
            &root,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            &format!("identity/entity/id/{entity}"),
            json!({"policies": policies}),
            &root,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            "identity/entity/name/e1",
            json!({"policies": policies}),
            &root,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            "identity/group",
            json!({"name": "g2", "policies": policies}),
            &root,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            &format!("identity/group/id/{group}"),
            json!({"policies": policies}),
            &root,
            400,
        )
        .await;
        refused(
            &h,
            Update,
            "identity/group/name/g1",
            json!({"policies": policies}),
            &root,
            400,
        )
        .await;
    }
}

#[tokio::test]
async fn listing_leases_needs_sudo_but_looking_one_up_does_not() {
    let h = Harness::new().await;
    policy(
        &h,
        "leases",
        r#"path "sys/leases/lookup/*" { capabilities = ["list", "update"] }
path "sys/leases/lookup" { capabilities = ["list", "update"] }"#,
    )
    .await;
    policy(
        &h,
        "leases-sudo",
        r#"path "sys/leases/lookup/*" { capabilities = ["list", "update", "sudo"] }"#,
    )
    .await;
    let t = holder(&h, &["leases"]).await;
    refused(
        &h,
        List,
        "sys/leases/lookup/auth/token/",
        json!({}),
        &t,
        403,
    )
    .await;
    refused(&h, List, "sys/leases/lookup/", json!({}), &t, 403).await;
    let sudo = holder(&h, &["leases-sudo"]).await;
    h.call(List, "sys/leases/lookup/auth/token/", json!({}), &sudo)
        .await
        .expect("sudo may list");
    let keys = h
        .ok(List, "sys/leases/lookup/auth/token/create/", json!({}))
        .await
        .data
        .unwrap()["keys"]
        .clone();
    let lease_id = format!("auth/token/create/{}", keys[0].as_str().unwrap());
    h.call(
        Update,
        "sys/leases/lookup",
        json!({"lease_id": lease_id}),
        &t,
    )
    .await
    .expect("lookup needs no sudo");
}

#[tokio::test]
async fn caller_chosen_metadata_cannot_join_a_dynamic_group() {
    let h = Harness::new().await;
    policy(
        &h,
        "prod-secret",
        r#"path "secret/data/prod" { capabilities = ["read"] }"#,
    )
    .await;
    h.ok(Update, "secret/data/prod", json!({"data": {"k": "v"}}))
        .await;
    h.ok(Update, "identity/group", json!({"name": "prod", "type": "dynamic", "rule": "any {instance.compartment.id = 'prod'}", "policies": ["prod-secret"]})).await;
    h.ok(Update, "sys/auth/approle", json!({"type": "approle"}))
        .await;
    h.ok(Update, "auth/approle/role/app", json!({})).await;
    // A token that may only generate secret ids for that role.
    policy(
        &h,
        "sid-gen",
        r#"path "auth/approle/role/app/secret-id" { capabilities = ["update"] }"#,
    )
    .await;
    let attacker = holder(&h, &["sid-gen"]).await;
    let role_id = data(&h.ok(Read, "auth/approle/role/app/role-id", json!({})).await)["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    for key in [
        "instance.compartment.id",
        "alias.metadata.x",
        "entity.metadata.instance.compartment.id",
    ] {
        let meta = json!({ key: "prod" }).to_string();
        let sid = data(
            &h.call(
                Update,
                "auth/approle/role/app/secret-id",
                json!({"metadata": meta}),
                &attacker,
            )
            .await
            .unwrap(),
        )["secret_id"]
            .as_str()
            .unwrap()
            .to_string();
        let auth = auth_of(
            h.call(
                Update,
                "auth/approle/login",
                json!({"role_id": role_id, "secret_id": sid}),
                "",
            )
            .await
            .unwrap(),
        );
        assert_eq!(
            auth.identity_policies.clone().unwrap_or_default(),
            Vec::<String>::new(),
            "{key}"
        );
        assert_eq!(
            h.call(Read, "secret/data/prod", json!({}), &auth.client_token)
                .await
                .unwrap_err()
                .status(),
            403,
            "{key}"
        );
    }
    // The same attribute written by an identity admin on the entity counts under its namespace.
    h.ok(
        Update,
        "identity/group/name/prod",
        json!({"rule": "any {entity.metadata.instance.compartment.id = 'prod'}"}),
    )
    .await;
    let sid = h.secret_id("app").await;
    let auth = auth_of(
        h.call(
            Update,
            "auth/approle/login",
            json!({"role_id": role_id, "secret_id": sid}),
            "",
        )
        .await
        .unwrap(),
    );
    h.ok(
        Update,
        &format!("identity/entity/id/{}", auth.entity_id),
        json!({"metadata": {"instance.compartment.id": "prod"}}),
    )
    .await;
    h.call(Read, "secret/data/prod", json!({}), &auth.client_token)
        .await
        .expect("admin-written attribute");
}
