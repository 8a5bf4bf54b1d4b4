//! KV v1 behaviour as a Vault client sees it.

mod common;

use coffer_sdk::Operation;
use common::{body, keys_of, Mount};
use serde_json::json;

#[tokio::test]
async fn mounts_without_a_version_option_are_v1() {
    let kv = Mount::new(None);
    assert!(kv.backend.route("data/x").is_some());
    kv.write("data/x", json!({"a": 1})).await.unwrap();
    // v1 has no data/ prefix semantics: the path is stored as named.
    assert_eq!(kv.keys(), vec!["data/x"]);
    assert!(coffer_kv::backend(&coffer_sdk::MountInfo {
        options: [("version".to_string(), "7".to_string())].into(),
        ..Default::default()
    })
    .is_err());
}

#[tokio::test]
async fn written_secret_reads_back_and_overwrites() {
    let kv = Mount::v1();
    let resp = kv
        .write(
            "app/db",
            json!({"user": "admin", "port": 5432, "tags": ["a"]}),
        )
        .await
        .unwrap();
    assert!(resp.data.is_none(), "a v1 write answers 204");
    let read = kv.read("app/db").await.unwrap();
    assert_eq!(
        body(&read),
        json!({"user": "admin", "port": 5432, "tags": ["a"]})
    );

    kv.write("app/db", json!({"user": "other"})).await.unwrap();
    assert_eq!(
        body(&kv.read("app/db").await.unwrap()),
        json!({"user": "other"})
    );
}

#[tokio::test]
async fn first_write_is_create_and_later_ones_update() {
    let kv = Mount::v1();
    let route = kv.backend.route("a").unwrap();
    let check = route
        .spec
        .existence_check
        .clone()
        .expect("v1 writes declare an existence check");
    let ctx = |kv: &Mount| coffer_sdk::Ctx {
        request: coffer_sdk::Request::new(Operation::Update, "a"),
        view: kv.view.clone(),
        clock: std::sync::Arc::new(kv.clock.clone()),
        mount: std::sync::Arc::new(kv.info.clone()),
        params: route.params.clone(),
        rollback_log: None,
    };
    assert!(!check(ctx(&kv)).await.unwrap());
    kv.write("a", json!({"k": "v"})).await.unwrap();
    assert!(check(ctx(&kv)).await.unwrap());
}

#[tokio::test]
async fn missing_secret_is_not_found() {
    let kv = Mount::v1();
    let err = kv.read("nope").await.unwrap_err();
    assert_eq!(err.status(), 404);
    assert!(err.messages().is_empty());
}

#[tokio::test]
async fn delete_removes_the_secret_and_is_idempotent() {
    let kv = Mount::v1();
    kv.write("a", json!({"k": "v"})).await.unwrap();
    kv.delete("a").await.unwrap();
    assert_eq!(kv.read("a").await.unwrap_err().status(), 404);
    assert!(kv.keys().is_empty());
    kv.delete("a").await.unwrap();
}

#[tokio::test]
async fn list_shows_children_with_folders_once() {
    let kv = Mount::v1();
    for path in ["app/db", "app/api/key", "app/api/cert", "top"] {
        kv.write(path, json!({"v": 1})).await.unwrap();
    }
    assert_eq!(keys_of(&kv.list("app/").await.unwrap()), vec!["api/", "db"]);
    assert_eq!(keys_of(&kv.list("app").await.unwrap()), vec!["api/", "db"]);
    assert_eq!(keys_of(&kv.list("").await.unwrap()), vec!["app/", "top"]);
    assert_eq!(
        keys_of(&kv.list("app/api/").await.unwrap()),
        vec!["cert", "key"]
    );
}

#[tokio::test]
async fn empty_folder_lists_as_not_found() {
    let kv = Mount::v1();
    assert_eq!(kv.list("nothing/").await.unwrap_err().status(), 404);
}

#[tokio::test]
async fn empty_body_is_refused() {
    let kv = Mount::v1();
    let err = kv.write("a", json!({})).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(kv.keys().is_empty());
}

#[tokio::test]
async fn traversal_paths_are_bad_requests_and_write_nothing() {
    let kv = Mount::v1();
    for path in ["a/../b", "../a", "a//b", "a/"] {
        let err = kv.write(path, json!({"k": "v"})).await.unwrap_err();
        assert_eq!(err.status(), 400, "{path}");
        assert_eq!(kv.read(path).await.unwrap_err().status(), 400, "{path}");
    }
    assert_eq!(kv.list("a/../").await.unwrap_err().status(), 400);
    assert!(kv.keys().is_empty());
}
