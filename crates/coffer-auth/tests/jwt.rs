//! The jwt auth method through the engine's declared paths, with real keys made by the
//! `openssl` CLI, real signatures, and a real JWKS/discovery server on 127.0.0.1.

mod common;

use base64::Engine as _;
use coffer_auth::jwt::{
    BAD_SIGNATURE, EXPIRED, INVALID_AUDIENCE, INVALID_ISSUER, INVALID_SUBJECT, ISSUED_IN_FUTURE,
    NOT_YET_VALID, UNBOUND_AUDIENCE, UNSUPPORTED_ALG,
};
use common::{assert_error, body, keys_of, Mount};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "coffer";

// ---------------------------------------------------------------------------------------------
// Keys and tokens

/// A key pair made by the openssl CLI: private PKCS#8 PEM and public SPKI PEM.
struct KeyPair {
    private_pem: String,
    public_pem: String,
}

fn openssl(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn generate(args: &[&str]) -> KeyPair {
    let private_pem = openssl(args, None);
    let public_pem = openssl(&["pkey", "-pubout"], Some(&private_pem));
    KeyPair {
        private_pem,
        public_pem,
    }
}

fn rsa(n: usize) -> &'static KeyPair {
    static KEYS: OnceLock<Vec<KeyPair>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..2)
            .map(|_| {
                generate(&[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
            })
            .collect()
    })[n]
}

fn ec() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        generate(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
    })
}

fn encoding_key(pair: &KeyPair, alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pair.private_pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(pair.private_pem.as_bytes()).unwrap(),
    }
}

fn sign(pair: &KeyPair, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, &encoding_key(pair, alg)).unwrap()
}

fn jwk(pair: &KeyPair, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(&encoding_key(pair, alg), alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims a GitHub Actions token would carry, valid for five minutes from real now.
fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "repo:acme/web:ref:refs/heads/main",
        "repository": "acme/web",
        "ref": "refs/heads/main",
        "actor": "octocat",
        "environment": "prod",
        "run_number": 42,
        "teams": ["dev", "ops"],
        "iat": now(),
        "exp": now() + 300,
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// A JWKS and OIDC discovery server

/// Serves `/jwks` (the current key set) and `/.well-known/openid-configuration`, counting
/// JWKS fetches.
struct KeyServer {
    base: String,
    jwks: Arc<Mutex<Value>>,
    jwks_fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    fn start(jwks: Value) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(jwks));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let (keys, fetches, issuer) = (jwks.clone(), jwks_fetches.clone(), base.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, doc) = match path {
                    "/jwks" => {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", keys.lock().unwrap().clone())
                    }
                    "/.well-known/openid-configuration" => (
                        "200 OK",
                        json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}),
                    ),
                    _ => ("404 Not Found", json!({})),
                };
                let body = doc.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        KeyServer {
            base,
            jwks,
            jwks_fetches,
        }
    }

    fn rotate(&self, jwks: Value) {
        *self.jwks.lock().unwrap() = jwks;
    }

    fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// Mount helpers

/// A jwt mount trusting the first RSA key and the EC key as PEM public keys.
async fn pem_mount() -> Mount {
    let mount = Mount::new("jwt", &[]);
    mount
        .write(
            "config",
            json!({"jwt_validation_pubkeys": [rsa(0).public_pem, ec().public_pem],
                   "bound_issuer": ISSUER}),
        )
        .await
        .unwrap();
    mount
        .write(
            "role/ci",
            json!({"role_type": "jwt", "user_claim": "actor", "bound_audiences": [AUDIENCE],
                   "token_policies": ["deploy"], "token_ttl": "10m"}),
        )
        .await
        .unwrap();
    mount
}

async fn login(mount: &Mount, role: &str, jwt: &str) -> coffer_sdk::Result<coffer_sdk::Response> {
    mount
        .write("login", json!({"role": role, "jwt": jwt}))
        .await
}

