//! The leases figure: what a large lease population costs a durable Coffer server.
//!
//! Every token with a TTL has a lease, so the figure creates leases by creating tokens on a
//! config-mode server with `storage "file"`, then measures, on that one server:
//!
//! * how fast leases are created (64 connections);
//! * a restart: SIGTERM, start on the same data, unseal, and the time from the unseal answer to
//!   the first successful KV read (target ≤ 1 s), plus the time from process start until it
//!   answers `sys/seal-status`;
//! * resident memory per idle lease: the restarted server's RSS after 1,000 requests minus that
//!   of a server set up and restarted the same way without the leases, over the lease count
//!   (target ≤ 200 bytes);
//! * `revoke-prefix` of 100,000 leases under one token role (target ≤ 10 s), checked with a
//!   `LIST` that must find nothing;
//! * the background expiry rate: tokens created under their own prefix with a short TTL, the
//!   server stopped before they are due and restarted after, and the time the restarted
//!   server takes to revoke the whole overdue backlog (polling a `LIST` of that prefix only).

use crate::error::BenchError;
use crate::figures::{
    caveat_for, run_side, scratch, Bound, DurableCoffer, Figure, Settings, SideRun, SubResult,
    SECRET_VALUE,
};
use crate::http::{encode_request, exchange, exchange_within};
use crate::load::{self, LoadPlan, RequestFactory};
use crate::process::ProcessMemory;
use hyper::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections creating tokens.
pub const CREATE_CONNECTIONS: usize = 64;
/// The unseal answer to the first successful read must take at most this.
pub const RESTART_TARGET_SECS: f64 = 1.0;
/// Resident memory per idle lease must stay at or below this.
pub const MEMORY_PER_LEASE_TARGET_BYTES: f64 = 200.0;
/// Revoking the prefix must take at most this.
pub const REVOKE_PREFIX_TARGET_SECS: f64 = 10.0;
/// Requests the restarted server answers before its memory is read.
pub const REQUESTS_BEFORE_MEMORY: u64 = 1_000;
/// TTL of the tokens whose expiry is measured: longer than creating them takes, so none is
/// due before the server is stopped.
pub const EXPIRING_TTL_SECS: u64 = 20;
/// Token role whose lease ids (`auth/token/create/<role>/...`) hold the expiring leases.
pub const EXPIRING_ROLE: &str = "bench-expiring";
/// How often the expiry measurement polls the listing of the expiring leases.
pub const EXPIRY_POLL: Duration = Duration::from_millis(100);
/// The longest the expiry measurement waits for the leases to go.
pub const EXPIRY_TIME_LIMIT: Duration = Duration::from_secs(120);
/// The longest a restarted server may take to answer its first read after unsealing.
pub const FIRST_READ_TIME_LIMIT: Duration = Duration::from_secs(120);
/// The longest `revoke-prefix` (and the lease count) may take before the harness gives up.
pub const LONG_CALL_TIME_LIMIT: Duration = Duration::from_secs(600);
/// The token role whose leases `revoke-prefix` revokes.
pub const BULK_ROLE: &str = "bulk";
/// The secret read after the restart.
pub const RESTART_READ_PATH: &str = "/v1/secret/data/x";

/// How many leases each part of the figure creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSizes {
    /// Idle leases (768 h tokens) present across the restart and the memory measurement.
    pub idle: u64,
    /// Leases created under `auth/token/create/bulk/` and revoked by prefix.
    pub under_prefix: u64,
    /// Leases with a 2 s TTL whose background expiry is measured.
    pub expiring: u64,
}

impl LeaseSizes {
    /// The sizes: a million idle leases, 100,000 under the prefix, 20,000 expiring.
    pub const FULL: LeaseSizes = LeaseSizes {
        idle: 1_000_000,
        under_prefix: 100_000,
        expiring: 20_000,
    };
    /// The CI smoke sizes.
    pub const SHORT: LeaseSizes = LeaseSizes {
        idle: 20_000,
        under_prefix: 5_000,
        expiring: 2_000,
    };
}

/// Times of one stop-and-start of a durable server.
#[derive(Debug, Clone, Copy)]
struct RestartTiming {
    /// SIGTERM until the old process exited.
    sigterm_to_exit: Duration,
    /// Process spawn until it answered `sys/seal-status`.
    start_to_unsealable: Duration,
    /// How long the unseal call itself took.
    unseal_call: Duration,
    /// The unseal answer until the first successful KV read.
    unseal_to_first_read: Duration,
    /// Reads tried until one succeeded.
    read_attempts: u32,
}

