//! The throughput figures (KV read, durable KV write): how each sets up Coffer, what it
//! measures, and its same-run baseline; also the pieces the other figures share ([`Figure`],
//! durable server set-up, load runs with their CPU check).

use crate::canned::CannedResponse;
use crate::cpu::{CpuSnapshot, CpuUse};
use crate::error::BenchError;
use crate::http::{
    create_token, encode_request, exchange, free_loopback_port, initialise_one_share, unseal,
};
use crate::load::{self, LoadPlan, LoadReport, RequestFactory};
use crate::process::ServerProcess;
use crate::turns::{run_in_turns, turns_for, Side};
use hyper::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections for the read figure.
pub const READ_CONNECTIONS: usize = 32;
/// Connections for the write figure.
pub const WRITE_CONNECTIONS: usize = 64;
/// Coffer reads must reach this fraction of the bare server's throughput.
pub const READ_TARGET_RATIO: f64 = 0.75;
/// The harness's client must drive the bare server at least this fraction of `wrk`'s rate, or
/// it is itself the bottleneck and flatters every ratio.
pub const LOADGEN_TARGET_RATIO: f64 = 0.9;
/// Coffer's KV reads must reach this multiple of RustyVault 0.2.1's, when it is installed.
pub const RUSTYVAULT_TARGET_RATIO: f64 = 4.5;
/// The policy the read figure's token holds: read on the one secret, nothing else.
pub const READ_POLICY: &str = "path \"secret/data/bench/read\" {\n  capabilities = [\"read\"]\n}\n";
/// Durable writes per second must reach this fraction of the same binary's in-memory rate.
pub const WRITE_TARGET_RATIO: f64 = 0.5;
/// The dev server's root token, set on its command line.
pub const DEV_ROOT_TOKEN: &str = "root";
/// The secret the read figure reads.
pub const READ_SECRET_PATH: &str = "/v1/secret/data/bench/read";

/// A ~100-byte secret value (the JSON `{"value":"..."}` is 100 bytes).
pub(crate) const SECRET_VALUE: &str =
    "coffer-bench-secret-value-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWX";

/// How a run is configured; shared by both figures.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `coffer` binary to start.
    pub coffer_bin: PathBuf,
    /// The `coffer-bench` binary, re-run as the baseline server process.
    pub bench_bin: PathBuf,
    /// Measured time per load run.
    pub duration: Duration,
    /// Unmeasured warm-up before each load run.
    pub warmup: Duration,
    /// Hard cap on requests per load run.
    pub max_requests: u64,
    /// Parent directory for temp dirs (logs, durable storage, fsync probe).
    pub scratch_dir: PathBuf,
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Short name, e.g. `kv-read`.
    pub name: String,
    /// What the numbers are, e.g. `req/s`.
    pub unit: String,
    /// Coffer's figure.
    pub coffer: f64,
    /// The same-run baseline's figure.
    pub baseline: f64,
    /// `coffer / baseline`.
    pub ratio: f64,
    /// The ratio the issue asks for.
    pub target: f64,
    /// Everything measured, for the results file.
    pub details: Value,
    /// Why the figure should not be trusted (failed requests), if anything.
    pub caveat: Option<String>,
    /// Set when the baseline is a published constant rather than measured in this run; says
    /// whose figure it is (shown next to the number).
    pub published_baseline: Option<String>,
    /// Lines printed under the table to help read the figure (e.g. this machine's ceiling).
    pub notes: Vec<String>,
    /// For a composite figure: its sub-results, each with its own target. A composite figure
    /// has no single ratio; it is met when every sub-result with a target meets it.
    pub parts: Vec<SubResult>,
}

impl Figure {
    /// Whether the ratio (or, for a composite figure, every sub-result) reaches its target and
    /// the run had no failures.
    pub fn met(&self) -> bool {
        if self.caveat.is_some() {
            return false;
        }
        if self.parts.is_empty() {
            self.ratio >= self.target
        } else {
            self.parts.iter().all(|p| p.met().unwrap_or(true))
        }
    }
}

