//! What KV v2 keeps in its mount's view, and where.
//!
//! Layout (keys relative to the mount; values are JSON, encrypted below the view):
//!
//! | key               | value                                             |
//! |-------------------|---------------------------------------------------|
//! | `config`          | [`MountConfig`]                                   |
//! | `meta/<path>`     | [`KeyMetadata`]: versions, settings, custom data  |
//! | `ver/<n>/<path>`  | the secret's JSON object as written in version n  |
//!
//! The version number comes *before* the path, so every version key names exactly one
//! (path, version) pair whatever the path contains, and `meta/` holds nothing but metadata,
//! which makes `LIST metadata/...` a plain listing of it.
//!
//! Crash consistency: a new version's data, its metadata and the pruning of old versions are
//! written in one [`coffer_sdk::view::View::batch`], so metadata never points at missing data.

use chrono::serde::{ts_nanoseconds, ts_nanoseconds_option};
use chrono::{DateTime, Utc};
use coffer_sdk::clock::format_time;
use coffer_sdk::duration::format_go;
use coffer_sdk::view::{self, View};
use coffer_sdk::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Key of the mount-wide configuration.
pub(crate) const CONFIG_KEY: &str = "config";

/// How many versions a key keeps when neither the key nor the mount says (Vault's default).
pub(crate) const DEFAULT_MAX_VERSIONS: u64 = 10;

/// Storage key of a path's metadata.
pub(crate) fn meta_key(path: &str) -> String {
    format!("meta/{path}")
}

/// Storage prefix listing the metadata under a folder prefix (`""` or `"app/"`).
pub(crate) fn meta_folder(prefix: &str) -> String {
    format!("meta/{prefix}")
}

/// Storage key of one version's data.
pub(crate) fn version_key(path: &str, version: u64) -> String {
    // Built by hand rather than with `format!`, whose machinery was ~2% of a KV read.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = version;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let digits = std::str::from_utf8(&digits[start..]).expect("ASCII digits");
    let mut key = String::with_capacity(5 + digits.len() + path.len());
    key.push_str("ver/");
    key.push_str(digits);
    key.push('/');
    key.push_str(path);
    key
}

/// The mount's `config` endpoint settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct MountConfig {
    /// Versions kept per key; 0 means the default of 10.
    #[serde(default)]
    pub max_versions: u32,
    /// Every write to this mount must carry `options.cas`.
    #[serde(default)]
    pub cas_required: bool,
    /// Versions read as deleted this long after creation; zero means never.
    #[serde(default)]
    pub delete_version_after: Duration,
}

impl MountConfig {
    /// The stored configuration, or the defaults when none was written.
    pub(crate) async fn load(view: &dyn View) -> Result<MountConfig> {
        Ok(view::get_json(view, CONFIG_KEY).await?.unwrap_or_default())
    }

    /// The `config` read answer.
    pub(crate) fn to_response(&self) -> Value {
        json!({
            "cas_required": self.cas_required,
            "delete_version_after": format_go(self.delete_version_after),
            "max_versions": self.max_versions,
        })
    }
}

/// One version's bookkeeping (its data lives at [`version_key`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VersionMetadata {
    #[serde(with = "ts_nanoseconds")]
    pub created_time: DateTime<Utc>,
    /// `created_time` as RFC 3339 text, written at the first read that needs it: the metadata
    /// is remembered between reads, and formatting the time was ~2% of every KV read.
    #[serde(skip)]
    created_text: std::sync::OnceLock<String>,
    /// The version's `metadata` block of a data read, rendered at the first read that needs
    /// it (see [`VersionMetadata::rendered_response`]).
    #[serde(skip)]
    rendered: RenderedBlock,
    /// When the version stops being readable: set by soft delete, or at write time from
    /// `delete_version_after` (then in the future until it passes).
    #[serde(with = "ts_nanoseconds_option", default)]
    pub deletion_time: Option<DateTime<Utc>>,
    /// The data was removed for good.
    #[serde(default)]
    pub destroyed: bool,
}

