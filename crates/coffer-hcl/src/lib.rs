//! A guard in front of every HCL parse (server config, ACL policies, `coffer policy fmt`).
//!
//! hcl-rs's parser backtracks, and on some inputs its work doubles with every level of
//! bracket nesting: the fuzzer found a 509-byte config (objects nested in expressions, as in
//! `a = (r %{ r/l %{ r/l ...`) that took it 2 s in a release build and over 10 s under the
//! fuzzer. Policies arrive over HTTP, so that is a denial of service for anyone who may write
//! one. Real configs and policies nest three or four levels at most (`listener "tcp" {
//! telemetry { ... } }`, `path "x" { allowed_parameters = { "k" = ["v"] } }`), so text that
//! nests brackets deeper than [`MAX_NESTING`] is refused with a clear error instead, before the
//! parser sees it. At that depth the worst shape known costs the parser under a
//! millisecond.

/// Deepest bracket nesting (`{`, `[`, `(`, including template `${`/`%{`) accepted.
pub const MAX_NESTING: usize = 10;

/// HCL text nests brackets deeper than [`MAX_NESTING`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("brackets nest more than {MAX_NESTING} levels deep at line {line}, column {column}; Coffer refuses deeper nesting")]
pub struct TooDeep {
    /// One-based line of the bracket that went too deep.
    pub line: usize,
    /// One-based column (in characters) of that bracket.
    pub column: usize,
}

/// Check `text` before handing it to an HCL parser.
///
/// Brackets are counted everywhere, inside strings and comments too: that can only over-count
/// (a stray `{` in a string), never let a deep input through, and real text does not come close
/// to the limit either way. A closing bracket with nothing open is left for the parser to
/// report.
pub fn check_nesting(text: &str) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1, 0);
    for c in text.chars() {
        column += 1;
        match c {
            '\n' => {
                line += 1;
                column = 0;
            }
            '{' | '[' | '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(TooDeep { line, column });
                }
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_configs_and_policies_pass() {
        let config = r#"
            storage "raft" {
              path = "/var/lib/coffer"
              retry_join { leader_api_addr = "https://a:8200" }
            }
            listener "tcp" {
              address = "127.0.0.1:8200"
              telemetry { unauthenticated_metrics_access = true }
            }
        "#;
        assert_eq!(check_nesting(config), Ok(()));
        let policy = r#"path "secret/data/{{identity.entity.id}}/*" {
            capabilities = ["create", "read"]
            allowed_parameters = { "k" = ["v", "w"] }
        }"#;
        assert_eq!(check_nesting(policy), Ok(()));
    }

    #[test]
    fn exactly_the_limit_passes_and_one_more_is_refused_where_it_happens() {
        let at_limit = format!(
            "a = {}1{}",
            "[".repeat(MAX_NESTING),
            "]".repeat(MAX_NESTING)
        );
        assert_eq!(check_nesting(&at_limit), Ok(()));
        let over = format!("x = 1\na = {}1", "(".repeat(MAX_NESTING + 1));
        assert_eq!(
            check_nesting(&over),
            Err(TooDeep {
                line: 2,
                column: 4 + MAX_NESTING + 1
            })
        );
    }

    #[test]
    fn depth_is_nesting_not_count() {
        // Many sibling brackets, each closed: shallow.
        let flat = "a = [1]\n".repeat(10_000);
        assert_eq!(check_nesting(&flat), Ok(()));
        // Stray closers do not buy extra depth for later openers.
        let closers_first = format!("{}{}", "}".repeat(50), "{".repeat(MAX_NESTING + 1));
        assert!(check_nesting(&closers_first).is_err());
    }
}
