//! The userpass auth method through the engine's declared paths.

mod common;

use coffer_auth::userpass::INVALID_CREDENTIALS;
use common::{assert_error, body, keys_of, Mount};
use serde_json::json;
use std::time::Duration;

fn userpass() -> Mount {
    Mount::new("userpass", &[])
}

async fn with_alice(mount: &Mount) {
    mount
        .write(
            "users/alice",
            json!({"password": "correct horse", "token_policies": "dev, ops", "token_ttl": "1h",
                   "token_bound_cidrs": ["10.0.0.0/8"]}),
        )
        .await
        .unwrap();
}

async fn login(
    mount: &Mount,
    user: &str,
    password: &str,
) -> coffer_sdk::Result<coffer_sdk::Response> {
    mount
        .write(&format!("login/{user}"), json!({"password": password}))
        .await
}

#[tokio::test]
async fn created_user_logs_in_and_gets_its_policies_and_identity() {
    let mount = userpass();
    with_alice(&mount).await;
    assert!(mount.is_unauthenticated("login/alice"));
    assert!(!mount.is_unauthenticated("users/alice"));

    let resp = login(&mount, "alice", "correct horse").await.unwrap();
    assert!(resp.auth.is_none(), "engines never mint tokens");
    let login = resp.login.expect("login");
    assert_eq!(login.policies, vec!["dev", "ops"]);
    assert_eq!(
        login.metadata,
        json!({"username": "alice"}).as_object().cloned().unwrap()
    );
    assert_eq!(login.display_name, "alice");
    assert_eq!(login.alias_name, "alice");
    assert_eq!(login.ttl, Duration::from_secs(3600));
    assert_eq!(login.bound_cidrs, vec!["10.0.0.0/8"]);
    assert!(!login.no_default_policy);
}

