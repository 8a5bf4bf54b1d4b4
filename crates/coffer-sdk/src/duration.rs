//! Durations as Vault spells them: a bare number of seconds (`3600`, `"3600"`) or Go-style
//! unit strings (`"1h30m"`, `"768h"`, `"10s"`, `"1.5h"`), plus `d` for days as Vault accepts.

use std::time::Duration;

/// Why a duration string was refused; the message names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// Parse `"90"`, `"90s"`, `"1h30m"`, `"2d"`, `"1.5h"`, `"500ms"`. Negative values are refused.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.starts_with('-') {
        return Err(err("negative durations are not allowed"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| err("number too large"));
    }
    let mut total_nanos: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per_unit: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "" => return Err(err("missing unit (use s, m, h or d)")),
            _ => return Err(err("unknown unit (use ns, us, ms, s, m, h or d)")),
        };
        total_nanos += value * nanos_per_unit;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(err("duration too large"));
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

/// Parse a JSON value that Vault accepts as a duration: an integer number of seconds or a
/// duration string.
pub fn duration_from_json(value: &serde_json::Value) -> Result<Duration, DurationError> {
    match value {
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(secs) => Ok(Duration::from_secs(secs)),
            None => Err(DurationError {
                input: n.to_string(),
                reason: "must be a non-negative whole number of seconds",
            }),
        },
        serde_json::Value::String(s) => parse_duration(s),
        other => Err(DurationError {
            input: other.to_string(),
            reason: "must be a number of seconds or a duration string",
        }),
    }
}

/// Format like Go's `time.Duration.String()` (`"1h0m0s"`, `"30s"`, `"0s"`), which Vault
/// returns in several read responses.
pub fn format_go(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 && d.subsec_nanos() == 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let frac = d.subsec_nanos();
    let sec_part = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{:09}", frac);
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{sec_part}")
    } else if m > 0 {
        format!("{m}m{sec_part}")
    } else {
        sec_part
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_seconds_and_units_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("768h").unwrap(),
            Duration::from_secs(768 * 3600)
        );
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn garbage_is_refused_with_the_input_named() {
        for bad in ["", "-5s", "h", "10x", "1h30", "abc"] {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(e.input, bad);
        }
    }

    #[test]
    fn go_format_matches_vault_output() {
        assert_eq!(format_go(Duration::ZERO), "0s");
        assert_eq!(format_go(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_go(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go(Duration::from_secs(5)), "5s");
    }
}
