//! Policy text through the parser, then the compiled ACL through checks at fuzzer-chosen paths.
//!
//! Input: UTF-8. Everything before the first NUL byte is policy text (HCL or JSON) handed to
//! `parse_policy`. After the NUL, each line is a probe `PATH<TAB>CAPABILITIES<TAB>JSON-PARAMS`
//! (capability names comma-separated, e.g. `read,list`). Without probes, each rule's own path
//! pattern is turned into concrete paths (`+` → a segment, trailing `*` → extra text) so that
//! checks land on the rules the fuzzer wrote.
//!
//! Oracles: no panic; an empty capability set or one containing `deny` is never allowed (as
//! documented on `Acl::check_wrapped`); and compiling the policy together with a renamed copy
//! of itself decides every probe exactly as the policy alone (merging is idempotent).
#![no_main]

use coffer_policy::{parse_policy, Acl, Capabilities, Policy};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const MAX_PROBES: usize = 32;

struct Probe {
    path: String,
    required: Capabilities,
    params: Map<String, Value>,
}

fn capabilities_named(names: &str) -> Capabilities {
    names
        .split(',')
        .filter_map(|name| Capabilities::parse(name.trim()))
        .fold(Capabilities::NONE, Capabilities::union)
}

fn probes_from_text(text: &str) -> Vec<Probe> {
    text.lines()
        .take(MAX_PROBES)
        .map(|line| {
            let mut fields = line.splitn(3, '\t');
            let path = fields.next().unwrap_or_default().to_string();
            let required = capabilities_named(fields.next().unwrap_or_default());
            let params = coffer_fuzz::body_data(fields.next().unwrap_or_default());
            Probe {
                path,
                required,
                params,
            }
        })
        .collect()
}

fn probes_from_rules(policy: &Policy) -> Vec<Probe> {
    let required = [
        Capabilities::READ,
        Capabilities::LIST,
        Capabilities::UPDATE,
        Capabilities::CREATE.union(Capabilities::SUDO),
    ];
    policy
        .rules
        .iter()
        .take(MAX_PROBES / 2)
        .enumerate()
        .flat_map(|(i, rule)| {
            let concrete = rule.path.replace('+', "segment");
            let base = concrete.strip_suffix('*').unwrap_or(&concrete).to_string();
            [base.clone(), format!("{base}more/path"), format!("{base}/")]
                .into_iter()
                .map(move |path| Probe {
                    path,
                    required: required[i % required.len()],
                    params: Map::new(),
                })
        })
        .collect()
}

fn decide(acl: &Acl, probe: &Probe) -> (bool, Option<String>, Capabilities) {
    let decision = acl.check(&probe.path, probe.required, Some(&probe.params));
    (
        decision.allowed,
        decision.denial,
        acl.capabilities(&probe.path),
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (policy_text, probe_text) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(policy) = parse_policy("fuzz", policy_text) else {
        return;
    };
    let mut probes = probes_from_text(probe_text);
    if probes.is_empty() {
        probes = probes_from_rules(&policy);
    }

    let acl = Acl::compile(std::slice::from_ref(&policy));
    let twice = Acl::compile(&[
        policy.clone(),
        Policy {
            name: "fuzz-copy".into(),
            ..policy.clone()
        },
    ]);
    for probe in &probes {
        for refused in [Capabilities::NONE, probe.required.union(Capabilities::DENY)] {
            assert!(
                !acl.check(&probe.path, refused, Some(&probe.params)).allowed,
                "check({:?}, {:?}) allowed a request that must always be refused",
                probe.path,
                refused.names()
            );
        }
        let alone = decide(&acl, probe);
        let merged = decide(&twice, probe);
        assert_eq!(
            alone,
            merged,
            "merging the policy with a copy of itself changed the decision at {:?} for {:?}",
            probe.path,
            probe.required.names()
        );
        let _ = acl.capability_names(&probe.path);
        let _ = acl.check_wrapped(
            &probe.path,
            probe.required,
            Some(&probe.params),
            Some(std::time::Duration::from_secs(probe.path.len() as u64 * 60)),
        );
    }
});
