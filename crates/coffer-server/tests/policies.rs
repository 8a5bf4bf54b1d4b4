//! Policy enforcement through the pipeline.

mod common;
use coffer_sdk::Operation::*;
use common::*;
use serde_json::json;

const APP_POLICY: &str = r#"
path "secret/data/app/*" { capabilities = ["create", "read", "update"] }
path "secret/data/app/admin" { capabilities = ["deny"] }
path "secret/metadata/app/" { capabilities = ["list"] }
path "secret/data/restricted" {
  capabilities = ["create", "update"]
  allowed_parameters = { "data" = [] }
  denied_parameters = { "options" = [] }
}
"#;

#[tokio::test]
async fn a_token_gets_exactly_what_its_policy_grants() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "sys/policies/acl/app",
        json!({"policy": APP_POLICY}),
    )
    .await;
    let t = h.token(json!({"policies": ["app"]})).await;
    h.call(
        Update,
        "secret/data/app/db",
        json!({"data": {"password": "x"}}),
        &t,
    )
    .await
    .expect("create allowed");
    h.call(Read, "secret/data/app/db", json!({}), &t)
        .await
        .expect("read allowed");
    assert_eq!(
        h.call(Read, "secret/data/other", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403
    );
    assert_eq!(
        h.call(Delete, "secret/data/app/db", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403
    );
    assert_eq!(
        h.call(Update, "secret/data/app/admin", json!({"data": {}}), &t)
            .await
            .unwrap_err()
            .status(),
        403,
        "deny beats the glob"
    );
    h.call(List, "secret/metadata/app/", json!({}), &t)
        .await
        .expect("list allowed");
    assert_eq!(
        h.call(Read, "sys/mounts", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403
    );
}

#[tokio::test]
async fn create_and_update_are_told_apart_by_existence() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "sys/policies/acl/createonly",
        json!({"policy": r#"path "secret/data/*" { capabilities = ["create"] }"#}),
    )
    .await;
    let t = h.token(json!({"policies": ["createonly"]})).await;
    h.call(Update, "secret/data/fresh", json!({"data": {"a": "1"}}), &t)
        .await
        .expect("creating is allowed");
    let err = h
        .call(Update, "secret/data/fresh", json!({"data": {"a": "2"}}), &t)
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        403,
        "updating an existing secret needs update"
    );
}

#[tokio::test]
async fn parameter_constraints_are_enforced() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "sys/policies/acl/app",
        json!({"policy": APP_POLICY}),
    )
    .await;
    let t = h.token(json!({"policies": ["app"]})).await;
    h.call(
        Update,
        "secret/data/restricted",
        json!({"data": {"k": "v"}}),
        &t,
    )
    .await
    .expect("allowed parameter");
    let err = h
        .call(
            Update,
            "secret/data/restricted",
            json!({"data": {"k": "v"}, "options": {"cas": 1}}),
            &t,
        )
        .await
        .unwrap_err();
    assert!(matches!(err.status(), 400 | 403), "{err}");
}

#[tokio::test]
async fn sudo_paths_need_sudo() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "sys/policies/acl/ops",
        json!({"policy": r#"path "sys/rotate" { capabilities = ["update"] }"#}),
    )
    .await;
    h.ok(
        Update,
        "sys/policies/acl/opsudo",
        json!({"policy": r#"path "sys/rotate" { capabilities = ["update", "sudo"] }"#}),
    )
    .await;
    let plain = h.token(json!({"policies": ["ops"]})).await;
    let sudo = h.token(json!({"policies": ["opsudo"]})).await;
    assert_eq!(
        h.call(Update, "sys/rotate", json!({}), &plain)
            .await
            .unwrap_err()
            .status(),
        403
    );
    h.call(Update, "sys/rotate", json!({}), &sudo)
        .await
        .expect("sudo allows");
}

#[tokio::test]
async fn capabilities_endpoints_report_the_winning_rule() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "sys/policies/acl/app",
        json!({"policy": APP_POLICY}),
    )
    .await;
    let t = h.token(json!({"policies": ["app"]})).await;
    let resp = h
        .call(
            Update,
            "sys/capabilities-self",
            json!({"paths": ["secret/data/app/x"]}),
            &t,
        )
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&resp.raw.unwrap().body).unwrap();
    assert_eq!(body["capabilities"], json!(["create", "read", "update"]));
    assert_eq!(
        body["secret/data/app/x"],
        json!(["create", "read", "update"])
    );
    let resp = h
        .ok(
            Update,
            "sys/capabilities",
            json!({"token": t, "path": "secret/data/app/admin"}),
        )
        .await;
    let body: serde_json::Value = serde_json::from_slice(&resp.raw.unwrap().body).unwrap();
    assert_eq!(body["capabilities"], json!(["deny"]));
    let resp = h
        .ok(Update, "sys/capabilities-self", json!({"path": "anything"}))
        .await;
    let body: serde_json::Value = serde_json::from_slice(&resp.raw.unwrap().body).unwrap();
    assert_eq!(body["capabilities"], json!(["root"]));
}

#[tokio::test]
async fn policy_changes_apply_to_existing_tokens_on_the_next_request() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "sys/policies/acl/grow",
        json!({"policy": r#"path "secret/data/a" { capabilities = ["read"] }"#}),
    )
    .await;
    let t = h.token(json!({"policies": ["grow"]})).await;
    h.ok(Update, "secret/data/b", json!({"data": {"x": "1"}}))
        .await;
    assert_eq!(
        h.call(Read, "secret/data/b", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403
    );
    h.ok(
        Update,
        "sys/policies/acl/grow",
        json!({"policy": r#"path "secret/data/*" { capabilities = ["read"] }"#}),
    )
    .await;
    h.call(Read, "secret/data/b", json!({}), &t)
        .await
        .expect("widened policy applies at once");
    h.ok(Delete, "sys/policies/acl/grow", json!({})).await;
    assert_eq!(
        h.call(Read, "secret/data/b", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403
    );
}

#[tokio::test]
async fn invalid_policies_are_refused_and_builtins_protected() {
    let h = Harness::new().await;
    let before = h.snapshot().await;
    for bad in ["path {", r#"path "x" { capabilities = ["reed"] }"#, ""] {
        let err = h
            .call(
                Update,
                "sys/policies/acl/bad",
                json!({"policy": bad}),
                &h.root.clone(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "{bad}");
    }
    assert_eq!(
        h.call(
            Delete,
            "sys/policies/acl/default",
            json!({}),
            &h.root.clone()
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(
        h.call(
            Update,
            "sys/policies/acl/root",
            json!({"policy": "path \"x\" {capabilities=[\"read\"]}"}),
            &h.root.clone()
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(before, h.snapshot().await, "refused writes change nothing");
}
