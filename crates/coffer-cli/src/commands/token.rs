//! `login` and `token ...`.

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::cli::{
    LoginArgs, TokenCapabilitiesArgs, TokenCommand, TokenCreateArgs, TokenLookupArgs,
    TokenRenewArgs, TokenRevokeArgs,
};
use crate::error::{CliError, CliResult, ErrorContext};
use crate::input::parse_string_map;
use crate::output::{self, OutputFormat};
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

/// `login [TOKEN]`: verify the token by looking itself up, show it, and store it in the token
/// file unless `-no-store`.
pub(crate) fn login(args: LoginArgs, session: &mut Session<'_>) -> CliResult<i32> {
    if args.method != "token" {
        return Err(CliError::usage(format!(
            "Unsupported -method={}: only -method=token is supported; log in with \
             another method through `coffer write auth/<path>/login` and pass the token",
            args.method
        )));
    }
    let token = match args.token {
        Some(token) if token != "-" => token,
        _ => {
            let mut line = String::new();
            std::io::BufReader::new(&mut *session.stdin)
                .read_line(&mut line)
                .map_err(|e| CliError::io("error reading token from stdin", e))?;
            let line = line.trim().to_owned();
            if line.is_empty() {
                return Err(CliError::usage(
                    "No token given: run `coffer login TOKEN` or pipe the token on stdin",
                ));
            }
            line
        }
    };
    let client = session.client()?.with_token(token.clone());
    let lookup = client
        .get("auth/token/lookup-self")
        .context(|| "Error authenticating".to_owned())?;
    let secret = login_secret(&token, &lookup);
    if !args.no_store {
        let path = session.env.token_file().ok_or_else(|| {
            CliError::usage("HOME is not set, so the token file cannot be written; use -no-store")
        })?;
        store_token(&path, &token)?;
    }
    if let Some(field) = session.field.clone() {
        return session.print_field(&secret, None, &field);
    }
    if session.format == OutputFormat::Json {
        session.print_json(&secret)?;
        return Ok(0);
    }
    let notice = if args.no_store {
        "Success! You are now authenticated. The token was not stored in the token file.\n\
         Set the COFFER_TOKEN environment variable or pass the token below with each\n\
         request to Coffer.\n"
    } else {
        "Success! You are now authenticated. The token information displayed below\n\
         is already stored in the token file. You do NOT need to run \"coffer login\"\n\
         again. Future requests will automatically use this token.\n"
    };
    session.print(notice)?;
    if let Some(table) = output::secret_table(&secret) {
        session.print(&table)?;
    }
    Ok(0)
}

/// The auth block Vault's CLI synthesises for the token method from `lookup-self` data.
fn login_secret(token: &str, lookup: &Value) -> Value {
    let data = lookup.get("data").cloned().unwrap_or(Value::Null);
    let policies = data.get("policies").cloned().unwrap_or_else(|| json!([]));
    json!({
        "request_id": lookup.get("request_id").cloned().unwrap_or(Value::Null),
        "lease_id": "",
        "lease_duration": 0,
        "renewable": false,
        "data": null,
        "warnings": lookup.get("warnings").cloned().unwrap_or(Value::Null),
        "auth": {
            "client_token": token,
            "accessor": data.get("accessor").cloned().unwrap_or(json!("")),
            "policies": policies,
            "token_policies": policies,
            "identity_policies": data.get("identity_policies").cloned().unwrap_or(Value::Null),
            "metadata": data.get("meta").cloned().unwrap_or(Value::Null),
            "lease_duration": data.get("ttl").cloned().unwrap_or(json!(0)),
            "renewable": data.get("renewable").cloned().unwrap_or(json!(false)),
        }
    })
}

/// Write the token file readable by its owner only.
fn store_token(path: &Path, token: &str) -> CliResult<()> {
    let shown = path.display().to_string();
    let error = |e| CliError::io(format!("error writing token file {shown}"), e);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(error)?;
    // A pre-existing file keeps its old mode through `open`; tighten it before writing.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(error)?;
    }
    file.write_all(token.as_bytes()).map_err(error)
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
    fn login_turns_lookup_data_into_an_auth_block() {
        let lookup = json!({"data": {"accessor": "acc1", "policies": ["default"], "ttl": 3600,
                                      "renewable": true, "meta": {"user": "ann"}}});
        let secret = login_secret("s.tok", &lookup);
        assert_eq!(secret["auth"]["client_token"], "s.tok");
        assert_eq!(secret["auth"]["accessor"], "acc1");
        assert_eq!(secret["auth"]["lease_duration"], 3600);
        assert_eq!(
            output::extract_field(&secret, None, "token_policies"),
            Some(json!(["default"]))
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_token_file_is_written_owner_only_even_over_a_looser_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".coffer-token");
        std::fs::write(&path, "old-and-longer-token").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        store_token(&path, "s.new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "s.new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn capabilities_are_found_under_the_path_or_the_capabilities_key() {
        let by_path = json!({"data": {"secret/x": ["read", "list"]}});
        assert_eq!(capability_list(&by_path, "secret/x"), ["read", "list"]);
        let top = json!({"capabilities": ["deny"]});
        assert_eq!(capability_list(&top, "secret/x"), ["deny"]);
    }
}
