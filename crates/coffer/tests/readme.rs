//! README.md's "Running a real server" walk-through, run as written so it cannot rot: every
//! ```sh block preceded by `<!-- readme-test -->` is taken in order and run as one bash script
//! against the debug binary (`$PWD/target/release` becomes this build's directory) on a free
//! port (in place of 8200), in a scratch directory with its own HOME.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, COFFER_BIN};

/// What marks a block the test runs.
const MARKER: &str = "<!-- readme-test -->";

/// How long the whole walk-through may take (a debug build: init, three unseals, a few writes).
const TIMEOUT: Duration = Duration::from_secs(120);

/// The marked ```sh blocks of `markdown`, in order.
fn marked_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARKER {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert_eq!(
            fence.trim(),
            "```sh",
            "{MARKER} must come right before a ```sh block"
        );
        let mut block = String::new();
        for line in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            block.push_str(line);
            block.push('\n');
        }
        blocks.push(block);
    }
    blocks
}

#[test]
fn blocks_are_found_after_their_marker_and_in_order() {
    let markdown = "text\n```sh\nnot this\n```\n<!-- readme-test -->\n```sh\necho one\necho two\n```\nmore\n<!-- readme-test -->\n```sh\necho three\n```\n";
    assert_eq!(
        marked_blocks(markdown),
        ["echo one\necho two\n", "echo three\n"]
    );
}

#[test]
fn the_running_a_real_server_walk_through_works_as_written() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let blocks = marked_blocks(&readme);
    let walk_through = blocks.concat();
    // The walk-through covers the whole way, from a certificate to a secret read back.
    for step in [
        "export PATH=\"$PWD/target/release:$PATH\"",
        "openssl req -x509",
        "coffer server -config=",
        "coffer operator init",
        "export VAULT_TOKEN=",
        "coffer operator unseal",
        "coffer secrets enable -path=secret kv-v2",
        "VAULT_ADDR=https://",
        "VAULT_CACERT=",
        "coffer kv put secret/app/db",
        "coffer kv get -field=password secret/app/db",
    ] {
        assert!(
            walk_through.contains(step),
            "README's marked blocks lack `{step}`"
        );
    }

    let debug_dir = Path::new(COFFER_BIN).parent().unwrap();
    let port = free_port();
    let script = format!(
        "set -euo pipefail\n\
         trap 'if [ -n \"${{COFFER_PID:-}}\" ]; then kill \"$COFFER_PID\" 2>/dev/null || true; fi' EXIT\n{}",
        walk_through
            .replace("$PWD/target/release", &debug_dir.display().to_string())
            .replace("8200", &port.to_string())
    );
    let scratch = tempfile::tempdir().unwrap();
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(&script)
        .current_dir(scratch.path())
        .env("HOME", scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("VAULT_") || name.starts_with("COFFER_") {
            command.env_remove(name.as_ref());
        }
    }
    let mut child = command.spawn().expect("run bash");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the walk-through did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    let server_log = std::fs::read_to_string(scratch.path().join("coffer-server/coffer.log"))
        .unwrap_or_default();
    assert!(
        status.success(),
        "the walk-through failed ({status}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{server_log}\n--- script\n{script}"
    );
    // The secret read back is the one written, and the server was unsealed on the way.
    assert!(stdout.ends_with("hunter2"), "{stdout}");
    assert!(
        stdout.contains("Success! Enabled the kv-v2 secrets engine"),
        "{stdout}"
    );
    assert!(!server_log.contains("WARNING"), "{server_log}");
}
