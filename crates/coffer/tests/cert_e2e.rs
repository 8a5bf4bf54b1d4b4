//! The cert auth method end to end: the real binary with a TLS listener, a host logging in
//! over mutual TLS with a certificate from a CA a role trusts, then using its token.

mod common;

use common::pki::{issue, new_ca, utf8_extension};
use common::{free_port, TestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const COMPARTMENT_OID: &str = "1.3.6.1.4.1.57264.1.2";
const COMPARTMENT_ARCS: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 2];

/// One HTTPS request with `curl`, optionally presenting a client certificate. Returns the
/// status and the JSON body (`Null` when empty).
struct Curl<'a> {
    base: String,
    ca_file: &'a Path,
}

impl Curl<'_> {
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        client: Option<&(PathBuf, PathBuf)>,
    ) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-X", method, "--cacert"])
            .arg(self.ca_file)
            .args(["-w", "\n%{http_code}"]);
        if let Some(token) = token {
            cmd.args(["-H", &format!("X-Vault-Token: {token}")]);
        }
        if let Some(body) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(body.to_string());
        }
        if let Some((cert, key)) = client {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        cmd.arg(format!("{}/v1/{path}", self.base));
        let out = cmd.output().expect("run curl");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "curl {method} {path} failed: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (text, status) = stdout.rsplit_once('\n').expect("status line");
        (
            status.trim().parse().expect("HTTP status"),
            serde_json::from_str(text).unwrap_or(Value::Null),
        )
    }
}

#[test]
fn host_logs_in_over_mutual_tls_and_uses_its_token() {
    let pki = tempfile::tempdir().unwrap();
    let server_ca = new_ca("Coffer Test Server CA");
    let server_ca_file = pki.path().join("server-ca.pem");
    std::fs::write(&server_ca_file, &server_ca.pem).unwrap();
    let (server_cert, server_key) = issue(
        &server_ca,
        pki.path(),
        "server",
        "localhost",
        &["localhost"],
        Vec::new(),
    );

    let tls_port = free_port();
    let config = format!(
        r#"
storage "file" {{
  path = "{{{{data_dir}}}}"
}}

listener "tcp" {{
  address     = "{{{{address}}}}"
  tls_disable = true
}}

listener "tcp" {{
  address       = "127.0.0.1:{tls_port}"
  tls_cert_file = "{}"
  tls_key_file  = "{}"
}}
"#,
        server_cert.display(),
        server_key.display()
    );
    let server = TestServer::from_config(&config);
    let (status, body) = server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(status, 200, "{body}");
    let root = body["root_token"].as_str().unwrap().to_string();
    let unseal_key = body["keys"][0].as_str().unwrap().to_string();
    let (status, body) =
        server.request("PUT", "sys/unseal", None, Some(&json!({"key": unseal_key})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sealed"], false, "{body}");

    let https = Curl {
        base: format!("https://localhost:{tls_port}"),
        ca_file: &server_ca_file,
    };

    // Clients without a certificate still get through the TLS listener.
    let (status, body) = https.request(
        "POST",
        "sys/auth/cert",
        Some(&root),
        Some(&json!({"type": "cert"})),
        None,
    );
    assert!(status == 204 || status == 200, "{status} {body}");

    let hosts_ca = new_ca("Coffer Instance CA");
    let (status, body) = https.request(
        "POST",
        "auth/cert/certs/hosts",
        Some(&root),
        Some(&json!({
            "certificate": hosts_ca.pem,
            "token_policies": ["hosts"],
            "metadata_extensions": {"instance.compartment.id": COMPARTMENT_OID},
        })),
        None,
    );
    assert!(status == 204 || status == 200, "{status} {body}");

    let host = issue(
        &hosts_ca,
        pki.path(),
        "host",
        "web-01",
        &["web-01.internal"],
        vec![utf8_extension(COMPARTMENT_ARCS, "prod")],
    );
    let (status, body) = https.request("POST", "auth/cert/login", None, None, Some(&host));
    assert_eq!(status, 200, "{body}");
    let auth = &body["auth"];
    let token = auth["client_token"]
        .as_str()
        .expect("client token")
        .to_string();
    assert!(
        auth["policies"]
            .as_array()
            .unwrap()
            .contains(&json!("hosts")),
        "{auth}"
    );
    assert_eq!(auth["metadata"]["common_name"], "web-01", "{auth}");
    assert_eq!(
        auth["metadata"]["instance.compartment.id"], "prod",
        "{auth}"
    );

    // The token works, on either listener.
    let (status, body) = server.request("GET", "auth/token/lookup-self", Some(&token), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["meta"]["cert_name"], "hosts", "{body}");
    assert_eq!(body["data"]["meta"]["instance.compartment.id"], "prod");
    let (status, _) = https.request("GET", "auth/token/lookup-self", Some(&token), None, None);
    assert_eq!(status, 200);

    // No certificate, or one from a CA no role trusts: refused with Vault's messages.
    let (status, body) = https.request("POST", "auth/cert/login", None, None, None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0], "client certificate must be supplied");
    let stranger_ca = new_ca("Coffer Instance CA");
    let stranger = issue(
        &stranger_ca,
        pki.path(),
        "stranger",
        "web-01",
        &[],
        Vec::new(),
    );
    let (status, body) = https.request("POST", "auth/cert/login", None, None, Some(&stranger));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0],
        "invalid certificate or no client certificate supplied"
    );
}

