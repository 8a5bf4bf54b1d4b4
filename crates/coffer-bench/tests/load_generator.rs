//! The load generator against the real baseline server, in process.

use bytes::Bytes;
use coffer_bench::canned::{self, CannedResponse};
use coffer_bench::http::encode_request;
use coffer_bench::load::{self, LoadPlan, RequestFactory};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn start_canned(status: StatusCode) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let response = CannedResponse {
        status,
        headers: vec![(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static("application/json"),
        )],
        body: Bytes::from_static(br#"{"data":{"data":{"value":"v"}}}"#),
    };
    tokio::spawn(canned::serve(listener, response));
    addr
}

fn plan(addr: SocketAddr, warmup: Duration, duration: Duration, max_requests: u64) -> LoadPlan {
    let request = encode_request(addr, Method::GET, "/v1/secret/data/x", Some("root"), None);
    let requests: RequestFactory = Arc::new(move |_, _| request.clone());
    LoadPlan {
        label: "test".into(),
        addr,
        connections: 4,
        warmup,
        duration,
        max_requests,
        requests,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_cap_ends_a_run_long_before_its_duration() {
    let addr = start_canned(StatusCode::OK).await;
    let started = Instant::now();
    let report = load::run(plan(addr, Duration::ZERO, Duration::from_secs(60), 200))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(report.capped);
    assert_eq!(report.issued_requests, 200);
    assert_eq!(report.measured_requests, 200);
    assert_eq!(report.failed_requests, 0);
    assert!(report.window_secs < 20.0, "window {} s", report.window_secs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_ends_a_run_when_the_cap_is_not_reached() {
    let addr = start_canned(StatusCode::OK).await;
    let started = Instant::now();
    let report = load::run(plan(
        addr,
        Duration::ZERO,
        Duration::from_millis(500),
        u64::MAX,
    ))
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(!report.capped);
    assert!((report.window_secs - 0.5).abs() < 1e-6);
    assert!(report.throughput > 0.0);
    let latency = report.latency.unwrap();
    assert!(latency.p50_us <= latency.p99_us && latency.p99_us <= latency.max_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_requests_are_issued_but_not_measured() {
    let addr = start_canned(StatusCode::OK).await;
    let report = load::run(plan(
        addr,
        Duration::from_millis(300),
        Duration::from_millis(300),
        u64::MAX,
    ))
    .await
    .unwrap();
    assert!(
        report.issued_requests > report.measured_requests + 4,
        "issued {} measured {}",
        report.issued_requests,
        report.measured_requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_only_errors_yields_no_figure() {
    let addr = start_canned(StatusCode::FORBIDDEN).await;
    let err = load::run(plan(
        addr,
        Duration::ZERO,
        Duration::from_millis(200),
        1_000,
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("status 403"), "{err}");
}

/// A server that answers every request on a connection with `answer`, written in pieces so the
/// client must put a response together from several reads.
async fn start_raw(answer: &'static [u8], pieces: usize) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        for piece in answer.chunks(answer.len().div_ceil(pieces)) {
                            if stream.write_all(piece).await.is_err() {
                                return;
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_answers_in_pieces_are_read_whole() {
    let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n";
    let addr = start_raw(answer, 7).await;
    let report = load::run(plan(addr, Duration::ZERO, Duration::from_secs(30), 400))
        .await
        .unwrap();
    assert_eq!(report.measured_requests, 400);
    assert_eq!(report.failed_requests, 0, "{:?}", report.first_failure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_answer_in_pieces_is_read_whole() {
    let answer = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
    // Two answers per request: the client must notice the extra one and fail the connection
    // rather than take it as the next request's answer.
    let addr = start_raw(answer, 5).await;
    let report = load::run(plan(addr, Duration::ZERO, Duration::from_secs(30), 40)).await;
    let failure = match report {
        Ok(r) => r.first_failure.unwrap_or_default(),
        Err(e) => e.to_string(),
    };
    assert!(failure.contains("more than one response"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_ends_that_connection_only() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let addr = start_raw(answer, 1).await;
    let report = load::run(plan(addr, Duration::ZERO, Duration::from_secs(30), 1_000))
        .await
        .unwrap();
    // Each of the 4 connections gets one answer, then stops: the client never sends on a
    // connection the server said it would close.
    assert_eq!(report.measured_requests, 4);
    assert_eq!(report.failed_requests, 0);
}
