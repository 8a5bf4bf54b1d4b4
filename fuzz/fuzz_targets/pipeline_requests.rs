//! Request sequences through the whole pipeline (`Core::handle`) of an unsealed core, reset
//! to the same starting state before each input (see [`Fixture`]):
//! every engine that exists — `sys/`, the token store, identity, cubbyhole, KV v1 and v2, and
//! the userpass, AppRole, cert and JWT auth methods — with authentication, policy checks,
//! lease registration, login token minting and response wrapping around them.
//!
//! Input: UTF-8 text, one request per line: `OPERATION<TAB>PATH<TAB>JSON-BODY[<TAB>TOKEN]`.
//! TOKEN is `root` (the default), `-` (no token, as a login sends) or `last` (the client token
//! of the latest response that returned one: a login, a token create, a wrapping token), so
//! sequences reach non-root callers and their policies. A line `tick<TAB>SECONDS` moves the
//! core's clock. The core starts with `secret/` (KV v2), `kv/` (KV v1) and the auth methods
//! at `userpass/`, `approle/`, `cert/` and `jwt/`.
//!
//! Skipped, because the server never does them for a client or the harness must not: paths
//! `validate_request_path` refuses; bodies naming a URL setting (the JWT method would fetch it
//! over the network). Once a request seals the core, the rest of the input is not run (a
//! sealed core answers 503 by design).
//!
//! Oracle: no panic, and every answer is a success or a client error (< 500).
#![no_main]

use coffer_fuzz::{assert_client_error, block_on, body_data, operation_named, tick_length};
use coffer_sdk::clock::{Clock, ManualClock};
use coffer_sdk::{Operation, Request};
use coffer_server::core::Core;
use coffer_server::mounts::LeaseLimits;
use coffer_storage::MemoryStorage;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use zeroize::Zeroizing;

// The server's allocator, as in the binary: the pipeline allocates many small short-lived
// objects, and the system allocator was a sixth of this target's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bounds the work per input so one input cannot stall the run.
const MAX_REQUESTS: usize = 48;

/// Mounts every input starts with: (path, request body).
const MOUNTS: &[(&str, &str)] = &[
    (
        "sys/mounts/secret",
        r#"{"type":"kv","options":{"version":"2"}}"#,
    ),
    (
        "sys/mounts/kv",
        r#"{"type":"kv","options":{"version":"1"}}"#,
    ),
    ("sys/auth/userpass", r#"{"type":"userpass"}"#),
    ("sys/auth/approle", r#"{"type":"approle"}"#),
    ("sys/auth/cert", r#"{"type":"cert"}"#),
    ("sys/auth/jwt", r#"{"type":"jwt"}"#),
];

/// One core for the whole run, built once: initialised, unsealed, the mounts above, and a
/// snapshot of its storage. Each input starts from that state again, through the host's own
/// lifecycle: seal (which drops every cache and engine instance), put the storage back, move
/// the clock back, unseal (which reloads everything from storage, as after a restart). That
/// costs far less than building a core, so the fuzzer runs many more sequences.
struct Fixture {
    core: Arc<Core>,
    storage: Arc<MemoryStorage>,
    clock: ManualClock,
    start: chrono::DateTime<chrono::Utc>,
    snapshot: BTreeMap<String, Vec<u8>>,
    key: Zeroizing<Vec<u8>>,
    root: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        block_on(async {
            let clock = ManualClock::new();
            let limits = LeaseLimits {
                default_ttl: Duration::from_secs(768 * 3600),
                max_ttl: Duration::from_secs(768 * 3600),
            };
            let storage = Arc::new(MemoryStorage::new());
            let core = coffer_server::host::build_core(
                storage.clone(),
                Arc::new(clock.clone()),
                limits,
                Arc::new(coffer_fuzz::catalog()),
            );
            let init = core.init(1, 1).await.expect("init");
            let key = init.keys[0].clone();
            core.unseal(Some(key.clone()), false).await.expect("unseal");
            let root = init.root_token.clone();
            for (path, body) in MOUNTS {
                let mount =
                    Request::new(Operation::Update, *path).with_data(json!(body_data(body)));
                core.handle(mount, Some(&root)).await.expect("set-up mount");
            }
            Fixture {
                start: clock.now(),
                snapshot: storage.snapshot(),
                core,
                storage,
                clock,
                key,
                root,
            }
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = fixture();
    block_on(async {
        let (core, clock, root) = (&fixture.core, &fixture.clock, fixture.root.clone());
        core.seal().await.expect("seal");
        fixture.storage.restore(&fixture.snapshot);
        clock.set(fixture.start);
        core.unseal(Some(fixture.key.clone()), false)
            .await
            .expect("unseal from the snapshot");

        let mut last_token: Option<String> = None;
        for line in text.lines().take(MAX_REQUESTS) {
            let mut fields = line.splitn(4, '\t');
            let op_name = fields.next().unwrap_or_default();
            let path = fields.next().unwrap_or_default();
            let body = fields.next().unwrap_or_default();
            let token = match fields.next().unwrap_or("root").trim() {
                "-" => None,
                "last" => last_token.clone(),
                _ => Some(root.clone()),
            };
            if op_name == "tick" {
                clock.advance(tick_length(path));
                continue;
            }
            if coffer_server::core::validate_request_path(path).is_err() {
                continue;
            }
            let data = body_data(body);
            if data.keys().any(|k| k.to_ascii_lowercase().contains("url")) {
                continue;
            }
            let operation = operation_named(op_name);
            let request = Request::new(operation, path).with_data(json!(data));
            let result = core.handle(request, token.as_deref()).await;
            if core.seal_status().await.map(|s| s.sealed).unwrap_or(true) {
                return;
            }
            assert_client_error(&format!("{} {path:?}", operation.as_str()), &result);
            if let Ok(response) = &result {
                if let Some(auth) = &response.auth {
                    last_token = Some(auth.client_token.clone());
                }
                if let Some(wrap) = &response.wrap_info {
                    last_token = Some(wrap.token.clone());
                }
            }
        }
    });
});