impl RestartTiming {
    fn to_json(self) -> Value {
        json!({
            "sigterm_to_exit_secs": self.sigterm_to_exit.as_secs_f64(),
            "start_to_unsealable_secs": self.start_to_unsealable.as_secs_f64(),
            "unseal_call_secs": self.unseal_call.as_secs_f64(),
            "unseal_to_first_read_secs": self.unseal_to_first_read.as_secs_f64(),
            "read_attempts": self.read_attempts,
        })
    }
}

/// The leases figure; see the module documentation.
pub async fn leases(settings: &Settings, sizes: LeaseSizes) -> Result<Figure, BenchError> {
    let bin = &settings.coffer_bin;
    let mut caveats: Vec<String> = Vec::new();

    // The memory baseline: the same set-up and restart, without the leases.
    eprintln!("  leases: reference server without leases (set-up, restart, {REQUESTS_BEFORE_MEMORY} reads)");
    let empty_dir = scratch(settings, "coffer-bench-leases-empty-")?;
    let mut empty = DurableCoffer::start(empty_dir.path(), bin).await?;
    write_restart_secret(&empty).await?;
    let empty_restart = restart(&mut empty, bin).await?;
    let empty_memory = memory_after_requests(&empty).await?;
    drop(empty);
    drop(empty_dir);

    let dir = scratch(settings, "coffer-bench-leases-")?;
    let mut coffer = DurableCoffer::start(dir.path(), bin).await?;
    write_restart_secret(&coffer).await?;

    // a. idle leases
    let create = create_tokens(
        &coffer,
        "leases create",
        "/v1/auth/token/create",
        json!({ "ttl": "768h", "policies": ["default"] }),
        sizes.idle,
    )
    .await?;
    note_problems(&mut caveats, "creating idle leases", &create, sizes.idle);
    let (idle_leases, count_secs) = lease_count(&coffer).await?;
    eprintln!("  leases: {idle_leases} leases stored (counting them took {count_secs:.2} s)");

    // b. restart
    eprintln!("  leases: SIGTERM, start on the same data, unseal, first read");
    let restart_timing = restart(&mut coffer, bin).await?;
    eprintln!(
        "  leases: start -> unsealable {:.3} s, unseal answer -> first read {:.3} s",
        restart_timing.start_to_unsealable.as_secs_f64(),
        restart_timing.unseal_to_first_read.as_secs_f64()
    );

    // c. memory per idle lease
    let memory = memory_after_requests(&coffer).await?;
    let per_lease =
        (memory.rss_bytes as f64 - empty_memory.rss_bytes as f64) / idle_leases.max(1) as f64;
    eprintln!(
        "  leases: RSS {} kB with leases, {} kB without: {per_lease:.1} bytes per lease",
        memory.rss_bytes / 1024,
        empty_memory.rss_bytes / 1024
    );

    // d. revoke-prefix
    exchange(
        coffer.addr(),
        Method::POST,
        &format!("/v1/auth/token/roles/{BULK_ROLE}"),
        Some(&coffer.root_token),
        Some(&json!({})),
    )
    .await?
    .expect_success("creating the token role for prefixed leases")?;
    let bulk = create_tokens(
        &coffer,
        "leases create under prefix",
        &format!("/v1/auth/token/create/{BULK_ROLE}"),
        json!({ "ttl": "768h" }),
        sizes.under_prefix,
    )
    .await?;
    note_problems(
        &mut caveats,
        "creating prefixed leases",
        &bulk,
        sizes.under_prefix,
    );
    let prefix = format!("auth/token/create/{BULK_ROLE}");
    eprintln!("  leases: revoke-prefix {prefix} ...");
    let revoke_started = Instant::now();
    exchange_within(
        LONG_CALL_TIME_LIMIT,
        coffer.addr(),
        Method::PUT,
        &format!("/v1/sys/leases/revoke-prefix/{prefix}"),
        Some(&coffer.root_token),
        None,
    )
    .await?
    .expect_success("revoking the prefix")?;
    let revoke_secs = revoke_started.elapsed().as_secs_f64();
    eprintln!("  leases: revoke-prefix took {revoke_secs:.2} s");
    let leftover = exchange(
        coffer.addr(),
        Method::from_bytes(b"LIST").expect("LIST is a valid method token"),
        &format!("/v1/sys/leases/lookup/{prefix}/"),
        Some(&coffer.root_token),
        None,
    )
    .await?;
    if leftover.status != hyper::StatusCode::NOT_FOUND {
        let listed = leftover
            .json("listing the revoked prefix")
            .ok()
            .and_then(|v| v["data"]["keys"].as_array().map(Vec::len))
            .unwrap_or(0);
        caveats.push(format!(
            "after revoke-prefix, LIST sys/leases/lookup/{prefix}/ answered {} with {listed} keys instead of 404",
            leftover.status
        ));
    }

    // e. background expiry: a backlog of overdue leases, drained by a restarted server
    exchange(
        coffer.addr(),
        Method::POST,
        &format!("/v1/auth/token/roles/{EXPIRING_ROLE}"),
        Some(&coffer.root_token),
        Some(&json!({})),
    )
    .await?
    .expect_success("creating the expiring tokens' role")?;
    let expiring = create_tokens(
        &coffer,
        "leases create expiring",
        &format!("/v1/auth/token/create/{EXPIRING_ROLE}"),
        json!({ "ttl": format!("{EXPIRING_TTL_SECS}s") }),
        sizes.expiring,
    )
    .await?;
    let created_at = Instant::now();
    note_problems(
        &mut caveats,
        "creating expiring leases",
        &expiring,
        sizes.expiring,
    );
    let created = expiring.report.measured_requests - expiring.report.failed_requests;
    coffer.process.terminate(Duration::from_secs(60))?;
    let due = created_at + Duration::from_secs(EXPIRING_TTL_SECS) + Duration::from_millis(500);
    eprintln!("  leases expiry: server stopped; restarting once all {created} expiring leases are overdue");
    tokio::time::sleep_until(due.into()).await;
    coffer.respawn(bin)?;
    coffer
        .process
        .wait_until_answering("/v1/sys/seal-status")
        .await?;
    coffer.unseal().await?;
    let expiry = measure_expiry(&coffer, created).await?;
    if expiry.remaining_at_end > 0 {
        caveats.push(format!(
            "{} of the expiring leases were still there after {EXPIRY_TIME_LIMIT:?}",
            expiry.remaining_at_end
        ));
    }
    drop(coffer);

    let parts = vec![
        SubResult::reported(
            "create leases (token create, 64 conn)",
            create.report.throughput,
            "/s",
        ),
        SubResult::reported(
            "restart: SIGTERM -> exited",
            restart_timing.sigterm_to_exit.as_secs_f64(),
            "s",
        ),
        SubResult::reported(
            "restart: start -> unsealable",
            restart_timing.start_to_unsealable.as_secs_f64(),
            "s",
        ),
        SubResult::with_target(
            "restart: unseal -> first read",
            restart_timing.unseal_to_first_read.as_secs_f64(),
            "s",
            Bound::AtMost(RESTART_TARGET_SECS),
        ),
        SubResult::with_target(
            "memory per idle lease",
            per_lease,
            "B",
            Bound::AtMost(MEMORY_PER_LEASE_TARGET_BYTES),
        ),
        SubResult::with_target(
            &format!("revoke-prefix {}", bulk.report.measured_requests),
            revoke_secs,
            "s",
            Bound::AtMost(REVOKE_PREFIX_TARGET_SECS),
        ),
        SubResult::reported("background expiry", expiry.rate_per_sec, "/s"),
    ];
    let notes = vec![format!(
        "{idle_leases} idle leases (asked for {}), {} under the prefix, {} expiring ({EXPIRING_TTL_SECS} s TTL); file storage under {}",
        sizes.idle,
        bulk.report.measured_requests,
        expiring.report.measured_requests,
        settings.scratch_dir.display()
    )];
    Ok(Figure {
        name: "leases".into(),
        unit: "composite".into(),
        coffer: create.report.throughput,
        baseline: f64::NAN,
        ratio: f64::NAN,
        target: f64::NAN,
        details: json!({
            "sizes": { "idle_asked": sizes.idle, "idle_stored": idle_leases, "under_prefix": sizes.under_prefix, "expiring": sizes.expiring },
            "create_idle": create.to_json(),
            "lease_count_call_secs": count_secs,
            "restart_with_leases": restart_timing.to_json(),
            "restart_without_leases": empty_restart.to_json(),
            "memory_with_leases": memory_json(memory),
            "memory_without_leases": memory_json(empty_memory),
            "memory_per_idle_lease_bytes": per_lease,
            "create_under_prefix": bulk.to_json(),
            "revoke_prefix_secs": revoke_secs,
            "list_after_revoke_status": leftover.status.as_u16(),
            "create_expiring": expiring.to_json(),
            "expiry": expiry.to_json(),
        }),
        caveat: (!caveats.is_empty()).then(|| caveats.join("; ")),
        published_baseline: None,
        notes,
        parts,
    })
}

