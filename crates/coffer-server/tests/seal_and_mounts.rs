//! Seal lifecycle, barrier rotation, mounts, and the no-plaintext-on-disk guarantee.

mod common;
use coffer_sdk::Operation::*;
use coffer_storage::{EmbeddedStorage, Storage};
use common::*;
use serde_json::json;
use std::sync::Arc;
use zeroize::Zeroizing;

#[tokio::test]
async fn unseal_needs_threshold_shares_and_rejects_wrong_ones() {
    let h = Harness::over(Arc::new(coffer_storage::MemoryStorage::new()), 5, 3).await;
    h.ok(Update, "secret/data/k", json!({"data": {"v": "1"}}))
        .await;
    h.core.seal().await.unwrap();
    assert_eq!(
        h.call(Read, "secret/data/k", json!({}), &h.root.clone())
            .await
            .unwrap_err()
            .status(),
        503
    );
    let s = h
        .core
        .unseal(Some(Zeroizing::new(h.keys[4].clone())), false)
        .await
        .unwrap();
    assert!(s.sealed && s.progress == 1);
    let s = h
        .core
        .unseal(Some(Zeroizing::new(h.keys[4].clone())), false)
        .await
        .unwrap();
    assert_eq!(s.progress, 1, "a repeated share is not counted twice");
    let s = h
        .core
        .unseal(Some(Zeroizing::new(h.keys[1].clone())), false)
        .await
        .unwrap();
    assert!(s.sealed && s.progress == 2);
    let s = h.core.unseal(None, true).await.unwrap();
    assert_eq!(s.progress, 0, "reset clears progress");
    // Two right shares and one wrong one do not unseal, and the error is a 400.
    h.core
        .unseal(Some(Zeroizing::new(h.keys[0].clone())), false)
        .await
        .unwrap();
    h.core
        .unseal(Some(Zeroizing::new(h.keys[1].clone())), false)
        .await
        .unwrap();
    let mut wrong = h.keys[2].clone();
    wrong[5] ^= 0xff;
    let err = h
        .core
        .unseal(Some(Zeroizing::new(wrong)), false)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(h.core.barrier.is_sealed());
    for k in &h.keys[2..5] {
        h.core
            .unseal(Some(Zeroizing::new(k.clone())), false)
            .await
            .unwrap();
    }
    assert!(!h.core.barrier.is_sealed());
    assert_eq!(
        h.ok(Read, "secret/data/k", json!({}))
            .await
            .data_map()
            .unwrap()["data"]["v"],
        "1"
    );
}

#[tokio::test]
async fn rotation_keeps_old_entries_readable_across_seal() {
    let h = Harness::new().await;
    h.ok(Update, "secret/data/old", json!({"data": {"v": "before"}}))
        .await;
    h.ok(Update, "sys/rotate", json!({})).await;
    let status = h.ok(Read, "sys/key-status", json!({})).await;
    assert_eq!(status.data.unwrap()["term"], 2);
    h.ok(Update, "secret/data/new", json!({"data": {"v": "after"}}))
        .await;
    h.core.seal().await.unwrap();
    h.core
        .unseal(Some(Zeroizing::new(h.keys[0].clone())), false)
        .await
        .unwrap();
    assert_eq!(
        h.ok(Read, "secret/data/old", json!({}))
            .await
            .data_map()
            .unwrap()["data"]["v"],
        "before"
    );
    assert_eq!(
        h.ok(Read, "secret/data/new", json!({}))
            .await
            .data_map()
            .unwrap()["data"]["v"],
        "after"
    );
}

#[tokio::test]
async fn rekey_replaces_the_shares() {
    let h = Harness::over(Arc::new(coffer_storage::MemoryStorage::new()), 3, 2).await;
    h.core.rekey_init(5, 3).await.unwrap();
    let (nonce, ..) = h.core.rekey_status().await.unwrap();
    assert!(matches!(
        h.core
            .rekey_update(Zeroizing::new(h.keys[0].clone()), &nonce)
            .await
            .unwrap(),
        coffer_server::core::RekeyProgress::Pending { .. }
    ));
    let new_keys = match h
        .core
        .rekey_update(Zeroizing::new(h.keys[1].clone()), &nonce)
        .await
        .unwrap()
    {
        coffer_server::core::RekeyProgress::Complete { keys, .. } => keys,
        _ => panic!("rekey should complete at threshold"),
    };
    assert_eq!(new_keys.len(), 5);
    h.core.seal().await.unwrap();
    // Old shares no longer work.
    h.core
        .unseal(Some(Zeroizing::new(h.keys[0].clone())), false)
        .await
        .unwrap();
    h.core
        .unseal(Some(Zeroizing::new(h.keys[1].clone())), false)
        .await
        .unwrap();
    assert!(h
        .core
        .unseal(Some(Zeroizing::new(h.keys[2].clone())), false)
        .await
        .is_err());
    assert!(h.core.barrier.is_sealed());
    for k in &new_keys[..3] {
        h.core.unseal(Some(k.clone()), false).await.unwrap();
    }
    assert!(!h.core.barrier.is_sealed());
    assert_eq!(h.core.seal_status().await.unwrap().n, 5);
}

