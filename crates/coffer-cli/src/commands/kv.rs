//! `kv ...`: key/value secrets on version-1 and version-2 mounts.

use serde_json::{json, Map, Value};

use crate::cli::{KvCommand, KvMetadataCommand, KvVersionsArgs, KvWriteArgs};
use crate::client::Client;
use crate::commands::{is_wrapped, not_found_at, print_keys};
use crate::error::{CliError, CliResult, ErrorContext};
use crate::input::{parse_data_args, parse_string_map};
use crate::kv_path::{full_kv_path, KvTarget};
use crate::output::{data_rows, key_value_table, section_header, table_header_width, OutputFormat};
use crate::Session;

/// Run a `kv` subcommand.
pub(crate) fn run(command: KvCommand, session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    match command {
        KvCommand::Get {
            path,
            version,
            mount,
        } => get(
            &client,
            &locate(&client, mount.mount.as_deref(), &path)?,
            version,
            session,
        ),
        KvCommand::Put(args) => write(&client, args, false, session),
        KvCommand::Patch(args) => write(&client, args, true, session),
        KvCommand::Delete(args) => delete(&client, args, session),
        KvCommand::Undelete(args) => versions_operation(&client, args, "undelete", session),
        KvCommand::Destroy(args) => versions_operation(&client, args, "destroy", session),
        KvCommand::List { path, mount } => {
            let target = locate(&client, mount.mount.as_deref(), &path)?;
            let api_path = target.api_path("metadata");
            let response = client
                .list(&api_path)
                .map_err(not_found_at(&api_path))
                .context(|| format!("Error listing {api_path}"))?;
            print_keys(session, &response, &api_path)
        }
        KvCommand::Metadata(command) => metadata(&client, command, session),
    }
}

/// Find the mount that owns a KV path and its version, as Vault's CLI does before every KV
/// command.
fn locate(client: &Client, mount_flag: Option<&str>, path: &str) -> CliResult<KvTarget> {
    // The mount lookup is plumbing: wrapping it would hide the answer the CLI needs, so
    // -wrap-ttl applies only to the request the user asked for (as in Vault).
    let client = client.with_wrap_ttl(None);
    let full_path = full_kv_path(mount_flag, path);
    if full_path.is_empty() {
        return Err(CliError::usage(
            "Missing PATH: give a secret path such as secret/app",
        ));
    }
    let info = match client.get(&format!("sys/internal/ui/mounts/{full_path}")) {
        Ok(info) => Some(info),
        // Servers without the endpoint are treated as serving KV version 1, like Vault does.
        Err(e) if e.status() == Some(404) => None,
        Err(e) => {
            return Err(e)
                .context(|| format!("Error determining if {full_path} is a v1 or v2 K/V mount"))
        }
    };
    Ok(KvTarget::from_mount_info(&full_path, info.as_ref()))
}

fn require_v2(target: &KvTarget, command: &str) -> CliResult<()> {
    if target.is_v2() {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "K/V engine mount must be version 2 for {command} support (enable one with \
             `coffer secrets enable -version=2 kv`)"
        )))
    }
}

fn get(
    client: &Client,
    target: &KvTarget,
    version: Option<u64>,
    session: &mut Session<'_>,
) -> CliResult<i32> {
    let mut api_path = target.api_path("data");
    let not_found = || CliError::NotFound(format!("No value found at {}", target.api_path("data")));
    if let Some(version) = version {
        if target.is_v2() {
            api_path = format!("{api_path}?version={version}");
        }
    }
    let response = client
        .get(&api_path)
        .map_err(|e| {
            if e.status() == Some(404) {
                not_found()
            } else {
                e
            }
        })
        .context(|| format!("Error reading {}", target.api_path("data")))?;
    if response.is_null() {
        return Err(not_found());
    }
    // A wrapped answer is the wrapping token, printed like any other response (as Vault does).
    if !target.is_v2() || is_wrapped(&response) {
        return session.print_secret(&response);
    }
    let inner = response.get("data").cloned().unwrap_or(Value::Null);
    let secret_data = inner.get("data").cloned().unwrap_or(Value::Null);
    if let Some(field) = session.field.clone() {
        return session.print_field(&response, Some(&secret_data), &field);
    }
    if session.format == OutputFormat::Json {
        session.print_json(&response)?;
        return Ok(0);
    }
    let mut text = secret_path_block(&target.api_path("data"));
    if let Some(metadata) = inner.get("metadata").and_then(Value::as_object) {
        text.push_str(&titled_table("Metadata", metadata));
    }
    match secret_data.as_object() {
        Some(data) => {
            text.push('\n');
            text.push_str(&titled_table("Data", data));
        }
        None => text.push_str("\nThis version of the secret has been deleted or destroyed.\n"),
    }
    session.print(&text)?;
    Ok(0)
}

