//! Vault's JSON response envelope. Rendered here, once, for the HTTP dialect and for response
//! wrapping (which stores exactly what the client would otherwise have received).

use coffer_sdk::logical::{Auth, WrapInfo};
use coffer_sdk::Response;
use serde::Serialize;
use serde_json::{Map, Value};

/// Borrows the response: serialising it builds no intermediate JSON tree (this runs on every
/// request).
#[derive(Serialize)]
struct Envelope<'a> {
    request_id: &'a str,
    lease_id: &'a str,
    renewable: bool,
    lease_duration: u64,
    data: &'a Option<Map<String, Value>>,
    wrap_info: &'a Option<WrapInfo>,
    warnings: Option<&'a [String]>,
    auth: &'a Option<Auth>,
    mount_type: &'a str,
}

fn borrow<'a>(resp: &'a Response, request_id: &'a str, mount_type: &'a str) -> Envelope<'a> {
    let (lease_id, lease_duration, renewable) = match &resp.secret {
        Some(s) => (s.lease_id.as_str(), s.ttl.as_secs(), s.renewable),
        None => ("", resp.refresh_interval.map_or(0, |d| d.as_secs()), false),
    };
    Envelope {
        request_id,
        lease_id,
        renewable,
        lease_duration,
        data: &resp.data,
        wrap_info: &resp.wrap_info,
        warnings: (!resp.warnings.is_empty()).then_some(&resp.warnings[..]),
        auth: &resp.auth,
        mount_type,
    }
}

/// The envelope as JSON bytes, ending in a newline, with `mount_type` naming the type of the
/// mount that answered (`kv`, `token`, `system`), as Vault's does.
pub fn to_bytes_from_mount(resp: &Response, request_id: &str, mount_type: &str) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&borrow(resp, request_id, mount_type))
        .expect("the envelope always encodes");
    bytes.push(b'\n');
    bytes
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