#[tokio::test]
async fn each_mount_sees_only_its_own_storage_and_disable_deletes_it() {
    let h = Harness::new().await;
    h.ok(Update, "sys/mounts/kv1", json!({"type": "kv"})).await;
    h.ok(Update, "kv1/shared", json!({"v": "one"})).await;
    h.ok(Update, "secret/data/shared", json!({"data": {"v": "two"}}))
        .await;
    assert_eq!(
        h.ok(Read, "kv1/shared", json!({})).await.data.unwrap()["v"],
        "one"
    );
    let uuid_of = |resp: &coffer_sdk::Response, path: &str| -> String {
        let body: serde_json::Value =
            serde_json::from_slice(&resp.raw.as_ref().unwrap().body).unwrap();
        body["data"][path]["uuid"].as_str().unwrap().to_string()
    };
    let mounts = h.ok(Read, "sys/mounts", json!({})).await;
    let kv1 = uuid_of(&mounts, "kv1/");
    assert!(!h
        .storage
        .scan(&format!("logical/{kv1}/"))
        .await
        .unwrap()
        .is_empty());
    h.ok(Delete, "sys/mounts/kv1", json!({})).await;
    assert!(
        h.storage
            .scan(&format!("logical/{kv1}/"))
            .await
            .unwrap()
            .is_empty(),
        "disable removes the data"
    );
    assert_eq!(
        h.call(Read, "kv1/shared", json!({}), &h.root.clone())
            .await
            .unwrap_err()
            .status(),
        404
    );
    assert_eq!(
        h.ok(Read, "secret/data/shared", json!({}))
            .await
            .data_map()
            .unwrap()["data"]["v"],
        "two"
    );
}

#[tokio::test]
async fn remount_moves_the_engine_with_its_data() {
    let h = Harness::new().await;
    h.ok(Update, "secret/data/app", json!({"data": {"v": "kept"}}))
        .await;
    h.ok(
        Update,
        "sys/remount",
        json!({"from": "secret", "to": "moved"}),
    )
    .await;
    assert_eq!(
        h.ok(Read, "moved/data/app", json!({}))
            .await
            .data_map()
            .unwrap()["data"]["v"],
        "kept"
    );
    assert!(h
        .call(Read, "secret/data/app", json!({}), &h.root.clone())
        .await
        .is_err());
}

#[tokio::test]
async fn bad_mount_requests_are_4xx_and_change_nothing() {
    let h = Harness::new().await;
    let before = h.snapshot().await;
    let root = h.root.clone();
    let cases = [
        ("sys/mounts/x", json!({"type": "nope"})),
        ("sys/mounts/secret", json!({"type": "kv"})),
        ("sys/mounts/secret/nested", json!({"type": "kv"})),
        ("sys/mounts/sys", json!({"type": "kv"})),
        ("sys/mounts/y", json!({"type": 5})),
        (
            "sys/mounts/y",
            json!({"type": "kv", "config": {"default_lease_ttl": "banana"}}),
        ),
        (
            "sys/mounts/y",
            json!({"type": "kv", "config": {"max_lease_ttl": "100000h"}}),
        ),
        (
            "sys/mounts/y",
            json!({"type": "kv", "options": {"version": "3"}}),
        ),
        ("sys/auth/u", json!({"type": "nope"})),
        ("sys/remount", json!({"from": "nothere", "to": "x"})),
        ("sys/mounts/secret/tune", json!({"default_lease_ttl": "-5"})),
    ];
    for (path, body) in cases {
        let err = h.call(Update, path, body.clone(), &root).await.unwrap_err();
        assert!((400..500).contains(&err.status()), "{path} {body}: {err}");
    }
    assert_eq!(before, h.snapshot().await);
}

