//! The storage barrier. Invariants kept here:
//!
//! 1. Nothing reaches physical storage in plaintext except `core/seal-config` (share counts).
//! 2. Every entry is AES-256-GCM under a numbered *key term*, with a fresh random 96-bit nonce,
//!    and its storage path as associated data: a blob copied to another path fails to decrypt.
//! 3. The keyring (all terms) is stored encrypted under the root key; the root key is stored
//!    encrypted under the unseal key, which exists only as Shamir shares held by operators.
//!    Rekey re-encrypts only the root key; rotation adds a term and re-encrypts the keyring.
//! 4. Old terms are kept, so entries written under them still decrypt; new writes use the
//!    newest term.
//!
//! 5. A write is durable when it returns, except inside [`with_unsynced_writes`]: there it is
//!    atomic and visible but durable only after [`Barrier::sync`], which the scope's owner
//!    calls before it acknowledges anything.
//!
//! Entry format: `[version=1][term: u32 BE][nonce: 12][ciphertext || tag: 16]`.

use chrono::{DateTime, Utc};
use coffer_sdk::view::{list_children, View, ViewOp};
use coffer_sdk::{Error, Result};
use coffer_storage::{BatchOp, Storage};
use parking_lot::RwLock;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

const ENTRY_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Physical path of the keyring, encrypted under the root key.
pub const KEYRING_PATH: &str = "core/keyring";
/// Physical path of the root key, encrypted under the unseal key.
pub const ROOT_KEY_PATH: &str = "core/root-key";

tokio::task_local! {
    /// Present while a bulk operation runs whose caller acknowledges only after
    /// [`Barrier::sync`] (revoke-prefix, an expiry pass): its writes commit atomically, one
    /// by one, but share a single fsync at the end instead of waiting for one each.
    static UNSYNCED_WRITES: ();
}

/// Run `work` with its barrier writes unsynced (see [`UNSYNCED_WRITES`]). The caller must
/// call [`Barrier::sync`] after it and before acknowledging the work. Tasks spawned inside
/// `work` do not inherit the scope.
pub async fn with_unsynced_writes<F: std::future::Future>(work: F) -> F::Output {
    UNSYNCED_WRITES.scope((), work).await
}

fn writes_unsynced() -> bool {
    UNSYNCED_WRITES.try_with(|_| ()).is_ok()
}

/// A 256-bit key that wipes itself.
pub type Key = Zeroizing<[u8; 32]>;

/// Fresh random key.
pub fn random_key() -> Key {
    let mut key = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut key[..])
        .expect("OS random source failed");
    key
}

/// Fresh random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    fill_random(&mut out);
    out
}

/// Bytes the random pool fetches from the OS at a time.
const RANDOM_POOL_BYTES: usize = 4096;

/// OS randomness fetched a page at a time, per thread.
struct RandomPool {
    bytes: Zeroizing<[u8; RANDOM_POOL_BYTES]>,
    /// Bytes from the start already handed out (and wiped).
    used: usize,
}

thread_local! {
    static RANDOM_POOL: std::cell::RefCell<RandomPool> = std::cell::RefCell::new(RandomPool {
        bytes: Zeroizing::new([0u8; RANDOM_POOL_BYTES]),
        used: RANDOM_POOL_BYTES,
    });
}

/// Fill `out` with bytes from the OS random source. Small requests (nonces, token ids, request
/// ids: several per request) come from a per-thread page of OS randomness, so they cost a copy
/// instead of a `getrandom` system call each; every byte is handed out once and wiped from the
/// page as it goes. Large requests go to the OS directly.
pub fn fill_random(out: &mut [u8]) {
    if out.len() > RANDOM_POOL_BYTES / 8 {
        SystemRandom::new()
            .fill(out)
            .expect("OS random source failed");
        return;
    }
    RANDOM_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if RANDOM_POOL_BYTES - pool.used < out.len() {
            SystemRandom::new()
                .fill(&mut pool.bytes[..])
                .expect("OS random source failed");
            pool.used = 0;
        }
        let start = pool.used;
        let taken = &mut pool.bytes[start..start + out.len()];
        out.copy_from_slice(taken);
        taken.zeroize();
        pool.used += out.len();
    });
}

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte key"))
}

