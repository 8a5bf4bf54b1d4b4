//! Server configuration text through `parse_config`, as both HCL and JSON.
//!
//! Input: UTF-8 configuration text; every input is parsed in both formats (a JSON parse of
//! HCL text fails fast, and HCL is a superset of much of JSON's syntax).
//!
//! Oracles: no panic; parsing is deterministic — the same text parses to the same outcome
//! twice (a parser keeping state between calls, or iterating a randomly ordered map into the
//! result or its warnings, would show here).
#![no_main]

use coffer_config::{parse_config, ConfigFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [ConfigFormat::Hcl, ConfigFormat::Json] {
        let first = parse_config(text, format);
        let second = parse_config(text, format);
        assert_eq!(
            format!("{first:?}"),
            format!("{second:?}"),
            "{format:?} parse of the same text gave two different outcomes"
        );
    }
});
