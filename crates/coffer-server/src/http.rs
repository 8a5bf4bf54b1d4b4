//! The Vault HTTP dialect: turns `/v1/...` requests into pipeline requests and pipeline
//! answers into Vault's JSON envelope. This is the only place an error becomes an HTTP status.

use crate::core::Core;
use bytes::{Bytes, BytesMut};
use coffer_sdk::logical::Connection;
use coffer_sdk::{Error, Operation, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, EXPECT,
};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode, Version};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Largest accepted request body (Vault's default).
pub const MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;

type HttpResponse = hyper::Response<Full<Bytes>>;

fn json_response(status: u16, body: Vec<u8>) -> HttpResponse {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `{"errors": [...]}` with the error's status, ending in a newline as Vault's does.
pub fn error_response(err: &Error) -> HttpResponse {
    let mut body =
        serde_json::to_vec(&serde_json::json!({ "errors": err.messages() })).expect("json encodes");
    body.push(b'\n');
    json_response(err.status(), body)
}

/// `mount_type` is the type of the mount that answered, for the envelope.
fn render(resp: Response, request_id: &str, head: bool, mount_type: &str) -> HttpResponse {
    if let Some(raw) = resp.raw {
        let status = resp.status.unwrap_or(200);
        let mut body = if head { Vec::new() } else { raw.body };
        // JSON the handler wrote itself ends in a newline too, as all of Vault's JSON does.
        if raw.content_type.starts_with("application/json") && body.last() == Some(&b'}') {
            body.push(b'\n');
        }
        let mut out = json_response(status, body);
        if let Ok(ct) = HeaderValue::from_str(&raw.content_type) {
            out.headers_mut().insert(CONTENT_TYPE, ct);
        }
        return out;
    }
    if crate::envelope::is_empty(&resp) {
        let mut out = json_response(204, Vec::new());
        out.headers_mut().remove(CONTENT_TYPE);
        return out;
    }
    let body = crate::envelope::to_bytes_from_mount(&resp, request_id, mount_type);
    json_response(resp.status.unwrap_or(200), body)
}

// Looked up by `HeaderName` rather than by `&str`, which would parse the name on every call.
const X_VAULT_TOKEN: HeaderName = HeaderName::from_static("x-vault-token");
const X_VAULT_NAMESPACE: HeaderName = HeaderName::from_static("x-vault-namespace");
const X_VAULT_WRAP_TTL: HeaderName = HeaderName::from_static("x-vault-wrap-ttl");

fn header<'a>(req: &'a Parts, name: &HeaderName) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn query_map(query: Option<&str>) -> Map<String, Value> {
    let mut map = Map::new();
    if let Some(q) = query {
        for (k, v) in form_urlencoded_pairs(q) {
            map.insert(k, Value::String(v));
        }
    }
    map
}

/// Percent-decode; `None` when an escape is malformed. `plus_is_space` for query strings.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if i + 3 > b.len() {
                    return None;
                }
                let hi = (b[i + 1] as char).to_digit(16)?;
                let lo = (b[i + 2] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_decode(s, true)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_else(|| s.to_string())
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Decode a URL path (percent-escapes), refusing malformed escapes and invalid UTF-8.
fn decode_path(raw: &str) -> Result<String, Error> {
    if !raw.contains('%') {
        // Nothing to decode, and a `&str` is valid UTF-8 already.
        return Ok(raw.to_string());
    }
    let bytes =
        percent_decode(raw, false).ok_or_else(|| Error::bad("invalid percent-encoding in path"))?;
    String::from_utf8(bytes).map_err(|_| Error::bad("request path is not valid UTF-8"))
}

/// How an HTTP connection treats request bodies (from its listener's configuration).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// How long a client has to send a request's body once its headers are in.
    pub read_timeout: Option<Duration>,
}

/// The most of a request body the server reads and discards when it answers without needing
/// the body (a refused token, an unknown path, a method the path does not take). Reading it
/// leaves the connection at the start of the next request, so it stays usable; a longer unread
/// body is answered with `Connection: close` instead.
pub const DRAIN_LIMIT: usize = 64 * 1024;

