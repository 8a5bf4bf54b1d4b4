//! Renewing a login token asks the auth method that issued it: a deleted user or role stops
//! renewals even though the token itself is still valid until its TTL ends.

mod common;
use coffer_sdk::Operation::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn userpass_tokens_stop_renewing_when_the_user_is_deleted() {
    let h = Harness::new().await;
    h.userpass_user(
        "dana",
        json!({"password": "pw-dana-99", "token_ttl": "1h", "token_max_ttl": "10h"}),
    )
    .await;
    let t = h
        .call(
            Update,
            "auth/userpass/login/dana",
            json!({"password": "pw-dana-99"}),
            "",
        )
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    h.call(
        Update,
        "auth/token/renew-self",
        json!({"increment": "2h"}),
        &t,
    )
    .await
    .expect("renews while the user exists");
    h.ok(Delete, "auth/userpass/users/dana", json!({})).await;
    let err = h
        .call(
            Update,
            "auth/token/renew-self",
            json!({"increment": "2h"}),
            &t,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
    assert!(err.to_string().contains("does not exist during renewal"));
    h.call(Read, "auth/token/lookup-self", json!({}), &t)
        .await
        .expect("the token itself lives until its TTL");
}

#[tokio::test]
async fn approle_tokens_stop_renewing_when_the_role_is_deleted() {
    let h = Harness::new().await;
    h.ok(Update, "sys/auth/approle", json!({"type": "approle"}))
        .await;
    h.ok(Update, "auth/approle/role/web", json!({"token_ttl": "1h"}))
        .await;
    let role_id = h
        .ok(Read, "auth/approle/role/web/role-id", json!({}))
        .await
        .data
        .unwrap()["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let login = |sid: String| {
        let h = &h;
        let role_id = role_id.clone();
        async move {
            h.call(
                Update,
                "auth/approle/login",
                json!({"role_id": role_id, "secret_id": sid}),
                "",
            )
            .await
            .unwrap()
            .auth
            .unwrap()
            .client_token
        }
    };
    let sid = h.secret_id("web").await;
    let t = login(sid).await;
    h.call(Update, "auth/token/renew-self", json!({}), &t)
        .await
        .expect("renews while the role exists");
    // Renewal through the lease endpoint asks too.
    let keys = h
        .ok(List, "sys/leases/lookup/auth/approle/login/", json!({}))
        .await
        .data
        .unwrap()["keys"]
        .clone();
    let lease_id = format!("auth/approle/login/{}", keys[0].as_str().unwrap());
    h.ok(Update, "sys/leases/renew", json!({"lease_id": lease_id}))
        .await;
    h.ok(Delete, "auth/approle/role/web", json!({})).await;
    assert_eq!(
        h.call(Update, "auth/token/renew-self", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        h.call(
            Update,
            "sys/leases/renew",
            json!({"lease_id": lease_id}),
            &h.root.clone()
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
}

#[tokio::test]
async fn disabling_an_auth_method_revokes_every_token_it_issued() {
    let h = Harness::new().await;
    h.userpass_user("erin", json!({"password": "pw-erin-77"}))
        .await;
    let t = h
        .call(
            Update,
            "auth/userpass/login/erin",
            json!({"password": "pw-erin-77"}),
            "",
        )
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    h.call(Read, "auth/token/lookup-self", json!({}), &t)
        .await
        .unwrap();
    h.ok(Delete, "sys/auth/userpass", json!({})).await;
    assert_eq!(
        h.call(Read, "auth/token/lookup-self", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403
    );
}
