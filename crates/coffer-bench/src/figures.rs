//! The two figures: how each sets up Coffer, what it measures, and its same-run baseline.

use crate::canned::CannedResponse;
use crate::cpu::{CpuSnapshot, CpuUse};
use crate::error::BenchError;
use crate::http::{build_request, exchange, free_loopback_port};
use crate::load::{self, LoadPlan, LoadReport, RequestFactory};
use crate::process::ServerProcess;
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
pub const READ_TARGET_RATIO: f64 = 0.7;
/// Durable writes per second must reach this multiple of the disk's single-fsync rate.
pub const WRITE_TARGET_RATIO: f64 = 20.0;
/// The dev server's root token, set on its command line.
pub const DEV_ROOT_TOKEN: &str = "root";
/// The secret the read figure reads.
pub const READ_SECRET_PATH: &str = "/v1/secret/data/bench/read";

/// A ~100-byte secret value (the JSON `{"value":"..."}` is 100 bytes).
const SECRET_VALUE: &str =
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
}

impl Figure {
    /// Whether the ratio reaches the target and the run had no failures.
    pub fn met(&self) -> bool {
        self.caveat.is_none() && self.ratio >= self.target
    }
}

/// CPU (in cores) other processes may use during a load run before the figure is flagged.
pub const NOISY_NEIGHBOUR_CORES: f64 = 0.25;

/// One side's load run with the CPU used around it.
struct SideRun {
    report: LoadReport,
    cpu: Option<CpuUse>,
}

impl SideRun {
    fn to_json(&self) -> Value {
        let mut json = self.report.to_json();
        json["cpu_cores"] = self.cpu.map_or(Value::Null, |c| json!({ "harness_and_server": c.watched_cores, "other_processes": c.other_cores, "steal": c.steal_cores, "idle": c.idle_cores }));
        json
    }
}

async fn run_side(plan: LoadPlan, server_pid: u32) -> Result<SideRun, BenchError> {
    let pids = [std::process::id(), server_pid];
    let before = CpuSnapshot::take(&pids);
    let report = load::run(plan).await?;
    let cpu = before
        .zip(CpuSnapshot::take(&pids))
        .map(|(b, a)| b.until(&a));
    Ok(SideRun { report, cpu })
}

