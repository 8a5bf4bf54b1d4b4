//! Listener limits against the real binary: clients that are slow to send headers or a body,
//! connections left idle, a TLS client that never says hello, and the cap on open
//! connections. Timeouts are configured at 1-2 s so that no test waits more than a few
//! seconds; connection counts stay small.

mod common;

use common::pki::{issue, new_ca};
use common::{free_port, TestServer};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// In-memory storage and one plain listener with short limits.
fn server(limits: &str) -> TestServer {
    TestServer::from_config(&format!(
        "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"{{{{address}}}}\"\n  tls_disable = true\n{limits}\n}}\n"
    ))
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
}

/// [`connect`] to a listener the server may still be opening: the test server reports ready
/// once its first listener answers, and a second one can come up a moment later.
fn connect_once_listening(addr: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr) {
            Ok(stream) => {
                stream.set_nodelay(true).unwrap();
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("connect to {addr}: {e}"),
        }
    }
}

/// Read until the server closes the connection; how long after `since` that was, or `None` if
/// it was still open `patience` after `since`. Whatever the server sent first is returned too.
fn wait_for_close(
    stream: &mut TcpStream,
    since: Instant,
    patience: Duration,
) -> (Option<Duration>, Vec<u8>) {
    let started = since;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = patience.saturating_sub(started.elapsed());
        if left.is_zero() {
            return (None, received);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (Some(started.elapsed()), received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (None, received)
            }
            Err(_) => return (Some(started.elapsed()), received),
        }
    }
}