/// Encrypt `plaintext` under `key` with `aad`, as one self-contained blob (term-tagged).
pub fn seal_blob(key: &LessSafeKey, term: u32, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.push(ENTRY_VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let mut body = out.split_off(HEADER_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .expect("AES-GCM seal cannot fail for in-range lengths");
    out.extend_from_slice(&body);
    body.zeroize();
    out
}

/// The term a blob was written under, if the blob is well-formed.
pub fn blob_term(blob: &[u8]) -> Option<u32> {
    if blob.len() < HEADER_LEN + TAG_LEN || blob[0] != ENTRY_VERSION {
        return None;
    }
    Some(u32::from_be_bytes(blob[1..5].try_into().ok()?))
}

/// Decrypt a blob. Any malformed or tampered input is an error, never a panic.
pub fn open_blob(key: &LessSafeKey, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    // Copied into a buffer that is wiped however the opening ends: this opens key material.
    let mut body = Zeroizing::new(blob.to_vec());
    open_in_place(key, aad, &mut body)?;
    Ok(body)
}

/// Decrypt the blob in `buf` where it lies: `buf` ends up holding the plaintext alone.
fn open_in_place(key: &LessSafeKey, aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    blob_term(buf).ok_or_else(|| Error::Internal("malformed encrypted entry".into()))?;
    let nonce: [u8; NONCE_LEN] = buf[5..HEADER_LEN].try_into().expect("length checked");
    let plain_len = key
        .open_within(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            buf,
            HEADER_LEN..,
        )
        .map_err(|_| {
            Error::Internal(
                "entry failed authentication (wrong key, wrong path, or tampered)".into(),
            )
        })?
        .len();
    buf.truncate(plain_len);
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    key: String,
    installed: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    active: u32,
    terms: Vec<StoredTerm>,
}

struct Term {
    raw: Key,
    cipher: LessSafeKey,
    installed: DateTime<Utc>,
}

/// All key terms, the newest active.
pub struct Keyring {
    terms: BTreeMap<u32, Term>,
    active: u32,
}

impl Keyring {
    fn new_with_first_term(now: DateTime<Utc>) -> Keyring {
        let raw = random_key();
        let cipher = aead_key(&raw);
        let mut terms = BTreeMap::new();
        terms.insert(
            1,
            Term {
                raw,
                cipher,
                installed: now,
            },
        );
        Keyring { terms, active: 1 }
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        use base64::Engine;
        let stored = StoredKeyring {
            active: self.active,
            terms: self
                .terms
                .iter()
                .map(|(&term, t)| StoredTerm {
                    term,
                    key: base64::engine::general_purpose::STANDARD.encode(&t.raw[..]),
                    installed: t.installed,
                })
                .collect(),
        };
        let json = Zeroizing::new(serde_json::to_vec(&stored).expect("keyring encodes"));
        for mut t in stored.terms {
            t.key.zeroize();
        }
        json
    }

    fn decode(bytes: &[u8]) -> Result<Keyring> {
        use base64::Engine;
        let mut stored: StoredKeyring = serde_json::from_slice(bytes)
            .map_err(|_| Error::Internal("keyring is corrupt".into()))?;
        let mut terms = BTreeMap::new();
        for t in stored.terms.iter_mut() {
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(&t.key)
                    .map_err(|_| Error::Internal("keyring is corrupt".into()))?,
            );
            t.key.zeroize();
            let mut raw = Zeroizing::new([0u8; 32]);
            if decoded.len() != 32 {
                return Err(Error::Internal("keyring is corrupt".into()));
            }
            raw.copy_from_slice(&decoded);
            let cipher = aead_key(&raw);
            terms.insert(
                t.term,
                Term {
                    raw,
                    cipher,
                    installed: t.installed,
                },
            );
        }
        if !terms.contains_key(&stored.active) {
            return Err(Error::Internal("keyring has no active term".into()));
        }
        Ok(Keyring {
            terms,
            active: stored.active,
        })
    }
}

/// Status of the active key term, for `sys/key-status`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: String,
}

struct Unsealed {
    keyring: Keyring,
    root_key: Key,
}

/// The encryption barrier over physical storage.
pub struct Barrier {
    storage: Arc<dyn Storage>,
    state: RwLock<Option<Arc<Unsealed>>>,
    /// Whether `state` is `None`, kept beside it (written under its write lock) so that the
    /// check every request makes reads a flag instead of writing the lock's shared counter.
    sealed: AtomicBool,
}

fn storage_err(e: coffer_storage::StorageError) -> Error {
    tracing::error!(error = %e, "storage failure");
    Error::Internal("storage failure".into())
}

