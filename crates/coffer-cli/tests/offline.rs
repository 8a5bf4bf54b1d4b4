//! Command-line behaviour that needs no server: parsing, usage errors, exit codes.

mod common;

use coffer_cli::Environment;
use common::coffer;

fn env() -> Environment {
    // Port 1 on loopback refuses connections, so any request fails fast.
    Environment::from_pairs([("COFFER_ADDR", "http://127.0.0.1:1")])
}

#[test]
fn version_prints_the_crate_version() {
    let out = coffer(&env(), &["version"], "");
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout, format!("Coffer v{}\n", coffer_cli::VERSION));
}

#[test]
fn unknown_flags_are_usage_errors_with_exit_code_1() {
    let out = coffer(&env(), &["kv", "get", "-no-such-flag", "secret/x"], "");
    assert_eq!(out.code, 1);
    // Named as it was typed, with Vault's rule for where flags go.
    assert!(
        out.stderr
            .contains("-no-such-flag is not a flag of this command"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Command flags must be provided before positional arguments"),
        "{}",
        out.stderr
    );
}

#[test]
fn yaml_output_is_refused_before_contacting_the_server() {
    let out = coffer(&env(), &["read", "-format=yaml", "secret/x"], "");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("-format=json"), "{}", out.stderr);
}

#[test]
fn an_unreachable_server_is_an_error_with_exit_code_2_naming_the_action() {
    let out = coffer(&env(), &["read", "secret/x"], "");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with("Error reading secret/x: "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("127.0.0.1:1"), "{}", out.stderr);
}

#[test]
fn status_exits_1_when_the_server_cannot_be_reached_and_2_only_when_sealed() {
    // Vault's status: 0 unsealed, 1 error, 2 sealed.
    let out = coffer(&env(), &["status"], "");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("Error checking seal status: "),
        "{}",
        out.stderr
    );
}

#[test]
fn write_without_data_names_the_fix() {
    let out = coffer(&env(), &["write", "secret/x"], "");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("-force"), "{}", out.stderr);
}

#[test]
fn undelete_without_versions_names_the_flag() {
    let out = coffer(&env(), &["kv", "undelete", "secret/x"], "");
    assert_eq!(out.code, 1, "a usage error exits 1, as in Vault");
    assert!(out.stderr.contains("-versions"), "{}", out.stderr);
}

#[test]
fn go_style_bool_flags_accept_explicit_values() {
    // -tls-skip-verify=false parses; the request then fails on the closed port (exit 2, a
    // connection error, not 1, a usage error).
    let out = coffer(&env(), &["read", "-tls-skip-verify=false", "secret/x"], "");
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn policy_fmt_rewrites_the_file_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(&file, "path \"a/*\" {\ncapabilities=[\"read\"]\n}").unwrap();
    let out = coffer(&env(), &["policy", "fmt", file.to_str().unwrap()], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "path \"a/*\" {\n  capabilities = [\"read\"]\n}\n"
    );
}
