//! Server processes the harness starts and always stops: Coffer (dev or config mode) and the
//! canned-response baseline. Each runs as its own process so both sides of a ratio get the
//! same treatment (own runtime, loopback TCP, same CPU share).

use crate::error::BenchError;
use crate::http::exchange;
use hyper::Method;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start answering HTTP.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server process; killed and reaped when dropped.
pub struct ServerProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    /// Where the server listens.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Start `program args...` with output to `log_path`, expecting it to listen on `port`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        port: u16,
        log_path: &Path,
    ) -> Result<ServerProcess, BenchError> {
        let log = File::create(log_path)
            .map_err(|e| BenchError::io(format!("creating {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| BenchError::io("duplicating the log handle", e))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {name} ({}); build it with `cargo build --release -p coffer -p coffer-bench` or pass --coffer-bin", program.display()), e))?;
        Ok(ServerProcess {
            name: name.into(),
            child,
            log_path: log_path.into(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        })
    }

    /// Wait until `GET probe_path` gets any HTTP answer; fail if the process exits first or
    /// [`STARTUP_TIMEOUT`] passes.
    pub async fn wait_until_answering(&mut self, probe_path: &str) -> Result<(), BenchError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Server(format!(
                    "{} exited during start-up ({status}); its output:\n{}",
                    self.name,
                    self.log_tail()
                )));
            }
            if exchange(self.addr, Method::GET, probe_path, None, None)
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Server(format!(
                    "{} did not answer on {} within {STARTUP_TIMEOUT:?}; its output:\n{}",
                    self.name,
                    self.addr,
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stop the server the way an operator would (SIGTERM) and wait up to `within` for it to
    /// exit; returns how long it took. If it is still running then, it is killed and the
    /// answer is an error, since a server that ignores SIGTERM is itself a finding.
    pub fn terminate(&mut self, within: Duration) -> Result<Duration, BenchError> {
        let started = Instant::now();
        // `kill` from the base system spares the harness a libc dependency for one signal.
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| BenchError::io(format!("sending SIGTERM to {}", self.name), e))?;
        if !status.success() {
            return Err(BenchError::Server(format!(
                "sending SIGTERM to {} failed ({status})",
                self.name
            )));
        }
        while started.elapsed() < within {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(started.elapsed()),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(BenchError::io(format!("waiting for {}", self.name), e)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(BenchError::Server(format!(
            "{} did not exit within {within:?} of SIGTERM and was killed",
            self.name
        )))
    }

    /// The server's resident memory now and at its peak, from `/proc/PID/status`.
    pub fn memory(&self) -> Result<ProcessMemory, BenchError> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::io(format!("reading {path}"), e))?;
        ProcessMemory::parse(&status).ok_or_else(|| {
            BenchError::Config(format!("{path} has no VmRSS/VmHWM lines (not Linux?)"))
        })
    }

    /// The last lines of the server's output, for error reports.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Resident set size now (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident set size (`VmHWM`).
    pub peak_rss_bytes: u64,
}

impl ProcessMemory {
    /// Read `VmRSS` and `VmHWM` (reported in kB) from the text of `/proc/PID/status`.
    pub fn parse(status: &str) -> Option<ProcessMemory> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().strip_suffix("kB"))
                .and_then(|kb| kb.trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        Some(ProcessMemory {
            rss_bytes: field("VmRSS:")?,
            peak_rss_bytes: field("VmHWM:")?,
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_from_the_kilobyte_lines_of_proc_status() {
        let status = "Name:\tcoffer\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t4\n";
        assert_eq!(
            ProcessMemory::parse(status),
            Some(ProcessMemory {
                rss_bytes: 100 * 1024 * 1024,
                peak_rss_bytes: 200 * 1024 * 1024
            })
        );
        assert_eq!(ProcessMemory::parse("Name:\tcoffer\n"), None);
    }

    #[test]
    fn this_process_has_resident_memory() {
        let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
            return; // not Linux
        };
        let memory = ProcessMemory::parse(&status).unwrap();
        assert!(memory.rss_bytes > 0 && memory.peak_rss_bytes >= memory.rss_bytes);
    }
}
