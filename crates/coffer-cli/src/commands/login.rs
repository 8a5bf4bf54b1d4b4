//! `login`: authenticate with a token, userpass, AppRole, a TLS client certificate or a JWT,
//! and keep the token in the token
//! file, following Vault's `login` command (including how it treats wrapped logins).

use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::cli::LoginArgs;
use crate::client::Client;
use crate::commands::wrapping::unwrap_response;
use crate::error::{CliError, CliResult, ErrorContext};
use crate::input::parse_data_args;
use crate::output::{self, OutputFormat};
use crate::prompt::read_secret;
use crate::Session;

/// How deep a wrapped login may nest wrapping tokens before the CLI gives up.
const MAX_UNWRAP_DEPTH: usize = 4;

/// The auth methods `login` knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginMethod {
    /// Present an existing token and verify it with `lookup-self`.
    Token,
    /// `auth/<mount>/login/<username> {password}`.
    Userpass,
    /// `auth/<mount>/login {role_id, secret_id}`.
    AppRole,
    /// `auth/<mount>/login {name}`: the identity is the TLS client certificate
    /// (`-client-cert`/`-client-key`); `name` only picks which trusted role to match.
    Cert,
    /// `auth/<mount>/login {role, jwt}`.
    Jwt,
}

impl LoginMethod {
    fn parse(method: &str) -> CliResult<Self> {
        match method {
            "" | "token" => Ok(Self::Token),
            "userpass" => Ok(Self::Userpass),
            "approle" => Ok(Self::AppRole),
            "cert" => Ok(Self::Cert),
            "jwt" => Ok(Self::Jwt),
            other => Err(CliError::usage(format!(
                "Unknown auth method: {other}. Use \"coffer auth list\" to see the enabled \
                 auth methods; the CLI logs in with token, userpass, approle, cert and jwt, \
                 and other methods are available through `coffer write auth/<path>/login`."
            ))),
        }
    }
}

/// What the command line asked `login` to do, before any I/O.
#[derive(Debug, PartialEq)]
struct LoginPlan {
    method: LoginMethod,
    /// Mount path under `auth/`, without slashes.
    mount: String,
    /// The `K=V` arguments, with a bare token rewritten to `token=...`.
    arguments: Vec<String>,
    store: bool,
    print: bool,
    /// `-field`, or `token` under `-token-only`.
    field: Option<String>,
    token_only: bool,
}

impl LoginPlan {
    fn new(args: LoginArgs, field: Option<String>) -> CliResult<Self> {
        // -token-only is documented as a shortcut that overrides -field and -no-store.
        let store = !(args.no_store || args.token_only);
        let field = if args.token_only {
            Some("token".to_owned())
        } else {
            field
        };
        if !store && args.no_print {
            return Err(CliError::usage(
                "-no-store and -no-print cannot be used together",
            ));
        }
        let method = LoginMethod::parse(args.method.trim_matches('/'))?;
        let mount = args
            .path
            .as_deref()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .unwrap_or(args.method.trim_matches('/'))
            .to_owned();
        let mut arguments = args.args;
        if method == LoginMethod::Token {
            if let Some(first) = arguments.first_mut() {
                if !first.contains('=') {
                    *first = format!("token={first}");
                }
            }
        }
        Ok(Self {
            method,
            mount: if mount.is_empty() {
                "token".to_owned()
            } else {
                mount
            },
            arguments,
            store,
            print: !args.no_print,
            field,
            token_only: args.token_only,
        })
    }
}

