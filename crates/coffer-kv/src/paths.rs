//! Secret paths as users name them. Every storage key is built from a validated path, so a
//! path can never climb out of its key family (`..`), alias another (`a//b`, `a/./b`), or
//! collide with a folder (`a/`).

use coffer_sdk::{Error, Result};

/// A secret's path: non-empty, with no empty, `.` or `..` segments (so no leading, trailing
/// or doubled `/` either).
pub(crate) fn secret_path(raw: &str) -> Result<&str> {
    if raw.is_empty() {
        return Err(Error::bad("missing path"));
    }
    if raw
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(Error::bad(
            "invalid path: empty, \".\" and \"..\" segments are not allowed",
        ));
    }
    Ok(raw)
}

/// The folder a LIST names, as a storage prefix: `""` for the root, otherwise the validated
/// path with exactly one trailing `/` (Vault lists `app` and `app/` alike).
pub(crate) fn folder_prefix(raw: &str) -> Result<String> {
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let mut prefix = secret_path(trimmed)?.to_string();
    prefix.push('/');
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_nested_paths_are_accepted() {
        assert_eq!(secret_path("app/db/creds").unwrap(), "app/db/creds");
        assert_eq!(secret_path("a.b/..c/d..").unwrap(), "a.b/..c/d..");
    }

    #[test]
    fn traversal_and_empty_segments_are_bad_requests() {
        for bad in ["", "..", "a/../b", "a//b", "/a", "a/", "./a", "a/."] {
            let err = secret_path(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn folders_get_one_trailing_slash() {
        assert_eq!(folder_prefix("").unwrap(), "");
        assert_eq!(folder_prefix("/").unwrap(), "");
        assert_eq!(folder_prefix("app").unwrap(), "app/");
        assert_eq!(folder_prefix("app/x/").unwrap(), "app/x/");
        assert!(folder_prefix("app/../x/").is_err());
    }
}
