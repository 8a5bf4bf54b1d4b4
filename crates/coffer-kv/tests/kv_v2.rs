//! KV v2 behaviour as a Vault client (hvac, the Vault CLI) sees it.

mod common;

use coffer_sdk::{Error, Operation};
use common::{body, keys_of, Mount};
use serde_json::{json, Value};
use std::time::Duration;

/// Response of a data write.
async fn put(kv: &Mount, path: &str, data: Value) -> Value {
    body(
        &kv.write(&format!("data/{path}"), json!({ "data": data }))
            .await
            .expect("write"),
    )
}

async fn read_version(kv: &Mount, path: &str, version: u64) -> coffer_sdk::Response {
    kv.read_with(
        &format!("data/{path}"),
        json!({"version": version.to_string()}),
    )
    .await
    .expect("read")
}

fn assert_is_time(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|_| panic!("not RFC 3339: {s}"));
}

fn assert_unreadable(resp: &coffer_sdk::Response) -> Value {
    assert_eq!(resp.status, Some(404));
    let b = body(resp);
    assert_eq!(b["data"], Value::Null);
    assert!(b["metadata"].is_object(), "{b}");
    b["metadata"].clone()
}

#[tokio::test]
async fn write_returns_version_metadata_in_vaults_shape() {
    let kv = Mount::v2();
    let resp = put(&kv, "app/db", json!({"password": "s3cret"})).await;
    let fields: Vec<&str> = resp
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        vec![
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
    assert_eq!(resp["version"], 1);
    assert_eq!(resp["deletion_time"], "");
    assert_eq!(resp["destroyed"], false);
    assert_eq!(resp["custom_metadata"], Value::Null);
    assert_is_time(&resp["created_time"]);
    assert_eq!(
        put(&kv, "app/db", json!({"password": "n3w"})).await["version"],
        2
    );
}

#[tokio::test]
async fn read_returns_latest_or_requested_version() {
    let kv = Mount::v2();
    put(&kv, "app", json!({"v": "one"})).await;
    put(&kv, "app", json!({"v": "two", "nested": {"k": [1, 2]}})).await;

    let latest = body(&kv.read("data/app").await.unwrap());
    assert_eq!(latest["data"], json!({"v": "two", "nested": {"k": [1, 2]}}));
    assert_eq!(latest["metadata"]["version"], 2);
    let meta_fields: Vec<&str> = latest["metadata"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        meta_fields,
        vec![
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );

    let first = body(&read_version(&kv, "app", 1).await);
    assert_eq!(first["data"], json!({"v": "one"}));
    assert_eq!(first["metadata"]["version"], 1);
    // version=0 means the latest, as in Vault.
    assert_eq!(
        body(&read_version(&kv, "app", 0).await)["metadata"]["version"],
        2
    );
}

#[tokio::test]
async fn missing_key_or_version_is_plain_not_found() {
    let kv = Mount::v2();
    assert!(matches!(
        kv.read("data/nope").await.unwrap_err(),
        Error::NotFound
    ));
    put(&kv, "a", json!({"k": 1})).await;
    let err = kv
        .read_with("data/a", json!({"version": "9"}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound));
    let err = kv
        .read_with("data/a", json!({"version": "abc"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn read_costs_two_storage_gets_and_writes_are_one_batch() {
    let kv = Mount::v2();
    put(&kv, "hot", json!({"k": 1})).await;
    put(&kv, "hot", json!({"k": 2})).await;
    kv.view.reset();
    kv.read("data/hot").await.unwrap();
    assert_eq!(
        kv.view.counts(),
        (2, 0, 0),
        "(gets, single writes, batches)"
    );

    kv.view.reset();
    put(&kv, "hot", json!({"k": 3})).await;
    let (_, single_writes, batches) = kv.view.counts();
    assert_eq!(
        (single_writes, batches),
        (0, 1),
        "a version write is one atomic batch"
    );

    kv.view.reset();
    kv.write("destroy/hot", json!({"versions": [1]}))
        .await
        .unwrap();
    let (_, single_writes, batches) = kv.view.counts();
    assert_eq!(
        (single_writes, batches),
        (0, 1),
        "destroy updates metadata and data together"
    );
}

/// A write reads its key's metadata once: its existence check's read (cached under the path's
/// lock, also when the key has none) is what the write starts from. The cached entry never
/// outlives a write.
#[tokio::test]
async fn a_write_reads_the_metadata_once_and_no_cached_metadata_outlives_a_write() {
    let kv = Mount::v2();
    put(&kv, "warm", json!({"k": 0})).await; // the mount config is remembered from here on
    kv.view.reset();
    put(&kv, "fresh", json!({"k": 1})).await;
    assert_eq!(kv.view.counts().0, 1, "storage reads of a first write");
    kv.view.reset();
    let second = put(&kv, "fresh", json!({"k": 2})).await;
    assert_eq!(kv.view.counts().0, 1, "storage reads of a second write");
    assert_eq!(second["version"], 2);

    // A missing key is looked for in storage once; its write is seen by the next read.
    assert!(kv.read("data/later").await.is_err());
    kv.view.reset();
    assert!(kv.read("data/later").await.is_err());
    assert_eq!(
        kv.view.counts().0,
        0,
        "a known missing key read storage again"
    );
    put(&kv, "later", json!({"k": 3})).await;
    let read = body(&kv.read("data/later").await.unwrap());
    assert_eq!(read["data"]["k"], 3);
    assert_eq!(read["metadata"]["version"], 1);
    let fresh = body(&kv.read("data/fresh").await.unwrap());
    assert_eq!(fresh["data"]["k"], 2);
}

#[tokio::test]
async fn first_data_write_is_create_then_update() {
    let kv = Mount::v2();
    let route = kv.backend.route("data/x").unwrap();
    let check = route
        .spec
        .existence_check
        .clone()
        .expect("data/ declares an existence check");
    let ctx = || coffer_sdk::Ctx {
        request: coffer_sdk::Request::new(Operation::Update, "data/x"),
        view: kv.view.clone(),
        clock: std::sync::Arc::new(kv.clock.clone()),
        mount: std::sync::Arc::new(kv.info.clone()),
        params: route.params.clone(),
        rollback_log: None,
    };
    assert!(!check(ctx()).await.unwrap());
    put(&kv, "x", json!({"k": 1})).await;
    assert!(check(ctx()).await.unwrap());
}

// ---- check-and-set -------------------------------------------------------------------------

#[tokio::test]
async fn cas_zero_writes_only_a_new_key() {
    let kv = Mount::v2();
    let resp = kv
        .write("data/c", json!({"data": {"k": 1}, "options": {"cas": 0}}))
        .await
        .unwrap();
    assert_eq!(body(&resp)["version"], 1);
    let err = kv
        .write("data/c", json!({"data": {"k": 2}, "options": {"cas": 0}}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.to_string(),
        "check-and-set parameter did not match the current version"
    );
}

#[tokio::test]
async fn cas_must_match_the_current_version() {
    let kv = Mount::v2();
    put(&kv, "c", json!({"k": 1})).await;
    put(&kv, "c", json!({"k": 2})).await;
    let err = kv
        .write("data/c", json!({"data": {"k": 3}, "options": {"cas": 1}}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m == "check-and-set parameter did not match the current version")
    );
    assert_eq!(
        body(&kv.read("data/c").await.unwrap())["data"],
        json!({"k": 2}),
        "refused write changed nothing"
    );
    let resp = kv
        .write("data/c", json!({"data": {"k": 3}, "options": {"cas": "2"}}))
        .await
        .unwrap();
    assert_eq!(body(&resp)["version"], 3);
}

#[tokio::test]
async fn cas_required_by_mount_config() {
    let kv = Mount::v2();
    kv.write("config", json!({"cas_required": true}))
        .await
        .unwrap();
    let err = kv
        .write("data/c", json!({"data": {"k": 1}}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.to_string(),
        "check-and-set parameter required for this call"
    );
    assert!(kv.keys_of_secret("c").is_empty());
    kv.write("data/c", json!({"data": {"k": 1}, "options": {"cas": 0}}))
        .await
        .unwrap();
}

/// Writes read the mount's config from memory once they have read it; a config change must
/// reach the very next write (both ways), and max_versions must prune at once.
#[tokio::test]
async fn a_config_change_reaches_the_very_next_write() {
    let kv = Mount::v2();
    // Two writes so the default config is remembered.
    kv.write("data/c", json!({"data": {"k": 1}})).await.unwrap();
    kv.write("data/c", json!({"data": {"k": 2}})).await.unwrap();
    kv.write("config", json!({"cas_required": true}))
        .await
        .unwrap();
    let err = kv
        .write("data/c", json!({"data": {"k": 3}}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
    kv.write("config", json!({"cas_required": false}))
        .await
        .unwrap();
    kv.write("data/c", json!({"data": {"k": 3}})).await.unwrap();

    kv.write("config", json!({"max_versions": 1}))
        .await
        .unwrap();
    let resp = kv.write("data/c", json!({"data": {"k": 4}})).await.unwrap();
    assert_eq!(body(&resp)["version"], 4);
    let meta = body(&kv.read("metadata/c").await.unwrap());
    let versions: Vec<&String> = meta["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, vec!["4"], "max_versions 1 keeps only the newest");
}

#[tokio::test]
async fn cas_required_by_key_metadata() {
    let kv = Mount::v2();
    put(&kv, "c", json!({"k": 1})).await;
    kv.write("metadata/c", json!({"cas_required": true}))
        .await
        .unwrap();
    let err = kv
        .write("data/c", json!({"data": {"k": 2}}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "check-and-set parameter required for this call"
    );
    let err = kv
        .patch("data/c", json!({"data": {"k": 2}}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "check-and-set parameter required for this call"
    );
    kv.write("data/c", json!({"data": {"k": 2}, "options": {"cas": 1}}))
        .await
        .unwrap();
    // Other keys are unaffected.
    put(&kv, "other", json!({"k": 1})).await;
}

#[tokio::test]
async fn metadata_cas_false_under_mount_requirement_warns() {
    let kv = Mount::v2();
    kv.write("config", json!({"cas_required": true}))
        .await
        .unwrap();
    let resp = kv
        .write("metadata/c", json!({"cas_required": false}))
        .await
        .unwrap();
    assert_eq!(
        resp.warnings,
        vec!["\"cas_required\" set to false, but is mandated by backend config. This value will be ignored."]
    );
}

// ---- patch ---------------------------------------------------------------------------------

#[tokio::test]
async fn patch_merges_into_a_new_version_and_null_removes() {
    let kv = Mount::v2();
    put(
        &kv,
        "p",
        json!({"keep": "x", "drop": "y", "nested": {"a": 1, "b": 2}}),
    )
    .await;
    let resp = kv
        .patch(
            "data/p",
            json!({"data": {"drop": null, "nested": {"b": null, "c": 3}, "new": true}}),
        )
        .await
        .unwrap();
    assert_eq!(body(&resp)["version"], 2);
    let read = body(&kv.read("data/p").await.unwrap());
    assert_eq!(
        read["data"],
        json!({"keep": "x", "nested": {"a": 1, "c": 3}, "new": true})
    );
    assert_eq!(
        body(&read_version(&kv, "p", 1).await)["data"]["drop"],
        "y",
        "old version untouched"
    );
}

#[tokio::test]
async fn patch_needs_an_existing_live_version_and_honours_cas() {
    let kv = Mount::v2();
    assert!(matches!(
        kv.patch("data/none", json!({"data": {"a": 1}}))
            .await
            .unwrap_err(),
        Error::NotFound
    ));
    assert!(kv.keys().is_empty(), "a refused patch creates nothing");

    put(&kv, "p", json!({"a": 1})).await;
    let err = kv
        .patch("data/p", json!({"data": {"a": 2}, "options": {"cas": 5}}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "check-and-set parameter did not match the current version"
    );
    kv.patch("data/p", json!({"data": {"a": 2}, "options": {"cas": 1}}))
        .await
        .unwrap();

    kv.delete("data/p").await.unwrap();
    let resp = kv.patch("data/p", json!({"data": {"a": 3}})).await.unwrap();
    assert_eq!(resp.status, Some(404));
    assert_eq!(body(&resp)["version"], 2);
    assert_eq!(
        body(&kv.read("metadata/p").await.unwrap())["current_version"],
        2
    );

    assert_eq!(
        kv.patch("data/p", json!({"options": {}}))
            .await
            .unwrap_err()
            .to_string(),
        "no data provided"
    );
}

// ---- delete / undelete / destroy -----------------------------------------------------------

#[tokio::test]
async fn deleting_latest_hides_it_with_metadata_in_a_404() {
    let kv = Mount::v2();
    put(&kv, "d", json!({"v": 1})).await;
    put(&kv, "d", json!({"v": 2})).await;
    let resp = kv.delete("data/d").await.unwrap();
    assert!(resp.data.is_none());

    let metadata = assert_unreadable(&kv.read("data/d").await.unwrap());
    assert_eq!(metadata["version"], 2);
    assert_eq!(metadata["destroyed"], false);
    assert_is_time(&metadata["deletion_time"]);
    // The older version is still readable.
    assert_eq!(
        body(&read_version(&kv, "d", 1).await)["data"],
        json!({"v": 1})
    );
}

#[tokio::test]
async fn delete_and_undelete_named_versions() {
    let kv = Mount::v2();
    for v in 1..=3 {
        put(&kv, "d", json!({ "v": v })).await;
    }
    kv.write("delete/d", json!({"versions": [1, 2]}))
        .await
        .unwrap();
    assert_unreadable(&read_version(&kv, "d", 1).await);
    assert_unreadable(&read_version(&kv, "d", 2).await);
    assert_eq!(
        body(&kv.read("data/d").await.unwrap())["data"],
        json!({"v": 3})
    );

    kv.write("undelete/d", json!({"versions": "2"}))
        .await
        .unwrap();
    let restored = body(&read_version(&kv, "d", 2).await);
    assert_eq!(restored["data"], json!({"v": 2}));
    assert_eq!(restored["metadata"]["deletion_time"], "");
    assert_unreadable(&read_version(&kv, "d", 1).await);

    let err = kv
        .write("delete/d", json!({"versions": []}))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no version number provided");
    // Versions that never existed are ignored.
    kv.write("delete/d", json!({"versions": [42]}))
        .await
        .unwrap();
}

#[tokio::test]
async fn destroy_removes_data_for_good_but_keeps_metadata() {
    let kv = Mount::v2();
    put(&kv, "x", json!({"v": 1})).await;
    put(&kv, "x", json!({"v": 2})).await;
    kv.write("destroy/x", json!({"versions": [1]}))
        .await
        .unwrap();

    let metadata = assert_unreadable(&read_version(&kv, "x", 1).await);
    assert_eq!(metadata["destroyed"], true);
    assert!(
        !kv.keys().iter().any(|k| k == "ver/1/x"),
        "destroyed data is gone from storage: {:?}",
        kv.keys()
    );
    assert_eq!(
        body(&kv.read("metadata/x").await.unwrap())["versions"]["1"]["destroyed"],
        true
    );

    // Undelete cannot bring destroyed data back.
    kv.write("undelete/x", json!({"versions": [1]}))
        .await
        .unwrap();
    assert_unreadable(&read_version(&kv, "x", 1).await);
    assert_eq!(
        body(&kv.read("data/x").await.unwrap())["data"],
        json!({"v": 2})
    );
}

// ---- max_versions --------------------------------------------------------------------------

#[tokio::test]
async fn writes_beyond_max_versions_prune_the_oldest() {
    let kv = Mount::v2();
    kv.write("config", json!({"max_versions": 3}))
        .await
        .unwrap();
    for v in 1..=3 {
        put(&kv, "m", json!({ "v": v })).await;
    }
    assert_eq!(
        body(&kv.read("metadata/m").await.unwrap())["oldest_version"],
        0
    );
    put(&kv, "m", json!({"v": 4})).await;
    put(&kv, "m", json!({"v": 5})).await;

    let meta = body(&kv.read("metadata/m").await.unwrap());
    assert_eq!(meta["current_version"], 5);
    assert_eq!(meta["oldest_version"], 3);
    let kept: Vec<&str> = meta["versions"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(kept, vec!["3", "4", "5"]);
    assert!(matches!(
        kv.read_with("data/m", json!({"version": 1}))
            .await
            .unwrap_err(),
        Error::NotFound
    ));
    let mut data_keys: Vec<String> = kv
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("ver/"))
        .collect();
    data_keys.sort();
    assert_eq!(
        data_keys,
        vec!["ver/3/m", "ver/4/m", "ver/5/m"],
        "pruned data is deleted"
    );
}

#[tokio::test]
async fn key_max_versions_overrides_the_mount_and_default_is_ten() {
    let kv = Mount::v2();
    for v in 1..=11 {
        put(&kv, "ten", json!({ "v": v })).await;
    }
    let meta = body(&kv.read("metadata/ten").await.unwrap());
    assert_eq!(meta["versions"].as_object().unwrap().len(), 10);
    assert_eq!(meta["oldest_version"], 2);
    assert_eq!(
        meta["max_versions"], 0,
        "reads return what was set, not the default"
    );

    kv.write("config", json!({"max_versions": 5}))
        .await
        .unwrap();
    kv.write("metadata/k", json!({"max_versions": 2}))
        .await
        .unwrap();
    for v in 1..=4 {
        put(&kv, "k", json!({ "v": v })).await;
    }
    let meta = body(&kv.read("metadata/k").await.unwrap());
    assert_eq!(meta["versions"].as_object().unwrap().len(), 2);
    assert_eq!(meta["oldest_version"], 3);
}

// ---- delete_version_after ------------------------------------------------------------------

#[tokio::test]
async fn versions_expire_after_mount_delete_version_after() {
    let kv = Mount::v2();
    kv.write("config", json!({"delete_version_after": "1h"}))
        .await
        .unwrap();
    let written = put(&kv, "e", json!({"v": 1})).await;
    assert_is_time(&written["deletion_time"]);
    assert_eq!(
        body(&kv.read("data/e").await.unwrap())["data"],
        json!({"v": 1}),
        "not expired yet"
    );

    kv.clock.advance(Duration::from_secs(3601));
    let metadata = assert_unreadable(&kv.read("data/e").await.unwrap());
    assert_eq!(metadata["deletion_time"], written["deletion_time"]);
    let created =
        chrono::DateTime::parse_from_rfc3339(written["created_time"].as_str().unwrap()).unwrap();
    let deletion =
        chrono::DateTime::parse_from_rfc3339(written["deletion_time"].as_str().unwrap()).unwrap();
    assert_eq!(deletion - created, chrono::Duration::hours(1));
}

#[tokio::test]
async fn key_delete_version_after_applies_when_shorter() {
    let kv = Mount::v2();
    kv.write("config", json!({"delete_version_after": "1h"}))
        .await
        .unwrap();
    kv.write("metadata/short", json!({"delete_version_after": "10m"}))
        .await
        .unwrap();
    assert_eq!(
        body(&kv.read("metadata/short").await.unwrap())["delete_version_after"],
        "10m0s"
    );
    put(&kv, "short", json!({"v": 1})).await;
    put(&kv, "default", json!({"v": 1})).await;

    kv.clock.advance(Duration::from_secs(11 * 60));
    assert_unreadable(&kv.read("data/short").await.unwrap());
    assert_eq!(
        body(&kv.read("data/default").await.unwrap())["data"],
        json!({"v": 1})
    );
}

#[tokio::test]
async fn zero_delete_version_after_means_never() {
    let kv = Mount::v2();
    put(&kv, "z", json!({"v": 1})).await;
    kv.clock.advance(Duration::from_secs(10 * 365 * 86400));
    assert_eq!(
        body(&kv.read("data/z").await.unwrap())["data"],
        json!({"v": 1})
    );
}

// ---- config & metadata ---------------------------------------------------------------------

#[tokio::test]
async fn config_reads_back_in_vaults_shape() {
    let kv = Mount::v2();
    assert_eq!(
        body(&kv.read("config").await.unwrap()),
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0})
    );
    kv.write(
        "config",
        json!({"max_versions": "7", "cas_required": true, "delete_version_after": 90}),
    )
    .await
    .unwrap();
    assert_eq!(
        body(&kv.read("config").await.unwrap()),
        json!({"cas_required": true, "delete_version_after": "1m30s", "max_versions": 7})
    );
}

#[tokio::test]
async fn metadata_reads_back_in_vaults_shape() {
    let kv = Mount::v2();
    put(&kv, "md", json!({"v": 1})).await;
    kv.write(
        "metadata/md",
        json!({"max_versions": 4, "custom_metadata": {"owner": "team-a", "n": 5}}),
    )
    .await
    .unwrap();
    let meta = body(&kv.read("metadata/md").await.unwrap());
    let fields: Vec<&str> = meta
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        vec![
            "cas_required",
            "created_time",
            "current_version",
            "custom_metadata",
            "delete_version_after",
            "max_versions",
            "oldest_version",
            "updated_time",
            "versions"
        ]
    );
    assert_eq!(
        meta["custom_metadata"],
        json!({"n": "5", "owner": "team-a"})
    );
    assert_eq!(meta["delete_version_after"], "0s");
    assert_eq!(meta["max_versions"], 4);
    let v1 = &meta["versions"]["1"];
    assert_eq!(
        v1.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["created_time", "deletion_time", "destroyed"]
    );
    // Custom metadata also shows in each version's metadata.
    assert_eq!(
        body(&kv.read("data/md").await.unwrap())["metadata"]["custom_metadata"]["owner"],
        "team-a"
    );
}

#[tokio::test]
async fn metadata_write_creates_an_empty_key_and_empty_body_writes_nothing() {
    let kv = Mount::v2();
    kv.write("metadata/new", json!({})).await.unwrap();
    assert!(kv.keys().is_empty());
    kv.write("metadata/new", json!({"cas_required": true}))
        .await
        .unwrap();
    let meta = body(&kv.read("metadata/new").await.unwrap());
    assert_eq!(
        (meta["current_version"].clone(), meta["versions"].clone()),
        (json!(0), json!({}))
    );
    assert!(matches!(
        kv.read("data/new").await.unwrap_err(),
        Error::NotFound
    ));
    let resp = kv
        .write("data/new", json!({"data": {"k": 1}, "options": {"cas": 0}}))
        .await
        .unwrap();
    assert_eq!(body(&resp)["version"], 1);
}

#[tokio::test]
async fn metadata_patch_merges_custom_metadata() {
    let kv = Mount::v2();
    assert!(matches!(
        kv.patch("metadata/none", json!({"max_versions": 1}))
            .await
            .unwrap_err(),
        Error::NotFound
    ));
    kv.write(
        "metadata/p",
        json!({"custom_metadata": {"a": "1", "b": "2"}, "max_versions": 3}),
    )
    .await
    .unwrap();
    kv.patch(
        "metadata/p",
        json!({"custom_metadata": {"a": null, "c": "3"}, "cas_required": true}),
    )
    .await
    .unwrap();
    let meta = body(&kv.read("metadata/p").await.unwrap());
    assert_eq!(meta["custom_metadata"], json!({"b": "2", "c": "3"}));
    assert_eq!(meta["cas_required"], true);
    assert_eq!(meta["max_versions"], 3, "fields not in the patch are kept");
}

#[tokio::test]
async fn custom_metadata_limits_are_enforced() {
    let kv = Mount::v2();
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let err = kv
        .write("metadata/c", json!({ "custom_metadata": many }))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("at most 64 keys"), "{err}");

    let long_key = "k".repeat(129);
    let err = kv
        .write("metadata/c", json!({"custom_metadata": {long_key: "v"}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("length of key"), "{err}");

    let long_value = "v".repeat(513);
    let err = kv
        .write("metadata/c", json!({"custom_metadata": {"k": long_value}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("length of value"), "{err}");
    assert!(
        !err.to_string().contains(&long_value),
        "values are never echoed"
    );

    let err = kv
        .write(
            "metadata/c",
            json!({"custom_metadata": {"k": {"nested": 1}}}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(
        kv.keys().is_empty(),
        "refused metadata writes store nothing"
    );

    // Exactly at the limits is fine.
    let max: serde_json::Map<String, Value> = (0..64)
        .map(|i| (format!("{i:0>128}"), json!("v".repeat(512))))
        .collect();
    kv.write("metadata/c", json!({ "custom_metadata": max }))
        .await
        .unwrap();

    // A patch may not push the result over the limit either.
    let err = kv
        .patch("metadata/c", json!({"custom_metadata": {"one-more": "v"}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 64 keys"), "{err}");
}

#[tokio::test]
async fn metadata_delete_removes_every_version_and_the_metadata() {
    let kv = Mount::v2();
    for v in 1..=3 {
        put(&kv, "gone/secret", json!({ "v": v })).await;
    }
    kv.write("destroy/gone/secret", json!({"versions": [1]}))
        .await
        .unwrap();
    put(&kv, "gone/kept", json!({"v": 1})).await;
    put(&kv, "gone", json!({"v": 1})).await;

    kv.delete("metadata/gone/secret").await.unwrap();
    assert!(
        kv.keys_of_secret("gone/secret").is_empty(),
        "{:?}",
        kv.keys()
    );
    assert!(matches!(
        kv.read("data/gone/secret").await.unwrap_err(),
        Error::NotFound
    ));
    assert!(matches!(
        kv.read("metadata/gone/secret").await.unwrap_err(),
        Error::NotFound
    ));
    // Neighbours, including the parent-named key "gone", are untouched.
    assert_eq!(
        body(&kv.read("data/gone/kept").await.unwrap())["data"],
        json!({"v": 1})
    );
    assert_eq!(
        body(&kv.read("data/gone").await.unwrap())["data"],
        json!({"v": 1})
    );
    kv.delete("metadata/gone/kept").await.unwrap();
    kv.delete("metadata/gone").await.unwrap();
    assert!(kv.keys().is_empty(), "{:?}", kv.keys());
}

#[tokio::test]
async fn list_metadata_shows_keys_and_folders() {
    let kv = Mount::v2();
    for path in ["app/db", "app/api/key", "app", "top"] {
        put(&kv, path, json!({"v": 1})).await;
    }
    assert_eq!(
        keys_of(&kv.list("metadata/").await.unwrap()),
        vec!["app", "app/", "top"]
    );
    assert_eq!(
        keys_of(&kv.list("metadata/app/").await.unwrap()),
        vec!["api/", "db"]
    );
    assert_eq!(
        keys_of(&kv.list("metadata/app").await.unwrap()),
        vec!["api/", "db"]
    );
    assert_eq!(kv.list("metadata/empty/").await.unwrap_err().status(), 404);
    // Soft-deleted keys are still listed; metadata-deleted ones are not.
    kv.delete("data/top").await.unwrap();
    kv.delete("metadata/app/db").await.unwrap();
    assert_eq!(
        keys_of(&kv.list("metadata/").await.unwrap()),
        vec!["app", "app/", "top"]
    );
    assert_eq!(
        keys_of(&kv.list("metadata/app/").await.unwrap()),
        vec!["api/"]
    );
}

// ---- subkeys -------------------------------------------------------------------------------

#[tokio::test]
async fn subkeys_show_structure_without_values() {
    let kv = Mount::v2();
    put(
        &kv,
        "s",
        json!({"foo": "abc", "bar": {"baz": {"deep": "x"}}, "list": [1]}),
    )
    .await;
    let resp = body(&kv.read("subkeys/s").await.unwrap());
    assert_eq!(
        resp["subkeys"],
        json!({"foo": null, "bar": {"baz": {"deep": null}}, "list": null})
    );
    assert_eq!(resp["metadata"]["version"], 1);

    let shallow = body(
        &kv.read_with("subkeys/s", json!({"depth": "1"}))
            .await
            .unwrap(),
    );
    assert_eq!(
        shallow["subkeys"],
        json!({"foo": null, "bar": null, "list": null})
    );
    let two = body(
        &kv.read_with("subkeys/s", json!({"depth": "2"}))
            .await
            .unwrap(),
    );
    assert_eq!(
        two["subkeys"],
        json!({"foo": null, "bar": {"baz": null}, "list": null})
    );

    put(&kv, "s", json!({"only": 1})).await;
    let v1 = body(
        &kv.read_with("subkeys/s", json!({"version": "1", "depth": "1"}))
            .await
            .unwrap(),
    );
    assert_eq!(
        v1["subkeys"],
        json!({"foo": null, "bar": null, "list": null})
    );

    kv.delete("data/s").await.unwrap();
    let deleted = kv.read("subkeys/s").await.unwrap();
    assert_eq!(deleted.status, Some(404));
    assert_eq!(body(&deleted)["subkeys"], Value::Null);
}

// ---- input validation ----------------------------------------------------------------------

#[tokio::test]
async fn wrong_types_are_bad_requests_and_write_nothing() {
    let kv = Mount::v2();
    let cases = [
        ("data/t", json!({"data": "not an object"})),
        (
            "data/t",
            json!({"data": {"k": 1}, "options": {"cas": "abc"}}),
        ),
        ("data/t", json!({"data": {"k": 1}, "options": "nope"})),
        ("metadata/t", json!({"max_versions": "many"})),
        ("metadata/t", json!({"cas_required": "perhaps"})),
        ("metadata/t", json!({"delete_version_after": "soon"})),
        ("config", json!({"max_versions": -1})),
        ("config", json!({"delete_version_after": true})),
        ("delete/t", json!({"versions": ["x"]})),
    ];
    for (path, body) in cases {
        let err = kv.write(path, body.clone()).await.unwrap_err();
        assert_eq!(err.status(), 400, "{path} {body}");
    }
    assert_eq!(
        kv.write("data/t", json!({"options": {"cas": 0}}))
            .await
            .unwrap_err()
            .to_string(),
        "no data provided"
    );
    assert!(kv.keys().is_empty(), "{:?}", kv.keys());
}

#[tokio::test]
async fn unknown_fields_are_accepted_with_a_warning() {
    let kv = Mount::v2();
    let resp = kv
        .write("data/u", json!({"data": {"k": 1}, "colour": "blue"}))
        .await
        .unwrap();
    assert_eq!(
        resp.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [colour]"]
    );
    assert_eq!(body(&resp)["version"], 1);
    let resp = kv
        .write("metadata/u", json!({"max_versions": 2, "ttl": "1h"}))
        .await
        .unwrap();
    assert_eq!(
        resp.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [ttl]"]
    );
}

#[tokio::test]
async fn traversal_paths_are_bad_requests() {
    let kv = Mount::v2();
    for path in ["a/../b", "..", "a//b", "a/", "./a"] {
        let err = kv
            .write(&format!("data/{path}"), json!({"data": {"k": 1}}))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "data/{path}");
        assert_eq!(
            kv.read(&format!("data/{path}")).await.unwrap_err().status(),
            400,
            "read data/{path}"
        );
        assert_eq!(
            kv.read(&format!("metadata/{path}"))
                .await
                .unwrap_err()
                .status(),
            400,
            "metadata/{path}"
        );
        let err = kv
            .write(&format!("destroy/{path}"), json!({"versions": [1]}))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "destroy/{path}");
    }
    assert_eq!(kv.list("metadata/a/../").await.unwrap_err().status(), 400);
    assert!(kv.keys().is_empty());
}

#[tokio::test]
async fn cached_metadata_never_outlives_a_write() {
    // Reads cache decoded metadata; every kind of write must be visible to the next read.
    let kv = Mount::v2();
    put(&kv, "c", json!({"v": 1})).await;
    assert_eq!(body(&kv.read("data/c").await.unwrap())["data"]["v"], 1);
    put(&kv, "c", json!({"v": 2})).await;
    assert_eq!(body(&kv.read("data/c").await.unwrap())["data"]["v"], 2);
    kv.patch("data/c", json!({"data": {"w": 3}})).await.unwrap();
    assert_eq!(body(&kv.read("data/c").await.unwrap())["data"]["w"], 3);
    kv.delete("data/c").await.unwrap();
    assert_eq!(
        kv.read("data/c").await.unwrap().status,
        Some(404),
        "soft delete is seen at once"
    );
    kv.write("undelete/c", json!({"versions": [3]}))
        .await
        .unwrap();
    assert_eq!(body(&kv.read("data/c").await.unwrap())["data"]["w"], 3);
    kv.write("destroy/c", json!({"versions": [3]}))
        .await
        .unwrap();
    assert_eq!(
        kv.read("data/c").await.unwrap().status,
        Some(404),
        "destroy is seen at once"
    );
    kv.delete("metadata/c").await.unwrap();
    assert_eq!(
        kv.read("data/c").await.unwrap_err().status(),
        404,
        "metadata delete is seen at once"
    );
    put(&kv, "c", json!({"v": "fresh"})).await;
    let fresh = body(&kv.read("data/c").await.unwrap());
    assert_eq!(fresh["data"]["v"], "fresh");
    assert_eq!(fresh["metadata"]["version"], 1);
}