/// Vault's `== Secret Path ==` preamble of KV v2 output.
fn secret_path_block(api_path: &str) -> String {
    let header = section_header("Secret Path", api_path.chars().count());
    format!("{header}\n{api_path}\n\n")
}

/// A titled Key/Value table for a map: `== Title ==` then the table.
fn titled_table(title: &str, map: &Map<String, Value>) -> String {
    let table = key_value_table(&data_rows(map));
    format!(
        "{}\n{table}",
        section_header(title, table_header_width(map.keys()))
    )
}

fn write(
    client: &Client,
    args: KvWriteArgs,
    patch: bool,
    session: &mut Session<'_>,
) -> CliResult<i32> {
    let command = if patch { "patch" } else { "put" };
    if args.data.is_empty() {
        return Err(CliError::usage(format!(
            "Must supply data: coffer kv {command} PATH key=value [key=value...]"
        )));
    }
    let data = parse_data_args(&args.data, session.stdin)?;
    let target = locate(client, args.mount.mount.as_deref(), &args.path)?;
    if patch {
        require_v2(&target, "patch")?;
    }
    if !target.is_v2() {
        if args.cas.is_some() {
            return Err(CliError::usage(
                "-cas is only supported on K/V version 2 mounts",
            ));
        }
        let path = target.logical_path();
        client
            .put(&path, &Value::Object(data))
            .context(|| format!("Error writing data to {path}"))?;
        session.print(&format!("Success! Data written to: {path}"))?;
        return Ok(0);
    }
    let api_path = target.api_path("data");
    let mut body = json!({"data": data});
    if let Some(cas) = args.cas {
        body["options"] = json!({"cas": cas});
    }
    let response = if patch {
        client.patch(&api_path, &body)
    } else {
        client.post(&api_path, &body)
    }
    .context(|| format!("Error writing data to {api_path}"))?;
    if session.field.is_some() || session.format == OutputFormat::Json || is_wrapped(&response) {
        return session.print_secret(&response);
    }
    let mut text = secret_path_block(&api_path);
    if let Some(metadata) = response.get("data").and_then(Value::as_object) {
        text.push_str(&titled_table("Metadata", metadata));
    }
    session.print(&text)?;
    Ok(0)
}

fn delete(client: &Client, args: KvVersionsArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let target = locate(client, args.mount.mount.as_deref(), &args.path)?;
    let shown = if !target.is_v2() {
        let path = target.logical_path();
        client
            .delete(&path)
            .context(|| format!("Error deleting {path}"))?;
        path
    } else if args.versions.is_empty() {
        let path = target.api_path("data");
        client
            .delete(&path)
            .context(|| format!("Error deleting {path}"))?;
        path
    } else {
        let path = target.api_path("delete");
        client
            .post(&path, &json!({"versions": args.versions}))
            .context(|| format!("Error deleting {path}"))?;
        path
    };
    session.print(&format!(
        "Success! Data deleted (if it existed) at: {shown}"
    ))?;
    Ok(0)
}

/// `kv undelete` and `kv destroy`: version-2 operations that name versions explicitly.
fn versions_operation(
    client: &Client,
    args: KvVersionsArgs,
    operation: &str,
    session: &mut Session<'_>,
) -> CliResult<i32> {
    if args.versions.is_empty() {
        return Err(CliError::usage(format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {operation}."
        )));
    }
    let target = locate(client, args.mount.mount.as_deref(), &args.path)?;
    require_v2(&target, operation)?;
    let path = target.api_path(operation);
    let body = json!({"versions": args.versions});
    // Vault's CLI sends undelete as POST and destroy as PUT; both verbs write.
    let result = if operation == "destroy" {
        client.put(&path, &body)
    } else {
        client.post(&path, &body)
    };
    result.context(|| format!("Error writing data to {path}"))?;
    session.print(&format!("Success! Data written to: {path}"))?;
    Ok(0)
}