fn caveat_for(sides: &[(&str, &SideRun)]) -> Option<String> {
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

fn scratch(settings: &Settings, prefix: &str) -> Result<tempfile::TempDir, BenchError> {
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

fn plan(
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
/// replaying Coffer's own response bytes.
pub async fn kv_read(settings: &Settings) -> Result<Figure, BenchError> {
    let dir = scratch(settings, "coffer-bench-read-")?;
    let port = free_loopback_port()?;
    let args = vec![
        "server".into(),
        "-dev".into(),
        format!("-dev-root-token-id={DEV_ROOT_TOKEN}"),
        format!("-dev-listen-address=127.0.0.1:{port}"),
    ];
    let mut coffer = ServerProcess::spawn(
        "coffer dev server",
        &settings.coffer_bin,
        &args,
        port,
        &dir.path().join("coffer.log"),
    )?;
    coffer.wait_until_answering("/v1/sys/health").await?;
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
    let captured = exchange(
        addr,
        Method::GET,
        READ_SECRET_PATH,
        Some(DEV_ROOT_TOKEN),
        None,
    )
    .await?
    .expect_success("reading the secret back")?;
    let canned = CannedResponse::from_exchange(&captured);
    let read_request: RequestFactory = Arc::new(move |_, _| {
        build_request(
            addr,
            Method::GET,
            READ_SECRET_PATH,
            Some(DEV_ROOT_TOKEN),
            None,
        )
    });
    let coffer_run = run_side(
        plan(
            settings,
            "kv-read coffer",
            addr,
            READ_CONNECTIONS,
            read_request,
        ),
        coffer.pid(),
    )
    .await?;
    drop(coffer);

    let response_file = dir.path().join("canned-response.json");
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
        &dir.path().join("bare.log"),
    )?;
    bare.wait_until_answering("/").await?;
    let addr = bare.addr;
    let read_request: RequestFactory = Arc::new(move |_, _| {
        build_request(
            addr,
            Method::GET,
            READ_SECRET_PATH,
            Some(DEV_ROOT_TOKEN),
            None,
        )
    });
    let bare_run = run_side(
        plan(
            settings,
            "kv-read bare hyper",
            addr,
            READ_CONNECTIONS,
            read_request,
        ),
        bare.pid(),
    )
    .await?;
    drop(bare);

    let caveat = caveat_for(&[("coffer", &coffer_run), ("bare hyper", &bare_run)]);
    let (coffer_report, bare_report) = (&coffer_run.report, &bare_run.report);
    Ok(Figure {
        name: "kv-read".into(),
        unit: "req/s".into(),
        coffer: coffer_report.throughput,
        baseline: bare_report.throughput,
        ratio: coffer_report.throughput / bare_report.throughput,
        target: READ_TARGET_RATIO,
        details: json!({
            "connections": READ_CONNECTIONS,
            "response_bytes": canned.body.len(),
            "coffer": coffer_run.to_json(),
            "baseline_bare_hyper": bare_run.to_json(),
        }),
        caveat,
    })
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

async fn start_durable_coffer(
    dir: &Path,
    coffer_bin: &Path,
) -> Result<(ServerProcess, String), BenchError> {
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
    let mut coffer = ServerProcess::spawn(
        "coffer server (file storage)",
        coffer_bin,
        &args,
        port,
        &dir.join("coffer.log"),
    )?;
    coffer.wait_until_answering("/v1/sys/seal-status").await?;
    let addr = coffer.addr;
    let init = exchange(
        addr,
        Method::PUT,
        "/v1/sys/init",
        None,
        Some(&json!({ "secret_shares": 1, "secret_threshold": 1 })),
    )
    .await?
    .expect_success("initialising")?
    .json("initialising")?;
    let key = init
        .get("keys")
        .and_then(|k| k.get(0))
        .and_then(Value::as_str)
        .ok_or_else(|| BenchError::UnexpectedResponse {
            context: "initialising".into(),
            detail: "no unseal key in the answer".into(),
        })?
        .to_owned();
    let root_token = init
        .get("root_token")
        .and_then(Value::as_str)
        .ok_or_else(|| BenchError::UnexpectedResponse {
            context: "initialising".into(),
            detail: "no root token in the answer".into(),
        })?
        .to_owned();
    exchange(
        addr,
        Method::PUT,
        "/v1/sys/unseal",
        None,
        Some(&json!({ "key": key })),
    )
    .await?
    .expect_success("unsealing")?;
    exchange(
        addr,
        Method::POST,
        "/v1/sys/mounts/secret",
        Some(&root_token),
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
            Some(&root_token),
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
    Ok((coffer, root_token))
}

/// Durable KV v2 writes with 64 connections (distinct key per connection, each request a new
/// version) on `storage "file"`, versus the raw single-fsync rate in the same directory.
pub async fn kv_write(settings: &Settings) -> Result<Figure, BenchError> {
    let dir = scratch(settings, "coffer-bench-write-")?;
    let probe_budget = settings.duration.min(Duration::from_secs(3));
    let fsync_before = measure_fsync_rate(dir.path(), probe_budget).await?;
    eprintln!("  kv-write fsync probe: {fsync_before:.0} fsyncs/s");

    let (coffer, root_token) = start_durable_coffer(dir.path(), &settings.coffer_bin).await?;
    let addr = coffer.addr;
    let write_request: RequestFactory = Arc::new(move |connection, seq| {
        let body = json!({ "data": { "value": SECRET_VALUE, "seq": seq } });
        build_request(
            addr,
            Method::POST,
            &format!("/v1/secret/data/bench/write-{connection}"),
            Some(&root_token),
            Some(&body),
        )
    });
    let coffer_run = run_side(
        plan(
            settings,
            "kv-write coffer",
            addr,
            WRITE_CONNECTIONS,
            write_request,
        ),
        coffer.pid(),
    )
    .await?;
    drop(coffer);

    let fsync_after = measure_fsync_rate(dir.path(), probe_budget).await?;
    eprintln!("  kv-write fsync probe: {fsync_after:.0} fsyncs/s");
    // Disk speed drifts with other load; the mean of a probe on each side of the run is fairer
    // than either alone.
    let fsync_rate = (fsync_before + fsync_after) / 2.0;
    let coffer_report = &coffer_run.report;
    let mut caveat = caveat_for(&[("coffer", &coffer_run)]);
    if fsync_rate > 50_000.0 {
        caveat = Some(format!("{fsync_rate:.0} fsyncs/s is not a real disk (tmpfs?); pass --scratch-dir on a durable filesystem"));
    }
    Ok(Figure {
        name: "kv-write".into(),
        unit: "writes/s vs fsyncs/s".into(),
        coffer: coffer_report.throughput,
        baseline: fsync_rate,
        ratio: coffer_report.throughput / fsync_rate,
        target: WRITE_TARGET_RATIO,
        details: json!({
            "connections": WRITE_CONNECTIONS,
            "coffer": coffer_run.to_json(),
            "baseline_fsync_probe": { "before_per_sec": fsync_before, "after_per_sec": fsync_after, "mean_per_sec": fsync_rate, "dir": settings.scratch_dir.display().to_string() },
        }),
        caveat,
    })
}
