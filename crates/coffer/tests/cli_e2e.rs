//! End-to-end: the real `coffer` CLI binary, run as a subprocess, against a real `coffer server`
//! process. Every test starts its own server (dev mode unless it needs seal/unseal), so tests
//! are independent and run in parallel; the CLI gets `VAULT_ADDR`/`VAULT_TOKEN` and a private
//! `HOME`, so the developer's own token file is never read or written.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::pki::{issue, new_ca};
use common::{free_port, TestServer, COFFER_BIN, FILE_STORAGE_CONFIG};
use serde_json::{json, Value};
use tempfile::TempDir;

/// What one CLI run produced.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the CLI against one server with a private HOME.
struct Cli {
    server: TestServer,
    home: TempDir,
    token: Option<String>,
}

impl Cli {
    /// A dev server, and a CLI holding its root token.
    fn dev() -> Cli {
        let server = TestServer::dev();
        let token = Some(server.root_token().to_owned());
        Cli {
            server,
            home: tempfile::tempdir().unwrap(),
            token,
        }
    }

    /// A fresh (uninitialized, sealed) file-backed server, and a CLI with no token.
    fn sealed() -> Cli {
        Cli {
            server: TestServer::from_config(FILE_STORAGE_CONFIG),
            home: tempfile::tempdir().unwrap(),
            token: None,
        }
    }

    fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_stdin(args, "")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Outcome {
        self.run_with_env(args, stdin, &[])
    }

    /// Run with extra environment variables set for this one invocation.
    fn run_with_env(&self, args: &[&str], stdin: &str, env: &[(&str, &Path)]) -> Outcome {
        let mut command = Command::new(COFFER_BIN);
        command
            .args(args)
            .env("VAULT_ADDR", &self.server.addr)
            .env("HOME", self.home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Nothing from the developer's shell may steer the CLI elsewhere.
        for name in [
            "COFFER_ADDR",
            "COFFER_TOKEN",
            "VAULT_TOKEN",
            "VAULT_NAMESPACE",
            "COFFER_NAMESPACE",
            "VAULT_FORMAT",
            "COFFER_FORMAT",
            "VAULT_CACERT",
            "COFFER_CACERT",
            "VAULT_SKIP_VERIFY",
            "VAULT_CLIENT_CERT",
            "VAULT_CLIENT_KEY",
            "COFFER_CLIENT_CERT",
            "COFFER_CLIENT_KEY",
        ] {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        if let Some(token) = &self.token {
            command.env("VAULT_TOKEN", token);
        }
        let mut child = command.spawn().expect("spawn coffer CLI");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        Outcome {
            code: output.status.code().expect("CLI exited normally"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.code, 0,
            "coffer {args:?} failed:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("-format=json");
        let stdout = self.ok(&args);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("coffer {args:?} printed no JSON ({e}):\n{stdout}"))
    }

    /// `status -format=json`: the seal status and the exit code (2 while sealed).
    fn status_json(&self) -> (i32, Value) {
        let out = self.run(&["status", "-format=json"]);
        let json = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status printed no JSON ({e}):\n{}{}",
                out.stdout, out.stderr
            )
        });
        (out.code, json)
    }

    fn kv_v2_mount(&self, name: &str) -> String {
        self.ok(&[
            "secrets",
            "enable",
            &format!("-path={name}"),
            "-version=2",
            "kv",
        ]);
        name.to_owned()
    }

    /// Read a path straight over HTTP with the root token, bypassing the CLI.
    fn api_get(&self, path: &str) -> (u16, Value) {
        self.server
            .request("GET", path, Some(self.server.root_token()), None)
    }
}

#[test]
fn kv_v2_put_get_patch_and_versions() {
    let cli = Cli::dev();
    let mount = cli.kv_v2_mount("app-kv");
    let path = format!("{mount}/app/db");

    let put = cli.ok(&["kv", "put", &path, "user=ann", "password=s3cr3t"]);
    assert!(put.contains(&format!("{mount}/data/app/db")), "{put}");
    let (status, body) = cli.api_get(&format!("{mount}/data/app/db"));
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["data"],
        json!({"user": "ann", "password": "s3cr3t"})
    );

    // -field prints the bare value with no newline (stdout is not a terminal).
    assert_eq!(cli.ok(&["kv", "get", "-field=password", &path]), "s3cr3t");
    let mount_form = cli.ok(&[
        "kv",
        "get",
        &format!("-mount={mount}"),
        "-field=user",
        "app/db",
    ]);
    assert_eq!(mount_form, "ann");

    let json = cli.json(&["kv", "get", &path]);
    assert_eq!(json["data"]["data"]["user"], "ann");
    assert_eq!(json["data"]["metadata"]["version"], 1);

    cli.ok(&["kv", "patch", &path, "password=n3w"]);
    let patched = cli.json(&["kv", "get", &path]);
    assert_eq!(patched["data"]["data"]["password"], "n3w");
    assert_eq!(
        patched["data"]["data"]["user"], "ann",
        "patch keeps other keys"
    );
    assert_eq!(patched["data"]["metadata"]["version"], 2);

    let table = cli.ok(&["kv", "get", &path]);
    assert!(table.contains("Key         Value\n"), "{table}");
    assert!(table.contains("password    n3w\n"), "{table}");

    assert_eq!(
        cli.ok(&["kv", "get", "-version=1", "-field=password", &path]),
        "s3cr3t"
    );

    let metadata = cli.json(&["kv", "metadata", "get", &path]);
    assert_eq!(metadata["data"]["current_version"], 2);

    assert_eq!(
        cli.json(&["kv", "list", &format!("{mount}/app")]),
        json!(["db"])
    );

    cli.ok(&["kv", "delete", &path]);
    let gone = cli.run(&["kv", "get", &path]);
    assert_eq!(gone.code, 2, "{}{}", gone.stdout, gone.stderr);

    cli.ok(&["kv", "undelete", "-versions=2", &path]);
    assert_eq!(cli.ok(&["kv", "get", "-field=password", &path]), "n3w");

    cli.ok(&["kv", "destroy", "-versions=1", &path]);
    let destroyed = cli.json(&["kv", "metadata", "get", &path]);
    assert_eq!(destroyed["data"]["versions"]["1"]["destroyed"], true);

    cli.ok(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=5",
        "-custom-metadata=owner=ops",
        &path,
    ]);
    let tuned = cli.json(&["kv", "metadata", "get", &path]);
    assert_eq!(tuned["data"]["max_versions"], 5);
    assert_eq!(tuned["data"]["custom_metadata"]["owner"], "ops");

    cli.ok(&["kv", "metadata", "delete", &path]);
    assert_eq!(cli.run(&["kv", "metadata", "get", &path]).code, 2);
    assert_eq!(cli.api_get(&format!("{mount}/metadata/app/db")).0, 404);
}