/// `login`: authenticate, store the token unless told not to, and print the auth block.
pub(crate) fn login(args: LoginArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let plan = LoginPlan::new(args, session.field.clone())?;
    let config = parse_data_args(&plan.arguments, session.stdin)?;
    let mount = config_string(&config, "mount")
        .map(|m| m.trim_matches('/').to_owned())
        .unwrap_or_else(|| plan.mount.clone());
    let client = session.client()?;
    let secret = match plan.method {
        LoginMethod::Token => token_login(&client.with_wrap_ttl(None), &config, session),
        // A stale stored token must not ride along on a login, as in Vault.
        LoginMethod::Userpass => userpass_login(&client.without_token(), &mount, &config, session),
        LoginMethod::AppRole => approle_login(&client.without_token(), &mount, &config),
        LoginMethod::Cert => cert_login(&client.without_token(), &mount, &config),
        LoginMethod::Jwt => jwt_login(&client.without_token(), &mount, &config),
    }
    .context(|| "Error authenticating".to_owned())?;

    let (secret, wrapped) = extract_auth(&client.without_token(), secret, plan.store)?;
    if wrapped {
        if plan.token_only {
            return session.print_field(&secret, None, "wrapping_token");
        }
        return session.print_secret(&secret);
    }
    let token = secret
        .pointer("/auth/client_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            CliError::OperationFailed(
                "The server returned a response without authentication information".to_owned(),
            )
        })?
        .to_owned();

    if plan.store {
        let path = session.env.token_file().ok_or_else(|| {
            CliError::usage("HOME is not set, so the token file cannot be written; use -no-store")
        })?;
        store_token(&path, &token)?;
        if session.env.get("COFFER_TOKEN").is_some() || session.env.get("VAULT_TOKEN").is_some() {
            session.warn(
                "WARNING! The COFFER_TOKEN or VAULT_TOKEN environment variable is set! Its \
                 value takes precedence over the stored token; unset it if that is unwanted.",
            );
        }
    } else if !plan.token_only {
        session.warn(
            "The token was not stored in the token file. Set the COFFER_TOKEN environment \
             variable or pass the token below with each request to Coffer.",
        );
    }
    if !plan.print {
        return Ok(0);
    }
    if let Some(field) = plan.field {
        return session.print_field(&secret, None, &field);
    }
    if session.format == OutputFormat::Json {
        session.print_json(&secret)?;
        return Ok(0);
    }
    let notice = if plan.store {
        "Success! You are now authenticated. The token information displayed below\n\
         is already stored in the token file. You do NOT need to run \"coffer login\"\n\
         again. Future requests will automatically use this token.\n"
    } else {
        "Success! You are now authenticated.\n"
    };
    session.print(notice)?;
    if let Some(table) = output::secret_table(&secret) {
        session.print(&table)?;
    }
    Ok(0)
}

/// A string argument; a key given twice is ambiguous for a login and counts as its last value.
fn config_string(config: &Map<String, Value>, key: &str) -> Option<String> {
    match config.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items.last().and_then(Value::as_str).map(str::to_owned),
        other => Some(other.to_string()),
    }
}

/// The token method: the token comes from the arguments or the first line of stdin, and is
/// verified by looking itself up.
fn token_login(
    client: &Client,
    config: &Map<String, Value>,
    session: &mut Session<'_>,
) -> CliResult<Value> {
    let token = match config_string(config, "token") {
        Some(token) => token.trim().to_owned(),
        None => read_secret(session, "Token (will be hidden): ", "token")?
            .trim()
            .to_owned(),
    };
    if token.is_empty() {
        return Err(CliError::usage(
            "No token given: run `coffer login TOKEN` or pipe the token on stdin",
        ));
    }
    let lookup = client
        .with_token(token.clone())
        .get("auth/token/lookup-self")?;
    Ok(login_secret(&token, &lookup))
}

fn userpass_login(
    client: &Client,
    mount: &str,
    config: &Map<String, Value>,
    session: &mut Session<'_>,
) -> CliResult<Value> {
    let username = config_string(config, "username")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            CliError::usage(
                "'username' must be specified: coffer login -method=userpass username=NAME",
            )
        })?;
    let password = match config_string(config, "password") {
        Some(password) => password,
        // Prompted for (hidden) on a terminal; one line of stdin otherwise, so
        // `echo "$PW" | coffer login -method=userpass username=u` works.
        None => read_secret(session, "Password (will be hidden): ", "password")?.to_string(),
    };
    if password.is_empty() {
        return Err(CliError::usage("No password given"));
    }
    client.post(
        &format!("auth/{mount}/login/{username}"),
        &json!({ "password": password }),
    )
}

fn approle_login(client: &Client, mount: &str, config: &Map<String, Value>) -> CliResult<Value> {
    let role_id = config_string(config, "role_id")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            CliError::usage(
                "'role_id' must be specified: coffer login -method=approle role_id=ID secret_id=ID",
            )
        })?;
    let mut body = json!({ "role_id": role_id });
    // A role with bind_secret_id=false logs in with the role ID alone.
    if let Some(secret_id) = config_string(config, "secret_id") {
        body["secret_id"] = Value::String(secret_id);
    }
    client.post(&format!("auth/{mount}/login"), &body)
}

