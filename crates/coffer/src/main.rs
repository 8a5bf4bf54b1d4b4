//! The `coffer` binary: `coffer server ...` runs the server; every other verb is the client.

use std::ffi::OsString;

// The server allocates many small, short-lived objects per request; mimalloc handles that
// churn markedly better than the system allocator (measured in bench/).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every engine kind this binary can mount: one line per engine crate.
fn catalog() -> coffer_sdk::catalog::Catalog {
    let mut catalog = coffer_sdk::catalog::Catalog::new();
    coffer_kv::register(&mut catalog);
    coffer_auth::register(&mut catalog);
    catalog
}

fn main() {
    let mut args: Vec<OsString> = coffer_cli::argv::normalise_args(std::env::args_os().collect());
    // `coffer help server` is `coffer server -help`: the server parses its own flags.
    if args.get(1).is_some_and(|a| a == "help") && args.get(2).is_some_and(|a| a == "server") {
        args = vec![args[0].clone(), "server".into(), "--help".into()];
    }
    let code = if args.get(1).is_some_and(|a| a == "server") {
        coffer_server::server::main(args, catalog())
    } else {
        coffer_cli::run(args)
    };
    std::process::exit(code);
}
