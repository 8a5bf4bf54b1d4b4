//! `unwrap [TOKEN]`: redeem a response-wrapping token for the response it holds.

use serde_json::{json, Value};

use crate::cli::UnwrapArgs;
use crate::client::Client;
use crate::commands::print_keys;
use crate::error::{CliError, CliResult, ErrorContext};
use crate::Session;

/// `unwrap [TOKEN]`: with no argument the current token is the wrapping token, as in Vault.
pub(crate) fn unwrap(args: UnwrapArgs, session: &mut Session<'_>) -> CliResult<i32> {
    // Unwrapping must never itself be wrapped, or the secret would vanish into a new token.
    let client = session.client()?.with_wrap_ttl(None);
    let wrapping_token = args.token.map(|t| t.trim().to_owned());
    let response = unwrap_response(&client, wrapping_token.as_deref())
        .context(|| "Error unwrapping".to_owned())?;
    if response.is_null() {
        return Err(CliError::NotFound(
            "Could not find wrapped response".to_owned(),
        ));
    }
    if let Some(field) = session.field.clone() {
        return session.print_field(&response, None, &field);
    }
    if is_list_response(&response) {
        return print_keys(session, &response, "the wrapped response");
    }
    session.print_secret(&response)
}

/// `PUT sys/wrapping/unwrap` the way Vault's client does: a wrapping token that differs from
/// the client's own goes in the body; otherwise (or with no client token) it authenticates
/// the request itself.
pub(crate) fn unwrap_response(client: &Client, wrapping_token: Option<&str>) -> CliResult<Value> {
    match wrapping_token.filter(|t| !t.is_empty()) {
        Some(token) if client.token().is_some_and(|own| own != token) => {
            client.put("sys/wrapping/unwrap", &json!({ "token": token }))
        }
        Some(token) => client
            .with_token(token)
            .put("sys/wrapping/unwrap", &json!({})),
        None => client.put("sys/wrapping/unwrap", &json!({})),
    }
}

/// Whether an unwrapped response is a LIST answer (only `keys` in its data), which Vault
/// prints as a list rather than a Key/Value table.
fn is_list_response(response: &Value) -> bool {
    response
        .get("data")
        .and_then(Value::as_object)
        .is_some_and(|data| data.len() == 1 && data.get("keys").is_some_and(Value::is_array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_only_data_counts_as_a_list() {
        assert!(is_list_response(&json!({"data": {"keys": ["a", "b/"]}})));
        assert!(!is_list_response(
            &json!({"data": {"keys": ["a"], "other": 1}})
        ));
        assert!(!is_list_response(&json!({"data": {"keys": "a"}})));
        assert!(!is_list_response(&json!({"data": null})));
    }
}