/// Vault's cert CLI handler: the server authenticates the certificate from the TLS handshake,
/// so the body carries at most the role `name` to match against.
fn cert_login(client: &Client, mount: &str, config: &Map<String, Value>) -> CliResult<Value> {
    client.post(&format!("auth/{mount}/login"), &cert_login_body(config))
}

fn cert_login_body(config: &Map<String, Value>) -> Value {
    match config_string(config, "name").filter(|n| !n.is_empty()) {
        Some(name) => json!({ "name": name }),
        None => json!({}),
    }
}

fn jwt_login(client: &Client, mount: &str, config: &Map<String, Value>) -> CliResult<Value> {
    client.post(&format!("auth/{mount}/login"), &jwt_login_body(config)?)
}

/// `{role, jwt}`. The role may be left out when the mount has a `default_role`. The token is
/// trimmed because `jwt=@file` and `jwt=-` bring the file's or stdin's trailing newline, and a
/// JWT never contains whitespace.
fn jwt_login_body(config: &Map<String, Value>) -> CliResult<Value> {
    let jwt = config_string(config, "jwt")
        .map(|jwt| jwt.trim().to_owned())
        .filter(|jwt| !jwt.is_empty())
        .ok_or_else(|| {
            CliError::usage(
                "'jwt' must be specified: coffer login -method=jwt role=ROLE jwt=TOKEN \
                 (or jwt=@FILE, or jwt=- to read it from stdin)",
            )
        })?;
    let mut body = json!({ "jwt": jwt });
    if let Some(role) = config_string(config, "role").filter(|r| !r.is_empty()) {
        body["role"] = Value::String(role);
    }
    Ok(body)
}