impl VersionMetadata {
    /// Soft-deleted (or expired) as of `now`.
    pub(crate) fn is_deleted(&self, now: DateTime<Utc>) -> bool {
        self.deletion_time.is_some_and(|t| t <= now)
    }

    /// Whether `now` a read of this version returns data.
    pub(crate) fn is_readable(&self, now: DateTime<Utc>) -> bool {
        !self.destroyed && !self.is_deleted(now)
    }

    fn created_text(&self) -> &str {
        self.created_text
            .get_or_init(|| format_time(self.created_time))
    }

    fn deletion_time_text(&self) -> String {
        self.deletion_time.map(format_time).unwrap_or_default()
    }

    /// [`VersionMetadata::to_response`] as JSON text, rendered once: data reads copy it into
    /// their answer. Only for this version's own number and its key's custom metadata (what
    /// the remembered [`KeyMetadata`] holding it has), which cannot change under it: a change
    /// is made to a copy, and a copy starts without the text.
    pub(crate) fn rendered_response(
        &self,
        version: u64,
        custom_metadata: &Option<CustomMetadata>,
    ) -> &[u8] {
        self.rendered.0.get_or_init(|| {
            serde_json::to_vec(&self.to_response(version, custom_metadata))
                .expect("a JSON map encodes")
        })
    }

    /// The `metadata` block of data reads/writes: `{created_time, custom_metadata,
    /// deletion_time, destroyed, version}`.
    pub(crate) fn to_response(
        &self,
        version: u64,
        custom_metadata: &Option<CustomMetadata>,
    ) -> Map<String, Value> {
        let custom_metadata = match custom_metadata {
            Some(custom) => Value::Object(
                custom
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
            None => Value::Null,
        };
        let mut out = Map::with_capacity(5);
        out.insert(
            "created_time".into(),
            Value::String(self.created_text().to_string()),
        );
        out.insert("custom_metadata".into(), custom_metadata);
        out.insert(
            "deletion_time".into(),
            Value::String(self.deletion_time_text()),
        );
        out.insert("destroyed".into(), Value::Bool(self.destroyed));
        out.insert("version".into(), Value::from(version));
        out
    }
}

/// Text rendered from the metadata it sits in: not stored, and not copied by `clone` (copies
/// are made to be changed).
#[derive(Debug, Default)]
pub(crate) struct RenderedBlock(std::sync::OnceLock<Vec<u8>>);

impl Clone for RenderedBlock {
    fn clone(&self) -> RenderedBlock {
        RenderedBlock::default()
    }
}

/// User-supplied, version-independent annotations of a key.
pub(crate) type CustomMetadata = BTreeMap<String, String>;

/// Everything known about one secret path apart from its data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyMetadata {
    /// Latest version number (0 before the first write).
    pub current_version: u64,
    /// Lowest version still kept after pruning (0 until anything was pruned, as in Vault).
    pub oldest_version: u64,
    #[serde(with = "ts_nanoseconds")]
    pub created_time: DateTime<Utc>,
    #[serde(with = "ts_nanoseconds")]
    pub updated_time: DateTime<Utc>,
    /// Key-level version limit; 0 defers to the mount.
    #[serde(default)]
    pub max_versions: u32,
    #[serde(default)]
    pub cas_required: bool,
    /// Key-level expiry of new versions; zero defers to the mount.
    #[serde(default)]
    pub delete_version_after: Duration,
    /// `None` until set, rendered as `null` like Vault's nil map.
    #[serde(default)]
    pub custom_metadata: Option<CustomMetadata>,
    pub versions: BTreeMap<u64, VersionMetadata>,
}

