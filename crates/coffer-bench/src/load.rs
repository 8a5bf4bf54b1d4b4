//! The closed-loop load generator.
//!
//! `connections` persistent HTTP/1.1 connections each send a request, wait for the whole
//! response, and send the next one. Every loop is bounded twice: by a shared request budget
//! (`max_requests`, counted as requests are issued) and by wall time (warm-up + duration, plus
//! a per-request timeout so a stuck server cannot hang the run). Requests that complete during
//! warm-up are not measured; throughput is measured completions over the measured window.
//!
//! The client is built to cost as little as `wrk -t1`: every connection runs on one thread of
//! its own (a single-threaded runtime), requests are sent as bytes encoded before the run, and
//! responses are parsed only for their status and length. The `loadgen` figure checks it
//! against `wrk` on the same bare server.

use crate::error::BenchError;
use crate::latency::LatencySummary;
use bytes::Bytes;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest one request may take before it counts as failed and its connection is dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds request number `seq` for connection number `connection`, encoded as it goes on the
/// wire (see [`crate::http::encode_request`]).
pub type RequestFactory = Arc<dyn Fn(usize, u64) -> Bytes + Send + Sync>;

/// What to run: where, how wide, how long, how many at most.
#[derive(Clone)]
pub struct LoadPlan {
    /// Shown in the live progress line, e.g. `kv-read coffer`.
    pub label: String,
    /// The server under load (loopback).
    pub addr: SocketAddr,
    /// Number of persistent connections, each with one request in flight.
    pub connections: usize,
    /// Time at the start whose requests are not measured.
    pub warmup: Duration,
    /// Measured time after warm-up.
    pub duration: Duration,
    /// Hard cap on requests issued, warm-up included.
    pub max_requests: u64,
    /// Makes each request.
    pub requests: RequestFactory,
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests completed inside the measured window (success or not).
    pub measured_requests: u64,
    /// Of those, how many got a non-2xx status, a broken connection or a timeout.
    pub failed_requests: u64,
    /// Requests issued in total, warm-up included.
    pub issued_requests: u64,
    /// Length of the measured window in seconds.
    pub window_secs: f64,
    /// Successful measured requests per second.
    pub throughput: f64,
    /// Latency of successful measured requests.
    pub latency: Option<LatencySummary>,
    /// Whether the request cap, not the clock, ended the run.
    pub capped: bool,
    /// The first failure seen, for the report (a status or error text, never a body).
    pub first_failure: Option<String>,
    /// Every successful measured request's latency in microseconds, sorted: kept so that runs
    /// taken in turns can be merged into exact percentiles (not written to the results file).
    pub samples_us: Vec<u64>,
}

impl LoadReport {
    /// The report as JSON for the results file.
    pub fn to_json(&self) -> Value {
        json!({
            "measured_requests": self.measured_requests,
            "failed_requests": self.failed_requests,
            "issued_requests": self.issued_requests,
            "window_secs": self.window_secs,
            "throughput_per_sec": self.throughput,
            "latency": self.latency.map(|l| l.to_json()),
            "capped_by_request_limit": self.capped,
            "first_failure": self.first_failure,
        })
    }
}

struct ConnectionOutcome {
    latencies_us: Vec<u64>,
    failed: u64,
    last_completion: Option<Instant>,
    first_failure: Option<String>,
}

