//! `token ...`.

use serde_json::{json, Map, Value};

use crate::cli::{
    TokenCapabilitiesArgs, TokenCommand, TokenCreateArgs, TokenLookupArgs, TokenRenewArgs,
    TokenRevokeArgs,
};
use crate::error::{CliError, CliResult, ErrorContext};
use crate::input::parse_string_map;
use crate::output::OutputFormat;
use crate::Session;

/// Run a `token` subcommand.
pub(crate) fn run(command: TokenCommand, session: &mut Session<'_>) -> CliResult<i32> {
    match command {
        TokenCommand::Create(args) => create(args, session),
        TokenCommand::Lookup(args) => lookup(args, session),
        TokenCommand::Renew(args) => renew(args, session),
        TokenCommand::Revoke(args) => revoke(args, session),
        TokenCommand::Capabilities(args) => capabilities(args, session),
    }
}

fn create(args: TokenCreateArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let mut body = Map::new();
    if !args.policies.is_empty() {
        body.insert("policies".into(), json!(args.policies));
    }
    let strings = [
        ("ttl", args.ttl),
        ("explicit_max_ttl", args.explicit_max_ttl),
        ("period", args.period),
        ("display_name", args.display_name),
        ("type", args.token_type),
    ];
    for (key, value) in strings {
        if let Some(value) = value {
            body.insert(key.into(), Value::String(value));
        }
    }
    if let Some(uses) = args.use_limit {
        body.insert("num_uses".into(), json!(uses));
    }
    if let Some(renewable) = args.renewable {
        body.insert("renewable".into(), json!(renewable));
    }
    if !args.metadata.is_empty() {
        body.insert(
            "meta".into(),
            Value::Object(parse_string_map(&args.metadata, "metadata")?),
        );
    }
    let path = match (&args.role, args.orphan) {
        (Some(role), _) => format!("auth/token/create/{role}"),
        (None, true) => "auth/token/create-orphan".to_owned(),
        (None, false) => "auth/token/create".to_owned(),
    };
    if args.role.is_some() && args.orphan {
        body.insert("no_parent".into(), json!(true));
    }
    let client = session.client()?;
    let response = client
        .post(&path, &Value::Object(body))
        .context(|| "Error creating token".to_owned())?;
    session.print_secret(&response)
}

fn lookup(args: TokenLookupArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    let response = match (args.token, args.accessor) {
        (None, true) => {
            return Err(CliError::usage(
                "Missing accessor: run `coffer token lookup -accessor ACCESSOR`",
            ))
        }
        (None, false) => client.get("auth/token/lookup-self"),
        (Some(accessor), true) => {
            client.post("auth/token/lookup-accessor", &json!({"accessor": accessor}))
        }
        (Some(token), false) => client.post("auth/token/lookup", &json!({"token": token})),
    }
    .context(|| "Error looking up token".to_owned())?;
    session.print_secret(&response)
}

fn renew(args: TokenRenewArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    let mut body = Map::new();
    if let Some(increment) = args.increment {
        body.insert("increment".into(), Value::String(increment));
    }
    let response = match (args.token, args.accessor) {
        (None, true) => {
            return Err(CliError::usage(
                "Missing accessor: run `coffer token renew -accessor ACCESSOR`",
            ))
        }
        (None, false) => client.put("auth/token/renew-self", &Value::Object(body)),
        (Some(accessor), true) => {
            body.insert("accessor".into(), Value::String(accessor));
            client.put("auth/token/renew-accessor", &Value::Object(body))
        }
        (Some(token), false) => {
            body.insert("token".into(), Value::String(token));
            client.put("auth/token/renew", &Value::Object(body))
        }
    }
    .context(|| "Error renewing token".to_owned())?;
    session.print_secret(&response)
}

fn revoke(args: TokenRevokeArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let orphan = match args.mode.as_deref() {
        None | Some("") => false,
        Some("orphan") => true,
        Some(other) => {
            return Err(CliError::usage(format!(
                "Invalid -mode={other}: the only supported mode is -mode=orphan"
            )))
        }
    };
    let client = session.client()?;
    let result = match (args.token, args.revoke_self, args.accessor) {
        (Some(_), true, _) => {
            return Err(CliError::usage(
                "Too many arguments: -self revokes the current token and takes no TOKEN",
            ))
        }
        (None, true, _) => client.put("auth/token/revoke-self", &json!({})),
        (None, false, _) => {
            return Err(CliError::usage(
                "Missing TOKEN: run `coffer token revoke TOKEN`, or -self for the current token",
            ))
        }
        (Some(_), false, true) if orphan => {
            return Err(CliError::usage(
                "-mode=orphan cannot be combined with -accessor",
            ))
        }
        (Some(accessor), false, true) => {
            client.put("auth/token/revoke-accessor", &json!({"accessor": accessor}))
        }
        (Some(token), false, false) if orphan => {
            client.put("auth/token/revoke-orphan", &json!({"token": token}))
        }
        (Some(token), false, false) => client.put("auth/token/revoke", &json!({"token": token})),
    };
    result.context(|| "Error revoking token".to_owned())?;
    session.print("Success! Revoked token (if it existed)")?;
    Ok(0)
}

fn capabilities(args: TokenCapabilitiesArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    let (token, path) = match args.args.as_slice() {
        [path] => (None, path.clone()),
        [token, path] => (Some(token.clone()), path.clone()),
        _ => {
            return Err(CliError::usage(
                "Expected `coffer token capabilities [TOKEN] PATH`",
            ))
        }
    };
    let response = match &token {
        None => client.post("sys/capabilities-self", &json!({"paths": [path]})),
        Some(token) => client.post(
            "sys/capabilities",
            &json!({"token": token, "paths": [path]}),
        ),
    }
    .context(|| "Error listing capabilities".to_owned())?;
    let mut capabilities = capability_list(&response, &path);
    capabilities.sort();
    match session.format {
        OutputFormat::Json => session.print_json(&json!(capabilities))?,
        OutputFormat::Table => session.print(&capabilities.join(", "))?,
    }
    Ok(0)
}

/// Vault answers with the capabilities under the path's own key and, for a single path,
/// also under `capabilities`; either may sit at the top level or under `data`.
fn capability_list(response: &Value, path: &str) -> Vec<String> {
    let sources = [response.get("data"), Some(response)];
    sources
        .into_iter()
        .flatten()
        .flat_map(|source| [source.get(path), source.get("capabilities")])
        .flatten()
        .find_map(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_found_under_the_path_or_the_capabilities_key() {
        let by_path = json!({"data": {"secret/x": ["read", "list"]}});
        assert_eq!(capability_list(&by_path, "secret/x"), ["read", "list"]);
        let top = json!({"capabilities": ["deny"]});
        assert_eq!(capability_list(&top, "secret/x"), ["deny"]);
    }
}
