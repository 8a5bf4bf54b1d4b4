//! `lease lookup|renew|revoke`: Vault's lease commands over `sys/leases/*`.

use serde_json::{json, Map, Value};

use crate::cli::{LeaseCommand, LeaseIdArgs, LeaseRenewArgs, LeaseRevokeArgs};
use crate::duration::parse_duration_seconds;
use crate::error::{CliError, CliResult, ErrorContext};
use crate::Session;

/// Run a `lease` subcommand.
pub(crate) fn run(command: LeaseCommand, session: &mut Session<'_>) -> CliResult<i32> {
    match command {
        LeaseCommand::Lookup(args) => lookup(args, session),
        LeaseCommand::Renew(args) => renew(args, session),
        LeaseCommand::Revoke(args) => revoke(args, session),
    }
}

/// The lease ID as Vault's CLI sends it: surrounding whitespace removed, never empty.
fn lease_id(raw: &str) -> CliResult<String> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(CliError::usage("Missing ID: give a lease ID"));
    }
    Ok(id.to_owned())
}

fn lookup(args: LeaseIdArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let id = lease_id(&args.lease_id)?;
    let response = session
        .client()?
        .put("sys/leases/lookup", &json!({ "lease_id": id }))
        .context(|| format!("error looking up lease id {id}"))?;
    session.print_secret(&response)
}

fn renew(args: LeaseRenewArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let id = lease_id(&args.lease_id)?;
    // Vault's CLI sends the increment as whole seconds, 0 meaning "the lease's own TTL".
    let increment = match args.increment.as_deref() {
        Some(text) => parse_duration_seconds("increment", text)?,
        None => 0,
    };
    let response = session
        .client()?
        .put(
            "sys/leases/renew",
            &json!({ "lease_id": id, "increment": increment }),
        )
        .context(|| format!("Error renewing {id}"))?;
    session.print_secret(&response)
}

/// Where a revocation goes and what it sends, as Vault's `RevokeWithOptions` builds it.
#[derive(Debug, PartialEq)]
struct RevokeRequest {
    path: String,
    body: Value,
}

impl RevokeRequest {
    fn new(id: &str, args: &LeaseRevokeArgs) -> CliResult<Self> {
        if args.force && !args.prefix {
            return Err(CliError::usage(
                "Specifying -force requires also specifying -prefix",
            ));
        }
        if args.force {
            // Force revocation is synchronous by nature and takes no body.
            return Ok(Self {
                path: format!("sys/leases/revoke-force/{id}"),
                body: json!({}),
            });
        }
        let mut body = Map::new();
        body.insert("sync".into(), json!(args.sync));
        let path = if args.prefix {
            format!("sys/leases/revoke-prefix/{id}")
        } else {
            body.insert("lease_id".into(), json!(id));
            "sys/leases/revoke".to_owned()
        };
        Ok(Self {
            path,
            body: Value::Object(body),
        })
    }
}

fn revoke(args: LeaseRevokeArgs, session: &mut Session<'_>) -> CliResult<i32> {
    let id = lease_id(&args.lease_id)?;
    let request = RevokeRequest::new(&id, &args)?;
    if args.force {
        session.warn(
            "Warning! Force-removing leases can cause Coffer to become out of sync with \
             secret engines!",
        );
    }
    session
        .client()?
        .put(&request.path, &request.body)
        .context(|| match (args.force, args.prefix) {
            (true, _) => format!("Error force revoking leases with prefix {id}"),
            (false, true) => format!("Error revoking leases with prefix {id}"),
            (false, false) => format!("Error revoking lease {id}"),
        })?;
    let message = match (args.force, args.sync, args.prefix) {
        (true, _, _) => format!("Success! Force revoked any leases with prefix: {id}"),
        (false, true, true) => format!("Success! Revoked any leases with prefix: {id}"),
        (false, true, false) => format!("Success! Revoked lease: {id}"),
        // Without -sync the server queues the revocation and keeps retrying it.
        (false, false, _) => "All revocation operations queued successfully!".to_owned(),
    };
    session.print(&message)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoke_args(prefix: bool, force: bool, sync: bool) -> LeaseRevokeArgs {
        LeaseRevokeArgs {
            lease_id: "auth/token/create/abc".into(),
            prefix,
            force,
            sync,
        }
    }

    #[test]
    fn a_single_lease_is_revoked_by_id_in_the_body() {
        let request =
            RevokeRequest::new("auth/token/create/abc", &revoke_args(false, false, true)).unwrap();
        assert_eq!(request.path, "sys/leases/revoke");
        assert_eq!(
            request.body,
            json!({"lease_id": "auth/token/create/abc", "sync": true})
        );
    }

    #[test]
    fn prefix_revocation_puts_the_prefix_in_the_path() {
        let request = RevokeRequest::new("auth/token/", &revoke_args(true, false, false)).unwrap();
        assert_eq!(request.path, "sys/leases/revoke-prefix/auth/token/");
        assert_eq!(request.body, json!({"sync": false}));
    }

    #[test]
    fn force_requires_prefix_and_goes_to_revoke_force() {
        let error = RevokeRequest::new("x/", &revoke_args(false, true, false)).unwrap_err();
        assert_eq!(error.exit_code(), 1);
        assert!(error.to_string().contains("-prefix"), "{error}");
        let request = RevokeRequest::new("x/", &revoke_args(true, true, false)).unwrap();
        assert_eq!(request.path, "sys/leases/revoke-force/x/");
    }

    #[test]
    fn blank_lease_ids_are_usage_errors() {
        assert_eq!(lease_id("  ").unwrap_err().exit_code(), 1);
        assert_eq!(lease_id(" a/b ").unwrap(), "a/b");
    }
}
