//! RustyVault 0.2.1 (crates.io `rusty_vault`, binary `rvault`) as a second read baseline: the
//! nearest other Vault-compatible server written in Rust. It is measured only when installed
//! (`cargo install rusty_vault --version 0.2.1 --locked`, or `COFFER_BENCH_RVAULT=/path`);
//! the harness never builds it.
//!
//! RustyVault has no dev mode and no in-memory storage, so it runs on its `file` backend in a
//! directory under `/dev/shm` (memory-backed, so no disk is measured), initialised with one
//! share and unsealed. Its `secret/` mount is KV version 1: the read is
//! `GET /v1/secret/bench/read` of the same ~100-byte value Coffer serves from KV v2.

use crate::error::BenchError;
use crate::figures::{plan, Settings, SideRun, READ_CONNECTIONS, SECRET_VALUE};
use crate::http::{
    create_token, encode_request, exchange, free_loopback_port, initialise_one_share, unseal,
};
use crate::load::RequestFactory;
use crate::process::ServerProcess;
use crate::turns::Side;
use hyper::Method;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where RustyVault's secret is read from (its `secret/` mount is KV version 1).
pub const RUSTYVAULT_READ_PATH: &str = "/v1/secret/bench/read";

/// The `rvault` binary: `$COFFER_BENCH_RVAULT`, else `rvault` on `PATH` or in `~/.cargo/bin`.
pub fn locate() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("COFFER_BENCH_RVAULT") {
        let path = PathBuf::from(explicit);
        return path.is_file().then_some(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("rvault"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let cargo_bin = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/rvault");
        cargo_bin.is_file().then_some(cargo_bin)
    })
}

/// What the RustyVault run measured.
pub(crate) struct RustyVaultRun {
    /// The load run against it.
    pub(crate) run: SideRun,
    /// Whether the reads used a token limited by a policy (like Coffer's) or, where the policy
    /// could not be set up, the root token.
    pub(crate) policy_token: bool,
}

/// A running RustyVault holding the secret, ready to be read.
pub(crate) struct RustyVault {
    // Declared before the data directory, so the server is stopped before its files go.
    server: ServerProcess,
    _data: tempfile::TempDir,
    requests: RequestFactory,
    /// Whether its reads use a token limited by a policy (see [`RustyVaultRun`]).
    pub(crate) policy_token: bool,
}

impl RustyVault {
    /// Start RustyVault, store the secret, and prepare the read request (with the policy
    /// token when one can be made, else the root token).
    pub(crate) async fn start(rvault: &Path, log_dir: &Path) -> Result<RustyVault, BenchError> {
        // Memory-backed when the machine has /dev/shm, like Coffer's in-memory dev server.
        let data_parent = Path::new("/dev/shm");
        let data = tempfile::Builder::new()
            .prefix("coffer-bench-rvault-")
            .tempdir_in(if data_parent.is_dir() {
                data_parent
            } else {
                log_dir
            })
            .map_err(|e| BenchError::io("creating RustyVault's data directory", e))?;
        let port = free_loopback_port()?;
        let config = log_dir.join("rvault.hcl");
        std::fs::write(
            &config,
            format!(
                "storage \"file\" {{\n  path = \"{}\"\n}}\n\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\nlog_level = \"error\"\n",
                data.path().display()
            ),
        )
        .map_err(|e| BenchError::io("writing RustyVault's config", e))?;
        let args = vec![
            "server".into(),
            "--config".into(),
            config.display().to_string(),
        ];
        let mut server =
            ServerProcess::spawn("rvault", rvault, &args, port, &log_dir.join("rvault.log"))?;
        server.wait_until_answering("/v1/sys/seal-status").await?;
        let addr = server.addr;
        let (key, root) = initialise_one_share(addr, "initialising RustyVault").await?;
        unseal(addr, &key, "unsealing RustyVault").await?;
        exchange(
            addr,
            Method::POST,
            RUSTYVAULT_READ_PATH,
            Some(&root),
            Some(&json!({ "value": SECRET_VALUE })),
        )
        .await?
        .expect_success("writing the secret to RustyVault")?;
        let policy_token = read_policy_token(addr, &root).await;
        let token = policy_token.clone().unwrap_or(root);
        exchange(addr, Method::GET, RUSTYVAULT_READ_PATH, Some(&token), None)
            .await?
            .expect_success("reading the secret back from RustyVault")?;
        let request = encode_request(addr, Method::GET, RUSTYVAULT_READ_PATH, Some(&token), None);
        Ok(RustyVault {
            server,
            _data: data,
            requests: Arc::new(move |_, _| request.clone()),
            policy_token: policy_token.is_some(),
        })
    }

    /// Its side of the read figure: [`READ_CONNECTIONS`] connections of reads, as Coffer's.
    pub(crate) fn side(&self, settings: &Settings) -> Side {
        Side {
            plan: plan(
                settings,
                "kv-read rustyvault",
                self.server.addr,
                READ_CONNECTIONS,
                self.requests.clone(),
            ),
            pid: self.server.pid(),
        }
    }
}

/// A token whose only policy reads the secret, as Coffer's side uses; `None` when RustyVault
/// refuses any step (the caller then reads with the root token and says so). RustyVault 0.2.1
/// has neither `sys/policies/acl/` nor `sys/policy/` (404) and does not enforce a token's
/// policies, so with it this is always `None`.
async fn read_policy_token(addr: std::net::SocketAddr, root: &str) -> Option<String> {
    let policy = "path \"secret/bench/read\" {\n  capabilities = [\"read\"]\n}\n";
    let mut made = false;
    for endpoint in [
        "/v1/sys/policies/acl/bench-read",
        "/v1/sys/policy/bench-read",
    ] {
        let answer = exchange(
            addr,
            Method::PUT,
            endpoint,
            Some(root),
            Some(&json!({ "policy": policy })),
        )
        .await
        .ok()?;
        made |= answer.status.is_success();
    }
    if !made {
        return None;
    }
    let token = create_token(
        addr,
        root,
        &json!({ "policies": ["bench-read"], "ttl": "24h" }),
        "creating a RustyVault token",
    )
    .await
    .ok()?;
    // The token must actually be able to read, or the run would measure refusals.
    let probe = exchange(addr, Method::GET, RUSTYVAULT_READ_PATH, Some(&token), None)
        .await
        .ok()?;
    probe.status.is_success().then_some(token)
}
