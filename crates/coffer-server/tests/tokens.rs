//! Token store behaviour through the pipeline, with time moved by the clock, never slept.

mod common;
use coffer_sdk::Operation::*;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn token_expires_when_its_ttl_passes() {
    let h = Harness::new().await;
    let t = h.token(json!({"ttl": "1h", "policies": ["default"]})).await;
    assert!(h
        .call(Read, "auth/token/lookup-self", json!({}), &t)
        .await
        .is_ok());
    h.clock.advance(Duration::from_secs(3599));
    assert!(h
        .call(Read, "auth/token/lookup-self", json!({}), &t)
        .await
        .is_ok());
    h.clock.advance(Duration::from_secs(2));
    let err = h
        .call(Read, "auth/token/lookup-self", json!({}), &t)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 403);
}

async fn creator(h: &Harness) -> String {
    // Vault's default policy does not allow creating tokens; a parent needs this.
    h.ok(
        Update,
        "sys/policies/acl/creator",
        json!({"policy": r#"path "auth/token/create" { capabilities = ["update"] }"#}),
    )
    .await;
    h.token(json!({"policies": ["creator"]})).await
}

/// A plain child token created by `parent`.
async fn child_of(h: &Harness, parent: &str) -> String {
    h.call(Update, "auth/token/create", json!({}), parent)
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token
}

#[tokio::test]
async fn revoking_parent_revokes_children_but_not_orphans() {
    let h = Harness::new().await;
    let parent = creator(&h).await;
    let child = child_of(&h, &parent).await;
    let grandchild = child_of(&h, &child).await;
    let orphan = h
        .ok(Update, "auth/token/create-orphan", json!({}))
        .await
        .auth
        .unwrap()
        .client_token;
    let default_only = h.token(json!({"policies": ["default"]})).await;
    assert_eq!(
        h.call(Update, "auth/token/create", json!({}), &default_only)
            .await
            .unwrap_err()
            .status(),
        403,
        "default policy cannot create tokens"
    );
    h.ok(Update, "auth/token/revoke", json!({"token": parent}))
        .await;
    for t in [&parent, &child, &grandchild] {
        assert_eq!(
            h.call(Read, "auth/token/lookup-self", json!({}), t)
                .await
                .unwrap_err()
                .status(),
            403
        );
    }
    assert!(h
        .call(Read, "auth/token/lookup-self", json!({}), &orphan)
        .await
        .is_ok());
}

#[tokio::test]
async fn revoke_orphan_keeps_children_alive_as_orphans() {
    let h = Harness::new().await;
    let parent = creator(&h).await;
    let child = child_of(&h, &parent).await;
    h.ok(Update, "auth/token/revoke-orphan", json!({"token": parent}))
        .await;
    let lookup = h
        .call(Read, "auth/token/lookup-self", json!({}), &child)
        .await
        .unwrap();
    assert_eq!(data(&lookup)["orphan"], true);
}

#[tokio::test]
async fn num_uses_is_exact() {
    let h = Harness::new().await;
    let t = h
        .token(json!({"num_uses": 2, "policies": ["default"]}))
        .await;
    assert!(h
        .call(Read, "auth/token/lookup-self", json!({}), &t)
        .await
        .is_ok());
    assert!(h
        .call(Read, "auth/token/lookup-self", json!({}), &t)
        .await
        .is_ok());
    assert_eq!(
        h.call(Read, "auth/token/lookup-self", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403
    );
}

#[tokio::test]
async fn renew_is_clamped_by_explicit_max_ttl_with_a_warning() {
    let h = Harness::new().await;
    let t = h
        .token(json!({"ttl": "1h", "explicit_max_ttl": "2h", "policies": ["default"]}))
        .await;
    h.clock.advance(Duration::from_secs(1800));
    let resp = h
        .call(
            Update,
            "auth/token/renew-self",
            json!({"increment": "10h"}),
            &t,
        )
        .await
        .unwrap();
    let auth = resp.auth.unwrap();
    assert!(
        auth.lease_duration <= 5400 && auth.lease_duration > 5300,
        "{}",
        auth.lease_duration
    );
    assert!(!resp.warnings.is_empty());
    h.clock.advance(Duration::from_secs(5401));
    assert_eq!(
        h.call(Read, "auth/token/lookup-self", json!({}), &t)
            .await
            .unwrap_err()
            .status(),
        403
    );
}

#[tokio::test]
async fn periodic_token_renews_to_its_period_forever() {
    let h = Harness::new().await;
    let t = h
        .token(json!({"period": "1h", "policies": ["default"]}))
        .await;
    for _ in 0..30 {
        h.clock.advance(Duration::from_secs(3000));
        let auth = h
            .call(Update, "auth/token/renew-self", json!({}), &t)
            .await
            .unwrap()
            .auth
            .unwrap();
        assert_eq!(auth.lease_duration, 3600);
    }
    // 25 hours on, far past the first period, the token is still alive.
    assert!(h
        .call(Read, "auth/token/lookup-self", json!({}), &t)
        .await
        .is_ok());
}

#[tokio::test]
async fn non_renewable_token_refuses_renewal() {
    let h = Harness::new().await;
    let t = h
        .token(json!({"renewable": false, "policies": ["default"]}))
        .await;
    let err = h
        .call(Update, "auth/token/renew-self", json!({}), &t)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn child_policies_must_be_a_subset_of_the_parents() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "sys/policies/acl/limited",
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    )
    .await;
    let parent = h.token(json!({"policies": ["limited"]})).await;
    let err = h
        .call(
            Update,
            "auth/token/create",
            json!({"policies": ["other"]}),
            &parent,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let ok = h
        .call(
            Update,
            "auth/token/create",
            json!({"policies": ["limited"]}),
            &parent,
        )
        .await
        .unwrap();
    assert_eq!(ok.auth.unwrap().policies, vec!["default", "limited"]);
    let err = h
        .call(
            Update,
            "auth/token/create",
            json!({"id": "chosen"}),
            &parent,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "only root may choose a token id");
}

#[tokio::test]
async fn accessor_lookup_and_revoke_work_without_the_token() {
    let h = Harness::new().await;
    let created = h
        .ok(
            Update,
            "auth/token/create",
            json!({"policies": ["default"], "meta": {"app": "web"}}),
        )
        .await
        .auth
        .unwrap();
    let info = h
        .ok(
            Update,
            "auth/token/lookup-accessor",
            json!({"accessor": created.accessor}),
        )
        .await;
    assert_eq!(
        data(&info)["id"],
        "",
        "lookup by accessor must not reveal the token"
    );
    assert_eq!(data(&info)["meta"]["app"], "web");
    h.ok(
        Update,
        "auth/token/revoke-accessor",
        json!({"accessor": created.accessor}),
    )
    .await;
    assert!(h
        .call(
            Read,
            "auth/token/lookup-self",
            json!({}),
            &created.client_token
        )
        .await
        .is_err());
}

#[tokio::test]
async fn roles_fix_policies_and_orphan_status() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "auth/token/roles/app",
        json!({"allowed_policies": ["app"], "orphan": true, "token_period": "2h"}),
    )
    .await;
    let role = data(&h.ok(Read, "auth/token/roles/app", json!({})).await);
    assert_eq!(role["allowed_policies"], json!(["app"]));
    let auth = h
        .ok(Update, "auth/token/create/app", json!({}))
        .await
        .auth
        .unwrap();
    assert_eq!(auth.policies, vec!["app", "default"]);
    assert!(auth.orphan);
    assert_eq!(auth.lease_duration, 7200);
    let err = h
        .call(
            Update,
            "auth/token/create/app",
            json!({"policies": ["admin"]}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        h.call(Update, "auth/token/create/nope", json!({}), &h.root.clone())
            .await
            .unwrap_err()
            .status(),
        400
    );
}

#[tokio::test]
async fn tokens_and_accessors_are_stored_only_as_salted_hashes() {
    let h = Harness::new().await;
    let auth = h
        .ok(
            Update,
            "auth/token/create",
            json!({"policies": ["default"]}),
        )
        .await
        .auth
        .unwrap();
    // Unseal-level view: decrypt every entry and look for the raw token or accessor.
    for key in h.storage.scan("sys/token/").await.unwrap() {
        assert!(
            !key.contains(&auth.client_token) && !key.contains(&auth.accessor),
            "{key}"
        );
        if let Some(plain) = h.core.barrier.get(&key).await.unwrap() {
            let text = String::from_utf8_lossy(&plain);
            assert!(!text.contains(&auth.client_token), "token in {key}");
            assert!(!text.contains(&auth.accessor), "accessor in {key}");
        }
    }
}

#[tokio::test]
async fn tidy_repairs_dangling_indexes_and_revokes_orphaned_children() {
    let h = Harness::new().await;
    let parent = creator(&h).await;
    let child = child_of(&h, &parent).await;
    let expiring = h.token(json!({"ttl": "1m", "policies": ["default"]})).await;
    // Simulate a crash that deleted the parent's entry but not its tree.
    let parent_hash = h.core.tokens.hash(&parent).unwrap();
    h.core
        .barrier
        .delete(&format!("sys/token/id/{parent_hash}"))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(120));
    let counts = h
        .ok(Update, "auth/token/tidy", json!({}))
        .await
        .data
        .unwrap();
    assert_eq!(counts["children_of_missing_parents_revoked"], 1);
    assert_eq!(
        counts["dangling_accessors_removed"], 1,
        "the parent's accessor entry pointed nowhere"
    );
    assert!(counts["expired_tokens_revoked"].as_u64().unwrap() >= 1);
    assert!(h.core.tokens.lookup_caller(&child).await.unwrap().is_none());
    assert!(h
        .core
        .tokens
        .lookup_caller(&expiring)
        .await
        .unwrap()
        .is_none());
    let again = h
        .ok(Update, "auth/token/tidy", json!({}))
        .await
        .data
        .unwrap();
    assert_eq!(
        again["dangling_accessors_removed"], 0,
        "a second tidy finds nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn num_uses_is_spent_exactly_once_per_use_under_concurrency() {
    let h = std::sync::Arc::new(Harness::new().await);
    h.ok(Update, "secret/data/counted", json!({"data": {"v": "1"}}))
        .await;
    h.ok(
        Update,
        "sys/policies/acl/reader",
        json!({"policy": r#"path "secret/data/counted" { capabilities = ["read"] }"#}),
    )
    .await;
    // A race shows only sometimes: many rounds make a lost count all but certain to show.
    for round in 0..30 {
        let t = h
            .token(json!({"policies": ["reader"], "num_uses": 10}))
            .await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (h, t) = (h.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                h.call(Read, "secret/data/counted", json!({}), &t)
                    .await
                    .is_ok()
            }));
        }
        let mut successes = 0;
        for task in tasks {
            if task.await.unwrap() {
                successes += 1;
            }
        }
        assert_eq!(
            successes, 10,
            "round {round}: a token of 10 uses answers exactly 10 requests"
        );
    }
}

#[tokio::test]
async fn an_unknown_path_is_not_repeated_to_the_caller() {
    let h = Harness::new().await;
    let t = h.token(json!({})).await;
    // Vault's old lookup-by-URL form: the token is in the path.
    let err = h
        .call(
            Read,
            &format!("auth/token/lookup/{t}"),
            json!({}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 404);
    assert!(!err.to_string().contains(&t), "{err}");
}

// ----- a connection's token memo -------------------------------------------------------------
// Each client connection remembers the last token it presented (`TokenMemo`). These tests keep
// one "connection" for the token under test and send root's changes over the harness's own, so
// the memo under test is never replaced by another token: what it remembered must stop counting
// the moment the token changes.

use coffer_sdk::Request;
use coffer_server::tokens::TokenMemo;

/// A token whose one policy reads `secret/data/memo`, which holds a value.
async fn reader(h: &Harness, extra: serde_json::Value) -> String {
    h.ok(
        Update,
        "sys/policies/acl/memo-reader",
        json!({"policy": r#"path "secret/data/memo" { capabilities = ["read"] }"#}),
    )
    .await;
    h.ok(Update, "secret/data/memo", json!({"data": {"v": "1"}}))
        .await;
    let mut options = json!({"policies": ["memo-reader"], "no_default_policy": true});
    options
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    h.token(options).await
}

async fn read_over(
    h: &Harness,
    conn: &TokenMemo,
    path: &str,
    token: &str,
) -> Result<coffer_sdk::Response, coffer_sdk::Error> {
    h.core
        .handle_on_connection(Request::new(Read, path), Some(token), conn)
        .await
}

/// A reader token and a connection whose memo holds it: read twice, answered from the memo
/// the second time.
async fn remembered_reader(h: &Harness) -> (String, TokenMemo) {
    let t = reader(h, json!({})).await;
    let conn = TokenMemo::default();
    read_over(h, &conn, "secret/data/memo", &t).await.unwrap();
    read_over(h, &conn, "secret/data/memo", &t).await.unwrap();
    assert_eq!(conn.recalled(), 1);
    (t, conn)
}

/// The status of a read over `conn` that must be refused.
async fn refused_over(h: &Harness, conn: &TokenMemo, token: &str) -> u16 {
    match read_over(h, conn, "secret/data/memo", token).await {
        Ok(_) => panic!("a read with {token:?} was answered"),
        Err(err) => err.status(),
    }
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_revoked() {
    let h = Harness::new().await;
    let t = reader(&h, json!({})).await;
    let conn = TokenMemo::default();
    for _ in 0..3 {
        read_over(&h, &conn, "secret/data/memo", &t).await.unwrap();
    }
    assert_eq!(conn.recalled(), 2, "the repeats are answered from the memo");
    h.ok(Update, "auth/token/revoke", json!({"token": t})).await;
    assert_eq!(refused_over(&h, &conn, &t).await, 403);
}

#[tokio::test]
async fn issuing_tokens_leaves_other_connections_memos_standing() {
    let h = Harness::new().await;
    let (t, conn) = remembered_reader(&h).await;
    // Another client logs in (here: root creates tokens); nothing about `t` changed.
    let other = reader(&h, json!({})).await;
    h.token(json!({"policies": ["default"]})).await;
    read_over(&h, &conn, "secret/data/memo", &t).await.unwrap();
    assert_eq!(
        conn.recalled(),
        2,
        "a new token did not void the memo of another"
    );
    // The new token works on first use, from storage, and is remembered after it.
    let fresh = TokenMemo::default();
    for _ in 0..2 {
        read_over(&h, &fresh, "secret/data/memo", &other)
            .await
            .unwrap();
    }
    assert_eq!(fresh.recalled(), 1);
}

#[tokio::test]
async fn a_remembered_child_is_refused_once_its_parent_is_revoked() {
    let h = Harness::new().await;
    let parent = creator(&h).await;
    h.ok(
        Update,
        "sys/policies/acl/creator",
        json!({"policy": r#"
            path "auth/token/create" { capabilities = ["update"] }
            path "secret/data/memo" { capabilities = ["read"] }"#}),
    )
    .await;
    h.ok(Update, "secret/data/memo", json!({"data": {"v": "1"}}))
        .await;
    let child = child_of(&h, &parent).await;
    let conn = TokenMemo::default();
    read_over(&h, &conn, "secret/data/memo", &child)
        .await
        .unwrap();
    read_over(&h, &conn, "secret/data/memo", &child)
        .await
        .unwrap();
    h.ok(Update, "auth/token/revoke", json!({"token": parent}))
        .await;
    assert_eq!(refused_over(&h, &conn, &child).await, 403);
}

#[tokio::test]
async fn a_remembered_token_expires_with_the_clock_and_is_revoked_on_sight() {
    let h = Harness::new().await;
    let t = reader(&h, json!({"ttl": "60s"})).await;
    let conn = TokenMemo::default();
    read_over(&h, &conn, "secret/data/memo", &t).await.unwrap();
    h.clock.advance(Duration::from_secs(59));
    read_over(&h, &conn, "secret/data/memo", &t).await.unwrap();
    assert_eq!(conn.recalled(), 1);
    h.clock.advance(Duration::from_secs(2));
    assert_eq!(refused_over(&h, &conn, &t).await, 403);
    // Revoked, not merely refused: root's lookup finds nothing.
    assert!(h
        .call(Update, "auth/token/lookup", json!({"token": t}), &h.root)
        .await
        .is_err());
}

#[tokio::test]
async fn a_remembered_limited_use_token_still_counts_every_use() {
    let h = Harness::new().await;
    let t = reader(&h, json!({"num_uses": 3})).await;
    let conn = TokenMemo::default();
    for use_number in 1..=3 {
        read_over(&h, &conn, "secret/data/memo", &t)
            .await
            .unwrap_or_else(|e| panic!("use {use_number}: {e}"));
    }
    assert_eq!(refused_over(&h, &conn, &t).await, 403);
}

#[tokio::test]
async fn a_connection_answers_each_token_as_itself_not_as_the_one_it_remembers() {
    let h = Harness::new().await;
    let t = reader(&h, json!({})).await;
    let other = h.token(json!({"policies": ["default"]})).await;
    let conn = TokenMemo::default();
    read_over(&h, &conn, "secret/data/memo", &t).await.unwrap();
    read_over(&h, &conn, "secret/data/memo", &t).await.unwrap();
    // Not the remembered token: refused, whatever it shares with it.
    let mut longer = t.clone();
    longer.push('x');
    let mut last_changed = t.clone();
    let last = last_changed.pop().unwrap();
    last_changed.push(if last == 'a' { 'b' } else { 'a' });
    for wrong in [
        longer.as_str(),
        &t[..t.len() - 1],
        last_changed.as_str(),
        other.as_str(),
        "",
    ] {
        assert_eq!(refused_over(&h, &conn, wrong).await, 403, "{wrong:?}");
        // And the remembered token is still itself afterwards.
        read_over(&h, &conn, "secret/data/memo", &t).await.unwrap();
    }
    // Each token's own identity reaches the handler.
    let who = |token: String| {
        let h = &h;
        let conn = &conn;
        async move {
            let resp = read_over(h, conn, "auth/token/lookup-self", &token)
                .await
                .unwrap();
            data(&resp)["policies"].clone()
        }
    };
    assert_eq!(who(other.clone()).await, json!(["default"]));
    assert_eq!(who(other.clone()).await, json!(["default"]));
}

#[tokio::test]
async fn a_remembered_token_is_not_answered_while_sealed() {
    let h = Harness::new().await;
    let (t, conn) = remembered_reader(&h).await;
    h.core.seal().await.unwrap();
    assert_eq!(refused_over(&h, &conn, &t).await, 503);
    h.core
        .unseal(Some(zeroize::Zeroizing::new(h.keys[0].clone())), false)
        .await
        .unwrap();
    read_over(&h, &conn, "secret/data/memo", &t).await.unwrap();
    h.ok(Update, "auth/token/revoke", json!({"token": t})).await;
    assert_eq!(refused_over(&h, &conn, &t).await, 403);
}