fn memory_json(memory: ProcessMemory) -> Value {
    json!({ "rss_bytes": memory.rss_bytes, "peak_rss_bytes": memory.peak_rss_bytes })
}

fn note_problems(caveats: &mut Vec<String>, what: &str, run: &SideRun, asked: u64) {
    if let Some(c) = caveat_for(&[(what, run)]) {
        caveats.push(c);
    }
    let done = run.report.measured_requests - run.report.failed_requests;
    if done < asked {
        caveats.push(format!(
            "{what}: {done} of {asked} created before the time limit"
        ));
    }
}

async fn write_restart_secret(coffer: &DurableCoffer) -> Result<(), BenchError> {
    exchange(
        coffer.addr(),
        Method::POST,
        RESTART_READ_PATH,
        Some(&coffer.root_token),
        Some(&json!({ "data": { "value": SECRET_VALUE } })),
    )
    .await?
    .expect_success("writing the secret read after the restart")?;
    Ok(())
}

/// Create `count` tokens with `body` at `path`, 64 connections, bounded by the count and by
/// a time limit of a millisecond per token (at least a minute).
async fn create_tokens(
    coffer: &DurableCoffer,
    label: &str,
    path: &str,
    body: Value,
    count: u64,
) -> Result<SideRun, BenchError> {
    let addr = coffer.addr();
    let token = coffer.root_token.clone();
    let path = path.to_owned();
    let body = Arc::new(body);
    let request = encode_request(addr, Method::POST, &path, Some(&token), Some(&body));
    let requests: RequestFactory = Arc::new(move |_, _| request.clone());
    eprintln!("  {label}: {count} tokens, {CREATE_CONNECTIONS} connections");
    run_side(
        LoadPlan {
            label: label.into(),
            addr,
            connections: CREATE_CONNECTIONS,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(count / 1000).max(Duration::from_secs(60)),
            max_requests: count,
            requests,
        },
        coffer.process.pid(),
    )
    .await
}

