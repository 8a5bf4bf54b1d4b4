//! The behaviour every `Storage` backend must share, written once and run against each.

use std::sync::Arc;

use coffer_storage::{
    BatchOp, EmbeddedStorage, MemoryStorage, Storage, StorageError, MAX_KEY_BYTES,
};

fn put(key: &str, value: &[u8]) -> BatchOp {
    BatchOp::Put {
        key: key.to_owned(),
        value: value.to_vec(),
    }
}

fn delete(key: &str) -> BatchOp {
    BatchOp::Delete {
        key: key.to_owned(),
    }
}

async fn seed(storage: &impl Storage, keys: &[&str]) {
    for key in keys {
        storage.put(key, key.as_bytes().to_vec()).await.unwrap();
    }
}

async fn put_then_get_returns_the_value_and_put_overwrites(storage: impl Storage) {
    assert_eq!(storage.get("secret/a").await.unwrap(), None);
    storage.put("secret/a", b"one".to_vec()).await.unwrap();
    assert_eq!(
        storage.get("secret/a").await.unwrap(),
        Some(b"one".to_vec())
    );
    storage.put("secret/a", b"two".to_vec()).await.unwrap();
    assert_eq!(
        storage.get("secret/a").await.unwrap(),
        Some(b"two".to_vec())
    );
    assert_eq!(storage.get("secret/ab").await.unwrap(), None);
}

async fn values_are_stored_byte_exact_including_empty(storage: impl Storage) {
    let every_byte: Vec<u8> = (0..=255u8).collect();
    storage.put("bin", every_byte.clone()).await.unwrap();
    storage.put("empty", Vec::new()).await.unwrap();
    assert_eq!(storage.get("bin").await.unwrap(), Some(every_byte));
    assert_eq!(storage.get("empty").await.unwrap(), Some(Vec::new()));
}

async fn delete_removes_the_key_and_deleting_a_missing_key_succeeds(storage: impl Storage) {
    seed(&storage, &["a", "b"]).await;
    storage.delete("a").await.unwrap();
    assert_eq!(storage.get("a").await.unwrap(), None);
    assert_eq!(storage.get("b").await.unwrap(), Some(b"b".to_vec()));
    storage.delete("never-written").await.unwrap();
}

async fn list_returns_immediate_children_with_each_folder_once(storage: impl Storage) {
    seed(
        &storage,
        &[
            "sys/token/id/1",
            "logical/m1/foo",
            "logical/m1/bar/baz",
            "logical/m1/bar/qux/deep",
            "logical/m1/bar-x",
            "logical/m1/zed",
            "logical/m2/only",
            "core/seal",
        ],
    )
    .await;
    assert_eq!(
        storage.list("logical/m1/").await.unwrap(),
        ["bar-x", "bar/", "foo", "zed"]
    );
    assert_eq!(
        storage.list("logical/m1/bar/").await.unwrap(),
        ["baz", "qux/"]
    );
    assert_eq!(
        storage.list("").await.unwrap(),
        ["core/", "logical/", "sys/"]
    );
    assert_eq!(storage.list("logical/").await.unwrap(), ["m1/", "m2/"]);
    assert!(storage.list("nothing/").await.unwrap().is_empty());
}

async fn list_drops_a_folder_once_its_last_key_is_deleted(storage: impl Storage) {
    seed(&storage, &["kv/a/x", "kv/b"]).await;
    assert_eq!(storage.list("kv/").await.unwrap(), ["a/", "b"]);
    storage.delete("kv/a/x").await.unwrap();
    assert_eq!(storage.list("kv/").await.unwrap(), ["b"]);
}

async fn scan_returns_every_full_key_under_the_prefix_sorted(storage: impl Storage) {
    seed(&storage, &["m/b/c", "m/a", "m/b/a/z", "ma", "n/x", "l"]).await;
    assert_eq!(
        storage.scan("m/").await.unwrap(),
        ["m/a", "m/b/a/z", "m/b/c"]
    );
    assert_eq!(
        storage.scan("m").await.unwrap(),
        ["m/a", "m/b/a/z", "m/b/c", "ma"]
    );
    assert_eq!(storage.scan("").await.unwrap().len(), 6);
    assert!(storage.scan("zz").await.unwrap().is_empty());
}

