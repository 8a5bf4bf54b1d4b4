//! The real binary, driven over HTTP: a non-dev server from a Vault-format config with file
//! storage, restarts, SIGKILL, TLS, and bad input at the HTTP layer.

mod common;

use common::{walk, TestServer, FILE_STORAGE_CONFIG};
use serde_json::{json, Value};
use std::process::Command;

fn init_and_unseal(server: &TestServer, shares: u64, threshold: u64) -> (Vec<String>, String) {
    let (status, body) = server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": shares, "secret_threshold": threshold})),
    );
    assert_eq!(status, 200, "{body}");
    let keys: Vec<String> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len() as u64, shares);
    assert_eq!(body["keys_base64"].as_array().unwrap().len() as u64, shares);
    let root = body["root_token"].as_str().unwrap().to_string();
    unseal(server, &keys[..threshold as usize]);
    (keys, root)
}

fn unseal(server: &TestServer, keys: &[String]) {
    for (i, key) in keys.iter().enumerate() {
        let (status, body) = server.request("PUT", "sys/unseal", None, Some(&json!({"key": key})));
        assert_eq!(status, 200, "{body}");
        let last = i + 1 == keys.len();
        assert_eq!(body["sealed"], !last, "after {} keys: {body}", i + 1);
        if !last {
            assert_eq!(body["progress"], i as u64 + 1);
        }
    }
}

/// KV version 2 at `secret/`.
fn mount_kv_v2(server: &TestServer, root: &str) {
    server.request(
        "POST",
        "sys/mounts/secret",
        Some(root),
        Some(&json!({"type": "kv-v2"})),
    );
}

/// `secret/data/k0` .. `k{n-1}`, each `{"i": its number}`, one request at a time.
fn write_numbered_secrets(server: &TestServer, root: &str, n: u64) {
    for i in 0..n {
        let (status, _) = server.request(
            "POST",
            &format!("secret/data/k{i}"),
            Some(root),
            Some(&json!({"data": {"i": i}})),
        );
        assert_eq!(status, 200);
    }
}

#[test]
fn file_storage_server_keeps_secrets_across_seal_and_restart() {
    let mut server = TestServer::from_config(FILE_STORAGE_CONFIG);
    let (status, body) = server.request("GET", "sys/seal-status", None, None);
    assert_eq!(
        (status, &body["initialized"], &body["sealed"]),
        (200, &json!(false), &json!(true))
    );
    let (status, _) = server.request("GET", "sys/health", None, None);
    assert_eq!(status, 501, "uninitialised health is 501");
    let (status, _) = server.request("GET", "secret/data/x", Some("whatever"), None);
    assert_eq!(status, 503, "an uninitialised server is sealed");

    let (keys, root) = init_and_unseal(&server, 5, 3);
    let (status, _) = server.request(
        "POST",
        "sys/mounts/secret",
        Some(&root),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(status, 204);
    let (status, _) = server.request(
        "POST",
        "secret/data/app/db",
        Some(&root),
        Some(&json!({"data": {"password": "durable-value-1"}})),
    );
    assert_eq!(status, 200);

    let (status, _) = server.request("PUT", "sys/seal", Some(&root), None);
    assert_eq!(status, 204);
    let (status, body) = server.request("GET", "secret/data/app/db", Some(&root), None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(server.request("GET", "sys/health", None, None).0, 503);

    server.restart();
    let (_, body) = server.request("GET", "sys/seal-status", None, None);
    assert_eq!(
        (
            &body["initialized"],
            &body["sealed"],
            &body["t"],
            &body["n"]
        ),
        (&json!(true), &json!(true), &json!(3), &json!(5))
    );
    unseal(&server, &keys[2..5]);
    let (status, body) = server.request("GET", "secret/data/app/db", Some(&root), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["data"]["password"], "durable-value-1");
    assert_eq!(server.request("GET", "sys/health", None, None).0, 200);

    // Nothing written above is readable in the data directory.
    for needle in ["durable-value-1", root.as_str()] {
        for file in walk(&server.data_dir()) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} found in {}",
                file.display()
            );
        }
    }
}

