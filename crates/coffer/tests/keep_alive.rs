//! Refused requests on a kept-alive connection: whatever the server answers without reading
//! the body (no token, a bad token, malformed JSON, an unknown path, a wrong method, a sealed
//! server), the connection stays usable for the next request, or the answer says
//! `Connection: close`. Requests are written by hand on one TCP socket, headers and body in
//! separate writes as HTTP clients such as Python `requests` do, so a body can arrive after the
//! server has already decided its answer.
//!
//! `COFFER_KEEP_ALIVE_REQUESTS` sets how many requests the long run sends (default 100,000,
//! about 15 s in a debug build).

mod common;

use common::TestServer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One answer read off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    close: bool,
}

/// A client writing raw HTTP/1.1 on one connection.
struct Client {
    addr: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            addr: addr.to_owned(),
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn reconnect(&mut self) {
        *self = Client::connect(&self.addr);
    }

    /// Write `head` and then `body` in a second write (after `pause`, if any), and read the
    /// answer.
    fn exchange(
        &mut self,
        head: &[u8],
        body: &[u8],
        pause: Option<Duration>,
    ) -> std::io::Result<Answer> {
        self.writer.write_all(head)?;
        if !body.is_empty() {
            if let Some(pause) = pause {
                std::thread::sleep(pause);
            }
            self.writer.write_all(body)?;
        }
        self.read_answer()
    }

    fn read_answer(&mut self) -> std::io::Result<Answer> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before an answer",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        let mut close = false;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed inside an answer",
                ));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(Answer { status, close })
    }
}

/// One kind of refused request.
struct Case {
    name: &'static str,
    head: Vec<u8>,
    body: Vec<u8>,
    /// The status an unsealed server answers with.
    status: u16,
}

fn case(name: &'static str, (head, body): (Vec<u8>, Vec<u8>), status: u16) -> Case {
    Case {
        name,
        head,
        body,
        status,
    }
}