/// Send one complete request and read its answer's status line (the answers used here are
/// small and arrive in one read).
fn request(stream: &mut TcpStream, host: &str) -> String {
    write!(
        stream,
        "GET /v1/sys/seal-status HTTP/1.1\r\nHost: {host}\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).expect("an answer");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Whether an answer arrives within `patience`.
fn answered_within(stream: &mut TcpStream, patience: Duration) -> bool {
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut buf = [0u8; 4096];
    matches!(stream.read(&mut buf), Ok(n) if n > 0)
}

fn assert_closed_near(what: &str, closed: Option<Duration>, limit: Duration) {
    let closed = closed.unwrap_or_else(|| panic!("{what}: still open"));
    assert!(
        closed >= limit.mul_f64(0.8) && closed <= limit + Duration::from_millis(1500),
        "{what}: closed after {closed:?}, limit {limit:?}"
    );
}

#[test]
fn a_client_slow_to_send_headers_is_cut_off_at_the_header_timeout() {
    let server = server("  http_read_header_timeout = \"1s\"\n  http_idle_timeout = \"10s\"");
    let host = server.host_port();
    let limit = Duration::from_secs(1);

    // Half a request line, then nothing.
    let connected = Instant::now();
    let mut partial = connect(host);
    partial.write_all(b"GET /v1/sys/seal-st").unwrap();
    // Headers dribbled a byte at a time: the limit is on the whole head, not on each gap.
    let mut dribbling = connect(host);
    let dribbler = std::thread::spawn(move || {
        let started = Instant::now();
        for byte in b"GET /v1/sys/seal-status HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaa" {
            if dribbling.write_all(&[*byte]).is_err() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let (closed, _) = wait_for_close(&mut dribbling, started, Duration::from_secs(4));
        closed
    });
    // A connection that never sends a byte.
    let mut silent = connect(host);

    let (closed, _) = wait_for_close(&mut partial, connected, Duration::from_secs(4));
    assert_closed_near("partial request line", closed, limit);
    let (closed, _) = wait_for_close(&mut silent, connected, Duration::from_secs(4));
    assert_closed_near("silent connection", closed, limit);
    let closed = dribbler.join().unwrap();
    assert!(
        closed.is_some_and(|c| c < Duration::from_secs(3)),
        "dribbling client: {closed:?}"
    );

    // A client that sends its request at once is served.
    let mut prompt = connect(host);
    assert!(request(&mut prompt, host).contains(" 200 "));
}

#[test]
fn an_idle_kept_alive_connection_is_closed_at_the_idle_timeout_not_the_header_timeout() {
    let server = server("  http_read_header_timeout = \"1s\"\n  http_idle_timeout = \"2s\"");
    let host = server.host_port();

    // Idle for longer than the header timeout, then a second request: still served.
    let mut conn = connect(host);
    assert!(request(&mut conn, host).contains(" 200 "));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(request(&mut conn, host).contains(" 200 "));

    // Then left idle: closed about 2 s after the answer.
    let (closed, received) = wait_for_close(&mut conn, Instant::now(), Duration::from_secs(5));
    assert!(received.is_empty());
    assert_closed_near("idle connection", closed, Duration::from_secs(2));
}

#[test]
fn a_client_slow_to_send_its_body_gets_408_and_a_close_at_the_read_timeout() {
    let server = server(
        "  http_read_header_timeout = \"5s\"\n  http_read_timeout = \"1s\"\n  http_idle_timeout = \"10s\"",
    );
    let host = server.host_port();
    let mut conn = connect(host);
    let sent = Instant::now();
    write!(
        conn,
        "PUT /v1/sys/unseal HTTP/1.1\r\nHost: {host}\r\nContent-Length: 40\r\n\r\n{{\"key\":"
    )
    .unwrap();
    let (closed, received) = wait_for_close(&mut conn, sent, Duration::from_secs(4));
    assert_closed_near("slow body", closed, Duration::from_secs(1));
    let answer = String::from_utf8_lossy(&received).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}

#[test]
fn max_connections_caps_open_connections_and_later_clients_wait_their_turn() {
    let max = 4;
    let server = server(&format!(
        "  max_connections = {max}\n  http_idle_timeout = \"30s\"\n  http_read_header_timeout = \"30s\""
    ));
    let host = server.host_port();
    // Let the harness's own start-up connections close.
    std::thread::sleep(Duration::from_millis(200));

    let mut open: Vec<TcpStream> = (0..max).map(|_| connect(host)).collect();
    for conn in &mut open {
        assert!(request(conn, host).contains(" 200 "));
    }
    // Two more connect (the kernel queues them) but are not served while the cap is reached.
    let mut waiting: Vec<TcpStream> = (0..2).map(|_| connect(host)).collect();
    for conn in &mut waiting {
        write!(
            conn,
            "GET /v1/sys/seal-status HTTP/1.1\r\nHost: {host}\r\n\r\n"
        )
        .unwrap();
    }
    for conn in &mut waiting {
        assert!(
            !answered_within(conn, Duration::from_millis(700)),
            "a connection beyond max_connections was served"
        );
    }
    // Each connection that closes lets one waiting client in.
    drop(open.pop());
    assert!(answered_within(&mut waiting[0], Duration::from_secs(3)));
    assert!(!answered_within(
        &mut waiting[1],
        Duration::from_millis(500)
    ));
    drop(open.pop());
    assert!(answered_within(&mut waiting[1], Duration::from_secs(3)));

    // The connections still open keep working, and so does an ordinary client.
    for conn in &mut open {
        assert!(request(conn, host).contains(" 200 "));
    }
    drop(open);
    drop(waiting);
    let (status, body) = server.request("GET", "sys/seal-status", None, None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_tls_client_that_never_says_hello_is_cut_off_at_the_header_timeout() {
    let pki = tempfile::tempdir().unwrap();
    let ca = new_ca("listener-limits CA");
    let (cert, key) = issue(
        &ca,
        pki.path(),
        "server",
        "localhost",
        &["localhost"],
        vec![],
    );
    let tls_port = free_port();
    let server = TestServer::from_config(&format!(
        "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"{{{{address}}}}\"\n  tls_disable = true\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{tls_port}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n  http_read_header_timeout = \"1s\"\n}}\n",
        cert.display(),
        key.display()
    ));
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let mut silent = connect_once_listening(&tls_addr);
    let connected = Instant::now();
    // Half a TLS record header: the handshake has started and stalls.
    let mut stalled = connect(&tls_addr);
    stalled.write_all(&[0x16, 0x03]).unwrap();

    let (closed, _) = wait_for_close(&mut silent, connected, Duration::from_secs(4));
    assert_closed_near("silent TLS client", closed, Duration::from_secs(1));
    let (closed, _) = wait_for_close(&mut stalled, connected, Duration::from_secs(4));
    assert_closed_near("stalled TLS handshake", closed, Duration::from_secs(1));

    // The plain listener, without limits of its own, still answers.
    assert_eq!(server.request("GET", "sys/seal-status", None, None).0, 200);
}