#[test]
fn kv_get_format_json_prints_vaults_response_envelope() {
    let cli = Cli::dev();
    cli.ok(&["kv", "put", "secret/envelope", "colour=blue", "size=3"]);
    let out = cli.ok(&["kv", "get", "-format=json", "secret/envelope"]);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["data"]["data"], json!({"colour": "blue", "size": "3"}));
    assert_eq!(json["data"]["metadata"]["version"], 1);
    assert_eq!(json["data"]["metadata"]["destroyed"], false);
    assert!(
        json["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{out}"
    );
    assert_eq!(json["lease_id"], "");
    // The global flag works before the verb too, as in Vault.
    let before: Value =
        serde_json::from_str(&cli.ok(&["-format=json", "kv", "get", "secret/envelope"]))
            .expect("json with the flag first");
    assert_eq!(before["data"]["data"]["colour"], "blue");
}

#[test]
fn kv_put_reads_json_from_stdin_and_cas_guards_writes() {
    let cli = Cli::dev();
    let mount = cli.kv_v2_mount("cas-kv");
    let path = format!("{mount}/cfg");
    let out = cli.run_with_stdin(&["kv", "put", &path, "-"], r#"{"port": 5432}"#);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        cli.json(&["kv", "get", &path])["data"]["data"]["port"],
        5432
    );

    let stale = cli.run(&["kv", "put", "-cas=0", &path, "port=1"]);
    assert_eq!(stale.code, 2, "a server-side refusal exits 2, as in Vault");
    assert!(
        stale.stderr.starts_with("Error writing data to"),
        "{}",
        stale.stderr
    );
    assert_eq!(
        cli.json(&["kv", "get", &path])["data"]["data"]["port"],
        5432,
        "stale write refused"
    );
    cli.ok(&["kv", "put", "-cas=1", &path, "port=2"]);
    assert_eq!(cli.json(&["kv", "get", &path])["data"]["data"]["port"], "2");
}

#[test]
fn generic_read_write_list_delete_on_a_kv_v1_mount() {
    let cli = Cli::dev();
    let mount = "kvone";
    cli.ok(&["secrets", "enable", &format!("-path={mount}"), "kv"]);
    let path = format!("{mount}/thing");
    let written = cli.ok(&["write", &path, "colour=blue"]);
    assert_eq!(written, format!("Success! Data written to: {path}\n"));
    assert_eq!(cli.ok(&["read", "-field=colour", &path]), "blue");
    assert_eq!(cli.json(&["list", mount]), json!(["thing"]));
    assert_eq!(cli.ok(&["kv", "get", "-field=colour", &path]), "blue");
    cli.ok(&["delete", &path]);
    let missing = cli.run(&["read", &path]);
    assert_eq!(missing.code, 2);
    assert_eq!(missing.stderr, format!("No value found at {path}\n"));
    assert_eq!(cli.api_get(&path).0, 404);
}

#[test]
fn policies_can_be_written_read_listed_and_deleted() {
    let cli = Cli::dev();
    let name = "readers";
    let policy = "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n";
    let out = cli.run_with_stdin(&["policy", "write", name, "-"], policy);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, format!("Success! Uploaded policy: {name}\n"));
    assert!(cli.ok(&["policy", "read", name]).contains("capabilities"));
    let names = cli.json(&["policy", "list"]);
    assert!(names.as_array().unwrap().contains(&json!(name)), "{names}");
    cli.ok(&["policy", "delete", name]);
    assert_eq!(cli.run(&["policy", "read", name]).code, 2);
}