/// The bound a sub-result must keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The value must be at most this (times, bytes).
    AtMost(f64),
    /// The value must be at least this (rates).
    AtLeast(f64),
}

/// One measured result of a composite figure.
#[derive(Debug, Clone, PartialEq)]
pub struct SubResult {
    /// What was measured, e.g. `restart: unseal -> first read`.
    pub name: String,
    /// The value, in `unit`.
    pub value: f64,
    /// `s`, `B`, `/s`.
    pub unit: String,
    /// The target, if the issue sets one; otherwise the value is reported only.
    pub target: Option<Bound>,
}

impl SubResult {
    /// A sub-result with a target.
    pub fn with_target(name: &str, value: f64, unit: &str, target: Bound) -> SubResult {
        SubResult {
            name: name.into(),
            value,
            unit: unit.into(),
            target: Some(target),
        }
    }

    /// A sub-result reported without a target.
    pub fn reported(name: &str, value: f64, unit: &str) -> SubResult {
        SubResult {
            name: name.into(),
            value,
            unit: unit.into(),
            target: None,
        }
    }

    /// Whether the value keeps its bound; `None` when there is no target.
    pub fn met(&self) -> Option<bool> {
        self.target.map(|t| match t {
            Bound::AtMost(max) => self.value <= max,
            Bound::AtLeast(min) => self.value >= min,
        })
    }
}

/// CPU (in cores) other processes may use during a load run before the figure is flagged.
pub const NOISY_NEIGHBOUR_CORES: f64 = 0.25;

/// One side's load run with the CPU used around it.
pub(crate) struct SideRun {
    pub(crate) report: LoadReport,
    pub(crate) cpu: Option<CpuUse>,
}

impl SideRun {
    pub(crate) fn to_json(&self) -> Value {
        let mut json = self.report.to_json();
        json["cpu_cores"] = self.cpu.map_or(Value::Null, cpu_json);
        json
    }
}

pub(crate) async fn run_side(plan: LoadPlan, server_pid: u32) -> Result<SideRun, BenchError> {
    let pids = [std::process::id(), server_pid];
    let before = CpuSnapshot::take(&pids);
    let report = load::run(plan).await?;
    let cpu = before
        .zip(CpuSnapshot::take(&pids))
        .map(|(b, a)| b.until(&a));
    Ok(SideRun { report, cpu })
}

