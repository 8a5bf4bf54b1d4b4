//! `policy ...`: ACL policies under `sys/policies/acl`.

use hcl::format::Format;
use serde_json::{json, Value};

use crate::cli::PolicyCommand;
use crate::error::{CliError, CliResult, ErrorContext};
use crate::output::OutputFormat;
use crate::Session;

/// Run a `policy` subcommand.
pub(crate) fn run(command: PolicyCommand, session: &mut Session<'_>) -> CliResult<i32> {
    match command {
        PolicyCommand::Write { name, file } => write(&name, &file, session),
        PolicyCommand::Read { name } => read(&name, session),
        PolicyCommand::List => list(session),
        PolicyCommand::Delete { name } => delete(&name, session),
        PolicyCommand::Fmt { file } => fmt(&file, session),
    }
}

fn policy_path(name: &str) -> CliResult<String> {
    let name = name.trim();
    if name.is_empty() || name.contains('/') {
        return Err(CliError::usage(format!(
            "Invalid policy name \"{name}\": names are non-empty and contain no '/'"
        )));
    }
    Ok(format!("sys/policies/acl/{}", name.to_lowercase()))
}

fn write(name: &str, file: &str, session: &mut Session<'_>) -> CliResult<i32> {
    let path = policy_path(name)?;
    let text = if file == "-" {
        let mut text = String::new();
        session
            .stdin
            .read_to_string(&mut text)
            .map_err(|e| CliError::io("error reading policy from stdin", e))?;
        text
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| CliError::io(format!("error reading policy file {file}"), e))?
    };
    let client = session.client()?;
    client
        .put(&path, &json!({"policy": text}))
        .context(|| "Error uploading policy".to_owned())?;
    session.print(&format!("Success! Uploaded policy: {name}"))?;
    Ok(0)
}

fn read(name: &str, session: &mut Session<'_>) -> CliResult<i32> {
    let path = policy_path(name)?;
    let client = session.client()?;
    let response = client
        .get(&path)
        .map_err(|e| {
            if e.status() == Some(404) {
                CliError::NotFound(format!("No policy named: {name}"))
            } else {
                e
            }
        })
        .context(|| format!("Error reading policy named {name}"))?;
    if session.field.is_some() || session.format == OutputFormat::Json {
        return session.print_secret(&response);
    }
    let text = response
        .get("data")
        .and_then(|d| d.get("policy").or_else(|| d.get("rules")))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    session.print(&text)?;
    Ok(0)
}

fn list(session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    let response = client
        .list("sys/policies/acl")
        .context(|| "Error listing policies".to_owned())?;
    let names: Vec<Value> = response
        .get("data")
        .and_then(|d| d.get("keys").or_else(|| d.get("policies")))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match session.format {
        OutputFormat::Json => session.print_json(&Value::Array(names))?,
        OutputFormat::Table => {
            let lines: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
            if !lines.is_empty() {
                session.print(&lines.join("\n"))?;
            }
        }
    }
    Ok(0)
}

fn delete(name: &str, session: &mut Session<'_>) -> CliResult<i32> {
    let path = policy_path(name)?;
    let client = session.client()?;
    client
        .delete(&path)
        .context(|| format!("Error deleting {name}"))?;
    session.print(&format!("Success! Deleted policy: {name}"))?;
    Ok(0)
}

/// Reformat an HCL policy file in place (no server needed).
fn fmt(file: &str, session: &mut Session<'_>) -> CliResult<i32> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::io(format!("error reading policy file {file}"), e))?;
    let formatted = format_policy(&text)
        .map_err(|reason| CliError::usage(format!("Failed to parse policy {file}: {reason}")))?;
    std::fs::write(file, formatted)
        .map_err(|e| CliError::io(format!("error writing policy file {file}"), e))?;
    session.print(&format!("Success! Formatted policy: {file}"))?;
    Ok(0)
}

/// Parse HCL and print it in canonical layout.
fn format_policy(text: &str) -> Result<String, String> {
    coffer_hcl::check_nesting(text).map_err(|e| e.to_string())?;
    let body = hcl::parse(text).map_err(|e| e.to_string())?;
    // Vault keeps short lists on one line (`capabilities = ["read", "list"]`).
    let mut formatter = hcl::format::Formatter::builder()
        .compact_arrays(true)
        .build_vec();
    let mut formatted = body
        .format_string(&mut formatter)
        .map_err(|e| e.to_string())?;
    if !formatted.ends_with('\n') {
        formatted.push('\n');
    }
    Ok(formatted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_normalises_layout_and_keeps_meaning() {
        let messy = "path   \"secret/*\" {\ncapabilities=[\"read\",\"list\"]\n}\n";
        let formatted = format_policy(messy).unwrap();
        assert_eq!(
            formatted,
            "path \"secret/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n"
        );
        assert_eq!(format_policy(&formatted).unwrap(), formatted);
    }

    #[test]
    fn fmt_rejects_invalid_hcl() {
        assert!(format_policy("path \"x\" {").is_err());
    }

    #[test]
    fn fmt_refuses_nesting_the_parser_would_take_hours_on() {
        let deep = format!("path \"a\" {{\n  x = (r{}\n}}\n", " % { r / l".repeat(40));
        let reason = format_policy(&deep).unwrap_err();
        assert!(reason.contains("nest more than 10 levels"), "{reason}");
    }

    #[test]
    fn policy_names_with_slashes_are_refused() {
        assert!(policy_path("a/b").is_err());
        assert_eq!(policy_path("Admin").unwrap(), "sys/policies/acl/admin");
    }
}