#[test]
fn a_token_limited_by_policy_is_refused_outside_it() {
    let mut cli = Cli::dev();
    let policy =
        "path \"secret/data/open/*\" {\n  capabilities = [\"read\", \"create\", \"update\"]\n}\n";
    assert_eq!(
        cli.run_with_stdin(&["policy", "write", "open-only", "-"], policy)
            .code,
        0
    );
    cli.ok(&["kv", "put", "secret/open/a", "k=v"]);
    cli.ok(&["kv", "put", "secret/closed/a", "k=v"]);
    let token = cli.ok(&["token", "create", "-field=token", "-policy=open-only"]);

    cli.token = Some(token);
    assert_eq!(cli.ok(&["kv", "get", "-field=k", "secret/open/a"]), "v");
    let refused = cli.run(&["kv", "get", "secret/closed/a"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("403"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("permission denied"),
        "{}",
        refused.stderr
    );
}

#[test]
fn tokens_can_be_created_looked_up_and_revoked() {
    let cli = Cli::dev();
    let created = cli.json(&[
        "token",
        "create",
        "-policy=default",
        "-ttl=1h",
        "-metadata=team=ops",
    ]);
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    assert!(created["auth"]["policies"]
        .as_array()
        .unwrap()
        .contains(&json!("default")));
    assert_eq!(created["auth"]["lease_duration"], 3600);

    let only_token = cli.ok(&["token", "create", "-field=token", "-policy=default"]);
    assert!(!only_token.is_empty() && !only_token.contains('\n'));

    let lookup = cli.json(&["token", "lookup", &token]);
    assert_eq!(lookup["data"]["meta"]["team"], "ops");
    assert_eq!(lookup["data"]["id"], token.as_str());
    let table = cli.ok(&["token", "lookup", &token]);
    assert!(table.starts_with("Key "), "{table}");

    let caps = cli.ok(&["token", "capabilities", &token, "sys/mounts"]);
    assert_eq!(caps.trim(), "deny");

    assert_eq!(
        cli.ok(&["token", "revoke", &token]),
        "Success! Revoked token (if it existed)\n"
    );
    let after = cli.run(&["token", "lookup", &token]);
    assert_eq!(after.code, 2);
    assert!(
        after.stderr.starts_with("Error looking up token: "),
        "{}",
        after.stderr
    );
}

#[test]
fn secrets_engines_can_be_enabled_listed_tuned_moved_and_disabled() {
    let cli = Cli::dev();
    let (mount, moved) = ("eng", "moved");
    cli.ok(&[
        "secrets",
        "enable",
        &format!("-path={mount}"),
        "-description=test engine",
        "kv",
    ]);
    let list = cli.json(&["secrets", "list"]);
    assert_eq!(list[format!("{mount}/")]["type"], "kv");
    assert_eq!(list[format!("{mount}/")]["description"], "test engine");
    assert!(cli.ok(&["secrets", "list"]).contains(&format!("{mount}/")));

    cli.ok(&[
        "secrets",
        "tune",
        "-default-lease-ttl=1h",
        "-max-lease-ttl=2h",
        mount,
    ]);
    let detailed = cli.json(&["secrets", "list", "-detailed"]);
    assert_eq!(
        detailed[format!("{mount}/")]["config"]["default_lease_ttl"],
        3600
    );
    assert_eq!(
        detailed[format!("{mount}/")]["config"]["max_lease_ttl"],
        7200
    );

    cli.ok(&["write", &format!("{mount}/kept"), "v=1"]);
    let out = cli.ok(&["secrets", "move", mount, moved]);
    assert!(out.starts_with("Success!"), "{out}");
    let list = cli.json(&["secrets", "list"]);
    assert!(list.get(format!("{mount}/")).is_none());
    assert_eq!(list[format!("{moved}/")]["type"], "kv");
    assert_eq!(cli.ok(&["read", "-field=v", &format!("{moved}/kept")]), "1");

    cli.ok(&["secrets", "disable", moved]);
    assert!(cli
        .json(&["secrets", "list"])
        .get(format!("{moved}/"))
        .is_none());
}

#[test]
fn status_reports_an_unsealed_dev_server() {
    let cli = Cli::dev();
    let out = cli.run(&["status"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Initialized"), "{}", out.stdout);
    let sealed_row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Sealed"))
        .expect("Sealed row");
    assert!(sealed_row.ends_with("false"), "{sealed_row}");
    let json = cli.json(&["status"]);
    assert_eq!(json["sealed"], false);
    assert_eq!(json["initialized"], true);
}

#[test]
fn operator_init_unseal_seal_and_status_exit_codes() {
    let mut cli = Cli::sealed();
    let (code, uninitialized) = cli.status_json();
    assert_eq!(code, 2, "status exits 2 while sealed");
    assert_eq!(uninitialized["initialized"], false);

    let init = cli.json(&["operator", "init", "-key-shares=3", "-key-threshold=2"]);
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(init["unseal_threshold"], 2);
    let root = init["root_token"].as_str().unwrap().to_owned();

    let (code, sealed) = cli.status_json();
    assert_eq!(code, 2);
    assert_eq!(sealed["sealed"], true);
    assert_eq!(sealed["t"], 2);
    assert_eq!(sealed["n"], 3);

    let first = cli.run(&["operator", "unseal", &keys[0]]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("Unseal Progress"), "{}", first.stdout);
    assert_eq!(cli.run(&["status"]).code, 2);
    // The key may also come on stdin, as `vault operator unseal` prompts for it.
    let second = cli.run_with_stdin(&["operator", "unseal"], &format!("{}\n", keys[2]));
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(cli.run(&["status"]).code, 0);

    cli.token = Some(root);
    let out = cli.ok(&["operator", "seal"]);
    assert!(out.starts_with("Success!"), "{out}");
    let (code, status) = cli.status_json();
    assert_eq!((code, &status["sealed"]), (2, &json!(true)));
}

#[test]
fn data_survives_a_restart_of_a_file_backed_server() {
    let mut cli = Cli::sealed();
    let init = cli.json(&["operator", "init", "-key-shares=1", "-key-threshold=1"]);
    let key = init["unseal_keys_hex"][0].as_str().unwrap().to_owned();
    cli.ok(&["operator", "unseal", &key]);
    cli.token = Some(init["root_token"].as_str().unwrap().to_owned());
    cli.ok(&["secrets", "enable", "-path=kept", "-version=2", "kv"]);
    cli.ok(&["kv", "put", "kept/app", "colour=green"]);

    cli.server.restart();
    let (code, status) = cli.status_json();
    assert_eq!(code, 2, "a restarted server is sealed");
    assert_eq!(status["sealed"], true);
    cli.ok(&["operator", "unseal", &key]);
    assert_eq!(cli.ok(&["kv", "get", "-field=colour", "kept/app"]), "green");
}

#[test]
fn login_writes_the_token_file_that_later_commands_use() {
    let mut cli = Cli::dev();
    let root = cli.token.take().unwrap();
    let token_file = cli.home.path().join(".coffer-token");

    let denied = cli.run(&["login", "not-a-token"]);
    assert_ne!(denied.code, 0, "{}", denied.stdout);
    assert!(!token_file.exists(), "a refused token is not stored");

    let out = cli.run(&["login", &root]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .starts_with("Success! You are now authenticated."),
        "{}",
        out.stdout
    );
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), root);

    // No VAULT_TOKEN now: the CLI reads the token file.
    let me = cli.json(&["token", "lookup"]);
    assert_eq!(me["data"]["id"], root.as_str());
    assert_eq!(me["data"]["policies"], json!(["root"]));

    let other = cli.server.request(
        "POST",
        "auth/token/create",
        Some(&root),
        Some(&json!({"policies": ["default"]})),
    );
    let other = other.1["auth"]["client_token"].as_str().unwrap().to_owned();
    let piped = cli.run_with_stdin(&["login", "-"], &format!("{other}\n"));
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), other);

    let no_store = cli.run(&["login", "-no-store", &root]);
    assert_eq!(no_store.code, 0, "{}", no_store.stderr);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        other,
        "-no-store keeps the file"
    );
}

