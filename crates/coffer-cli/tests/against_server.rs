//! End-to-end behaviour against a running server speaking Vault's HTTP API.
//!
//! Runs only when `COFFER_TEST_ADDR` and `COFFER_TEST_TOKEN` (a root token) are set; otherwise
//! each test prints a note and returns. Every test works under its own freshly enabled mount
//! or uniquely named objects, so tests can share one server and run in parallel.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use coffer_cli::Environment;
use common::{coffer, Outcome};
use serde_json::Value;

struct Server {
    env: Environment,
    _home: tempfile::TempDir,
}

fn server() -> Option<Server> {
    let (Ok(addr), Ok(token)) = (
        std::env::var("COFFER_TEST_ADDR"),
        std::env::var("COFFER_TEST_TOKEN"),
    ) else {
        eprintln!("note: COFFER_TEST_ADDR/COFFER_TEST_TOKEN not set; skipping server test");
        return None;
    };
    let home = tempfile::tempdir().unwrap();
    let env = Environment::from_pairs([
        ("COFFER_ADDR", addr.as_str()),
        ("COFFER_TOKEN", token.as_str()),
        ("HOME", home.path().to_str().unwrap()),
    ]);
    Some(Server { env, _home: home })
}

/// A name unique to this test process and call.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}{}x{nanos}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Server {
    fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_stdin(args, "")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Outcome {
        coffer(&self.env, args, stdin)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.code, 0,
            "coffer {args:?} failed: {}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("-format=json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    fn kv_v2_mount(&self) -> String {
        let mount = unique("kv");
        self.ok(&[
            "secrets",
            "enable",
            &format!("-path={mount}"),
            "-version=2",
            "kv",
        ]);
        mount
    }
}

#[test]
fn kv_v2_put_get_patch_and_versions() {
    let Some(server) = server() else { return };
    let mount = server.kv_v2_mount();
    let path = format!("{mount}/app/db");

    let put = server.ok(&["kv", "put", &path, "user=ann", "password=s3cr3t"]);
    assert!(put.contains(&format!("{mount}/data/app/db")), "{put}");

    // -field prints the bare value with no newline (stdout is not a terminal).
    assert_eq!(
        server.ok(&["kv", "get", "-field=password", &path]),
        "s3cr3t"
    );
    let mount_form = server.ok(&[
        "kv",
        "get",
        &format!("-mount={mount}"),
        "-field=user",
        "app/db",
    ]);
    assert_eq!(mount_form, "ann");

    let json = server.json(&["kv", "get", &path]);
    assert_eq!(json["data"]["data"]["user"], "ann");
    assert_eq!(json["data"]["metadata"]["version"], 1);

    server.ok(&["kv", "patch", &path, "password=n3w"]);
    let patched = server.json(&["kv", "get", &path]);
    assert_eq!(patched["data"]["data"]["password"], "n3w");
    assert_eq!(
        patched["data"]["data"]["user"], "ann",
        "patch keeps other keys"
    );
    assert_eq!(patched["data"]["metadata"]["version"], 2);

    let table = server.ok(&["kv", "get", &path]);
    assert!(table.contains("Key         Value\n"), "{table}");
    assert!(table.contains("password    n3w\n"), "{table}");

    let old = server.ok(&["kv", "get", "-version=1", "-field=password", &path]);
    assert_eq!(old, "s3cr3t");

    let metadata = server.json(&["kv", "metadata", "get", &path]);
    assert_eq!(metadata["data"]["current_version"], 2);

    let listed = server.json(&["kv", "list", &format!("{mount}/app")]);
    assert_eq!(listed, serde_json::json!(["db"]));

    server.ok(&["kv", "delete", &path]);
    let gone = server.run(&["kv", "get", &path]);
    assert_eq!(gone.code, 2, "{}{}", gone.stdout, gone.stderr);

    server.ok(&["kv", "undelete", "-versions=2", &path]);
    assert_eq!(server.ok(&["kv", "get", "-field=password", &path]), "n3w");

    server.ok(&["kv", "destroy", "-versions=1", &path]);
    let destroyed = server.json(&["kv", "metadata", "get", &path]);
    assert_eq!(destroyed["data"]["versions"]["1"]["destroyed"], true);

    server.ok(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=5",
        "-custom-metadata=owner=ops",
        &path,
    ]);
    let tuned = server.json(&["kv", "metadata", "get", &path]);
    assert_eq!(tuned["data"]["max_versions"], 5);
    assert_eq!(tuned["data"]["custom_metadata"]["owner"], "ops");

    server.ok(&["kv", "metadata", "delete", &path]);
    assert_eq!(server.run(&["kv", "metadata", "get", &path]).code, 2);
    server.ok(&["secrets", "disable", &mount]);
}

