//! The Vault HTTP dialect: turns `/v1/...` requests into pipeline requests and pipeline
//! answers into Vault's JSON envelope. This is the only place an error becomes an HTTP status.

use crate::core::Core;
use bytes::Bytes;
use coffer_sdk::logical::Connection;
use coffer_sdk::{Error, Operation, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use serde_json::{Map, Value};
use std::sync::Arc;

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

/// `{"errors": [...]}` with the error's status.
pub fn error_response(err: &Error) -> HttpResponse {
    let body =
        serde_json::to_vec(&serde_json::json!({ "errors": err.messages() })).expect("json encodes");
    json_response(err.status(), body)
}

fn render(resp: Response, request_id: &str, head: bool) -> HttpResponse {
    if let Some(raw) = resp.raw {
        let status = resp.status.unwrap_or(200);
        let body = if head { Vec::new() } else { raw.body };
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
    let body = crate::envelope::to_bytes(&resp, request_id);
    json_response(resp.status.unwrap_or(200), body)
}

fn header<'a>(req: &'a hyper::Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
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
    let bytes =
        percent_decode(raw, false).ok_or_else(|| Error::bad("invalid percent-encoding in path"))?;
    String::from_utf8(bytes).map_err(|_| Error::bad("request path is not valid UTF-8"))
}

/// Serve one HTTP request.
pub async fn handle(
    core: Arc<Core>,
    conn: Arc<Connection>,
    req: hyper::Request<Incoming>,
) -> Result<HttpResponse, std::convert::Infallible> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let head = req.method() == Method::HEAD;
    Ok(match handle_inner(&core, &conn, req, &request_id).await {
        Ok(resp) => render(resp, &request_id, head),
        Err(err) => error_response(&err),
    })
}

async fn handle_inner(
    core: &Core,
    conn: &Connection,
    req: hyper::Request<Incoming>,
    request_id: &str,
) -> Result<Response, Error> {
    let raw_path = req.uri().path();
    let Some(rest) = raw_path.strip_prefix("/v1/") else {
        return Err(Error::UnsupportedPath(
            raw_path.trim_start_matches('/').to_string(),
        ));
    };
    let mut path = decode_path(rest)?;
    let mut query = query_map(req.uri().query());
    if let Some(ns) = header(&req, "x-vault-namespace") {
        let ns = ns.trim().trim_matches('/');
        if !ns.is_empty() && ns != "root" {
            return Err(Error::bad(format!("namespaces are not enabled on this Coffer server (X-Vault-Namespace \"{ns}\"); send requests without the header")));
        }
    }
    let wrap_ttl = match header(&req, "x-vault-wrap-ttl")
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
    let operation = match req.method().as_str() {
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
    let token = header(&req, "x-vault-token")
        .map(str::to_string)
        .or_else(|| {
            header(&req, "authorization")
                .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
        })
        .filter(|t| !t.is_empty());
    if operation == Operation::Patch {
        let ct = header(&req, "content-type").unwrap_or("");
        if !ct.starts_with("application/merge-patch+json") {
            return Err(Error::bad(format!(
                "PATCH requires Content-Type application/merge-patch+json, got \"{ct}\""
            )));
        }
    }
    let data = if operation.writes() {
        let body = Limited::new(req.into_body(), MAX_REQUEST_SIZE)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Error::TooLarge
                } else {
                    Error::bad("failed to read request body")
                }
            })?
            .to_bytes();
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
    core.handle(request, token.as_deref()).await
}