#[test]
fn operator_key_status_and_rotate() {
    let cli = Cli::dev();
    cli.ok(&["kv", "put", "secret/before-rotate", "v=1"]);
    let before = cli.json(&["operator", "key-status"]);
    let term = |v: &Value| {
        v.get("term")
            .or_else(|| v["data"].get("term"))
            .and_then(Value::as_u64)
    };
    assert_eq!(term(&before), Some(1), "{before}");
    let table = cli.ok(&["operator", "key-status"]);
    assert!(table.contains("Key Term"), "{table}");

    let rotated = cli.ok(&["operator", "rotate"]);
    assert!(rotated.starts_with("Success! Rotated key"), "{rotated}");
    let after = cli.json(&["operator", "key-status"]);
    assert_eq!(term(&after), Some(2), "{after}");
    assert_eq!(
        cli.ok(&["kv", "get", "-field=v", "secret/before-rotate"]),
        "1"
    );
}

#[test]
fn usage_errors_exit_1_without_contacting_the_server() {
    let cli = Cli::dev();
    let unknown_verb = cli.run(&["frobnicate"]);
    assert_eq!(
        unknown_verb.code, 1,
        "{}{}",
        unknown_verb.stdout, unknown_verb.stderr
    );
    assert!(!unknown_verb.stderr.is_empty());

    let missing_path = cli.run(&["kv", "get"]);
    assert_eq!(missing_path.code, 1, "{}", missing_path.stderr);

    let bad_flag = cli.run(&["kv", "get", "-no-such-flag", "secret/x"]);
    assert_eq!(bad_flag.code, 1, "{}", bad_flag.stderr);
}

