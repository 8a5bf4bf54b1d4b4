//! The one clock. Production uses [`SystemClock`]; tests use [`ManualClock`] and move time
//! forward instead of sleeping, so TTLs, leases and schedules are tested deterministically.

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// Real time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to: real time at construction plus every `advance`.
#[derive(Debug, Clone)]
pub struct ManualClock {
    offset: Arc<Mutex<chrono::Duration>>,
}

impl ManualClock {
    /// Start at the current real time.
    pub fn new() -> Self {
        ManualClock {
            offset: Arc::new(Mutex::new(chrono::Duration::zero())),
        }
    }

    /// Move time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut offset = self.offset.lock();
        *offset = offset.checked_add(&by).unwrap_or(chrono::Duration::MAX);
    }

    /// How far this clock has been moved ahead of real time.
    pub fn offset(&self) -> chrono::Duration {
        *self.offset.lock()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock()
    }
}

/// Format a time the way Vault does in JSON (RFC 3339 with nanoseconds, `Z`).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now();
        assert!(after - before >= chrono::Duration::seconds(3600));
        assert!(after - before < chrono::Duration::seconds(3660));
    }
}