impl KeyMetadata {
    /// Metadata of a path with no versions yet.
    pub(crate) fn new(now: DateTime<Utc>) -> KeyMetadata {
        KeyMetadata {
            current_version: 0,
            oldest_version: 0,
            created_time: now,
            updated_time: now,
            max_versions: 0,
            cas_required: false,
            delete_version_after: Duration::ZERO,
            custom_metadata: None,
            versions: BTreeMap::new(),
        }
    }

    /// The stored metadata of `path`, if any.
    pub(crate) async fn load(view: &dyn View, path: &str) -> Result<Option<KeyMetadata>> {
        view::get_json(view, &meta_key(path)).await
    }

    /// Versions kept: the key's limit, else the mount's, else 10.
    fn effective_max_versions(&self, config: &MountConfig) -> u64 {
        [self.max_versions, config.max_versions]
            .into_iter()
            .find(|&m| m > 0)
            .map_or(DEFAULT_MAX_VERSIONS, u64::from)
    }

    /// When a version created at `created` expires: after the smaller non-zero of the key's
    /// and the mount's `delete_version_after` (a key cannot outlive its mount's setting, as
    /// in Vault), or never when both are zero.
    fn expiry_for(&self, created: DateTime<Utc>, config: &MountConfig) -> Option<DateTime<Utc>> {
        let after = [self.delete_version_after, config.delete_version_after]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min()?;
        let after = chrono::Duration::from_std(after).ok()?;
        created.checked_add_signed(after)
    }

    /// Record a new version created `now`; returns its number and the versions pruned to stay
    /// within the effective `max_versions` (whose data the caller must delete in the same
    /// batch).
    pub(crate) fn add_version(
        &mut self,
        now: DateTime<Utc>,
        config: &MountConfig,
    ) -> (u64, Vec<u64>) {
        self.current_version += 1;
        let version = self.current_version;
        let deletion_time = self.expiry_for(now, config);
        self.versions.insert(
            version,
            VersionMetadata {
                created_time: now,
                created_text: std::sync::OnceLock::new(),
                rendered: RenderedBlock::default(),
                deletion_time,
                destroyed: false,
            },
        );
        self.updated_time = now;

        let max = self.effective_max_versions(config);
        let mut pruned = Vec::new();
        if self.versions.len() as u64 > max {
            let newest_to_prune = version - max;
            let mut candidate = newest_to_prune;
            while candidate > 0 && self.versions.remove(&candidate).is_some() {
                pruned.push(candidate);
                candidate -= 1;
            }
            self.oldest_version = newest_to_prune + 1;
        }
        (version, pruned)
    }