pub(crate) fn caveat_for(sides: &[(&str, &SideRun)]) -> Option<String> {
    let mut problems = Vec::new();
    for (side, run) in sides {
        let r = &run.report;
        if r.failed_requests > 0 {
            problems.push(format!(
                "{side}: {} of {} requests failed (first: {})",
                r.failed_requests,
                r.measured_requests,
                r.first_failure.as_deref().unwrap_or("?")
            ));
        }
        if let Some(cpu) = run
            .cpu
            .filter(|c| c.other_cores + c.steal_cores > NOISY_NEIGHBOUR_CORES)
        {
            problems.push(format!("{side}: other processes used {:.2} cores (+{:.2} steal) during the run; rerun on a quiet machine", cpu.other_cores, cpu.steal_cores));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

pub(crate) fn scratch(settings: &Settings, prefix: &str) -> Result<tempfile::TempDir, BenchError> {
    std::fs::create_dir_all(&settings.scratch_dir)
        .map_err(|e| BenchError::io(format!("creating {}", settings.scratch_dir.display()), e))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&settings.scratch_dir)
        .map_err(|e| {
            BenchError::io(
                format!("creating a temp dir in {}", settings.scratch_dir.display()),
                e,
            )
        })
}

pub(crate) fn plan(
    settings: &Settings,
    label: &str,
    addr: std::net::SocketAddr,
    connections: usize,
    requests: RequestFactory,
) -> LoadPlan {
    LoadPlan {
        label: label.into(),
        addr,
        connections,
        warmup: settings.warmup,
        duration: settings.duration,
        max_requests: settings.max_requests,
        requests,
    }
}

/// KV v2 reads with 32 keep-alive connections: Coffer's dev server versus a bare hyper server
/// replaying Coffer's own response bytes; each side is driven by the harness's client and,
/// when it can be had, by `wrk`. Gives the `kv-read` figure and, with `wrk`, the `loadgen`
/// figure (the harness's client against `wrk` on the bare server).
pub async fn kv_read(settings: &Settings) -> Result<Vec<Figure>, BenchError> {
    let wrk = crate::wrk::locate_or_install();
    let dir = scratch(settings, "coffer-bench-read-")?;
    let coffer = spawn_dev(settings, dir.path(), "coffer.log").await?;
    let addr = coffer.addr;
    exchange(
        addr,
        Method::POST,
        READ_SECRET_PATH,
        Some(DEV_ROOT_TOKEN),
        Some(&json!({ "data": { "value": SECRET_VALUE } })),
    )
    .await?
    .expect_success("writing the secret to read")?;
    // Reads use a token whose one policy grants read on this secret, as a workload's would:
    // the root token would skip the ACL decision.
    let token = read_policy_token(addr).await?;
    let captured = exchange(addr, Method::GET, READ_SECRET_PATH, Some(&token), None)
        .await?
        .expect_success("reading the secret back")?;
    let canned = CannedResponse::from_exchange(&captured);
    let read_request = |addr| -> RequestFactory {
        let request = encode_request(addr, Method::GET, READ_SECRET_PATH, Some(&token), None);
        Arc::new(move |_, _| request.clone())
    };
    let bare = spawn_canned_baseline(settings, dir.path(), &canned, "canned-response.json").await?;
    let rustyvault = match crate::rustyvault::locate() {
        Some(rvault) => {
            eprintln!("  kv-read rustyvault: {}", rvault.display());
            Some(crate::rustyvault::RustyVault::start(&rvault, dir.path()).await?)
        }
        None => {
            eprintln!("  kv-read: RustyVault is not installed (cargo install rusty_vault --version 0.2.1 --locked); no rustyvault figure");
            None
        }
    };
    // Every server is up before the first is measured, and they take turns under load.
    let mut sides = vec![
        Side {
            plan: plan(
                settings,
                "kv-read coffer",
                addr,
                READ_CONNECTIONS,
                read_request(addr),
            ),
            pid: coffer.pid(),
        },
        Side {
            plan: plan(
                settings,
                "kv-read bare hyper",
                bare.addr,
                READ_CONNECTIONS,
                read_request(bare.addr),
            ),
            pid: bare.pid(),
        },
    ];
    if let Some(rv) = &rustyvault {
        sides.push(rv.side(settings));
    }
    let turns = turns_for(settings.duration);
    let mut runs = run_in_turns(&sides, turns).await?.into_iter();
    let (coffer_run, bare_run) = (
        runs.next().expect("coffer's run"),
        runs.next().expect("bare run"),
    );
    let rustyvault = rustyvault.map(|rv| crate::rustyvault::RustyVaultRun {
        run: runs.next().expect("RustyVault's run"),
        policy_token: rv.policy_token,
    });
    let coffer_wrk = wrk_read(settings, wrk.as_ref(), addr, &token, coffer.pid(), "coffer").await?;
    let bare_wrk = wrk_read(
        settings,
        wrk.as_ref(),
        bare.addr,
        &token,
        bare.pid(),
        "bare hyper",
    )
    .await?;
    drop(coffer);
    drop(bare);

    let caveat = caveat_for(&[("coffer", &coffer_run), ("bare hyper", &bare_run)]);
    let (coffer_report, bare_report) = (&coffer_run.report, &bare_run.report);
    let mut notes = vec![turns_note(&sides, turns, settings.duration)];
    let mut figures = Vec::new();
    match (&coffer_wrk, &bare_wrk) {
        (Some(c), Some(b)) => {
            let rate = |r: &crate::wrk::WrkReport| {
                r.clean_rate()
                    .map_or_else(|| "failed requests".to_string(), |v| format!("{v:.0}/s"))
            };
            let ratio = c.clean_rate().zip(b.clean_rate()).map(|(c, b)| c / b);
            notes.push(format!(
                "under wrk -t{} -c{READ_CONNECTIONS}: coffer {}, bare {}, ratio {}",
                crate::wrk::WRK_THREADS,
                rate(c),
                rate(b),
                ratio.map_or_else(|| "n/a".into(), |r| format!("{r:.2}"))
            ));
            figures.push(loadgen_figure(&bare_run, b));
        }
        _ => notes.push("wrk was not available: no second load generator".into()),
    }
    let wrk_json = |r: &Option<crate::wrk::WrkReport>| {
        r.as_ref().map_or(Value::Null, |r| {
            json!({ "requests_per_sec": r.requests_per_sec, "failures": r.failures, "cpu_cores": r.cpu.map(cpu_json) })
        })
    };
    figures.insert(
        0,
        Figure {
            name: "kv-read".into(),
            unit: "req/s".into(),
            coffer: coffer_report.throughput,
            baseline: bare_report.throughput,
            ratio: coffer_report.throughput / bare_report.throughput,
            target: READ_TARGET_RATIO,
            details: json!({
                "connections": READ_CONNECTIONS,
                "turns": turns,
                "response_bytes": canned.body.len(),
                "coffer": coffer_run.to_json(),
                "baseline_bare_hyper": bare_run.to_json(),
                "wrk": { "coffer": wrk_json(&coffer_wrk), "baseline_bare_hyper": wrk_json(&bare_wrk) },
            }),
            caveat,
            published_baseline: None,
            notes,
            parts: Vec::new(),
        },
    );
    if let Some(rv) = rustyvault {
        figures.push(rustyvault_figure(&coffer_run, &rv));
    }
    Ok(figures)
}

/// A token for the read figure: its only policy grants `read` on the secret read.
async fn read_policy_token(addr: std::net::SocketAddr) -> Result<String, BenchError> {
    exchange(
        addr,
        Method::PUT,
        "/v1/sys/policies/acl/bench-read",
        Some(DEV_ROOT_TOKEN),
        Some(&json!({ "policy": READ_POLICY })),
    )
    .await?
    .expect_success("writing the read policy")?;
    create_token(
        addr,
        DEV_ROOT_TOKEN,
        &json!({ "policies": ["bench-read"], "no_default_policy": true, "ttl": "24h" }),
        "creating the read token",
    )
    .await
}

/// Coffer's KV v2 read rate against RustyVault's KV read rate, both under the harness's client.
fn rustyvault_figure(coffer: &SideRun, rv: &crate::rustyvault::RustyVaultRun) -> Figure {
    let token = if rv.policy_token {
        "a token whose one policy reads the secret"
    } else {
        "the root token (RustyVault 0.2.1 answers 404 to both policy endpoints and does not enforce token policies, so it makes no ACL decision where Coffer makes one)"
    };
    Figure {
        name: "vs-rustyvault".into(),
        unit: "req/s".into(),
        coffer: coffer.report.throughput,
        baseline: rv.run.report.throughput,
        ratio: coffer.report.throughput / rv.run.report.throughput,
        target: RUSTYVAULT_TARGET_RATIO,
        details: json!({
            "connections": READ_CONNECTIONS,
            "rustyvault": rv.run.to_json(),
            "rustyvault_policy_token": rv.policy_token,
            "rustyvault_path": crate::rustyvault::RUSTYVAULT_READ_PATH,
        }),
        caveat: caveat_for(&[("coffer", coffer), ("rustyvault", &rv.run)]),
        published_baseline: Some("RustyVault 0.2.1".into()),
        notes: vec![format!(
            "Coffer's kv-read rate (KV v2, policy token) against RustyVault 0.2.1 reading the same value from its KV v1 secret/ mount on file storage in /dev/shm with {token}; RustyVault p50 {}",
            rv.run.report.latency.as_ref().map_or_else(|| "n/a".to_string(), |l| format!("{:.2} ms", l.p50_us as f64 / 1000.0))
        )],
        parts: Vec::new(),
    }
}

/// One side of the read figure under `wrk`, with the same warm-up and duration as the
/// harness's own runs; `None` when there is no `wrk`.
async fn wrk_read(
    settings: &Settings,
    wrk: Option<&PathBuf>,
    addr: std::net::SocketAddr,
    token: &str,
    server_pid: u32,
    side: &str,
) -> Result<Option<crate::wrk::WrkReport>, BenchError> {
    let Some(wrk) = wrk else { return Ok(None) };
    eprintln!(
        "  kv-read {side}: wrk -t{} -c{READ_CONNECTIONS}",
        crate::wrk::WRK_THREADS
    );
    let target = crate::wrk::Target {
        wrk,
        addr,
        path: READ_SECRET_PATH,
        headers: &[("X-Vault-Token", token)],
        connections: READ_CONNECTIONS,
        server_pid,
    };
    crate::wrk::run(&target, settings.warmup, settings.duration)
        .await
        .map(Some)
}

/// The harness's client against `wrk` on the same bare server, same minute: the proof that the
/// client is not the bottleneck of the other figures.
fn loadgen_figure(harness: &SideRun, wrk: &crate::wrk::WrkReport) -> Figure {
    let wrk_rate = wrk.clean_rate().unwrap_or(f64::NAN);
    let mut problems = Vec::new();
    if wrk.failures > 0 {
        problems.push(format!("wrk: {} requests failed", wrk.failures));
    }
    if let Some(cpu) = wrk
        .cpu
        .filter(|c| c.other_cores + c.steal_cores > NOISY_NEIGHBOUR_CORES)
    {
        problems.push(format!("wrk: other processes used {:.2} cores (+{:.2} steal) during the run; rerun on a quiet machine", cpu.other_cores, cpu.steal_cores));
    }
    if let Some(c) = caveat_for(&[("coffer-bench", harness)]) {
        problems.push(c);
    }
    Figure {
        name: "loadgen".into(),
        unit: "req/s".into(),
        coffer: harness.report.throughput,
        baseline: wrk_rate,
        ratio: harness.report.throughput / wrk_rate,
        target: LOADGEN_TARGET_RATIO,
        details: json!({
            "what": "the bare kv-read server driven by coffer-bench's client (coffer column) and by wrk (baseline column)",
            "connections": READ_CONNECTIONS,
            "wrk_threads": crate::wrk::WRK_THREADS,
        }),
        caveat: (!problems.is_empty()).then(|| problems.join("; ")),
        published_baseline: Some(format!("wrk -t{} -c{READ_CONNECTIONS}", crate::wrk::WRK_THREADS)),
        notes: vec!["the bare kv-read server under coffer-bench's client (first column) and under wrk (second); the client is lean enough when the ratio is near 1".into()],
        parts: Vec::new(),
    }
}

fn cpu_json(c: CpuUse) -> Value {
    json!({ "harness_and_server": c.watched_cores, "other_processes": c.other_cores, "steal": c.steal_cores, "idle": c.idle_cores })
}

/// The raw single-fsync rate of the disk under `dir`, measured for about `budget`.
async fn measure_fsync_rate(dir: &Path, budget: Duration) -> Result<f64, BenchError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let probe = |n| {
            coffer_storage::fsync_probe(&dir, n)
                .map_err(|e| BenchError::io(format!("fsync probe in {}", dir.display()), e))
        };
        // A short calibration run sizes the real one to the time budget.
        let calibration = probe(20)?;
        let n = (calibration * budget.as_secs_f64()).clamp(50.0, 20_000.0) as usize;
        probe(n)
    })
    .await
    .map_err(|e| BenchError::Config(format!("fsync probe task failed: {e}")))?
}