/// `sys/metrics` in Prometheus text, fetched with curl (the format is not JSON).
fn prometheus_metrics(server: &TestServer, token: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!("X-Vault-Token: {token}"),
            &format!("{}/v1/sys/metrics?format=prometheus", server.addr),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The file backend's group-commit counters, from `sys/metrics`.
fn storage_counter(server: &TestServer, token: &str, name: &str) -> u64 {
    let (status, body) = server.request("GET", "sys/metrics", Some(token), None);
    assert_eq!(status, 200, "{body}");
    body["Counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == format!("coffer.storage.{name}"))
        .unwrap_or_else(|| panic!("no coffer.storage.{name} in {body}"))["Count"]
        .as_u64()
        .unwrap()
}

#[test]
fn metrics_count_durable_commits_and_the_writes_they_carry() {
    let server = TestServer::from_config(FILE_STORAGE_CONFIG);
    let (_, root) = init_and_unseal(&server, 1, 1);
    mount_kv_v2(&server, &root);
    let fsyncs_before = storage_counter(&server, &root, "durable_commits");
    let ops_before = storage_counter(&server, &root, "ops");
    write_numbered_secrets(&server, &root, 5);
    // One at a time, every write is its own durable commit of at least one op.
    let fsyncs = storage_counter(&server, &root, "durable_commits") - fsyncs_before;
    let ops = storage_counter(&server, &root, "ops") - ops_before;
    assert!(
        fsyncs >= 5,
        "{fsyncs} durable commits for 5 sequential writes"
    );
    assert!(ops >= fsyncs, "{ops} ops in {fsyncs} commits");
    let text = prometheus_metrics(&server, &root);
    assert!(
        text.contains("coffer_storage_durable_commits_total "),
        "{text}"
    );

    // The in-memory dev server has no commits to count and says nothing about them.
    let dev = TestServer::dev();
    let (_, body) = dev.request("GET", "sys/metrics", Some(dev.root_token()), None);
    assert!(!body.to_string().contains("coffer.storage."), "{body}");
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let mut server = TestServer::from_config(FILE_STORAGE_CONFIG);
    let (keys, root) = init_and_unseal(&server, 1, 1);
    mount_kv_v2(&server, &root);
    write_numbered_secrets(&server, &root, 50);
    server.kill();
    server.restart();
    unseal(&server, &keys[..1]);
    for i in 0..50 {
        let (status, body) = server.request("GET", &format!("secret/data/k{i}"), Some(&root), None);
        assert_eq!(status, 200);
        assert_eq!(body["data"]["data"]["i"], i);
    }
}

#[test]
fn json_config_works_like_hcl() {
    let config = r#"{"storage": {"file": {"path": "{{data_dir}}"}}, "listener": [{"tcp": {"address": "{{address}}", "tls_disable": "true"}}], "default_lease_ttl": "1h", "max_lease_ttl": "2h", "ui": true, "disable_mlock": true, "log_level": "warn"}"#;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let path = dir.path().join("coffer.json");
    std::fs::write(
        &path,
        config
            .replace("{{data_dir}}", dir.path().join("d").to_str().unwrap())
            .replace("{{address}}", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let mut child = Command::new(common::COFFER_BIN)
        .args(["server", "-config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => {
                break Command::new("curl")
                    .args([
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        &format!("http://127.0.0.1:{port}/v1/sys/health"),
                    ])
                    .output()
                    .unwrap()
            }
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(25))
            }
            Err(e) => panic!("server did not listen: {e}"),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "501");
}

#[test]
fn invalid_config_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.hcl");
    std::fs::write(&path, "storage \"file\" {\n  path = \"/tmp/x\"\n}\nlistener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_disable = \"maybe\"\n}\n").unwrap();
    let out = Command::new(common::COFFER_BIN)
        .args(["server", "-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 6"), "{stderr}");
    std::fs::write(&path, "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n}\ntelemetry {\n  statsite_address = \"x\"\n}\n").unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(common::COFFER_BIN)
        .args(["server", "-config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Poll the log (warnings are printed before the listener starts), bounded in time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let stderr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("telemetry") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        stderr.contains("telemetry") && stderr.contains("WARNING"),
        "unknown stanzas warn: {stderr}"
    );
}

#[test]
fn http_layer_rejects_bad_input_with_json_errors() {
    let server = TestServer::dev();
    let root = server.root_token().to_string();
    let curl = |args: &[&str]| -> (u16, Value) {
        let mut full = vec!["-s", "--path-as-is", "-w", "\n%{http_code}"];
        full.extend_from_slice(args);
        let out = Command::new("curl").args(&full).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.parse().unwrap(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    };
    let url = |p: &str| format!("{}/v1/{p}", server.addr);
    let token = format!("X-Vault-Token: {root}");
    let cases: Vec<(Vec<String>, u16)> = vec![
        (
            vec![
                "-X".into(),
                "POST".into(),
                "-H".into(),
                token.clone(),
                "-d".into(),
                "{not json".into(),
                url("secret/data/a"),
            ],
            400,
        ),
        (
            vec![
                "-X".into(),
                "POST".into(),
                "-H".into(),
                token.clone(),
                "-d".into(),
                "[1,2]".into(),
                url("secret/data/a"),
            ],
            400,
        ),
        (
            vec![
                "-X".into(),
                "POST".into(),
                "-H".into(),
                token.clone(),
                "-d".into(),
                r#"{"data": "str"}"#.into(),
                url("secret/data/a"),
            ],
            400,
        ),
        (
            vec![
                "-H".into(),
                token.clone(),
                url("secret/data/../../sys/seal"),
            ],
            400,
        ),
        (vec!["-H".into(), token.clone(), url("secret//data/a")], 400),
        (
            vec!["-H".into(), token.clone(), url("secret/data/%ff%fe")],
            400,
        ),
        (vec!["-H".into(), token.clone(), url("nomount/x")], 404),
        (vec![url("nomount/x")], 403),
        (vec![url("secret/data/a")], 403),
        (
            vec![
                "-H".into(),
                "X-Vault-Token: wrong".into(),
                url("secret/data/a"),
            ],
            403,
        ),
        (
            vec![
                "-H".into(),
                token.clone(),
                "-H".into(),
                "X-Vault-Namespace: team-a".into(),
                url("secret/data/a"),
            ],
            400,
        ),
        (
            vec![
                "-X".into(),
                "FROB".into(),
                "-H".into(),
                token.clone(),
                url("secret/data/a"),
            ],
            405,
        ),
        (
            vec![
                "-X".into(),
                "PATCH".into(),
                "-H".into(),
                token.clone(),
                "-d".into(),
                "{}".into(),
                url("secret/data/a"),
            ],
            400,
        ),
        (
            vec![
                "-X".into(),
                "DELETE".into(),
                "-H".into(),
                token.clone(),
                url("sys/health"),
            ],
            405,
        ),
    ];
    for (args, want) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, body) = curl(&refs);
        assert_eq!(status, want, "{args:?} → {body}");
        assert!(
            body["errors"].is_array(),
            "{args:?} must answer a JSON error body, got {body}"
        );
    }
    // Oversize body: 33 MiB.
    let big = std::env::temp_dir().join(format!("coffer-big-{}", std::process::id()));
    std::fs::write(&big, vec![b' '; 33 * 1024 * 1024]).unwrap();
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &token,
        "--data-binary",
        &format!("@{}", big.display()),
        &url("secret/data/big"),
    ]);
    let _ = std::fs::remove_file(&big);
    assert_eq!(status, 413, "{body}");
    // Nothing above wrote anything.
    let (status, _) = server.request("GET", "secret/data/a", Some(&root), None);
    assert_eq!(status, 404);
    // Authorization: Bearer works like X-Vault-Token; LIST via ?list=true.
    let (status, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {root}"),
        "-H",
        "X-Vault-Request: true",
        &url("sys/mounts"),
    ]);
    assert_eq!(status, 200);
    server.request(
        "POST",
        "secret/data/listed",
        Some(&root),
        Some(&json!({"data": {"a": 1}})),
    );
    let (status, body) = curl(&["-H", &token, &url("secret/metadata?list=true")]);
    assert_eq!((status, &body["data"]["keys"]), (200, &json!(["listed"])));
}