    /// The `metadata/<path>` read answer.
    pub(crate) fn to_response(&self) -> Value {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(n, v)| {
                let entry = json!({
                    "created_time": v.created_text(),
                    "deletion_time": v.deletion_time_text(),
                    "destroyed": v.destroyed,
                });
                (n.to_string(), entry)
            })
            .collect();
        json!({
            "cas_required": self.cas_required,
            "created_time": format_time(self.created_time),
            "current_version": self.current_version,
            "custom_metadata": self.custom_metadata,
            "delete_version_after": format_go(self.delete_version_after),
            "max_versions": self.max_versions,
            "oldest_version": self.oldest_version,
            "updated_time": format_time(self.updated_time),
            "versions": versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid time")
    }

    #[test]
    fn the_remembered_creation_text_is_the_formatted_time_and_is_not_stored() {
        let created = chrono::DateTime::parse_from_rfc3339("2026-12-07T17:20:01.000000123Z")
            .unwrap()
            .with_timezone(&Utc);
        let version = VersionMetadata {
            created_time: created,
            created_text: std::sync::OnceLock::new(),
            rendered: RenderedBlock::default(),
            deletion_time: None,
            destroyed: false,
        };
        for _ in 0..2 {
            let answer = version.to_response(1, &None);
            assert_eq!(answer["created_time"], format_time(created));
            assert_eq!(answer["created_time"], "2026-12-07T17:20:01.000000123Z");
        }
        let stored = serde_json::to_string(&version).unwrap();
        assert!(
            !stored.contains("created_text") && !stored.contains("2026-12-07T"),
            "{stored}"
        );
        let back: VersionMetadata = serde_json::from_str(&stored).unwrap();
        assert_eq!(
            back.to_response(1, &None)["created_time"],
            format_time(created)
        );
    }

    #[test]
    fn the_rendered_metadata_block_is_serdes_text_and_a_copy_renders_afresh() {
        let custom: Option<CustomMetadata> = Some(BTreeMap::from([
            ("owner".to_string(), "team \"a\"\n".to_string()),
            ("z".to_string(), String::new()),
        ]));
        for (deletion_time, destroyed, custom) in [
            (None, false, None),
            (Some(at(60)), false, custom.clone()),
            (Some(at(-60)), true, custom.clone()),
        ] {
            let version = VersionMetadata {
                created_time: at(0),
                created_text: std::sync::OnceLock::new(),
                rendered: RenderedBlock::default(),
                deletion_time,
                destroyed,
            };
            let expected = serde_json::to_vec(&version.to_response(7, &custom)).unwrap();
            assert_eq!(version.rendered_response(7, &custom), expected);
            assert_eq!(
                version.rendered_response(7, &custom),
                expected,
                "remembered"
            );
            let mut copy = version.clone();
            copy.destroyed = !destroyed;
            assert_eq!(
                copy.rendered_response(7, &custom),
                serde_json::to_vec(&copy.to_response(7, &custom)).unwrap(),
                "a changed copy renders its own text"
            );
            assert_ne!(copy.rendered_response(7, &custom), expected);
            let stored = serde_json::to_string(&version).unwrap();
            assert!(!stored.contains("rendered"), "{stored}");
        }
    }

    #[test]
    fn version_keys_cannot_collide_across_paths() {
        // "a" at version 1 and "1/a" at version ... never share a key: the number is first.
        assert_ne!(version_key("a", 1), version_key("1/a", 1));
        assert_ne!(version_key("a/1", 2), version_key("a", 12));
        assert_eq!(version_key("app/db", 3), "ver/3/app/db");
        for version in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(version_key("a/b", version), format!("ver/{version}/a/b"));
        }
    }

    #[test]
    fn pruning_keeps_the_newest_versions_and_advances_oldest() {
        let config = MountConfig {
            max_versions: 3,
            ..MountConfig::default()
        };
        let mut meta = KeyMetadata::new(at(0));
        for i in 1..=3 {
            let (_, pruned) = meta.add_version(at(i), &config);
            assert!(pruned.is_empty());
        }
        assert_eq!(meta.oldest_version, 0);
        let (v, pruned) = meta.add_version(at(4), &config);
        assert_eq!((v, pruned), (4, vec![1]));
        assert_eq!(meta.oldest_version, 2);
        // Lowering the key's limit prunes several at the next write.
        meta.max_versions = 1;
        let (_, pruned) = meta.add_version(at(5), &config);
        assert_eq!(pruned, vec![4, 3, 2]);
        assert_eq!(meta.versions.keys().copied().collect::<Vec<_>>(), vec![5]);
        assert_eq!(meta.oldest_version, 5);
    }

    #[test]
    fn expiry_uses_the_smaller_non_zero_setting() {
        let mut meta = KeyMetadata::new(at(0));
        let mut config = MountConfig::default();
        assert_eq!(meta.expiry_for(at(0), &config), None);
        config.delete_version_after = Duration::from_secs(100);
        assert_eq!(meta.expiry_for(at(0), &config), Some(at(100)));
        meta.delete_version_after = Duration::from_secs(10);
        assert_eq!(meta.expiry_for(at(0), &config), Some(at(10)));
        meta.delete_version_after = Duration::from_secs(1000);
        assert_eq!(meta.expiry_for(at(0), &config), Some(at(100)));
        config.delete_version_after = Duration::ZERO;
        assert_eq!(meta.expiry_for(at(0), &config), Some(at(1000)));
    }
}
