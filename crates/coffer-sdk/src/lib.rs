//! The contract between Coffer's request pipeline and its engines: requests, responses,
//! errors, the storage view an engine writes to, the clock, and path declarations.
//!
//! Invariant: nothing here does authentication, policy or audit. An engine built on this
//! crate cannot check policy or write audit records itself; the pipeline does that, once.

pub mod cache;
pub mod catalog;
pub mod clock;
pub mod duration;
pub mod engine;
pub mod error;
pub mod framework;
pub mod host;
pub mod locks;
pub mod logical;
pub mod view;

pub use engine::{Engine, MountCtx, RollbackEntry};
pub use error::{Error, Result};
pub use framework::{Backend, Ctx, MountInfo, PathSpec};
pub use logical::{Operation, Request, Response};
pub use view::View;

/// Re-exported so engines derive input schemas with the same version.
pub use schemars;

/// Lower-case hex of `bytes`, written through a table: the storage names of hashed secrets
/// (tokens, accessors, secret IDs, leases) are made on every login and token lookup, and the
/// `hex` crate's `encode` builds its string one `char` at a time.
pub fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Written into place pair by pair (no capacity check per digit, as `push` makes); this runs
    // for every token on every request.
    let mut out = vec![0u8; bytes.len() * 2];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn lower_hex_writes_two_lower_case_digits_per_byte_in_order() {
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(super::lower_hex(&bytes), expected);
        assert_eq!(super::lower_hex(&[]), "");
    }
}
