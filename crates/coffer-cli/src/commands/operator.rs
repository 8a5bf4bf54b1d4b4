//! `status` and `operator ...`: seal status, initialisation, unsealing, rekeying, key rotation.

use serde_json::{json, Value};

use crate::cli::{InitArgs, OperatorCommand, RekeyArgs, UnsealArgs};
use crate::error::{CliError, CliResult, ErrorContext};
use crate::output::{go_value, key_value_table, OutputFormat};
use crate::prompt::read_secret;
use crate::Session;

/// Run an `operator` subcommand.
pub(crate) fn run(command: OperatorCommand, session: &mut Session<'_>) -> CliResult<i32> {
    match command {
        OperatorCommand::Init(args) => init(args, session),
        OperatorCommand::Unseal(args) => unseal(args, session),
        OperatorCommand::Seal => seal(session),
        OperatorCommand::Rekey(args) => rekey(args, session),
        OperatorCommand::KeyStatus => key_status(session),
        OperatorCommand::Rotate => rotate(session),
    }
}

/// A field of a `sys/` response: Vault returns these at the top level and, on newer
/// servers, also under `data`.
fn sys_field<'v>(response: &'v Value, name: &str) -> Option<&'v Value> {
    response
        .get(name)
        .or_else(|| response.get("data").and_then(|d| d.get(name)))
}

fn sys_text(response: &Value, name: &str) -> String {
    sys_field(response, name).map(go_value).unwrap_or_default()
}

/// `status`: seal status, exit code 2 when sealed and 1 on any error (as Vault does), so a
/// script can tell "sealed" from "not reachable".
pub(crate) fn status(session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    let response = match client
        .get("sys/seal-status")
        .context(|| "Error checking seal status".to_owned())
    {
        Ok(response) => response,
        Err(error) => {
            session.warn(&error.to_string());
            return Ok(1);
        }
    };
    print_seal_status(session, &response)?;
    let sealed = sys_field(&response, "sealed")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(if sealed { 2 } else { 0 })
}

/// Vault's seal-status table (or the raw object in JSON mode).
fn print_seal_status(session: &mut Session<'_>, status: &Value) -> CliResult<()> {
    if session.format == OutputFormat::Json {
        return session.print_json(status);
    }
    let sealed = sys_field(status, "sealed")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut rows = vec![
        ("Seal Type".to_owned(), sys_text(status, "type")),
        ("Initialized".to_owned(), sys_text(status, "initialized")),
        ("Sealed".to_owned(), sys_text(status, "sealed")),
        ("Total Shares".to_owned(), sys_text(status, "n")),
        ("Threshold".to_owned(), sys_text(status, "t")),
    ];
    if sealed {
        rows.push((
            "Unseal Progress".to_owned(),
            format!("{}/{}", sys_text(status, "progress"), sys_text(status, "t")),
        ));
        rows.push(("Unseal Nonce".to_owned(), sys_text(status, "nonce")));
    }
    rows.push(("Version".to_owned(), sys_text(status, "version")));
    for (label, key) in [
        ("Build Date", "build_date"),
        ("Storage Type", "storage_type"),
        ("Cluster Name", "cluster_name"),
        ("Cluster ID", "cluster_id"),
    ] {
        if sys_field(status, key).is_some() {
            rows.push((label.to_owned(), sys_text(status, key)));
        }
    }
    rows.push((
        "HA Enabled".to_owned(),
        sys_field(status, "ha_enabled").map_or_else(|| "false".to_owned(), go_value),
    ));
    session.print(&key_value_table(&rows))
}

