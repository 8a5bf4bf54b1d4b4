//! Stored-entry decryption (`barrier::open_blob`, `blob_term`) with arbitrary bytes.
//!
//! Input: a stored blob (`[version][term u32 BE][nonce 12][ciphertext][tag 16]`), opened under
//! a fixed test key with the associated data `fuzz/entry` — the seeds are real blobs sealed
//! with that key, so mutations start from well-formed entries.
//!
//! Oracles: no panic on any bytes; `open_blob` succeeds only on a well-formed blob (one that
//! `blob_term` accepts) and never under the wrong associated data; sealing the input and
//! opening it again returns it unchanged, under the term it was sealed with.
#![no_main]

use coffer_server::barrier::{blob_term, open_blob, seal_blob};
use libfuzzer_sys::fuzz_target;
use ring::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
use std::sync::OnceLock;

/// The fixed key the seed blobs were sealed with (bytes 0, 1, ..., 31). A test key only.
pub const SEED_KEY: [u8; 32] = {
    let mut key = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        key[i] = i as u8;
        i += 1;
    }
    key
};

/// Associated data the seed blobs were sealed with (the barrier uses the storage path).
const SEED_AAD: &[u8] = b"fuzz/entry";

fn key() -> &'static LessSafeKey {
    static KEY: OnceLock<LessSafeKey> = OnceLock::new();
    KEY.get_or_init(|| {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &SEED_KEY).expect("32-byte key"))
    })
}

fuzz_target!(|data: &[u8]| {
    let key = key();
    let term = blob_term(data);
    match open_blob(key, SEED_AAD, data) {
        Ok(_) => {
            assert!(
                term.is_some(),
                "open_blob accepted a blob blob_term rejects"
            );
            assert!(
                open_blob(key, b"fuzz/other", data).is_err(),
                "a blob opened under a different path (associated data)"
            );
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty(), "open_blob failed without saying why");
        }
    }

    let sealed_term = u32::from_le_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
        data.get(2).copied().unwrap_or(0),
        data.get(3).copied().unwrap_or(0),
    ]);
    let sealed = seal_blob(key, sealed_term, SEED_AAD, data);
    assert_eq!(
        blob_term(&sealed),
        Some(sealed_term),
        "seal_blob wrote a different term"
    );
    let opened = open_blob(key, SEED_AAD, &sealed).expect("a freshly sealed blob opens");
    assert_eq!(&opened[..], data, "seal then open changed the plaintext");
});
