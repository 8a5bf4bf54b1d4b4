//! `secrets ...` and `auth ...`: the mount tables under `sys/mounts` and `sys/auth`.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::cli::{
    AuthCommand, LeaseTtlArgs, MountListArgs, SecretsCommand, SecretsEnableArgs, SecretsTuneArgs,
};
use crate::error::{CliError, CliResult, ErrorContext};
use crate::input::parse_string_map;
use crate::output::{columns, go_value, human_duration, OutputFormat};
use crate::Session;

/// How often and how long `secrets move` polls an asynchronous remount.
const MOVE_POLL_INTERVAL: Duration = Duration::from_millis(500);
const MOVE_POLL_ATTEMPTS: u32 = 120;

/// Run a `secrets` subcommand.
pub(crate) fn run_secrets(command: SecretsCommand, session: &mut Session<'_>) -> CliResult<i32> {
    match command {
        SecretsCommand::Enable(args) => secrets_enable(args, session),
        SecretsCommand::Disable(args) => {
            let path = mount_path(&args.path)?;
            let client = session.client()?;
            client
                .delete(&format!("sys/mounts/{path}"))
                .context(|| format!("Error disabling secrets engine at {path}/"))?;
            session.print(&format!(
                "Success! Disabled the secrets engine (if it existed) at: {path}/"
            ))?;
            Ok(0)
        }
        SecretsCommand::List(args) => mount_list(session, "sys/mounts", &args, "secrets engines"),
        SecretsCommand::Tune(args) => secrets_tune(args, session),
        SecretsCommand::Move {
            source,
            destination,
        } => secrets_move(&source, &destination, session),
    }
}

/// Run an `auth` subcommand.
pub(crate) fn run_auth(command: AuthCommand, session: &mut Session<'_>) -> CliResult<i32> {
    match command {
        AuthCommand::Enable {
            method_type,
            path,
            description,
        } => {
            let path = mount_path(path.as_deref().unwrap_or(&method_type))?;
            let mut body = Map::new();
            body.insert("type".into(), Value::String(method_type.clone()));
            if let Some(description) = description {
                body.insert("description".into(), Value::String(description));
            }
            let client = session.client()?;
            client
                .post(&format!("sys/auth/{path}"), &Value::Object(body))
                .context(|| format!("Error enabling {method_type} auth"))?;
            session.print(&format!(
                "Success! Enabled {method_type} auth method at: {path}/"
            ))?;
            Ok(0)
        }
        AuthCommand::Disable(args) => {
            let path = mount_path(&args.path)?;
            let client = session.client()?;
            client
                .delete(&format!("sys/auth/{path}"))
                .context(|| format!("Error disabling auth method at {path}"))?;
            session.print(&format!(
                "Success! Disabled the auth method (if it existed) at: {path}/"
            ))?;
            Ok(0)
        }
        AuthCommand::List(args) => {
            mount_list(session, "sys/auth", &args, "enabled authentications")
        }
    }
}

/// A mount path without surrounding slashes; empty is a usage error.
fn mount_path(path: &str) -> CliResult<String> {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Err(CliError::usage(
            "Missing PATH: give the mount path, e.g. secret/",
        ));
    }
    Ok(trimmed.to_owned())
}

/// `config` for enable/tune: only the TTLs the user gave.
fn ttl_fields(ttls: &LeaseTtlArgs, into: &mut Map<String, Value>) {
    if let Some(ttl) = &ttls.default_lease_ttl {
        into.insert("default_lease_ttl".into(), Value::String(ttl.clone()));
    }
    if let Some(ttl) = &ttls.max_lease_ttl {
        into.insert("max_lease_ttl".into(), Value::String(ttl.clone()));
    }
}

