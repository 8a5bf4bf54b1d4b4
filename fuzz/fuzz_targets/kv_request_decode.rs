//! KV v1 and v2 request handling with garbage paths and bodies.
//!
//! Input: UTF-8 text. The first line picks the engine (`1` = KV v1, anything else = KV v2);
//! every further line is one request, `OPERATION<TAB>PATH<TAB>JSON-BODY`, run in order against
//! one fresh mount, so sequences reach stateful paths (write, patch, soft delete, undelete,
//! destroy, metadata, check-and-set, version pruning). A line `tick<TAB>SECONDS` moves the
//! mount's clock forward, reaching `delete_version_after` expiry. Paths the pipeline would
//! refuse (`validate_request_path` on the full `secret/<path>`) are skipped, as the server
//! never hands them to an engine.
//!
//! Oracle: no panic, and every answer is a success or a client error (< 500).
#![no_main]

use coffer_fuzz::{
    assert_client_error, block_on, body_data, operation_named, tick_length, MountedEngine,
};
use libfuzzer_sys::fuzz_target;

/// Bounds the work per input so one input cannot stall the run.
const MAX_REQUESTS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let version_line = lines.next().unwrap_or_default();
    let version = if version_line.trim() == "1" { "1" } else { "2" };
    let info = coffer_fuzz::mount_info("kv", "secret/", &[("version", version)]);
    let backend = coffer_kv::backend(&info).expect("versions 1 and 2 are supported");
    let mut mount = MountedEngine::new(backend, "kv", "secret/");
    mount.info = info;

    block_on(async {
        for line in lines.take(MAX_REQUESTS) {
            let mut fields = line.splitn(3, '\t');
            let op_name = fields.next().unwrap_or_default();
            let path = fields.next().unwrap_or_default();
            let body = fields.next().unwrap_or_default();
            if op_name == "tick" {
                mount.clock.advance(tick_length(path));
                continue;
            }
            if coffer_server::core::validate_request_path(&format!("secret/{path}")).is_err() {
                continue;
            }
            let operation = operation_named(op_name);
            let result = mount.call(operation, path, body_data(body)).await;
            assert_client_error(
                &format!("kv v{version} {} {path:?}", operation.as_str()),
                &result,
            );
        }
    });
});