#[test]
fn an_unreachable_server_is_an_error_exit_2() {
    let mut cli = Cli::dev();
    cli.server.stop();
    let out = cli.run(&["kv", "get", "secret/x"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.is_empty());
}

/// The lease IDs under `prefix`, via `coffer list sys/leases/lookup/<prefix>` (JSON).
fn lease_keys(cli: &Cli, prefix: &str) -> Vec<String> {
    let out = cli.run(&[
        "list",
        "-format=json",
        &format!("sys/leases/lookup/{prefix}"),
    ]);
    if out.code == 2 && out.stderr.contains("No value found") {
        return Vec::new();
    }
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    serde_json::from_str::<Vec<String>>(&out.stdout).expect("a JSON list of keys")
}

/// Create a token with `ttl` through the CLI and return it with its lease ID, found as the
/// one new key under `sys/leases/lookup/auth/token/create/`.
fn token_with_lease(cli: &Cli, ttl: &str) -> (String, String) {
    let before = lease_keys(cli, "auth/token/create/");
    let token = cli.ok(&["token", "create", &format!("-ttl={ttl}"), "-field=token"]);
    let added: Vec<String> = lease_keys(cli, "auth/token/create/")
        .into_iter()
        .filter(|key| !before.contains(key))
        .collect();
    assert_eq!(added.len(), 1, "one new token lease: {added:?}");
    (token, format!("auth/token/create/{}", added[0]))
}

#[test]
fn lease_lookup_and_renew_on_a_token_lease() {
    let cli = Cli::dev();
    let (_token, lease_id) = token_with_lease(&cli, "1h");

    let looked_up = cli.json(&["lease", "lookup", &lease_id]);
    assert_eq!(looked_up["data"]["id"], lease_id.as_str());
    assert_eq!(looked_up["data"]["renewable"], true);
    let ttl = looked_up["data"]["ttl"].as_u64().unwrap();
    assert!((3500..=3600).contains(&ttl), "{looked_up}");

    let table = cli.ok(&["lease", "lookup", &lease_id]);
    assert!(table.starts_with("Key"), "{table}");
    assert!(
        table.contains(&format!("id              {lease_id}\n")),
        "{table}"
    );

    let renewed = cli.json(&["lease", "renew", "-increment=2h", &lease_id]);
    let granted = renewed["lease_duration"].as_u64().unwrap();
    assert!((7100..=7200).contains(&granted), "{renewed}");
    assert_eq!(renewed["renewable"], true);
    assert_eq!(renewed["lease_id"], lease_id.as_str());
    let after = cli.json(&["lease", "lookup", &lease_id]);
    assert!(after["data"]["ttl"].as_u64().unwrap() > 3600, "{after}");

    let bad_increment = cli.run(&["lease", "renew", "-increment=soon", &lease_id]);
    assert_eq!(bad_increment.code, 1, "{}", bad_increment.stderr);
    assert!(
        bad_increment.stderr.contains("-increment"),
        "{}",
        bad_increment.stderr
    );

    let missing = cli.run(&["lease", "lookup", "auth/token/create/no-such-lease"]);
    assert_eq!(missing.code, 2, "{}", missing.stdout);
    assert!(
        missing.stderr.starts_with("error looking up lease id"),
        "{}",
        missing.stderr
    );
}

#[test]
fn lease_revoke_sync_revokes_the_token_behind_it() {
    let cli = Cli::dev();
    let (token, lease_id) = token_with_lease(&cli, "1h");

    let revoked = cli.ok(&["lease", "revoke", "-sync", &lease_id]);
    assert_eq!(revoked, format!("Success! Revoked lease: {lease_id}\n"));
    let gone = cli.run(&["lease", "lookup", &lease_id]);
    assert_eq!(gone.code, 2, "{}", gone.stdout);
    let (status, _) = cli
        .server
        .request("GET", "auth/token/lookup-self", Some(&token), None);
    assert_eq!(status, 403, "the token went with its lease");
}

#[test]
fn lease_revoke_prefix_revokes_every_lease_under_it_and_force_needs_prefix() {
    let cli = Cli::dev();
    let (first, _) = token_with_lease(&cli, "1h");
    let (second, _) = token_with_lease(&cli, "2h");

    let refused = cli.run(&["lease", "revoke", "-force", "auth/token/create/"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("-force requires also specifying -prefix"),
        "{}",
        refused.stderr
    );
    assert_eq!(lease_keys(&cli, "auth/token/create/").len(), 2);

    let revoked = cli.ok(&["lease", "revoke", "-prefix", "-sync", "auth/token/create/"]);
    assert_eq!(
        revoked,
        "Success! Revoked any leases with prefix: auth/token/create/\n"
    );
    assert!(lease_keys(&cli, "auth/token/create/").is_empty());
    for token in [first, second] {
        let (status, _) = cli
            .server
            .request("GET", "auth/token/lookup-self", Some(&token), None);
        assert_eq!(status, 403);
    }
    // The root token has no TTL, hence no lease, and survives.
    cli.ok(&["token", "lookup"]);
}

#[test]
fn a_wrapped_kv_read_unwraps_exactly_once() {
    let cli = Cli::dev();
    cli.ok(&["kv", "put", "secret/wrapped", "password=s3cr3t"]);

    let table = cli.ok(&["kv", "get", "-wrap-ttl=5m", "secret/wrapped"]);
    for key in [
        "wrapping_token:",
        "wrapping_accessor:",
        "wrapping_token_ttl:              5m\n",
        "wrapping_token_creation_time:",
        "wrapping_token_creation_path:    secret/data/wrapped\n",
    ] {
        assert!(table.contains(key), "{key} missing from:\n{table}");
    }
    assert!(
        !table.contains("s3cr3t"),
        "the secret stays wrapped:\n{table}"
    );

    let wrapping_token = cli.ok(&[
        "kv",
        "get",
        "-wrap-ttl=5m",
        "-field=wrapping_token",
        "secret/wrapped",
    ]);
    assert!(!wrapping_token.is_empty() && !wrapping_token.contains('\n'));

    let unwrapped = cli.json(&["unwrap", &wrapping_token]);
    assert_eq!(unwrapped["data"]["data"]["password"], "s3cr3t");

    let again = cli.run(&["unwrap", &wrapping_token]);
    assert_eq!(again.code, 2, "{}", again.stdout);
    assert!(
        again.stderr.starts_with("Error unwrapping"),
        "{}",
        again.stderr
    );
}

#[test]
fn unwrap_without_an_argument_uses_the_current_token_as_the_wrapping_token() {
    let mut cli = Cli::dev();
    cli.ok(&["write", "cubbyhole/note", "text=hello"]);
    let wrapping_token = cli.ok(&[
        "read",
        "-wrap-ttl=1m",
        "-field=wrapping_token",
        "cubbyhole/note",
    ]);
    cli.token = Some(wrapping_token);
    assert_eq!(cli.ok(&["unwrap", "-field=text"]), "hello");
}

#[test]
fn wrapping_a_token_create_gives_a_token_that_unwraps_to_a_login() {
    let cli = Cli::dev();
    let wrapping_token = cli.ok(&[
        "token",
        "create",
        "-ttl=1h",
        "-wrap-ttl=2m",
        "-field=wrapping_token",
    ]);
    let unwrapped = cli.json(&["unwrap", &wrapping_token]);
    let inner = unwrapped["auth"]["client_token"].as_str().unwrap();
    let (status, _) = cli
        .server
        .request("GET", "auth/token/lookup-self", Some(inner), None);
    assert_eq!(status, 200);
}

#[test]
fn write_force_sends_an_empty_body() {
    let cli = Cli::dev();
    cli.ok(&["auth", "enable", "approle"]);
    let written = cli.ok(&["write", "-f", "auth/approle/role/ci"]);
    assert_eq!(written, "Success! Data written to: auth/approle/role/ci\n");
    let secret_id = cli.ok(&[
        "write",
        "-force",
        "-field=secret_id",
        "auth/approle/role/ci/secret-id",
    ]);
    assert!(!secret_id.is_empty());
    let no_data = cli.run(&["write", "auth/approle/role/ci"]);
    assert_eq!(no_data.code, 1, "{}", no_data.stdout);
}

#[test]
fn login_with_userpass_stores_the_token_and_prompts_for_a_missing_password() {
    let mut cli = Cli::dev();
    cli.ok(&["auth", "enable", "userpass"]);
    cli.ok(&[
        "write",
        "auth/userpass/users/ann",
        "password=correct horse",
        "token_policies=default",
    ]);
    cli.token = None;
    let token_file = cli.home.path().join(".coffer-token");

    let out = cli.run(&[
        "login",
        "-method=userpass",
        "username=ann",
        "password=correct horse",
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .starts_with("Success! You are now authenticated."),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("token_meta_username    ann\n"),
        "{}",
        out.stdout
    );
    let stored = std::fs::read_to_string(&token_file).unwrap();
    let me = cli.json(&["token", "lookup"]);
    assert_eq!(me["data"]["id"], stored.as_str());
    assert_eq!(me["data"]["policies"], json!(["default"]));

    // The login token's lease lives under the login path.
    cli.token = Some(cli.server.root_token().to_owned());
    assert_eq!(lease_keys(&cli, "auth/userpass/login/ann/").len(), 1);
    cli.token = None;

    let prompted = cli.run_with_stdin(
        &["login", "-method=userpass", "-no-store", "username=ann"],
        "correct horse\n",
    );
    assert_eq!(prompted.code, 0, "{}", prompted.stderr);
    assert!(prompted.stderr.contains("Password"), "{}", prompted.stderr);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        stored,
        "-no-store leaves the file alone"
    );

    let wrong = cli.run(&["login", "-method=userpass", "username=ann", "password=nope"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stdout);
    assert!(
        wrong.stderr.starts_with("Error authenticating"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("nope"), "no password in errors");

    let missing_user = cli.run(&["login", "-method=userpass", "password=x"]);
    assert_eq!(missing_user.code, 1, "{}", missing_user.stderr);
}

#[test]
fn login_with_approle_on_a_custom_path_and_token_only() {
    let mut cli = Cli::dev();
    cli.ok(&["auth", "enable", "-path=machines", "approle"]);
    cli.ok(&[
        "write",
        "auth/machines/role/ci",
        "token_policies=default",
        "token_ttl=20m",
    ]);
    let role_id = cli.ok(&["read", "-field=role_id", "auth/machines/role/ci/role-id"]);
    let secret_id = cli.ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/machines/role/ci/secret-id",
    ]);
    cli.token = None;
    let token_file = cli.home.path().join(".coffer-token");
    let role_arg = format!("role_id={role_id}");
    let secret_arg = format!("secret_id={secret_id}");

    let token = cli.ok(&[
        "login",
        "-method=approle",
        "-path=machines",
        &role_arg,
        &secret_arg,
        "-token-only",
    ]);
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "{token:?}"
    );
    assert!(!token_file.exists(), "-token-only does not store");
    let (status, body) = cli
        .server
        .request("GET", "auth/token/lookup-self", Some(&token), None);
    assert_eq!(status, 200);
    assert_eq!(body["data"]["policies"], json!(["default"]));

    let secret_id = {
        cli.token = Some(cli.server.root_token().to_owned());
        let fresh = cli.ok(&[
            "write",
            "-f",
            "-field=secret_id",
            "auth/machines/role/ci/secret-id",
        ]);
        cli.token = None;
        fresh
    };
    let secret_arg = format!("secret_id={secret_id}");
    let login = cli.json(&[
        "login",
        "-method=approle",
        "-path=machines",
        &role_arg,
        &secret_arg,
    ]);
    assert_eq!(login["auth"]["lease_duration"], 1200);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        login["auth"]["client_token"].as_str().unwrap()
    );

    let wrong_mount = cli.run(&["login", "-method=approle", &role_arg, &secret_arg]);
    assert_eq!(
        wrong_mount.code, 2,
        "approle/ is not enabled: {}",
        wrong_mount.stdout
    );
}

