//! Turning `k=v` command-line arguments into a JSON data object, as Vault's `kvbuilder` does.
//!
//! * `key=value` sets a string value (Vault never guesses types from the command line);
//! * `key=@path` reads the value from a file, `key=-` from stdin;
//! * a lone `-` reads a whole JSON object from stdin, a lone `@path` from a file;
//! * a key given twice collects its values into a list.

use std::io::Read;

use serde_json::{Map, Value};

use crate::error::{CliError, CliResult};

/// Parse `args` into a data object, reading stdin or files where the arguments ask for it.
pub fn parse_data_args(args: &[String], stdin: &mut dyn Read) -> CliResult<Map<String, Value>> {
    let mut data = Map::new();
    let mut stdin_used = false;
    for arg in args {
        if arg == "-" {
            merge_json_object(&mut data, &read_stdin(stdin, &mut stdin_used)?, "stdin")?;
            continue;
        }
        let Some((key, raw)) = arg.split_once('=') else {
            if let Some(path) = arg.strip_prefix('@') {
                merge_json_object(&mut data, &read_file(path)?, path)?;
                continue;
            }
            return Err(CliError::usage(format!(
                "Invalid key/value pair \"{arg}\": format must be key=value"
            )));
        };
        if key.is_empty() {
            return Err(CliError::usage(format!(
                "Invalid key/value pair \"{arg}\": the key is empty"
            )));
        }
        let value = if raw == "-" {
            read_stdin(stdin, &mut stdin_used)?
        } else if let Some(path) = raw.strip_prefix('@') {
            read_file(path)?
        } else {
            raw.to_owned()
        };
        insert_or_collect(&mut data, key, Value::String(value));
    }
    Ok(data)
}

/// Parse `k=v` flag values (`-metadata`, `-options`, `-custom-metadata`) into a map of strings.
pub fn parse_string_map(pairs: &[String], flag: &str) -> CliResult<Map<String, Value>> {
    let mut map = Map::new();
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            CliError::usage(format!(
                "Invalid -{flag} value \"{pair}\": format must be key=value"
            ))
        })?;
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(map)
}

fn insert_or_collect(data: &mut Map<String, Value>, key: &str, value: Value) {
    match data.get_mut(key) {
        Some(Value::Array(existing)) => existing.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            data.insert(key.to_owned(), value);
        }
    }
}

fn merge_json_object(data: &mut Map<String, Value>, text: &str, source: &str) -> CliResult<()> {
    let parsed: Value = serde_json::from_str(text)
        .map_err(|e| CliError::usage(format!("Failed to parse JSON data from {source}: {e}")))?;
    let Value::Object(object) = parsed else {
        return Err(CliError::usage(format!(
            "JSON data from {source} must be an object"
        )));
    };
    data.extend(object);
    Ok(())
}

fn read_stdin(stdin: &mut dyn Read, used: &mut bool) -> CliResult<String> {
    if *used {
        return Err(CliError::usage(
            "stdin (\"-\") can be read only once per command",
        ));
    }
    *used = true;
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| CliError::io("error reading from stdin", e))?;
    Ok(text)
}

fn read_file(path: &str) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(|e| CliError::io(format!("error reading file {path}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(args: &[&str], stdin: &str) -> CliResult<Value> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        parse_data_args(&args, &mut stdin.as_bytes()).map(Value::Object)
    }

    #[test]
    fn pairs_become_string_values_even_when_they_look_numeric() {
        assert_eq!(
            parse(&["user=alice", "port=5432", "expr=a=b"], "").unwrap(),
            json!({"user": "alice", "port": "5432", "expr": "a=b"})
        );
    }

    #[test]
    fn at_file_values_read_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, "-----BEGIN-----\n").unwrap();
        let arg = format!("cert=@{}", path.display());
        assert_eq!(
            parse(&[&arg], "").unwrap(),
            json!({"cert": "-----BEGIN-----\n"})
        );
    }

    #[test]
    fn a_lone_dash_reads_a_json_object_from_stdin() {
        assert_eq!(
            parse(&["-"], r#"{"a": 1, "b": {"c": true}}"#).unwrap(),
            json!({"a": 1, "b": {"c": true}})
        );
        assert!(parse(&["-"], "[1,2]").is_err());
    }

    #[test]
    fn a_dash_value_reads_the_value_from_stdin() {
        assert_eq!(
            parse(&["password=-"], "hunter2").unwrap(),
            json!({"password": "hunter2"})
        );
    }

    #[test]
    fn repeated_keys_collect_into_a_list() {
        assert_eq!(
            parse(&["k=1", "k=2", "k=3"], "").unwrap(),
            json!({"k": ["1", "2", "3"]})
        );
    }

    #[test]
    fn arguments_without_equals_are_usage_errors_naming_the_format() {
        let error = parse(&["oops"], "").unwrap_err();
        assert_eq!(error.exit_code(), 1);
        assert!(error.to_string().contains("key=value"));
    }

    #[test]
    fn missing_at_files_are_reported_with_their_path() {
        let error = parse(&["k=@/nonexistent/file"], "").unwrap_err();
        assert!(error.to_string().contains("/nonexistent/file"));
    }

    #[test]
    fn string_maps_require_key_equals_value() {
        let pairs = vec!["version=2".to_owned()];
        assert_eq!(
            Value::Object(parse_string_map(&pairs, "options").unwrap()),
            json!({"version": "2"})
        );
        assert!(parse_string_map(&["bad".to_owned()], "options").is_err());
    }
}
