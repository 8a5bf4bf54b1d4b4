//! Rendering responses the way Vault's CLI does.
//!
//! Tables are Vault's `columnize` layout: a header row, an underline of dashes as wide as each
//! header, columns padded to the widest cell and glued with four spaces, empty cells shown as
//! `n/a`. Scalar values print like Go's `%v` (`<nil>`, `[a b]`, `map[k:v]`), and fields whose
//! names look like durations (`ttl`, `*_ttl`, `*_period`, `*_duration`) print as Go durations
//! (`768h`, `1m30s`).

use serde_json::{Map, Value};

use crate::error::{CliError, CliResult};

/// Text between table columns (Vault's columnize `Glue`).
const COLUMN_GLUE: &str = "    ";

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Human-readable Key/Value tables (the default).
    #[default]
    Table,
    /// The response object, pretty-printed JSON.
    Json,
}

impl OutputFormat {
    /// Parse a `-format` value. YAML is refused with a message naming the supported formats.
    pub fn parse(value: &str) -> CliResult<Self> {
        match value.to_ascii_lowercase().as_str() {
            "" | "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "yaml" | "yml" => Err(CliError::usage(
                "-format=yaml is not supported by coffer; use -format=json or -format=table",
            )),
            other => Err(CliError::usage(format!(
                "Invalid output format: {other}; use -format=table or -format=json"
            ))),
        }
    }
}

