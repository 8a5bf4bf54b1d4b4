//! Run the CLI without the full binary: `cargo run -p coffer-cli --example coffer -- status`.

fn main() {
    std::process::exit(coffer_cli::run(std::env::args_os().collect()));
}
