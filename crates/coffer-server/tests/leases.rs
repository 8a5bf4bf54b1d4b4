//! Leases, response wrapping and cubbyhole through the pipeline. Time is moved with the
//! `ManualClock`; expiry passes are run directly (`LeaseManager::expire_due`), never waited for.

mod common;
use coffer_sdk::framework::{Ctx, SecretType};
use coffer_sdk::logical::SecretLease;
use coffer_sdk::Operation::*;
use coffer_sdk::{Backend, Error, PathSpec, Response};
use common::*;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// A real dynamic-secrets engine for tests: `creds/<name>` issues a credential recorded in its
/// storage under `issued/<user>`; revoking deletes the record; `fail-revoke` makes revocation
/// fail (a database that is down).
fn leasing_engine() -> Backend {
    Backend::new(
        "leasetest",
        "issues leased credentials",
        vec![
            PathSpec::new("creds/(?P<name>[^/]+)").op(Read, "issue", |ctx: Ctx| async move {
                let n = ctx.view.list("issued/").await.unwrap_or_default().len();
                let user = format!("{}-{n}", ctx.param("name"));
                ctx.view
                    .put(&format!("issued/{user}"), b"live".to_vec())
                    .await?;
                let mut internal = Map::new();
                internal.insert("user".into(), json!(user));
                let ttl = ctx
                    .request
                    .data
                    .get("ttl")
                    .and_then(Value::as_str)
                    .and_then(|s| coffer_sdk::duration::parse_duration(s).ok())
                    .unwrap_or_default();
                Ok(Response {
                    data: Some(json!({"username": user}).as_object().unwrap().clone()),
                    secret: Some(SecretLease {
                        kind: "cred".into(),
                        ttl,
                        renewable: true,
                        internal,
                        ..Default::default()
                    }),
                    ..Response::default()
                })
            }),
            PathSpec::new("fail-revoke")
                .op(Update, "make revocation fail", |ctx: Ctx| async move {
                    ctx.view.put("fail-revoke", vec![1]).await?;
                    Ok(Response::empty())
                })
                .op(
                    Delete,
                    "make revocation work again",
                    |ctx: Ctx| async move {
                        ctx.view.delete("fail-revoke").await?;
                        Ok(Response::empty())
                    },
                ),
        ],
    )
    .with_secret_type(
        SecretType::new(
            "cred",
            |ctx: Ctx, internal: Map<String, Value>| async move {
                if ctx.view.get("fail-revoke").await?.is_some() {
                    return Err(Error::Unavailable("database unreachable".into()));
                }
                let user = internal["user"].as_str().unwrap_or_default().to_string();
                ctx.view.delete(&format!("issued/{user}")).await
            },
        )
        .renewable(|ctx: Ctx, internal: Map<String, Value>| async move {
            let user = internal["user"].as_str().unwrap_or_default().to_string();
            match ctx.view.get(&format!("issued/{user}")).await? {
                Some(_) => Ok(()),
                None => Err(Error::bad("credential no longer exists")),
            }
        }),
    )
}

async fn harness() -> Harness {
    let h = Harness::with_engines(|catalog| {
        catalog.register(
            coffer_sdk::catalog::EngineClass::Secrets,
            "leasetest",
            "issues leased credentials",
            |_| Ok(leasing_engine()),
        )
    })
    .await;
    h.ok(
        Update,
        "sys/mounts/db",
        json!({"type": "leasetest", "config": {"default_lease_ttl": "1h", "max_lease_ttl": "2h"}}),
    )
    .await;
    h
}

async fn issued(h: &Harness) -> Vec<String> {
    h.call(
        List,
        "sys/leases/lookup/db/creds/app/",
        json!({}),
        &h.root.clone(),
    )
    .await
    .map(|r| {
        r.data.unwrap()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    })
    .unwrap_or_default()
}

async fn issue(h: &Harness, token: &str) -> (String, String) {
    let resp = h
        .call(Read, "db/creds/app", json!({}), token)
        .await
        .unwrap();
    let secret = resp.secret.unwrap();
    (
        secret.lease_id,
        resp.data.unwrap()["username"].as_str().unwrap().to_string(),
    )
}

