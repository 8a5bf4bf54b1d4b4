//! Duration flags (`-increment`, `-wrap-ttl`) parsed the way Vault's `DurationVar` does.
//!
//! A bare integer is seconds (`3600`); otherwise the value is a sequence of number-unit pairs
//! with Go's units `h`, `m`, `s`, `ms`, plus Vault's `d` for days (`1h30m`, `2d`, `90s`).
//! The CLI validates durations locally so a typo is a usage error (exit 1) rather than a
//! request the server refuses.

use crate::error::{CliError, CliResult};

/// Parse a duration flag value into whole seconds (fractions of a second are dropped).
pub fn parse_duration_seconds(flag: &str, text: &str) -> CliResult<u64> {
    let invalid = || {
        CliError::usage(format!(
            "Invalid -{flag} value \"{text}\": use a duration such as 30s, 15m, 1h or 3600"
        ))
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid());
    }
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(seconds);
    }
    let mut total_millis: u128 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let millis_per_unit: f64 = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total_millis += (number * millis_per_unit) as u128;
    }
    u64::try_from(total_millis / 1000).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_integers_are_seconds() {
        assert_eq!(parse_duration_seconds("increment", "3600").unwrap(), 3600);
        assert_eq!(parse_duration_seconds("increment", "0").unwrap(), 0);
    }

    #[test]
    fn go_style_unit_sequences_add_up() {
        assert_eq!(parse_duration_seconds("wrap-ttl", "5m").unwrap(), 300);
        assert_eq!(parse_duration_seconds("wrap-ttl", "1h30m").unwrap(), 5400);
        assert_eq!(parse_duration_seconds("wrap-ttl", "5m0s").unwrap(), 300);
        assert_eq!(parse_duration_seconds("wrap-ttl", "1.5h").unwrap(), 5400);
        assert_eq!(parse_duration_seconds("wrap-ttl", "2d").unwrap(), 172_800);
        assert_eq!(parse_duration_seconds("wrap-ttl", "1500ms").unwrap(), 1);
    }

    #[test]
    fn malformed_durations_are_usage_errors_naming_the_flag() {
        for bad in ["", "abc", "5x", "m5", "-5m", "5m3"] {
            let error = parse_duration_seconds("increment", bad).unwrap_err();
            assert_eq!(error.exit_code(), 1, "{bad}");
            assert!(error.to_string().contains("-increment"), "{bad}: {error}");
        }
    }
}