/// A Coffer server on `storage "file"` in a directory of its own, initialised with one key share.
pub(crate) struct DurableCoffer {
    /// The running server.
    pub(crate) process: ServerProcess,
    /// The root token from initialisation.
    pub(crate) root_token: String,
    /// The single unseal key share.
    pub(crate) unseal_key: String,
    /// The directory holding `data/`, the config and the logs.
    pub(crate) dir: PathBuf,
    /// How many times the server has been started on this directory (names the log files).
    starts: u32,
}

impl DurableCoffer {
    /// Start, initialise and unseal a fresh server in `dir`, mount KV v2 at `secret/`, and
    /// wait until a write to it succeeds.
    pub(crate) async fn start(dir: &Path, coffer_bin: &Path) -> Result<DurableCoffer, BenchError> {
        let mut process = spawn_on_file_storage(dir, coffer_bin, 1)?;
        process.wait_until_answering("/v1/sys/seal-status").await?;
        let addr = process.addr;
        let (unseal_key, root_token) = initialise_one_share(addr, "initialising").await?;
        let coffer = DurableCoffer {
            process,
            root_token,
            unseal_key,
            dir: dir.to_path_buf(),
            starts: 1,
        };
        coffer.unseal().await?;
        exchange(
            addr,
            Method::POST,
            "/v1/sys/mounts/secret",
            Some(&coffer.root_token),
            Some(&json!({ "type": "kv", "options": { "version": "2" } })),
        )
        .await?
        .expect_success("mounting KV v2 at secret/")?;
        // The first write proves the mount is ready before the clock starts.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = exchange(
                addr,
                Method::POST,
                "/v1/secret/data/bench/ready",
                Some(&coffer.root_token),
                Some(&json!({ "data": { "value": SECRET_VALUE } })),
            )
            .await?;
            if probe.status.is_success() {
                break;
            }
            if Instant::now() >= deadline {
                probe.expect_success("first write to the new KV v2 mount")?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(coffer)
    }

