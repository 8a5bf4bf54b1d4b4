//! The CLI over TLS against a real server: which certificates it trusts (a self-signed OpenSSL 3
//! certificate given as the CA file, as curl and Vault's CLI accept it), the name it checks
//! (`VAULT_TLS_SERVER_NAME`), `VAULT_SKIP_VERIFY`, and what it says when the handshake fails or
//! http and https are mixed up: each refusal names what to do.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pki::{issue, new_ca};
use common::{free_port, TestServer, COFFER_BIN};
use serde_json::json;
use tempfile::TempDir;

/// A file-storage server with a plain listener and two TLS listeners: one with a self-signed
/// certificate made by `openssl req -x509` (OpenSSL 3 marks it `CA:TRUE`), one with a
/// certificate for `localhost` only, issued by a test CA. Initialised, unsealed, KV v2 at
/// `secret/`.
struct Fixture {
    server: TestServer,
    root: String,
    pki: TempDir,
    /// The self-signed listener's port and certificate.
    self_signed_port: u16,
    self_signed_cert: PathBuf,
    /// The CA-issued listener's port and its CA.
    issued_port: u16,
    issuing_ca: PathBuf,
    /// A CA that issued nothing here.
    other_ca: PathBuf,
}

fn fixture() -> Fixture {
    let pki = tempfile::tempdir().unwrap();
    let self_signed_cert = pki.path().join("tls.crt");
    let self_signed_key = pki.path().join("tls.key");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&self_signed_key)
        .arg("-out")
        .arg(&self_signed_cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ca = new_ca("Coffer Test Issuing CA");
    let issuing_ca = pki.path().join("issuing-ca.pem");
    std::fs::write(&issuing_ca, &ca.pem).unwrap();
    let (issued_cert, issued_key) = issue(
        &ca,
        pki.path(),
        "issued",
        "localhost",
        &["localhost"],
        Vec::new(),
    );
    let other_ca = pki.path().join("other-ca.pem");
    std::fs::write(&other_ca, new_ca("Coffer Unrelated CA").pem).unwrap();

    let self_signed_port = free_port();
    let issued_port = free_port();
    let listener = |port: u16, cert: &Path, key: &Path| {
        format!(
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
            cert.display(),
            key.display()
        )
    };
    let config = format!(
        "storage \"file\" {{\n  path = \"{{{{data_dir}}}}\"\n}}\nlistener \"tcp\" {{\n  address = \"{{{{address}}}}\"\n  tls_disable = true\n}}\n{}{}",
        listener(self_signed_port, &self_signed_cert, &self_signed_key),
        listener(issued_port, &issued_cert, &issued_key),
    );
    let server = TestServer::from_config(&config);
    let (_, init) = server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    let root = init["root_token"].as_str().unwrap().to_owned();
    let key = init["keys"][0].as_str().unwrap().to_owned();
    server.request("PUT", "sys/unseal", None, Some(&json!({"key": key})));
    let (status, body) = server.request(
        "POST",
        "sys/mounts/secret",
        Some(&root),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert!(status < 300, "{body}");
    Fixture {
        server,
        root,
        pki,
        self_signed_port,
        self_signed_cert,
        issued_port,
        issuing_ca,
        other_ca,
    }
}

/// What one CLI run produced.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Fixture {
    /// Run the CLI with the root token, `VAULT_ADDR=address` and `env`, and nothing else from
    /// the developer's shell.
    fn run(&self, address: &str, env: &[(&str, &str)], args: &[&str]) -> Outcome {
        let mut command = Command::new(COFFER_BIN);
        command
            .args(args)
            .env("VAULT_ADDR", address)
            .env("VAULT_TOKEN", &self.root)
            .env("HOME", self.pki.path());
        for name in [
            "COFFER_ADDR",
            "COFFER_TOKEN",
            "VAULT_CACERT",
            "COFFER_CACERT",
            "VAULT_SKIP_VERIFY",
            "COFFER_SKIP_VERIFY",
            "VAULT_TLS_SERVER_NAME",
            "COFFER_TLS_SERVER_NAME",
            "VAULT_CLIENT_CERT",
            "VAULT_CLIENT_KEY",
        ] {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        Outcome {
            code: out.status.code().unwrap(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn self_signed_cert(&self) -> &str {
        self.self_signed_cert.to_str().unwrap()
    }
}

#[test]
fn a_self_signed_openssl_certificate_given_as_the_ca_file_is_trusted() {
    let f = fixture();
    let https = format!("https://127.0.0.1:{}", f.self_signed_port);
    // curl accepts this certificate as its own CA; so must the CLI.
    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", f.self_signed_cert()])
        .arg(format!("{https}/v1/sys/health"))
        .output()
        .unwrap();
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );

    let cacert = [("VAULT_CACERT", f.self_signed_cert())];
    let put = f.run(&https, &cacert, &["kv", "put", "secret/tls", "over=https"]);
    assert_eq!(put.code, 0, "{}", put.stderr);
    let get = f.run(&https, &cacert, &["kv", "get", "-field=over", "secret/tls"]);
    assert_eq!(
        (get.code, get.stdout.as_str()),
        (0, "https"),
        "{}",
        get.stderr
    );
    // The certificate also names localhost; the -ca-cert flag works as the variable does.
    let by_name = format!("https://localhost:{}", f.self_signed_port);
    let flag = format!("-ca-cert={}", f.self_signed_cert());
    let get = f.run(&by_name, &[], &[&flag, "kv", "get", "secret/tls"]);
    assert_eq!(get.code, 0, "{}", get.stderr);

    // Without the CA file, the refusal names the flag and the variable that fix it.
    let refused = f.run(&https, &[], &["kv", "get", "secret/tls"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("-ca-cert") && refused.stderr.contains("VAULT_CACERT"),
        "{}",
        refused.stderr
    );
    // VAULT_SKIP_VERIFY accepts it unverified.
    let skipped = f.run(
        &https,
        &[("VAULT_SKIP_VERIFY", "true")],
        &["kv", "get", "secret/tls"],
    );
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);
}

#[test]
fn an_untrusted_issuer_is_answered_with_the_ca_flag_to_set() {
    let f = fixture();
    let https = format!("https://localhost:{}", f.issued_port);
    let other = [("VAULT_CACERT", f.other_ca.to_str().unwrap())];
    let refused = f.run(&https, &other, &["status"]);
    // `status` exits 1 on any error, as Vault's does (2 means sealed).
    assert_eq!(refused.code, 1);
    let message = refused.stderr.trim();
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(
        message.contains("-ca-cert=FILE") && message.contains("VAULT_CACERT=FILE"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "one sentence: {message}");

    let trusted = [("VAULT_CACERT", f.issuing_ca.to_str().unwrap())];
    let ok = f.run(&https, &trusted, &["status"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // Trusting the issuing CA does not make a certificate it did not issue trusted.
    let self_signed = format!("https://localhost:{}", f.self_signed_port);
    let refused = f.run(&self_signed, &trusted, &["status"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
}

#[test]
fn the_tls_server_name_is_the_name_the_certificate_must_carry() {
    let f = fixture();
    // The issued certificate names only localhost.
    let by_ip = format!("https://127.0.0.1:{}", f.issued_port);
    let trusted = ("VAULT_CACERT", f.issuing_ca.to_str().unwrap());
    let refused = f.run(&by_ip, &[trusted], &["status"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("not valid for 127.0.0.1")
            && refused.stderr.contains("VAULT_TLS_SERVER_NAME"),
        "{}",
        refused.stderr
    );
    let named = f.run(
        &by_ip,
        &[trusted, ("VAULT_TLS_SERVER_NAME", "localhost")],
        &["status"],
    );
    assert_eq!(named.code, 0, "{}", named.stderr);
    let flag = f.run(
        &by_ip,
        &[trusted],
        &["-tls-server-name=localhost", "status"],
    );
    assert_eq!(flag.code, 0, "{}", flag.stderr);
    // The exact-match trust checks the name too.
    let wrong = f.run(
        &format!("https://127.0.0.1:{}", f.self_signed_port),
        &[
            ("VAULT_CACERT", f.self_signed_cert()),
            ("VAULT_TLS_SERVER_NAME", "elsewhere.example"),
        ],
        &["status"],
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("not valid for elsewhere.example"),
        "{}",
        wrong.stderr
    );
}

#[test]
fn http_to_a_tls_listener_and_https_to_a_plain_one_are_each_named() {
    let f = fixture();
    let http_to_tls = f.run(
        &format!("http://127.0.0.1:{}", f.self_signed_port),
        &[],
        &["status"],
    );
    assert_eq!(http_to_tls.code, 1);
    assert_eq!(
        http_to_tls.stderr.trim(),
        format!(
            "the server at http://127.0.0.1:{port} speaks https: use https://127.0.0.1:{port} in VAULT_ADDR or -address",
            port = f.self_signed_port
        )
    );

    let plain = f.server.host_port().to_owned();
    let https_to_plain = f.run(&format!("https://{plain}"), &[], &["status"]);
    assert_eq!(https_to_plain.code, 1);
    let message = https_to_plain.stderr.trim();
    assert!(
        message.contains("does not speak TLS") && message.contains(&format!("http://{plain}")),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "one sentence: {message}");

    // Plain HTTP on the TLS port gets Go's answer, so curl and Vault's CLI see it too; the
    // listener still serves TLS afterwards.
    let curl = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!(
            "http://127.0.0.1:{}/v1/sys/health",
            f.self_signed_port
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&curl.stdout);
    assert!(
        text.starts_with("Client sent an HTTP request to an HTTPS server.\n")
            && text.ends_with("400"),
        "{text}"
    );
    let ok = f.run(
        &format!("https://127.0.0.1:{}", f.self_signed_port),
        &[("VAULT_CACERT", f.self_signed_cert())],
        &["status"],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}
