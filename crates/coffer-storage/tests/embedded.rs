//! Behaviour specific to the durable backend: persistence, exclusivity, group commit, crash
//! safety. All against real redb files in temporary directories.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use coffer_storage::{fsync_probe, BatchOp, EmbeddedStorage, Storage, StorageError};

#[tokio::test]
async fn acknowledged_writes_survive_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = EmbeddedStorage::open(dir.path()).unwrap();
        storage.put("core/seal", b"sealed".to_vec()).await.unwrap();
        storage.put("doomed", b"x".to_vec()).await.unwrap();
        storage.delete("doomed").await.unwrap();
        storage
            .batch(vec![
                BatchOp::Put {
                    key: "kv/a".into(),
                    value: b"1".to_vec(),
                },
                BatchOp::Put {
                    key: "kv/b/c".into(),
                    value: b"2".to_vec(),
                },
            ])
            .await
            .unwrap();
    }
    let reopened = EmbeddedStorage::open(dir.path()).unwrap();
    assert_eq!(
        reopened.get("core/seal").await.unwrap(),
        Some(b"sealed".to_vec())
    );
    assert_eq!(reopened.get("doomed").await.unwrap(), None);
    assert_eq!(reopened.list("kv/").await.unwrap(), ["a", "b/"]);
    assert_eq!(reopened.get("kv/b/c").await.unwrap(), Some(b"2".to_vec()));
}

