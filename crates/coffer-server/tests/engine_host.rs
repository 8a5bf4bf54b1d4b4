//! The engine host contract, shown by a fixture engine written only against the SDK: its job
//! runs on the movable clock (never while sealed or standby, once after a restart for runs it
//! missed), `init` and `cleanup` run when they should, rollback entries are rolled back when a
//! request fails and after the server was killed between a side effect and its commit, and the
//! audit hook points see every request.

mod common;
use coffer_engine_fixture::{Probe, TICK};
use coffer_sdk::clock::ManualClock;
use coffer_sdk::Operation::*;
use coffer_sdk::Request;
use coffer_server::audit::{AuditHook, AuditOutcome, AuditRequest};
use coffer_server::core::Core;
use coffer_storage::{EmbeddedStorage, MemoryStorage, Storage};
use common::*;
use parking_lot::Mutex;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

fn fixture_core(storage: Arc<dyn Storage>, clock: &ManualClock, probe: &Arc<Probe>) -> Arc<Core> {
    let mut catalog = catalog();
    coffer_engine_fixture::register(&mut catalog, probe.clone());
    coffer_server::host::build_core(
        storage,
        Arc::new(clock.clone()),
        limits(),
        Arc::new(catalog),
    )
}

async fn root_call(
    core: &Core,
    root: &str,
    op: coffer_sdk::Operation,
    path: &str,
    body: serde_json::Value,
) -> coffer_sdk::Result<coffer_sdk::Response> {
    core.handle(Request::new(op, path).with_data(body), Some(root))
        .await
}

/// A fresh core with the fixture mounted at `fx/` (writing its files to `dir`).
async fn mounted(
    storage: Arc<dyn Storage>,
    clock: &ManualClock,
    probe: &Arc<Probe>,
    dir: &Path,
) -> (Arc<Core>, String, Vec<u8>) {
    let core = fixture_core(storage, clock, probe);
    let init = core.init(1, 1).await.unwrap();
    let key = init.keys[0].to_vec();
    core.unseal(Some(Zeroizing::new(key.clone())), false)
        .await
        .unwrap();
    root_call(
        &core,
        &init.root_token,
        Update,
        "sys/mounts/fx",
        json!({"type": "fixture", "options": {"external_dir": dir.to_str().unwrap()}}),
    )
    .await
    .unwrap();
    (core, init.root_token, key)
}

async fn job_runs(core: &Core, root: &str) -> u64 {
    root_call(core, root, Read, "fx/state", json!({}))
        .await
        .unwrap()
        .data
        .unwrap()["job_runs"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_job_runs_on_the_movable_clock_never_sealed_or_standby_and_once_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let clock = ManualClock::new();
    let probe = Arc::new(Probe::default());
    let (core, root, key) = mounted(storage.clone(), &clock, &probe, dir.path()).await;

    core.scheduler.run_due().await.unwrap();
    assert_eq!(
        job_runs(&core, &root).await,
        0,
        "the first run is one interval after the mount"
    );
    clock.advance(TICK / 2);
    core.scheduler.run_due().await.unwrap();
    assert_eq!(job_runs(&core, &root).await, 0);
    clock.advance(TICK / 2);
    let report = core.scheduler.run_due().await.unwrap();
    assert_eq!(report.jobs_run, vec!["fx/tick".to_string()]);
    assert_eq!(job_runs(&core, &root).await, 1);
    core.scheduler.run_due().await.unwrap();
    assert_eq!(
        job_runs(&core, &root).await,
        1,
        "not again until the next interval"
    );

    // Standby: nothing runs, however late.
    core.scheduler.set_active(false);
    clock.advance(TICK * 3);
    assert!(core.scheduler.run_due().await.unwrap().jobs_run.is_empty());
    core.scheduler.set_active(true);
    core.scheduler.run_due().await.unwrap();
    assert_eq!(
        job_runs(&core, &root).await,
        2,
        "three missed intervals make one run"
    );

    // Sealed: nothing runs.
    core.seal().await.unwrap();
    clock.advance(TICK * 2);
    assert!(core.scheduler.run_due().await.unwrap().jobs_run.is_empty());
    assert_eq!(probe.count("tick"), 2);

    // A restart (a new core over the same storage) after many missed intervals: one run.
    drop(core);
    clock.advance(TICK * 10);
    let core = fixture_core(storage, &clock, &probe);
    core.unseal(Some(Zeroizing::new(key)), false).await.unwrap();
    let report = core.scheduler.run_due().await.unwrap();
    assert_eq!(
        report.jobs_run,
        vec!["fx/tick".to_string()],
        "the missed run happens once"
    );
    assert!(core.scheduler.run_due().await.unwrap().jobs_run.is_empty());
    assert_eq!(job_runs(&core, &root).await, 3);
}

#[tokio::test]
async fn init_runs_after_mount_and_unseal_and_cleanup_on_unmount_seal_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let probe = Arc::new(Probe::default());
    let (core, root, key) =
        mounted(Arc::new(MemoryStorage::new()), &clock, &probe, dir.path()).await;
    assert_eq!(
        (probe.count("init"), probe.count("cleanup")),
        (1, 0),
        "init after mount"
    );
    core.seal().await.unwrap();
    assert_eq!(probe.count("cleanup"), 1, "cleanup on seal");
    core.unseal(Some(Zeroizing::new(key)), false).await.unwrap();
    assert_eq!(probe.count("init"), 2, "init after unseal");
    // Tuning keeps the engine (no restart of its state).
    root_call(
        &core,
        &root,
        Update,
        "sys/mounts/fx/tune",
        json!({"max_lease_ttl": "1h"}),
    )
    .await
    .unwrap();
    assert_eq!((probe.count("init"), probe.count("cleanup")), (2, 1));
    core.shutdown().await;
    assert_eq!(probe.count("cleanup"), 2, "cleanup on shutdown");
    root_call(&core, &root, Delete, "sys/mounts/fx", json!({}))
        .await
        .unwrap();
    assert_eq!(probe.count("cleanup"), 3, "cleanup on unmount");
}

