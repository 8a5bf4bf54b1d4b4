//! Dynamic group membership rules (`any {k = 'v', ...}`) through `identity::parse_rule`.
//!
//! Input: the rule text, as UTF-8.
//!
//! Oracles: no panic (the parser indexes a char vector by hand); a parsed rule has only
//! non-empty attribute names; surrounding whitespace does not change the outcome (the parser
//! trims, as the API documents by example).
#![no_main]

use coffer_server::identity::parse_rule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_rule(text);
    if let Ok(rule) = &parsed {
        for condition in &rule.conditions {
            assert!(
                !condition.key.is_empty(),
                "parse_rule({text:?}) produced a condition without an attribute name"
            );
        }
    }
    let padded = parse_rule(&format!("  \n{text}\t "));
    assert_eq!(
        parsed.is_ok(),
        padded.is_ok(),
        "surrounding whitespace changed whether {text:?} parses"
    );
    if let (Ok(a), Ok(b)) = (&parsed, &padded) {
        assert_eq!(a, b, "surrounding whitespace changed the parse of {text:?}");
    }
});