/// `sys/leases/count` and how long the call took.
async fn lease_count(coffer: &DurableCoffer) -> Result<(u64, f64), BenchError> {
    let started = Instant::now();
    let answer = exchange_within(
        LONG_CALL_TIME_LIMIT,
        coffer.addr(),
        Method::GET,
        "/v1/sys/leases/count",
        Some(&coffer.root_token),
        None,
    )
    .await?
    .expect_success("counting leases")?
    .json("counting leases")?;
    let count =
        answer["data"]["lease_count"]
            .as_u64()
            .ok_or_else(|| BenchError::UnexpectedResponse {
                context: "counting leases".into(),
                detail: "no data.lease_count in the answer".into(),
            })?;
    Ok((count, started.elapsed().as_secs_f64()))
}

/// Stop the server with SIGTERM, start it on the same data, unseal it and time each step up to
/// the first successful read of the secret.
async fn restart(
    coffer: &mut DurableCoffer,
    bin: &std::path::Path,
) -> Result<RestartTiming, BenchError> {
    let sigterm_to_exit = coffer.process.terminate(Duration::from_secs(60))?;
    let spawned = Instant::now();
    coffer.respawn(bin)?;
    coffer
        .process
        .wait_until_answering("/v1/sys/seal-status")
        .await?;
    let start_to_unsealable = spawned.elapsed();
    let unseal_sent = Instant::now();
    coffer.unseal().await?;
    let unsealed = Instant::now();
    let mut read_attempts = 0;
    loop {
        read_attempts += 1;
        let answer = exchange(
            coffer.addr(),
            Method::GET,
            RESTART_READ_PATH,
            Some(&coffer.root_token),
            None,
        )
        .await;
        if matches!(&answer, Ok(a) if a.status.is_success()) {
            break;
        }
        if unsealed.elapsed() > FIRST_READ_TIME_LIMIT {
            return Err(BenchError::Server(format!(
                "the restarted server did not answer a read within {FIRST_READ_TIME_LIMIT:?} of unsealing (last: {})",
                match answer {
                    Ok(a) => format!("status {}", a.status),
                    Err(e) => e.to_string(),
                }
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(RestartTiming {
        sigterm_to_exit,
        start_to_unsealable,
        unseal_call: unsealed.duration_since(unseal_sent),
        unseal_to_first_read: unsealed.elapsed(),
        read_attempts,
    })
}

/// The server's memory after it has answered [`REQUESTS_BEFORE_MEMORY`] reads.
async fn memory_after_requests(coffer: &DurableCoffer) -> Result<ProcessMemory, BenchError> {
    let addr: SocketAddr = coffer.addr();
    let token = coffer.root_token.clone();
    let request = encode_request(addr, Method::GET, RESTART_READ_PATH, Some(&token), None);
    let requests: RequestFactory = Arc::new(move |_, _| request.clone());
    let report = load::run(LoadPlan {
        label: "leases reads before the memory reading".into(),
        addr,
        connections: 8,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(60),
        max_requests: REQUESTS_BEFORE_MEMORY,
        requests,
    })
    .await?;
    if report.failed_requests > 0 {
        return Err(BenchError::Server(format!(
            "{} of {REQUESTS_BEFORE_MEMORY} reads failed before the memory reading",
            report.failed_requests
        )));
    }
    coffer.process.memory()
}

/// What the expiry measurement saw.
struct ExpiryRun {
    /// Seconds after unsealing, and how many expiring leases were left then.
    samples: Vec<(f64, u64)>,
    /// Overdue leases revoked per second by the restarted server.
    rate_per_sec: f64,
    /// Expiring leases still present when polling stopped.
    remaining_at_end: u64,
}

impl ExpiryRun {
    fn to_json(&self) -> Value {
        json!({
            "rate_per_sec": self.rate_per_sec,
            "remaining_at_end": self.remaining_at_end,
            "samples_secs_after_unseal_and_remaining": self.samples,
        })
    }
}

/// How many expiring leases are still listed (`LIST` of their prefix; 404 = none).
async fn expiring_left(coffer: &DurableCoffer) -> Result<u64, BenchError> {
    let answer = exchange_within(
        LONG_CALL_TIME_LIMIT,
        coffer.addr(),
        Method::from_bytes(b"LIST").expect("LIST is a valid method token"),
        &format!("/v1/sys/leases/lookup/auth/token/create/{EXPIRING_ROLE}/"),
        Some(&coffer.root_token),
        None,
    )
    .await?;
    if answer.status == hyper::StatusCode::NOT_FOUND {
        return Ok(0);
    }
    let listed = answer
        .expect_success("listing the expiring leases")?
        .json("listing the expiring leases")?;
    Ok(listed["data"]["keys"]
        .as_array()
        .map_or(0, |k| k.len() as u64))
}

/// From the unseal of a server whose `created` expiring leases are all overdue, poll their
/// listing until they are gone; the rate is the backlog over the time it took.
async fn measure_expiry(coffer: &DurableCoffer, created: u64) -> Result<ExpiryRun, BenchError> {
    let unsealed = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut last_shown = Instant::now();
    let mut ticker = tokio::time::interval(EXPIRY_POLL);
    loop {
        ticker.tick().await;
        let remaining = expiring_left(coffer).await?;
        let at = unsealed.elapsed().as_secs_f64();
        samples.push((at, remaining));
        if last_shown.elapsed() >= Duration::from_secs(1) || remaining == 0 {
            last_shown = Instant::now();
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "  leases expiry: {at:.1} s after unseal, {remaining} overdue leases left"
            );
        }
        if remaining == 0 || unsealed.elapsed() >= EXPIRY_TIME_LIMIT {
            break;
        }
    }
    let (t_last, last) = *samples.last().expect("at least one sample");
    let revoked = created.saturating_sub(last);
    Ok(ExpiryRun {
        rate_per_sec: if t_last > 0.0 {
            revoked as f64 / t_last
        } else {
            f64::NAN
        },
        remaining_at_end: last,
        samples,
    })
}