#[test]
fn openapi_and_metrics_are_served() {
    let server = TestServer::dev();
    let (status, doc) = server.request("GET", "sys/internal/specs/openapi", None, None);
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/secret/data/{path}",
        "/sys/mounts/{path}",
        "/auth/token/create",
        "/sys/policies/acl/{name}",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    assert!(
        doc["paths"]["/secret/data/{path}"]["post"]["requestBody"].is_object(),
        "typed inputs carry a schema"
    );
    let text = prometheus_metrics(&server, server.root_token());
    assert!(
        text.contains("coffer_requests_total{operation=\"read\",status=\"2xx\"}"),
        "{text}"
    );
    assert_eq!(
        server.request("GET", "sys/metrics", None, None).0,
        403,
        "metrics need a token"
    );
}

#[test]
fn tls_listener_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let config = format!(
        "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"{{{{address}}}}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
        cert.display(),
        key.display()
    );
    let mut child_server = None;
    let port = common::free_port();
    let path = dir.path().join("tls.hcl");
    std::fs::write(
        &path,
        config.replace("{{address}}", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    child_server.replace(
        Command::new(common::COFFER_BIN)
            .args(["server", "-config", path.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "TLS server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--cacert",
            cert.to_str().unwrap(),
            &format!("https://127.0.0.1:{port}/v1/sys/seal-status"),
        ])
        .output()
        .unwrap();
    let plain = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{port}/v1/sys/seal-status"),
        ])
        .output()
        .unwrap();
    let mut child = child_server.take().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("200"), "{text}");
    assert!(text.contains("\"sealed\":true"));
    assert_ne!(
        String::from_utf8_lossy(&plain.stdout),
        "200",
        "plain HTTP must not be served on a TLS listener"
    );
}