/// Run `plan` and report. Fails only if no connection could be opened or nothing succeeded
/// inside the measured window.
pub async fn run(plan: LoadPlan) -> Result<LoadReport, BenchError> {
    if plan.connections == 0 || plan.duration.is_zero() || plan.max_requests == 0 {
        return Err(BenchError::Config(format!(
            "{}: a load run needs connections, duration and a request budget",
            plan.label
        )));
    }
    let started = Instant::now();
    let completed = Arc::new(AtomicU64::new(0));
    let end = started + plan.warmup + plan.duration;
    let progress = tokio::spawn(show_progress(
        plan.label.clone(),
        completed.clone(),
        started,
        plan.warmup,
        end,
    ));
    let (finished, outcome) = tokio::sync::oneshot::channel();
    let thread_plan = plan.clone();
    std::thread::Builder::new()
        .name("load-generator".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| BenchError::io("starting the load generator's runtime", e))
                .and_then(|runtime| runtime.block_on(drive_all(thread_plan, completed)));
            let _ = finished.send(result);
        })
        .map_err(|e| BenchError::io("starting the load generator's thread", e))?;
    let outcome = outcome.await.map_err(|_| {
        BenchError::Config(format!("{}: the load generator's thread died", plan.label))
    });
    progress.abort();
    let _ = progress.await;
    let Outcomes {
        mut latencies,
        failed,
        last_completion,
        first_failure,
        issued,
        started,
        warm_end,
        end,
    } = outcome??;
    // Each loop's final budget check also bumps the counter, so it can overshoot the cap.
    let issued_requests = issued.min(plan.max_requests);
    let capped = issued_requests >= plan.max_requests;
    let window_end = if capped {
        last_completion.unwrap_or(started).min(end)
    } else {
        end
    };
    let window_secs = window_end.saturating_duration_since(warm_end).as_secs_f64();
    let measured_requests = latencies.len() as u64 + failed;
    finish_progress_line(&plan.label, measured_requests, window_secs);
    let successes = latencies.len() as u64;
    if successes == 0 || window_secs <= 0.0 {
        let why = if capped {
            "the request cap was reached during warm-up; raise --max-requests"
        } else {
            "no request succeeded in the measured window"
        };
        return Err(BenchError::Config(format!(
            "{}: {why}{}",
            plan.label,
            first_failure
                .map(|f| format!(" (first failure: {f})"))
                .unwrap_or_default()
        )));
    }
    Ok(LoadReport {
        measured_requests,
        failed_requests: failed,
        issued_requests,
        window_secs,
        throughput: successes as f64 / window_secs,
        latency: LatencySummary::from_samples(&mut latencies),
        capped,
        first_failure,
        samples_us: latencies,
    })
}

/// What every connection of one run saw, merged.
struct Outcomes {
    latencies: Vec<u64>,
    failed: u64,
    last_completion: Option<Instant>,
    first_failure: Option<String>,
    issued: u64,
    started: Instant,
    warm_end: Instant,
    end: Instant,
}

/// Open every connection, then drive them all to the end of the run (on the calling thread).
async fn drive_all(plan: LoadPlan, completed: Arc<AtomicU64>) -> Result<Outcomes, BenchError> {
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        connections.push(connect(plan.addr).await.map_err(|e| {
            BenchError::http(
                format!("{}: opening a connection to {}", plan.label, plan.addr),
                e,
            )
        })?);
    }
    let started = Instant::now();
    let warm_end = started + plan.warmup;
    let end = warm_end + plan.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, connection) in connections.into_iter().enumerate() {
        let run = ConnectionRun {
            index,
            requests: plan.requests.clone(),
            issued: issued.clone(),
            completed: completed.clone(),
            budget: plan.max_requests,
            warm_end,
            end,
        };
        tasks.spawn(drive_connection(connection, run));
    }
    let mut merged = Outcomes {
        latencies: Vec::new(),
        failed: 0,
        last_completion: None,
        first_failure: None,
        issued: 0,
        started,
        warm_end,
        end,
    };
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.map_err(|e| {
            BenchError::Config(format!("{}: a load task panicked: {e}", plan.label))
        })?;
        merged.latencies.extend(outcome.latencies_us);
        merged.failed += outcome.failed;
        merged.last_completion = merged.last_completion.max(outcome.last_completion);
        merged.first_failure = merged.first_failure.or(outcome.first_failure);
    }
    merged.issued = issued.load(Ordering::Relaxed);
    Ok(merged)
}

/// One connection's share of a run.
struct ConnectionRun {
    index: usize,
    requests: RequestFactory,
    issued: Arc<AtomicU64>,
    completed: Arc<AtomicU64>,
    budget: u64,
    warm_end: Instant,
    end: Instant,
}

async fn drive_connection(mut connection: Connection, run: ConnectionRun) -> ConnectionOutcome {
    let mut outcome = ConnectionOutcome {
        latencies_us: Vec::with_capacity(64 * 1024),
        failed: 0,
        last_completion: None,
        first_failure: None,
    };
    let mut seq = 0u64;
    while Instant::now() < run.end && run.issued.fetch_add(1, Ordering::Relaxed) < run.budget {
        let request = (run.requests)(run.index, seq);
        seq += 1;
        let sent = Instant::now();
        let result =
            tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut connection, &request)).await;
        let done = Instant::now();
        run.completed.fetch_add(1, Ordering::Relaxed);
        outcome.last_completion = Some(done);
        let (failure, broken) = match result {
            Ok(Ok((status, close))) if (200..300).contains(&status) => (None, close),
            Ok(Ok((status, close))) => (Some(format!("status {status}")), close),
            Ok(Err(e)) => (Some(e), true),
            Err(_) => (
                Some(format!("no response within {REQUEST_TIMEOUT:?}")),
                true,
            ),
        };
        let measured = done >= run.warm_end && done <= run.end;
        match failure {
            None if measured => outcome
                .latencies_us
                .push(done.duration_since(sent).as_micros() as u64),
            None => {}
            Some(f) => {
                if measured {
                    outcome.failed += 1;
                }
                outcome.first_failure.get_or_insert(f);
            }
        }
        if broken {
            // The connection's state is unknown after a transport error or timeout, and a
            // server that said `Connection: close` answers nothing more on it.
            break;
        }
    }
    outcome
}

