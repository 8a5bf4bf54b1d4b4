//! Identity through the pipeline: entities created at login, groups, dynamic groups matched on
//! login attributes, identity policies applied on the next request after a change.

mod common;
use coffer_sdk::Operation::*;
use common::*;
use serde_json::{json, Value};

const MY_SECRET_POLICY: &str = r#"path "secret/data/my-secret" { capabilities = ["read"] }"#;

/// An AppRole whose secret ids carry host attributes as metadata, like an instance principal.
async fn approle_host(h: &Harness, compartment: &str, instance: &str) -> String {
    let role = format!("host-{instance}");
    h.ok(
        Update,
        &format!("auth/approle/role/{role}"),
        json!({"token_policies": []}),
    )
    .await;
    let role_id = h
        .ok(
            Read,
            &format!("auth/approle/role/{role}/role-id"),
            json!({}),
        )
        .await
        .data
        .unwrap()["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let meta = json!({"instance.compartment.id": compartment, "instance.id": instance}).to_string();
    let secret_id = h
        .ok(
            Update,
            &format!("auth/approle/role/{role}/secret-id"),
            json!({"metadata": meta}),
        )
        .await
        .data
        .unwrap()["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let login = h
        .call(
            Update,
            "auth/approle/login",
            json!({"role_id": role_id, "secret_id": secret_id}),
            "",
        )
        .await
        .unwrap();
    let auth = login.auth.unwrap();
    // The secret id's metadata is the caller's word; the host's attributes become rule inputs
    // only when an identity admin writes them on the entity.
    h.ok(
        Update,
        &format!("identity/entity/id/{}", auth.entity_id),
        json!({"metadata": {"instance.compartment.id": compartment, "instance.id": instance}}),
    )
    .await;
    auth.client_token
}

async fn setup() -> Harness {
    let h = Harness::new().await;
    h.ok(Update, "sys/auth/approle", json!({"type": "approle"}))
        .await;
    h.ok(
        Update,
        "sys/policies/acl/my-secret",
        json!({"policy": MY_SECRET_POLICY}),
    )
    .await;
    h.ok(
        Update,
        "secret/data/my-secret",
        json!({"data": {"password": "s3cr3t"}}),
    )
    .await;
    h.ok(
        Update,
        "secret/data/other",
        json!({"data": {"password": "nope"}}),
    )
    .await;
    h
}

#[tokio::test]
async fn seed_scenario_dynamic_group_grants_exactly_one_secret_to_prod_hosts() {
    let h = setup().await;
    h.ok(Update, "identity/group", json!({"name": "prod-hosts", "type": "dynamic", "rule": "any {entity.metadata.instance.compartment.id = 'prod'}", "policies": ["my-secret"]})).await;
    let prod = approle_host(&h, "prod", "i-1").await;
    let dev = approle_host(&h, "dev", "i-2").await;
    let resp = h
        .call(Read, "secret/data/my-secret", json!({}), &prod)
        .await
        .expect("a prod host reads its secret");
    assert_eq!(resp.data_map().unwrap()["data"]["password"], "s3cr3t");
    assert_eq!(
        h.call(Read, "secret/data/other", json!({}), &prod)
            .await
            .unwrap_err()
            .status(),
        403,
        "and nothing else"
    );
    assert_eq!(
        h.call(Read, "secret/data/my-secret", json!({}), &dev)
            .await
            .unwrap_err()
            .status(),
        403,
        "a dev host is denied"
    );
}

#[tokio::test]
async fn login_creates_one_entity_per_alias_and_reports_identity_policies() {
    let h = setup().await;
    h.ok(Update, "identity/group", json!({"name": "prod-hosts", "type": "dynamic", "rule": "all {alias.metadata.instance.compartment.id = 'prod', alias.metadata.instance.id = 'i-9'}", "policies": ["my-secret"]})).await;
    h.userpass_user("alice", json!({"password": "pw-alice-1"}))
        .await;
    let first = h
        .call(
            Update,
            "auth/userpass/login/alice",
            json!({"password": "pw-alice-1"}),
            "",
        )
        .await
        .unwrap()
        .auth
        .unwrap();
    let second = h
        .call(
            Update,
            "auth/userpass/login/alice",
            json!({"password": "pw-alice-1"}),
            "",
        )
        .await
        .unwrap()
        .auth
        .unwrap();
    assert!(!first.entity_id.is_empty());
    assert_eq!(
        first.entity_id, second.entity_id,
        "the same alias maps to the same entity"
    );
    let entity = h
        .ok(
            Read,
            &format!("identity/entity/id/{}", first.entity_id),
            json!({}),
        )
        .await
        .data
        .unwrap();
    assert_eq!(entity["aliases"][0]["name"], "alice");
    assert_eq!(entity["aliases"][0]["mount_path"], "auth/userpass/");
    // The host matching `all {...}` gets the group's policy as an identity policy.
    h.ok(Update, "auth/approle/role/h9", json!({})).await;
    let role_id = h
        .ok(Read, "auth/approle/role/h9/role-id", json!({}))
        .await
        .data
        .unwrap()["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let meta = json!({"instance.compartment.id": "prod", "instance.id": "i-9"}).to_string();
    let sid = h
        .ok(
            Update,
            "auth/approle/role/h9/secret-id",
            json!({"metadata": meta}),
        )
        .await
        .data
        .unwrap()["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = h
        .call(
            Update,
            "auth/approle/login",
            json!({"role_id": role_id, "secret_id": sid}),
            "",
        )
        .await
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.identity_policies, Some(vec!["my-secret".to_string()]));
    assert!(auth.policies.contains(&"my-secret".to_string()));
}

#[tokio::test]
async fn membership_changes_apply_on_the_next_request() {
    let h = setup().await;
    h.userpass_user("bob", json!({"password": "pw-bob-12"}))
        .await;
    let auth = h
        .call(
            Update,
            "auth/userpass/login/bob",
            json!({"password": "pw-bob-12"}),
            "",
        )
        .await
        .unwrap()
        .auth
        .unwrap();
    let t = auth.client_token;
    assert_eq!(
        h.call(Read, "secret/data/my-secret", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403
    );
    let group = h.ok(Update, "identity/group", json!({"name": "readers", "policies": ["my-secret"], "member_entity_ids": [auth.entity_id]})).await;
    let group_id = group.data.unwrap()["id"].as_str().unwrap().to_string();
    h.call(Read, "secret/data/my-secret", json!({}), &t)
        .await
        .expect("added to the group: allowed at once");
    h.ok(
        Update,
        &format!("identity/group/id/{group_id}"),
        json!({"member_entity_ids": []}),
    )
    .await;
    assert_eq!(
        h.call(Read, "secret/data/my-secret", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403,
        "removed: denied at once"
    );
    // Nested: bob in `inner`, `inner` a member of `outer` which carries the policy.
    let inner = h
        .ok(
            Update,
            "identity/group",
            json!({"name": "inner", "member_entity_ids": [auth.entity_id]}),
        )
        .await
        .data
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    h.ok(
        Update,
        "identity/group",
        json!({"name": "outer", "policies": ["my-secret"], "member_group_ids": [inner]}),
    )
    .await;
    h.call(Read, "secret/data/my-secret", json!({}), &t)
        .await
        .expect("policies flow down from parent groups");
    // Disabling the entity stops its tokens.
    h.ok(
        Update,
        &format!("identity/entity/id/{}", auth.entity_id),
        json!({"disabled": true}),
    )
    .await;
    let err = h
        .call(Read, "secret/data/my-secret", json!({}), &t)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 403);
}

#[tokio::test]
async fn malformed_rules_and_bad_identity_input_are_refused_without_changes() {
    let h = setup().await;
    let before = h.snapshot().await;
    let root = h.root.clone();
    for body in [
        json!({"name": "g", "type": "dynamic", "rule": "any {instance.compartment.id = prod}"}),
        json!({"name": "g", "type": "dynamic", "rule": "sometimes {a = 'b'}"}),
        json!({"name": "g", "type": "dynamic"}),
        json!({"name": "g", "type": "internal", "rule": "any {a = 'b'}"}),
        json!({"name": "g", "type": "external"}),
        json!({"name": "g", "member_entity_ids": ["no-such-entity"]}),
        json!({"name": "g/x"}),
        json!({"name": "g", "policies": 5}),
    ] {
        let err = h
            .call(Update, "identity/group", body.clone(), &root)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "{body}: {err}");
    }
    for body in [
        json!({"name": "e", "metadata": {"k": 1}}),
        json!({"id": "missing"}),
    ] {
        assert_eq!(
            h.call(Update, "identity/entity", body.clone(), &root)
                .await
                .unwrap_err()
                .status(),
            400,
            "{body}"
        );
    }
    assert_eq!(
        h.call(
            Update,
            "identity/entity-alias",
            json!({"name": "a", "canonical_id": "missing", "mount_accessor": "x"}),
            &root
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(
        before,
        h.snapshot().await,
        "refused identity writes change nothing"
    );
}

#[tokio::test]
async fn entities_groups_and_lookups_follow_vaults_api() {
    let h = setup().await;
    let created = h
        .ok(
            Update,
            "identity/entity",
            json!({"name": "web-01", "metadata": {"team": "web"}, "policies": ["my-secret"]}),
        )
        .await
        .data
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let by_name = h
        .ok(Read, "identity/entity/name/web-01", json!({}))
        .await
        .data
        .unwrap();
    assert_eq!(by_name["id"], id.as_str());
    assert_eq!(by_name["metadata"]["team"], "web");
    let names = h
        .ok(List, "identity/entity/name/", json!({}))
        .await
        .data
        .unwrap();
    assert_eq!(names["keys"], json!(["web-01"]));
    let found = h
        .ok(Update, "identity/lookup/entity", json!({"name": "web-01"}))
        .await
        .data
        .unwrap();
    assert_eq!(found["id"], id.as_str());
    h.ok(
        Update,
        "identity/entity-alias",
        json!({"name": "web-01-alias", "canonical_id": id, "mount_accessor": "userpass_x"}),
    )
    .await;
    let err = h
        .call(
            Update,
            "identity/entity-alias",
            json!({"name": "second", "canonical_id": id, "mount_accessor": "userpass_x"}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "one alias per mount per entity");
    let group = h
        .ok(
            Update,
            "identity/group/name/ops",
            json!({"policies": ["p1"], "member_entity_ids": [id]}),
        )
        .await
        .data
        .unwrap();
    let entity: Value = h
        .ok(Read, &format!("identity/entity/id/{id}"), json!({}))
        .await
        .data
        .unwrap()
        .into();
    assert_eq!(entity["group_ids"], json!([group["id"]]));
    h.ok(Delete, &format!("identity/entity/id/{id}"), json!({}))
        .await;
    assert_eq!(
        h.call(
            Read,
            &format!("identity/entity/id/{id}"),
            json!({}),
            &h.root.clone()
        )
        .await
        .unwrap_err()
        .status(),
        404
    );
}

/// Logins remember the alias they resolved; deleting the alias, or the entity behind it, must
/// reach the very next login (a new entity, never the deleted one from memory).
#[tokio::test]
async fn deleting_an_alias_or_its_entity_reaches_the_next_login() {
    let h = setup().await;
    h.userpass_user("bob", json!({"password": "pw-bob-1"}))
        .await;
    let login = || async {
        h.call(
            Update,
            "auth/userpass/login/bob",
            json!({"password": "pw-bob-1"}),
            "",
        )
        .await
        .unwrap()
        .auth
        .unwrap()
        .entity_id
    };
    let first = login().await;
    assert_eq!(
        login().await,
        first,
        "the second login resolves the same alias"
    );
    let entity = h
        .ok(Read, &format!("identity/entity/id/{first}"), json!({}))
        .await
        .data
        .unwrap();
    let alias_id = entity["aliases"][0]["id"].as_str().unwrap().to_string();

    h.ok(
        Delete,
        &format!("identity/entity-alias/id/{alias_id}"),
        json!({}),
    )
    .await;
    let second = login().await;
    assert_ne!(second, first, "a deleted alias is not resolved from memory");

    h.ok(Delete, &format!("identity/entity/id/{second}"), json!({}))
        .await;
    let third = login().await;
    assert_ne!(
        third, second,
        "a deleted entity's alias is not resolved from memory"
    );
    assert!(h
        .ok(Read, &format!("identity/entity/id/{third}"), json!({}))
        .await
        .data
        .is_some());
}
