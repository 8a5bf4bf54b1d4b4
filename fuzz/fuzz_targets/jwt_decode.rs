//! JWT login (`auth/jwt/login`) with garbage and with validly signed but hostile tokens.
//!
//! The `jwt` auth engine is mounted once over an in-memory view, configured with the public
//! half of an ES256 key generated at start-up, and given two roles: `fuzz` (bound audience,
//! glob-bound claims, claim mappings, a groups claim) and `plain` (`user_claim = sub`,
//! `bound_subject = bob`).
//!
//! Input, UTF-8:
//! - one line: a compact JWT, sent as is (header decoding, algorithm and signature checks);
//! - several lines: `HEADER-JSON`, `CLAIMS-JSON` and optionally a role name. The harness
//!   base64url-encodes the two (the bytes as written, JSON or not) and signs them with the
//!   configured key, so the fuzzer reaches everything after the signature check: `exp`/`nbf`/
//!   `iat` with leeways, issuer, audiences, bound claims, claim mappings, groups.
//!
//! Oracle: no panic, and every answer is a success or a client error (< 500).
#![no_main]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use coffer_fuzz::{assert_client_error, block_on, MountedEngine};
use coffer_sdk::Operation;
use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

struct JwtMount {
    engine: MountedEngine,
    signer: EcdsaKeyPair,
    rng: SystemRandom,
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("literal objects only"),
    }
}

fn jwt_mount() -> &'static JwtMount {
    static MOUNT: OnceLock<JwtMount> = OnceLock::new();
    MOUNT.get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key generation");
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .expect("generated key parses");
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(signer.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&spki)
        );

        let engine = MountedEngine::new(coffer_auth::jwt::backend("jwt"), "jwt", "auth/jwt/");
        block_on(async {
            let setup = [
                (
                    "config",
                    json!({
                        "jwt_validation_pubkeys": [pem],
                        "bound_issuer": "https://issuer.example",
                        "jwt_supported_algs": ["ES256", "RS256"],
                    }),
                ),
                (
                    "role/fuzz",
                    json!({
                        "role_type": "jwt",
                        "user_claim": "sub",
                        "bound_audiences": ["coffer"],
                        "bound_claims_type": "glob",
                        "bound_claims": {"team": ["ops*", "dev"], "/org/unit": "sec*"},
                        "claim_mappings": {"email": "email", "/org/unit": "unit"},
                        "groups_claim": "groups",
                        "policies": ["default"],
                        "ttl": "1h",
                    }),
                ),
                (
                    "role/plain",
                    json!({"role_type": "jwt", "user_claim": "sub", "bound_subject": "bob"}),
                ),
            ];
            for (path, body) in setup {
                engine
                    .call(Operation::Update, path, object(body))
                    .await
                    .unwrap_or_else(|e| panic!("setting up {path}: {e:?}"));
            }
        });
        JwtMount {
            engine,
            signer,
            rng,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mount = jwt_mount();
    let mut lines = text.lines();
    let (jwt, role) = match (lines.next(), lines.next()) {
        (Some(header), Some(claims)) => {
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let signature = mount
                .signer
                .sign(&mount.rng, signing_input.as_bytes())
                .expect("ECDSA signing");
            let jwt = format!(
                "{signing_input}.{}",
                URL_SAFE_NO_PAD.encode(signature.as_ref())
            );
            (jwt, lines.next().unwrap_or("fuzz").to_string())
        }
        _ => (text.to_string(), "fuzz".to_string()),
    };
    let body = object(json!({"role": role, "jwt": jwt}));
    let result = block_on(mount.engine.call(Operation::Update, "login", body));
    assert_client_error("jwt login", &result);
});