/// One keep-alive connection: the socket and a read buffer that lives as long as it does.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

async fn connect(addr: SocketAddr) -> Result<Connection, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(Connection {
        stream,
        buffer: Vec::with_capacity(READ_BUFFER),
    })
}

/// Bytes asked of the kernel per read; a response that does not fit is read in several.
const READ_BUFFER: usize = 16 * 1024;

/// A response as the load generator sees it: only what it needs to know where the response
/// ends and whether it counts as a success.
#[derive(Debug, PartialEq)]
struct ResponseHead {
    status: u16,
    head_len: usize,
    body: BodyLength,
    close: bool,
}

#[derive(Debug, PartialEq)]
enum BodyLength {
    Exactly(usize),
    Chunked,
}

/// Parse the status line and headers at the start of `bytes`, or `Ok(None)` when they are not
/// all there yet.
fn parse_head(bytes: &[u8]) -> Result<Option<ResponseHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("unparsable response head: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let mut body = BodyLength::Exactly(0);
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("invalid content-length")?;
            body = BodyLength::Exactly(length);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding")
            && header.value.eq_ignore_ascii_case(b"chunked")
        {
            body = BodyLength::Chunked;
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = header.value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok(Some(ResponseHead {
        status,
        head_len,
        body,
        close,
    }))
}

/// Where a chunked body that starts at `bytes[0]` ends, or `Ok(None)` when it is not all there.
fn chunked_body_end(bytes: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(line_end) = bytes[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&bytes[at..at + line_end])
            .map_err(|_| "invalid chunk size")?
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "invalid chunk size")?;
        at += line_end + 2;
        if size == 0 {
            // No trailers are expected: the body ends with the empty line after the last chunk.
            return Ok((bytes.len() >= at + 2).then_some(at + 2));
        }
        if bytes.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

/// Send one request and read its whole response; returns the status and whether the server
/// will close the connection after it. Requests are written pre-encoded and responses are
/// parsed only as far as their status and length, like `wrk`, so the client costs little of
/// the machine the server shares with it.
async fn exchange(connection: &mut Connection, request: &[u8]) -> Result<(u16, bool), String> {
    connection
        .stream
        .write_all(request)
        .await
        .map_err(|e| e.to_string())?;
    let buffer = &mut connection.buffer;
    buffer.clear();
    loop {
        if let Some(head) = parse_head(buffer)? {
            let end = loop {
                let body = &buffer[head.head_len..];
                let end = match head.body {
                    BodyLength::Exactly(length) => {
                        (body.len() >= length).then_some(head.head_len + length)
                    }
                    BodyLength::Chunked => chunked_body_end(body)?.map(|e| head.head_len + e),
                };
                if let Some(end) = end {
                    break end;
                }
                read_more(&mut connection.stream, buffer).await?;
            };
            if end != buffer.len() {
                return Err("the server sent more than one response".into());
            }
            return Ok((head.status, head.close));
        }
        read_more(&mut connection.stream, buffer).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(), String> {
    buffer.reserve(READ_BUFFER);
    let read = stream.read_buf(buffer).await.map_err(|e| e.to_string())?;
    if read == 0 {
        return Err("the server closed the connection".into());
    }
    Ok(())
}

async fn show_progress(
    label: String,
    completed: Arc<AtomicU64>,
    started: Instant,
    warmup: Duration,
    end: Instant,
) {
    let live = std::io::stderr().is_terminal();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut previous = 0;
    loop {
        ticker.tick().await;
        let now = completed.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        let phase = if elapsed < warmup {
            "warm-up"
        } else {
            "measuring"
        };
        let left = end.saturating_duration_since(Instant::now()).as_secs();
        let line = format!(
            "  {label}: {phase}, {now} requests so far, {} in the last second, {left} s left",
            now - previous
        );
        previous = now;
        let mut err = std::io::stderr().lock();
        // On a terminal the line is rewritten in place; in a log, one line per second.
        let _ = if live {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}

fn finish_progress_line(label: &str, measured: u64, window_secs: f64) {
    let mut err = std::io::stderr().lock();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[2K");
    }
    let _ = writeln!(
        err,
        "  {label}: done, {measured} requests measured over {window_secs:.1} s"
    );
}
