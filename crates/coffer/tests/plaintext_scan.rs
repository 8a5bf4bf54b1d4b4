//! The plaintext scan: every kind of secret the server stores, written through the real
//! binary onto file storage, and then looked for in every byte of the data directory — raw,
//! hex and base64 — after the server has stopped; and in everything the server logged.

mod common;

use common::{walk, TestServer, FILE_STORAGE_CONFIG};
use serde_json::{json, Value};

fn needle(kind: &str) -> String {
    format!("needle-{kind}-{}", std::process::id())
}

fn ok(status: u16, body: &Value, what: &str) {
    assert!((200..300).contains(&status), "{what}: {status} {body}");
}

#[test]
fn no_secret_value_reaches_the_data_directory_in_any_encoding() {
    let mut server = TestServer::from_config(FILE_STORAGE_CONFIG);
    let (_, init) = server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    let root = init["root_token"].as_str().unwrap().to_string();
    let keys: Vec<String> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    for k in &keys[..2] {
        server.request("PUT", "sys/unseal", None, Some(&json!({"key": k})));
    }
    let r = |m: &str, p: &str, b: Value| server.request(m, p, Some(&root), Some(&b));
    let mut secrets: Vec<String> = vec![root.clone()];
    secrets.extend(keys.iter().cloned());

    let (s, b) = r("POST", "sys/mounts/secret", json!({"type": "kv-v2"}));
    ok(s, &b, "mount kv2");
    let (s, b) = r("POST", "sys/mounts/kv1", json!({"type": "kv"}));
    ok(s, &b, "mount kv1");
    let kv2 = needle("kv2-value");
    let (s, b) = r(
        "POST",
        "secret/data/app/db",
        json!({"data": {"password": kv2}}),
    );
    ok(s, &b, "kv2 write");
    let patched = needle("kv2-patched");
    let (s, b) = server.request_with_content_type(
        "PATCH",
        "secret/data/app/db",
        Some(&root),
        &json!({"data": {"api_key": patched}}),
        "application/merge-patch+json",
    );
    ok(s, &b, "kv2 patch");
    let kv1 = needle("kv1-value");
    let (s, b) = r("POST", "kv1/thing", json!({"value": kv1}));
    ok(s, &b, "kv1 write");
    let cubby = needle("cubbyhole");
    let (s, b) = r("POST", "cubbyhole/note", json!({"value": cubby}));
    ok(s, &b, "cubbyhole write");
    let password = needle("userpass-password");
    let (s, b) = r("POST", "sys/auth/userpass", json!({"type": "userpass"}));
    ok(s, &b, "enable userpass");
    let (s, b) = r(
        "POST",
        "auth/userpass/users/alice",
        json!({"password": password, "token_policies": ["default"]}),
    );
    ok(s, &b, "create user");
    let (s, login) = server.request(
        "POST",
        "auth/userpass/login/alice",
        None,
        Some(&json!({"password": password})),
    );
    ok(s, &login, "userpass login");
    secrets.push(login["auth"]["client_token"].as_str().unwrap().to_string());
    secrets.push(login["auth"]["accessor"].as_str().unwrap().to_string());
    let (s, b) = r("POST", "sys/auth/approle", json!({"type": "approle"}));
    ok(s, &b, "enable approle");
    let (s, b) = r(
        "POST",
        "auth/approle/role/app",
        json!({"token_policies": ["default"]}),
    );
    ok(s, &b, "approle role");
    let (s, sid) = r("POST", "auth/approle/role/app/secret-id", json!({}));
    ok(s, &sid, "secret id");
    secrets.push(sid["data"]["secret_id"].as_str().unwrap().to_string());
    let custom_sid = needle("custom-secret-id");
    let (s, b) = r(
        "POST",
        "auth/approle/role/app/custom-secret-id",
        json!({"secret_id": custom_sid}),
    );
    ok(s, &b, "custom secret id");
    let (s, tok) = r(
        "POST",
        "auth/token/create",
        json!({"policies": ["default"], "ttl": "1h"}),
    );
    ok(s, &tok, "token create");
    secrets.push(tok["auth"]["client_token"].as_str().unwrap().to_string());
    secrets.push(tok["auth"]["accessor"].as_str().unwrap().to_string());
    let custom_token = needle("custom-token-id");
    let (s, b) = r(
        "POST",
        "auth/token/create",
        json!({"id": custom_token, "policies": ["default"]}),
    );
    ok(s, &b, "custom token id");
    let wrapped = needle("wrapped-data");
    let (s, wrap) = server.request_with_headers(
        "POST",
        "sys/wrapping/wrap",
        Some(&root),
        &json!({"payload": wrapped}),
        &[("X-Vault-Wrap-TTL", "10m")],
    );
    ok(s, &wrap, "wrap");
    secrets.push(wrap["wrap_info"]["token"].as_str().unwrap().to_string());
    let entity_meta = needle("entity-metadata");
    let (s, b) = r(
        "POST",
        "identity/entity",
        json!({"name": "web", "metadata": {"secret_tag": entity_meta}}),
    );
    ok(s, &b, "entity");
    secrets.extend([
        kv2,
        patched,
        kv1,
        cubby,
        password,
        custom_sid,
        custom_token,
        wrapped,
        entity_meta,
    ]);

    server.stop();
    let files = walk(&server.data_dir());
    assert!(!files.is_empty(), "the server wrote a data directory");
    let blobs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    use base64::Engine as _;
    for secret in &secrets {
        let encodings = [
            secret.as_bytes().to_vec(),
            hex::encode(secret.as_bytes()).into_bytes(),
            base64::engine::general_purpose::STANDARD
                .encode(secret.as_bytes())
                .into_bytes(),
        ];
        for enc in &encodings {
            for (file, bytes) in files.iter().zip(&blobs) {
                assert!(
                    !bytes.windows(enc.len()).any(|w| w == enc.as_slice()),
                    "a secret ({} bytes) was found in {}",
                    secret.len(),
                    file.display()
                );
            }
        }
    }
    let log = server.log();
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret ({} bytes) was found in the server log",
            secret.len()
        );
    }
    eprintln!(
        "plaintext scan: {} secret values × 3 encodings over {} files ({} bytes): none found",
        secrets.len(),
        files.len(),
        blobs.iter().map(Vec::len).sum::<usize>()
    );
}