#[tokio::test]
async fn tune_changes_ttls_and_is_read_back() {
    let h = Harness::new().await;
    h.ok(
        Update,
        "sys/mounts/secret/tune",
        json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h", "description": "tuned"}),
    )
    .await;
    let tune = h
        .ok(Read, "sys/mounts/secret/tune", json!({}))
        .await
        .data
        .unwrap();
    assert_eq!(tune["default_lease_ttl"], 3600);
    assert_eq!(tune["max_lease_ttl"], 7200);
    assert_eq!(tune["description"], "tuned");
    let err = h
        .call(
            Update,
            "sys/mounts/secret/tune",
            json!({"default_lease_ttl": "3h"}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "default above max is refused");
}

#[tokio::test]
async fn no_plaintext_reaches_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = ["plaintext-needle-4f1c9a", "another-needle-88d2e7"];
    {
        let storage: Arc<dyn Storage> = Arc::new(EmbeddedStorage::open(dir.path()).unwrap());
        let h = Harness::over(storage, 1, 1).await;
        h.ok(
            Update,
            "secret/data/app/db",
            json!({"data": {"password": secrets[0]}}),
        )
        .await;
        h.ok(
            Update,
            "secret/metadata/app/db",
            json!({"custom_metadata": {"owner": secrets[1]}}),
        )
        .await;
        h.ok(Update, "sys/mounts/kv1", json!({"type": "kv"})).await;
        h.ok(Update, "kv1/k", json!({"v": secrets[0]})).await;
        h.ok(Update, "sys/policies/acl/p", json!({"policy": format!("path \"secret/data/{}\" {{ capabilities = [\"read\"] }}", secrets[1])})).await;
        let token = h.token(json!({"policies": ["default"]})).await;
        let mut all = secrets.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        all.push(token);
        all.push(h.root.clone());
        drop(h);
        let mut files = Vec::new();
        for entry in walk(dir.path()) {
            files.push(std::fs::read(&entry).unwrap());
        }
        assert!(!files.is_empty());
        for needle in &all {
            for bytes in &files {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "found {needle:?} in the data directory"
                );
            }
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn ui_mounts_is_unauthenticated_as_declared_and_sealed_is_503() {
    let h = Harness::new().await;
    let call = |token: &'static str| {
        let core = h.core.clone();
        async move {
            core.handle(
                coffer_sdk::Request::new(Read, "sys/internal/ui/mounts/secret/data/x"),
                (!token.is_empty()).then_some(token),
            )
            .await
        }
    };
    let root: &'static str = Box::leak(h.root.clone().into_boxed_str());
    let with_token = call(root).await.expect("a token sees the mount");
    assert_eq!(with_token.data.unwrap()["path"], "secret/");
    assert_eq!(
        call("").await.unwrap_err().status(),
        403,
        "hidden from anonymous callers"
    );
    h.ok(
        Update,
        "sys/mounts/secret/tune",
        json!({"listing_visibility": "unauth"}),
    )
    .await;
    call("").await.expect("unless tuned visible, as in Vault");
    h.core.seal().await.unwrap();
    assert_eq!(call(root).await.unwrap_err().status(), 503);
    assert_eq!(call("").await.unwrap_err().status(), 503);
}

#[tokio::test]
async fn query_inputs_of_leases_and_metrics_are_typed() {
    let h = Harness::new().await;
    for (path, body) in [
        ("sys/leases/count", json!({"type": ["irrevocable"]})),
        ("sys/leases", json!({"type": 7})),
        ("sys/metrics", json!({"format": {"a": 1}})),
    ] {
        let err = h
            .call(Read, path, body.clone(), &h.root.clone())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "{path} {body}");
        assert!(err.to_string().contains("field"), "{path}: {err}");
    }
    let resp = h
        .ok(
            Read,
            "sys/leases/count",
            json!({"type": "all", "extra": "x"}),
        )
        .await;
    assert!(
        resp.warnings.iter().any(|w| w.contains("extra")),
        "unknown query parameters are reported like unknown body fields"
    );
}

#[tokio::test]
async fn sys_tools_random_and_hash_answer_as_vault_does() {
    let h = Harness::new().await;
    let random = |path: &'static str, body: serde_json::Value| {
        let h = &h;
        async move { h.call(Update, path, body, &h.root.clone()).await }
    };
    let hex = random("sys/tools/random/16", json!({"format": "hex"}))
        .await
        .unwrap()
        .data
        .unwrap()["random_bytes"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hex.len(), 32);
    let b64 = random("sys/tools/random/platform/8", json!({}))
        .await
        .unwrap();
    assert_eq!(
        b64.data.unwrap()["random_bytes"].as_str().unwrap().len(),
        12
    );
    for (path, body) in [
        ("sys/tools/random/0", json!({})),
        ("sys/tools/random/platform/999999999", json!({})),
        ("sys/tools/random/elsewhere/8", json!({})),
        ("sys/tools/random/8", json!({"format": "binary"})),
    ] {
        assert_eq!(
            random(path, body).await.unwrap_err().status(),
            400,
            "{path}"
        );
    }
    // sha2-256 of "abc", the FIPS 180-2 test vector.
    let sum = h
        .ok(Update, "sys/tools/hash/sha2-256", json!({"input": "YWJj"}))
        .await
        .data
        .unwrap()["sum"]
        .clone();
    assert_eq!(
        sum,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let err = h
        .call(
            Update,
            "sys/tools/hash/md5",
            json!({"input": "YWJj"}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn the_openapi_document_follows_the_mounts() {
    let h = Harness::new().await;
    let doc = |h: &Harness| {
        let core = h.core.clone();
        async move {
            let resp = core
                .handle(
                    coffer_sdk::Request::new(Read, "sys/internal/specs/openapi"),
                    None,
                )
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&resp.raw.unwrap().body).unwrap()
        }
    };
    let before = doc(&h).await;
    assert!(before["paths"].get("/kv9/{path}").is_none());
    h.ok(Update, "sys/mounts/kv9", json!({"type": "kv"})).await;
    let after = doc(&h).await;
    assert!(
        after["paths"].get("/kv9/{path}").is_some(),
        "a new mount shows at once"
    );
    h.ok(Delete, "sys/mounts/kv9", json!({})).await;
    assert!(
        doc(&h).await["paths"].get("/kv9/{path}").is_none(),
        "and goes with its unmount"
    );
}