#[test]
fn a_wrapped_login_is_unwrapped_unless_token_only_asks_for_the_wrapping_token() {
    let mut cli = Cli::dev();
    cli.ok(&["auth", "enable", "userpass"]);
    cli.ok(&["write", "auth/userpass/users/bob", "password=pw"]);
    cli.token = None;

    let wrapping_token = cli.ok(&[
        "login",
        "-method=userpass",
        "-wrap-ttl=1m",
        "-token-only",
        "username=bob",
        "password=pw",
    ]);
    let unwrapped = cli.json(&["unwrap", &wrapping_token]);
    assert!(unwrapped["auth"]["client_token"].is_string(), "{unwrapped}");

    let stored = cli.ok(&[
        "login",
        "-method=userpass",
        "-wrap-ttl=1m",
        "username=bob",
        "password=pw",
    ]);
    assert!(stored.contains("token_meta_username    bob\n"), "{stored}");
    let file = std::fs::read_to_string(cli.home.path().join(".coffer-token")).unwrap();
    let (status, _) = cli
        .server
        .request("GET", "auth/token/lookup-self", Some(&file), None);
    assert_eq!(status, 200, "the stored token is the unwrapped login token");
}

/// A file-storage server with a plain and a TLS listener (certificate for `localhost` from a
/// CA written to `<pki>/server-ca.pem`), initialised and unsealed, and a CLI holding its root
/// token. Returns the CLI, the CA file and the https address.
fn cli_with_tls_listener(pki: &Path) -> (Cli, PathBuf, String) {
    let server_ca = new_ca("Coffer CLI Test Server CA");
    let ca_file = pki.join("server-ca.pem");
    std::fs::write(&ca_file, &server_ca.pem).unwrap();
    let (server_cert, server_key) = issue(
        &server_ca,
        pki,
        "server",
        "localhost",
        &["localhost"],
        Vec::new(),
    );
    let tls_port = free_port();
    let config = format!(
        "{FILE_STORAGE_CONFIG}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{tls_port}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
        server_cert.display(),
        server_key.display()
    );
    let mut server = TestServer::from_config(&config);
    let (status, body) = server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(status, 200, "{body}");
    let root = body["root_token"].as_str().unwrap().to_owned();
    let unseal_key = body["keys"][0].as_str().unwrap().to_owned();
    let (_, body) = server.request("PUT", "sys/unseal", None, Some(&json!({"key": unseal_key})));
    assert_eq!(body["sealed"], false, "{body}");
    server.root_token = Some(root.clone());
    let cli = Cli {
        server,
        home: tempfile::tempdir().unwrap(),
        token: Some(root),
    };
    (cli, ca_file, format!("https://localhost:{tls_port}"))
}

#[test]
fn cert_login_presents_the_client_certificate_over_mutual_tls() {
    let pki = tempfile::tempdir().unwrap();
    let (mut cli, server_ca_file, https) = cli_with_tls_listener(pki.path());
    let hosts_ca = new_ca("Coffer Hosts CA");
    let hosts_ca_file = pki.path().join("hosts-ca.pem");
    std::fs::write(&hosts_ca_file, &hosts_ca.pem).unwrap();
    cli.ok(&["auth", "enable", "cert"]);
    cli.ok(&[
        "write",
        "auth/cert/certs/hosts",
        &format!("certificate=@{}", hosts_ca_file.display()),
        "token_policies=hosts",
    ]);
    let (host_cert, host_key) = issue(&hosts_ca, pki.path(), "host", "web-01", &[], Vec::new());
    cli.token = None;
    let token_file = cli.home.path().join(".coffer-token");

    let address = format!("-address={https}");
    let ca_flag = format!("-ca-cert={}", server_ca_file.display());
    let cert_flag = format!("-client-cert={}", host_cert.display());
    let key_flag = format!("-client-key={}", host_key.display());
    let login = cli.json(&[
        "login",
        "-method=cert",
        &address,
        &ca_flag,
        &cert_flag,
        &key_flag,
        "name=hosts",
    ]);
    assert!(
        login["auth"]["policies"]
            .as_array()
            .unwrap()
            .contains(&json!("hosts")),
        "{login}"
    );
    assert_eq!(
        login["auth"]["metadata"]["common_name"], "web-01",
        "{login}"
    );
    let stored = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(stored, login["auth"]["client_token"].as_str().unwrap());
    let (status, body) = cli
        .server
        .request("GET", "auth/token/lookup-self", Some(&stored), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["meta"]["cert_name"], "hosts", "{body}");

    // The certificate, key and CA may come from Vault's variables instead of flags, and the
    // role name may be left out.
    let token = cli.run_with_env(
        &["login", "-method=cert", &address, "-token-only"],
        "",
        &[
            ("VAULT_CACERT", &server_ca_file),
            ("VAULT_CLIENT_CERT", &host_cert),
            ("VAULT_CLIENT_KEY", &host_key),
        ],
    );
    assert_eq!(token.code, 0, "{}{}", token.stdout, token.stderr);
    let (status, _) =
        cli.server
            .request("GET", "auth/token/lookup-self", Some(&token.stdout), None);
    assert_eq!(status, 200);

    // Without a client certificate the server refuses, with Vault's message and exit code 2.
    let anonymous = cli.run(&["login", "-method=cert", &address, &ca_flag]);
    assert_eq!(anonymous.code, 2, "{}", anonymous.stdout);
    assert!(
        anonymous
            .stderr
            .contains("client certificate must be supplied"),
        "{}",
        anonymous.stderr
    );
    // A certificate without its key is refused locally, before any connection.
    let half = cli.run(&["login", "-method=cert", &address, &ca_flag, &cert_flag]);
    assert_eq!(half.code, 1, "{}", half.stderr);
    assert!(
        half.stderr.contains("both client cert and client key"),
        "{}",
        half.stderr
    );
}

