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

    /// The last lines of the server's output, for error reports.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