#[tokio::test]
async fn a_failed_request_rolls_back_its_side_effect_and_a_committed_one_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let probe = Arc::new(Probe::default());
    let (core, root, _) = mounted(Arc::new(MemoryStorage::new()), &clock, &probe, dir.path()).await;
    let err = root_call(&core, &root, Update, "fx/fail/broken", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(
        !dir.path().join("broken").exists(),
        "the host rolled the side effect back"
    );
    assert_eq!(probe.count("rollback"), 1);
    root_call(&core, &root, Update, "fx/effect/kept", json!({}))
        .await
        .unwrap();
    assert!(
        dir.path().join("kept").exists(),
        "a committed side effect stays"
    );
    assert_eq!(
        core.rollbacks.pass(&core.router, None).await.unwrap(),
        0,
        "no entry is left"
    );
    assert_eq!(
        probe.count("rollback"),
        1,
        "and nothing committed is rolled back"
    );
}

const CHILD_ENV: &str = "COFFER_ENGINE_HOST_CHILD_DIR";

/// The child half of the kill test: opens the storage the parent initialised, unseals, and
/// makes a side effect it never commits (the parent kills it there).
#[tokio::test]
#[ignore = "run by a_rollback_entry_left_by_a_kill_is_rolled_back_after_restart"]
async fn child_makes_a_side_effect_and_is_killed_before_committing() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let key = std::fs::read(dir.join("key")).unwrap();
    let root = std::fs::read_to_string(dir.join("root")).unwrap();
    let storage: Arc<dyn Storage> = Arc::new(EmbeddedStorage::open(&dir.join("data")).unwrap());
    let probe = Arc::new(Probe::default());
    let core = fixture_core(storage, &ManualClock::new(), &probe);
    core.unseal(Some(Zeroizing::new(key)), false).await.unwrap();
    let _ = root_call(
        &core,
        &root,
        Update,
        "fx/effect/orphan",
        json!({"hold": true}),
    )
    .await;
    unreachable!("the parent kills this process while the request holds");
}

