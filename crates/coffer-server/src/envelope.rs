//! Vault's JSON response envelope. Rendered here, once, for the HTTP dialect and for response
//! wrapping (which stores exactly what the client would otherwise have received).

use coffer_sdk::Response;
use serde_json::{json, Value};

/// The envelope of a non-raw response.
pub fn envelope(resp: &Response, request_id: &str) -> Value {
    let (lease_id, lease_duration, renewable) = resp.secret.as_ref().map_or(
        (
            String::new(),
            resp.refresh_interval.map_or(0, |d| d.as_secs()),
            false,
        ),
        |s| (s.lease_id.clone(), s.ttl.as_secs(), s.renewable),
    );
    json!({
        "request_id": request_id,
        "lease_id": lease_id,
        "renewable": renewable,
        "lease_duration": lease_duration,
        "data": resp.data,
        "wrap_info": resp.wrap_info,
        "warnings": if resp.warnings.is_empty() { Value::Null } else { json!(resp.warnings) },
        "auth": resp.auth,
        "mount_type": "",
    })
}

/// Whether the response has nothing to say (HTTP 204).
pub fn is_empty(resp: &Response) -> bool {
    resp.raw.is_none()
        && resp.data.is_none()
        && resp.auth.is_none()
        && resp.warnings.is_empty()
        && resp.secret.is_none()
        && resp.wrap_info.is_none()
        && resp.status.is_none()
}
