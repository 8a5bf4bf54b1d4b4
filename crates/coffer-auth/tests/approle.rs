//! The approle auth method through the engine's declared paths.

mod common;

use coffer_auth::approle::{INVALID_CREDENTIALS, TIDY_STARTED};
use common::{assert_error, body, keys_of, Mount};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn approle() -> Mount {
    Mount::new("approle", &[])
}

async fn role_id(mount: &Mount, role: &str) -> String {
    body(&mount.read(&format!("role/{role}/role-id")).await.unwrap())["role_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn new_secret_id(mount: &Mount, role: &str, body_in: Value) -> Value {
    body(
        &mount
            .write(&format!("role/{role}/secret-id"), body_in)
            .await
            .unwrap(),
    )
}

/// A secret ID for `role` with no options.
async fn plain_secret_id(mount: &Mount, role: &str) -> String {
    new_secret_id(mount, role, json!({})).await["secret_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn login(
    mount: &Mount,
    role_id: &str,
    secret_id: &str,
) -> coffer_sdk::Result<coffer_sdk::Response> {
    mount
        .write("login", json!({"role_id": role_id, "secret_id": secret_id}))
        .await
}

#[tokio::test]
async fn full_flow_role_secret_id_login() {
    let mount = approle();
    assert!(mount.is_unauthenticated("login"));
    assert!(!mount.is_unauthenticated("role/web"));
    mount
        .write(
            "role/web",
            json!({"token_policies": ["web"], "token_ttl": "20m",
                   "token_bound_cidrs": "10.0.0.0/8"}),
        )
        .await
        .unwrap();
    assert_eq!(keys_of(&mount.list("role/").await.unwrap()), vec!["web"]);
    let role = body(&mount.read("role/web").await.unwrap());
    assert_eq!(role["bind_secret_id"], true);
    assert_eq!(role["token_policies"], json!(["web"]));
    assert_eq!(role["token_ttl"], 1200);

    let rid = role_id(&mount, "web").await;
    let issued = new_secret_id(&mount, "web", json!({"metadata": "{\"env\":\"prod\"}"})).await;
    for field in [
        "secret_id",
        "secret_id_accessor",
        "secret_id_ttl",
        "secret_id_num_uses",
    ] {
        assert!(issued.get(field).is_some(), "{field} in {issued}");
    }
    let sid = issued["secret_id"].as_str().unwrap();

    let resp = login(&mount, &rid, sid).await.unwrap();
    assert!(resp.auth.is_none(), "engines never mint tokens");
    let login = resp.login.unwrap();
    assert_eq!(login.policies, vec!["web"]);
    assert_eq!(login.ttl, Duration::from_secs(1200));
    assert_eq!(login.alias_name, rid);
    assert_eq!(login.display_name, "web");
    assert_eq!(
        Value::Object(login.metadata),
        json!({"env": "prod", "role_name": "web"})
    );
    assert_eq!(
        login.bound_cidrs,
        vec!["10.0.0.0/8"],
        "token_bound_cidrs pass through"
    );
}

#[tokio::test]
async fn wrong_secret_id_unknown_role_id_and_missing_fields_fail() {
    let mount = approle();
    mount.write("role/web", json!({})).await.unwrap();
    let rid = role_id(&mount, "web").await;
    new_secret_id(&mount, "web", json!({})).await;
    assert_error(
        login(&mount, &rid, "not-it").await,
        400,
        INVALID_CREDENTIALS,
    );
    assert_error(
        login(&mount, "no-such-role-id", "x").await,
        400,
        INVALID_CREDENTIALS,
    );
    assert_error(
        mount.write("login", json!({"secret_id": "x"})).await,
        400,
        "missing role_id",
    );
    assert_error(
        mount.write("login", json!({"role_id": rid})).await,
        400,
        "missing secret_id",
    );
    assert_eq!(INVALID_CREDENTIALS, "invalid role or secret ID");
}

#[tokio::test]
async fn custom_role_id_replaces_the_old_one() {
    let mount = approle();
    mount.write("role/web", json!({})).await.unwrap();
    let old = role_id(&mount, "web").await;
    mount
        .write("role/web/role-id", json!({"role_id": "my-custom-id"}))
        .await
        .unwrap();
    assert_eq!(role_id(&mount, "web").await, "my-custom-id");
    let sid = plain_secret_id(&mount, "web").await;
    assert!(login(&mount, "my-custom-id", &sid).await.is_ok());
    assert_error(login(&mount, &old, &sid).await, 400, INVALID_CREDENTIALS);

    // A role ID held by another role cannot be taken.
    mount
        .write("role/api", json!({"role_id": "api-id"}))
        .await
        .unwrap();
    assert_eq!(role_id(&mount, "api").await, "api-id");
    assert_error(
        mount
            .write("role/api/role-id", json!({"role_id": "my-custom-id"}))
            .await,
        400,
        "role_id already in use",
    );
}

#[tokio::test]
async fn single_use_secret_id_works_exactly_once() {
    let mount = approle();
    mount
        .write("role/web", json!({"secret_id_num_uses": 1}))
        .await
        .unwrap();
    let rid = role_id(&mount, "web").await;
    let issued = new_secret_id(&mount, "web", json!({})).await;
    assert_eq!(issued["secret_id_num_uses"], 1);
    let sid = issued["secret_id"].as_str().unwrap();
    assert!(login(&mount, &rid, sid).await.is_ok());
    assert_error(login(&mount, &rid, sid).await, 400, INVALID_CREDENTIALS);
    assert!(
        !mount
            .keys()
            .iter()
            .any(|k| k.starts_with("secret_id/") || k.starts_with("accessor/")),
        "a used-up secret ID and its accessor are gone: {:?}",
        mount.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_with_a_single_use_secret_id_let_exactly_one_through() {
    for _ in 0..20 {
        let mount = Arc::new(approle());
        mount
            .write("role/web", json!({"secret_id_num_uses": 1}))
            .await
            .unwrap();
        let rid = role_id(&mount, "web").await;
        let sid = plain_secret_id(&mount, "web").await;
        let attempts: Vec<_> = (0..4)
            .map(|_| {
                let (mount, rid, sid) = (mount.clone(), rid.clone(), sid.clone());
                tokio::spawn(async move { login(&mount, &rid, &sid).await.is_ok() })
            })
            .collect();
        let mut successes = 0;
        for a in attempts {
            successes += usize::from(a.await.unwrap());
        }
        assert_eq!(successes, 1);
    }
}

#[tokio::test]
async fn secret_id_with_three_uses_counts_down() {
    let mount = approle();
    mount.write("role/web", json!({})).await.unwrap();
    let rid = role_id(&mount, "web").await;
    let sid = new_secret_id(&mount, "web", json!({"num_uses": 3})).await["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    for remaining in [2, 1] {
        login(&mount, &rid, &sid).await.unwrap();
        let looked = body(
            &mount
                .write("role/web/secret-id/lookup", json!({"secret_id": sid}))
                .await
                .unwrap(),
        );
        assert_eq!(looked["secret_id_num_uses"], remaining);
    }
    login(&mount, &rid, &sid).await.unwrap();
    assert_error(login(&mount, &rid, &sid).await, 400, INVALID_CREDENTIALS);
}

#[tokio::test]
async fn secret_id_expires_after_its_ttl() {
    let mount = approle();
    mount
        .write("role/web", json!({"secret_id_ttl": "10m"}))
        .await
        .unwrap();
    let rid = role_id(&mount, "web").await;
    let issued = new_secret_id(&mount, "web", json!({})).await;
    assert_eq!(issued["secret_id_ttl"], 600);
    let sid = issued["secret_id"].as_str().unwrap();
    mount.clock.advance(Duration::from_secs(9 * 60));
    assert!(login(&mount, &rid, sid).await.is_ok());
    mount.clock.advance(Duration::from_secs(61));
    assert_error(login(&mount, &rid, sid).await, 400, INVALID_CREDENTIALS);
}

#[tokio::test]
async fn secret_id_cidr_binding_refuses_outsiders_and_admits_insiders() {
    let mount = approle();
    mount.write("role/web", json!({})).await.unwrap();
    let rid = role_id(&mount, "web").await;
    let sid = new_secret_id(&mount, "web", json!({"cidr_list": ["192.168.1.0/24"]})).await
        ["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let body_in = json!({"role_id": rid, "secret_id": sid});
    assert_error(
        mount
            .write_from("login", body_in.clone(), "10.9.9.9:5000")
            .await,
        400,
        "source address \"10.9.9.9\" unauthorized by CIDR restrictions on the secret ID",
    );
    assert_eq!(
        mount
            .write("login", body_in.clone())
            .await
            .unwrap_err()
            .status(),
        400
    );
    assert!(mount
        .write_from("login", body_in, "192.168.1.20:5000")
        .await
        .is_ok());
}

#[tokio::test]
async fn role_cidr_binding_applies_to_every_login_and_caps_secret_id_cidrs() {
    let mount = approle();
    mount
        .write(
            "role/web",
            json!({"secret_id_bound_cidrs": ["172.16.0.0/12"], "secret_id_num_uses": 2}),
        )
        .await
        .unwrap();
    let rid = role_id(&mount, "web").await;
    let sid = plain_secret_id(&mount, "web").await;
    let body_in = json!({"role_id": rid, "secret_id": sid});
    assert_error(
        mount
            .write_from("login", body_in.clone(), "8.8.8.8:1")
            .await,
        400,
        "source address \"8.8.8.8\" unauthorized by CIDR restrictions on the role",
    );
    // The refused attempt did not consume a use: two logins still work.
    assert!(mount
        .write_from("login", body_in.clone(), "172.16.5.5:1")
        .await
        .is_ok());
    assert!(mount
        .write_from("login", body_in, "172.16.5.5:1")
        .await
        .is_ok());
    let err = mount
        .write("role/web/secret-id", json!({"cidr_list": "0.0.0.0/0"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn destroy_by_secret_id_and_by_accessor() {
    let mount = approle();
    mount.write("role/web", json!({})).await.unwrap();
    let rid = role_id(&mount, "web").await;
    let first = new_secret_id(&mount, "web", json!({})).await;
    let second = new_secret_id(&mount, "web", json!({})).await;
    let mut listed = keys_of(&mount.list("role/web/secret-id").await.unwrap());
    listed.sort();
    let mut expected = vec![
        first["secret_id_accessor"].as_str().unwrap().to_string(),
        second["secret_id_accessor"].as_str().unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(listed, expected);

    mount
        .write(
            "role/web/secret-id/destroy",
            json!({"secret_id": first["secret_id"]}),
        )
        .await
        .unwrap();
    assert_error(
        login(&mount, &rid, first["secret_id"].as_str().unwrap()).await,
        400,
        INVALID_CREDENTIALS,
    );
    mount
        .write(
            "role/web/secret-id-accessor/destroy",
            json!({"secret_id_accessor": second["secret_id_accessor"]}),
        )
        .await
        .unwrap();
    assert_error(
        login(&mount, &rid, second["secret_id"].as_str().unwrap()).await,
        400,
        INVALID_CREDENTIALS,
    );
    assert_eq!(
        mount.list("role/web/secret-id").await.unwrap_err().status(),
        404
    );
}

#[tokio::test]
async fn lookup_by_secret_id_and_by_accessor_describe_it() {
    let mount = approle();
    mount
        .write("role/web", json!({"secret_id_ttl": "1h"}))
        .await
        .unwrap();
    let issued = new_secret_id(
        &mount,
        "web",
        json!({"metadata": {"team": "blue"}, "cidr_list": "10.1.2.3"}),
    )
    .await;
    let by_id = body(
        &mount
            .write(
                "role/web/secret-id/lookup",
                json!({"secret_id": issued["secret_id"]}),
            )
            .await
            .unwrap(),
    );
    assert_eq!(by_id["secret_id_accessor"], issued["secret_id_accessor"]);
    assert_eq!(by_id["metadata"], json!({"team": "blue"}));
    assert_eq!(by_id["cidr_list"], json!(["10.1.2.3/32"]));
    assert_eq!(by_id["secret_id_ttl"], 3600);
    assert!(
        by_id.get("secret_id").is_none(),
        "lookup never returns the secret ID"
    );
    let by_accessor = body(
        &mount
            .write(
                "role/web/secret-id-accessor/lookup",
                json!({"secret_id_accessor": issued["secret_id_accessor"]}),
            )
            .await
            .unwrap(),
    );
    assert_eq!(by_accessor, by_id);
    // An unknown secret ID has no data, as in Vault.
    let unknown = mount
        .write("role/web/secret-id/lookup", json!({"secret_id": "nope"}))
        .await
        .unwrap();
    assert!(unknown.data.is_none());
}

#[tokio::test]
async fn tidy_removes_only_expired_secret_ids() {
    let mount = approle();
    mount.write("role/web", json!({})).await.unwrap();
    let rid = role_id(&mount, "web").await;
    let short = new_secret_id(&mount, "web", json!({"ttl": "1m"})).await;
    let forever = new_secret_id(&mount, "web", json!({})).await;
    mount.clock.advance(Duration::from_secs(120));
    let resp = mount.write("tidy/secret-id", json!({})).await.unwrap();
    assert_eq!(resp.status, Some(202));
    assert_eq!(resp.warnings, vec![TIDY_STARTED]);
    let listed = keys_of(&mount.list("role/web/secret-id").await.unwrap());
    assert_eq!(
        listed,
        vec![forever["secret_id_accessor"].as_str().unwrap()]
    );
    assert_eq!(
        mount
            .keys()
            .iter()
            .filter(|k| k.starts_with("accessor/"))
            .count(),
        1,
        "the expired secret ID's accessor went too"
    );
    assert!(short["secret_id"].is_string());
    assert!(login(&mount, &rid, forever["secret_id"].as_str().unwrap())
        .await
        .is_ok());
}

#[tokio::test]
async fn secret_ids_are_stored_only_as_salted_hashes() {
    let mount = approle();
    mount.write("role/web", json!({})).await.unwrap();
    let generated = new_secret_id(&mount, "web", json!({})).await;
    let custom = mount
        .write(
            "role/web/custom-secret-id",
            json!({"secret_id": "my-very-own-secret", "metadata": {"a": "b"}, "num_uses": 0}),
        )
        .await
        .unwrap();
    assert!(custom.warnings.is_empty(), "{:?}", custom.warnings);
    assert_eq!(body(&custom)["secret_id"], "my-very-own-secret");
    let rid = role_id(&mount, "web").await;
    assert!(login(&mount, &rid, "my-very-own-secret").await.is_ok());
    let dump = mount.dump().await;
    assert!(
        !dump.contains(generated["secret_id"].as_str().unwrap()),
        "{dump}"
    );
    assert!(!dump.contains("my-very-own-secret"), "{dump}");
    assert_eq!(
        dump.matches(rid.as_str()).count(),
        1,
        "the role ID index is keyed by hash; only the role itself holds the role ID"
    );
    assert_error(
        mount
            .write(
                "role/web/custom-secret-id",
                json!({"secret_id": "my-very-own-secret"}),
            )
            .await,
        400,
        "SecretID is already registered",
    );
}

#[tokio::test]
async fn deleting_a_role_removes_its_secret_ids_and_role_id() {
    let mount = approle();
    mount.write("role/web", json!({})).await.unwrap();
    let rid = role_id(&mount, "web").await;
    let sid = plain_secret_id(&mount, "web").await;
    mount.delete("role/web").await.unwrap();
    assert_error(login(&mount, &rid, &sid).await, 400, INVALID_CREDENTIALS);
    assert_eq!(mount.keys(), vec!["salt"]);
}

#[tokio::test]
async fn bad_input_is_a_400_and_writes_nothing() {
    let mount = approle();
    let before = mount.snapshot().await;
    for case in [
        json!({"bind_secret_id": "maybe"}),
        json!({"secret_id_num_uses": "lots"}),
        json!({"secret_id_num_uses": -1}),
        json!({"secret_id_ttl": "forever"}),
        json!({"token_bound_cidrs": ["300.1.1.1/8"]}),
        json!({"bind_secret_id": false}), // no constraint left
    ] {
        let err = mount.write("role/web", case.clone()).await.unwrap_err();
        assert_eq!(err.status(), 400, "{case}: {err}");
        assert_eq!(mount.snapshot().await, before, "{case} wrote something");
    }
    // Unknown role.
    for (path, body_in) in [
        ("role/ghost/secret-id", json!({})),
        ("role/ghost/custom-secret-id", json!({"secret_id": "abc"})),
        ("role/ghost/role-id", json!({"role_id": "abc"})),
        ("role/ghost/secret-id/lookup", json!({"secret_id": "abc"})),
        (
            "role/ghost/secret-id-accessor/destroy",
            json!({"secret_id_accessor": "abc"}),
        ),
    ] {
        assert_error(
            mount.write(path, body_in).await,
            400,
            "role \"ghost\" does not exist",
        );
    }
    assert_eq!(mount.read("role/ghost").await.unwrap_err().status(), 404);

    // Bad secret-id requests on a real role write nothing either.
    mount
        .write("role/web", json!({"secret_id_num_uses": 2}))
        .await
        .unwrap();
    let before = mount.snapshot().await;
    for case in [
        json!({"metadata": {"n": 1}}),
        json!({"metadata": "not json"}),
        json!({"cidr_list": "nope"}),
        json!({"num_uses": 5}),
        json!({"num_uses": "x"}),
        json!({"ttl": true}),
    ] {
        let err = mount
            .write("role/web/secret-id", case.clone())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "{case}: {err}");
        assert_eq!(mount.snapshot().await, before, "{case} wrote something");
    }
    assert_error(
        mount.write("role/web/custom-secret-id", json!({})).await,
        400,
        "missing secret_id",
    );
    let err = mount
        .write("login", json!({"role_id": ["a"], "secret_id": {"b": 1}}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(mount.snapshot().await, before);
}

#[tokio::test]
async fn role_without_bind_secret_id_logs_in_by_role_id_from_bound_cidrs() {
    let mount = approle();
    mount
        .write(
            "role/agent",
            json!({"bind_secret_id": false, "secret_id_bound_cidrs": "10.0.0.0/8"}),
        )
        .await
        .unwrap();
    let rid = role_id(&mount, "agent").await;
    assert!(mount
        .write_from("login", json!({"role_id": rid}), "10.1.1.1:9")
        .await
        .is_ok());
    assert_eq!(
        mount
            .write_from("login", json!({"role_id": rid}), "11.1.1.1:9")
            .await
            .unwrap_err()
            .status(),
        400
    );
    assert_error(
        mount.write("role/agent/secret-id", json!({})).await,
        400,
        "bind_secret_id is not set on the role",
    );
}

/// Logins keep the role they found (by role ID) in memory; every change to a role must reach
/// the very next login: policies, the role ID itself, its CIDR binding, bind_secret_id, and
/// deletion (a deleted role's role ID must not log in from memory).
#[tokio::test]
async fn a_role_change_reaches_the_very_next_login() {
    let mount = approle();
    mount
        .write("role/web", json!({"token_policies": ["first"]}))
        .await
        .unwrap();
    let rid = role_id(&mount, "web").await;
    let sid = plain_secret_id(&mount, "web").await;
    let policies = |resp: coffer_sdk::Response| resp.login.unwrap().policies;
    assert_eq!(
        policies(login(&mount, &rid, &sid).await.unwrap()),
        vec!["first"]
    );
    // Twice, so the second comes from memory.
    assert_eq!(
        policies(login(&mount, &rid, &sid).await.unwrap()),
        vec!["first"]
    );

    mount
        .write("role/web", json!({"token_policies": ["second"]}))
        .await
        .unwrap();
    assert_eq!(
        policies(login(&mount, &rid, &sid).await.unwrap()),
        vec!["second"]
    );

    mount
        .write(
            "role/web",
            json!({"secret_id_bound_cidrs": ["10.9.9.0/24"]}),
        )
        .await
        .unwrap();
    assert!(
        login(&mount, &rid, &sid).await.is_err(),
        "the new CIDR binding applies"
    );
    mount
        .write("role/web", json!({"secret_id_bound_cidrs": []}))
        .await
        .unwrap();
    assert!(login(&mount, &rid, &sid).await.is_ok());

    mount
        .write("role/web/role-id", json!({"role_id": "moved-id"}))
        .await
        .unwrap();
    assert_error(login(&mount, &rid, &sid).await, 400, INVALID_CREDENTIALS);
    assert!(login(&mount, "moved-id", &sid).await.is_ok());

    mount.delete("role/web").await.unwrap();
    assert_error(
        login(&mount, "moved-id", &sid).await,
        400,
        INVALID_CREDENTIALS,
    );
    // A new role taking the old name does not inherit anything remembered for the old one.
    mount
        .write(
            "role/web",
            json!({"role_id": "moved-id", "token_policies": ["third"]}),
        )
        .await
        .unwrap();
    assert_error(
        login(&mount, "moved-id", &sid).await,
        400,
        INVALID_CREDENTIALS,
    );
    let sid = plain_secret_id(&mount, "web").await;
    assert_eq!(
        policies(login(&mount, "moved-id", &sid).await.unwrap()),
        vec!["third"]
    );
}
