//! Gives a parsed [`Body`] its meaning: which keys Coffer honours, how lenient each value may
//! be (as lenient as Vault), and what is refused or merely warned about.

use crate::error::ConfigError;
use crate::tree::{Body, Entry, Stanza};
use crate::{ListenerConfig, ServerConfig, StorageConfig};
use coffer_sdk::duration::duration_from_json;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Storage type labels Coffer runs on, as listed in error messages.
const SUPPORTED_STORAGE: &str = "\"file\" (also spelled \"coffer\" or \"embedded\") and \"inmem\"";

/// Top-level keys Coffer implements.
const TOP_LEVEL_KEYS: &[&str] = &[
    "storage",
    "backend",
    "listener",
    "api_addr",
    "cluster_addr",
    "default_lease_ttl",
    "max_lease_ttl",
    "disable_mlock",
    "ui",
    "log_level",
];

/// Top-level keys Vault knows that Coffer does not implement: these are warned about ("not
/// supported yet") and ignored. Any other key is refused as a typo.
const VAULT_TOP_LEVEL_KEYS: &[&str] = &[
    "ha_storage",
    "ha_backend",
    "seal",
    "hsm",
    "entropy",
    "telemetry",
    "service_registration",
    "user_lockout",
    "kms_library",
    "reporting",
    "replication",
    "sentinel",
    "cache_size",
    "disable_cache",
    "plugin_directory",
    "plugin_file_uid",
    "plugin_file_permissions",
    "plugin_tmpdir",
    "cluster_name",
    "cluster_cipher_suites",
    "disable_clustering",
    "disable_performance_standby",
    "disable_sealwrap",
    "disable_indexing",
    "disable_sentinel_trace",
    "disable_printable_check",
    "raw_storage_endpoint",
    "introspection_endpoint",
    "enable_response_header_hostname",
    "enable_response_header_raft_node_id",
    "detect_deadlocks",
    "log_format",
    "log_file",
    "log_rotate_duration",
    "log_rotate_bytes",
    "log_rotate_max_files",
    "log_requests_level",
    "pid_file",
    "default_max_request_duration",
    "license_path",
    "imprecise_lease_role_tracking",
    "administrative_namespace_path",
    "experiments",
    "enable_post_unseal_trace",
    "post_unseal_trace_directory",
    "unsafe_allow_api_audit_creation",
    "allow_audit_log_prefixing",
    "disable_sentinel",
    "remove_irrevocable_lease_after",
    "cloud",
    "enable_multiseal",
];

/// `listener "tcp"` keys Coffer implements.
const LISTENER_KEYS: &[&str] = &[
    "address",
    "tls_disable",
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "tls_require_and_verify_client_cert",
    "http_read_header_timeout",
    "http_read_timeout",
    "http_write_timeout",
    "http_idle_timeout",
    "max_connections",
];

/// `listener "tcp"` keys (and nested stanzas) Vault knows that Coffer does not implement.
const VAULT_LISTENER_KEYS: &[&str] = &[
    "cluster_address",
    "max_request_size",
    "max_request_duration",
    "proxy_protocol_behavior",
    "proxy_protocol_authorized_addrs",
    "tls_min_version",
    "tls_max_version",
    "tls_cipher_suites",
    "tls_prefer_server_cipher_suites",
    "tls_disable_client_certs",
    "x_forwarded_for_authorized_addrs",
    "x_forwarded_for_hop_skips",
    "x_forwarded_for_reject_not_authorized",
    "x_forwarded_for_reject_not_present",
    "x_forwarded_for_client_cert_header",
    "x_forwarded_for_client_cert_header_decoder",
    "unauthenticated_metrics_access",
    "disable_replication_status_endpoints",
    "replication_status_endpoints",
    "redact_addresses",
    "redact_cluster_name",
    "redact_version",
    "chroot_namespace",
    "require_request_header",
    "disable_request_limiter",
    "agent_api",
    "role",
    "telemetry",
    "profiling",
    "inflight_requests_logging",
    "custom_response_headers",
];

/// Keys Vault takes from any `storage` stanza whatever its type (they configure clustering, not
/// the backend); Coffer has no clustering and ignores them with a warning.
const VAULT_STORAGE_KEYS: &[&str] = &["redirect_addr", "cluster_addr", "disable_clustering"];

