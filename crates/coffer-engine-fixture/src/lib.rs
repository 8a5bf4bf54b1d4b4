//! A test engine that exercises the whole host contract, written only against the SDK, as a
//! new engine crate would be. It is not in the binary's catalog; tests register it.
//!
//! Its "external side effect" is a file in the directory named by the mount option
//! `external_dir` (standing in for a database user or a rotated credential):
//!
//! | operation | path             | effect                                                     |
//! |-----------|------------------|------------------------------------------------------------|
//! | update    | `effect/<name>`  | record a rollback entry, create the file, then commit: write `effects/<name>` in the view and clear the entry. With `hold = true` it stops after creating the file (and a `<name>.held` marker) and never commits, so a test can kill the server there. |
//! | update    | `fail/<name>`    | record an entry, create the file, then fail: the host rolls the file back. |
//! | read      | `state`          | job runs (stored), inits and cleanups (in memory).          |
//!
//! Hooks: `init` and `cleanup` count into the shared [`Probe`]; the job `tick` (every
//! [`TICK`]) increments `job-runs` in the view; the rollback deletes the file.

use coffer_sdk::catalog::{Catalog, EngineClass};
use coffer_sdk::framework::de;
use coffer_sdk::{Engine, Error, Operation, Response, Result, RollbackEntry};
use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The job's interval.
pub const TICK: Duration = Duration::from_secs(60);

/// What a test can observe of every fixture mount, across mounts and restarts of the core.
#[derive(Debug, Default)]
pub struct Probe {
    pub events: Mutex<Vec<String>>,
}

impl Probe {
    /// How many events named `what` happened.
    pub fn count(&self, what: &str) -> usize {
        self.events.lock().iter().filter(|e| *e == what).count()
    }

    fn note(&self, what: &str) {
        self.events.lock().push(what.to_string());
    }
}

/// The engine's state.
struct Fixture {
    probe: Arc<Probe>,
    external_dir: Option<PathBuf>,
}

impl Fixture {
    fn file(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::bad("name must be letters, digits or '-'"));
        }
        let dir = self
            .external_dir
            .as_ref()
            .ok_or_else(|| Error::bad("mount option external_dir is not set"))?;
        Ok(dir.join(name))
    }
}

#[derive(Deserialize, JsonSchema)]
struct EffectInput {
    #[serde(default, deserialize_with = "de::opt_bool")]
    hold: Option<bool>,
}

/// Add the fixture to a catalog as secrets engine type `fixture`, reporting to `probe`.
pub fn register(catalog: &mut Catalog, probe: Arc<Probe>) {
    catalog.register(
        EngineClass::Secrets,
        "fixture",
        "test engine exercising every host hook",
        move |mount| {
            let state = Arc::new(Fixture {
                probe: probe.clone(),
                external_dir: mount.options.get("external_dir").map(PathBuf::from),
            });
            Ok(backend(state))
        },
    );
}

async fn make_side_effect(
    state: &Fixture,
    ctx: &coffer_sdk::Ctx,
    name: &str,
) -> Result<(PathBuf, String)> {
    let file = state.file(name)?;
    let id = ctx
        .rollback()?
        .record(RollbackEntry {
            kind: "file".into(),
            data: json!({ "name": name }),
        })
        .await?;
    std::fs::write(&file, b"made").map_err(|e| Error::Internal(e.to_string()))?;
    Ok((file, id))
}

fn backend(state: Arc<Fixture>) -> coffer_sdk::Backend {
    let e = Engine::new("fixture", "Test engine exercising every host hook.", state);
    let paths = vec![
        e.path("effect/(?P<name>[^/]+)").typed(
            Operation::Update,
            "Make a side effect and commit it.",
            |state, ctx, input: EffectInput| async move {
                let name = ctx.param("name").to_string();
                let (file, id) = make_side_effect(&state, &ctx, &name).await?;
                if input.hold == Some(true) {
                    let marker = file.with_extension("held");
                    std::fs::write(marker, b"").map_err(|e| Error::Internal(e.to_string()))?;
                    // Between the side effect and its commit: a test kills the server here.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                ctx.view
                    .put(&format!("effects/{name}"), b"committed".to_vec())
                    .await?;
                ctx.rollback()?.clear(&id).await?;
                Ok(Response::empty())
            },
        ),
        e.path("fail/(?P<name>[^/]+)").op(
            Operation::Update,
            "Make a side effect, then fail.",
            |state, ctx| async move {
                let name = ctx.param("name").to_string();
                make_side_effect(&state, &ctx, &name).await?;
                Err(Error::bad(
                    "the fixture failed after its side effect, as asked",
                ))
            },
        ),
        e.path("state")
            .op(Operation::Read, "What happened.", |state, ctx| async move {
                let runs = ctx
                    .view
                    .get("job-runs")
                    .await?
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|| "0".into());
                Ok(Response::data(json!({
                    "job_runs": runs.parse::<u64>().unwrap_or(0),
                    "inits": state.probe.count("init"),
                    "cleanups": state.probe.count("cleanup"),
                })))
            }),
    ];
    e.paths(paths)
        .on_init(|state, _ctx| async move {
            state.probe.note("init");
            Ok(())
        })
        .on_cleanup(|state, _ctx| async move {
            state.probe.note("cleanup");
            Ok(())
        })
        .on_rollback(|state, _ctx, entry| async move {
            state.probe.note("rollback");
            let name = entry.data["name"].as_str().unwrap_or_default().to_string();
            match std::fs::remove_file(state.file(&name)?) {
                Ok(()) => Ok(()),
                // Already undone (a crash during an earlier rollback): rolling back is idempotent.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::Internal(e.to_string())),
            }
        })
        .job("tick", TICK, |state, ctx| async move {
            state.probe.note("tick");
            let runs = ctx
                .view
                .get("job-runs")
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|| "0".into());
            let next = runs.parse::<u64>().unwrap_or(0) + 1;
            ctx.view
                .put("job-runs", next.to_string().into_bytes())
                .await
        })
        .build()
}