impl Barrier {
    /// A sealed barrier over `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Barrier {
        Barrier {
            storage,
            state: RwLock::new(None),
            sealed: AtomicBool::new(true),
        }
    }

    /// The physical storage (for seal configuration and diagnostics only).
    pub fn physical(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Whether the keyring is loaded.
    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Create the keyring and root key, store them wrapped, and unseal. Returns the root key's
    /// wrapping (unseal) key for the caller to split into shares.
    pub async fn initialize(&self, now: DateTime<Utc>) -> Result<Key> {
        let unseal_key = random_key();
        let root_key = random_key();
        let keyring = Keyring::new_with_first_term(now);
        let wrapped_keyring = seal_blob(
            &aead_key(&root_key),
            0,
            KEYRING_PATH.as_bytes(),
            &keyring.encode(),
        );
        let wrapped_root = seal_blob(
            &aead_key(&unseal_key),
            0,
            ROOT_KEY_PATH.as_bytes(),
            &root_key[..],
        );
        self.storage
            .batch(vec![
                BatchOp::Put {
                    key: ROOT_KEY_PATH.into(),
                    value: wrapped_root,
                },
                BatchOp::Put {
                    key: KEYRING_PATH.into(),
                    value: wrapped_keyring,
                },
            ])
            .await
            .map_err(storage_err)?;
        self.set_state(Some(Arc::new(Unsealed { keyring, root_key })));
        Ok(unseal_key)
    }

    /// Unwrap the root key with `unseal_key`, then the keyring with the root key.
    pub async fn unseal(&self, unseal_key: &[u8]) -> Result<()> {
        let unseal_key: &[u8; 32] = unseal_key
            .try_into()
            .map_err(|_| Error::bad("the unseal keys provided do not reconstruct a valid key"))?;
        let wrapped_root = self
            .storage
            .get(ROOT_KEY_PATH)
            .await
            .map_err(storage_err)?
            .ok_or(Error::NotInitialized)?;
        let root_plain = open_blob(
            &aead_key(unseal_key),
            ROOT_KEY_PATH.as_bytes(),
            &wrapped_root,
        )
        .map_err(|_| Error::bad("the unseal keys provided are not valid for this server"))?;
        let mut root_key = Zeroizing::new([0u8; 32]);
        if root_plain.len() != 32 {
            return Err(Error::Internal("root key is corrupt".into()));
        }
        root_key.copy_from_slice(&root_plain);
        let wrapped_keyring = self
            .storage
            .get(KEYRING_PATH)
            .await
            .map_err(storage_err)?
            .ok_or(Error::NotInitialized)?;
        let keyring_plain = open_blob(
            &aead_key(&root_key),
            KEYRING_PATH.as_bytes(),
            &wrapped_keyring,
        )?;
        let keyring = Keyring::decode(&keyring_plain)?;
        self.set_state(Some(Arc::new(Unsealed { keyring, root_key })));
        Ok(())
    }

    /// Drop all key material from memory.
    pub fn seal(&self) {
        self.set_state(None);
    }

    /// Replace the keyring (or drop it), keeping the sealed flag in step.
    fn set_state(&self, state: Option<Arc<Unsealed>>) {
        let mut current = self.state.write();
        self.sealed.store(state.is_none(), Ordering::Release);
        *current = state;
    }

    fn unsealed(&self) -> Result<Arc<Unsealed>> {
        self.state.read().clone().ok_or(Error::Sealed)
    }

    /// Wrap the current root key under a new unseal key (rekey). Returns the new unseal key.
    pub async fn rewrap_root_key(&self) -> Result<Key> {
        let state = self.unsealed()?;
        let unseal_key = random_key();
        let wrapped_root = seal_blob(
            &aead_key(&unseal_key),
            0,
            ROOT_KEY_PATH.as_bytes(),
            &state.root_key[..],
        );
        self.storage
            .put(ROOT_KEY_PATH, wrapped_root)
            .await
            .map_err(storage_err)?;
        Ok(unseal_key)
    }

    /// Add a new key term and make it active (`sys/rotate`).
    pub async fn rotate(&self, now: DateTime<Utc>) -> Result<KeyStatus> {
        let state = self.unsealed()?;
        let mut terms = BTreeMap::new();
        for (&n, t) in &state.keyring.terms {
            terms.insert(
                n,
                Term {
                    raw: t.raw.clone(),
                    cipher: aead_key(&t.raw),
                    installed: t.installed,
                },
            );
        }
        let next = state.keyring.active + 1;
        let raw = random_key();
        terms.insert(
            next,
            Term {
                cipher: aead_key(&raw),
                raw,
                installed: now,
            },
        );
        let keyring = Keyring {
            terms,
            active: next,
        };
        let wrapped = seal_blob(
            &aead_key(&state.root_key),
            0,
            KEYRING_PATH.as_bytes(),
            &keyring.encode(),
        );
        self.storage
            .put(KEYRING_PATH, wrapped)
            .await
            .map_err(storage_err)?;
        let status = KeyStatus {
            term: next,
            install_time: coffer_sdk::clock::format_time(now),
        };
        self.set_state(Some(Arc::new(Unsealed {
            keyring,
            root_key: state.root_key.clone(),
        })));
        Ok(status)
    }

    /// The active term.
    pub fn key_status(&self) -> Result<KeyStatus> {
        let state = self.unsealed()?;
        let term = &state.keyring.terms[&state.keyring.active];
        Ok(KeyStatus {
            term: state.keyring.active,
            install_time: coffer_sdk::clock::format_time(term.installed),
        })
    }

    /// Encrypt `plaintext` for `path` under the active term.
    pub fn encrypt(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let state = self.unsealed()?;
        let term = &state.keyring.terms[&state.keyring.active];
        Ok(seal_blob(
            &term.cipher,
            state.keyring.active,
            path.as_bytes(),
            plaintext,
        ))
    }

    /// Decrypt a blob stored at `path`.
    /// Decrypt the blob stored at `path` in place: the ciphertext read from storage becomes the
    /// plaintext, with no copy (each copy was an allocation and a pass over the value).
    pub fn decrypt(&self, path: &str, mut blob: Vec<u8>) -> Result<Vec<u8>> {
        // Borrowed under the read lock, not cloned out: a clone and its drop would write the
        // keyring's shared reference count on every read.
        let state = self.state.read();
        let state = state.as_ref().ok_or(Error::Sealed)?;
        let term_no =
            blob_term(&blob).ok_or_else(|| Error::Internal("malformed encrypted entry".into()))?;
        let term = state.keyring.terms.get(&term_no).ok_or_else(|| {
            Error::Internal(format!("entry written under unknown key term {term_no}"))
        })?;
        open_in_place(&term.cipher, path.as_bytes(), &mut blob)?;
        Ok(blob)
    }

    /// Read and decrypt.
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        match self.storage.get(path).await.map_err(storage_err)? {
            None => Ok(None),
            Some(blob) => self.decrypt(path, blob).map(Some),
        }
    }

    /// Encrypt and write, durably.
    pub async fn put(&self, path: &str, value: &[u8]) -> Result<()> {
        let blob = self.encrypt(path, value)?;
        self.write(vec![BatchOp::Put {
            key: path.to_string(),
            value: blob,
        }])
        .await
    }

    /// Delete.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.unsealed()?;
        self.write(vec![BatchOp::Delete {
            key: path.to_string(),
        }])
        .await
    }

    /// Make every write so far durable; see [`with_unsynced_writes`].
    pub async fn sync(&self) -> Result<()> {
        self.storage.sync().await.map_err(storage_err)
    }

    /// LIST semantics over the physical keys below `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.unsealed()?;
        self.storage.list(prefix).await.map_err(storage_err)
    }

    /// Every key below `prefix` (full keys).
    pub async fn scan(&self, prefix: &str) -> Result<Vec<String>> {
        self.unsealed()?;
        self.storage.scan(prefix).await.map_err(storage_err)
    }

    /// A page of full keys below `prefix`, after `after`, in key order.
    pub async fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.unsealed()?;
        self.storage
            .scan_page(prefix, after, limit)
            .await
            .map_err(storage_err)
    }

    /// Encrypt every put and apply all ops atomically.
    pub async fn batch(&self, ops: Vec<ViewOp>) -> Result<()> {
        let mut physical = Vec::with_capacity(ops.len());
        for op in ops {
            physical.push(match op {
                ViewOp::Put { key, value } => {
                    let blob = self.encrypt(&key, &value)?;
                    BatchOp::Put { key, value: blob }
                }
                ViewOp::Delete { key } => BatchOp::Delete { key },
            });
        }
        self.write(physical).await
    }

    /// Apply already-encrypted ops: durably, or unsynced inside [`with_unsynced_writes`].
    async fn write(&self, physical: Vec<BatchOp>) -> Result<()> {
        if writes_unsynced() {
            self.storage.batch_unsynced(physical).await
        } else {
            self.storage.batch(physical).await
        }
        .map_err(storage_err)
    }
}

