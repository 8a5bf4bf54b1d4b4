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
    let mut buf = Rfc3339Buf::default();
    match write_rfc3339(t, Fraction::Nanos, &mut buf) {
        Some(text) => text.to_owned(),
        None => t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    }
}

/// Room for `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
type Rfc3339Buf = [u8; 30];

/// How many fractional-second digits [`write_rfc3339`] writes.
#[derive(Clone, Copy)]
enum Fraction {
    /// Always nine.
    Nanos,
    /// None, three, six or nine: as few as show the value exactly (chrono's `AutoSi`, which is
    /// what chrono's own `Serialize` writes).
    AutoSi,
}

/// `t` as RFC 3339 in UTC with a `Z`, written into `buf` without going through `fmt` (this runs
/// several times per token and lease written). `None` for years outside 0..=9999, which RFC
/// 3339 cannot write without a sign; callers fall back to chrono for those.
fn write_rfc3339(t: DateTime<Utc>, fraction: Fraction, buf: &mut Rfc3339Buf) -> Option<&str> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut nanos = t.nanosecond();
    let mut second = t.second();

    // chrono keeps a leap second as nanoseconds >= 1e9; like chrono, print it as second 60.
    if nanos >= 1_000_000_000 {
        second += 1;
        nanos -= 1_000_000_000;
    }
    let digits = match fraction {
        Fraction::Nanos => 9,
        Fraction::AutoSi if nanos == 0 => 0,
        Fraction::AutoSi if nanos.is_multiple_of(1_000_000) => 3,
        Fraction::AutoSi if nanos.is_multiple_of(1_000) => 6,
        Fraction::AutoSi => 9,
    };
    // Decimal `value` right-aligned in `buf[at..at + width]`.
    fn put(buf: &mut Rfc3339Buf, at: usize, width: usize, mut value: u32) {
        for slot in buf[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    *buf = *b"0000-00-00T00:00:00.000000000Z";
    put(buf, 0, 4, year);
    put(buf, 5, 2, t.month());
    put(buf, 8, 2, t.day());
    put(buf, 11, 2, t.hour());
    put(buf, 14, 2, t.minute());
    put(buf, 17, 2, second);
    let end = if digits == 0 {
        19
    } else {
        put(buf, 20, digits, nanos / 10u32.pow(9 - digits as u32));
        20 + digits
    };
    buf[end] = b'Z';
    std::str::from_utf8(&buf[..=end]).ok()
}

/// Serde for a `DateTime<Utc>` field: writes exactly what chrono's own `Serialize` writes
/// (RFC 3339, `Z`, as many fractional digits as needed) without its `fmt` machinery, and reads
/// with chrono. Use as `#[serde(with = "coffer_sdk::clock::rfc3339")]`.
pub mod rfc3339 {
    use super::{write_rfc3339, Fraction, Rfc3339Buf};
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialize `t` as chrono would.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = Rfc3339Buf::default();
        match write_rfc3339(*t, Fraction::AutoSi, &mut buf) {
            Some(text) => serializer.serialize_str(text),
            None => t.serialize(serializer),
        }
    }

    /// Deserialize with chrono.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(deserializer)
    }

    /// The same for an `Option<DateTime<Utc>>` field.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialize `Some(t)` as chrono would, `None` as null.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, serializer),
                None => serializer.serialize_none(),
            }
        }

        /// Deserialize with chrono.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<DateTime<Utc>>::deserialize(deserializer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times with every fractional shape chrono distinguishes, across the whole 0..=9999 range.
    fn sample_times() -> Vec<DateTime<Utc>> {
        let mut times = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for i in 0..20_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let secs = (seed % 253_402_300_799) as i64 - 62_167_219_200;
            let nanos = match i % 5 {
                0 => 0,
                1 => (seed >> 40) as u32 % 1000 * 1_000_000,
                2 => (seed >> 40) as u32 % 1_000_000 * 1000,
                3 => (seed >> 32) as u32 % 1_000_000_000,
                _ => 1_000_000_000 + (seed >> 40) as u32 % 1000,
            };
            if let Some(t) = DateTime::<Utc>::from_timestamp(secs, nanos) {
                times.push(t);
            }
        }
        times.push(DateTime::<Utc>::from_timestamp(-62_167_219_200, 0).unwrap());
        times.push(DateTime::<Utc>::from_timestamp(253_402_300_799, 999_999_999).unwrap());
        times
    }

    #[test]
    fn rfc3339_serde_writes_exactly_what_chrono_writes_and_reads_it_back() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Fast {
            #[serde(with = "super::rfc3339")]
            t: DateTime<Utc>,
            #[serde(with = "super::rfc3339::option")]
            maybe: Option<DateTime<Utc>>,
        }
        #[derive(serde::Serialize)]
        struct Chrono {
            t: DateTime<Utc>,
            maybe: Option<DateTime<Utc>>,
        }
        let mut times = sample_times();
        // Outside 0..=9999 the fallback is chrono itself.
        times.push(DateTime::<Utc>::from_timestamp(-62_167_219_201, 5).unwrap());
        times.push(DateTime::<Utc>::from_timestamp(253_402_300_800, 0).unwrap());
        for (i, t) in times.into_iter().enumerate() {
            let maybe = (i % 2 == 0).then_some(t);
            let fast = serde_json::to_string(&Fast { t, maybe }).unwrap();
            let chrono = serde_json::to_string(&Chrono { t, maybe }).unwrap();
            assert_eq!(fast, chrono);
            let back: Fast = serde_json::from_str(&fast).unwrap();
            assert_eq!((back.t, back.maybe), (t, maybe));
        }
    }

    #[test]
    fn format_time_matches_chrono_with_nanoseconds() {
        for t in sample_times() {
            assert_eq!(
                format_time(t),
                t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            );
        }
    }

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
