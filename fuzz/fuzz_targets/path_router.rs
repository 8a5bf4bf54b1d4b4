//! Path routing with arbitrary paths: the KV v1/v2 and auth engines' routers
//! (`Backend::route`) and the pipeline's `validate_request_path`.
//!
//! Input: the path, as UTF-8 (invalid UTF-8 is read lossily, as a path could not arrive
//! otherwise).
//!
//! Oracles: no panic (regex captures, literal-prefix slicing); every capture a route returns is
//! a substring of the path; KV v1's catch-all route matches every path the pipeline would hand
//! it (`secret/<path>` passes `validate_request_path`); a path
//! `validate_request_path` accepts has no empty, `.` or `..` segment and no control character.
#![no_main]

use coffer_sdk::Backend;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Routers {
    kv_v1: Backend,
    kv_v2: Backend,
    others: Vec<Backend>,
}

fn routers() -> &'static Routers {
    static ROUTERS: OnceLock<Routers> = OnceLock::new();
    ROUTERS.get_or_init(|| {
        let kv = |version: &str| {
            coffer_kv::backend(&coffer_fuzz::mount_info(
                "kv",
                "secret/",
                &[("version", version)],
            ))
            .expect("kv backend")
        };
        let others = ["userpass", "approle", "jwt", "oidc", "cert"]
            .into_iter()
            .filter_map(|kind| {
                let info = coffer_fuzz::mount_info(kind, &format!("auth/{kind}/"), &[]);
                coffer_auth::backend(kind, &info).map(|b| b.expect("auth backend"))
            })
            .collect();
        Routers {
            kv_v1: kv("1"),
            kv_v2: kv("2"),
            others,
        }
    })
}

fn check_route(backend: &Backend, path: &str) -> bool {
    let Some(route) = backend.route(path) else {
        return false;
    };
    for (name, value) in &route.params {
        assert!(
            path.contains(value.as_str()),
            "{} route {:?}: capture {name}={value:?} is not part of the path {path:?}",
            backend.kind,
            route.spec.pattern
        );
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let path = String::from_utf8_lossy(data);
    let routers = routers();
    let v1_routed = check_route(&routers.kv_v1, &path);
    // Only paths the pipeline lets through reach an engine (`.` in the patterns does not match
    // a newline, which the pipeline refuses as a control character).
    let reaches_engine =
        coffer_server::core::validate_request_path(&format!("secret/{path}")).is_ok();
    assert!(
        v1_routed || !reaches_engine,
        "KV v1 declares a catch-all path, yet {path:?} did not route"
    );
    check_route(&routers.kv_v2, &path);
    for backend in &routers.others {
        check_route(backend, &path);
    }

    if coffer_server::core::validate_request_path(&path).is_ok() {
        let trimmed = path.strip_suffix('/').unwrap_or(&path);
        assert!(
            trimmed
                .split('/')
                .all(|segment| !segment.is_empty() && segment != "." && segment != ".."),
            "validate_request_path accepted {path:?}, which has an empty, '.' or '..' segment"
        );
        assert!(
            !path.chars().any(char::is_control),
            "validate_request_path accepted {path:?}, which has a control character"
        );
    }
});
