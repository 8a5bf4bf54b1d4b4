//! Token and accessor strings through the token store of a real, initialised dev core.
//!
//! Input: UTF-8 text (invalid UTF-8 is read lossily, as an HTTP header value could be). The
//! whole input is looked up as a token (`lookup`, `lookup_caller`) and as an accessor
//! (`lookup_accessor`); so is each of its lines, to cheaply try several strings per input.
//!
//! Oracles: no panic; no lookup errors (garbage is "no such token", never a storage error);
//! and a string resolves to a token only if it is the dev core's root token (or, as an
//! accessor, the root token's accessor) — a random string must never authenticate.
#![no_main]

use coffer_fuzz::block_on;
use coffer_server::core::Core;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

struct DevCore {
    core: Arc<Core>,
    root_token: String,
    root_accessor: String,
}

fn dev_core() -> &'static DevCore {
    static CORE: OnceLock<DevCore> = OnceLock::new();
    CORE.get_or_init(|| {
        let (core, _unseal_key, root_token) = block_on(coffer_server::server::dev_core(
            None,
            Arc::new(coffer_fuzz::catalog()),
        ))
        .expect("dev core");
        let root_accessor = core
            .tokens
            .accessor_of(&root_token)
            .expect("accessor of the root token");
        DevCore {
            core,
            root_token,
            root_accessor,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let dev = dev_core();
    let tokens = &dev.core.tokens;
    block_on(async {
        for candidate in std::iter::once(text.as_ref()).chain(text.lines().take(8)) {
            let found = tokens
                .lookup(candidate)
                .await
                .expect("token lookup never errors");
            assert!(
                found.is_none() || candidate == dev.root_token,
                "a string that is not a token resolved to one"
            );
            let found = tokens
                .lookup_caller(candidate)
                .await
                .expect("caller lookup never errors");
            assert!(
                found.is_none() || candidate == dev.root_token,
                "a string that is not a token resolved to one (caller lookup)"
            );
            let found = tokens
                .lookup_accessor(candidate)
                .await
                .expect("accessor lookup never errors");
            assert!(
                found.is_none() || candidate == dev.root_accessor,
                "a string that is not an accessor resolved to a token"
            );
        }
    });
});