/// Pretty-print JSON with two-space indentation, as Vault's JSON formatter does.
pub fn json_text(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Format a value the way Go's `fmt` `%v` prints the decoded JSON.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_value(&map[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Vault's `looksLikeDuration`: field names whose integer values are seconds.
pub fn looks_like_duration(key: &str) -> bool {
    key == "period"
        || key.ends_with("_period")
        || key == "ttl"
        || key.ends_with("_ttl")
        || key.ends_with("_duration")
}

/// Seconds as Vault prints them: Go's `Duration.String()` with zero minutes/seconds trimmed
/// (`768h`, `1h1s`, `1m30s`, `0s`).
pub fn human_duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_owned();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let total = seconds.unsigned_abs();
    let (hours, minutes, secs) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut text = if hours > 0 {
        format!("{sign}{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    };
    if text.ends_with("m0s") {
        text.truncate(text.len() - 2);
    }
    if let Some(index) = text.find("h0m") {
        text.replace_range(index + 1..index + 3, "");
    }
    text
}

/// A duration-looking value rendered as a duration when it is a whole number of seconds,
/// otherwise as `%v`.
fn duration_value(value: &Value) -> String {
    let seconds = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    seconds.map_or_else(|| go_value(value), human_duration)
}

/// Render rows under headers in Vault's columnize layout.
pub fn columns(headers: &[&str], rows: &[Vec<String>]) -> String {
    let underline: Vec<String> = headers.iter().map(|h| "-".repeat(h.len())).collect();
    let mut all: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 2);
    all.push(headers.iter().map(|h| (*h).to_owned()).collect());
    all.push(underline);
    for row in rows {
        all.push(
            row.iter()
                .map(|cell| {
                    if cell.is_empty() {
                        "n/a".to_owned()
                    } else {
                        cell.clone()
                    }
                })
                .collect(),
        );
    }
    let column_count = all.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..column_count)
        .map(|i| {
            all.iter()
                .filter_map(|row| row.get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in &all {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                line.push_str(&" ".repeat(pad));
                line.push_str(COLUMN_GLUE);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A two-column `Key`/`Value` table, rows in the order given.
pub fn key_value_table(rows: &[(String, String)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    columns(&["Key", "Value"], &rows)
}

/// Rows for a data map: keys sorted, duration-looking fields humanised.
pub fn data_rows(data: &Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let value = &data[k];
            let shown = if looks_like_duration(k) {
                duration_value(value)
            } else {
                go_value(value)
            };
            (k.clone(), shown)
        })
        .collect()
}

/// Vault's table rendering of a response envelope ("secret"): lease or refresh interval, then
/// the auth block, then the data fields sorted. Returns `None` when there is nothing to show.
pub fn secret_table(secret: &Value) -> Option<String> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let lease_duration = secret
        .get("lease_duration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if lease_duration > 0 {
        let lease_id = secret.get("lease_id").and_then(Value::as_str).unwrap_or("");
        if lease_id.is_empty() {
            // KV v1 returns a TTL without a lease; Vault calls it a refresh interval.
            rows.push(("refresh_interval".into(), human_duration(lease_duration)));
        } else {
            rows.push(("lease_id".into(), lease_id.to_owned()));
            rows.push(("lease_duration".into(), human_duration(lease_duration)));
            rows.push((
                "lease_renewable".into(),
                go_value(secret.get("renewable").unwrap_or(&Value::Bool(false))),
            ));
        }
    }
    if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        rows.extend(auth_rows(auth));
    }
    if let Some(wrap_info) = secret.get("wrap_info").filter(|w| w.is_object()) {
        rows.extend(wrap_rows(wrap_info));
    }
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        rows.extend(data_rows(data));
    }
    if rows.is_empty() {
        return None;
    }
    Some(key_value_table(&rows))
}

/// The `token*` rows Vault prints for an auth block.
pub fn auth_rows(auth: &Value) -> Vec<(String, String)> {
    let text = |key: &str| auth.get(key).map(go_value).unwrap_or_default();
    let list = |key: &str| {
        auth.get(key)
            .filter(|v| !v.is_null())
            .map(go_value)
            .unwrap_or_else(|| "[]".to_owned())
    };
    let duration = auth
        .get("lease_duration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut rows = vec![
        ("token".to_owned(), text("client_token")),
        ("token_accessor".to_owned(), text("accessor")),
        (
            "token_duration".to_owned(),
            if duration == 0 {
                "∞".to_owned()
            } else {
                human_duration(duration)
            },
        ),
        (
            "token_renewable".to_owned(),
            go_value(auth.get("renewable").unwrap_or(&Value::Bool(false))),
        ),
        ("token_policies".to_owned(), list("token_policies")),
        ("identity_policies".to_owned(), list("identity_policies")),
        ("policies".to_owned(), list("policies")),
    ];
    if let Some(metadata) = auth.get("metadata").and_then(Value::as_object) {
        let mut keys: Vec<&String> = metadata.keys().collect();
        keys.sort();
        for key in keys {
            rows.push((format!("token_meta_{key}"), go_value(&metadata[key])));
        }
    }
    rows
}

/// The `wrapping_*` rows Vault prints for a wrapped response.
pub fn wrap_rows(wrap_info: &Value) -> Vec<(String, String)> {
    let text = |key: &str| {
        wrap_info
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let ttl = wrap_info.get("ttl").and_then(Value::as_i64).unwrap_or(0);
    let mut rows = vec![
        ("wrapping_token:".to_owned(), text("token")),
        ("wrapping_accessor:".to_owned(), text("accessor")),
        ("wrapping_token_ttl:".to_owned(), human_duration(ttl)),
        (
            "wrapping_token_creation_time:".to_owned(),
            go_time(&text("creation_time")),
        ),
        (
            "wrapping_token_creation_path:".to_owned(),
            text("creation_path"),
        ),
    ];
    let wrapped_accessor = text("wrapped_accessor");
    if !wrapped_accessor.is_empty() {
        rows.push(("wrapped_accessor:".to_owned(), wrapped_accessor));
    }
    rows
}

/// An RFC 3339 UTC timestamp as Go's `time.Time.String()` prints it, which is how Vault shows
/// `wrapping_token_creation_time`: `2024-01-02T03:04:05.5Z` becomes
/// `2024-01-02 03:04:05.5 +0000 UTC`. Anything else is returned unchanged.
pub fn go_time(rfc3339: &str) -> String {
    let Some(utc) = rfc3339.strip_suffix('Z') else {
        return rfc3339.to_owned();
    };
    let Some((date, time)) = utc.split_once('T') else {
        return rfc3339.to_owned();
    };
    let time = match time.split_once('.') {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        None => time.to_owned(),
    };
    format!("{date} {time} +0000 UTC")
}

/// `Keys` / `----` followed by one key per line, Vault's table rendering of a list.
pub fn list_table(keys: &[Value]) -> String {
    let rows: Vec<Vec<String>> = keys.iter().map(|k| vec![go_value(k)]).collect();
    columns(&["Keys"], &rows)
}

/// Vault's section header (`padEqualSigns`): the title between equal runs of `=`, together
/// about `width` wide, at least two on each side.
pub fn section_header(title: &str, width: usize) -> String {
    let mut signs = width.saturating_sub(title.chars().count() + 2);
    if signs == 0 {
        signs = 4;
    }
    if !signs.is_multiple_of(2) {
        signs += 1;
    }
    let side = "=".repeat(signs / 2);
    format!("{side} {title} {side}")
}

/// The width Vault gives the header of a Key/Value table of `keys` (`getHeaderForMap`): the
/// longest key, four spaces, and `Value`.
pub fn table_header_width<'a>(keys: impl IntoIterator<Item = &'a String>) -> usize {
    keys.into_iter()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0)
        + 4
        + 5
}