#[test]
fn kv_put_reads_json_from_stdin_and_cas_guards_writes() {
    let Some(server) = server() else { return };
    let mount = server.kv_v2_mount();
    let path = format!("{mount}/cfg");
    let out = server.run_with_stdin(&["kv", "put", &path, "-"], r#"{"port": 5432}"#);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        server.json(&["kv", "get", &path])["data"]["data"]["port"],
        5432
    );

    let stale = server.run(&["kv", "put", "-cas=0", &path, "port=1"]);
    assert_eq!(stale.code, 1);
    assert!(
        stale.stderr.starts_with("Error writing data to"),
        "{}",
        stale.stderr
    );
    server.ok(&["kv", "put", "-cas=1", &path, "port=2"]);
    server.ok(&["secrets", "disable", &mount]);
}

#[test]
fn generic_read_write_list_delete_on_a_kv_v1_mount() {
    let Some(server) = server() else { return };
    let mount = unique("kvone");
    server.ok(&["secrets", "enable", &format!("-path={mount}"), "kv"]);
    let path = format!("{mount}/thing");
    let written = server.ok(&["write", &path, "colour=blue"]);
    assert_eq!(written, format!("Success! Data written to: {path}\n"));
    assert_eq!(server.ok(&["read", "-field=colour", &path]), "blue");
    assert_eq!(server.json(&["list", &mount]), serde_json::json!(["thing"]));
    assert_eq!(server.ok(&["kv", "get", "-field=colour", &path]), "blue");
    server.ok(&["delete", &path]);
    let missing = server.run(&["read", &path]);
    assert_eq!(missing.code, 2);
    assert_eq!(missing.stderr, format!("No value found at {path}\n"));
    server.ok(&["secrets", "disable", &mount]);
}

#[test]
fn policies_can_be_written_read_listed_and_deleted() {
    let Some(server) = server() else { return };
    let name = unique("pol");
    let policy = "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n";
    let out = server.run_with_stdin(&["policy", "write", &name, "-"], policy);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, format!("Success! Uploaded policy: {name}\n"));
    assert!(server
        .ok(&["policy", "read", &name])
        .contains("capabilities"));
    let names = server.json(&["policy", "list"]);
    assert!(
        names
            .as_array()
            .unwrap()
            .contains(&Value::String(name.clone())),
        "{names}"
    );
    server.ok(&["policy", "delete", &name]);
    assert_eq!(server.run(&["policy", "read", &name]).code, 2);
}

#[test]
fn tokens_can_be_created_looked_up_and_revoked() {
    let Some(server) = server() else { return };
    let created = server.json(&[
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
        .contains(&Value::from("default")));

    let only_token = server.ok(&["token", "create", "-field=token", "-policy=default"]);
    assert!(!only_token.is_empty() && !only_token.contains('\n'));

    let lookup = server.json(&["token", "lookup", &token]);
    assert_eq!(lookup["data"]["meta"]["team"], "ops");
    let table = server.ok(&["token", "lookup", &token]);
    assert!(table.starts_with("Key "), "{table}");

    let caps = server.ok(&["token", "capabilities", &token, "sys/mounts"]);
    assert_eq!(caps.trim(), "deny");

    assert_eq!(
        server.ok(&["token", "revoke", &token]),
        "Success! Revoked token (if it existed)\n"
    );
    let after = server.run(&["token", "lookup", &token]);
    assert_eq!(after.code, 1);
    assert!(
        after.stderr.starts_with("Error looking up token: "),
        "{}",
        after.stderr
    );
}

#[test]
fn secrets_engines_can_be_enabled_listed_tuned_moved_and_disabled() {
    let Some(server) = server() else { return };
    let mount = unique("eng");
    let moved = unique("moved");
    server.ok(&[
        "secrets",
        "enable",
        &format!("-path={mount}"),
        "-description=test engine",
        "kv",
    ]);
    let list = server.json(&["secrets", "list"]);
    assert_eq!(list[format!("{mount}/")]["type"], "kv");
    assert!(server
        .ok(&["secrets", "list"])
        .contains(&format!("{mount}/")));

    server.ok(&[
        "secrets",
        "tune",
        "-default-lease-ttl=1h",
        "-max-lease-ttl=2h",
        &mount,
    ]);
    let detailed = server.json(&["secrets", "list", "-detailed"]);
    assert_eq!(
        detailed[format!("{mount}/")]["config"]["default_lease_ttl"],
        3600
    );

    let out = server.ok(&["secrets", "move", &mount, &moved]);
    assert!(out.starts_with("Success!"), "{out}");
    let list = server.json(&["secrets", "list"]);
    assert!(list.get(format!("{mount}/")).is_none());
    assert_eq!(list[format!("{moved}/")]["type"], "kv");

    server.ok(&["secrets", "disable", &moved]);
    assert!(server
        .json(&["secrets", "list"])
        .get(format!("{moved}/"))
        .is_none());
}
