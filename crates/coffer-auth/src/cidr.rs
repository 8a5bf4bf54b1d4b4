//! CIDR lists as Vault accepts them: `10.0.0.0/8`, or a bare address meaning just that host.

use coffer_sdk::{Error, Result};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Parse and normalise a list of CIDR blocks; a bare address becomes a host block (`/32`,
/// `/128`). The error names the field, not the value.
pub(crate) fn parse_list(field: &str, raw: &[String]) -> Result<Vec<String>> {
    raw.iter()
        .map(|entry| parse_one(entry).map(|net| net.to_string()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::bad(format!("invalid CIDR block in \"{field}\"")))
}

fn parse_one(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether `addr` lies inside any of the (already normalised) `blocks`. An unknown caller
/// address never matches a restriction.
pub(crate) fn allows(blocks: &[String], addr: Option<SocketAddr>) -> bool {
    let Some(addr) = addr else {
        return false;
    };
    blocks
        .iter()
        .filter_map(|b| parse_one(b))
        .any(|net| net.contains(&addr.ip()))
}

/// Whether every block of `inner` lies inside some block of `outer` (an empty `outer`
/// restricts nothing).
pub(crate) fn is_subset(inner: &[String], outer: &[String]) -> bool {
    if outer.is_empty() {
        return true;
    }
    let outer: Vec<IpNet> = outer.iter().filter_map(|b| parse_one(b)).collect();
    inner.iter().all(|b| match parse_one(b) {
        Some(net) => outer.iter().any(|o| o.contains(&net)),
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses_become_host_blocks_and_garbage_is_refused() {
        let parsed = parse_list("cidr_list", &["10.1.0.0/16".into(), "192.168.1.7".into()]);
        assert_eq!(parsed.unwrap(), vec!["10.1.0.0/16", "192.168.1.7/32"]);
        let err = parse_list("cidr_list", &["not-a-cidr".into()]).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(!err.to_string().contains("not-a-cidr"));
    }

    #[test]
    fn membership_and_subsets() {
        let blocks = vec!["10.0.0.0/8".to_string()];
        assert!(allows(&blocks, Some("10.2.3.4:1".parse().unwrap())));
        assert!(!allows(&blocks, Some("11.2.3.4:1".parse().unwrap())));
        assert!(!allows(&blocks, None));
        assert!(is_subset(&["10.1.0.0/16".into()], &blocks));
        assert!(!is_subset(&["0.0.0.0/0".into()], &blocks));
        assert!(is_subset(&["0.0.0.0/0".into()], &[]));
    }
}