/// `GET /v1/<path>` with curl: the raw body, exactly as sent.
fn raw_body(server: &TestServer, path: &str, token: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-H"])
        .arg(format!("X-Vault-Token: {token}"))
        .arg(format!("{}/v1/{path}", server.addr))
        .output()
        .expect("run curl");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn json_answers_end_in_a_newline_and_name_the_mount_type() {
    let server = TestServer::dev();
    let root = server.root_token();
    let (status, _) = server.request(
        "POST",
        "secret/data/shape",
        Some(root),
        Some(&json!({"data": {"a": "b"}})),
    );
    assert_eq!(status, 200);
    for (path, mount_type) in [
        ("secret/data/shape", "kv"),
        ("sys/policies/acl/default", "system"),
        ("auth/token/lookup-self", "token"),
    ] {
        let body = raw_body(&server, path, root);
        assert!(body.ends_with("}\n"), "{path}: {body:?}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["mount_type"], mount_type, "{path}: {body}");
    }
    // Answers a handler wrote itself (Vault's older top-level shapes) and errors too.
    for path in ["sys/mounts", "sys/seal-status"] {
        let body = raw_body(&server, path, root);
        assert!(body.ends_with("}\n"), "{path}: {body:?}");
    }
    let body = raw_body(&server, "secret/data/shape", "not-a-token");
    assert!(body.ends_with("}\n"), "{body:?}");
    assert!(body.contains("\"errors\""), "{body}");
}

#[test]
fn the_log_has_no_colour_codes_when_it_is_not_a_terminal() {
    let server = TestServer::dev();
    let log = server.log();
    assert!(log.contains("unsealed"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

/// A clean stop while a client still holds a kept-alive connection lets go of the server all
/// the same: the storage's final checkpoint runs, so the next start has no log to replay (the
/// connection threads hold references to the server until they are stopped).
#[test]
fn a_clean_stop_with_a_connection_still_open_checkpoints_the_storage() {
    use std::io::{Read, Write};
    let mut server = TestServer::from_config(FILE_STORAGE_CONFIG);
    let (keys, root) = init_and_unseal(&server, 1, 1);
    mount_kv_v2(&server, &root);
    write_numbered_secrets(&server, &root, 20);
    let mut idle = std::net::TcpStream::connect(server.host_port()).unwrap();
    idle.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: coffer\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(
        &first, b"HTTP/1.1 200",
        "the connection is served and kept open"
    );

    let replays = |log: &str| log.matches("write-ahead log replayed").count();
    let before = replays(&server.log());
    server.restart();
    assert_eq!(
        replays(&server.log()),
        before,
        "the stop did not checkpoint: {}",
        server.log()
    );
    unseal(&server, &keys[..1]);
    let (status, body) = server.request("GET", "secret/data/k19", Some(&root), None);
    assert_eq!(
        (status, &body["data"]["data"]["i"]),
        (200, &json!(19)),
        "{body}"
    );
    drop(idle);
}