async fn engine_has(h: &Harness, user: &str) -> bool {
    let table = h.core.router.table();
    let (m, _) = table.resolve("db/").unwrap();
    m.view
        .get(&format!("issued/{user}"))
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_leased_secret_gets_a_lease_id_and_lookup() {
    let h = harness().await;
    let (lease_id, _) = issue(&h, &h.root.clone()).await;
    assert!(lease_id.starts_with("db/creds/app/"), "{lease_id}");
    let info = h
        .ok(Update, "sys/leases/lookup", json!({"lease_id": lease_id}))
        .await
        .data
        .unwrap();
    assert_eq!(info["ttl"], 3600, "the mount's default TTL");
    assert_eq!(info["renewable"], true);
    assert_eq!(issued(&h).await.len(), 1);
}

#[tokio::test]
async fn renew_is_clamped_to_the_mount_max_with_a_warning() {
    let h = harness().await;
    let (lease_id, _) = issue(&h, &h.root.clone()).await;
    h.clock.advance(Duration::from_secs(1800));
    let resp = h
        .ok(
            Update,
            "sys/leases/renew",
            json!({"lease_id": lease_id, "increment": "10h"}),
        )
        .await;
    let secret = resp.secret.unwrap();
    assert_eq!(
        secret.ttl,
        Duration::from_secs(5400),
        "clamped to the 2h mount max from issue"
    );
    assert!(!resp.warnings.is_empty(), "clamping is announced");
    let resp = h
        .ok(
            Update,
            "sys/leases/renew",
            json!({"lease_id": lease_id, "increment": "10m"}),
        )
        .await;
    let renewed = resp.secret.unwrap();
    assert_eq!(renewed.ttl, Duration::from_secs(600));
    assert_eq!(
        renewed.lease_id, lease_id,
        "a renewal answers with the renewed lease"
    );
    let count = h
        .ok(Read, "sys/leases/count", json!({}))
        .await
        .data
        .unwrap();
    assert_eq!(count["lease_count"], 1, "renewing creates no new lease");
}

#[tokio::test]
async fn renew_is_clamped_to_the_mount_max_as_tuned_after_issue() {
    let h = harness().await;
    let (lease_id, _) = issue(&h, &h.root.clone()).await;
    h.ok(
        Update,
        "sys/mounts/db/tune",
        json!({"default_lease_ttl": "30m", "max_lease_ttl": "1h"}),
    )
    .await;
    h.clock.advance(Duration::from_secs(1800));
    let resp = h
        .ok(
            Update,
            "sys/leases/renew",
            json!({"lease_id": lease_id, "increment": "10h"}),
        )
        .await;
    assert_eq!(
        resp.secret.unwrap().ttl,
        Duration::from_secs(1800),
        "clamped to the tuned 1h max from issue, not the 2h in force at issue"
    );
    assert!(!resp.warnings.is_empty(), "clamping is announced");
}

#[tokio::test]
async fn expired_leases_are_revoked_by_the_expiry_pass() {
    let h = harness().await;
    let (lease_id, user) = issue(&h, &h.root.clone()).await;
    assert_eq!(
        h.core.leases.expire_due(100).await.unwrap(),
        0,
        "nothing is due yet"
    );
    h.clock.advance(Duration::from_secs(3601));
    assert_eq!(h.core.leases.expire_due(100).await.unwrap(), 1);
    assert!(
        !engine_has(&h, &user).await,
        "the engine's revoke callback ran"
    );
    let err = h
        .call(
            Update,
            "sys/leases/lookup",
            json!({"lease_id": lease_id}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn a_failing_revocation_is_retried_then_listed_as_irrevocable_until_forced() {
    let h = harness().await;
    let (lease_id, user) = issue(&h, &h.root.clone()).await;
    h.ok(Update, "db/fail-revoke", json!({})).await;
    let err = h
        .call(
            Update,
            "sys/leases/revoke",
            json!({"lease_id": lease_id}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(engine_has(&h, &user).await);
    h.ok(Update, "sys/leases/lookup", json!({"lease_id": lease_id}))
        .await; // still there
    for _ in 0..10 {
        h.clock.advance(Duration::from_secs(3600));
        h.core.leases.expire_due(100).await.unwrap();
    }
    let count = h
        .ok(Read, "sys/leases/count", json!({"type": "irrevocable"}))
        .await
        .data
        .unwrap();
    assert_eq!(count["lease_count"], 1);
    let listed = h
        .ok(Read, "sys/leases", json!({"type": "irrevocable"}))
        .await
        .data
        .unwrap();
    assert_eq!(listed["leases"][0]["lease_id"], lease_id.as_str());
    assert!(listed["leases"][0]["error"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    h.ok(
        Update,
        &format!("sys/leases/revoke-force/{lease_id}"),
        json!({}),
    )
    .await;
    assert!(h
        .call(
            Update,
            "sys/leases/lookup",
            json!({"lease_id": lease_id}),
            &h.root.clone()
        )
        .await
        .is_err());
}

#[tokio::test]
async fn a_revocation_that_recovers_succeeds_on_retry() {
    let h = harness().await;
    let (_, user) = issue(&h, &h.root.clone()).await;
    h.ok(Update, "db/fail-revoke", json!({})).await;
    h.clock.advance(Duration::from_secs(3601));
    h.core.leases.expire_due(100).await.unwrap();
    assert!(engine_has(&h, &user).await, "first attempt failed");
    h.ok(Delete, "db/fail-revoke", json!({})).await;
    h.clock.advance(Duration::from_secs(10));
    h.core.leases.expire_due(100).await.unwrap();
    assert!(!engine_has(&h, &user).await, "the retry revoked it");
}

#[tokio::test]
async fn revoking_a_token_revokes_the_leases_it_created() {
    let h = harness().await;
    h.ok(
        Update,
        "sys/policies/acl/db",
        json!({"policy": r#"path "db/creds/*" { capabilities = ["read"] }"#}),
    )
    .await;
    let t = h.token(json!({"policies": ["db"]})).await;
    let (_, u1) = issue(&h, &t).await;
    let (_, u2) = issue(&h, &t).await;
    let (_, other) = issue(&h, &h.root.clone()).await;
    h.ok(Update, "auth/token/revoke", json!({"token": t})).await;
    assert!(!engine_has(&h, &u1).await && !engine_has(&h, &u2).await);
    assert!(engine_has(&h, &other).await, "leases of other tokens stay");
}

#[tokio::test]
async fn revoke_prefix_revokes_everything_under_it() {
    let h = harness().await;
    let mut users = Vec::new();
    for _ in 0..25 {
        users.push(issue(&h, &h.root.clone()).await.1);
    }
    h.ok(Update, "sys/leases/revoke-prefix/db/creds/app", json!({}))
        .await;
    for u in &users {
        assert!(!engine_has(&h, u).await);
    }
    assert!(issued(&h).await.is_empty());
    let err = h
        .call(
            Update,
            "sys/leases/revoke-prefix/db/../x",
            json!({}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn tokens_have_leases_and_expire_in_the_background_pass() {
    let h = harness().await;
    let t = h
        .token(json!({"ttl": "10m", "policies": ["default"]}))
        .await;
    let keys = h
        .ok(List, "sys/leases/lookup/auth/token/create/", json!({}))
        .await
        .data
        .unwrap()["keys"]
        .clone();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let lease_id = format!("auth/token/create/{}", keys[0].as_str().unwrap());
    let resp = h
        .ok(
            Update,
            "sys/leases/renew",
            json!({"lease_id": lease_id, "increment": "20m"}),
        )
        .await;
    assert_eq!(resp.secret.unwrap().ttl.as_secs(), 1200);
    h.clock.advance(Duration::from_secs(1201));
    h.core.leases.expire_due(100).await.unwrap();
    // The expiry pass revoked the token itself, not just its lease.
    let entry = h.core.tokens.lookup_caller(&t).await.unwrap();
    assert!(entry.is_none());
    assert!(h
        .call(
            List,
            "sys/leases/lookup/auth/token/create/",
            json!({}),
            &h.root.clone()
        )
        .await
        .is_err());
}

#[tokio::test]
async fn leases_survive_seal_and_unseal() {
    let h = harness().await;
    let (lease_id, user) = issue(&h, &h.root.clone()).await;
    h.core.seal().await.unwrap();
    h.core
        .unseal(Some(zeroize::Zeroizing::new(h.keys[0].clone())), false)
        .await
        .unwrap();
    h.ok(Update, "sys/leases/lookup", json!({"lease_id": lease_id}))
        .await;
    h.clock.advance(Duration::from_secs(7201));
    h.core.leases.expire_due(100).await.unwrap();
    assert!(!engine_has(&h, &user).await);
}

#[tokio::test]
async fn bad_lease_requests_are_400s() {
    let h = harness().await;
    let root = h.root.clone();
    for (path, body) in [
        (
            "sys/leases/lookup",
            json!({"lease_id": "db/creds/app/nope"}),
        ),
        ("sys/leases/renew", json!({"lease_id": "db/creds/app/nope"})),
        ("sys/leases/revoke", json!({"lease_id": "nope"})),
        ("sys/leases/lookup", json!({})),
        (
            "sys/leases/renew",
            json!({"lease_id": "x", "increment": "soon"}),
        ),
        (
            "sys/leases/renew",
            json!({"lease_id": "x", "increment": -5}),
        ),
        ("sys/renew", json!({"lease_id": "nope"})),
    ] {
        let err = h.call(Update, path, body.clone(), &root).await.unwrap_err();
        assert_eq!(err.status(), 400, "{path} {body}: {err}");
    }
    let t = h
        .token(json!({"ttl": "1h", "renewable": false, "policies": ["default"]}))
        .await;
    let _ = t;
    let keys = h
        .ok(List, "sys/leases/lookup/auth/token/create/", json!({}))
        .await
        .data
        .unwrap()["keys"]
        .clone();
    let lease_id = format!("auth/token/create/{}", keys[0].as_str().unwrap());
    let err = h
        .call(
            Update,
            "sys/leases/renew",
            json!({"lease_id": lease_id}),
            &root,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "non-renewable lease");
}

async fn wrapped_read(h: &Harness, path: &str, ttl: u64) -> String {
    let mut req = coffer_sdk::Request::new(Read, path);
    req.wrap_ttl = Some(Duration::from_secs(ttl));
    let resp = h.core.handle(req, Some(&h.root.clone())).await.unwrap();
    assert!(resp.data.is_none(), "the wrapped response is not returned");
    let info = resp.wrap_info.unwrap();
    assert_eq!(info.creation_path, path);
    assert_eq!(info.ttl, ttl);
    info.token
}

#[tokio::test]
async fn wrapped_responses_unwrap_exactly_once() {
    let h = harness().await;
    h.ok(
        Update,
        "secret/data/w",
        json!({"data": {"k": "wrapped-value"}}),
    )
    .await;
    let token = wrapped_read(&h, "secret/data/w", 300).await;
    let lookup = h
        .call(Update, "sys/wrapping/lookup", json!({"token": token}), "")
        .await
        .unwrap();
    assert_eq!(lookup.data.unwrap()["creation_path"], "secret/data/w");
    let unwrapped = h
        .call(Update, "sys/wrapping/unwrap", json!({}), &token)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&unwrapped.raw.unwrap().body).unwrap();
    assert_eq!(body["data"]["data"]["k"], "wrapped-value");
    let again = h
        .call(Update, "sys/wrapping/unwrap", json!({"token": token}), "")
        .await
        .unwrap_err();
    assert_eq!(again.status(), 400);
    assert!(again.to_string().contains("wrapping token is not valid"));
}

#[tokio::test]
async fn rewrap_moves_the_response_and_expiry_destroys_it() {
    let h = harness().await;
    h.ok(Update, "secret/data/w", json!({"data": {"k": "v"}}))
        .await;
    let old = wrapped_read(&h, "secret/data/w", 60).await;
    let rewrapped = h
        .call(Update, "sys/wrapping/rewrap", json!({"token": old}), "")
        .await
        .unwrap();
    let new = rewrapped.wrap_info.unwrap().token;
    assert!(h
        .call(Update, "sys/wrapping/unwrap", json!({"token": old}), "")
        .await
        .is_err());
    let third = wrapped_read(&h, "secret/data/w", 60).await;
    h.clock.advance(Duration::from_secs(61));
    h.core.leases.expire_due(100).await.unwrap();
    assert!(
        h.call(Update, "sys/wrapping/unwrap", json!({"token": new}), "")
            .await
            .is_err(),
        "expired"
    );
    assert!(
        h.call(Update, "sys/wrapping/unwrap", json!({"token": third}), "")
            .await
            .is_err(),
        "expired"
    );
    assert!(
        h.storage.scan("cubbyhole/").await.unwrap().is_empty(),
        "expired wrapping tokens leave nothing behind"
    );
}

#[tokio::test]
async fn wrap_endpoint_needs_a_ttl() {
    let h = harness().await;
    let err = h
        .call(
            Update,
            "sys/wrapping/wrap",
            json!({"a": "b"}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let mut req =
        coffer_sdk::Request::new(Update, "sys/wrapping/wrap").with_data(json!({"a": "b"}));
    req.wrap_ttl = Some(Duration::from_secs(30));
    let token = h
        .core
        .handle(req, Some(&h.root.clone()))
        .await
        .unwrap()
        .wrap_info
        .unwrap()
        .token;
    let body: Value = serde_json::from_slice(
        &h.call(Update, "sys/wrapping/unwrap", json!({"token": token}), "")
            .await
            .unwrap()
            .raw
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(body["data"]["a"], "b");
}

#[tokio::test]
async fn cubbyhole_is_private_to_a_token_and_dies_with_it() {
    let h = harness().await;
    let a = h.token(json!({"policies": ["default"]})).await;
    let b = h.token(json!({"policies": ["default"]})).await;
    h.call(Update, "cubbyhole/note", json!({"v": "a-secret"}), &a)
        .await
        .unwrap();
    assert_eq!(
        h.call(Read, "cubbyhole/note", json!({}), &a)
            .await
            .unwrap()
            .data
            .unwrap()["v"],
        "a-secret"
    );
    assert_eq!(
        h.call(Read, "cubbyhole/note", json!({}), &b)
            .await
            .unwrap_err()
            .status(),
        404,
        "b sees its own, empty cubbyhole"
    );
    assert!(!h.storage.scan("cubbyhole/").await.unwrap().is_empty());
    h.ok(Update, "auth/token/revoke", json!({"token": a})).await;
    assert!(
        h.storage.scan("cubbyhole/").await.unwrap().is_empty(),
        "revoking the token destroys its cubbyhole"
    );
}

#[tokio::test]
async fn revoking_a_token_lease_whose_token_is_already_gone_removes_the_lease() {
    let h = harness().await;
    let t = h.token(json!({"ttl": "1h", "policies": ["default"]})).await;
    let keys = h
        .ok(List, "sys/leases/lookup/auth/token/create/", json!({}))
        .await
        .data
        .unwrap()["keys"]
        .clone();
    let lease_id = format!("auth/token/create/{}", keys[0].as_str().unwrap());
    // A token entry lost without its lease (the state tidy repairs).
    let hash = h.core.tokens.hash(&t).unwrap();
    h.core
        .barrier
        .delete(&format!("sys/token/id/{hash}"))
        .await
        .unwrap();
    h.ok(Update, "sys/leases/revoke", json!({"lease_id": lease_id}))
        .await;
    assert!(h
        .call(
            Update,
            "sys/leases/lookup",
            json!({"lease_id": lease_id}),
            &h.root.clone()
        )
        .await
        .is_err());
}

#[tokio::test]
async fn stale_index_entries_never_stall_expiry() {
    let h = harness().await;
    // More stale entries than one expiry pass handles, all due before the real lease.
    for i in 0..(coffer_server::leases::EXPIRY_BATCH + 100) {
        h.core
            .barrier
            .put(
                &format!("sys/expire/index/{:016x}/stale{i:05}", 1000 + i),
                b"db/creds/app/gone",
            )
            .await
            .unwrap();
    }
    let (_, user) = issue(&h, &h.root.clone()).await;
    h.clock.advance(Duration::from_secs(3601));
    for _ in 0..5 {
        h.core
            .leases
            .expire_due(coffer_server::leases::EXPIRY_BATCH)
            .await
            .unwrap();
    }
    assert!(
        !engine_has(&h, &user).await,
        "the real lease expired behind the stale entries"
    );
    assert!(
        h.storage
            .scan("sys/expire/index/")
            .await
            .unwrap()
            .is_empty(),
        "stale entries are gone"
    );
}

#[tokio::test]
async fn a_revoked_tokens_index_entry_is_dropped_when_its_time_comes() {
    let h = harness().await;
    let index = |h: &Harness| {
        let storage = h.storage.clone();
        async move { storage.scan("sys/expire/index/").await.unwrap().len() }
    };
    // The root token has no lease, so the index holds only what the test creates.
    let revoked = h.token(json!({"ttl": "10m"})).await;
    let kept = h.token(json!({"ttl": "1h"})).await;
    assert_eq!(index(&h).await, 2);
    h.ok(Update, "auth/token/revoke", json!({"token": revoked}))
        .await;
    // Revocation leaves the index entry (see `token_revoking`); the lease itself is gone.
    assert_eq!(index(&h).await, 2);
    let listed = h
        .ok(List, "sys/leases/lookup/auth/token/create/", json!({}))
        .await
        .data
        .unwrap()["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, 1);
    // Before its time the expiry pass does not look at it.
    h.core.leases.expire_due(100).await.unwrap();
    assert_eq!(index(&h).await, 2);
    // When its time comes, the pass drops it and touches nothing else.
    h.clock.advance(Duration::from_secs(601));
    h.core.leases.expire_due(100).await.unwrap();
    assert_eq!(index(&h).await, 1);
    assert!(h.core.tokens.lookup_caller(&kept).await.unwrap().is_some());

    // sys/leases/tidy drops such an entry at once.
    let second = h.token(json!({"ttl": "10m"})).await;
    h.ok(Update, "auth/token/revoke", json!({"token": second}))
        .await;
    assert_eq!(index(&h).await, 2);
    h.ok(Update, "sys/leases/tidy", json!({})).await;
    assert_eq!(index(&h).await, 1);
    assert!(h.core.tokens.lookup_caller(&kept).await.unwrap().is_some());
}

async fn lease_exists(h: &Harness, lease_id: &str) -> bool {
    h.call(
        Update,
        "sys/leases/lookup",
        json!({ "lease_id": lease_id }),
        &h.root.clone(),
    )
    .await
    .is_ok()
}

async fn approle_token(h: &Harness, mount: &str) -> String {
    let role_id = h
        .ok(Read, &format!("auth/{mount}/role/r/role-id"), json!({}))
        .await
        .data
        .unwrap()["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sid = h
        .ok(Update, &format!("auth/{mount}/role/r/secret-id"), json!({}))
        .await
        .data
        .unwrap()["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    h.call(
        Update,
        &format!("auth/{mount}/login"),
        json!({"role_id": role_id, "secret_id": sid}),
        "",
    )
    .await
    .unwrap()
    .auth
    .unwrap()
    .client_token
}

#[tokio::test]
async fn leases_follow_their_mount_through_a_remount() {
    let h = harness().await;
    let root = h.root.clone();
    let (before_move, user) = issue(&h, &root).await;
    h.ok(Update, "sys/auth/ar", json!({"type": "approle"}))
        .await;
    h.ok(Update, "auth/ar/role/r", json!({})).await;
    let token = approle_token(&h, "ar").await;

    h.ok(Update, "sys/remount", json!({"from": "db", "to": "db2"}))
        .await;
    h.ok(
        Update,
        "sys/remount",
        json!({"from": "auth/ar", "to": "auth/ar2"}),
    )
    .await;
    // A new mount at the old path: its leases are not the moved mount's.
    h.ok(Update, "sys/mounts/db", json!({"type": "leasetest"}))
        .await;
    let (new_mounts_lease, _) = issue(&h, &root).await;
    assert!(lease_exists(&h, &before_move).await);

    // Revoking the new path's prefix revokes what the mount issued before it moved...
    h.ok(Update, "sys/leases/revoke-prefix/db2/", json!({}))
        .await;
    assert!(
        !lease_exists(&h, &before_move).await,
        "revoked by its mount's new path"
    );
    let table = h.core.router.table();
    let (moved, _) = table.resolve("db2/").unwrap();
    assert!(
        moved
            .view
            .get(&format!("issued/{user}"))
            .await
            .unwrap()
            .is_none(),
        "and the moved engine revoked the credential"
    );
    // ...and nothing of the mount now living at its old path.
    assert!(lease_exists(&h, &new_mounts_lease).await);
    // Revoking the old path now means the new mount there, not the moved one.
    let (second, _) = {
        h.ok(Update, "sys/remount", json!({"from": "db2", "to": "db3"}))
            .await;
        issue(&h, &root).await
    };
    h.ok(Update, "sys/leases/revoke-prefix/db/", json!({}))
        .await;
    assert!(!lease_exists(&h, &second).await);

    // Disabling the moved auth method revokes the tokens it issued before the move.
    h.call(Read, "auth/token/lookup-self", json!({}), &token)
        .await
        .expect("live before");
    h.ok(Delete, "sys/auth/ar2", json!({})).await;
    assert_eq!(
        h.call(Read, "auth/token/lookup-self", json!({}), &token)
            .await
            .unwrap_err()
            .status(),
        403,
        "a token of the moved auth method is revoked with it"
    );
}

#[tokio::test]
async fn a_lease_whose_mount_is_gone_is_retried_and_ends_irrevocable() {
    let h = harness().await;
    let (lease_id, _) = issue(&h, &h.root.clone()).await;
    // The mount disappears without its leases being revoked (a table edited by hand, a bug):
    // nothing is left to call.
    let mut table = coffer_server::mounts::read_table(&h.core.barrier, "core/mounts")
        .await
        .unwrap();
    table.retain(|e| e.path != "db/");
    coffer_server::mounts::write_table(&h.core.barrier, "core/mounts", &table)
        .await
        .unwrap();
    h.core.reload_mounts().await.unwrap();
    h.clock.advance(Duration::from_secs(2 * 3600));
    for _ in 0..coffer_server::leases::MAX_REVOKE_ATTEMPTS + 1 {
        h.core.leases.expire_due(100).await.unwrap();
        assert!(
            lease_exists(&h, &lease_id).await,
            "never counted as revoked"
        );
        h.clock.advance(Duration::from_secs(600));
    }
    let listed = h
        .ok(Read, "sys/leases", json!({"type": "irrevocable"}))
        .await
        .data
        .unwrap();
    let leases = listed["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 1, "{listed:?}");
    assert_eq!(leases[0]["lease_id"], json!(lease_id));
    assert!(
        leases[0]["error"]
            .as_str()
            .unwrap()
            .contains("no longer exists"),
        "the reason is listed: {listed:?}"
    );
    // Force-revoking removes it.
    h.ok(Update, "sys/leases/revoke-force/db/", json!({})).await;
    assert!(!lease_exists(&h, &lease_id).await);
}

#[tokio::test]
async fn a_wrapped_response_names_the_mount_type_it_came_from() {
    let h = Harness::new().await;
    h.ok(Update, "secret/data/w", json!({"data": {"k": "v"}}))
        .await;
    let mut request = coffer_sdk::Request::new(Read, "secret/data/w");
    request.wrap_ttl = Some(Duration::from_secs(60));
    let wrapped = h.core.handle(request, Some(&h.root)).await.unwrap();
    let token = wrapped.wrap_info.unwrap().token;
    let unwrapped = h
        .call(Update, "sys/wrapping/unwrap", json!({}), &token)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&unwrapped.raw.unwrap().body).unwrap();
    assert_eq!(body["mount_type"], "kv");
    assert_eq!(body["data"]["data"]["k"], "v");
}
