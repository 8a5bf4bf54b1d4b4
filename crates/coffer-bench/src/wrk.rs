//! `wrk`, the reference load generator: the harness runs it beside its own client on the same
//! servers, so every read figure shows whether the harness's client is lean enough not to be
//! the bottleneck (the `loadgen` figure) and what the ratio is under a client written in C.
//!
//! `wrk` comes from Debian's package of that name; when it is missing the harness installs it
//! with `apt-get` if it can, and otherwise reports the figures without it.

use crate::cpu::{CpuSnapshot, CpuUse};
use crate::error::BenchError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `wrk`'s thread count: one, like the harness's own client.
pub const WRK_THREADS: usize = 1;

/// What one `wrk` run measured.
#[derive(Debug, Clone)]
pub struct WrkReport {
    /// Requests per second as `wrk` printed it (all responses, whatever their status).
    pub requests_per_sec: f64,
    /// Responses that were not 2xx or 3xx, plus socket errors.
    pub failures: u64,
    /// CPU around the run (wrk and the server, and everything else).
    pub cpu: Option<CpuUse>,
}

impl WrkReport {
    /// Successful requests per second: `wrk`'s rate, or nothing when any request failed.
    pub fn clean_rate(&self) -> Option<f64> {
        (self.failures == 0).then_some(self.requests_per_sec)
    }
}

/// The `wrk` binary, installing Debian's package once if it is missing and `apt-get` works.
/// `None` (with a line on stderr) when it cannot be had.
pub fn locate_or_install() -> Option<PathBuf> {
    if let Some(found) = on_path("wrk") {
        return Some(found);
    }
    eprintln!("  wrk is not installed; installing Debian's package");
    let installed = std::process::Command::new("apt-get")
        .args(["install", "-y", "-q", "wrk"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let found = installed.then(|| on_path("wrk")).flatten();
    if found.is_none() {
        eprintln!("  wrk could not be installed; figures are reported without it");
    }
    found
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// One server and request for `wrk` to load.
pub struct Target<'a> {
    /// The `wrk` binary.
    pub wrk: &'a Path,
    /// The server (loopback).
    pub addr: SocketAddr,
    /// The path of the `GET` every request makes.
    pub path: &'a str,
    /// Extra request headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// Keep-alive connections.
    pub connections: usize,
    /// The server's process, whose CPU use is watched with `wrk`'s.
    pub server_pid: u32,
}

/// Run `wrk -t1 -c<connections>` for `duration` against `target`, after a warm-up run of
/// `warmup`.
pub async fn run(
    target: &Target<'_>,
    warmup: Duration,
    duration: Duration,
) -> Result<WrkReport, BenchError> {
    if !warmup.is_zero() {
        run_once(target, warmup).await?;
    }
    run_once(target, duration).await
}

async fn run_once(target: &Target<'_>, duration: Duration) -> Result<WrkReport, BenchError> {
    let Target {
        wrk,
        addr,
        path,
        headers,
        connections,
        server_pid,
    } = *target;
    // wrk takes whole seconds.
    let seconds = duration.as_secs_f64().ceil().max(1.0) as u64;
    let duration = Duration::from_secs(seconds);
    let mut command = tokio::process::Command::new(wrk);
    command
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--timeout")
        .arg("10s");
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    command
        .arg(format!("http://{addr}{path}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| BenchError::io(format!("starting {}", wrk.display()), e))?;
    let wrk_pid = child.id().unwrap_or(0);
    // CPU is read over the first nine tenths of the run, while wrk still exists in /proc (its
    // ticks vanish with it, and would otherwise be charged to "other processes").
    let pids = [wrk_pid, server_pid];
    let before = CpuSnapshot::take(&pids);
    tokio::time::sleep(duration.mul_f64(0.9)).await;
    let cpu = before
        .zip(CpuSnapshot::take(&pids))
        .map(|(b, a)| b.until(&a));
    let output = tokio::time::timeout(duration + Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| BenchError::Config("wrk did not finish 30 s after its run".into()))?
        .map_err(|e| BenchError::io("waiting for wrk", e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(BenchError::Config(format!(
            "wrk failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_output(&text, cpu)
}

/// Read the rate and the failures out of `wrk`'s report.
fn parse_output(text: &str, cpu: Option<CpuUse>) -> Result<WrkReport, BenchError> {
    let number_after = |label: &str| -> Option<f64> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    let requests_per_sec = number_after("Requests/sec:").ok_or_else(|| {
        BenchError::Config(format!("no Requests/sec in wrk's output: {}", text.trim()))
    })?;
    let non_2xx = number_after("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64;
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket_errors: u64 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Socket errors:"))
        .map(|rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().nth(1))
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok(WrkReport {
        requests_per_sec,
        failures: non_2xx + socket_errors,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "Running 2s test @ http://127.0.0.1:8200/v1/secret/data/bench/read
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.00us  101.20us   3.10ms   80.00%
    Req/Sec    77.10k     2.01k   80.00k    70.00%
  153421 requests in 2.00s, 70.01MB read
Requests/sec:  76710.50
Transfer/sec:     35.00MB
";

    #[test]
    fn a_clean_run_gives_its_rate() {
        let report = parse_output(CLEAN, None).unwrap();
        assert_eq!(report.requests_per_sec, 76710.50);
        assert_eq!(report.failures, 0);
        assert_eq!(report.clean_rate(), Some(76710.50));
    }

    #[test]
    fn failures_are_counted_and_void_the_rate() {
        let text = CLEAN.replace(
            "Requests/sec:",
            "  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 5\nRequests/sec:",
        );
        let report = parse_output(&text, None).unwrap();
        assert_eq!(report.failures, 8);
        assert_eq!(report.clean_rate(), None);
    }

    #[test]
    fn output_without_a_rate_is_an_error() {
        assert!(parse_output("unable to connect to 127.0.0.1:1", None).is_err());
    }
}
