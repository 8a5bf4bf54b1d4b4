//! The read and login baselines: a bare hyper HTTP/1.1 server that answers every request with one fixed
//! response captured from Coffer, so the baseline sends the same bytes Coffer sends and differs
//! only in doing no work to produce them.

use crate::error::BenchError;
use crate::http::Exchange;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, DATE};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A response to replay verbatim: status, headers and body.
#[derive(Debug, Clone, PartialEq)]
pub struct CannedResponse {
    /// The status to send.
    pub status: StatusCode,
    /// The headers to send, in order. `date` and `content-length` are left to hyper, which
    /// writes them exactly as it does for Coffer (a current date, the body's length).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body to send.
    pub body: Bytes,
}

impl CannedResponse {
    /// Capture a response as Coffer sent it.
    pub fn from_exchange(exchange: &Exchange) -> CannedResponse {
        CannedResponse {
            status: exchange.status,
            headers: replayable_headers(&exchange.headers),
            body: exchange.body.clone(),
        }
    }

    /// Encode for handing to a baseline server process.
    pub fn to_json(&self) -> Value {
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
            .collect();
        json!({ "status": self.status.as_u16(), "headers": headers, "body": String::from_utf8_lossy(&self.body) })
    }

    /// Decode what [`CannedResponse::to_json`] produced.
    pub fn from_json(value: &Value) -> Result<CannedResponse, BenchError> {
        let bad = |what: &str| BenchError::Config(format!("canned response file: {what}"));
        let status = value
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| bad("missing or invalid \"status\""))?;
        let mut headers = Vec::new();
        for pair in value
            .get("headers")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("missing \"headers\""))?
        {
            let (Some(name), Some(val)) = (
                pair.get(0).and_then(Value::as_str),
                pair.get(1).and_then(Value::as_str),
            ) else {
                return Err(bad("a header is not a [name, value] pair"));
            };
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("invalid header name"))?;
            let val = HeaderValue::from_str(val).map_err(|_| bad("invalid header value"))?;
            headers.push((name, val));
        }
        let body = Bytes::from(
            value
                .get("body")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("missing \"body\""))?
                .to_owned(),
        );
        Ok(CannedResponse {
            status,
            headers,
            body,
        })
    }

    fn to_response(&self) -> hyper::Response<Full<Bytes>> {
        let mut response = hyper::Response::new(Full::new(self.body.clone()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        response
    }
}

fn replayable_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| **name != DATE && **name != CONTENT_LENGTH)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Serve `response` to every request on every connection accepted from `listener`, forever.
/// Connections are HTTP/1.1 keep-alive with `TCP_NODELAY`, as Coffer's are.
pub async fn serve(listener: TcpListener, response: CannedResponse) {
    let response = Arc::new(response);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let response = response.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let reply = response.to_response();
                async move {
                    // Read the request body as Coffer must, so a POST baseline pays for its
                    // request bytes too (a GET's empty body costs nothing).
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(reply)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                // Measured both ways on the bare server: one buffer per response answered
                // ~4% more requests than vectored writes (wrk -t1 -c32), so the baseline
                // stays the fastest bare server (Coffer sets the same).
                .writev(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_response_survives_the_trip_to_a_server_process() {
        let canned = CannedResponse {
            status: StatusCode::OK,
            headers: vec![
                (
                    HeaderName::from_static("cache-control"),
                    HeaderValue::from_static("no-store"),
                ),
                (
                    HeaderName::from_static("content-type"),
                    HeaderValue::from_static("application/json"),
                ),
            ],
            body: Bytes::from_static(br#"{"data":{"data":{"value":"x"}}}"#),
        };
        let text = serde_json::to_string(&canned.to_json()).unwrap();
        assert_eq!(
            CannedResponse::from_json(&serde_json::from_str(&text).unwrap()).unwrap(),
            canned
        );
    }

    #[test]
    fn date_and_length_are_left_to_hyper() {
        let mut headers = HeaderMap::new();
        headers.insert(
            DATE,
            HeaderValue::from_static("Mon, 02 Nov 2026 10:00:00 GMT"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("12"));
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
        let kept: Vec<_> = replayable_headers(&headers)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kept, vec![HeaderName::from_static("cache-control")]);
    }
}
