//! Raw disk fsync rate, the baseline the benchmark harness compares commit throughput against.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

/// Size of each probe record; a small write, like one commit's header update.
const PROBE_RECORD_BYTES: usize = 512;

/// Measure sequential small write + fsync on the disk holding `dir`, in operations per second.
///
/// Appends `n` records of 512 bytes to a scratch file in `dir`, calling `sync_data` after each
/// (the same primitive redb uses for a durable commit), and removes the file afterwards. No
/// storage engine can acknowledge more durable commits per second than this on one stream, so
/// `commits/s ÷ probe` shows how close a backend gets to the hardware and
/// `writes/s ÷ probe` shows what group commit buys.
pub fn fsync_probe(dir: &Path, n: usize) -> io::Result<f64> {
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fsync probe needs at least one write",
        ));
    }
    fs::create_dir_all(dir)?;
    let path = dir.join(format!(".coffer-fsync-probe-{}", std::process::id()));
    let result = run_probe(&path, n);
    let removed = fs::remove_file(&path);
    let rate = result?;
    removed?;
    Ok(rate)
}

fn run_probe(path: &Path, n: usize) -> io::Result<f64> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let record = [0xA5u8; PROBE_RECORD_BYTES];
    let started = Instant::now();
    for _ in 0..n {
        file.write_all(&record)?;
        file.sync_data()?;
    }
    let seconds = started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(n as f64 / seconds)
}