/// Vault's `extractToken`: a response with an auth block is the login; a wrapped login is
/// unwrapped (when `unwrap`) until the auth block appears. Returns the response and whether it
/// is still wrapped.
fn extract_auth(client: &Client, secret: Value, unwrap: bool) -> CliResult<(Value, bool)> {
    let mut secret = secret;
    for _ in 0..MAX_UNWRAP_DEPTH {
        if secret.get("auth").is_some_and(Value::is_object) {
            return Ok((secret, false));
        }
        let Some(wrap_info) = secret.get("wrap_info").filter(|w| w.is_object()) else {
            return Err(extract_error("no auth or wrapping info in response"));
        };
        let holds_token = wrap_info
            .get("wrapped_accessor")
            .and_then(Value::as_str)
            .is_some_and(|a| !a.is_empty());
        if !holds_token {
            return Err(extract_error("wrapped response does not contain a token"));
        }
        if !unwrap {
            return Ok((secret, true));
        }
        let wrapping_token = wrap_info
            .get("token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        secret = unwrap_response(&client.with_wrap_ttl(None), Some(&wrapping_token))
            .context(|| "Error extracting token".to_owned())?;
    }
    Err(extract_error("too many nested wrapping tokens"))
}

fn extract_error(reason: &str) -> CliError {
    CliError::OperationFailed(format!("Error extracting token: {reason}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn login_args(args: &[&str]) -> LoginArgs {
        LoginArgs {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            method: "token".into(),
            path: None,
            no_store: false,
            no_print: false,
            token_only: false,
        }
    }

    #[test]
    fn a_bare_token_argument_becomes_token_equals() {
        let plan = LoginPlan::new(login_args(&["s.abc"]), None).unwrap();
        assert_eq!(plan.arguments, ["token=s.abc"]);
        assert_eq!(plan.method, LoginMethod::Token);
        assert!(plan.store);
    }

    #[test]
    fn the_mount_defaults_to_the_method_and_path_overrides_it() {
        let mut args = login_args(&["username=ann"]);
        args.method = "userpass".into();
        assert_eq!(LoginPlan::new(args, None).unwrap().mount, "userpass");
        let mut args = login_args(&["username=ann"]);
        args.method = "userpass".into();
        args.path = Some("people/".into());
        let plan = LoginPlan::new(args, None).unwrap();
        assert_eq!(plan.mount, "people");
        assert_eq!(
            plan.arguments,
            ["username=ann"],
            "only the token method rewrites bare arguments"
        );
    }

    #[test]
    fn token_only_means_field_token_and_no_store() {
        let mut args = login_args(&["s.abc"]);
        args.token_only = true;
        let plan = LoginPlan::new(args, Some("policies".into())).unwrap();
        assert!(!plan.store);
        assert_eq!(plan.field.as_deref(), Some("token"));
    }

    #[test]
    fn no_store_with_no_print_is_a_usage_error() {
        let mut args = login_args(&[]);
        args.no_store = true;
        args.no_print = true;
        assert_eq!(LoginPlan::new(args, None).unwrap_err().exit_code(), 1);
    }

    #[test]
    fn unknown_methods_are_usage_errors() {
        let mut args = login_args(&[]);
        args.method = "github".into();
        let error = LoginPlan::new(args, None).unwrap_err();
        assert_eq!(error.exit_code(), 1);
        assert!(error.to_string().contains("Unknown auth method: github"));
    }

    #[test]
    fn cert_and_jwt_are_methods_whose_mount_defaults_to_their_name() {
        let mut args = login_args(&["name=web"]);
        args.method = "cert".into();
        let plan = LoginPlan::new(args, None).unwrap();
        assert_eq!(plan.method, LoginMethod::Cert);
        assert_eq!(plan.mount, "cert");
        assert_eq!(plan.arguments, ["name=web"]);

        let mut args = login_args(&["role=ci", "jwt=@token.jwt"]);
        args.method = "jwt".into();
        args.path = Some("/gitlab/".into());
        let plan = LoginPlan::new(args, None).unwrap();
        assert_eq!(plan.method, LoginMethod::Jwt);
        assert_eq!(plan.mount, "gitlab");
        assert_eq!(plan.arguments, ["role=ci", "jwt=@token.jwt"]);
    }

    #[test]
    fn cert_login_sends_the_role_name_only_when_given() {
        let mut stdin = std::io::empty();
        let named = parse_data_args(&["name=web".to_owned()], &mut stdin).unwrap();
        assert_eq!(cert_login_body(&named), json!({"name": "web"}));
        assert_eq!(cert_login_body(&Map::new()), json!({}));
    }

    #[test]
    fn jwt_login_reads_the_token_from_an_argument_a_file_or_stdin() {
        let mut no_stdin = std::io::empty();
        let inline = parse_data_args(
            &["role=ci".to_owned(), "jwt=aaa.bbb.ccc".to_owned()],
            &mut no_stdin,
        )
        .unwrap();
        assert_eq!(
            jwt_login_body(&inline).unwrap(),
            json!({"role": "ci", "jwt": "aaa.bbb.ccc"})
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token.jwt");
        std::fs::write(&file, "fff.ggg.hhh\n").unwrap();
        let from_file = parse_data_args(
            &["role=ci".to_owned(), format!("jwt=@{}", file.display())],
            &mut no_stdin,
        )
        .unwrap();
        assert_eq!(jwt_login_body(&from_file).unwrap()["jwt"], "fff.ggg.hhh");

        let mut stdin = std::io::Cursor::new("sss.ttt.uuu\n");
        let from_stdin = parse_data_args(&["jwt=-".to_owned()], &mut stdin).unwrap();
        assert_eq!(
            jwt_login_body(&from_stdin).unwrap(),
            json!({"jwt": "sss.ttt.uuu"}),
            "without role= the mount's default_role applies"
        );
    }

    #[test]
    fn jwt_login_without_a_token_is_a_usage_error() {
        let mut stdin = std::io::empty();
        for args in [vec!["role=ci"], vec!["role=ci", "jwt="], vec!["jwt=  \n"]] {
            let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
            let config = parse_data_args(&args, &mut stdin).unwrap();
            let error = jwt_login_body(&config).unwrap_err();
            assert!(matches!(error, CliError::Usage(_)), "{args:?}: {error}");
            assert!(error.to_string().contains("'jwt' must be specified"));
        }
    }

    #[test]
    fn a_wrapped_login_without_a_token_inside_is_refused() {
        let client = Client::new(&crate::ConnectionSettings {
            address: "http://127.0.0.1:1".into(),
            ..Default::default()
        })
        .unwrap();
        let wrapped_secret = json!({"wrap_info": {"token": "w", "creation_path": "secret/x"}});
        let error = extract_auth(&client, wrapped_secret, true).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("does not contain a token"));

        let wrapped_login = json!({"wrap_info": {"token": "w", "wrapped_accessor": "acc"}});
        let (kept, wrapped) = extract_auth(&client, wrapped_login.clone(), false).unwrap();
        assert!(wrapped);
        assert_eq!(kept, wrapped_login);
    }

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
}