/// Interpret the top level of a configuration file.
pub(crate) fn server_config(body: Body) -> Result<ServerConfig, ConfigError> {
    let mut warnings = Vec::new();
    let mut storage_stanzas: Vec<Stanza> = Vec::new();
    let mut listeners = Vec::new();
    let mut settings: HashMap<String, (Value, usize)> = HashMap::new();

    for entry in body.entries {
        let name = entry.name().to_string();
        match (name.as_str(), entry) {
            ("storage" | "backend", Entry::Stanza(stanza)) => storage_stanzas.push(stanza),
            ("listener", Entry::Stanza(stanza)) => {
                listeners.push(listener(stanza, &mut warnings)?);
            }
            ("storage" | "backend" | "listener", entry) => {
                return Err(ConfigError::at(
                    entry.line(),
                    format!(
                        "{} must be a stanza with a type label, e.g. {} \"{}\" {{ ... }}",
                        entry.name(),
                        entry.name(),
                        if entry.name() == "listener" {
                            "tcp"
                        } else {
                            "file"
                        }
                    ),
                ));
            }
            (
                "api_addr" | "cluster_addr" | "default_lease_ttl" | "max_lease_ttl"
                | "disable_mlock" | "ui" | "log_level",
                Entry::Setting { key, value, line },
            ) => {
                // Both front ends refuse duplicate keys, so each setting arrives at most once.
                settings.insert(key, (value, line));
            }
            (name, entry) => warnings.push(unsupported_top_level(name, entry.line())?),
        }
    }

    let storage = storage(storage_stanzas, &mut warnings)?;
    if listeners.is_empty() {
        warnings.push(
            "no listener stanza: Coffer will not serve the HTTP API; add e.g. listener \"tcp\" { address = \"127.0.0.1:8200\" }"
                .to_string(),
        );
    }

    let mut take = |key: &str| settings.remove(key);
    let api_addr = take("api_addr")
        .map(|(v, line)| string("", "api_addr", &v, line))
        .transpose()?
        .flatten();
    let cluster_addr = take("cluster_addr")
        .map(|(v, line)| string("", "cluster_addr", &v, line))
        .transpose()?
        .flatten();
    let default_lease = take("default_lease_ttl");
    let default_lease_ttl = default_lease
        .as_ref()
        .map(|(v, line)| duration("default_lease_ttl", v, *line))
        .transpose()?
        .flatten();
    let max_lease_ttl = take("max_lease_ttl")
        .map(|(v, line)| duration("max_lease_ttl", &v, line))
        .transpose()?
        .flatten();
    if let (Some(default), Some(max), Some((_, line))) =
        (default_lease_ttl, max_lease_ttl, &default_lease)
    {
        if default > max {
            // Vault's core refuses to start with this combination.
            return Err(ConfigError::at(
                *line,
                "default_lease_ttl must not be longer than max_lease_ttl",
            ));
        }
    }
    let disable_mlock = take("disable_mlock")
        .map(|(v, line)| boolean("", "disable_mlock", &v, line))
        .transpose()?
        .flatten();
    let ui = take("ui")
        .map(|(v, line)| boolean("", "ui", &v, line))
        .transpose()?
        .flatten();
    let log_level = take("log_level")
        .map(|(v, line)| log_level(&v, line))
        .transpose()?
        .flatten();

    Ok(ServerConfig {
        storage,
        listeners,
        api_addr,
        cluster_addr,
        default_lease_ttl,
        max_lease_ttl,
        disable_mlock: disable_mlock.unwrap_or(false),
        ui: ui.unwrap_or(false),
        log_level,
        warnings,
    })
}

/// A top-level key Coffer does not implement: a warning when Vault knows it, else an error
/// (most likely a typo).
fn unsupported_top_level(name: &str, line: usize) -> Result<String, ConfigError> {
    if VAULT_TOP_LEVEL_KEYS.contains(&name) {
        Ok(format!(
            "line {line}: \"{name}\" is not supported by Coffer yet and is ignored"
        ))
    } else {
        Err(unknown_key(
            "",
            name,
            line,
            TOP_LEVEL_KEYS,
            VAULT_TOP_LEVEL_KEYS,
        ))
    }
}

