//! Client half of the `coffer` binary: Vault's CLI verbs and output over Vault's HTTP API.
//!
//! The binary calls [`run`] for every subcommand except `server`. The flow of one invocation:
//!
//! 1. [`argv::normalise_args`] turns Go-style `-flag` into clap's `--flag`;
//! 2. [`cli::Cli`] parses the command line;
//! 3. [`environment::ConnectionSettings`] resolves address, token, namespace and TLS from
//!    flags, `COFFER_*`/`VAULT_*` variables and the token file `~/.coffer-token`;
//! 4. a command in [`commands`] calls the server through [`client::Client`];
//! 5. [`output`] renders the answer as Vault does (Key/Value tables, JSON, or `-field`).
//!
//! Exit codes follow Vault: 0 success, 1 a local problem (usage, files, a missing `-field`),
//! 2 anything the server said (a failed request, a value that was not found, a sealed server
//! for `status`).

pub mod argv;
pub mod cli;
pub mod client;
mod commands;
pub mod duration;
pub mod environment;
pub mod error;
pub mod input;
pub mod kv_path;
pub mod output;
mod prompt;
mod tls;

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};

use clap::Parser;
use serde_json::Value;

pub use client::Client;
pub use environment::{ClientIdentity, ConnectionFlags, ConnectionSettings, Environment};
pub use error::{ApiError, CliError, CliResult};
pub use output::OutputFormat;

/// Version printed by `coffer version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `coffer version`, `coffer -version` and `coffer -v` print.
pub fn version_line() -> String {
    format!("Coffer v{VERSION}")
}

/// Vault's spellings of "print the version" as the only argument: `-v`, `-version`,
/// `--version`.
fn asks_for_version(args: &[OsString]) -> bool {
    args.len() == 2 && matches!(args[1].to_str(), Some("-v" | "-version" | "--version"))
}

/// Run one CLI invocation against the real process environment and standard streams.
///
/// `args` includes argv\[0\]. Returns the process exit code: 0 ok, 1 local error, 2 remote
/// error.
pub fn run(args: Vec<OsString>) -> i32 {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdout_is_terminal = stdout.is_terminal();
    let stdin_is_terminal = stdin.is_terminal();
    let mut stdin = stdin.lock();
    let mut stdout = stdout.lock();
    let mut stderr = stderr.lock();
    run_with(
        args,
        &Environment::from_process(),
        Streams {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
            stdout_is_terminal,
            stdin_is_terminal,
        },
    )
}

/// The standard streams one invocation reads and writes; tests pass buffers.
pub struct Streams<'a> {
    /// Where `-` and prompts read from.
    pub stdin: &'a mut dyn Read,
    /// Where results go.
    pub stdout: &'a mut dyn Write,
    /// Where errors go.
    pub stderr: &'a mut dyn Write,
    /// Whether stdout is a terminal: `-field` output ends in a newline only then, as in
    /// Vault, so `$(coffer kv get -field=x ...)` captures the exact value.
    pub stdout_is_terminal: bool,
    /// Whether stdin is a terminal: a secret the command asks for (an unseal key, a password)
    /// is then prompted for and read without echo; otherwise it is one line of stdin.
    pub stdin_is_terminal: bool,
}

/// Run one CLI invocation with an explicit environment and streams.
pub fn run_with(args: Vec<OsString>, env: &Environment, streams: Streams<'_>) -> i32 {
    let Streams {
        stdin,
        stdout,
        stderr,
        stdout_is_terminal,
        stdin_is_terminal,
    } = streams;
    if asks_for_version(&args) {
        let _ = writeln!(stdout, "{}", version_line());
        return 0;
    }
    let parsed = match cli::Cli::try_parse_from(argv::normalise_args(args)) {
        Ok(parsed) => parsed,
        Err(error) => {
            let rendered = match unknown_flag(&error) {
                Some(flag) => unknown_flag_message(&flag, &error.render().to_string()),
                None => error.render().to_string(),
            };
            let target: &mut dyn Write = if error.use_stderr() { stderr } else { stdout };
            let _ = write!(target, "{rendered}");
            // Vault exits 1 for usage errors; help and version output are not errors.
            return if error.use_stderr() { 1 } else { 0 };
        }
    };
    let outcome = Session::new(
        &parsed.global,
        env,
        stdin,
        SessionOutput {
            out: stdout,
            err: &mut *stderr,
            stdout_is_terminal,
            stdin_is_terminal,
        },
    )
    .and_then(|mut session| commands::dispatch(parsed.command, &mut session));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(stderr, "{error}");
            error.exit_code()
        }
    }
}

/// The flag clap did not know, as the user would have typed it (`-bogus`), when that is why
/// parsing failed.
fn unknown_flag(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let name = arg.strip_prefix("--")?;
    Some(format!("-{name}"))
}