#[tokio::test]
async fn a_rollback_entry_left_by_a_kill_is_rolled_back_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let external = dir.path().join("external");
    std::fs::create_dir(&external).unwrap();
    let clock = ManualClock::new();
    let probe = Arc::new(Probe::default());
    {
        let storage: Arc<dyn Storage> =
            Arc::new(EmbeddedStorage::open(&dir.path().join("data")).unwrap());
        let (core, root, key) = mounted(storage.clone(), &clock, &probe, &external).await;
        std::fs::write(dir.path().join("key"), &key).unwrap();
        std::fs::write(dir.path().join("root"), &root).unwrap();
        core.seal().await.unwrap();
        drop(core);
        storage.sync().await.unwrap();
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_makes_a_side_effect_and_is_killed_before_committing",
            "--nocapture",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = external.join("orphan.held");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never reached its side effect"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup, no rollback in the child
    child.wait().unwrap();
    assert!(
        external.join("orphan").exists(),
        "the side effect outlived its request"
    );

    let storage: Arc<dyn Storage> =
        Arc::new(EmbeddedStorage::open(&dir.path().join("data")).unwrap());
    let core = fixture_core(storage, &clock, &probe);
    let key = std::fs::read(dir.path().join("key")).unwrap();
    core.unseal(Some(Zeroizing::new(key)), false).await.unwrap();
    assert!(
        !external.join("orphan").exists(),
        "rolled back after the restart"
    );
    assert_eq!(probe.count("rollback"), 1);
    assert_eq!(
        core.rollbacks.pass(&core.router, None).await.unwrap(),
        0,
        "and the entry is gone"
    );
}

/// An audit device that records what it sees and can be told to refuse.
#[derive(Default)]
struct Recorder {
    refuse: Mutex<bool>,
    requests: Mutex<Vec<String>>,
    responses: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl AuditHook for Recorder {
    async fn request(&self, request: &AuditRequest) -> Result<(), coffer_sdk::Error> {
        self.requests
            .lock()
            .push(format!("{} {}", request.operation.as_str(), request.path));
        if *self.refuse.lock() {
            return Err(coffer_sdk::Error::Internal(
                "audit device unavailable".into(),
            ));
        }
        Ok(())
    }

    async fn response(&self, request: &AuditRequest, outcome: AuditOutcome<'_>) {
        let what = match outcome {
            AuditOutcome::Response(r) if r.wrap_info.is_some() => "wrapped".to_string(),
            AuditOutcome::Response(_) => "ok".to_string(),
            AuditOutcome::Error(e) => format!("error {}", e.status()),
        };
        self.responses
            .lock()
            .push(format!("{} {what}", request.path));
    }
}

#[tokio::test]
async fn audit_hooks_see_every_request_and_a_refusing_device_fails_closed() {
    let h = Harness::new().await;
    let recorder = Arc::new(Recorder::default());
    h.core.add_audit_hook(recorder.clone());
    h.ok(Update, "secret/data/a", json!({"data": {"k": "v"}}))
        .await;
    let mut wrapped = Request::new(Read, "secret/data/a");
    wrapped.wrap_ttl = Some(Duration::from_secs(60));
    h.core.handle(wrapped, Some(&h.root)).await.unwrap();
    let _ = h
        .call(Read, "secret/data/a", json!({}), "not-a-token")
        .await;
    assert_eq!(
        *recorder.responses.lock(),
        vec![
            "secret/data/a ok",
            "secret/data/a wrapped",
            "secret/data/a error 403"
        ],
    );
    assert_eq!(
        *recorder.requests.lock(),
        vec!["create secret/data/a", "read secret/data/a"],
        "the refused caller never reached the handler"
    );

    // A device that cannot record refuses the request: the write does not happen.
    *recorder.refuse.lock() = true;
    let err = h
        .call(
            Update,
            "secret/data/b",
            json!({"data": {"k": "v"}}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 500);
    *recorder.refuse.lock() = false;
    assert_eq!(
        h.call(Read, "secret/data/b", json!({}), &h.root.clone())
            .await
            .unwrap_err()
            .status(),
        404,
        "nothing was written"
    );
}

#[tokio::test]
async fn the_catalog_lists_engine_kinds_and_an_unknown_type_names_the_known_ones() {
    let h = Harness::new().await;
    let err = h
        .call(
            Update,
            "sys/mounts/x",
            json!({"type": "nosuch"}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let text = err.to_string();
    assert!(text.contains("known types: generic, kv, kv-v2"), "{text}");
    let err = h
        .call(
            Update,
            "sys/auth/x",
            json!({"type": "nosuch"}),
            &h.root.clone(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("approle, cert, jwt, oidc, userpass"),
        "{err}"
    );
    let catalog = h
        .ok(Read, "sys/plugins/catalog", json!({}))
        .await
        .data
        .unwrap();
    assert_eq!(catalog["secret"], json!(["generic", "kv", "kv-v2"]));
    assert_eq!(
        catalog["auth"],
        json!(["approle", "cert", "jwt", "oidc", "userpass"])
    );
}