/// The error for a key neither Coffer nor Vault knows in `context` (empty at the top level):
/// the closest known key when it is near enough to be what was meant, otherwise the keys
/// Coffer implements there.
fn unknown_key(
    context: &str,
    name: &str,
    line: usize,
    implemented: &[&str],
    vault_only: &[&str],
) -> ConfigError {
    let prefix = if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    };
    let closest = implemented
        .iter()
        .chain(vault_only)
        .map(|known| (edit_distance(name, known), *known))
        .min();
    let hint = match closest {
        Some((distance, known)) if distance <= (known.len() / 4).max(1) => {
            format!("; did you mean `{known}`?")
        }
        _ => format!(
            "; the keys Coffer reads here are {}",
            implemented.join(", ")
        ),
    };
    ConfigError::at(line, format!("{prefix}unknown key \"{name}\"{hint}"))
}

/// Levenshtein distance over characters, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn storage(stanzas: Vec<Stanza>, warnings: &mut Vec<String>) -> Result<StorageConfig, ConfigError> {
    let mut stanzas = stanzas.into_iter();
    let Some(stanza) = stanzas.next() else {
        return Err(ConfigError::Invalid {
            line: None,
            message: "no storage stanza: add e.g. storage \"file\" { path = \"/var/lib/coffer\" } \
                      or storage \"inmem\" {}"
                .to_string(),
        });
    };
    if let Some(second) = stanzas.next() {
        return Err(ConfigError::at(
            second.line,
            format!(
                "only one storage stanza is allowed; the first is on line {}",
                stanza.line
            ),
        ));
    }
    let kind = &stanza.kind;
    let storage_type = single_label(&stanza, "file")?;
    let context = format!("{kind} \"{storage_type}\"");
    match storage_type {
        "file" | "coffer" | "embedded" => {
            let mut path = None;
            for entry in stanza.body.entries {
                match entry {
                    Entry::Setting { key, value, line } if key == "path" => {
                        let text = string(&context, "path", &value, line)?.unwrap_or_default();
                        if text.trim().is_empty() {
                            return Err(ConfigError::at(line, format!("{context}: path must not be empty")));
                        }
                        path = Some(PathBuf::from(text));
                    }
                    other => warnings.push(unsupported_in(&context, &other, &["path"], VAULT_STORAGE_KEYS)?),
                }
            }
            let path = path.ok_or_else(|| {
                ConfigError::at(
                    stanza.line,
                    format!("{context}: path is required (the directory where Coffer keeps its data)"),
                )
            })?;
            Ok(StorageConfig::Embedded { path })
        }
        "inmem" => {
            for entry in &stanza.body.entries {
                warnings.push(unsupported_in(&context, entry, &[], VAULT_STORAGE_KEYS)?);
            }
            Ok(StorageConfig::Memory)
        }
        other => Err(ConfigError::at(
            stanza.line,
            format!("storage type \"{other}\" is not supported by Coffer; supported types are {SUPPORTED_STORAGE}"),
        )),
    }
}

