//! `coffer-bench`: runs Coffer's benchmark figures and prints them against same-run baselines.

use clap::{Args, Parser, Subcommand};
use coffer_bench::canned::{self, CannedResponse};
use coffer_bench::figures::{self, Figure, Settings};
use coffer_bench::leases::{self, LeaseSizes};
use coffer_bench::{login, report, BenchError};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "coffer-bench",
    about = "Coffer benchmark figures, each against a baseline measured in the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// KV v2 read throughput and p99 (32 connections) vs a bare hyper server sending the same bytes.
    KvRead(RunArgs),
    /// Durable KV v2 write throughput (64 connections, file storage) vs the disk's fsync rate.
    KvWrite(RunArgs),
    /// AppRole logins/s (32 connections) vs Vault's published rate, with the bare-HTTP ceiling.
    ApproleLogin(RunArgs),
    /// Leases on file storage: creation, restart to first answer, memory per lease,
    /// revoke-prefix, background expiry.
    Leases(RunArgs),
    /// Every figure.
    All(RunArgs),
    /// The read baseline's server process (started by kv-read; not for direct use).
    #[command(hide = true)]
    CannedServer {
        /// Address to listen on.
        #[arg(long)]
        listen: String,
        /// JSON file with the response to replay.
        #[arg(long)]
        response_file: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The coffer binary to benchmark.
    #[arg(long, default_value = "target/release/coffer")]
    coffer_bin: PathBuf,
    /// Measured seconds per load run (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured warm-up seconds before each load run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// CI smoke run: about 1.5 s per load run and 0.3 s warm-up; still prints the table.
    #[arg(long)]
    short: bool,
    /// Hard cap on requests per load run, warm-up included.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench/out/results.json")]
    json: PathBuf,
    /// Parent of the temp dirs for durable storage, the fsync probe and server logs; must be
    /// on the disk you want measured. Defaults to the system temp dir.
    #[arg(long)]
    scratch_dir: Option<PathBuf>,
    /// Exit with status 1 when a figure misses its target.
    #[arg(long)]
    require_targets: bool,
    /// Idle leases the leases figure creates (default 1,000,000; 20,000 with --short).
    #[arg(long)]
    leases: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let result = runtime.block_on(async {
        match cli.command {
            Command::KvRead(args) => run(args, &[Which::Read]).await,
            Command::KvWrite(args) => run(args, &[Which::Write]).await,
            Command::ApproleLogin(args) => run(args, &[Which::Login]).await,
            Command::Leases(args) => run(args, &[Which::Leases]).await,
            Command::All(args) => {
                run(
                    args,
                    &[Which::Read, Which::Write, Which::Login, Which::Leases],
                )
                .await
            }
            Command::CannedServer {
                listen,
                response_file,
            } => canned_server(&listen, &response_file)
                .await
                .map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("coffer-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy)]
enum Which {
    Read,
    Write,
    Login,
    Leases,
}

async fn run(args: RunArgs, which: &[Which]) -> Result<ExitCode, BenchError> {
    let (duration, warmup) = if args.short {
        (1.5, 0.3)
    } else {
        (args.duration, args.warmup)
    };
    if !(duration > 0.0 && duration.is_finite() && warmup >= 0.0 && warmup.is_finite()) {
        return Err(BenchError::Config(
            "--duration must be positive and --warmup not negative".into(),
        ));
    }
    if !args.coffer_bin.is_file() {
        return Err(BenchError::Config(format!("no coffer binary at {}; build it with `cargo build --release -p coffer` or pass --coffer-bin", args.coffer_bin.display())));
    }
    let settings = Settings {
        coffer_bin: args.coffer_bin.clone(),
        bench_bin: std::env::current_exe()
            .map_err(|e| BenchError::io("locating the coffer-bench binary", e))?,
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs_f64(warmup),
        max_requests: args.max_requests,
        scratch_dir: args.scratch_dir.clone().unwrap_or_else(std::env::temp_dir),
    };
    let lease_sizes = {
        let base = if args.short {
            LeaseSizes::SHORT
        } else {
            LeaseSizes::FULL
        };
        LeaseSizes {
            idle: args.leases.unwrap_or(base.idle),
            ..base
        }
    };
    if lease_sizes.idle == 0 {
        return Err(BenchError::Config("--leases must be at least 1".into()));
    }
    let mut results: Vec<Figure> = Vec::new();
    for figure in which {
        let result = match figure {
            Which::Read => {
                eprintln!("kv-read: KV v2 GET with a policy token, {} connections, {duration} s (+{warmup} s warm-up) each against coffer, a bare hyper server and (when installed) RustyVault", figures::READ_CONNECTIONS);
                figures::kv_read(&settings).await?
            }
            Which::Write => {
                eprintln!("kv-write: durable KV v2 POST, {} connections, {duration} s (+{warmup} s warm-up) against coffer on file storage and the same binary in memory, fsync probe before", figures::WRITE_CONNECTIONS);
                vec![figures::kv_write(&settings).await?]
            }
            Which::Login => {
                eprintln!("approle-login: AppRole login POST, {} connections, {duration} s (+{warmup} s warm-up) each against the coffer dev server and a bare hyper server", login::LOGIN_CONNECTIONS);
                vec![login::approle_login(&settings).await?]
            }
            Which::Leases => {
                eprintln!("leases: {} idle leases, {} under a prefix, {} expiring, on coffer with file storage", lease_sizes.idle, lease_sizes.under_prefix, lease_sizes.expiring);
                vec![leases::leases(&settings, lease_sizes).await?]
            }
        };
        results.extend(result);
    }
    print!("{}", report::table(&results));
    let settings_json = json!({
        "coffer_bin": settings.coffer_bin.display().to_string(),
        "duration_secs": duration,
        "warmup_secs": warmup,
        "short": args.short,
        "max_requests": settings.max_requests,
        "lease_sizes": { "idle": lease_sizes.idle, "under_prefix": lease_sizes.under_prefix, "expiring": lease_sizes.expiring },
        "scratch_dir": settings.scratch_dir.display().to_string(),
    });
    report::write_json(&args.json, &report::results_json(&results, settings_json))?;
    eprintln!("results written to {}", args.json.display());
    let all_met = results.iter().all(Figure::met);
    Ok(if args.require_targets && !all_met {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn canned_server(listen: &str, response_file: &std::path::Path) -> Result<(), BenchError> {
    let text = std::fs::read(response_file)
        .map_err(|e| BenchError::io(format!("reading {}", response_file.display()), e))?;
    let value = serde_json::from_slice(&text)
        .map_err(|e| BenchError::Config(format!("{} is not JSON: {e}", response_file.display())))?;
    let response = CannedResponse::from_json(&value)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| BenchError::io(format!("listening on {listen}"), e))?;
    canned::serve(listener, response).await;
    Ok(())
}
