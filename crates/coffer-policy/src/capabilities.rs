//! Capabilities: what a policy rule grants at a path.
//!
//! Invariant: a rule whose set contains [`Capabilities::DENY`] grants nothing; the
//! policy parser and the ACL compiler reduce such sets to `DENY` alone, so a check
//! never has to special-case "deny plus something".

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// Bit set of capabilities, as written in a policy's `capabilities = [...]` list.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Capabilities(u16);

/// Capability names in Vault's canonical order, with their bits.
const NAMED: [(&str, Capabilities); 9] = [
    ("create", Capabilities::CREATE),
    ("read", Capabilities::READ),
    ("update", Capabilities::UPDATE),
    ("patch", Capabilities::PATCH),
    ("delete", Capabilities::DELETE),
    ("list", Capabilities::LIST),
    ("sudo", Capabilities::SUDO),
    ("subscribe", Capabilities::SUBSCRIBE),
    ("recover", Capabilities::RECOVER),
];

impl Capabilities {
    /// Write data that does not exist yet (POST/PUT on a new path).
    pub const CREATE: Capabilities = Capabilities(1 << 0);
    /// Read data (GET).
    pub const READ: Capabilities = Capabilities(1 << 1);
    /// Change existing data (POST/PUT on an existing path).
    pub const UPDATE: Capabilities = Capabilities(1 << 2);
    /// Partially update data (PATCH).
    pub const PATCH: Capabilities = Capabilities(1 << 3);
    /// Delete data (DELETE).
    pub const DELETE: Capabilities = Capabilities(1 << 4);
    /// List keys (LIST, or GET with `?list=true`).
    pub const LIST: Capabilities = Capabilities(1 << 5);
    /// Access root-protected paths, in addition to the operation's own capability.
    pub const SUDO: Capabilities = Capabilities(1 << 6);
    /// Explicit denial: overrides every other capability, also across policies.
    pub const DENY: Capabilities = Capabilities(1 << 7);
    /// Subscribe to events (newer Vault releases accept it in policies).
    pub const SUBSCRIBE: Capabilities = Capabilities(1 << 8);
    /// Recover data from a snapshot (newer Vault releases accept it in policies).
    pub const RECOVER: Capabilities = Capabilities(1 << 9);
    /// The empty set.
    pub const NONE: Capabilities = Capabilities(0);
    /// Every granting capability (everything but `DENY`): what a root token holds.
    pub const ALL_GRANTS: Capabilities = Capabilities(
        Self::CREATE.0
            | Self::READ.0
            | Self::UPDATE.0
            | Self::PATCH.0
            | Self::DELETE.0
            | Self::LIST.0
            | Self::SUDO.0
            | Self::SUBSCRIBE.0
            | Self::RECOVER.0,
    );

    /// True if every capability in `other` is in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if `self` and `other` share at least one capability.
    pub const fn intersects(self, other: Capabilities) -> bool {
        self.0 & other.0 != 0
    }

    /// True if no capability is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Capabilities in either set.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Capabilities in `self` but not in `other`.
    pub const fn difference(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & !other.0)
    }

    /// The capability called `name` in policy text (`"read"`, `"deny"`, ...), if any.
    /// Names are case-sensitive, as in Vault.
    pub fn parse(name: &str) -> Option<Capabilities> {
        if name == "deny" {
            return Some(Capabilities::DENY);
        }
        NAMED
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, capability)| *capability)
    }

    /// The names of the capabilities in the set, in Vault's order (create, read,
    /// update, patch, delete, list, sudo, then subscribe, recover); just `["deny"]`
    /// when `DENY` is set.
    pub fn names(self) -> Vec<&'static str> {
        if self.contains(Capabilities::DENY) {
            return vec!["deny"];
        }
        NAMED
            .iter()
            .filter(|(_, capability)| self.contains(*capability))
            .map(|(name, _)| *name)
            .collect()
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;

    fn bitor(self, other: Capabilities) -> Capabilities {
        self.union(other)
    }
}

impl BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, other: Capabilities) {
        *self = self.union(other);
    }
}

impl fmt::Display for Capabilities {
    /// Formats the names from [`Capabilities::names`], comma separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_capability() {
        for (name, capability) in NAMED {
            assert_eq!(Capabilities::parse(name), Some(capability));
            assert_eq!(capability.names(), vec![name]);
        }
        assert_eq!(Capabilities::parse("deny"), Some(Capabilities::DENY));
        assert_eq!(Capabilities::parse("Read"), None);
        assert_eq!(Capabilities::parse("write"), None);
    }

    #[test]
    fn names_follow_vaults_order_and_deny_hides_the_rest() {
        let set = Capabilities::SUDO | Capabilities::LIST | Capabilities::CREATE;
        assert_eq!(set.names(), vec!["create", "list", "sudo"]);
        assert_eq!((set | Capabilities::DENY).names(), vec!["deny"]);
        assert!(Capabilities::NONE.names().is_empty());
    }

    #[test]
    fn contains_requires_every_bit() {
        let set = Capabilities::READ | Capabilities::LIST;
        assert!(set.contains(Capabilities::READ));
        assert!(set.contains(Capabilities::READ | Capabilities::LIST));
        assert!(!set.contains(Capabilities::READ | Capabilities::UPDATE));
        assert!(set.contains(Capabilities::NONE));
        assert!(!Capabilities::ALL_GRANTS.contains(Capabilities::DENY));
    }
}