/// A prefix of the barrier: what one mount (or one subsystem) may read and write.
pub struct BarrierView {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl BarrierView {
    /// The view of `prefix` (must end with `/`).
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> BarrierView {
        let prefix = prefix.into();
        debug_assert!(prefix.ends_with('/'));
        BarrierView { barrier, prefix }
    }

    /// The physical prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The barrier below this view, for batches that must span views atomically.
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// Ops on this view's keys rewritten to the barrier's absolute keys.
    pub fn absolute(&self, ops: Vec<ViewOp>) -> Vec<ViewOp> {
        ops.into_iter()
            .map(|op| match op {
                ViewOp::Put { key, value } => ViewOp::Put {
                    key: self.key(&key),
                    value,
                },
                ViewOp::Delete { key } => ViewOp::Delete {
                    key: self.key(&key),
                },
            })
            .collect()
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    /// Delete every entry in this view (unmount).
    pub async fn clear(&self) -> Result<()> {
        let keys = self.barrier.scan(&self.prefix).await?;
        for chunk in keys.chunks(1000) {
            self.barrier
                .batch(
                    chunk
                        .iter()
                        .map(|k| ViewOp::Delete { key: k.clone() })
                        .collect(),
                )
                .await?;
        }
        Ok(())
    }

    /// Pages of at most `page_size` relative keys below `prefix`, in key order, fetched one at
    /// a time so a prefix of millions of keys is never held in memory at once.
    pub fn pages(&self, prefix: impl Into<String>, page_size: usize) -> KeyPages<'_> {
        KeyPages {
            view: self,
            prefix: prefix.into(),
            after: None,
            page_size,
            done: false,
        }
    }

