//! Request metrics, counted once in the pipeline for every front door. Lock-free counters;
//! rendered as Prometheus text or JSON by `sys/metrics`.

use coffer_sdk::Operation;
use coffer_storage::CommitStats;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Counters by operation and status class, plus a latency histogram.
pub struct Metrics {
    requests: [[AtomicU64; 4]; 6],
    latency_buckets: [AtomicU64; 10],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Default::default(),
            latency_buckets: Default::default(),
            latency_count: AtomicU64::new(0),
            latency_sum_nanos: AtomicU64::new(0),
        }
    }
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
        let op_index = OPS.iter().position(|o| *o == op).unwrap_or(0);
        self.requests[op_index][class(status)].fetch_add(1, Ordering::Relaxed);
        // One bucket per observation (the cumulative Prometheus form is summed when rendered),
        // so the hot path does a single atomic add here, not one per bucket.
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| secs <= *bound) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition format; `commits` are the storage backend's commit counters
    /// when it groups writes.
    pub fn prometheus(&self, commits: Option<CommitStats>) -> String {
        let mut out = String::new();
        out.push_str("# HELP coffer_requests_total Requests handled by the pipeline.\n# TYPE coffer_requests_total counter\n");
        for (i, op) in OPS.iter().enumerate() {
            for (j, c) in CLASSES.iter().enumerate() {
                let n = self.requests[i][j].load(Ordering::Relaxed);
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
            cumulative += self.latency_buckets[i].load(Ordering::Relaxed);
            out.push_str(&format!(
                "coffer_request_duration_seconds_bucket{{le=\"{}\"}} {}\n",
                bound, cumulative
            ));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        out.push_str(&format!(
            "coffer_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "coffer_request_duration_seconds_sum {}\n",
            self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
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
                counters.push(json!({"Name": "coffer.requests", "Labels": {"operation": op.as_str(), "status": c}, "Count": self.requests[i][j].load(Ordering::Relaxed)}));
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
