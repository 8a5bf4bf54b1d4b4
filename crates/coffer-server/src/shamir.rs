//! Shamir secret sharing over GF(256), from the maintained `vsss-rs` crate. This module only
//! adapts it: share encoding, parameter checks, and an RNG backed by the OS through `ring`.

use coffer_sdk::{Error, Result};
use ring::rand::{SecureRandom, SystemRandom};
use std::convert::Infallible;
use vsss_rs::Gf256;
use zeroize::Zeroizing;

/// `rand_core` RNG over `ring`'s system random source. An OS RNG failure is unrecoverable,
/// so it panics rather than produce weak shares.
struct OsRandom(SystemRandom);

impl rand_core::TryRng for OsRandom {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for OsRandom {}

impl OsRandom {
    fn fill(&self, dst: &mut [u8]) {
        self.0
            .fill(dst)
            .expect("the operating system's random source failed");
    }
}

/// Check Vault's rules for share parameters.
pub fn check_params(shares: usize, threshold: usize) -> Result<()> {
    if shares == 0 || threshold == 0 {
        return Err(Error::bad(
            "secret_shares and secret_threshold must be at least 1",
        ));
    }
    if threshold > shares {
        return Err(Error::bad(
            "secret_threshold cannot be larger than secret_shares",
        ));
    }
    if shares > 255 {
        return Err(Error::bad("secret_shares cannot be larger than 255"));
    }
    if shares > 1 && threshold == 1 {
        return Err(Error::bad(
            "secret_threshold must be greater than one for multiple shares",
        ));
    }
    Ok(())
}

/// Split `secret` into `shares` shares, any `threshold` of which recover it. With one share the
/// share is the secret itself (Vault does the same).
pub fn split(secret: &[u8], shares: usize, threshold: usize) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    check_params(shares, threshold)?;
    if shares == 1 {
        return Ok(vec![Zeroizing::new(secret.to_vec())]);
    }
    let rng = OsRandom(SystemRandom::new());
    let parts = Gf256::split_bytes(threshold, shares, secret, rng)
        .map_err(|e| Error::Internal(format!("secret sharing failed: {e:?}")))?;
    Ok(parts.into_iter().map(Zeroizing::new).collect())
}

/// Recombine shares. Fewer than the threshold yields a wrong secret, not an error; the caller
/// detects that by an authenticated decryption that fails.
pub fn combine(parts: &[Zeroizing<Vec<u8>>]) -> Result<Zeroizing<Vec<u8>>> {
    if parts.len() == 1 {
        return Ok(parts[0].clone());
    }
    let owned: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
    let secret = Gf256::combine_bytes(&owned);
    // Zeroize the temporary copies whatever the outcome.
    drop(owned.into_iter().map(Zeroizing::new).collect::<Vec<_>>());
    secret
        .map(Zeroizing::new)
        .map_err(|_| Error::bad("the unseal keys provided could not be combined"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_subset_recovers_the_secret() {
        let secret = [7u8; 32];
        let parts = split(&secret, 5, 3).unwrap();
        assert_eq!(parts.len(), 5);
        for subset in [[0, 1, 2], [2, 3, 4], [0, 2, 4]] {
            let chosen: Vec<_> = subset.iter().map(|&i| parts[i].clone()).collect();
            assert_eq!(&combine(&chosen).unwrap()[..], &secret[..]);
        }
    }

    #[test]
    fn fewer_than_threshold_does_not_recover_the_secret() {
        let secret = [9u8; 32];
        let parts = split(&secret, 5, 3).unwrap();
        let recovered = combine(&parts[..2]).unwrap_or_default();
        assert_ne!(&recovered[..], &secret[..]);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(check_params(3, 5).is_err());
        assert!(check_params(0, 0).is_err());
        assert!(check_params(3, 1).is_err());
        assert!(check_params(256, 3).is_err());
        assert!(check_params(1, 1).is_ok());
    }
}
