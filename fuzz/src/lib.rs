//! Shared harness for Coffer's fuzz targets: one tokio runtime per process, a driver that calls
//! an engine exactly the way the request pipeline does, and the crash oracle for engine answers.
//!
//! Every target turns libFuzzer's bytes into calls on public APIs of the real crates — no
//! mocks: engines run over the real in-memory [`MemoryView`], the token store over a real dev
//! core. A target "crashes" when the code under test panics or breaks a stated oracle (an
//! engine answering 500 to client input, a random string resolving to a token, ...).

use coffer_sdk::clock::ManualClock;
use coffer_sdk::view::MemoryView;
use coffer_sdk::{Backend, Ctx, MountInfo, Operation, Request, Response, Result};
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio::runtime::Runtime;

/// The process-wide current-thread runtime. Built once: creating a runtime per input would
/// dominate the time spent per execution.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime for fuzzing")
    })
}

/// Runs `future` to completion on [`runtime`].
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The six operations, in a fixed order so a fuzzer byte can pick one.
pub const OPERATIONS: [Operation; 6] = [
    Operation::Read,
    Operation::Create,
    Operation::Update,
    Operation::Patch,
    Operation::Delete,
    Operation::List,
];

/// Reads an operation name as the seeds write it (`read`, `update`, ...). Unknown names still
/// pick an operation (by length) so that mutated inputs are never wasted.
pub fn operation_named(name: &str) -> Operation {
    OPERATIONS
        .iter()
        .copied()
        .find(|op| op.as_str().eq_ignore_ascii_case(name.trim()))
        .unwrap_or(OPERATIONS[name.len() % OPERATIONS.len()])
}

/// How far a `tick<TAB>SECONDS` line moves the clock: the number (1 s if it is not one), at
/// most ten years.
pub fn tick_length(seconds: &str) -> std::time::Duration {
    let seconds = seconds.trim().parse::<u64>().unwrap_or(1);
    std::time::Duration::from_secs(seconds.min(10 * 365 * 86_400))
}

/// A request body as the HTTP layer hands it over: a JSON object becomes the request data;
/// anything else (empty, not JSON, not an object) arrives as no data.
pub fn body_data(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// One mounted engine over a fresh in-memory view and a manual clock.
pub struct MountedEngine {
    /// The engine under test.
    pub backend: Backend,
    /// Its storage: the real in-memory view.
    pub view: Arc<MemoryView>,
    /// The clock handlers read; targets move it to reach expiry paths.
    pub clock: ManualClock,
    /// What the pipeline tells the engine about its mount.
    pub info: MountInfo,
}

impl MountedEngine {
    /// Mounts `backend` at `mount_path` (with trailing slash) as engine type `kind`.
    pub fn new(backend: Backend, kind: &str, mount_path: &str) -> MountedEngine {
        MountedEngine {
            backend,
            view: Arc::new(MemoryView::new()),
            clock: ManualClock::new(),
            info: mount_info(kind, mount_path, &[]),
        }
    }

    /// Runs one request through the SDK's dispatch, as the pipeline does after
    /// authentication: route, create/update resolution, handler.
    pub async fn call(
        &self,
        operation: Operation,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Response> {
        let mut request = Request::new(operation, path);
        request.mount_point = self.info.path.clone();
        request.data = data;
        let ctx = Ctx::new(
            request,
            self.view.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(self.info.clone()),
        );
        self.backend.dispatch(ctx).await
    }
}

/// Every engine kind of the real binary.
pub fn catalog() -> coffer_sdk::catalog::Catalog {
    let mut catalog = coffer_sdk::catalog::Catalog::new();
    coffer_kv::register(&mut catalog);
    coffer_auth::register(&mut catalog);
    catalog
}

/// Mount metadata for an engine of type `kind` at `path`, with `options`.
pub fn mount_info(kind: &str, path: &str, options: &[(&str, &str)]) -> MountInfo {
    MountInfo {
        path: path.to_string(),
        kind: kind.to_string(),
        uuid: format!("fuzz-{}", path.trim_end_matches('/').replace('/', "-")),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..MountInfo::default()
    }
}

/// The crash oracle for engine answers to client input: success, or an error the client is
/// to blame for. A 500 (or a 503, which engines never legitimately return without a sealed
/// core) means garbage input reached a bug or an `Internal` error meant for storage failures.
pub fn assert_client_error(what: &str, result: &Result<Response>) {
    if debug_outcomes() {
        match result {
            Ok(_) => eprintln!("{what}: ok"),
            Err(error) => eprintln!("{what}: {} {error}", error.status()),
        }
    }
    if let Err(error) = result {
        let status = error.status();
        assert!(
            status < 500,
            "{what}: input produced HTTP {status}: {error:?} (engines must answer client garbage with 4xx)"
        );
    }
}

/// `COFFER_FUZZ_DEBUG=1` prints each engine answer's status, to check what a seed reaches
/// (e.g. that a signed JWT seed gets past the signature check) without a debugger.
fn debug_outcomes() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("COFFER_FUZZ_DEBUG").is_some_and(|v| v == "1"))
}