async fn scan_page_pages_through_a_prefix_in_order(storage: impl Storage) {
    seed(&storage, &["i/3", "i/1", "i/2", "i/5", "i/4", "j/0", "h/9"]).await;
    assert_eq!(
        storage.scan_page("i/", None, 2).await.unwrap(),
        ["i/1", "i/2"]
    );
    assert_eq!(
        storage.scan_page("i/", Some("i/2"), 2).await.unwrap(),
        ["i/3", "i/4"]
    );
    assert_eq!(
        storage.scan_page("i/", Some("i/4"), 10).await.unwrap(),
        ["i/5"]
    );
    assert!(storage
        .scan_page("i/", Some("i/5"), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        storage.scan_page("i/", Some("a"), 1).await.unwrap(),
        ["i/1"],
        "a cursor before the prefix starts at it"
    );
    assert!(storage.scan_page("i/", None, 0).await.unwrap().is_empty());
}

async fn batch_applies_its_ops_in_order(storage: impl Storage) {
    seed(&storage, &["old"]).await;
    storage
        .batch(vec![
            put("k", b"first"),
            put("k", b"second"),
            put("gone", b"x"),
            delete("gone"),
            delete("old"),
        ])
        .await
        .unwrap();
    assert_eq!(storage.get("k").await.unwrap(), Some(b"second".to_vec()));
    assert_eq!(storage.get("gone").await.unwrap(), None);
    assert_eq!(storage.get("old").await.unwrap(), None);
    storage.batch(Vec::new()).await.unwrap();
}

async fn a_rejected_batch_leaves_no_trace(storage: impl Storage) {
    seed(&storage, &["keep"]).await;
    let oversized_key = "k".repeat(MAX_KEY_BYTES + 1);
    let error = storage
        .batch(vec![
            put("new", b"v"),
            delete("keep"),
            put(&oversized_key, b"v"),
        ])
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::KeyTooLarge { .. }), "{error}");
    assert_eq!(storage.get("new").await.unwrap(), None);
    assert_eq!(storage.get("keep").await.unwrap(), Some(b"keep".to_vec()));
}

/// A reader racing a stream of two-key batches must always find both keys from the same batch.
async fn readers_never_see_half_a_batch(storage: impl Storage) {
    let storage = Arc::new(storage);
    storage
        .batch(vec![put("pair/left", b"0"), put("pair/right", b"0")])
        .await
        .unwrap();
    let writer = {
        let storage = Arc::clone(&storage);
        tokio::spawn(async move {
            for generation in 1..=100u32 {
                let value = generation.to_string().into_bytes();
                storage
                    .batch(vec![put("pair/left", &value), put("pair/right", &value)])
                    .await
                    .unwrap();
            }
        })
    };
    let mut observations = 0;
    while !writer.is_finished() || observations == 0 {
        // Each batch writes left before right. Reading left first and right second, an atomic
        // batch can only ever show right >= left; a batch applied op by op would sometimes
        // expose a new left next to an old right.
        let left = storage.get("pair/left").await.unwrap().unwrap();
        let right = storage.get("pair/right").await.unwrap().unwrap();
        let left: u32 = String::from_utf8(left).unwrap().parse().unwrap();
        let right: u32 = String::from_utf8(right).unwrap().parse().unwrap();
        assert!(right >= left, "saw left={left} with older right={right}");
        observations += 1;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert_eq!(
        storage.get("pair/left").await.unwrap(),
        Some(b"100".to_vec())
    );
}

/// 64 tasks × 20 puts: every write is acknowledged and readable afterwards.
async fn concurrent_writers_are_all_acknowledged_and_readable(storage: impl Storage) {
    let storage = Arc::new(storage);
    let writers: Vec<_> = (0..64)
        .map(|writer| {
            let storage = Arc::clone(&storage);
            tokio::spawn(async move {
                for n in 0..20 {
                    let key = format!("load/{writer:02}/{n:02}");
                    storage.put(&key, key.clone().into_bytes()).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let keys = storage.scan("load/").await.unwrap();
    assert_eq!(keys.len(), 64 * 20);
    for key in keys {
        assert_eq!(storage.get(&key).await.unwrap(), Some(key.into_bytes()));
    }
    assert_eq!(storage.list("load/").await.unwrap().len(), 64);
}

async fn unsynced_batches_read_back_at_once_and_sync_succeeds(storage: impl Storage) {
    storage
        .batch_unsynced(vec![put("u/1", b"one"), put("u/2", b"two"), delete("u/1")])
        .await
        .unwrap();
    assert_eq!(storage.get("u/1").await.unwrap(), None);
    assert_eq!(storage.get("u/2").await.unwrap(), Some(b"two".to_vec()));
    storage.sync().await.unwrap();
    storage.sync().await.unwrap();
    assert_eq!(storage.scan("u/").await.unwrap(), vec!["u/2".to_string()]);
}

macro_rules! storage_behaviour {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let (storage, _guard) = $open;
                        super::$name(storage).await;
                    }
                };
            }

            case!(put_then_get_returns_the_value_and_put_overwrites);
            case!(values_are_stored_byte_exact_including_empty);
            case!(delete_removes_the_key_and_deleting_a_missing_key_succeeds);
            case!(list_returns_immediate_children_with_each_folder_once);
            case!(list_drops_a_folder_once_its_last_key_is_deleted);
            case!(scan_returns_every_full_key_under_the_prefix_sorted);
            case!(scan_page_pages_through_a_prefix_in_order);
            case!(batch_applies_its_ops_in_order);
            case!(a_rejected_batch_leaves_no_trace);
            case!(readers_never_see_half_a_batch);
            case!(concurrent_writers_are_all_acknowledged_and_readable);
            case!(unsynced_batches_read_back_at_once_and_sync_succeeds);
        }
    };
}

storage_behaviour!(memory, (MemoryStorage::new(), ()));
storage_behaviour!(embedded, {
    let dir = tempfile::tempdir().unwrap();
    (EmbeddedStorage::open(dir.path()).unwrap(), dir)
});

#[test]
fn backends_report_their_kind() {
    assert_eq!(MemoryStorage::new().kind(), "inmem");
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(EmbeddedStorage::open(dir.path()).unwrap().kind(), "file");
}