#[tokio::test]
async fn open_creates_a_missing_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("data/coffer");
    let storage = EmbeddedStorage::open(&nested).unwrap();
    storage.put("k", b"v".to_vec()).await.unwrap();
    assert!(nested.is_dir());
    assert_eq!(storage.dir(), nested);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStorage::open(dir.path()).unwrap();
    let error = EmbeddedStorage::open(dir.path()).unwrap_err();
    assert!(
        matches!(error, StorageError::DataDirInUse { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("already in use"), "{error}");
    drop(first);
    EmbeddedStorage::open(dir.path()).unwrap();
}

/// 64 tasks × 20 puts must share fsyncs: far fewer commits than writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(EmbeddedStorage::open(dir.path()).unwrap());
    let writers: Vec<_> = (0..64)
        .map(|writer| {
            let storage = Arc::clone(&storage);
            tokio::spawn(async move {
                for n in 0..20 {
                    let key = format!("w{writer:02}/{n:02}");
                    storage.put(&key, vec![writer as u8; 64]).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let writes = 64 * 20;
    let stats = storage.stats();
    assert_eq!(stats.ops, writes);
    assert!(
        stats.commits * 4 <= writes,
        "{} commits for {writes} writes: group commit is not grouping",
        stats.commits
    );
    assert_eq!(storage.scan("").await.unwrap().len() as u64, writes);
}

#[tokio::test]
async fn sequential_writes_commit_one_by_one() {
    // The counterpart of the test above: without concurrency there is nothing to group, so
    // each acknowledged write is its own durable commit (nothing is held back waiting).
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(dir.path()).unwrap();
    for n in 0..10 {
        storage.put(&format!("k{n}"), vec![1]).await.unwrap();
    }
    assert_eq!(storage.stats().commits, 10);
    assert_eq!(storage.stats().ops, 10);
}

#[tokio::test]
async fn dropping_the_storage_commits_writes_already_queued() {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(dir.path()).unwrap();
    let mut context = Context::from_waker(Waker::noop());
    // Polling once queues the write with the committer; the caller then gives up waiting.
    let keys: Vec<String> = (0..50).map(|n| format!("queued/{n}")).collect();
    let mut queued = Vec::new();
    for key in &keys {
        let mut write = storage.put(key, vec![7]);
        if let Poll::Ready(result) = write.as_mut().poll(&mut context) {
            result.unwrap();
        }
        queued.push(write);
    }
    drop(queued);
    drop(storage);
    let reopened = EmbeddedStorage::open(dir.path()).unwrap();
    assert_eq!(reopened.scan("queued/").await.unwrap().len(), 50);
}

#[test]
fn fsync_probe_measures_a_positive_rate_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let rate = fsync_probe(dir.path(), 5).unwrap();
    assert!(rate.is_finite() && rate > 0.0, "{rate}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(fsync_probe(dir.path(), 0).is_err());
}

/// Run this binary's ignored test `name` as a child process, with `dir_env` naming `dir` and its
/// stdout piped back.
fn spawn_child_test(name: &str, dir_env: &str, dir: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture"])
        .env(dir_env, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

const CRASH_DIR_ENV: &str = "COFFER_STORAGE_CRASH_DIR";

/// Child half of the crash test: write from several tasks and report each acknowledgement on
/// stdout until the parent kills the process. Does nothing unless the parent set the env var.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by acknowledged_writes_survive_a_killed_process as a child process"]
async fn crash_child_writes_until_killed() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let storage = Arc::new(EmbeddedStorage::open(dir.as_ref()).unwrap());
    println!("opened");
    let deadline = Instant::now() + Duration::from_secs(60);
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let storage = Arc::clone(&storage);
            tokio::spawn(async move {
                for n in 0u64.. {
                    if Instant::now() > deadline {
                        break;
                    }
                    let key = format!("crash/{writer}/{n:08}");
                    storage.put(&key, key.clone().into_bytes()).await.unwrap();
                    println!("acked {key}");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}

/// SIGKILL mid-stream (a process crash, not a power cut: the page cache survives, so this
/// guards the commit protocol and the ack-after-commit ordering, not the fsync itself).
#[tokio::test]
async fn acknowledged_writes_survive_a_killed_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child_test("crash_child_writes_until_killed", CRASH_DIR_ENV, dir.path());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    let mut checked_exclusive_lock = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "opened" {
            // Another process holds the directory: opening it here must be refused.
            let error = EmbeddedStorage::open(dir.path()).unwrap_err();
            assert!(
                matches!(error, StorageError::DataDirInUse { .. }),
                "{error}"
            );
            checked_exclusive_lock = true;
        } else if let Some(key) = line.strip_prefix("acked ") {
            acked.push(key.to_owned());
            if acked.len() == 300 {
                child.kill().unwrap();
            }
        }
    }
    child.wait().unwrap();
    assert!(checked_exclusive_lock, "child never opened the storage");
    assert!(
        acked.len() >= 300,
        "child stopped after {} writes",
        acked.len()
    );

    let reopened = EmbeddedStorage::open(dir.path()).unwrap();
    assert_each_key_holds_its_name(&reopened, &acked).await;
}

/// Every key in `keys` (each written with its own name as value, as the crash children do)
/// reads back: an acknowledged write survived.
async fn assert_each_key_holds_its_name(storage: &EmbeddedStorage, keys: &[String]) {
    for key in keys {
        assert_eq!(
            storage.get(key).await.unwrap(),
            Some(key.as_bytes().to_vec()),
            "acknowledged write {key} lost in the crash"
        );
    }
}

#[tokio::test]
async fn unsynced_batches_are_visible_at_once_and_share_one_fsync_at_sync() {
    let dir = tempfile::tempdir().unwrap();
    let storage = EmbeddedStorage::open(dir.path()).unwrap();
    for n in 0..20 {
        let key = format!("bulk/{n:02}");
        storage
            .batch_unsynced(vec![BatchOp::Put {
                key: key.clone(),
                value: vec![n],
            }])
            .await
            .unwrap();
        assert_eq!(storage.get(&key).await.unwrap(), Some(vec![n]));
    }
    let before_sync = storage.stats();
    assert_eq!(before_sync.commits, 20, "each unsynced batch commits");
    assert_eq!(
        before_sync.durable_commits, 0,
        "none of them waited for an fsync"
    );

    storage.sync().await.unwrap();
    assert_eq!(
        storage.stats().durable_commits,
        1,
        "the sync is one durable commit"
    );
    storage.sync().await.unwrap();
    assert_eq!(
        storage.stats().durable_commits,
        1,
        "a sync with nothing unsynced pending commits nothing"
    );
    storage.put("plain", vec![1]).await.unwrap();
    assert_eq!(
        storage.stats().durable_commits,
        2,
        "plain writes stay durable"
    );
    assert_eq!(storage.scan("bulk/").await.unwrap().len(), 20);
}

const UNSYNCED_CRASH_DIR_ENV: &str = "COFFER_STORAGE_UNSYNCED_CRASH_DIR";

/// Child half of the unsynced crash test: 200 unsynced two-key batches, a sync ("synced" on
/// stdout), then unsynced batches until killed. Does nothing unless the parent set the env var.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by synced_writes_survive_a_kill_and_unsynced_ones_are_whole_or_absent"]
async fn unsynced_crash_child_writes_until_killed() {
    let Ok(dir) = std::env::var(UNSYNCED_CRASH_DIR_ENV) else {
        return;
    };
    let storage = EmbeddedStorage::open(dir.as_ref()).unwrap();
    let pair = |n: u64| {
        vec![
            BatchOp::Put {
                key: format!("a/{n:08}"),
                value: n.to_be_bytes().to_vec(),
            },
            BatchOp::Put {
                key: format!("b/{n:08}"),
                value: n.to_be_bytes().to_vec(),
            },
        ]
    };
    for n in 0..200 {
        storage.batch_unsynced(pair(n)).await.unwrap();
    }
    storage.sync().await.unwrap();
    println!("synced");
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 200u64.. {
        if Instant::now() > deadline {
            break;
        }
        storage.batch_unsynced(pair(n)).await.unwrap();
        println!("unsynced {n}");
    }
}

/// SIGKILL after a sync: everything before the sync is there; every later unsynced batch is
/// there whole or not at all.
#[tokio::test]
async fn synced_writes_survive_a_kill_and_unsynced_ones_are_whole_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child_test(
        "unsynced_crash_child_writes_until_killed",
        UNSYNCED_CRASH_DIR_ENV,
        dir.path(),
    );
    let mut synced = false;
    let mut unsynced_acked = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "synced" {
            synced = true;
        } else if line.starts_with("unsynced ") {
            unsynced_acked += 1;
            if unsynced_acked == 300 {
                child.kill().unwrap();
            }
        }
    }
    child.wait().unwrap();
    assert!(synced && unsynced_acked >= 300, "the child stopped early");

    let reopened = EmbeddedStorage::open(dir.path()).unwrap();
    for n in 0u64..200 {
        assert_eq!(
            reopened.get(&format!("a/{n:08}")).await.unwrap(),
            Some(n.to_be_bytes().to_vec()),
            "a write made durable by sync was lost"
        );
    }
    let a = reopened.scan("a/").await.unwrap();
    let b = reopened.scan("b/").await.unwrap();
    let strip = |keys: Vec<String>| -> Vec<String> {
        keys.into_iter().map(|k| k[2..].to_string()).collect()
    };
    assert_eq!(
        strip(a),
        strip(b),
        "an unsynced batch survived only in part"
    );
}

/// Reads over the pending map and redb together: after a reopen (which checkpoints everything
/// into redb), new puts and deletes sit in the pending map over what redb holds. Every read
/// must show exactly what an in-memory store given the same ops shows.
#[tokio::test]
async fn reads_merge_pending_writes_over_the_database_exactly() {
    use coffer_storage::MemoryStorage;
    let dir = tempfile::tempdir().unwrap();
    let memory = MemoryStorage::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let key = |n: u64| {
        let folder = ["a/", "a/b/", "b/", "c/x/", ""][(n % 5) as usize];
        format!("{folder}k{:02}", (n / 5) % 40)
    };
    for round in 0..3 {
        let storage = EmbeddedStorage::open(dir.path()).unwrap();
        for _ in 0..150 {
            let n = next();
            let k = key(n >> 8);
            let op = if n % 3 == 0 {
                BatchOp::Delete { key: k }
            } else {
                BatchOp::Put {
                    key: k,
                    value: vec![round as u8; (n % 7) as usize],
                }
            };
            storage.batch(vec![op.clone()]).await.unwrap();
            memory.batch(vec![op]).await.unwrap();
        }
        for prefix in ["", "a/", "a/b/", "b/", "c/", "c/x/", "k0", "zz/"] {
            assert_eq!(
                storage.list(prefix).await.unwrap(),
                memory.list(prefix).await.unwrap(),
                "list {prefix:?}, round {round}"
            );
            assert_eq!(
                storage.scan(prefix).await.unwrap(),
                memory.scan(prefix).await.unwrap(),
                "scan {prefix:?}, round {round}"
            );
            for limit in [1, 3, 1000] {
                let mut after: Option<String> = None;
                loop {
                    let got = storage
                        .scan_page(prefix, after.as_deref(), limit)
                        .await
                        .unwrap();
                    let want = memory
                        .scan_page(prefix, after.as_deref(), limit)
                        .await
                        .unwrap();
                    assert_eq!(
                        got, want,
                        "scan_page {prefix:?} after {after:?} limit {limit}"
                    );
                    match got.last() {
                        Some(last) if got.len() == limit => after = Some(last.clone()),
                        _ => break,
                    }
                }
            }
        }
        for n in 0..200 {
            let k = key(n);
            assert_eq!(
                storage.get(&k).await.unwrap(),
                memory.get(&k).await.unwrap(),
                "get {k}"
            );
        }
        // Dropping checkpoints the pending map into redb; the next round writes over it.
    }
}

/// The write-ahead log is what makes a write durable: a process killed right after its
/// acknowledgements, before any bulk apply or checkpoint could run, loses none of them.
#[test]
fn writes_acknowledged_just_before_a_kill_are_replayed_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child_test(
        "kill_right_after_acknowledging",
        LOG_ONLY_DIR_ENV,
        dir.path(),
    );
    let stdout = child.stdout.take().unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(key) = line.strip_prefix("acked ") {
            acknowledged.push(key.to_string());
        }
        if line == "done" {
            break;
        }
    }
    // The child is blocked in a sleep: nothing more is logged, applied or checkpointed.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acknowledged.len(), 40);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let storage = EmbeddedStorage::open(dir.path()).unwrap();
        assert_each_key_holds_its_name(&storage, &acknowledged).await;
        assert_eq!(
            storage.get("deleted").await.unwrap(),
            None,
            "a logged delete is replayed too"
        );
    });
}

const LOG_ONLY_DIR_ENV: &str = "COFFER_STORAGE_LOG_ONLY_DIR";

/// Child half of the test above.
#[tokio::test]
#[ignore = "run by writes_acknowledged_just_before_a_kill_are_replayed_from_the_log"]
async fn kill_right_after_acknowledging() {
    let Some(dir) = std::env::var_os(LOG_ONLY_DIR_ENV) else {
        return;
    };
    let storage = EmbeddedStorage::open(std::path::Path::new(&dir)).unwrap();
    storage.put("deleted", b"soon gone".to_vec()).await.unwrap();
    for n in 0..40 {
        let key = format!("logged/{n:02}");
        storage.put(&key, key.as_bytes().to_vec()).await.unwrap();
        println!("acked {key}");
    }
    storage.delete("deleted").await.unwrap();
    println!("done");
    // Wait to be killed; returning would drop the storage, which checkpoints.
    std::future::pending::<()>().await;
}