fn listener(stanza: Stanza, warnings: &mut Vec<String>) -> Result<ListenerConfig, ConfigError> {
    let listener_type = single_label(&stanza, "tcp")?;
    if listener_type != "tcp" {
        return Err(ConfigError::at(
            stanza.line,
            format!("listener type \"{listener_type}\" is not supported by Coffer; the only supported type is \"tcp\""),
        ));
    }
    let context = "listener \"tcp\"";
    let mut config = ListenerConfig::default();
    let mut client_cert_line = None;
    for entry in stanza.body.entries {
        let Entry::Setting { key, value, line } = &entry else {
            warnings.push(unsupported_in(
                context,
                &entry,
                LISTENER_KEYS,
                VAULT_LISTENER_KEYS,
            )?);
            continue;
        };
        let (key, value, line) = (key.as_str(), value, *line);
        match key {
            "address" => {
                if let Some(address) = string(context, key, value, line)? {
                    config.address = listener_address(&address).map_err(|why| {
                        ConfigError::at(line, format!("{context}: address {address:?} {why}"))
                    })?;
                }
            }
            "tls_disable" => {
                config.tls_disable = boolean(context, key, value, line)?.unwrap_or(false)
            }
            "tls_cert_file" => {
                config.tls_cert_file = string(context, key, value, line)?.map(PathBuf::from)
            }
            "tls_key_file" => {
                config.tls_key_file = string(context, key, value, line)?.map(PathBuf::from)
            }
            "tls_client_ca_file" => {
                config.tls_client_ca_file = string(context, key, value, line)?.map(PathBuf::from)
            }
            "tls_require_and_verify_client_cert" => {
                config.tls_require_and_verify_client_cert =
                    boolean(context, key, value, line)?.unwrap_or(false);
                client_cert_line = Some(line);
            }
            "http_read_header_timeout"
            | "http_read_timeout"
            | "http_write_timeout"
            | "http_idle_timeout" => {
                let field = match key {
                    "http_read_header_timeout" => &mut config.http_read_header_timeout,
                    "http_read_timeout" => &mut config.http_read_timeout,
                    "http_write_timeout" => &mut config.http_write_timeout,
                    _ => &mut config.http_idle_timeout,
                };
                if let Some(timeout) = duration(&format!("{context}: {key}"), value, line)? {
                    *field = timeout;
                }
            }
            "max_connections" => {
                if let Some(max) = count(context, key, value, line)? {
                    config.max_connections = max;
                }
            }
            _ => warnings.push(unsupported_in(
                context,
                &entry,
                LISTENER_KEYS,
                VAULT_LISTENER_KEYS,
            )?),
        }
    }
    if !config.tls_disable {
        for (key, present) in [
            ("tls_cert_file", config.tls_cert_file.is_some()),
            ("tls_key_file", config.tls_key_file.is_some()),
        ] {
            if !present {
                return Err(ConfigError::at(
                    stanza.line,
                    format!("{context}: {key} is required when TLS is enabled (set it, or set tls_disable = true)"),
                ));
            }
        }
    } else if let (true, Some(line)) = (config.tls_require_and_verify_client_cert, client_cert_line)
    {
        warnings.push(format!(
            "line {line}: {context}: tls_require_and_verify_client_cert has no effect because tls_disable is true"
        ));
    }
    Ok(config)
}

/// The type label of a `storage`/`listener` stanza; exactly one is required.
fn single_label<'a>(stanza: &'a Stanza, example: &str) -> Result<&'a str, ConfigError> {
    match stanza.labels.as_slice() {
        [label] => Ok(label),
        _ => Err(ConfigError::at(
            stanza.line,
            format!(
                "{kind} stanza needs exactly one type label, e.g. {kind} \"{example}\" {{ ... }}",
                kind = stanza.kind
            ),
        )),
    }
}

/// A key of a stanza Coffer does not implement: a warning when Vault knows it there
/// (`vault_only`), else an error naming the key that was probably meant.
fn unsupported_in(
    context: &str,
    entry: &Entry,
    implemented: &[&str],
    vault_only: &[&str],
) -> Result<String, ConfigError> {
    if vault_only.contains(&entry.name()) {
        Ok(format!(
            "line {}: {context}: \"{}\" is not supported by Coffer yet and is ignored",
            entry.line(),
            entry.name()
        ))
    } else {
        Err(unknown_key(
            context,
            entry.name(),
            entry.line(),
            implemented,
            vault_only,
        ))
    }
}

/// Check and normalise a listener `host:port`. Go's `":8200"` (all interfaces) becomes
/// `"0.0.0.0:8200"` so it can be handed to a socket bind as-is.
fn listener_address(address: &str) -> Result<String, &'static str> {
    if address.contains("{{") {
        return Err("uses a go-sockaddr template, which Coffer does not support; write host:port");
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or("must be host:port, e.g. 127.0.0.1:8200")?;
    port.parse::<u16>()
        .map_err(|_| "has an invalid port; it must be a number from 0 to 65535")?;
    if host.is_empty() {
        return Ok(format!("0.0.0.0:{port}"));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| "has an invalid IPv6 address between [ ]")?;
    } else if host.contains(':') {
        return Err("has an IPv6 address without brackets; write it as [::1]:8200");
    } else if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err("has an invalid host; use an IP address or a host name");
    }
    Ok(address.to_string())
}

/// A key whose value must never appear in a message. `*_file`/`*_path` keys name files
/// (`tls_key_file`), not secrets.
fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let is_file_name = key.ends_with("_file") || key.ends_with("_path");
    !is_file_name
        && ["password", "token", "secret", "key"]
            .iter()
            .any(|word| key.contains(word))
}

