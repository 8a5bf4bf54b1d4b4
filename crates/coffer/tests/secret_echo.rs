//! Error messages never repeat the value of a secret-bearing field (ARCHITECTURE.md,
//! Invariants): wrong and malformed passwords, secret IDs, tokens, unseal keys, JWTs, client
//! secrets and KV data are sent to the endpoints that take them, and the submitted value
//! appears neither in any answer nor in the server's log, kept at `trace`.

mod common;

use common::TestServer;
use serde_json::{json, Value};

/// What every submitted secret contains, in one spelling or another.
const MARKER: &str = "Zq9-SECRET-7f3a";
/// The marker as a number (a number is taken as its decimal text by Vault's string fields).
const NUMERIC_MARKER: u64 = 86_421_357_902;
/// A well-formed unseal key share that is not the server's.
fn hex_marker() -> String {
    "c0ffee".repeat(11)
}

const CONFIG: &str = r#"
storage "inmem" {}
listener "tcp" {
  address     = "{{address}}"
  tls_disable = true
}
log_level = "trace"
"#;

/// The ways a secret value is sent malformed: wrong content, a list, an object (as a key and
/// as a value), a number, an embedded quote.
fn malformed() -> Vec<Value> {
    vec![
        json!(MARKER),
        json!([MARKER]),
        json!({ MARKER: MARKER }),
        json!([{ "nested": MARKER }]),
        json!(NUMERIC_MARKER),
        json!(format!("{MARKER}\"quote\\")),
    ]
}

struct Probe<'a> {
    server: &'a TestServer,
    leaks: Vec<String>,
    sent: usize,
}

impl Probe<'_> {
    fn leaked(text: &str) -> bool {
        text.contains(MARKER)
            || text.contains(&NUMERIC_MARKER.to_string())
            || text.contains(&hex_marker())
    }

    /// Send `body` and record the answer if it repeats the secret.
    fn send(&mut self, method: &str, path: &str, token: Option<&str>, body: &Value) -> u16 {
        let (status, answer) = self.server.request(method, path, token, Some(body));
        self.sent += 1;
        let text = answer.to_string();
        if Self::leaked(&text) {
            self.leaks
                .push(format!("{method} {path} {body} -> {status} {text}"));
        }
        assert!(
            (200..500).contains(&status),
            "{method} {path} {body}: {status} {text}"
        );
        status
    }

    /// Every malformed spelling of the secret in `field`, next to the `fixed` fields.
    fn sweep(&mut self, method: &str, path: &str, token: Option<&str>, field: &str, fixed: Value) {
        for value in malformed() {
            let mut body = fixed.clone();
            body[field] = value;
            self.send(method, path, token, &body);
        }
    }
}

#[test]
fn secret_values_never_appear_in_errors_or_the_log() {
    let server = TestServer::from_config(CONFIG);
    let mut probe = Probe {
        server: &server,
        leaks: Vec::new(),
        sent: 0,
    };

    // Unseal keys, while sealed: malformed, and well-formed but wrong.
    let (status, init) = server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(status, 200, "{init}");
    probe.sweep("PUT", "sys/unseal", None, "key", json!({}));
    probe.send("PUT", "sys/unseal", None, &json!({ "key": hex_marker() }));
    let key = init["keys"][0].as_str().unwrap();
    let root = init["root_token"].as_str().unwrap().to_owned();
    let (status, unsealed) =
        server.request("PUT", "sys/unseal", None, Some(&json!({ "key": key })));
    assert_eq!(
        (status, &unsealed["sealed"]),
        (200, &json!(false)),
        "{unsealed}"
    );
    let root = Some(root.as_str());

    for (path, body) in [
        (
            "sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
        ("sys/auth/userpass", json!({"type": "userpass"})),
        ("sys/auth/approle", json!({"type": "approle"})),
        ("sys/auth/jwt", json!({"type": "jwt"})),
        (
            "auth/userpass/users/bob",
            json!({"password": "right-password"}),
        ),
        (
            "auth/approle/role/app",
            json!({"token_policies": ["default"]}),
        ),
    ] {
        let (status, answer) = server.request("POST", path, root, Some(&body));
        assert!((200..300).contains(&status), "{path}: {status} {answer}");
    }
    let (_, role_id) = server.request("GET", "auth/approle/role/app/role-id", root, None);
    let role_id = role_id["data"]["role_id"].as_str().unwrap().to_owned();

    // Passwords.
    probe.sweep(
        "POST",
        "auth/userpass/login/bob",
        None,
        "password",
        json!({}),
    );
    probe.sweep(
        "POST",
        "auth/userpass/login/nobody",
        None,
        "password",
        json!({}),
    );
    probe.sweep(
        "POST",
        "auth/userpass/users/bob",
        root,
        "password",
        json!({}),
    );
    probe.sweep(
        "POST",
        "auth/userpass/users/bob/password",
        root,
        "password",
        json!({}),
    );
    // Secret IDs.
    probe.sweep(
        "POST",
        "auth/approle/login",
        None,
        "secret_id",
        json!({ "role_id": role_id }),
    );
    for path in [
        "auth/approle/role/app/secret-id/lookup",
        "auth/approle/role/app/secret-id/destroy",
    ] {
        probe.sweep("POST", path, root, "secret_id", json!({}));
    }
    // Tokens, in bodies and in the header.
    for path in [
        "auth/token/lookup",
        "auth/token/revoke",
        "auth/token/renew",
        "sys/wrapping/unwrap",
        "sys/wrapping/lookup",
        "sys/wrapping/rewrap",
    ] {
        probe.sweep("POST", path, root, "token", json!({}));
    }
    // (A string `id` is a valid custom token id, which the answer rightly returns.)
    for value in malformed().into_iter().filter(|v| !v.is_string()) {
        probe.send("POST", "auth/token/create", root, &json!({ "id": value }));
    }
    let (status, answer) = server.request("GET", "secret/data/app", Some(MARKER), None);
    assert_eq!(status, 403);
    assert!(!Probe::leaked(&answer.to_string()), "{answer}");
    // JWTs and client secrets.
    probe.sweep("POST", "auth/jwt/login", None, "jwt", json!({"role": "r"}));
    probe.sweep(
        "POST",
        "auth/jwt/config",
        root,
        "oidc_client_secret",
        json!({}),
    );
    // KV data: the wrong shape for `data`, and good data next to bad options.
    for value in malformed() {
        if value.is_object() {
            continue; // an object is valid data
        }
        probe.send("POST", "secret/data/app", root, &json!({ "data": value }));
    }
    probe.send(
        "POST",
        "secret/data/app",
        root,
        &json!({"data": {"password": MARKER}, "options": {"cas": MARKER}}),
    );
    probe.send(
        "POST",
        "secret/data/app",
        root,
        &json!({"data": {"password": MARKER}, "options": MARKER}),
    );

    let log = server.log();
    eprintln!(
        "secret echo: {} refused requests, {} answers repeating a secret, log {} bytes",
        probe.sent,
        probe.leaks.len(),
        log.len()
    );
    for leak in &probe.leaks {
        eprintln!("  LEAK {leak}");
    }
    assert!(probe.leaks.is_empty(), "answers repeated a secret");
    assert!(
        !Probe::leaked(&log),
        "the server's log repeats a secret:\n{log}"
    );
}