    /// Where the server listens now.
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.process.addr
    }

    /// Send the unseal key; returns when the answer has arrived.
    pub(crate) async fn unseal(&self) -> Result<(), BenchError> {
        unseal(self.addr(), &self.unseal_key, "unsealing").await
    }

    /// Start the server again on the same data directory (on a new port, so a socket left in
    /// TIME_WAIT cannot get in the way). The previous process must have exited. The new
    /// process is sealed; it is returned as soon as it has been spawned, so the caller can time
    /// its start-up.
    pub(crate) fn respawn(&mut self, coffer_bin: &Path) -> Result<(), BenchError> {
        self.starts += 1;
        self.process = spawn_on_file_storage(&self.dir, coffer_bin, self.starts)?;
        Ok(())
    }
}

/// Write a config for `storage "file"` under `dir` on a free port and start `coffer server`
/// with it; `start` numbers the log file.
fn spawn_on_file_storage(
    dir: &Path,
    coffer_bin: &Path,
    start: u32,
) -> Result<ServerProcess, BenchError> {
    let port = free_loopback_port()?;
    let data = dir.join("data");
    let config = dir.join("coffer.hcl");
    let hcl = format!("storage \"file\" {{\n  path = \"{}\"\n}}\n\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n", data.display());
    std::fs::write(&config, hcl).map_err(|e| BenchError::io("writing the server config", e))?;
    let args = vec![
        "server".into(),
        "-config".into(),
        config.display().to_string(),
    ];
    let log = if start == 1 {
        "coffer.log".to_string()
    } else {
        format!("coffer-start-{start}.log")
    };
    ServerProcess::spawn(
        "coffer server (file storage)",
        coffer_bin,
        &args,
        port,
        &dir.join(log),
    )
}