fn rs256(claims: &Value) -> String {
    sign(rsa(0), Algorithm::RS256, None, claims)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn valid_token_logs_in_with_claims_mapped_into_metadata() {
    let mount = pem_mount().await;
    assert!(mount.is_unauthenticated("login"));
    assert!(!mount.is_unauthenticated("config"));
    mount
        .write(
            "role/ci",
            json!({"claim_mappings": {"repository": "repo", "run_number": "run",
                                      "/environment": "env"},
                   "groups_claim": "teams"}),
        )
        .await
        .unwrap();

    let jwt = rs256(&claims());
    let resp = login(&mount, "ci", &jwt).await.unwrap();
    assert!(resp.auth.is_none(), "engines never mint tokens");
    let login = resp.login.unwrap();
    assert_eq!(login.alias_name, "octocat");
    assert_eq!(login.display_name, "octocat");
    assert_eq!(login.policies, vec!["deploy"]);
    assert_eq!(login.ttl, Duration::from_secs(600));
    assert_eq!(
        Value::Object(login.metadata),
        json!({"repo": "acme/web", "run": "42", "env": "prod", "role": "ci"})
    );
    assert_eq!(
        Value::Object(login.alias_metadata),
        json!({"repo": "acme/web", "run": "42", "env": "prod", "groups": "dev,ops"})
    );
    assert!(
        !mount.dump().await.contains(&jwt),
        "the JWT is never stored"
    );

    // The EC key of the same config works too.
    let es = sign(ec(), Algorithm::ES256, None, &claims());
    assert_eq!(
        login_alias(&mount, "ci", &es).await,
        "octocat",
        "ES256 with the configured EC key"
    );
}

async fn login_alias(mount: &Mount, role: &str, jwt: &str) -> String {
    login(mount, role, jwt)
        .await
        .unwrap()
        .login
        .unwrap()
        .alias_name
}

#[tokio::test]
async fn alg_none_is_refused() {
    let mount = pem_mount().await;
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims().to_string().as_bytes());
    for jwt in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        let result = login(&mount, "ci", &jwt).await;
        let err = result.as_ref().err().map(ToString::to_string);
        assert!(
            err.as_deref() == Some(UNSUPPORTED_ALG)
                || err.as_deref() == Some(coffer_auth::jwt::MALFORMED_TOKEN),
            "{err:?}"
        );
    }
    assert_error(
        login(&mount, "ci", &format!("{header}.{payload}.")).await,
        400,
        UNSUPPORTED_ALG,
    );
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_as_secret_is_refused() {
    let mount = pem_mount().await;
    let secret = EncodingKey::from_secret(rsa(0).public_pem.as_bytes());
    let forged = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &secret).unwrap();
    assert_error(login(&mount, "ci", &forged).await, 400, UNSUPPORTED_ALG);

    // Nor can the config be talked into accepting HMAC.
    let before = mount.snapshot().await;
    let err = mount
        .write(
            "config",
            json!({"jwt_validation_pubkeys": [rsa(0).public_pem],
                   "jwt_supported_algs": ["RS256", "HS256"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("HS256"), "{err}");
    assert_eq!(mount.snapshot().await, before);
}

#[tokio::test]
async fn algorithms_outside_jwt_supported_algs_are_refused() {
    let mount = pem_mount().await;
    mount
        .write(
            "config",
            json!({"jwt_validation_pubkeys": [rsa(0).public_pem, ec().public_pem],
                   "bound_issuer": ISSUER, "jwt_supported_algs": ["ES256"]}),
        )
        .await
        .unwrap();
    assert_error(
        login(&mount, "ci", &rs256(&claims())).await,
        400,
        UNSUPPORTED_ALG,
    );
    let es = sign(ec(), Algorithm::ES256, None, &claims());
    assert_eq!(login_alias(&mount, "ci", &es).await, "octocat");
}

#[tokio::test]
async fn a_signature_by_an_untrusted_key_is_refused() {
    let mount = pem_mount().await;
    let other = sign(rsa(1), Algorithm::RS256, None, &claims());
    assert_error(login(&mount, "ci", &other).await, 400, BAD_SIGNATURE);
    let mut tampered: Vec<String> = rs256(&claims()).split('.').map(String::from).collect();
    tampered[1] = b64(with(claims(), json!({"actor": "admin"}))
        .to_string()
        .as_bytes());
    assert_error(
        login(&mount, "ci", &tampered.join(".")).await,
        400,
        BAD_SIGNATURE,
    );
}

#[tokio::test]
async fn expiry_is_checked_against_the_request_clock_with_leeway() {
    let mount = pem_mount().await;
    let jwt = rs256(&with(claims(), json!({"exp": now()})));
    // exp + 60s clock skew + 150s expiration leeway still passes...
    mount.clock.advance(Duration::from_secs(195));
    assert_eq!(login_alias(&mount, "ci", &jwt).await, "octocat");
    // ...and beyond it fails, without anyone sleeping.
    mount.clock.advance(Duration::from_secs(30));
    assert_error(login(&mount, "ci", &jwt).await, 400, EXPIRED);

    // Leeways are per role: -1 turns the expiration leeway off.
    let strict = pem_mount().await;
    strict
        .write(
            "role/ci",
            json!({"expiration_leeway": -1, "clock_skew_leeway": -1}),
        )
        .await
        .unwrap();
    let jwt = rs256(&with(claims(), json!({"exp": now() + 20})));
    assert_eq!(login_alias(&strict, "ci", &jwt).await, "octocat");
    strict.clock.advance(Duration::from_secs(30));
    assert_error(login(&strict, "ci", &jwt).await, 400, EXPIRED);
}

#[tokio::test]
async fn not_before_and_issued_at_in_the_future_are_refused_beyond_leeway() {
    let mount = pem_mount().await;
    // nbf 150s ahead: inside 60s skew + 150s not-before leeway.
    let soon = rs256(&with(claims(), json!({"nbf": now() + 150})));
    assert_eq!(login_alias(&mount, "ci", &soon).await, "octocat");
    let later = rs256(&with(
        claims(),
        json!({"nbf": now() + 300, "exp": now() + 900}),
    ));
    assert_error(login(&mount, "ci", &later).await, 400, NOT_YET_VALID);
    // Moving the clock forward makes it valid.
    mount.clock.advance(Duration::from_secs(120));
    assert_eq!(login_alias(&mount, "ci", &later).await, "octocat");

    let fresh = pem_mount().await;
    let iat = rs256(&with(claims(), json!({"iat": now() + 120})));
    assert_error(login(&fresh, "ci", &iat).await, 400, ISSUED_IN_FUTURE);
}

#[tokio::test]
async fn audience_must_match_a_bound_audience() {
    let mount = pem_mount().await;
    let wrong = rs256(&with(claims(), json!({"aud": "someone-else"})));
    assert_error(login(&mount, "ci", &wrong).await, 400, INVALID_AUDIENCE);
    let list = rs256(&with(claims(), json!({"aud": ["someone-else", AUDIENCE]})));
    assert_eq!(login_alias(&mount, "ci", &list).await, "octocat");
    let none = rs256(&with(claims(), json!({"aud": null})));
    assert_error(login(&mount, "ci", &none).await, 400, INVALID_AUDIENCE);

    // A role that binds no audience refuses tokens that carry one (Vault ≥ 1.17).
    mount
        .write(
            "role/open",
            json!({"user_claim": "actor", "bound_subject": "repo:acme/web:ref:refs/heads/main"}),
        )
        .await
        .unwrap();
    assert_error(
        login(&mount, "open", &rs256(&claims())).await,
        400,
        UNBOUND_AUDIENCE,
    );
    assert_eq!(login_alias(&mount, "open", &none).await, "octocat");
}

#[tokio::test]
async fn issuer_must_match_bound_issuer() {
    let mount = pem_mount().await;
    let wrong = rs256(&with(claims(), json!({"iss": "https://evil.example"})));
    assert_error(login(&mount, "ci", &wrong).await, 400, INVALID_ISSUER);
    let missing = rs256(&with(claims(), json!({"iss": null})));
    assert_error(login(&mount, "ci", &missing).await, 400, INVALID_ISSUER);
}

#[tokio::test]
async fn subject_must_match_bound_subject() {
    let mount = pem_mount().await;
    mount
        .write(
            "role/ci",
            json!({"bound_subject": "repo:acme/web:ref:refs/heads/main"}),
        )
        .await
        .unwrap();
    assert_eq!(
        login_alias(&mount, "ci", &rs256(&claims())).await,
        "octocat"
    );
    let other = rs256(&with(
        claims(),
        json!({"sub": "repo:acme/other:ref:refs/heads/main"}),
    ));
    assert_error(login(&mount, "ci", &other).await, 400, INVALID_SUBJECT);
}

#[tokio::test]
async fn bound_claims_match_globs_and_any_value_of_a_list() {
    let mount = pem_mount().await;
    mount
        .write(
            "role/ci",
            json!({"bound_claims_type": "glob",
                   "bound_claims": {"repository": "acme/*", "ref": ["refs/heads/main", "refs/tags/v*"]}}),
        )
        .await
        .unwrap();
    assert_eq!(
        body(&mount.read("role/ci").await.unwrap())["bound_claims_type"],
        "glob"
    );
    assert_eq!(
        login_alias(&mount, "ci", &rs256(&claims())).await,
        "octocat"
    );
    let tag = rs256(&with(claims(), json!({"ref": "refs/tags/v1.2"})));
    assert_eq!(login_alias(&mount, "ci", &tag).await, "octocat");

    let branch = rs256(&with(claims(), json!({"ref": "refs/heads/feature"})));
    assert_error(
        login(&mount, "ci", &branch).await,
        400,
        "error validating claims: claim \"ref\" does not match any associated bound claim values",
    );
    let fork = rs256(&with(claims(), json!({"repository": "evil/web"})));
    assert!(login(&mount, "ci", &fork).await.is_err());
    let missing = rs256(&with(claims(), json!({"repository": null})));
    assert_error(
        login(&mount, "ci", &missing).await,
        400,
        "error validating claims: claim \"repository\" is missing",
    );

    // String mode is exact: a `*` is just a character, and a list claim matches if any item does.
    mount
        .write(
            "role/exact",
            json!({"user_claim": "actor", "bound_audiences": AUDIENCE,
                   "bound_claims": {"repository": "acme/*", "teams": "ops"}}),
        )
        .await
        .unwrap();
    assert!(login(&mount, "exact", &rs256(&claims())).await.is_err());
    let literal = rs256(&with(claims(), json!({"repository": "acme/*"})));
    assert_eq!(login_alias(&mount, "exact", &literal).await, "octocat");
}

#[tokio::test]
async fn the_user_claim_must_be_present() {
    let mount = pem_mount().await;
    let anonymous = rs256(&with(claims(), json!({"actor": null})));
    assert_error(
        login(&mount, "ci", &anonymous).await,
        400,
        "claim \"actor\" not found in token",
    );
    let numeric = rs256(&with(claims(), json!({"actor": 7})));
    assert_error(
        login(&mount, "ci", &numeric).await,
        400,
        "claim \"actor\" could not be converted to string",
    );
}

#[tokio::test]
async fn login_errors_never_echo_the_token() {
    let mount = pem_mount().await;
    let jwt = rs256(&with(claims(), json!({"aud": "x"})));
    for (role, token) in [
        ("ci", jwt.as_str()),
        ("nope", jwt.as_str()),
        ("ci", "a.b.c"),
    ] {
        let err = login(&mount, role, token).await.unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(!err.to_string().contains(token), "{err}");
    }
    assert_error(login(&mount, "ci", "").await, 400, "missing token");
    assert_error(
        login(&mount, "nope", &jwt).await,
        400,
        "role \"nope\" could not be found",
    );
    assert_error(
        mount.write("login", json!({"jwt": jwt})).await,
        400,
        "missing role",
    );
}

#[tokio::test]
async fn default_role_is_used_when_login_names_none() {
    let mount = pem_mount().await;
    mount
        .write(
            "config",
            json!({"jwt_validation_pubkeys": rsa(0).public_pem, "bound_issuer": ISSUER,
                   "default_role": "ci"}),
        )
        .await
        .unwrap();
    let resp = mount
        .write("login", json!({"jwt": rs256(&claims())}))
        .await
        .unwrap();
    assert_eq!(resp.login.unwrap().metadata["role"], "ci");
}

#[tokio::test]
async fn jwks_url_keys_rotate_and_an_unknown_kid_triggers_one_refetch() {
    let server = KeyServer::start(json!({"keys": [jwk(rsa(0), Algorithm::RS256, "k1")]}));
    let mount = Mount::new("jwt", &[]);
    mount
        .write(
            "config",
            json!({"jwks_url": format!("{}/jwks", server.base), "bound_issuer": ISSUER}),
        )
        .await
        .unwrap();
    assert_eq!(server.fetches(), 1, "config write checks the URL once");
    mount
        .write(
            "role/ci",
            json!({"user_claim": "sub", "bound_audiences": AUDIENCE}),
        )
        .await
        .unwrap();

    let old = sign(rsa(0), Algorithm::RS256, Some("k1"), &claims());
    assert_eq!(
        login_alias(&mount, "ci", &old).await,
        "repo:acme/web:ref:refs/heads/main"
    );
    assert_eq!(server.fetches(), 1, "logins use the cached key set");

    // The issuer rotates to a new key.
    server.rotate(json!({"keys": [jwk(rsa(1), Algorithm::RS256, "k2")]}));
    let new = sign(rsa(1), Algorithm::RS256, Some("k2"), &claims());
    // Within the minimum refetch interval the unknown kid is refused without a fetch...
    assert_error(login(&mount, "ci", &new).await, 400, BAD_SIGNATURE);
    assert_eq!(server.fetches(), 1);
    // ...after it, one refetch finds the new key.
    mount.clock.advance(Duration::from_secs(10));
    assert_eq!(
        login_alias(&mount, "ci", &new).await,
        "repo:acme/web:ref:refs/heads/main"
    );
    assert_eq!(server.fetches(), 2);
    assert_eq!(
        login_alias(&mount, "ci", &new).await,
        "repo:acme/web:ref:refs/heads/main"
    );
    assert_eq!(server.fetches(), 2, "the refreshed set is cached");

    // A token naming a kid no one has is refused, and the refetch is rate limited.
    let ghost = sign(rsa(1), Algorithm::RS256, Some("ghost"), &claims());
    assert_error(login(&mount, "ci", &ghost).await, 400, BAD_SIGNATURE);
    assert_error(login(&mount, "ci", &ghost).await, 400, BAD_SIGNATURE);
    assert_eq!(server.fetches(), 2);
    // The old key is gone from the set.
    mount.clock.advance(Duration::from_secs(301));
    assert_error(login(&mount, "ci", &old).await, 400, BAD_SIGNATURE);
}

#[tokio::test]
async fn oidc_discovery_url_supplies_the_keys() {
    let server = KeyServer::start(json!({"keys": [jwk(ec(), Algorithm::ES256, "ec-1")]}));
    let mount = Mount::new("oidc", &[]);
    mount
        .write(
            "config",
            json!({"oidc_discovery_url": server.base, "bound_issuer": server.base}),
        )
        .await
        .unwrap();
    assert_eq!(
        body(&mount.read("config").await.unwrap())["oidc_discovery_url"],
        server.base
    );
    mount
        .write(
            "role/ci",
            json!({"user_claim": "actor", "bound_audiences": [AUDIENCE],
                   "bound_claims": {"repository": "acme/web"}}),
        )
        .await
        .unwrap();
    let jwt = sign(
        ec(),
        Algorithm::ES256,
        Some("ec-1"),
        &with(claims(), json!({"iss": server.base})),
    );
    assert_eq!(login_alias(&mount, "ci", &jwt).await, "octocat");
    let foreign = sign(ec(), Algorithm::ES256, Some("ec-1"), &claims());
    assert_error(login(&mount, "ci", &foreign).await, 400, INVALID_ISSUER);
}

#[tokio::test]
async fn unreachable_or_invalid_key_sources_are_refused_and_nothing_is_written() {
    let mount = pem_mount().await;
    let before = mount.snapshot().await;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let err = mount
        .write(
            "config",
            json!({"jwks_url": format!("http://{closed}/jwks")}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(
        err.to_string().starts_with("error checking jwks URL: "),
        "{err}"
    );
    println!("unreachable jwks_url: {err}");

    let server = KeyServer::start(json!({"keys": []}));
    let err = mount
        .write(
            "config",
            json!({"jwks_url": format!("{}/jwks", server.base)}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "error checking jwks URL: key set contains no usable public signing keys"
    );
    let err = mount
        .write(
            "config",
            json!({"oidc_discovery_url": format!("{}/nope", server.base)}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "error checking oidc discovery URL: server answered HTTP 404"
    );
    assert_error(
        mount
            .write("config", json!({"jwt_validation_pubkeys": ["not a key"]}))
            .await,
        400,
        "error parsing jwt_validation_pubkeys: entry 1 is not a PEM-encoded RSA, EC or Ed25519 \
         public key",
    );
    assert_error(
        mount
            .write(
                "config",
                json!({"jwt_validation_pubkeys": [rsa(0).public_pem],
                       "jwks_url": format!("{}/jwks", server.base)}),
            )
            .await,
        400,
        "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set",
    );
    assert_eq!(
        mount.snapshot().await,
        before,
        "refused configs change nothing"
    );
    // The old config still works.
    assert_eq!(
        login_alias(&mount, "ci", &rs256(&claims())).await,
        "octocat"
    );
}

#[tokio::test]
async fn roles_are_validated_listed_read_and_deleted() {
    let mount = pem_mount().await;
    assert_error(
        mount
            .write("role/x", json!({"bound_audiences": AUDIENCE}))
            .await,
        400,
        "a user claim must be defined on the role",
    );
    assert_error(
        mount.write("role/x", json!({"user_claim": "sub"})).await,
        400,
        "must have at least one bound constraint when creating/updating a role",
    );
    assert_error(
        mount
            .write(
                "role/x",
                json!({"user_claim": "sub", "bound_audiences": AUDIENCE, "role_type": "oidc"}),
            )
            .await,
        400,
        "role_type \"oidc\" is not supported: only \"jwt\" roles can be created",
    );
    assert_error(
        mount
            .write(
                "role/x",
                json!({"user_claim": "sub", "bound_audiences": AUDIENCE,
                       "claim_mappings": {"a": "role"}}),
            )
            .await,
        400,
        "metadata key \"role\" is reserved and may not be a mapping destination",
    );
    assert_eq!(keys_of(&mount.list("role/").await.unwrap()), vec!["ci"]);
    let role = body(&mount.read("role/ci").await.unwrap());
    assert_eq!(role["user_claim"], "actor");
    assert_eq!(role["bound_audiences"], json!([AUDIENCE]));
    assert_eq!(role["clock_skew_leeway"], 60);
    assert_eq!(role["expiration_leeway"], 150);
    assert_eq!(role["not_before_leeway"], 150);
    assert_eq!(role["token_policies"], json!(["deploy"]));
    assert_eq!(role["bound_claims"], Value::Null);
    mount.delete("role/ci").await.unwrap();
    assert_error(mount.read("role/ci").await, 404, "");
    assert_error(
        login(&mount, "ci", &rs256(&claims())).await,
        400,
        "role \"ci\" could not be found",
    );
}

#[tokio::test]
async fn token_bound_cidrs_restrict_where_logins_come_from() {
    let mount = pem_mount().await;
    mount
        .write("role/ci", json!({"token_bound_cidrs": ["10.0.0.0/8"]}))
        .await
        .unwrap();
    let body_in = json!({"role": "ci", "jwt": rs256(&claims())});
    assert_error(
        mount
            .write_from("login", body_in.clone(), "192.168.1.1:5000")
            .await,
        400,
        "request originated from invalid CIDR",
    );
    let login = mount
        .write_from("login", body_in, "10.1.2.3:5000")
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(login.bound_cidrs, vec!["10.0.0.0/8"]);
}
