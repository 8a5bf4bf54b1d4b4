//! Shared end-to-end harness: run the real `coffer server` binary on a free loopback port,
//! wait until it answers, talk to it over HTTP, and kill it when the test is done.
//!
//! ```ignore
//! mod common;
//! let server = common::TestServer::dev();
//! let (status, body) = server.request("GET", "sys/mounts", Some(server.root_token()), None);
//! ```

#![allow(dead_code)]

pub mod pki;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The `coffer` binary cargo built for this package's integration tests.
pub const COFFER_BIN: &str = env!("CARGO_BIN_EXE_coffer");

/// How long a server gets to start answering before the test fails.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Placeholder in [`TestServer::from_config`] HCL for the listener's `host:port`.
pub const ADDRESS_PLACEHOLDER: &str = "{{address}}";
/// Placeholder in [`TestServer::from_config`] HCL for a data directory private to the server.
pub const DATA_DIR_PLACEHOLDER: &str = "{{data_dir}}";

/// A config with file storage in the server's private data directory and a plain-HTTP
/// listener: the usual input for [`TestServer::from_config`].
pub const FILE_STORAGE_CONFIG: &str = r#"
storage "file" {
  path = "{{data_dir}}"
}

listener "tcp" {
  address     = "{{address}}"
  tls_disable = true
}
"#;

/// One running `coffer server` process. Killed when dropped.
pub struct TestServer {
    /// Base URL, e.g. `http://127.0.0.1:41234` (the form `VAULT_ADDR` takes).
    pub addr: String,
    /// The root token a dev server printed; `None` for config servers (they start
    /// uninitialized, and `sys/init` returns the root token).
    pub root_token: Option<String>,
    /// The server process while it runs.
    pub child: Option<Child>,
    args: Vec<String>,
    /// Holds the config file, data directory and log; kept across restarts.
    dir: TempDir,
    log_path: PathBuf,
    /// Length of the log when the current process started, so a restarted dev server's banner
    /// is not confused with the previous one.
    log_start: usize,
}

impl TestServer {
    /// A dev-mode server: in-memory, unsealed, KV v2 at `secret/`, root token parsed from the
    /// banner it prints.
    pub fn dev() -> TestServer {
        let port = free_port();
        let args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        let mut server = TestServer::spawn(args, port);
        server.root_token = Some(server.wait_for_root_token());
        server
    }