/// The refused requests the long run cycles through.
fn refused_requests(host: &str, root: &str) -> Vec<Case> {
    let json = br#"{"data": {"password": "hunter2"}, "options": {"cas": 0}}"#.to_vec();
    let chunked = |body: &[u8]| {
        let mut out = format!("{:x}\r\n", body.len()).into_bytes();
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
        out
    };
    let with_length = |method: &str, path: &str, extra: &str, body: &[u8]| {
        (
            format!(
                "{method} /v1/{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes(),
            body.to_vec(),
        )
    };
    let with_chunks = |method: &str, path: &str, extra: &str, body: &[u8]| {
        (
            format!(
                "{method} /v1/{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}Transfer-Encoding: chunked\r\n\r\n"
            )
            .into_bytes(),
            chunked(body),
        )
    };
    let bad_token = "X-Vault-Token: s.not-a-real-token\r\n".to_owned();
    let root_token = format!("X-Vault-Token: {root}\r\n");
    vec![
        case(
            "DELETE, no token",
            with_length("DELETE", "secret/data/app", "", &json),
            403,
        ),
        case(
            "DELETE, bad token",
            with_length("DELETE", "secret/metadata/app", &bad_token, &json),
            403,
        ),
        case(
            "POST, no token",
            with_length("POST", "secret/data/app", "", &json),
            403,
        ),
        case(
            "PUT, bad token",
            with_length("PUT", "secret/data/app", &bad_token, &json),
            403,
        ),
        case(
            "POST, bad JSON",
            with_length("POST", "secret/data/app", &root_token, b"{not json"),
            400,
        ),
        case(
            "DELETE, unknown path",
            with_length("DELETE", "no-such-mount/x", &root_token, &json),
            404,
        ),
        case(
            "POST, unknown path",
            with_length("POST", "no-such-mount/x", &root_token, &json),
            404,
        ),
        case(
            "FROB, wrong method",
            with_length("FROB", "secret/data/app", &root_token, &json),
            405,
        ),
        case(
            "PATCH, wrong content type",
            with_length("PATCH", "secret/data/app", &root_token, &json),
            400,
        ),
        case(
            "POST, namespace",
            with_length(
                "POST",
                "secret/data/app",
                "X-Vault-Namespace: team-a\r\n",
                &json,
            ),
            400,
        ),
        case(
            "GET with a body, no token",
            with_length("GET", "secret/data/app", "", &json),
            403,
        ),
        case(
            "DELETE chunked, no token",
            with_chunks("DELETE", "secret/data/app", "", &json),
            403,
        ),
        case(
            "POST chunked, bad token",
            with_chunks("POST", "secret/data/app", &bad_token, &json),
            403,
        ),
        case(
            "PUT chunked, bad JSON",
            with_chunks("PUT", "secret/data/app", &bad_token, b"[1, 2"),
            400,
        ),
        case(
            "DELETE chunked, unknown path",
            with_chunks("DELETE", "no-such-mount/x", &root_token, &json),
            404,
        ),
        case(
            "LIST chunked, no such list",
            with_chunks("LIST", "sys/seal-status", &root_token, &json),
            404,
        ),
        case(
            "FROB chunked, wrong method",
            with_chunks("FROB", "sys/seal-status", "", &json),
            405,
        ),
    ]
}

/// Send `count` refused requests on one connection; returns the failures (a dropped
/// connection, an unexpected status, or a `Connection: close` on a small body).
fn run(
    addr: &str,
    cases: &[Case],
    count: usize,
    expect_status: impl Fn(u16) -> u16,
) -> Vec<String> {
    let mut client = Client::connect(addr);
    let mut failures = Vec::new();
    for i in 0..count {
        let Case {
            name,
            head,
            body,
            status,
        } = &cases[i % cases.len()];
        // Every 97th body comes a moment after its headers, as over a real network: the
        // answer is then decided before any of the body is in.
        let pause = (i % 97 == 0).then_some(Duration::from_millis(2));
        match client.exchange(head, body, pause) {
            Ok(answer) if answer.status == expect_status(*status) && !answer.close => {}
            Ok(answer) => {
                failures.push(format!("request {i} ({name}): {answer:?}"));
                if answer.close {
                    client.reconnect();
                }
            }
            Err(err) => {
                failures.push(format!("request {i} ({name}): {err}"));
                client.reconnect();
            }
        }
    }
    failures
}

fn requested_count() -> usize {
    std::env::var("COFFER_KEEP_ALIVE_REQUESTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000)
}

#[test]
fn refused_requests_never_break_a_kept_alive_connection() {
    let server = TestServer::dev();
    let host = server.host_port().to_owned();
    let cases = refused_requests(&host, server.root_token());
    let count = requested_count();
    let started = Instant::now();
    let failures = run(&host, &cases, count, |status| status);
    let elapsed = started.elapsed();
    eprintln!(
        "keep-alive: {count} refused requests ({} kinds) on one connection in {:.1} s ({:.0}/s), {} failures",
        cases.len(),
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        failures.len()
    );
    for failure in failures.iter().take(20) {
        eprintln!("  {failure}");
    }
    assert!(failures.is_empty(), "{} failures", failures.len());

    // A sealed server refuses everything with 503, the same way.
    let sealed = TestServer::from_config(common::FILE_STORAGE_CONFIG);
    let host = sealed.host_port().to_owned();
    let cases = refused_requests(&host, "s.whatever");
    let failures = run(&host, &cases, 2_000.min(count), |status| match status {
        403 | 404 => 503,
        other => other,
    });
    for failure in failures.iter().take(20) {
        eprintln!("  sealed: {failure}");
    }
    assert!(failures.is_empty(), "sealed: {} failures", failures.len());
}

#[test]
fn a_long_unread_body_is_answered_with_connection_close() {
    let server = TestServer::dev();
    let host = server.host_port();
    let declared = 1024 * 1024;

    // A DELETE needs no body: the server answers 403 after reading a bounded part of the body,
    // and says it will close rather than read the rest.
    let mut client = Client::connect(host);
    let head = format!(
        "DELETE /v1/secret/data/app HTTP/1.1\r\nHost: {host}\r\nContent-Length: {declared}\r\n\r\n"
    );
    let answer = client
        .exchange(head.as_bytes(), &vec![b'x'; 128 * 1024], None)
        .expect("an answer");
    assert_eq!(answer.status, 403);
    assert!(answer.close, "{answer:?}");

    // A client waiting for `100 Continue` is not asked for a body that would be thrown away.
    let mut client = Client::connect(host);
    let head = format!(
        "DELETE /v1/secret/data/app HTTP/1.1\r\nHost: {host}\r\nExpect: 100-continue\r\nContent-Length: {declared}\r\n\r\n"
    );
    let answer = client
        .exchange(head.as_bytes(), b"", None)
        .expect("an answer");
    assert_eq!(answer.status, 403);
    assert!(answer.close, "{answer:?}");

    // A short body is read and the connection kept: the next request on it is answered.
    let mut client = Client::connect(host);
    let body = vec![b' '; 60 * 1024];
    let head = format!(
        "DELETE /v1/secret/data/app HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = client
        .exchange(head.as_bytes(), &body, None)
        .expect("an answer");
    assert_eq!((answer.status, answer.close), (403, false));
    let health = format!("GET /v1/sys/health HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let answer = client
        .exchange(health.as_bytes(), b"", None)
        .expect("an answer on the same connection");
    assert_eq!(answer.status, 200);
}