/// How long draining waits for a body when the listener sets no read timeout.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

/// A request's body, read at most once, with the listener's read deadline.
struct Body {
    incoming: Incoming,
    /// Every byte of the body has been read.
    done: bool,
    /// Some of it has been read (or asked for).
    started: bool,
    deadline: Option<Instant>,
    timed_out: bool,
}

impl Body {
    fn new(incoming: Incoming, options: &Options) -> Body {
        let done = incoming.is_end_stream();
        Body {
            done,
            incoming,
            started: false,
            // A request without a body (every GET) has nothing to time: no clock read.
            deadline: options
                .read_timeout
                .filter(|_| !done)
                .map(|t| Instant::now() + t),
            timed_out: false,
        }
    }

    /// The next chunk of data; `Ok(None)` at the end.
    async fn next(&mut self, deadline: Option<Instant>) -> Result<Option<Bytes>, Error> {
        while !self.done {
            self.started = true;
            let frame = match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.incoming.frame()).await {
                        Ok(frame) => frame,
                        Err(_) => {
                            self.timed_out = true;
                            return Err(Error::bad("timed out reading the request body"));
                        }
                    }
                }
                None => self.incoming.frame().await,
            };
            match frame {
                None => self.done = true,
                Some(Err(_)) => return Err(Error::bad("failed to read request body")),
                Some(Ok(frame)) => {
                    if self.incoming.is_end_stream() {
                        self.done = true;
                    }
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The whole body, refused past `limit` bytes.
    async fn read_all(&mut self, limit: usize) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next(self.deadline).await? {
            if out.len() + chunk.len() > limit {
                return Err(Error::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// Read and discard what is left of the body, up to [`DRAIN_LIMIT`] bytes. True when the
    /// whole body has been read and the connection can carry another request.
    async fn drain(&mut self, expects_continue: bool) -> bool {
        if self.done {
            return true;
        }
        if self.timed_out || (expects_continue && !self.started) {
            // A client waiting for `100 Continue` has not sent the body; asking for it only
            // to throw it away costs a round trip.
            return false;
        }
        let deadline = self.deadline.unwrap_or_else(|| Instant::now() + DRAIN_WAIT);
        let mut drained = 0usize;
        loop {
            match self.next(Some(deadline)).await {
                Ok(None) => return true,
                Ok(Some(chunk)) => {
                    drained += chunk.len();
                    if drained > DRAIN_LIMIT && !self.done {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }
}

/// What every request on one connection shares, behind one `Arc` per connection: a request
/// takes a reference to this alone. Cloning the server-wide `Arc`s for every request instead
/// made each request write their shared reference counts, which worker threads on other
/// cores were writing too.
pub struct ConnectionScope {
    /// The server.
    pub core: Arc<Core>,
    /// Who is on the other end.
    pub connection: Arc<Connection>,
    /// The listener's body handling.
    pub options: Arc<Options>,
    /// The last token this connection presented, remembered for its next request.
    pub token_memo: crate::tokens::TokenMemo,
}

/// Serve one HTTP request.
///
/// `busy` marks the connection busy until the answer is ready (it drops when this returns).
pub async fn handle(
    scope: Arc<ConnectionScope>,
    req: hyper::Request<Incoming>,
    busy: crate::listener::RequestGuard,
) -> Result<HttpResponse, std::convert::Infallible> {
    let _busy = busy;
    let ConnectionScope {
        core,
        connection: conn,
        options,
        token_memo,
    } = &*scope;
    let request_id = {
        let mut bytes = [0u8; 16];
        crate::barrier::fill_random(&mut bytes);
        // Encoded straight into a buffer: `to_string` goes through the formatting machinery.
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .to_owned()
    };
    let (parts, incoming) = req.into_parts();
    let head = parts.method == Method::HEAD;
    let mut body = Body::new(incoming, options);
    let answer = handle_inner(core, conn, token_memo, &parts, &mut body, &request_id).await;
    let mut response = if body.timed_out {
        let mut response = error_response(&Error::bad("timed out reading the request body"));
        *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
        response
    } else {
        match answer {
            Ok((resp, mount_type)) => render(resp, &request_id, head, &mount_type),
            Err(err) => error_response(&err),
        }
    };
    // Whatever the answer, an HTTP/1 connection must be left at the start of the next request,
    // or closed with the client told so; never closed under a kept-alive client's next request.
    // (HTTP/2 ends an unread body by resetting its stream alone.)
    let expects_continue = parts
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    // Boxed: most requests have nothing left to drain, and the request's future stays small.
    if parts.version <= Version::HTTP_11
        && !body.done
        && !Box::pin(body.drain(expects_continue)).await
    {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

async fn handle_inner(
    core: &Core,
    conn: &Connection,
    token_memo: &crate::tokens::TokenMemo,
    req: &Parts,
    body: &mut Body,
    request_id: &str,
) -> Result<(Response, String), Error> {
    let raw_path = req.uri.path();
    let Some(rest) = raw_path.strip_prefix("/v1/") else {
        return Err(Error::UnsupportedPath(
            raw_path.trim_start_matches('/').to_string(),
        ));
    };
    let mut path = decode_path(rest)?;
    let mut query = query_map(req.uri.query());
    if let Some(ns) = header(req, &X_VAULT_NAMESPACE) {
        let ns = ns.trim().trim_matches('/');
        if !ns.is_empty() && ns != "root" {
            return Err(Error::bad(format!("namespaces are not enabled on this Coffer server (X-Vault-Namespace \"{ns}\"); send requests without the header")));
        }
    }
    let wrap_ttl = match header(req, &X_VAULT_WRAP_TTL)
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(v) => Some(
            coffer_sdk::duration::parse_duration(v)
                .map_err(|e| Error::bad(format!("invalid X-Vault-Wrap-TTL: {e}")))?,
        ),
    };
    let list_param = query
        .get("list")
        .and_then(Value::as_str)
        .is_some_and(|v| v == "true" || v == "1");
    let operation = match req.method.as_str() {
        "GET" | "HEAD" if list_param => Operation::List,
        "GET" | "HEAD" => Operation::Read,
        "LIST" => Operation::List,
        "POST" | "PUT" => Operation::Update,
        "PATCH" => Operation::Patch,
        "DELETE" => Operation::Delete,
        _ => return Err(Error::UnsupportedOperation),
    };
    if operation == Operation::List {
        query.remove("list");
        if !path.ends_with('/') {
            path.push('/');
        }
    }
    let token = header(req, &X_VAULT_TOKEN)
        .map(str::to_string)
        .or_else(|| {
            header(req, &AUTHORIZATION)
                .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
        })
        .filter(|t| !t.is_empty());
    if operation == Operation::Patch {
        let ct = header(req, &CONTENT_TYPE).unwrap_or("");
        if !ct.starts_with("application/merge-patch+json") {
            return Err(Error::bad(format!(
                "PATCH requires Content-Type application/merge-patch+json, got \"{ct}\""
            )));
        }
    }
    let data = if operation.writes() {
        let body = body.read_all(MAX_REQUEST_SIZE).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(Error::bad(
                        "failed to parse JSON input: the request body must be a JSON object",
                    ))
                }
                Err(e) => {
                    return Err(Error::bad(format!(
                        "failed to parse JSON input: {}",
                        e.to_string()
                            .split(" at line")
                            .next()
                            .unwrap_or("invalid JSON")
                    )))
                }
            }
        }
    } else {
        query
    };
    let request = Request {
        id: request_id.to_string(),
        operation,
        path,
        mount_point: String::new(),
        data,
        caller: None,
        connection: conn.clone(),
        wrap_ttl,
    };
    core.handle_at_mount(request, token.as_deref(), Some(token_memo))
        .await
}