fn secrets_enable(args: SecretsEnableArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let path = mount_path(args.path.as_deref().unwrap_or(&args.engine_type))?;
    let mut options = parse_string_map(&args.options, "options")?;
    if let Some(version) = args.version {
        options.insert("version".into(), Value::String(version.to_string()));
    }
    // Vault spells "kv at version 2" as the pseudo-type kv-v2.
    let engine_type = if args.engine_type == "kv-v2" {
        options.insert("version".into(), json!("2"));
        "kv".to_owned()
    } else {
        args.engine_type.clone()
    };
    let mut config = Map::new();
    ttl_fields(&args.ttls, &mut config);
    let mut body = Map::new();
    body.insert("type".into(), Value::String(engine_type.clone()));
    if let Some(description) = args.description {
        body.insert("description".into(), Value::String(description));
    }
    if !config.is_empty() {
        body.insert("config".into(), Value::Object(config));
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    let client = session.client()?;
    client
        .post(&format!("sys/mounts/{path}"), &Value::Object(body))
        .context(|| "Error enabling".to_owned())?;
    // Named as typed, as Vault does ("the kv-v2 secrets engine").
    session.print(&format!(
        "Success! Enabled the {} secrets engine at: {path}/",
        args.engine_type
    ))?;
    Ok(0)
}

fn secrets_tune(args: SecretsTuneArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let path = mount_path(&args.path)?;
    let mut body = Map::new();
    ttl_fields(&args.ttls, &mut body);
    if !args.options.is_empty() {
        body.insert(
            "options".into(),
            Value::Object(parse_string_map(&args.options, "options")?),
        );
    }
    if let Some(description) = args.description {
        body.insert("description".into(), Value::String(description));
    }
    let client = session.client()?;
    client
        .post(&format!("sys/mounts/{path}/tune"), &Value::Object(body))
        .context(|| format!("Error tuning secrets engine {path}/"))?;
    session.print(&format!("Success! Tuned the secrets engine at: {path}/"))?;
    Ok(0)
}

fn secrets_move(source: &str, destination: &str, session: &mut Session<'_>) -> CliResult<i32> {
    let source = mount_path(source)?;
    let destination = mount_path(destination)?;
    let client = session.client()?;
    let action = || format!("Error moving secrets engine {source}/ to {destination}/");
    let response = client
        .post("sys/remount", &json!({"from": source, "to": destination}))
        .context(action)?;
    let migration_id = response
        .get("migration_id")
        .or_else(|| response.get("data").and_then(|d| d.get("migration_id")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(migration_id) = migration_id else {
        // Servers that remount synchronously answer without a migration ID.
        session.print(&format!(
            "Success! Moved secrets engine {source}/ to: {destination}/"
        ))?;
        return Ok(0);
    };
    for _ in 0..MOVE_POLL_ATTEMPTS {
        let status = client
            .get(&format!("sys/remount/status/{migration_id}"))
            .context(action)?;
        let state = status
            .get("data")
            .and_then(|d| d.get("migration_info"))
            .and_then(|m| m.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("success");
        match state {
            "success" => {
                session.print(&format!(
                    "Success! Finished moving secrets engine {source}/ to {destination}/, \
                     with migration ID {migration_id}"
                ))?;
                return Ok(0);
            }
            "failure" => {
                return Err(CliError::OperationFailed(format!(
                    "Failure! Error encountered moving secrets engine {source}/ to \
                     {destination}/, with migration ID {migration_id}"
                )));
            }
            _ => std::thread::sleep(MOVE_POLL_INTERVAL),
        }
    }
    session.print(&format!(
        "Moving secrets engine {source}/ to {destination}/ is still in progress, \
         with migration ID {migration_id}"
    ))?;
    Ok(0)
}

/// The mount table of a `sys/mounts` or `sys/auth` answer: `data` on current servers, the
/// top-level entries on old ones.
fn mount_table(response: &Value) -> Map<String, Value> {
    let from = response
        .get("data")
        .and_then(Value::as_object)
        .filter(|data| !data.is_empty())
        .or_else(|| response.as_object());
    from.map(|table| {
        table
            .iter()
            .filter(|(_, entry)| entry.get("type").is_some())
            .map(|(path, entry)| (path.clone(), entry.clone()))
            .collect()
    })
    .unwrap_or_default()
}

fn mount_list(
    session: &mut Session<'_>,
    api_path: &str,
    args: &MountListArgs,
    what: &str,
) -> CliResult<i32> {
    let client = session.client()?;
    let response = client
        .get(api_path)
        .context(|| format!("Error listing {what}"))?;
    let table = mount_table(&response);
    if session.format == OutputFormat::Json {
        session.print_json(&Value::Object(table))?;
        return Ok(0);
    }
    session.print(&render_mount_table(&table, args.detailed))?;
    Ok(0)
}

/// Vault's `secrets list` / `auth list` table, sorted by path.
fn render_mount_table(table: &Map<String, Value>, detailed: bool) -> String {
    let mut paths: Vec<&String> = table.keys().collect();
    paths.sort();
    let text = |entry: &Value, key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let ttl = |entry: &Value, key: &str| match entry
        .get("config")
        .and_then(|c| c.get(key))
        .and_then(Value::as_i64)
    {
        None | Some(0) => "system".to_owned(),
        Some(seconds) => human_duration(seconds),
    };
    let rows: Vec<Vec<String>> = paths
        .into_iter()
        .map(|path| {
            let entry = &table[path];
            if !detailed {
                return vec![
                    path.clone(),
                    text(entry, "type"),
                    text(entry, "accessor"),
                    text(entry, "description"),
                ];
            }
            let flag = |key: &str| entry.get(key).and_then(Value::as_bool).unwrap_or(false);
            vec![
                path.clone(),
                text(entry, "type"),
                text(entry, "accessor"),
                ttl(entry, "default_lease_ttl"),
                ttl(entry, "max_lease_ttl"),
                entry
                    .get("config")
                    .and_then(|c| c.get("force_no_cache"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
                if flag("local") { "local" } else { "replicated" }.to_owned(),
                flag("seal_wrap").to_string(),
                entry
                    .get("options")
                    .filter(|o| !o.is_null())
                    .map_or_else(|| "map[]".to_owned(), go_value),
                text(entry, "description"),
                text(entry, "uuid"),
            ]
        })
        .collect();
    if detailed {
        columns(
            &[
                "Path",
                "Plugin",
                "Accessor",
                "Default TTL",
                "Max TTL",
                "Force No Cache",
                "Replication",
                "Seal Wrap",
                "Options",
                "Description",
                "UUID",
            ],
            &rows,
        )
    } else {
        columns(&["Path", "Type", "Accessor", "Description"], &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_tables_come_from_data_or_legacy_top_level_entries() {
        let current = json!({"request_id": "x", "data": {"secret/": {"type": "kv"}}});
        assert_eq!(
            mount_table(&current).keys().collect::<Vec<_>>(),
            ["secret/"]
        );
        let legacy = json!({"sys/": {"type": "system"}, "request_id": "x"});
        assert_eq!(mount_table(&legacy).keys().collect::<Vec<_>>(), ["sys/"]);
    }

    #[test]
    fn mount_list_tables_are_sorted_by_path() {
        let table = mount_table(&json!({"data": {
            "sys/": {"type": "system", "accessor": "system_1", "description": "system endpoints"},
            "cubbyhole/": {"type": "cubbyhole", "accessor": "cubbyhole_2", "description": ""},
        }}));
        assert_eq!(
            render_mount_table(&table, false),
            "Path          Type         Accessor       Description\n\
             ----          ----         --------       -----------\n\
             cubbyhole/    cubbyhole    cubbyhole_2    n/a\n\
             sys/          system       system_1       system endpoints\n"
        );
    }

    #[test]
    fn detailed_lists_show_system_for_unset_ttls_and_the_options_map() {
        let table = mount_table(&json!({"data": {
            "secret/": {"type": "kv", "config": {"default_lease_ttl": 0, "max_lease_ttl": 3600},
                        "options": {"version": "2"}, "local": false}
        }}));
        let rendered = render_mount_table(&table, true);
        let row = rendered.lines().nth(2).unwrap();
        assert!(row.contains("system"), "{row}");
        assert!(row.contains("1h"), "{row}");
        assert!(row.contains("map[version:2]"), "{row}");
        assert!(row.contains("replicated"), "{row}");
    }

    #[test]
    fn empty_mount_paths_are_usage_errors() {
        assert_eq!(mount_path("/").unwrap_err().exit_code(), 1);
        assert_eq!(mount_path("/secret/").unwrap(), "secret");
    }
}