fn init(args: InitArgs, session: &mut Session<'_>) -> CliResult<i32> {
    if args.key_threshold == 0 || args.key_threshold > args.key_shares {
        return Err(CliError::usage(format!(
            "-key-threshold ({}) must be between 1 and -key-shares ({})",
            args.key_threshold, args.key_shares
        )));
    }
    let client = session.client()?;
    let response = client
        .put(
            "sys/init",
            &json!({"secret_shares": args.key_shares, "secret_threshold": args.key_threshold}),
        )
        .context(|| "Error initializing".to_owned())?;
    let keys_hex = string_list(sys_field(&response, "keys"));
    let keys_b64 = string_list(sys_field(&response, "keys_base64"));
    let root_token = sys_text(&response, "root_token");
    if session.format == OutputFormat::Json {
        return session
            .print_json(&json!({
                "unseal_keys_b64": keys_b64,
                "unseal_keys_hex": keys_hex,
                "unseal_shares": args.key_shares,
                "unseal_threshold": args.key_threshold,
                "recovery_keys_b64": [],
                "recovery_keys_hex": [],
                "recovery_keys_shares": 0,
                "recovery_keys_threshold": 0,
                "root_token": root_token,
            }))
            .map(|()| 0);
    }
    let shown = if keys_b64.is_empty() {
        &keys_hex
    } else {
        &keys_b64
    };
    let mut text = String::new();
    for (index, key) in shown.iter().enumerate() {
        text.push_str(&format!("Unseal Key {}: {key}\n", index + 1));
    }
    let threshold = args.key_threshold;
    text.push_str(&format!(
        "\nInitial Root Token: {root_token}\n\n\
         Coffer initialized with {} key shares and a key threshold of {threshold}. Please\n\
         securely distribute the key shares printed above. When the server is re-sealed,\n\
         restarted, or stopped, you must supply at least {threshold} of these keys to unseal it\n\
         before it can start servicing requests.\n\n\
         Coffer does not store the generated root key. Without at least {threshold} keys to\n\
         reconstruct the root key, Coffer will remain permanently sealed!\n\n\
         It is possible to generate new unseal keys, provided you have a quorum of\n\
         existing unseal keys shares. See \"coffer operator rekey\" for more information.",
        args.key_shares
    ));
    session.print(&text)?;
    Ok(0)
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A key share not given as an argument: prompted for (hidden) on a terminal, else one line
/// of stdin (see [`crate::prompt`]).
fn read_key_share(session: &mut Session<'_>, prompt: &str) -> CliResult<String> {
    let key = read_secret(session, prompt, "unseal key")?;
    if key.trim().is_empty() {
        return Err(CliError::usage(
            "No unseal key given: type it at the prompt, pipe it on stdin, or pass it as an argument",
        ));
    }
    Ok(key.trim().to_owned())
}

fn unseal(args: UnsealArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let body = if args.reset {
        json!({"reset": true})
    } else {
        let key = match args.key {
            Some(key) => key,
            None => read_key_share(session, "Unseal Key (will be hidden): ")?,
        };
        json!({"key": key})
    };
    let client = session.client()?;
    let response = client
        .put("sys/unseal", &body)
        .context(|| "Error unsealing".to_owned())?;
    print_seal_status(session, &response)?;
    Ok(0)
}

fn seal(session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    client
        .put("sys/seal", &json!({}))
        .context(|| "Error sealing".to_owned())?;
    session.print("Success! Coffer is sealed.")?;
    Ok(0)
}

fn rekey(args: RekeyArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    let chosen = [args.init, args.cancel, args.status, args.key.is_some()]
        .iter()
        .filter(|set| **set)
        .count();
    if chosen > 1 {
        return Err(CliError::usage(
            "Choose one of -init, -cancel, -status or a KEY argument",
        ));
    }
    if args.init {
        let response = client
            .put(
                "sys/rekey/init",
                &json!({"secret_shares": args.key_shares, "secret_threshold": args.key_threshold}),
            )
            .context(|| "Error initializing rekey".to_owned())?;
        print_rekey_status(session, &response)?;
        return Ok(0);
    }
    if args.cancel {
        client
            .delete("sys/rekey/init")
            .context(|| "Error canceling rekey".to_owned())?;
        session.print("Success! Canceled rekeying (if it was started)")?;
        return Ok(0);
    }
    let status = client
        .get("sys/rekey/init")
        .context(|| "Error reading rekey status".to_owned())?;
    if args.status {
        print_rekey_status(session, &status)?;
        return Ok(0);
    }
    let started = sys_field(&status, "started")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !started {
        return Err(CliError::usage(
            "No rekey is in progress. Start a rekey process by running \"coffer operator rekey -init\".",
        ));
    }
    let key = match args.key {
        Some(key) => key,
        None => read_key_share(session, "Key (will be hidden): ")?,
    };
    let nonce = args.nonce.unwrap_or_else(|| sys_text(&status, "nonce"));
    let response = client
        .put("sys/rekey/update", &json!({"key": key, "nonce": nonce}))
        .context(|| "Error posting unseal key".to_owned())?;
    let complete = sys_field(&response, "complete")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !complete {
        let status = client
            .get("sys/rekey/init")
            .context(|| "Error reading rekey status".to_owned())?;
        print_rekey_status(session, &status)?;
        return Ok(0);
    }
    if session.format == OutputFormat::Json {
        session.print_json(&response)?;
        return Ok(0);
    }
    let keys_b64 = string_list(sys_field(&response, "keys_base64"));
    let keys = if keys_b64.is_empty() {
        string_list(sys_field(&response, "keys"))
    } else {
        keys_b64
    };
    let mut text = String::new();
    for (index, key) in keys.iter().enumerate() {
        text.push_str(&format!("Key {}: {key}\n", index + 1));
    }
    text.push_str(&format!(
        "\nOperation nonce: {}\n\nCoffer rekeyed with {} key shares and a key threshold of {}. Please\n\
         securely distribute the key shares printed above.",
        sys_text(&response, "nonce"),
        keys.len(),
        sys_text(&status, "t"),
    ));
    session.print(&text)?;
    Ok(0)
}

fn print_rekey_status(session: &mut Session<'_>, status: &Value) -> CliResult<()> {
    if session.format == OutputFormat::Json {
        return session.print_json(status);
    }
    let rows = vec![
        ("Nonce".to_owned(), sys_text(status, "nonce")),
        ("Started".to_owned(), sys_text(status, "started")),
        (
            "Rekey Progress".to_owned(),
            format!(
                "{}/{}",
                sys_text(status, "progress"),
                sys_text(status, "required")
            ),
        ),
        ("New Shares".to_owned(), sys_text(status, "n")),
        ("New Threshold".to_owned(), sys_text(status, "t")),
        (
            "Verification Required".to_owned(),
            sys_field(status, "verification_required").map_or_else(|| "false".to_owned(), go_value),
        ),
    ];
    session.print(&key_value_table(&rows))
}

fn key_status(session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    let response = client
        .get("sys/key-status")
        .context(|| "Error reading key status".to_owned())?;
    print_key_status(session, &response)?;
    Ok(0)
}

fn print_key_status(session: &mut Session<'_>, status: &Value) -> CliResult<()> {
    if session.format == OutputFormat::Json {
        return session.print_json(status);
    }
    let mut rows = vec![
        ("Key Term".to_owned(), sys_text(status, "term")),
        ("Install Time".to_owned(), sys_text(status, "install_time")),
    ];
    if sys_field(status, "encryptions").is_some() {
        rows.push((
            "Encryption Count".to_owned(),
            sys_text(status, "encryptions"),
        ));
    }
    session.print(&key_value_table(&rows))
}

fn rotate(session: &mut Session<'_>) -> CliResult<i32> {
    let client = session.client()?;
    client
        .put("sys/rotate", &json!({}))
        .context(|| "Error rotating key".to_owned())?;
    let status = client
        .get("sys/key-status")
        .context(|| "Error after rotating key".to_owned())?;
    if session.format == OutputFormat::Table {
        session.print("Success! Rotated key\n")?;
    }
    print_key_status(session, &status)?;
    Ok(0)
}
