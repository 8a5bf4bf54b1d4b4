//! The closed-loop load generator.
//!
//! `connections` persistent HTTP/1.1 connections each send a request, wait for the whole
//! response, and send the next one. Every loop is bounded twice: by a shared request budget
//! (`max_requests`, counted as requests are issued) and by wall time (warm-up + duration, plus
//! a per-request timeout so a stuck server cannot hang the run). Requests that complete during
//! warm-up are not measured; throughput is measured completions over the measured window.

use crate::error::BenchError;
use crate::latency::LatencySummary;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The longest one request may take before it counts as failed and its connection is dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds request number `seq` for connection number `connection`.
pub type RequestFactory = Arc<dyn Fn(usize, u64) -> hyper::Request<Full<Bytes>> + Send + Sync>;

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
    let mut senders = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        senders.push(connect(plan.addr).await.map_err(|e| {
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
    let completed = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(show_progress(
        plan.label.clone(),
        completed.clone(),
        started,
        plan.warmup,
        end,
    ));
    let mut tasks = Vec::with_capacity(plan.connections);
    for (index, sender) in senders.into_iter().enumerate() {
        let (issued, completed, requests) =
            (issued.clone(), completed.clone(), plan.requests.clone());
        let budget = plan.max_requests;
        tasks.push(tokio::spawn(async move {
            drive_connection(
                index, sender, requests, issued, completed, budget, warm_end, end,
            )
            .await
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut last_completion = started;
    let mut first_failure = None;
    for task in tasks {
        let outcome = task.await.map_err(|e| {
            BenchError::Config(format!("{}: a load task panicked: {e}", plan.label))
        })?;
        latencies.extend(outcome.latencies_us);
        failed += outcome.failed;
        last_completion = last_completion.max(outcome.last_completion.unwrap_or(started));
        first_failure = first_failure.or(outcome.first_failure);
    }
    progress.abort();
    let _ = progress.await;
    // Each loop's final budget check also bumps the counter, so it can overshoot the cap.
    let issued_requests = issued.load(Ordering::Relaxed).min(plan.max_requests);
    let capped = issued_requests >= plan.max_requests;
    let window_end = if capped {
        last_completion.min(end)
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
    })
}

async fn connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

#[allow(clippy::too_many_arguments)]
async fn drive_connection(
    index: usize,
    mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    requests: RequestFactory,
    issued: Arc<AtomicU64>,
    completed: Arc<AtomicU64>,
    budget: u64,
    warm_end: Instant,
    end: Instant,
) -> ConnectionOutcome {
    let mut outcome = ConnectionOutcome {
        latencies_us: Vec::with_capacity(64 * 1024),
        failed: 0,
        last_completion: None,
        first_failure: None,
    };
    let mut seq = 0u64;
    while Instant::now() < end && issued.fetch_add(1, Ordering::Relaxed) < budget {
        let request = requests(index, seq);
        seq += 1;
        let sent = Instant::now();
        let result = tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut sender, request)).await;
        let done = Instant::now();
        completed.fetch_add(1, Ordering::Relaxed);
        outcome.last_completion = Some(done);
        let broken = matches!(result, Ok(Err(_)) | Err(_));
        let failure = match result {
            Ok(Ok(status)) if status.is_success() => None,
            Ok(Ok(status)) => Some(format!("status {status}")),
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("no response within {REQUEST_TIMEOUT:?}")),
        };
        let measured = done >= warm_end && done <= end;
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
            // The connection's state is unknown after a transport error or timeout.
            break;
        }
    }
    outcome
}

async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<hyper::StatusCode, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    // Read the whole body: a request is done when the client has all of the answer.
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
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
