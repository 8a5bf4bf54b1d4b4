//! Vault's JSON response envelope. Rendered here, once, for the HTTP dialect and for response
//! wrapping (which stores exactly what the client would otherwise have received).

use coffer_sdk::logical::{Auth, WrapInfo};
use coffer_sdk::Response;
use serde_json::{Map, Value};

/// Borrows the response: serialising it builds no intermediate JSON tree (this runs on every
/// request). The envelope is written by [`to_bytes_from_mount`]; serde's rendering of this
/// struct is the reference the tests hold it to.
#[cfg_attr(test, derive(serde::Serialize))]
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
///
/// Written out here rather than by serde: serde_json escapes strings a byte at a time, which
/// was the largest single cost of rendering a KV read (3.6k of its 44k instructions), while
/// most strings in an answer need no escape at all and can be copied whole. The bytes are the
/// same as serde_json's (the tests compare the two on random answers).
pub fn to_bytes_from_mount(resp: &Response, request_id: &str, mount_type: &str) -> Vec<u8> {
    let e = borrow(resp, request_id, mount_type);
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"request_id\":");
    write_str(&mut out, e.request_id);
    out.extend_from_slice(b",\"lease_id\":");
    write_str(&mut out, e.lease_id);
    out.extend_from_slice(if e.renewable {
        b",\"renewable\":true"
    } else {
        b",\"renewable\":false"
    });
    out.extend_from_slice(b",\"lease_duration\":");
    write_serde(&mut out, &e.lease_duration);
    out.extend_from_slice(b",\"data\":");
    match (e.data, &resp.data_json) {
        (Some(map), _) => write_object(&mut out, map),
        (None, Some(json)) => out.extend_from_slice(json),
        (None, None) => out.extend_from_slice(b"null"),
    }
    // Rare or small: serde renders them.
    out.extend_from_slice(b",\"wrap_info\":");
    write_serde(&mut out, e.wrap_info);
    out.extend_from_slice(b",\"warnings\":");
    write_serde(&mut out, &e.warnings);
    out.extend_from_slice(b",\"auth\":");
    write_serde(&mut out, e.auth);
    out.extend_from_slice(b",\"mount_type\":");
    write_str(&mut out, e.mount_type);
    out.extend_from_slice(b"}\n");
    out
}

fn write_serde<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).expect("the envelope always encodes");
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_serde(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

/// A JSON string: copied whole when nothing in it needs escaping (JSON escapes only `"`, `\`
/// and control characters below U+0020), otherwise escaped by serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_serde(out, s);
    }
}

/// Whether any byte is one JSON escapes. Checked sixteen bytes at a time without an early
/// exit inside the block, which the compiler turns into vector compares: a byte-at-a-time
/// check with an exit per byte was ~7 instructions a byte, the largest single cost of writing
/// an envelope.
fn needs_escape(bytes: &[u8]) -> bool {
    fn special(b: u8) -> bool {
        (b < 0x20) | (b == b'"') | (b == b'\\')
    }
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |any, &b| any | special(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| special(b))
}

/// Whether the response has nothing to say (HTTP 204).
pub fn is_empty(resp: &Response) -> bool {
    resp.raw.is_none()
        && resp.data.is_none()
        && resp.data_json.is_none()
        && resp.auth.is_none()
        && resp.warnings.is_empty()
        && resp.secret.is_none()
        && resp.wrap_info.is_none()
        && resp.status.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_sdk::logical::SecretLease;
    use proptest::prelude::*;

    /// serde_json's rendering of the same envelope: what the hand-written one must equal.
    fn by_serde(resp: &Response, request_id: &str, mount_type: &str) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(&borrow(resp, request_id, mount_type)).unwrap();
        bytes.push(b'\n');
        bytes
    }

    #[test]
    fn needs_escape_finds_each_special_byte_at_every_position() {
        for len in 0..70 {
            let plain = vec![b'a'; len];
            assert!(!needs_escape(&plain), "{len}");
            for at in 0..len {
                for special in [0x00, 0x0a, 0x1f, b'"', b'\\'] {
                    let mut bytes = plain.clone();
                    bytes[at] = special;
                    assert!(needs_escape(&bytes), "{len} {at} {special}");
                }
                for ordinary in [0x20, 0x7f, 0x80, 0xff, b'/', b'\''] {
                    let mut bytes = plain.clone();
                    bytes[at] = ordinary;
                    assert!(!needs_escape(&bytes), "{len} {at} {ordinary}");
                }
            }
        }
    }

    /// Strings with every kind of character JSON treats specially, and plain ones.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9/_.-]{0,12}",
            any::<String>(),
            proptest::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('\n'),
                    Just('\u{0}'),
                    Just('\u{1f}'),
                    Just('\u{7f}'),
                    Just('é'),
                    Just('\u{2028}'),
                    Just('😀'),
                    Just('a'),
                ],
                0..8
            )
            .prop_map(|chars| chars.into_iter().collect()),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_written_envelope_is_byte_for_byte_serdes(
            data in proptest::option::of(proptest::collection::btree_map(text(), value(), 0..5)),
            request_id in text(),
            mount_type in text(),
            warnings in proptest::collection::vec(text(), 0..3),
            lease in proptest::option::of((text(), any::<u32>(), any::<bool>())),
            refresh in proptest::option::of(any::<u32>()),
        ) {
            let resp = Response {
                data: data.map(|m| m.into_iter().collect()),
                warnings,
                secret: lease.map(|(lease_id, ttl, renewable)| SecretLease {
                    lease_id,
                    ttl: std::time::Duration::from_secs(u64::from(ttl)),
                    renewable,
                    ..SecretLease::default()
                }),
                refresh_interval: refresh.map(|s| std::time::Duration::from_secs(u64::from(s))),
                ..Response::default()
            };
            let written = to_bytes_from_mount(&resp, &request_id, &mount_type);
            let reference = by_serde(&resp, &request_id, &mount_type);
            prop_assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&reference)
            );
            prop_assert_eq!(&written, &reference);
            // Data the engine rendered itself is copied into the same place.
            if let Some(map) = &resp.data {
                let rendered = Response {
                    data: None,
                    data_json: Some(serde_json::to_vec(map).unwrap()),
                    ..resp.clone()
                };
                prop_assert_eq!(to_bytes_from_mount(&rendered, &request_id, &mount_type), reference);
                prop_assert!(!is_empty(&rendered));
            }
        }
    }

    #[test]
    fn a_kv_read_answer_renders_as_vault_shapes_it() {
        let mut data = Map::new();
        data.insert("data".into(), serde_json::json!({"value": "s\"3cr\\et\n"}));
        data.insert(
            "metadata".into(),
            serde_json::json!({"version": 1, "destroyed": false}),
        );
        let resp = Response {
            data: Some(data),
            ..Response::default()
        };
        let text = String::from_utf8(to_bytes_from_mount(&resp, "id-1", "kv")).unwrap();
        assert_eq!(
            text,
            "{\"request_id\":\"id-1\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,\"data\":{\"data\":{\"value\":\"s\\\"3cr\\\\et\\n\"},\"metadata\":{\"destroyed\":false,\"version\":1}},\"wrap_info\":null,\"warnings\":null,\"auth\":null,\"mount_type\":\"kv\"}\n"
        );
    }
}