/// A file-storage server with a plain and a TLS listener, initialised and unsealed. Returns the
/// server, its root token, the CA file that signed its TLS certificate, and the TLS port.
fn tls_server(pki: &Path) -> (TestServer, String, PathBuf, u16) {
    let server_ca = new_ca("Coffer Test Server CA");
    let server_ca_file = pki.join("server-ca.pem");
    std::fs::write(&server_ca_file, &server_ca.pem).unwrap();
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
        "storage \"file\" {{\n  path = \"{{{{data_dir}}}}\"\n}}\nlistener \"tcp\" {{\n  address = \"{{{{address}}}}\"\n  tls_disable = true\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{tls_port}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
        server_cert.display(),
        server_key.display()
    );
    let server = TestServer::from_config(&config);
    let (_, body) = server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    let root = body["root_token"].as_str().unwrap().to_string();
    let key = body["keys"][0].as_str().unwrap().to_string();
    let (_, body) = server.request("PUT", "sys/unseal", None, Some(&json!({"key": key})));
    assert_eq!(body["sealed"], false);
    (server, root, server_ca_file, tls_port)
}

/// The machine-identity scenario: no password anywhere. A host proves what it is with its machine
/// certificate, a dynamic group matches it by the compartment in that certificate, and a policy
/// grants that group exactly one secret.
#[test]
fn seed_scenario_prod_host_reads_its_one_secret_and_a_dev_host_is_denied() {
    let pki = tempfile::tempdir().unwrap();
    let (server, root, ca_file, port) = tls_server(pki.path());
    let https = Curl {
        base: format!("https://localhost:{port}"),
        ca_file: &ca_file,
    };
    let ok = |status: u16, body: &Value| assert!((200..300).contains(&status), "{status} {body}");

    let (s, b) = server.request(
        "POST",
        "sys/mounts/secret",
        Some(&root),
        Some(&json!({"type": "kv-v2"})),
    );
    ok(s, &b);
    let (s, b) = server.request(
        "POST",
        "secret/data/my-secret",
        Some(&root),
        Some(&json!({"data": {"db_password": "only-for-prod"}})),
    );
    ok(s, &b);
    let (s, b) = server.request(
        "POST",
        "secret/data/other-secret",
        Some(&root),
        Some(&json!({"data": {"x": "no"}})),
    );
    ok(s, &b);
    let (s, b) = server.request(
        "PUT",
        "sys/policies/acl/my-secret-reader",
        Some(&root),
        Some(&json!({"policy": "path \"secret/data/my-secret\" { capabilities = [\"read\"] }"})),
    );
    ok(s, &b);
    let (s, b) = server.request(
        "POST",
        "sys/auth/cert",
        Some(&root),
        Some(&json!({"type": "cert"})),
    );
    ok(s, &b);
    let hosts_ca = new_ca("Coffer Instance CA");
    // The role itself grants nothing: access comes only from the dynamic group.
    let (s, b) = server.request(
        "POST",
        "auth/cert/certs/hosts",
        Some(&root),
        Some(&json!({"certificate": hosts_ca.pem, "token_policies": [], "metadata_extensions": {"instance.compartment.id": COMPARTMENT_OID}})),
    );
    ok(s, &b);
    let (s, b) = server.request(
        "POST",
        "identity/group",
        Some(&root),
        Some(&json!({"name": "prod-hosts", "type": "dynamic", "rule": "any {instance.compartment.id = 'prod'}", "policies": ["my-secret-reader"]})),
    );
    ok(s, &b);

    let prod_host = issue(
        &hosts_ca,
        pki.path(),
        "prod-host",
        "app-01",
        &[],
        vec![utf8_extension(COMPARTMENT_ARCS, "prod")],
    );
    let dev_host = issue(
        &hosts_ca,
        pki.path(),
        "dev-host",
        "app-02",
        &[],
        vec![utf8_extension(COMPARTMENT_ARCS, "dev")],
    );

    let (status, body) = https.request("POST", "auth/cert/login", None, None, Some(&prod_host));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["auth"]["identity_policies"],
        json!(["my-secret-reader"]),
        "{body}"
    );
    let prod_token = body["auth"]["client_token"].as_str().unwrap().to_string();
    let (status, body) = server.request("GET", "secret/data/my-secret", Some(&prod_token), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["data"]["db_password"], "only-for-prod");
    let (status, _) = server.request("GET", "secret/data/other-secret", Some(&prod_token), None);
    assert_eq!(status, 403, "exactly one secret");

    let (status, body) = https.request("POST", "auth/cert/login", None, None, Some(&dev_host));
    assert_eq!(status, 200, "a dev host is a valid host: {body}");
    let dev_token = body["auth"]["client_token"].as_str().unwrap().to_string();
    let (status, _) = server.request("GET", "secret/data/my-secret", Some(&dev_token), None);
    assert_eq!(status, 403, "but it is not in the prod group");
}

/// The harness's ports: a test server's port must not be handed out twice or be one the kernel
/// may give an outgoing connection before the server binds it (this test binary once failed
/// with "Address already in use").
#[test]
fn free_ports_are_distinct_and_outside_the_ephemeral_range() {
    let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
    assert!(
        ports.iter().all(|port| *port < 32768),
        "a port in the kernel's ephemeral range: {ports:?}"
    );
}
