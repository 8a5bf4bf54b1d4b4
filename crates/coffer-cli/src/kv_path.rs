//! Mapping a user's KV path onto the API path of a version-1 or version-2 KV mount.
//!
//! Users write `secret/app/db` (or `-mount=secret app/db`) for both KV versions. Version 2
//! serves each operation under its own prefix inside the mount (`secret/data/app/db`,
//! `secret/metadata/app/db`, ...), so the CLI first asks `sys/internal/ui/mounts/<path>`
//! which mount owns the path and at which version, exactly as Vault's CLI does.

use serde_json::Value;

/// Where a KV path lives: the mount that owns it, the path inside the mount, and the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvTarget {
    /// Mount path without slashes at either end (`secret`); empty when the server did not say.
    pub mount: String,
    /// Path of the secret relative to the mount, without slashes at either end.
    pub relative: String,
    /// KV engine version, 1 or 2.
    pub version: u8,
}

impl KvTarget {
    /// Interpret the answer of `sys/internal/ui/mounts/<full_path>` for `full_path`. `None`
    /// (the endpoint answered 404, as servers without it do) means a version-1 mount whose
    /// boundary is unknown, which is how Vault treats it.
    pub fn from_mount_info(full_path: &str, mount_info: Option<&Value>) -> Self {
        let full_path = trim_slashes(full_path);
        let data = mount_info.and_then(|info| info.get("data"));
        let mount = data
            .and_then(|d| d.get("path"))
            .and_then(Value::as_str)
            .map(trim_slashes)
            .unwrap_or("");
        let version = data
            .and_then(|d| d.get("options"))
            .and_then(|o| o.get("version"))
            .and_then(|v| match v {
                Value::String(s) => s.parse::<u8>().ok(),
                Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
                _ => None,
            })
            .unwrap_or(1);
        let relative = if mount.is_empty() {
            full_path
        } else if full_path == mount {
            ""
        } else {
            full_path
                .strip_prefix(mount)
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or(full_path)
        };
        Self {
            mount: mount.to_owned(),
            relative: trim_slashes(relative).to_owned(),
            version: if version == 2 { 2 } else { 1 },
        }
    }

    /// Whether the mount is KV version 2.
    pub fn is_v2(&self) -> bool {
        self.version == 2
    }

    /// The path as the user thinks of it: `secret/app/db`.
    pub fn logical_path(&self) -> String {
        join_segments(&[&self.mount, &self.relative])
    }

    /// The API path for a version-2 operation prefix (`data`, `metadata`, `delete`,
    /// `undelete`, `destroy`); for version 1 the logical path, since v1 has no prefixes.
    pub fn api_path(&self, v2_prefix: &str) -> String {
        if self.is_v2() {
            join_segments(&[&self.mount, v2_prefix, &self.relative])
        } else {
            self.logical_path()
        }
    }
}

/// The path whose mount must be looked up, and the full logical path, for a KV command given
/// an optional `-mount` flag and the positional path.
pub fn full_kv_path(mount_flag: Option<&str>, path: &str) -> String {
    match mount_flag {
        Some(mount) => join_segments(&[mount, path]),
        None => trim_slashes(path).to_owned(),
    }
}

/// Join path segments with `/`, dropping empty segments and stray slashes.
pub fn join_segments(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| trim_slashes(s))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

fn trim_slashes(path: &str) -> &str {
    path.trim_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v2_info() -> Value {
        json!({"data": {"path": "secret/", "type": "kv", "options": {"version": "2"}}})
    }

    #[test]
    fn v2_paths_gain_the_operation_prefix_after_the_mount() {
        let target = KvTarget::from_mount_info("secret/app/db", Some(&v2_info()));
        assert!(target.is_v2());
        assert_eq!(target.api_path("data"), "secret/data/app/db");
        assert_eq!(target.api_path("metadata"), "secret/metadata/app/db");
        assert_eq!(target.api_path("destroy"), "secret/destroy/app/db");
        assert_eq!(target.logical_path(), "secret/app/db");
    }

    #[test]
    fn nested_mounts_keep_their_full_mount_path() {
        let info = json!({"data": {"path": "team/kv/", "options": {"version": 2}}});
        let target = KvTarget::from_mount_info("/team/kv/app/", Some(&info));
        assert_eq!(target.api_path("undelete"), "team/kv/undelete/app");
    }

    #[test]
    fn listing_the_mount_root_targets_the_bare_prefix() {
        let target = KvTarget::from_mount_info("secret/", Some(&v2_info()));
        assert_eq!(target.api_path("metadata"), "secret/metadata");
    }

    #[test]
    fn v1_mounts_and_unknown_mounts_use_the_path_unchanged() {
        let v1 = json!({"data": {"path": "kv/", "options": null}});
        assert_eq!(
            KvTarget::from_mount_info("kv/app", Some(&v1)).api_path("data"),
            "kv/app"
        );
        let unknown = KvTarget::from_mount_info("kv/app", None);
        assert!(!unknown.is_v2());
        assert_eq!(unknown.api_path("data"), "kv/app");
    }

    #[test]
    fn the_mount_flag_prefixes_the_positional_path() {
        assert_eq!(full_kv_path(Some("secret"), "app/db"), "secret/app/db");
        assert_eq!(full_kv_path(Some("/secret/"), "/app"), "secret/app");
        assert_eq!(full_kv_path(None, "secret/app/"), "secret/app");
    }
}