/// The file backend's commit counters, read from `sys/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct CommitCounters {
    durable_commits: u64,
    ops: u64,
}

async fn commit_counters(
    addr: std::net::SocketAddr,
    token: &str,
) -> Result<Option<CommitCounters>, BenchError> {
    let metrics = exchange(addr, Method::GET, "/v1/sys/metrics", Some(token), None)
        .await?
        .expect_success("reading sys/metrics")?
        .json("reading sys/metrics")?;
    let counter = |name: &str| {
        metrics["Counters"].as_array().and_then(|counters| {
            counters
                .iter()
                .find(|c| c["Name"] == name)
                .and_then(|c| c["Count"].as_u64())
        })
    };
    Ok(counter("coffer.storage.durable_commits")
        .zip(counter("coffer.storage.ops"))
        .map(|(durable_commits, ops)| CommitCounters {
            durable_commits,
            ops,
        }))
}

/// A request factory for the write figure: request *n* of connection *i* creates the new key
/// `bench/write-i-n`.
fn write_requests(addr: std::net::SocketAddr, token: String) -> RequestFactory {
    Arc::new(move |connection, seq| {
        let body = json!({ "data": { "value": SECRET_VALUE, "seq": seq } });
        encode_request(
            addr,
            Method::POST,
            &format!("/v1/secret/data/bench/write-{connection}-{seq}"),
            Some(&token),
            Some(&body),
        )
    })
}