/// Look up `-field=NAME` in a response envelope the way Vault's `PrintRawField` does: auth
/// fields (`token`, `token_accessor`, ...) when the response carries an auth block, otherwise
/// `data[NAME]`. `data` may be overridden (KV v2 passes `data.data`).
pub fn extract_field(secret: &Value, data: Option<&Value>, field: &str) -> Option<Value> {
    if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        let from_auth = match field {
            "token" => auth.get("client_token"),
            "token_accessor" => auth.get("accessor"),
            "token_duration" => auth.get("lease_duration"),
            "token_renewable" => auth.get("renewable"),
            "token_policies" => auth.get("token_policies"),
            "identity_policies" => auth.get("identity_policies"),
            "policies" => auth.get("policies"),
            _ => None,
        };
        if let Some(value) = from_auth {
            return Some(value.clone());
        }
    }
    if let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) {
        let from_wrap = match field {
            "wrapping_token" => wrap.get("token"),
            "wrapping_accessor" => wrap.get("accessor"),
            "wrapping_token_ttl" => wrap.get("ttl"),
            "wrapping_token_creation_time" => wrap.get("creation_time"),
            "wrapping_token_creation_path" => wrap.get("creation_path"),
            _ => None,
        };
        if let Some(value) = from_wrap {
            return Some(value.clone());
        }
    }
    let data = data.or_else(|| secret.get("data"))?;
    data.get(field).filter(|v| !v.is_null()).cloned()
}

