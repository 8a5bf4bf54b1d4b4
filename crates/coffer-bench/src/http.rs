//! One-shot HTTP exchanges for setting servers up (init, unseal, mount, seed data) and small
//! loopback helpers. The measured traffic goes through [`crate::load`] instead.

use crate::error::BenchError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;
use tokio::net::TcpStream;

/// How long any single setup exchange may take before the harness gives up.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete response: status, headers and collected body.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The response status.
    pub status: StatusCode,
    /// The response headers, as sent.
    pub headers: HeaderMap,
    /// The whole response body.
    pub body: Bytes,
}

impl Exchange {
    /// The body parsed as JSON, or an error naming `context`.
    pub fn json(&self, context: &str) -> Result<Value, BenchError> {
        serde_json::from_slice(&self.body).map_err(|e| BenchError::UnexpectedResponse {
            context: context.into(),
            detail: format!("body is not JSON ({e})"),
        })
    }

    /// `self` if the status is 2xx, otherwise an error with the status and Vault's `errors`.
    pub fn expect_success(self, context: &str) -> Result<Exchange, BenchError> {
        if self.status.is_success() {
            return Ok(self);
        }
        // Vault error bodies carry messages, never secret values, so they are safe to show.
        let errors = serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .unwrap_or(Value::Null);
        Err(BenchError::UnexpectedResponse {
            context: context.into(),
            detail: format!("status {} errors {errors}", self.status),
        })
    }
}

/// A loopback port that was free a moment ago (bound and released), for a server to listen on.
pub fn free_loopback_port() -> Result<u16, BenchError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| BenchError::io("reserving a loopback port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| BenchError::io("reading the reserved port", e))?
        .port();
    Ok(port)
}

/// Build a request for `path` on `addr`, with the Vault token header when `token` is given
/// and a JSON body when `body` is given.
pub fn build_request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> hyper::Request<Full<Bytes>> {
    let payload = body
        .map(|b| Bytes::from(serde_json::to_vec(b).expect("JSON values encode")))
        .unwrap_or_default();
    let mut req = hyper::Request::new(Full::new(payload));
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().expect("benchmark paths are valid URIs");
    let headers = req.headers_mut();
    headers.insert(
        HOST,
        HeaderValue::from_str(&addr.to_string()).expect("socket addresses are valid header values"),
    );
    if let Some(token) = token {
        headers.insert(
            "x-vault-token",
            HeaderValue::from_str(token).expect("tokens are printable ASCII"),
        );
    }
    if body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    req
}

/// Encode a request as HTTP/1.1 bytes, ready to write to a keep-alive connection as often as
/// the load generator likes: the same headers [`build_request`] sets, plus `content-length`.
pub fn encode_request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Bytes {
    let payload = body
        .map(|b| serde_json::to_vec(b).expect("JSON values encode"))
        .unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n");
    if let Some(token) = token {
        request.push_str(&format!("x-vault-token: {token}\r\n"));
    }
    if body.is_some() {
        request.push_str("content-type: application/json\r\n");
    }
    if !payload.is_empty() || method != Method::GET {
        request.push_str(&format!("content-length: {}\r\n", payload.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(&payload);
    Bytes::from(bytes)
}

/// One request on a fresh connection, bounded by [`SETUP_TIMEOUT`].
pub async fn exchange(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Exchange, BenchError> {
    exchange_within(SETUP_TIMEOUT, addr, method, path, token, body).await
}

/// One request on a fresh connection, bounded by `timeout` (for the few operations, such as
/// revoking a large prefix, that are themselves what is measured and may take long).
pub async fn exchange_within(
    timeout: Duration,
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Exchange, BenchError> {
    let context = format!("{method} {path}");
    let request = build_request(addr, method, path, token, body);
    match tokio::time::timeout(timeout, send_on_new_connection(addr, request)).await {
        Ok(result) => result.map_err(|detail| BenchError::http(context, detail)),
        Err(_) => Err(BenchError::http(
            context,
            format!("no answer within {timeout:?}"),
        )),
    }
}

async fn send_on_new_connection(
    addr: SocketAddr,
    request: hyper::Request<Full<Bytes>>,
) -> Result<Exchange, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    driver.abort();
    Ok(Exchange {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A string field of a successful answer's JSON (`pointer` as in RFC 6901, e.g.
/// `/auth/client_token`), or an error naming what is missing.
pub fn string_at(answer: &Value, pointer: &str, context: &str) -> Result<String, BenchError> {
    answer
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| BenchError::UnexpectedResponse {
            context: context.into(),
            detail: format!("no {pointer} in the answer"),
        })
}

/// Initialise a server speaking Vault's API with one key share; returns the unseal key and
/// the root token (Coffer and RustyVault alike).
pub async fn initialise_one_share(
    addr: SocketAddr,
    context: &str,
) -> Result<(String, String), BenchError> {
    let init = exchange(
        addr,
        Method::PUT,
        "/v1/sys/init",
        None,
        Some(&serde_json::json!({ "secret_shares": 1, "secret_threshold": 1 })),
    )
    .await?
    .expect_success(context)?
    .json(context)?;
    Ok((
        string_at(&init, "/keys/0", context)?,
        string_at(&init, "/root_token", context)?,
    ))
}

/// Send the one unseal key; returns when the answer has arrived.
pub async fn unseal(addr: SocketAddr, key: &str, context: &str) -> Result<(), BenchError> {
    exchange(
        addr,
        Method::PUT,
        "/v1/sys/unseal",
        None,
        Some(&serde_json::json!({ "key": key })),
    )
    .await?
    .expect_success(context)?;
    Ok(())
}

/// Create a token with `body` (`auth/token/create`) as `parent`; returns the new token.
pub async fn create_token(
    addr: SocketAddr,
    parent: &str,
    body: &Value,
    context: &str,
) -> Result<String, BenchError> {
    let created = exchange(
        addr,
        Method::POST,
        "/v1/auth/token/create",
        Some(parent),
        Some(body),
    )
    .await?
    .expect_success(context)?
    .json(context)?;
    string_at(&created, "/auth/client_token", context)
}

#[cfg(test)]
mod tests {
    use super::string_at;
    use serde_json::json;

    #[test]
    fn string_at_reads_nested_strings_and_names_what_is_missing() {
        let answer = json!({"keys": ["k1"], "auth": {"client_token": "t", "n": 5}});
        assert_eq!(string_at(&answer, "/keys/0", "init").unwrap(), "k1");
        assert_eq!(string_at(&answer, "/auth/client_token", "c").unwrap(), "t");
        let missing = string_at(&answer, "/root_token", "init")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("/root_token"), "{missing}");
        assert!(
            string_at(&answer, "/auth/n", "c").is_err(),
            "a number is not a string"
        );
    }
}