/// Durable KV v2 writes with 64 connections, each request creating a new key, on `storage "file"`, versus the same binary's in-memory dev server taking the same
/// writes: what durability costs. The disk's single-fsync rate and the server's own commit
/// counters (fsyncs per second, writes per fsync) go in the notes.
pub async fn kv_write(settings: &Settings) -> Result<Figure, BenchError> {
    let dir = scratch(settings, "coffer-bench-write-")?;
    let probe_budget = settings.duration.min(Duration::from_secs(3));
    let fsync_rate = measure_fsync_rate(dir.path(), probe_budget).await?;
    eprintln!("  kv-write fsync probe: {fsync_rate:.0} fsyncs/s");

    let coffer = DurableCoffer::start(dir.path(), &settings.coffer_bin).await?;
    let addr = coffer.addr();
    let memory = spawn_dev(settings, dir.path(), "coffer-memory.log").await?;
    let sides = [
        Side {
            plan: plan(
                settings,
                "kv-write coffer (file)",
                addr,
                WRITE_CONNECTIONS,
                write_requests(addr, coffer.root_token.clone()),
            ),
            pid: coffer.process.pid(),
        },
        Side {
            plan: plan(
                settings,
                "kv-write coffer (in memory)",
                memory.addr,
                WRITE_CONNECTIONS,
                write_requests(memory.addr, DEV_ROOT_TOKEN.to_string()),
            ),
            pid: memory.pid(),
        },
    ];
    let turns = turns_for(settings.duration);
    let before = commit_counters(addr, &coffer.root_token).await?;
    let mut runs = run_in_turns(&sides, turns).await?.into_iter();
    let (durable_run, memory_run) = (
        runs.next().expect("file run"),
        runs.next().expect("memory run"),
    );
    let after = commit_counters(addr, &coffer.root_token).await?;
    drop(coffer);
    drop(memory);

    let (durable, in_memory) = (&durable_run.report, &memory_run.report);
    let mut caveat = caveat_for(&[("file", &durable_run), ("in memory", &memory_run)]);
    if fsync_rate > 50_000.0 {
        caveat = Some(format!("{fsync_rate:.0} fsyncs/s is not a real disk (tmpfs?); pass --scratch-dir on a durable filesystem"));
    }
    // The counters span every file turn, warm-ups included, as does `issued_requests`.
    let run_secs = file_turns_secs(settings, turns);
    let commits = before.zip(after).map(|(b, a)| {
        let fsyncs = a.durable_commits.saturating_sub(b.durable_commits);
        json!({
            "durable_commits": fsyncs,
            "ops": a.ops.saturating_sub(b.ops),
            "fsyncs_per_sec": fsyncs as f64 / run_secs,
            "writes_per_fsync": durable.issued_requests as f64 / fsyncs.max(1) as f64,
        })
    });
    let mut notes = vec![
        turns_note(&sides, turns, settings.duration),
        format!(
        "file storage {:.0} writes/s, in memory {:.0} writes/s; the disk alone fsyncs {fsync_rate:.0}/s one at a time",
        durable.throughput, in_memory.throughput
    ),
    ];
    if let Some(c) = &commits {
        notes.push(format!(
            "file storage committed {:.0} fsyncs/s carrying {:.1} writes each (its turns, warm-ups included)",
            c["fsyncs_per_sec"].as_f64().unwrap_or(0.0),
            c["writes_per_fsync"].as_f64().unwrap_or(0.0)
        ));
    }
    Ok(Figure {
        name: "kv-write".into(),
        unit: "writes/s".into(),
        coffer: durable.throughput,
        baseline: in_memory.throughput,
        ratio: durable.throughput / in_memory.throughput,
        target: WRITE_TARGET_RATIO,
        details: json!({
            "connections": WRITE_CONNECTIONS,
            "turns": turns,
            "coffer": durable_run.to_json(),
            "baseline_in_memory": memory_run.to_json(),
            "group_commit": commits.unwrap_or(Value::Null),
            "fsync_probe": { "per_sec": fsync_rate, "dir": settings.scratch_dir.display().to_string() },
        }),
        caveat,
        published_baseline: Some("same binary, in memory".into()),
        notes,
        parts: Vec::new(),
    })
}