/// The text `-field` prints for a value: strings raw, everything else like `%v` in table
/// mode or as JSON in JSON mode.
pub fn raw_field_text(value: &Value, format: OutputFormat) -> String {
    match (format, value) {
        (_, Value::String(s)) if format == OutputFormat::Table => s.clone(),
        (OutputFormat::Json, _) => json_text(value),
        (OutputFormat::Table, _) => go_value(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_value_tables_pad_to_the_widest_key_with_four_spaces() {
        let table = key_value_table(&[
            ("password".into(), "s3cr3t".into()),
            ("user".into(), "".into()),
        ]);
        assert_eq!(
            table,
            "Key         Value\n---         -----\npassword    s3cr3t\nuser        n/a\n"
        );
    }

    #[test]
    fn secret_tables_sort_keys_and_show_refresh_interval_for_leaseless_ttls() {
        let secret = json!({
            "lease_id": "", "lease_duration": 2764800, "renewable": false,
            "data": {"zeta": "z", "alpha": 1, "max_ttl": 90}
        });
        assert_eq!(
            secret_table(&secret).unwrap(),
            "Key                 Value\n\
             ---                 -----\n\
             refresh_interval    768h\n\
             alpha               1\n\
             max_ttl             1m30s\n\
             zeta                z\n"
        );
    }

    #[test]
    fn empty_secrets_have_no_table() {
        assert_eq!(
            secret_table(&json!({"data": {}, "lease_duration": 0})),
            None
        );
    }

    #[test]
    fn auth_blocks_print_token_rows_with_infinite_duration_for_root() {
        let secret = json!({"auth": {
            "client_token": "s.abc", "accessor": "acc", "lease_duration": 0, "renewable": false,
            "policies": ["root"], "token_policies": ["root"], "metadata": {"team": "ops"}
        }});
        let table = secret_table(&secret).unwrap();
        assert!(table.contains("token_duration       ∞\n"), "{table}");
        assert!(table.contains("token_policies       [root]\n"), "{table}");
        assert!(table.contains("identity_policies    []\n"), "{table}");
        assert!(table.contains("token_meta_team      ops\n"), "{table}");
    }

    #[test]
    fn values_print_like_go_percent_v() {
        assert_eq!(go_value(&json!(null)), "<nil>");
        assert_eq!(go_value(&json!(["a", 1, true])), "[a 1 true]");
        assert_eq!(
            go_value(&json!({"b": 2, "a": {"c": "d"}})),
            "map[a:map[c:d] b:2]"
        );
    }

    #[test]
    fn durations_trim_zero_units_like_vault() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(3601), "1h1s");
        assert_eq!(human_duration(3661), "1h1m1s");
        assert_eq!(human_duration(90), "1m30s");
        assert_eq!(human_duration(120), "2m");
    }

    #[test]
    fn list_tables_have_a_keys_header() {
        assert_eq!(
            list_table(&[json!("a"), json!("b/")]),
            "Keys\n----\na\nb/\n"
        );
    }

    #[test]
    fn wrapped_responses_show_vaults_wrapping_rows_with_go_times() {
        let secret = json!({"data": null, "wrap_info": {
            "token": "cs.wrap", "accessor": "acc", "ttl": 300,
            "creation_time": "2026-01-02T03:04:05.120000Z", "creation_path": "secret/data/x"
        }});
        assert_eq!(
            secret_table(&secret).unwrap(),
            "Key                              Value\n\
             ---                              -----\n\
             wrapping_token:                  cs.wrap\n\
             wrapping_accessor:               acc\n\
             wrapping_token_ttl:              5m\n\
             wrapping_token_creation_time:    2026-01-02 03:04:05.12 +0000 UTC\n\
             wrapping_token_creation_path:    secret/data/x\n"
        );
        let token = json!({"wrap_info": {"token": "t", "ttl": 60, "wrapped_accessor": "inner"}});
        let table = secret_table(&token).unwrap();
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("wrapped_accessor: ") && l.ends_with(" inner")),
            "{table}"
        );
        assert_eq!(
            extract_field(&secret, None, "wrapping_token"),
            Some(json!("cs.wrap"))
        );
    }

    #[test]
    fn go_time_keeps_non_utc_or_malformed_times_as_they_are() {
        assert_eq!(
            go_time("2026-01-02T03:04:05Z"),
            "2026-01-02 03:04:05 +0000 UTC"
        );
        assert_eq!(
            go_time("2026-01-02T03:04:05.000Z"),
            "2026-01-02 03:04:05 +0000 UTC"
        );
        assert_eq!(
            go_time("2026-01-02T03:04:05+02:00"),
            "2026-01-02T03:04:05+02:00"
        );
        assert_eq!(go_time(""), "");
    }

    #[test]
    fn field_extraction_prefers_auth_fields_then_data() {
        let login =
            json!({"auth": {"client_token": "s.tok"}, "data": {"token": "shadowed", "x": 1}});
        assert_eq!(extract_field(&login, None, "token"), Some(json!("s.tok")));
        assert_eq!(extract_field(&login, None, "x"), Some(json!(1)));
        assert_eq!(extract_field(&login, None, "missing"), None);
    }

    #[test]
    fn field_extraction_reads_kv_v2_inner_data_when_given() {
        let secret = json!({"data": {"data": {"password": "p"}, "metadata": {"version": 1}}});
        let inner = secret["data"]["data"].clone();
        assert_eq!(
            extract_field(&secret, Some(&inner), "password"),
            Some(json!("p"))
        );
        assert_eq!(extract_field(&secret, Some(&inner), "metadata"), None);
    }

    #[test]
    fn raw_fields_print_strings_bare_and_structures_per_format() {
        assert_eq!(raw_field_text(&json!("p"), OutputFormat::Table), "p");
        assert_eq!(raw_field_text(&json!(["a"]), OutputFormat::Table), "[a]");
        assert_eq!(raw_field_text(&json!("p"), OutputFormat::Json), "\"p\"");
    }

    #[test]
    fn yaml_is_refused_with_a_usage_error_naming_the_alternatives() {
        let error = OutputFormat::parse("yaml").unwrap_err();
        assert_eq!(error.exit_code(), 1);
        assert!(error.to_string().contains("-format=json"));
        assert_eq!(OutputFormat::parse("JSON").unwrap(), OutputFormat::Json);
    }

    #[test]
    fn section_headers_are_balanced_as_in_vault() {
        // `kv get secret/x`: the path is shorter than the title, so two signs a side.
        assert_eq!(
            section_header("Secret Path", "secret/data/x".len()),
            "== Secret Path =="
        );
        assert_eq!(
            section_header("Secret Path", "secret/data/app/db".len()),
            "=== Secret Path ==="
        );
        // Vault's metadata table: longest key `custom_metadata` (15) + 9.
        let keys = ["created_time", "custom_metadata", "version"].map(String::from);
        assert_eq!(table_header_width(&keys), 24);
        assert_eq!(
            section_header("Metadata", table_header_width(&keys)),
            "======= Metadata ======="
        );
        // An odd count is rounded up to keep both sides equal.
        assert_eq!(section_header("Data", 11), "=== Data ===");
    }
}