/// Unpadded base64url, as JWTs encode their parts.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An RS256 JWT over `claims`, signed with the RSA key in `key_pem` by `openssl dgst`.
fn sign_jwt(key_pem: &Path, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT"});
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key_pem)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let signed = openssl.wait_with_output().unwrap();
    assert!(signed.status.success(), "openssl dgst -sign failed");
    format!("{signing_input}.{}", base64url(&signed.stdout))
}

/// Run openssl with `args`, panicking with its stderr if it fails.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn base64url_matches_the_rfc_4648_test_vectors_without_padding() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64url(plain.as_bytes()), encoded);
    }
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}

#[test]
fn jwt_login_with_a_role_takes_the_token_inline_from_a_file_or_from_stdin() {
    let keys = tempfile::tempdir().unwrap();
    let private_key = keys.path().join("signer.pem");
    let public_key = keys.path().join("signer.pub.pem");
    let private_arg = private_key.to_str().unwrap();
    openssl(&["genrsa", "-out", private_arg, "2048"]);
    openssl(&[
        "rsa",
        "-in",
        private_arg,
        "-pubout",
        "-out",
        public_key.to_str().unwrap(),
    ]);

    let mut cli = Cli::dev();
    cli.ok(&["auth", "enable", "jwt"]);
    let config = json!({"jwt_validation_pubkeys": [std::fs::read_to_string(&public_key).unwrap()]});
    let out = cli.run_with_stdin(&["write", "auth/jwt/config", "-"], &config.to_string());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let role = json!({
        "role_type": "jwt",
        "user_claim": "sub",
        "bound_audiences": ["coffer"],
        "token_policies": ["deployer"],
        "token_ttl": "30m",
    });
    let out = cli.run_with_stdin(&["write", "auth/jwt/role/deploy", "-"], &role.to_string());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    cli.token = None;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt = sign_jwt(
        &private_key,
        &json!({"sub": "build-7", "aud": "coffer", "iat": now, "exp": now + 600}),
    );

    let login = cli.json(&["login", "-method=jwt", "role=deploy", &format!("jwt={jwt}")]);
    assert!(
        login["auth"]["policies"]
            .as_array()
            .unwrap()
            .contains(&json!("deployer")),
        "{login}"
    );
    assert_eq!(login["auth"]["lease_duration"], 1800, "{login}");
    let stored = std::fs::read_to_string(cli.home.path().join(".coffer-token")).unwrap();
    assert_eq!(stored, login["auth"]["client_token"].as_str().unwrap());

    // jwt=@file: the file's trailing newline is not part of the token.
    let jwt_file = keys.path().join("token.jwt");
    std::fs::write(&jwt_file, format!("{jwt}\n")).unwrap();
    let from_file = cli.ok(&[
        "login",
        "-method=jwt",
        "-token-only",
        "role=deploy",
        &format!("jwt=@{}", jwt_file.display()),
    ]);
    let (status, body) =
        cli.server
            .request("GET", "auth/token/lookup-self", Some(&from_file), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["meta"]["role"], "deploy", "{body}");

    // jwt=-: from stdin.
    let from_stdin = cli.run_with_stdin(
        &[
            "login",
            "-method=jwt",
            "-token-only",
            "role=deploy",
            "jwt=-",
        ],
        &format!("{jwt}\n"),
    );
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
    let (status, _) = cli.server.request(
        "GET",
        "auth/token/lookup-self",
        Some(&from_stdin.stdout),
        None,
    );
    assert_eq!(status, 200);

    // A token signed by another key is refused by the server (exit 2)...
    let stranger_key = keys.path().join("stranger.pem");
    openssl(&["genrsa", "-out", stranger_key.to_str().unwrap(), "2048"]);
    let forged = sign_jwt(
        &stranger_key,
        &json!({"sub": "build-7", "aud": "coffer", "iat": now, "exp": now + 600}),
    );
    let refused = cli.run(&[
        "login",
        "-method=jwt",
        "role=deploy",
        &format!("jwt={forged}"),
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("no known key successfully validated"),
        "{}",
        refused.stderr
    );
    // ...and no token at all is a usage error that never reaches it.
    let missing = cli.run(&["login", "-method=jwt", "role=deploy"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("'jwt' must be specified"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_sealed_server_is_named_as_sealed_with_the_command_that_unseals_it() {
    let mut cli = Cli::sealed();
    let out = cli.run(&["kv", "get", "secret/x"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "the server is not initialized: run coffer operator init, then coffer operator unseal"
    );

    let (status, init) = cli.server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(status, 200, "{init}");
    cli.token = Some(init["root_token"].as_str().unwrap().to_owned());
    for args in [
        &["kv", "get", "secret/x"][..],
        &["read", "secret/data/x"],
        &["token", "lookup"],
        &["secrets", "list"],
    ] {
        let out = cli.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim(),
            "the server is sealed: run coffer operator unseal",
            "{args:?}"
        );
    }
}

#[test]
fn without_a_token_the_cli_says_how_to_get_one() {
    let mut cli = Cli::dev();
    cli.ok(&["auth", "enable", "userpass"]);
    cli.token = None;
    for args in [&["kv", "get", "secret/x"][..], &["token", "lookup"]] {
        let out = cli.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim(),
            "no token: set VAULT_TOKEN or run coffer login",
            "{args:?}"
        );
    }
    // A failed login is the server's answer, not a missing token.
    let out = cli.run_with_stdin(&["login", "-method=userpass", "username=nobody"], "wrong\n");
    assert_eq!(out.code, 2);
    assert!(!out.stderr.contains("no token"), "{}", out.stderr);
}

#[test]
fn the_dev_server_stores_its_root_token_where_the_cli_reads_it() {
    let server = TestServer::dev();
    let home = server.scratch_dir();
    let stored = std::fs::read_to_string(home.join(".coffer-token")).unwrap();
    assert_eq!(stored, server.root_token());
    assert!(
        server
            .log()
            .contains("The root token is already authenticated to the CLI"),
        "{}",
        server.log()
    );
    // The banner is true: the CLI works with no VAULT_TOKEN at all.
    let out = Command::new(COFFER_BIN)
        .args(["kv", "put", "secret/banner", "true=yes"])
        .env("VAULT_ADDR", &server.addr)
        .env("HOME", home)
        .env_remove("VAULT_TOKEN")
        .env_remove("COFFER_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_lists_the_server_and_every_verb_and_the_version_flags_work() {
    let run = |args: &[&str]| {
        let out = Command::new(COFFER_BIN).args(args).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
        )
    };
    let (code, help) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("\n  server "), "{help}");
    assert!(help.contains("\n  kv "), "{help}");
    for args in [
        &["server", "--help"][..],
        &["server", "-help"],
        &["help", "server"],
    ] {
        let (code, help) = run(args);
        assert_eq!(code, 0, "{args:?}");
        assert!(help.contains("Usage: coffer server"), "{args:?}: {help}");
        assert!(help.contains("--dev"), "{args:?}: {help}");
    }
    let (code, help) = run(&["help", "kv"]);
    assert_eq!(code, 0);
    assert!(help.contains("Usage: coffer kv"), "{help}");
    let (code, help) = run(&["help", "kv", "put"]);
    assert_eq!(code, 0);
    assert!(help.contains("Usage: coffer kv put"), "{help}");
    for flag in ["--version", "-version", "-v", "version"] {
        let (code, version) = run(&[flag]);
        assert_eq!(code, 0, "{flag}");
        assert_eq!(version, format!("Coffer v{}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn an_unknown_flag_after_the_arguments_is_refused_not_written_as_data() {
    let cli = Cli::dev();
    for args in [
        &["kv", "put", "secret/flags", "a=b", "-bogus=1"][..],
        &["write", "secret/data/flags", "a=b", "-bogus"],
        &["kv", "get", "secret/flags", "-bogus"],
    ] {
        let out = cli.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("Command flags must be provided before positional arguments"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("-bogus is not a flag"),
            "{}",
            out.stderr
        );
    }
    let (status, _) = cli.api_get("secret/data/flags");
    assert_eq!(status, 404, "nothing was written");
    // A known flag after the data is a flag, not a key called "-cas".
    let out = cli.run(&["kv", "put", "secret/flags", "a=b", "-cas=5"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("check-and-set"), "{}", out.stderr);
}

#[test]
fn kv_tables_have_balanced_headers() {
    let cli = Cli::dev();
    cli.ok(&["kv", "put", "secret/x", "a=b"]);
    let table = cli.ok(&["kv", "get", "secret/x"]);
    assert!(
        table.starts_with("== Secret Path ==\nsecret/data/x\n\n======= Metadata =======\n"),
        "{table}"
    );
    // Vault's width for a table of one one-letter key: 1 + 4 + 5.
    assert!(table.contains("\n== Data ==\n"), "{table}");
}

/// Run the CLI on a pseudo-terminal (Python's `pty`): wait for `prompt`, wait until the
/// terminal's echo is off, type `answer` and Enter, and return the exit code and everything the
/// terminal showed.
fn run_on_terminal(
    args: &[&str],
    env: &[(&str, &str)],
    prompt: &str,
    answer: &str,
) -> (i32, String) {
    const DRIVER: &str = r#"
import os, pty, select, sys, termios, time
argv, prompt, answer = sys.argv[1:-2], sys.argv[-2].encode(), sys.argv[-1].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen = b""
def read_some(limit):
    global seen
    ready, _, _ = select.select([fd], [], [], limit)
    if not ready:
        return False
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return None
    seen += chunk
    return bool(chunk)
deadline = time.time() + 30
while prompt not in seen and time.time() < deadline:
    if read_some(0.1) is None:
        break
while termios.tcgetattr(fd)[3] & termios.ECHO and time.time() < deadline:
    time.sleep(0.01)
os.write(fd, answer + b"\r")
while time.time() < deadline:
    if read_some(0.2) is None:
        break
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(DRIVER)
        .arg(COFFER_BIN)
        .args(args)
        .arg(prompt)
        .arg(answer);
    for name in ["VAULT_TOKEN", "COFFER_TOKEN", "COFFER_ADDR"] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run python3");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn secrets_asked_for_on_a_terminal_are_prompted_for_and_not_echoed() {
    let cli = Cli::sealed();
    let (_, init) = cli.server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    let key = init["keys_base64"][0].as_str().unwrap().to_owned();
    let root = init["root_token"].as_str().unwrap().to_owned();
    let home = cli.home.path().to_str().unwrap().to_owned();
    let env = [
        ("VAULT_ADDR", cli.server.addr.as_str()),
        ("HOME", home.as_str()),
    ];

    let (code, screen) = run_on_terminal(
        &["operator", "unseal"],
        &env,
        "Unseal Key (will be hidden): ",
        &key,
    );
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Unseal Key (will be hidden): "), "{screen}");
    assert!(!screen.contains(&key), "the key was echoed:\n{screen}");
    assert_eq!(cli.status_json().1["sealed"], false);

    // The same for a login token and a userpass password.
    let (code, screen) = run_on_terminal(
        &["login", "-no-print"],
        &env,
        "Token (will be hidden): ",
        &root,
    );
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains(&root), "the token was echoed:\n{screen}");
    // The login stored the token: the commands below use it.
    cli.ok(&["auth", "enable", "userpass"]);
    cli.ok(&[
        "write",
        "auth/userpass/users/ann",
        "password=correct horse ",
    ]);
    let (code, screen) = run_on_terminal(
        &["login", "-no-print", "-method=userpass", "username=ann"],
        &env,
        "Password (will be hidden): ",
        "correct horse ",
    );
    assert_eq!(code, 0, "{screen}");
    assert!(
        !screen.contains("correct horse"),
        "the password was echoed:\n{screen}"
    );

    // Piped, the key is one line of stdin; the prompt stays off stdout.
    cli.server.request("PUT", "sys/seal", Some(&root), None);
    let out = cli.run_with_stdin(&["operator", "unseal", "-format=json"], &format!("{key}\n"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap()["sealed"],
        false
    );
}
