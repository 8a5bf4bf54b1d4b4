//! Request metrics, counted once in the pipeline for every front door. Lock-free counters;
//! rendered as Prometheus text or JSON by `sys/metrics`.

use coffer_sdk::Operation;
use coffer_storage::CommitStats;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

const OPS: [Operation; 6] = [
    Operation::Read,
    Operation::Create,
    Operation::Update,
    Operation::Patch,
    Operation::Delete,
    Operation::List,
];
const CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "other"];
/// Latency histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

/// Counters by operation and status class, plus a latency histogram, kept in shards: a thread
/// always counts in its own shard and a reader sums them. With one shared set, every request
/// on every worker thread wrote the same cache lines, and each add waited for the line to come
/// over from the other core.
#[derive(Default)]
pub struct Metrics {
    shards: Box<[Shard; SHARDS]>,
}

/// More than this machine has worker threads; a thread's shard is fixed when it first counts.
const SHARDS: usize = 16;

/// One shard's counters, alone on their cache lines (128 bytes covers adjacent-line prefetch).
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    requests: [[AtomicU64; 4]; 6],
    latency_buckets: [AtomicU64; 10],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

/// The shard the calling thread counts in.
fn shard_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

fn class(status: u16) -> usize {
    match status {
        200..=299 => 0,
        400..=499 => 1,
        500..=599 => 2,
        _ => 3,
    }
}

impl Metrics {
    /// Count one request.
    pub fn record(&self, op: Operation, status: u16, elapsed: Duration) {
        let shard = &self.shards[shard_of_this_thread()];
        let op_index = OPS.iter().position(|o| *o == op).unwrap_or(0);
        shard.requests[op_index][class(status)].fetch_add(1, Ordering::Relaxed);
        // One bucket per observation (the cumulative Prometheus form is summed when rendered),
        // so the hot path does a single atomic add here, not one per bucket.
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| secs <= *bound) {
            shard.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        shard.latency_count.fetch_add(1, Ordering::Relaxed);
        shard
            .latency_sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// A counter summed over the shards.
    fn total(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|shard| counter(shard).load(Ordering::Relaxed))
            .sum()
    }

    /// Prometheus text exposition format; `commits` are the storage backend's commit counters
    /// when it groups writes.
    pub fn prometheus(&self, commits: Option<CommitStats>) -> String {
        let mut out = String::new();
        out.push_str("# HELP coffer_requests_total Requests handled by the pipeline.\n# TYPE coffer_requests_total counter\n");
        for (i, op) in OPS.iter().enumerate() {
            for (j, c) in CLASSES.iter().enumerate() {
                let n = self.total(|s| &s.requests[i][j]);
                out.push_str(&format!(
                    "coffer_requests_total{{operation=\"{}\",status=\"{}\"}} {}\n",
                    op.as_str(),
                    c,
                    n
                ));
            }
        }
        out.push_str("# HELP coffer_request_duration_seconds Time spent in the pipeline.\n# TYPE coffer_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.total(|s| &s.latency_buckets[i]);
            out.push_str(&format!(
                "coffer_request_duration_seconds_bucket{{le=\"{}\"}} {}\n",
                bound, cumulative
            ));
        }
        let count = self.total(|s| &s.latency_count);
        out.push_str(&format!(
            "coffer_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "coffer_request_duration_seconds_sum {}\n",
            self.total(|s| &s.latency_sum_nanos) as f64 / 1e9
        ));
        out.push_str(&format!("coffer_request_duration_seconds_count {count}\n"));
        if let Some(commits) = commits {
            for (name, help, value) in storage_counters(commits) {
                out.push_str(&format!(
                    "# HELP coffer_storage_{name}_total {help}\n# TYPE coffer_storage_{name}_total counter\ncoffer_storage_{name}_total {value}\n"
                ));
            }
        }
        out
    }

    /// The same counters as JSON.
    pub fn json(&self, now: chrono::DateTime<chrono::Utc>, commits: Option<CommitStats>) -> Value {
        let mut counters = Vec::new();
        for (i, op) in OPS.iter().enumerate() {
            for (j, c) in CLASSES.iter().enumerate() {
                counters.push(json!({"Name": "coffer.requests", "Labels": {"operation": op.as_str(), "status": c}, "Count": self.total(|s| &s.requests[i][j])}));
            }
        }
        if let Some(commits) = commits {
            for (name, _, value) in storage_counters(commits) {
                counters.push(
                    json!({"Name": format!("coffer.storage.{name}"), "Labels": {}, "Count": value}),
                );
            }
        }
        json!({"Counters": counters, "Gauges": [], "Samples": [], "Timestamp": now.to_rfc3339()})
    }
}

/// Name, help text and value of each storage commit counter.
fn storage_counters(commits: CommitStats) -> [(&'static str, &'static str, u64); 3] {
    [
        (
            "commits",
            "Storage transactions committed for writers.",
            commits.commits,
        ),
        (
            "durable_commits",
            "Of those, the ones committed with an fsync.",
            commits.durable_commits,
        ),
        (
            "ops",
            "Writes (puts and deletes) those transactions applied.",
            commits.ops,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_more_threads_than_shards_all_reach_the_totals() {
        let metrics = std::sync::Arc::new(Metrics::default());
        let threads: Vec<_> = (0..SHARDS + 5)
            .map(|_| {
                let metrics = metrics.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        metrics.record(Operation::Read, 200, Duration::from_micros(200));
                    }
                    metrics.record(Operation::Update, 503, Duration::from_secs(2));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = (SHARDS + 5) as u64;
        let text = metrics.prometheus(None);
        assert!(
            text.contains(&format!(
                "coffer_requests_total{{operation=\"read\",status=\"2xx\"}} {}\n",
                100 * n
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "coffer_requests_total{{operation=\"update\",status=\"5xx\"}} {n}\n"
        )));
        // 200 µs falls in the 0.00025 bucket; the 2 s requests only in +Inf.
        assert!(text.contains(&format!(
            "coffer_request_duration_seconds_bucket{{le=\"0.00025\"}} {}\n",
            100 * n
        )));
        assert!(text.contains(&format!(
            "coffer_request_duration_seconds_count {}\n",
            101 * n
        )));
        let json = metrics.json(chrono::Utc::now(), None);
        let reads = json["Counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Labels"]["operation"] == "read" && c["Labels"]["status"] == "2xx")
            .unwrap()["Count"]
            .clone();
        assert_eq!(reads, 100 * n);
    }
}