/// An unknown flag is refused wherever it stands, with Vault's rule for where flags go; clap's
/// usage lines follow.
fn unknown_flag_message(flag: &str, rendered: &str) -> String {
    let usage = rendered
        .find("Usage:")
        .map_or("", |start| &rendered[start..]);
    format!(
        "error: {flag} is not a flag of this command. Command flags must be provided before \
         positional arguments, as in Vault (coffer kv get -field=password secret/app); an \
         unknown flag is refused, never taken as an argument (to pass a value that starts \
         with a dash, put -- before it).\n\n{usage}"
    )
}

/// Everything a command needs: resolved settings, output options and streams.
pub(crate) struct Session<'a> {
    pub env: &'a Environment,
    pub settings: ConnectionSettings,
    pub format: OutputFormat,
    pub field: Option<String>,
    /// `-wrap-ttl` as the header value to send (`300s`), when wrapping was asked for.
    pub wrap_ttl: Option<String>,
    pub out: &'a mut dyn Write,
    /// Warnings and prompts, kept off stdout so piped output stays clean.
    pub err: &'a mut dyn Write,
    pub stdin: &'a mut dyn Read,
    pub stdout_is_terminal: bool,
    pub stdin_is_terminal: bool,
}

/// The output half of [`Streams`], as a [`Session`] holds it.
struct SessionOutput<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    stdout_is_terminal: bool,
    stdin_is_terminal: bool,
}

impl<'a> Session<'a> {
    fn new(
        global: &cli::GlobalArgs,
        env: &'a Environment,
        stdin: &'a mut dyn Read,
        output: SessionOutput<'a>,
    ) -> CliResult<Self> {
        let flags = ConnectionFlags {
            address: global.address.clone(),
            namespace: global.namespace.clone(),
            ca_cert: global.ca_cert.clone(),
            client_cert: global.client_cert.clone(),
            client_key: global.client_key.clone(),
            tls_skip_verify: global.tls_skip_verify,
            tls_server_name: global.tls_server_name.clone(),
        };
        let format_text = global
            .format
            .clone()
            .or_else(|| env.get("COFFER_FORMAT").map(str::to_owned))
            .or_else(|| env.get("VAULT_FORMAT").map(str::to_owned))
            .unwrap_or_default();
        let wrap_ttl = match global
            .wrap_ttl
            .as_deref()
            .or_else(|| env.get("COFFER_WRAP_TTL"))
            .or_else(|| env.get("VAULT_WRAP_TTL"))
        {
            // Vault treats a zero wrap TTL as "do not wrap".
            Some(text) => match duration::parse_duration_seconds("wrap-ttl", text)? {
                0 => None,
                seconds => Some(format!("{seconds}s")),
            },
            None => None,
        };
        Ok(Self {
            env,
            settings: ConnectionSettings::resolve(&flags, env)?,
            format: OutputFormat::parse(&format_text)?,
            field: global.field.clone(),
            wrap_ttl,
            out: output.out,
            err: output.err,
            stdin,
            stdout_is_terminal: output.stdout_is_terminal,
            stdin_is_terminal: output.stdin_is_terminal,
        })
    }

    /// A client for the resolved settings, wrapping responses when `-wrap-ttl` asks for it.
    fn client(&self) -> CliResult<Client> {
        Ok(Client::new(&self.settings)?.with_wrap_ttl(self.wrap_ttl.clone()))
    }

    /// Print a warning line to stderr (Vault's `UI.Warn`). A broken stderr is ignored: the
    /// warning is advisory and the command's real output has its own error handling.
    fn warn(&mut self, text: &str) {
        let _ = writeln!(self.err, "{}", text.trim_end());
    }

    /// Print `text`, adding a final newline if it lacks one.
    fn print(&mut self, text: &str) -> CliResult<()> {
        let result = if text.ends_with('\n') {
            self.out.write_all(text.as_bytes())
        } else {
            writeln!(self.out, "{text}")
        };
        result.map_err(|e| CliError::io("error writing output", e))
    }

    /// Print a value as pretty JSON.
    fn print_json(&mut self, value: &Value) -> CliResult<()> {
        self.print(&output::json_text(value))
    }

    /// Print a response envelope as Vault's `OutputSecret` does: `-field`, JSON, or table.
    fn print_secret(&mut self, secret: &Value) -> CliResult<i32> {
        if let Some(field) = self.field.clone() {
            return self.print_field(secret, None, &field);
        }
        match self.format {
            OutputFormat::Json => self.print_json(secret)?,
            OutputFormat::Table => {
                if let Some(table) = output::secret_table(secret) {
                    self.print(&table)?;
                }
            }
        }
        Ok(0)
    }

    /// Print one field's raw value; exit code 1 with Vault's message when it is absent.
    fn print_field(&mut self, secret: &Value, data: Option<&Value>, field: &str) -> CliResult<i32> {
        let Some(value) = output::extract_field(secret, data, field) else {
            return Err(CliError::FieldMissing(field.to_owned()));
        };
        let text = output::raw_field_text(&value, self.format);
        let written = if self.stdout_is_terminal {
            writeln!(self.out, "{text}")
        } else {
            write!(self.out, "{text}")
        };
        written.map_err(|e| CliError::io("error writing output", e))?;
        Ok(0)
    }
}