/// How a rejected value is shown: its JSON spelling, shortened, or only its type when the key
/// looks secret.
fn shown(key: &str, value: &Value) -> String {
    if looks_secret(key) {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        };
        return format!("{kind} (value hidden)");
    }
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

fn type_error(context: &str, key: &str, expected: &str, value: &Value, line: usize) -> ConfigError {
    let prefix = if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    };
    ConfigError::at(
        line,
        format!(
            "{prefix}{key} must be {expected}, got {}",
            shown(key, value)
        ),
    )
}

/// A string value; `null` means "not set".
fn string(
    context: &str,
    key: &str,
    value: &Value,
    line: usize,
) -> Result<Option<String>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(type_error(context, key, "a string", other, line)),
    }
}

/// A boolean, as leniently as Vault's `parseutil.ParseBool`: JSON/HCL booleans, Go's
/// `strconv.ParseBool` spellings (`"true"`, `"1"`, `"t"`, `"FALSE"`, ...), an empty string
/// (false), and numbers (non-zero is true). `null` means "not set".
fn boolean(
    context: &str,
    key: &str,
    value: &Value,
    line: usize,
) -> Result<Option<bool>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) => Ok(Some(n.as_f64().is_some_and(|f| f != 0.0))),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(Some(false)),
            _ => Err(type_error(context, key, "a boolean", value, line)),
        },
        other => Err(type_error(context, key, "a boolean", other, line)),
    }
}

/// A non-negative whole number, given as a number or as its decimal text (as Vault reads
/// integers); `null` means "not set".
fn count(
    context: &str,
    key: &str,
    value: &Value,
    line: usize,
) -> Result<Option<usize>, ConfigError> {
    let parsed = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed
        .and_then(|n| usize::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| type_error(context, key, "a non-negative whole number", value, line))
}

fn duration(key: &str, value: &Value, line: usize) -> Result<Option<Duration>, ConfigError> {
    if value.is_null() {
        return Ok(None);
    }
    duration_from_json(value)
        .map(Some)
        .map_err(|e| ConfigError::at(line, format!("{key}: {e}")))
}

/// `log_level`, accepting Vault's aliases and normalising them.
fn log_level(value: &Value, line: usize) -> Result<Option<String>, ConfigError> {
    let Some(level) = string("", "log_level", value, line)? else {
        return Ok(None);
    };
    let canonical = match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" | "notice" => "info",
        "warn" | "warning" => "warn",
        "error" | "err" => "error",
        _ => {
            return Err(ConfigError::at(
                line,
                format!(
                    "log_level must be one of trace, debug, info, warn, error; got {}",
                    shown("log_level", value)
                ),
            ))
        }
    };
    Ok(Some(canonical.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_are_recognised_but_file_paths_are_not() {
        for key in ["password", "vault_token", "client_secret", "api_key", "KEY"] {
            assert!(looks_secret(key), "{key}");
        }
        for key in [
            "tls_key_file",
            "tls_cert_file",
            "address",
            "path",
            "key_path",
        ] {
            assert!(!looks_secret(key), "{key}");
        }
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("adress", "address"), 1);
        assert_eq!(edit_distance("address", "address"), 0);
        assert_eq!(edit_distance("tls_cert", "tls_cert_file"), 5);
        assert_eq!(edit_distance("", "ui"), 2);
        assert_eq!(edit_distance("uii", "ui"), 1);
    }

    #[test]
    fn listener_addresses_are_validated_and_normalised() {
        assert_eq!(listener_address("0.0.0.0:8200").unwrap(), "0.0.0.0:8200");
        assert_eq!(
            listener_address("localhost:8200").unwrap(),
            "localhost:8200"
        );
        assert_eq!(listener_address("[::1]:8200").unwrap(), "[::1]:8200");
        assert_eq!(listener_address(":8200").unwrap(), "0.0.0.0:8200");
        for bad in [
            "8200",
            "127.0.0.1",
            "127.0.0.1:99999",
            "::1:8200",
            "[zz]:8200",
            "host name:1",
            "{{ GetPrivateIP }}:8200",
        ] {
            assert!(listener_address(bad).is_err(), "{bad}");
        }
    }
}
