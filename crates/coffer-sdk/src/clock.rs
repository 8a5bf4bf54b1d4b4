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

/// A clock that only moves when told to: the real time at construction, plus every
/// `advance`. It does not follow the wall clock, so nothing a test checks depends on how long
/// the test took.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    start: DateTime<Utc>,
}

impl ManualClock {
    /// Start at the current real time.
    pub fn new() -> Self {
        ManualClock::at(Utc::now())
    }

    /// Start at `start`.
    pub fn at(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
            start,
        }
    }

    /// Move time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.now.lock();
        *now = now
            .checked_add_signed(by)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }

    /// Set the time to `t`, even backwards: for a fuzzer or test that replays from a snapshot
    /// of storage taken at `t`.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock() = t;
    }

    /// How far this clock has been moved since it was made.
    pub fn offset(&self) -> chrono::Duration {
        *self.now.lock() - self.start
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
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
        assert_eq!(after - before, chrono::Duration::seconds(3600));
    }

    #[test]
    fn manual_clock_does_not_follow_wall_time() {
        let clock = ManualClock::new();
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(clock.now(), before, "only advance moves it");
        assert_eq!(clock.offset(), chrono::Duration::zero());
    }
}