#[tokio::test]
async fn usernames_are_case_insensitive() {
    let mount = userpass();
    mount
        .write("users/Bob", json!({"password": "pw-bob"}))
        .await
        .unwrap();
    assert_eq!(keys_of(&mount.list("users/").await.unwrap()), vec!["bob"]);
    let login = login(&mount, "BOB", "pw-bob").await.unwrap().login.unwrap();
    assert_eq!(login.alias_name, "bob");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_identically() {
    let mount = userpass();
    with_alice(&mount).await;
    assert_error(
        login(&mount, "alice", "wrong").await,
        400,
        INVALID_CREDENTIALS,
    );
    assert_error(
        login(&mount, "mallory", "wrong").await,
        400,
        INVALID_CREDENTIALS,
    );
    assert_error(login(&mount, "alice", "").await, 400, INVALID_CREDENTIALS);
    assert_eq!(INVALID_CREDENTIALS, "invalid username or password");
}

#[tokio::test]
async fn read_never_returns_the_password_or_its_hash() {
    let mount = userpass();
    with_alice(&mount).await;
    let data = body(&mount.read("users/alice").await.unwrap());
    assert_eq!(data["token_policies"], json!(["dev", "ops"]));
    assert_eq!(data["token_ttl"], 3600);
    assert_eq!(data["token_bound_cidrs"], json!(["10.0.0.0/8"]));
    let text = data.to_string();
    assert!(!text.contains("password"), "{text}");
    assert!(!text.contains("argon2"), "{text}");
    assert!(!text.contains("correct horse"), "{text}");
    assert_eq!(mount.read("users/nobody").await.unwrap_err().status(), 404);
}

#[tokio::test]
async fn only_an_argon2id_hash_of_the_password_is_stored() {
    let mount = userpass();
    with_alice(&mount).await;
    let dump = mount.dump().await;
    assert!(!dump.contains("correct horse"), "{dump}");
    assert!(dump.contains("$argon2id$"), "{dump}");
}

#[tokio::test]
async fn password_change_replaces_the_old_password() {
    let mount = userpass();
    with_alice(&mount).await;
    mount
        .write(
            "users/alice/password",
            json!({"password": "battery staple"}),
        )
        .await
        .unwrap();
    assert_error(
        login(&mount, "alice", "correct horse").await,
        400,
        INVALID_CREDENTIALS,
    );
    assert!(login(&mount, "alice", "battery staple").await.is_ok());
    assert!(!mount.dump().await.contains("battery staple"));
    // Policies survive a password change.
    let data = body(&mount.read("users/alice").await.unwrap());
    assert_eq!(data["token_policies"], json!(["dev", "ops"]));
}

#[tokio::test]
async fn updating_without_a_password_keeps_it_and_policies_endpoint_replaces_policies() {
    let mount = userpass();
    with_alice(&mount).await;
    mount
        .write("users/alice", json!({"token_ttl": "2h"}))
        .await
        .unwrap();
    mount
        .write("users/alice/policies", json!({"policies": ["admin"]}))
        .await
        .unwrap();
    let login = login(&mount, "alice", "correct horse")
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(login.policies, vec!["admin"]);
    assert_eq!(login.ttl, Duration::from_secs(7200));
}

#[tokio::test]
async fn list_and_delete_users() {
    let mount = userpass();
    with_alice(&mount).await;
    mount
        .write("users/bob", json!({"password": "pw"}))
        .await
        .unwrap();
    assert_eq!(
        keys_of(&mount.list("users/").await.unwrap()),
        vec!["alice", "bob"]
    );
    mount.delete("users/alice").await.unwrap();
    assert_eq!(keys_of(&mount.list("users").await.unwrap()), vec!["bob"]);
    assert_error(
        login(&mount, "alice", "correct horse").await,
        400,
        INVALID_CREDENTIALS,
    );
}

#[tokio::test]
async fn bad_input_is_a_400_and_writes_nothing() {
    let mount = userpass();
    let cases = [
        json!({}), // create needs a password
        json!({"password": ""}),
        json!({"password": true}), // wrong type
        json!({"password": ["hunter2"]}),
        json!({"password": "pw", "token_ttl": "soon"}),
        json!({"password": "pw", "token_bound_cidrs": "nope"}),
        json!({"password": "pw", "token_no_default_policy": "perhaps"}),
        json!({"password": "pw", "token_num_uses": -1}),
    ];
    for case in cases {
        let err = mount.write("users/carol", case.clone()).await.unwrap_err();
        assert_eq!(err.status(), 400, "{case}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(mount.keys().is_empty(), "{case} wrote {:?}", mount.keys());
    }
    let err = mount
        .write("users/ghost/password", json!({"password": "pw"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(mount.keys().is_empty());
    assert_eq!(
        login(&mount, "ghost", "x").await.unwrap_err().status(),
        400,
        "an unknown user is a plain credential failure"
    );
}

#[tokio::test]
async fn unknown_fields_are_reported_not_stored() {
    let mount = userpass();
    let resp = mount
        .write("users/dave", json!({"password": "pw", "colour": "blue"}))
        .await
        .unwrap();
    assert_eq!(
        resp.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [colour]"]
    );
    assert!(!mount.dump().await.contains("blue"));
}

#[tokio::test]
async fn repeated_failures_lock_the_user_out_until_the_lockout_duration_passes() {
    let mount = Mount::new(
        "userpass",
        &[("lockout_threshold", "3"), ("lockout_duration", "10m")],
    );
    with_alice(&mount).await;
    for _ in 0..3 {
        assert_error(
            login(&mount, "alice", "guess").await,
            400,
            INVALID_CREDENTIALS,
        );
    }
    // Locked: even the right password is refused, with Vault's permission denied.
    assert_error(
        login(&mount, "alice", "correct horse").await,
        403,
        "permission denied",
    );
    mount.clock.advance(Duration::from_secs(9 * 60));
    assert_error(
        login(&mount, "alice", "correct horse").await,
        403,
        "permission denied",
    );
    mount.clock.advance(Duration::from_secs(61));
    assert!(login(&mount, "alice", "correct horse").await.is_ok());
    // The success cleared the counter: two more failures do not lock.
    for _ in 0..2 {
        assert_error(
            login(&mount, "alice", "guess").await,
            400,
            INVALID_CREDENTIALS,
        );
    }
    assert!(login(&mount, "alice", "correct horse").await.is_ok());
}

#[tokio::test]
async fn default_lockout_is_five_failures_and_unknown_users_lock_the_same_way() {
    let mount = userpass();
    for _ in 0..5 {
        assert_error(
            login(&mount, "mallory", "guess").await,
            400,
            INVALID_CREDENTIALS,
        );
    }
    assert_error(
        login(&mount, "mallory", "guess").await,
        403,
        "permission denied",
    );
    // Creating the user now does not bypass the lock on the name.
    mount
        .write("users/mallory", json!({"password": "pw"}))
        .await
        .unwrap();
    assert_error(
        login(&mount, "mallory", "pw").await,
        403,
        "permission denied",
    );
    mount.clock.advance(Duration::from_secs(15 * 60));
    assert!(login(&mount, "mallory", "pw").await.is_ok());
}

#[tokio::test]
async fn failures_spread_beyond_the_counter_reset_window_never_lock() {
    let mount = Mount::new(
        "userpass",
        &[("lockout_threshold", "3"), ("lockout_counter_reset", "5m")],
    );
    with_alice(&mount).await;
    for _ in 0..2 {
        assert_error(
            login(&mount, "alice", "guess").await,
            400,
            INVALID_CREDENTIALS,
        );
    }
    mount.clock.advance(Duration::from_secs(5 * 60 + 1));
    // The counter restarted: this is failure 1 of a new window, not failure 3.
    assert_error(
        login(&mount, "alice", "guess").await,
        400,
        INVALID_CREDENTIALS,
    );
    assert_error(
        login(&mount, "alice", "guess").await,
        400,
        INVALID_CREDENTIALS,
    );
    assert!(login(&mount, "alice", "correct horse").await.is_ok());
}

#[tokio::test]
async fn lockout_state_is_persisted_in_the_view_and_can_be_disabled() {
    let mount = Mount::new("userpass", &[("lockout_threshold", "2")]);
    with_alice(&mount).await;
    assert_error(
        login(&mount, "alice", "guess").await,
        400,
        INVALID_CREDENTIALS,
    );
    assert!(mount.keys().contains(&"lockout/alice".to_string()));

    for options in [[("lockout_threshold", "0")], [("disable_lockout", "true")]] {
        let mount = Mount::new("userpass", &options);
        with_alice(&mount).await;
        for _ in 0..10 {
            assert_error(
                login(&mount, "alice", "guess").await,
                400,
                INVALID_CREDENTIALS,
            );
        }
        assert!(login(&mount, "alice", "correct horse").await.is_ok());
        assert!(!mount.keys().iter().any(|k| k.starts_with("lockout/")));
    }
}

#[tokio::test]
async fn concurrent_guesses_cannot_exceed_the_lockout_threshold() {
    let mount = std::sync::Arc::new(Mount::new("userpass", &[("lockout_threshold", "2")]));
    with_alice(&mount).await;
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let mount = mount.clone();
            tokio::spawn(async move { login(&mount, "alice", "guess").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.unwrap().unwrap_err().status());
    }
    statuses.sort();
    assert_eq!(statuses, vec![400, 400, 403, 403]);
}

#[tokio::test]
async fn invalid_lockout_options_refuse_the_mount() {
    let mut info = coffer_sdk::MountInfo::default();
    info.options
        .insert("lockout_duration".into(), "a while".into());
    let err = coffer_auth::backend("userpass", &info)
        .unwrap()
        .err()
        .unwrap();
    assert_eq!(err.status(), 400);
    assert!(coffer_auth::backend("ldap", &info).is_none());
    assert_eq!(
        coffer_auth::AUTH_TYPES,
        &["approle", "cert", "jwt", "oidc", "userpass"]
    );
}
