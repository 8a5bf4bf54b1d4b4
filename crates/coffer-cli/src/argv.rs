//! Go-style flag normalisation.
//!
//! Vault's CLI is written with Go's `flag` package, where `-format=json` and `--format=json`
//! mean the same thing. clap only knows `--long`, so before parsing every single-dash flag with
//! a name of two or more characters is rewritten to the double-dash form. Negative numbers
//! (`-1`), the stdin marker `-`, and everything after a bare `--` are left alone.

use std::ffi::OsString;

/// Rewrite Go-style `-flag` arguments to clap's `--flag`, leaving argv[0], values that merely
/// start with a dash (negative numbers, `-`), and anything after `--` untouched.
pub fn normalise_args(args: Vec<OsString>) -> Vec<OsString> {
    let mut normalised = Vec::with_capacity(args.len());
    let mut after_terminator = false;
    for (index, arg) in args.into_iter().enumerate() {
        if index == 0 || after_terminator {
            normalised.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            normalised.push(arg);
            continue;
        };
        if text == "--" {
            after_terminator = true;
            normalised.push(arg);
            continue;
        }
        if is_single_dash_flag(text) {
            normalised.push(OsString::from(format!("-{text}")));
        } else {
            normalised.push(arg);
        }
    }
    normalised
}

/// `-name` or `-name=value` with a name of 2+ characters that is not a number.
fn is_single_dash_flag(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('-') else {
        return false;
    };
    if rest.starts_with('-') {
        return false;
    }
    let name = rest.split('=').next().unwrap_or_default();
    if name.chars().count() < 2 {
        return false;
    }
    // `-1`, `-2.5`, `-1h` style values are arguments, not flags.
    !rest.starts_with(|c: char| c.is_ascii_digit() || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalise(args: &[&str]) -> Vec<String> {
        normalise_args(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_flags_become_double_dash() {
        assert_eq!(
            normalise(&[
                "coffer",
                "kv",
                "get",
                "-format=json",
                "-field",
                "password",
                "secret/x"
            ]),
            [
                "coffer",
                "kv",
                "get",
                "--format=json",
                "--field",
                "password",
                "secret/x"
            ]
        );
    }

    #[test]
    fn double_dash_flags_are_left_as_they_are() {
        assert_eq!(
            normalise(&["coffer", "--mount=secret"]),
            ["coffer", "--mount=secret"]
        );
    }

    #[test]
    fn negative_numbers_stdin_marker_and_short_flags_are_not_flags() {
        assert_eq!(
            normalise(&["coffer", "write", "x", "-", "-1", "-5s", "-h"]),
            ["coffer", "write", "x", "-", "-1", "-5s", "-h"]
        );
    }

    #[test]
    fn nothing_after_a_bare_double_dash_is_rewritten() {
        assert_eq!(
            normalise(&["coffer", "kv", "put", "--", "secret/x", "-weird=value"]),
            ["coffer", "kv", "put", "--", "secret/x", "-weird=value"]
        );
    }

    #[test]
    fn argv0_is_never_rewritten() {
        assert_eq!(
            normalise(&["-coffer", "-format=json"]),
            ["-coffer", "--format=json"]
        );
    }
}
