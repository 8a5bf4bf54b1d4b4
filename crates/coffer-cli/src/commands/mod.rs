//! One function per CLI verb. Each returns the exit code on success; failures are
//! [`CliError`]s already prefixed with what was being attempted.

mod kv;
mod lease;
mod login;
mod mounts;
mod operator;
mod policy;
mod token;
mod wrapping;

use serde_json::Value;

use crate::cli::{Command, PathArgs, WriteArgs};
use crate::error::{CliError, CliResult, ErrorContext};
use crate::input::parse_data_args;
use crate::output::{self, OutputFormat};
use crate::Session;

/// Run a parsed command.
pub(crate) fn dispatch(command: Command, session: &mut Session<'_>) -> CliResult<i32> {
    match command {
        Command::Server { .. } => Err(CliError::usage(
            "coffer server is run by the coffer binary, not by the CLI library",
        )),
        Command::Status => operator::status(session),
        Command::Operator(command) => operator::run(command, session),
        Command::Login(args) => login::login(args, session),
        Command::Lease(command) => lease::run(command, session),
        Command::Unwrap(args) => wrapping::unwrap(args, session),
        Command::Token(command) => token::run(command, session),
        Command::Policy(command) => policy::run(command, session),
        Command::Secrets(command) => mounts::run_secrets(command, session),
        Command::Auth(command) => mounts::run_auth(command, session),
        Command::Kv(command) => kv::run(command, session),
        Command::Read(args) => read(args, session),
        Command::Write(args) => write(args, session),
        Command::Delete(args) => delete(args, session),
        Command::List(args) => list(args, session),
        Command::Version => {
            session.print(&crate::version_line())?;
            Ok(0)
        }
    }
}

/// Turn a 404 into Vault's `No value found at PATH` (exit code 2); other errors pass through.
pub(crate) fn not_found_at(path: &str) -> impl FnOnce(CliError) -> CliError + '_ {
    move |error| {
        if error.status() == Some(404) {
            CliError::NotFound(format!("No value found at {path}"))
        } else {
            error
        }
    }
}

/// The `data` object of a response, or an empty object.
pub(crate) fn data_of(response: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    response.get("data").unwrap_or(&EMPTY)
}

/// Whether the server answered with a wrapping token instead of the response (`-wrap-ttl`).
pub(crate) fn is_wrapped(response: &Value) -> bool {
    response.get("wrap_info").is_some_and(Value::is_object)
}

/// Print a LIST response's keys: JSON array in JSON mode, a `Keys` table otherwise.
pub(crate) fn print_keys(
    session: &mut Session<'_>,
    response: &Value,
    path: &str,
) -> CliResult<i32> {
    if is_wrapped(response) {
        return session.print_secret(response);
    }
    let keys = data_of(response)
        .get("keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if keys.is_empty() {
        return Err(CliError::NotFound(format!("No value found at {path}")));
    }
    match session.format {
        OutputFormat::Json => session.print_json(&Value::Array(keys))?,
        OutputFormat::Table => session.print(&output::list_table(&keys))?,
    }
    Ok(0)
}

fn read(args: PathArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    let path = args.path.trim_start_matches('/');
    let response = client
        .get(path)
        .map_err(not_found_at(path))
        .context(|| format!("Error reading {path}"))?;
    if response.is_null() {
        return Err(CliError::NotFound(format!("No value found at {path}")));
    }
    session.print_secret(&response)
}

fn write(args: WriteArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let path = args.path.trim_start_matches('/');
    if args.data.is_empty() && !args.force {
        return Err(CliError::usage(
            "Must supply data or use -force (e.g. coffer write PATH key=value)",
        ));
    }
    let data = parse_data_args(&args.data, session.stdin)?;
    let client = session.client()?;
    let response = client
        .put(path, &Value::Object(data))
        .context(|| format!("Error writing data to {path}"))?;
    print_write_result(session, &response, path)
}

/// After a write: the response if it carries anything, else Vault's success line.
pub(crate) fn print_write_result(
    session: &mut Session<'_>,
    response: &Value,
    path: &str,
) -> CliResult<i32> {
    // Vault prints the response when there is one, and in table mode replaces an empty one
    // with a success line; in JSON mode an empty (204) answer prints nothing.
    let has_content = response
        .get("data")
        .is_some_and(|d| d.as_object().is_some_and(|o| !o.is_empty()))
        || response.get("auth").is_some_and(Value::is_object)
        || is_wrapped(response);
    match session.format {
        OutputFormat::Table if !has_content => {
            session.print(&format!("Success! Data written to: {path}"))?;
            Ok(0)
        }
        OutputFormat::Json if response.is_null() => Ok(0),
        _ => session.print_secret(response),
    }
}

fn delete(args: PathArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let path = args.path.trim_start_matches('/');
    let client = session.client()?;
    client
        .delete(path)
        .context(|| format!("Error deleting {path}"))?;
    session.print(&format!("Success! Data deleted (if it existed) at: {path}"))?;
    Ok(0)
}

fn list(args: PathArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let path = args.path.trim_start_matches('/');
    let client = session.client()?;
    let response = client
        .list(path)
        .map_err(not_found_at(path))
        .context(|| format!("Error listing {path}"))?;
    print_keys(session, &response, path)
}