/// How the sides shared the measured time, for the notes under the table.
fn turns_note(sides: &[Side], turns: u32, duration: Duration) -> String {
    let names: Vec<&str> = sides.iter().map(|s| s.plan.label.as_str()).collect();
    format!(
        "{} ran side by side and took {turns} turns of {:.2} s each under load, in rotating order, so a drift in the machine's speed reaches every side alike",
        names.join(", "),
        (duration / turns).as_secs_f64()
    )
}

/// The loaded time of one side measured in `turns` turns: its measured window plus the
/// warm-up of its first turn and the shorter re-warm of each later one.
fn file_turns_secs(settings: &Settings, turns: u32) -> f64 {
    let rewarm = settings.warmup.min(crate::turns::REWARM);
    (settings.duration + settings.warmup + rewarm * turns.saturating_sub(1)).as_secs_f64()
}

/// Start `coffer server -dev` (in memory, KV v2 at `secret/`, root token [`DEV_ROOT_TOKEN`])
/// with its log in `dir`, and wait until it answers.
pub(crate) async fn spawn_dev(
    settings: &Settings,
    dir: &Path,
    log: &str,
) -> Result<ServerProcess, BenchError> {
    let port = free_loopback_port()?;
    let args = vec![
        "server".into(),
        "-dev".into(),
        // The harness's servers leave the user's CLI token file alone.
        "-dev-no-store-token".into(),
        format!("-dev-root-token-id={DEV_ROOT_TOKEN}"),
        format!("-dev-listen-address=127.0.0.1:{port}"),
    ];
    let mut coffer = ServerProcess::spawn(
        "coffer dev server",
        &settings.coffer_bin,
        &args,
        port,
        &dir.join(log),
    )?;
    coffer.wait_until_answering("/v1/sys/health").await?;
    Ok(coffer)
}

/// Start the bare hyper baseline (a `canned-server` child of this binary) replaying `canned`,
/// and wait until it answers.
pub(crate) async fn spawn_canned_baseline(
    settings: &Settings,
    dir: &Path,
    canned: &CannedResponse,
    file_name: &str,
) -> Result<ServerProcess, BenchError> {
    let response_file = dir.join(file_name);
    std::fs::write(
        &response_file,
        serde_json::to_vec(&canned.to_json()).expect("JSON encodes"),
    )
    .map_err(|e| BenchError::io("writing the canned response", e))?;
    let port = free_loopback_port()?;
    let args = vec![
        "canned-server".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--response-file".into(),
        response_file.display().to_string(),
    ];
    let mut bare = ServerProcess::spawn(
        "bare hyper baseline",
        &settings.bench_bin,
        &args,
        port,
        &dir.join("bare.log"),
    )?;
    bare.wait_until_answering("/").await?;
    Ok(bare)
}
