//! Key-space rules shared by every backend: size limits and Vault's LIST semantics.
//!
//! Both backends validate with [`validate_ops`] *before* applying anything, which is what
//! makes a rejected batch leave no trace and lets the group committer isolate a bad request
//! without touching its neighbours.

use crate::{BatchOp, StorageError};

/// Longest key accepted, in bytes. Generous for `/`-separated paths, and small enough that a
/// key never dominates a database page.
pub const MAX_KEY_BYTES: usize = 8 * 1024;

/// Largest value accepted, in bytes. Well below redb's own 3 GiB limit, so an oversized value
/// is rejected up front rather than failing inside a shared commit.
pub const MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;

/// Check one key against the limits.
pub(crate) fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

/// Check every op of a batch; returns the number of key and value bytes it carries.
pub(crate) fn validate_ops(ops: &[BatchOp]) -> Result<usize, StorageError> {
    let mut bytes = 0usize;
    for op in ops {
        validate_key(op.key())?;
        bytes = bytes.saturating_add(op.key().len());
        if let BatchOp::Put { value, .. } = op {
            if value.len() > MAX_VALUE_BYTES {
                return Err(StorageError::ValueTooLarge {
                    len: value.len(),
                    max: MAX_VALUE_BYTES,
                });
            }
            bytes = bytes.saturating_add(value.len());
        }
    }
    Ok(bytes)
}

/// Vault's physical LIST over a sorted key space.
///
/// `first_key_from(cursor)` must return the smallest stored key `>= cursor`. Instead of walking
/// every key of a large sub-folder, the walk jumps past it: all keys under `prefix + "seg/"`
/// sort before `prefix + "seg0"` (`'0'` is the byte after `'/'`). The output is sorted because a
/// folder entry `seg/` is itself a prefix of every key it stands for.
pub(crate) fn list_children<E>(
    prefix: &str,
    mut first_key_from: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Vec<String>, E> {
    let mut children = Vec::new();
    let mut cursor = prefix.to_owned();
    while let Some(key) = first_key_from(&cursor)? {
        let Some(rest) = key.strip_prefix(prefix) else {
            break;
        };
        match rest.find('/') {
            Some(slash) => {
                let folder = &rest[..=slash];
                children.push(folder.to_owned());
                cursor = format!("{prefix}{}0", &rest[..slash]);
            }
            None => {
                children.push(rest.to_owned());
                // The smallest string strictly greater than `key`.
                cursor = key;
                cursor.push('\0');
            }
        }
    }
    Ok(children)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::convert::Infallible;

    fn list(keys: &[&str], prefix: &str) -> Vec<String> {
        let set: BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
        list_children::<Infallible>(prefix, |from| {
            Ok(set.range(from.to_owned()..).next().cloned())
        })
        .unwrap()
    }

    #[test]
    fn folder_jump_does_not_skip_siblings_sorting_between_slash_and_zero() {
        // '.' (0x2E) sorts between '-' and '/', and "a/" entries must still come out once.
        let keys = ["a-1", "a.b", "a/x", "a/y/z", "a0", "a1/q", "b"];
        assert_eq!(list(&keys, ""), ["a-1", "a.b", "a/", "a0", "a1/", "b"]);
    }

    #[test]
    fn listing_stops_at_the_end_of_the_prefix() {
        let keys = ["x/1", "x/2/3", "y/1"];
        assert_eq!(list(&keys, "x/"), ["1", "2/"]);
        assert!(list(&keys, "z/").is_empty());
    }

    #[test]
    fn oversized_key_and_value_are_rejected_with_lengths_only() {
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        let err = validate_ops(&[BatchOp::Delete { key: long_key }]).unwrap_err();
        assert!(matches!(err, StorageError::KeyTooLarge { len, .. } if len == MAX_KEY_BYTES + 1));
        assert!(!err.to_string().contains("kkk"));
        let ok = validate_ops(&[BatchOp::Put {
            key: "k".into(),
            value: vec![0; 10],
        }]);
        assert_eq!(ok.unwrap(), 11);
    }
}