fn metadata(
    client: &Client,
    command: KvMetadataCommand,
    session: &mut Session<'_>,
) -> CliResult<i32> {
    match command {
        KvMetadataCommand::Get { path, mount } => {
            let target = locate(client, mount.mount.as_deref(), &path)?;
            require_v2(&target, "metadata")?;
            let api_path = target.api_path("metadata");
            let response = client
                .get(&api_path)
                .map_err(not_found_at(&api_path))
                .context(|| format!("Error reading {api_path}"))?;
            if session.field.is_some() || session.format == OutputFormat::Json {
                return session.print_secret(&response);
            }
            let data = response
                .get("data")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            session.print(&render_metadata(&api_path, &data))?;
            Ok(0)
        }
        KvMetadataCommand::Put {
            path,
            max_versions,
            cas_required,
            delete_version_after,
            custom_metadata,
            mount,
        } => {
            let target = locate(client, mount.mount.as_deref(), &path)?;
            require_v2(&target, "metadata")?;
            let api_path = target.api_path("metadata");
            let mut body = Map::new();
            if let Some(max_versions) = max_versions {
                body.insert("max_versions".into(), json!(max_versions));
            }
            if let Some(cas_required) = cas_required {
                body.insert("cas_required".into(), json!(cas_required));
            }
            if let Some(after) = delete_version_after {
                body.insert("delete_version_after".into(), Value::String(after));
            }
            if !custom_metadata.is_empty() {
                body.insert(
                    "custom_metadata".into(),
                    Value::Object(parse_string_map(&custom_metadata, "custom-metadata")?),
                );
            }
            client
                .post(&api_path, &Value::Object(body))
                .context(|| format!("Error writing data to {api_path}"))?;
            session.print(&format!("Success! Data written to: {api_path}"))?;
            Ok(0)
        }
        KvMetadataCommand::Delete { path, mount } => {
            let target = locate(client, mount.mount.as_deref(), &path)?;
            require_v2(&target, "metadata")?;
            let api_path = target.api_path("metadata");
            client
                .delete(&api_path)
                .context(|| format!("Error deleting {api_path}"))?;
            session.print(&format!(
                "Success! Data deleted (if it existed) at: {api_path}"
            ))?;
            Ok(0)
        }
    }
}

/// Vault's `kv metadata get` layout: the metadata table, then one table per version, newest
/// last.
fn render_metadata(api_path: &str, data: &Map<String, Value>) -> String {
    let mut summary = data.clone();
    let versions = summary.remove("versions");
    let mut text = secret_path_block(api_path);
    text.push_str(&titled_table("Metadata", &summary));
    if let Some(versions) = versions.as_ref().and_then(Value::as_object) {
        let mut numbers: Vec<(u64, &String)> = versions
            .keys()
            .map(|k| (k.parse().unwrap_or(u64::MAX), k))
            .collect();
        numbers.sort();
        for (_, key) in numbers {
            if let Some(version) = versions[key].as_object() {
                text.push('\n');
                text.push_str(&titled_table(&format!("Version {key}"), version));
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_output_lists_versions_in_numeric_order() {
        let data = json!({
            "current_version": 10, "max_versions": 0,
            "versions": {
                "10": {"destroyed": false},
                "9": {"destroyed": true},
            }
        });
        let text = render_metadata("secret/metadata/app", data.as_object().unwrap());
        let nine = text.find("Version 9 ").unwrap();
        let ten = text.find("Version 10 ").unwrap();
        assert!(nine < ten, "{text}");
        assert!(
            text.starts_with("=== Secret Path ===\nsecret/metadata/app\n\n"),
            "{text}"
        );
        assert!(text.contains("current_version    10\n"), "{text}");
        assert!(!text.contains("versions    map"), "{text}");
    }
}