    /// A page of relative keys below `prefix`, after the relative key `after`, in key order.
    pub async fn scan_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let after = after.map(|a| self.key(a));
        let keys = self
            .barrier
            .scan_page(&self.key(prefix), after.as_deref(), limit)
            .await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(String::from))
            .collect())
    }
}

/// Iterator-like paging over a view's keys; see [`BarrierView::pages`].
pub struct KeyPages<'a> {
    view: &'a BarrierView,
    prefix: String,
    after: Option<String>,
    page_size: usize,
    done: bool,
}

impl KeyPages<'_> {
    /// The next page, or `None` when the prefix is exhausted.
    pub async fn next(&mut self) -> Result<Option<Vec<String>>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .view
            .scan_page(&self.prefix, self.after.as_deref(), self.page_size)
            .await?;
        match page.last() {
            None => {
                self.done = true;
                Ok(None)
            }
            Some(last) => {
                self.after = Some(last.clone());
                Ok(Some(page))
            }
        }
    }
}

#[async_trait::async_trait]
impl View for BarrierView {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.barrier.get(&self.key(key)).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.barrier.put(&self.key(key), &value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.barrier.delete(&self.key(key)).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let full = self.key(prefix);
        let keys = self.barrier.list(&full).await?;
        // Storage already answers with children; normalise in case a backend returns full keys.
        if keys
            .iter()
            .any(|k| k.starts_with(&full) && !full.is_empty())
        {
            return Ok(list_children(keys.iter().map(String::as_str), &full));
        }
        Ok(keys)
    }
    async fn batch(&self, ops: Vec<ViewOp>) -> Result<()> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                ViewOp::Put { key, value } => ViewOp::Put {
                    key: self.key(&key),
                    value,
                },
                ViewOp::Delete { key } => ViewOp::Delete {
                    key: self.key(&key),
                },
            })
            .collect();
        self.barrier.batch(ops).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_storage::MemoryStorage;

    async fn unsealed_barrier() -> (Arc<Barrier>, Key) {
        let barrier = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
        let key = barrier.initialize(Utc::now()).await.unwrap();
        (barrier, key)
    }

    #[tokio::test]
    async fn entries_round_trip_and_are_ciphertext_on_disk() {
        let (barrier, _) = unsealed_barrier().await;
        barrier
            .put("logical/x/secret", b"hunter2-plaintext")
            .await
            .unwrap();
        assert_eq!(
            barrier.get("logical/x/secret").await.unwrap().unwrap(),
            b"hunter2-plaintext"
        );
        let raw = barrier
            .physical()
            .get("logical/x/secret")
            .await
            .unwrap()
            .unwrap();
        assert!(!raw.windows(7).any(|w| w == b"hunter2"));
    }

    #[tokio::test]
    async fn a_blob_copied_to_another_path_fails_to_decrypt() {
        let (barrier, _) = unsealed_barrier().await;
        barrier.put("a/one", b"value").await.unwrap();
        let raw = barrier.physical().get("a/one").await.unwrap().unwrap();
        barrier.physical().put("a/two", raw).await.unwrap();
        assert!(barrier.get("a/two").await.is_err());
    }

    #[tokio::test]
    async fn a_changed_or_cut_blob_fails_to_decrypt_and_values_of_every_length_round_trip() {
        let (barrier, _) = unsealed_barrier().await;
        // Empty, shorter than a tag, around the header's length, and longer than a page.
        for len in [0usize, 1, 15, 16, 17, 21, 100, 5000] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            barrier.put("a/v", &value).await.unwrap();
            assert_eq!(barrier.get("a/v").await.unwrap().unwrap(), value, "{len}");
            let raw = barrier.physical().get("a/v").await.unwrap().unwrap();
            // Every byte after the version and term (nonce, ciphertext, tag) is authenticated.
            for at in 5..raw.len() {
                let mut changed = raw.clone();
                changed[at] ^= 0x01;
                barrier.physical().put("a/v", changed).await.unwrap();
                assert!(barrier.get("a/v").await.is_err(), "{len} byte {at}");
            }
            for cut in [1, TAG_LEN, raw.len() - HEADER_LEN] {
                barrier
                    .physical()
                    .put("a/v", raw[..raw.len() - cut].to_vec())
                    .await
                    .unwrap();
                assert!(barrier.get("a/v").await.is_err(), "{len} cut {cut}");
            }
        }
    }

    #[tokio::test]
    async fn rotation_adds_a_term_and_old_entries_still_decrypt() {
        let (barrier, _) = unsealed_barrier().await;
        barrier.put("old", b"v1").await.unwrap();
        let status = barrier.rotate(Utc::now()).await.unwrap();
        assert_eq!(status.term, 2);
        barrier.put("new", b"v2").await.unwrap();
        assert_eq!(
            blob_term(&barrier.physical().get("new").await.unwrap().unwrap()),
            Some(2)
        );
        assert_eq!(
            blob_term(&barrier.physical().get("old").await.unwrap().unwrap()),
            Some(1)
        );
        assert_eq!(barrier.get("old").await.unwrap().unwrap(), b"v1");
    }

    #[tokio::test]
    async fn sealing_forgets_keys_and_unseal_with_the_right_key_restores_them() {
        let (barrier, key) = unsealed_barrier().await;
        barrier.put("k", b"v").await.unwrap();
        barrier.rotate(Utc::now()).await.unwrap();
        barrier.seal();
        assert!(matches!(barrier.get("k").await, Err(Error::Sealed)));
        assert!(barrier.unseal(&[0u8; 32]).await.is_err());
        assert!(barrier.is_sealed());
        barrier.unseal(&key[..]).await.unwrap();
        assert_eq!(barrier.get("k").await.unwrap().unwrap(), b"v");
        assert_eq!(
            barrier.key_status().unwrap().term,
            2,
            "rotation survives seal/unseal"
        );
    }

    #[tokio::test]
    async fn rekey_makes_the_old_unseal_key_useless() {
        let (barrier, old) = unsealed_barrier().await;
        let new = barrier.rewrap_root_key().await.unwrap();
        barrier.seal();
        assert!(barrier.unseal(&old[..]).await.is_err());
        barrier.unseal(&new[..]).await.unwrap();
    }

    #[test]
    fn arbitrary_bytes_never_panic_when_decoded() {
        let key = aead_key(&[1u8; 32]);
        for len in 0..64 {
            let junk = vec![1u8; len];
            let _ = open_blob(&key, b"p", &junk);
        }
    }
}

#[cfg(test)]
mod random_pool_tests {
    use super::fill_random;
    use std::collections::HashSet;

    #[test]
    fn pooled_randomness_never_repeats_and_crosses_page_ends() {
        // 12-byte nonces across several refills of the 4 KiB page: all distinct, none zero.
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let mut nonce = [0u8; 12];
            fill_random(&mut nonce);
            assert_ne!(nonce, [0u8; 12]);
            assert!(seen.insert(nonce), "a nonce came out twice");
        }
        // Requests of odd sizes and larger than the pooled limit still fill completely.
        for len in [1usize, 13, 511, 512, 513, 5000] {
            let mut a = vec![0u8; len];
            let mut b = vec![0u8; len];
            fill_random(&mut a);
            fill_random(&mut b);
            assert_ne!(a, b, "two draws of {len} bytes were equal");
        }
    }
}