    /// A server run with `-config` from `hcl`, in which [`ADDRESS_PLACEHOLDER`] becomes a free
    /// `127.0.0.1:port` and [`DATA_DIR_PLACEHOLDER`] a fresh directory that survives
    /// [`TestServer::restart`]. See [`FILE_STORAGE_CONFIG`].
    pub fn from_config(hcl: &str) -> TestServer {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir for the server");
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir).expect("data dir");
        let config = hcl
            .replace(ADDRESS_PLACEHOLDER, &format!("127.0.0.1:{port}"))
            .replace(
                DATA_DIR_PLACEHOLDER,
                data_dir.to_str().expect("utf-8 temp path"),
            );
        let config_path = dir.path().join("coffer.hcl");
        std::fs::write(&config_path, config).expect("write config");
        let args = vec![
            "server".to_owned(),
            "-config".to_owned(),
            config_path.to_str().expect("utf-8 temp path").to_owned(),
        ];
        TestServer::spawn_in(dir, args, port)
    }

    fn spawn(args: Vec<String>, port: u16) -> TestServer {
        TestServer::spawn_in(
            tempfile::tempdir().expect("temp dir for the server"),
            args,
            port,
        )
    }

    fn spawn_in(dir: TempDir, args: Vec<String>, port: u16) -> TestServer {
        let log_path = dir.path().join("coffer.log");
        let mut server = TestServer {
            addr: format!("http://127.0.0.1:{port}"),
            root_token: None,
            child: None,
            args,
            dir,
            log_path,
            log_start: 0,
        };
        server.start();
        server
    }

    /// The dev server's root token. Panics for config servers.
    pub fn root_token(&self) -> &str {
        self.root_token
            .as_deref()
            .expect("only dev servers have a root token up front")
    }

    /// `host:port` the server listens on.
    pub fn host_port(&self) -> &str {
        self.addr.trim_start_matches("http://")
    }

    /// The directory a config server's `{{data_dir}}` points at.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch directory owned by this server, removed with it; also the server's `HOME`.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server has printed so far (stdout and stderr, across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Start the process (again) and wait until `sys/health` answers.
    fn start(&mut self) {
        self.log_start = self.log().len();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        // HOME is the server's own directory: a dev server stores its root token in
        // `$HOME/.coffer-token`, which must never be the developer's.
        let child = Command::new(COFFER_BIN)
            .args(&self.args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn coffer server");
        self.child = Some(child);
        self.wait_until_answering();
    }

    /// Shut the server down the way an operator would (SIGTERM), waiting for it to exit; kill
    /// it if it has not exited within 10 seconds. Data in the data directory stays.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let terminated = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if terminated {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kill the server abruptly (SIGKILL), as a crash or power loss would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop and start again on the same address with the same config and data directory.
    /// A config server comes back sealed; a dev server comes back empty with a new root token.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
        if self.root_token.is_some() {
            self.root_token = Some(self.wait_for_root_token());
        }
    }

    fn wait_until_answering(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("coffer server exited with {status}:\n{}", self.log());
                }
            }
            if TcpStream::connect(self.host_port()).is_ok() {
                let (status, _) = self.request("GET", "sys/health", None, None);
                if status != 0 {
                    return;
                }
            }
            if Instant::now() > deadline {
                self.stop();
                panic!(
                    "coffer server did not answer within {STARTUP_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn wait_for_root_token(&self) -> String {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let log = self.log();
            if let Some(token) = log
                .get(self.log_start..)
                .unwrap_or_default()
                .lines()
                .find_map(|line| line.trim().strip_prefix("Root Token: "))
            {
                return token.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "dev server printed no `Root Token:` line:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Send `method /v1/<path>` with an optional token and JSON body. Returns the HTTP status
    /// (0 when the connection failed) and the JSON body (`Null` when empty or not JSON).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.request_with_headers_opt(method, path, token, body, &[])
    }

    /// [`TestServer::request`] with a JSON body and extra headers (e.g. `X-Vault-Wrap-TTL`).
    pub fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.request_with_headers_opt(method, path, token, Some(body), headers)
    }

    /// [`TestServer::request`] with a body sent under another content type (merge-patch).
    pub fn request_with_content_type(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
        content_type: &str,
    ) -> (u16, Value) {
        self.request_with_headers_opt(
            method,
            path,
            token,
            Some(body),
            &[("Content-Type", content_type)],
        )
    }

    fn request_with_headers_opt(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut builder = ureq::http::Request::builder().method(method).uri(format!(
            "{}/v1/{}",
            self.addr,
            path.trim_start_matches('/')
        ));
        if let Some(token) = token {
            builder = builder.header("X-Vault-Token", token);
        }
        let bytes = body
            .map(|b| serde_json::to_vec(b).expect("json"))
            .unwrap_or_default();
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("Content-Type", "application/json");
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(bytes).expect("valid request");
        match agent.run(request) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let text = response.body_mut().read_to_string().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lowest and one past the highest port [`free_port`] hands out: below Linux's default
/// ephemeral range (32768–60999), so that no outgoing connection is given the port as its
/// source between the test choosing it and the server binding it.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Where this process's next [`free_port`] search starts: each test binary starts at its own
/// place (by process id), and no port is handed out twice in one process.
static NEXT_TEST_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A loopback port nothing listens on right now, never handed out before by this process and
/// outside the range the kernel gives outgoing connections. Asking the kernel for port 0 and
/// closing it again is not enough: the kernel may give the same port to the next caller or as
/// the source port of another test's connection before the server binds it (a CI run failed
/// with "Address already in use" that way).
pub fn free_port() -> u16 {
    use std::sync::atomic::Ordering;
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let step = NEXT_TEST_PORT.fetch_add(1, Ordering::Relaxed);
        let offset = (start + step) % span;
        let port = TEST_PORTS.start + u16::try_from(offset).expect("offset below span");
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

/// Every file below `dir`, recursively (for scanning a data directory).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
