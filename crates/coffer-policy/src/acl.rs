//! A token's compiled policy set and the per-request decision.
//!
//! Compilation merges rules with the same path across policies (capability union,
//! `deny` absorbing everything) and sorts them into three structures:
//! - exact paths in a hash map (an exact match wins outright);
//! - plain prefix globs (`secret/*`) in a hash map probed at each distinct prefix
//!   length, longest first;
//! - `+` segment patterns in a list sorted by Vault's priority, highest first.
//!
//! A lookup is then a handful of hash probes plus a scan of the segment patterns
//! that can still outrank the best prefix; `check` allocates only to explain a
//! denial.

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::parameters::{allowed_by, denied_by};
use crate::{Capabilities, Policy, ROOT_POLICY_NAME};

/// The outcome of [`Acl::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclDecision {
    /// The request may proceed.
    pub allowed: bool,
    /// The token is root: every check passes.
    pub root: bool,
    /// The winning rule grants `sudo` (root-protected paths need it), even when
    /// the operation itself was refused.
    pub sudo: bool,
    /// Why the request was refused; names parameters but never their values.
    pub denial: Option<String>,
}

impl AclDecision {
    fn denied(sudo: bool, reason: impl Into<String>) -> AclDecision {
        AclDecision {
            allowed: false,
            root: false,
            sudo,
            denial: Some(reason.into()),
        }
    }
}

const PERMISSION_DENIED: &str = "permission denied";

/// Merged permissions of every rule sharing one path pattern.
#[derive(Clone, Debug, Default)]
struct Permissions {
    capabilities: Capabilities,
    allowed_parameters: HashMap<String, Vec<Value>>,
    denied_parameters: HashMap<String, Vec<Value>>,
    /// Lower-cased, as Vault looks them up.
    required_parameters: Vec<String>,
    min_wrapping_ttl: Option<Duration>,
    max_wrapping_ttl: Option<Duration>,
}

/// How a path pattern matches, derived from its text exactly as Vault does.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum PatternKind {
    Exact,
    /// Trailing `*` with no `+` segment; the key is the text before the `*`.
    Prefix,
    /// Contains a `+` segment; the key is the full text.
    Segment,
}

fn classify(path: &str) -> (PatternKind, &str) {
    if path == "+" || path.contains("/+") || path.starts_with("+/") {
        (PatternKind::Segment, path)
    } else if let Some(prefix) = path.strip_suffix('*') {
        (PatternKind::Prefix, prefix)
    } else {
        (PatternKind::Exact, path)
    }
}

/// A pattern's rank among the non-exact patterns matching a path; the greatest
/// wins. Field order is Vault's documented tie-break order.
#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Priority<'a> {
    /// Later first `+`/`*` wins.
    first_wildcard: usize,
    /// Not ending in `*` wins.
    not_prefix: bool,
    /// Fewer `+` segments win.
    fewer_wildcards: Reverse<usize>,
    /// Longer (without the trailing `*`) wins.
    length: usize,
    /// Lexicographically larger wins.
    text: &'a str,
}

enum Segment {
    /// `+`: any single segment.
    Any,
    Literal(String),
}

struct SegmentPattern {
    /// Text without the trailing `*`.
    text: String,
    segments: Vec<Segment>,
    is_prefix: bool,
    first_wildcard: usize,
    wildcards: usize,
    permissions: usize,
}

impl SegmentPattern {
    fn new(full: &str, permissions: usize) -> SegmentPattern {
        let (text, is_prefix) = match full.strip_suffix('*') {
            Some(text) => (text, true),
            None => (full, false),
        };
        let segments: Vec<Segment> = text
            .split('/')
            .map(|part| match part {
                "+" => Segment::Any,
                literal => Segment::Literal(literal.to_owned()),
            })
            .collect();
        SegmentPattern {
            text: text.to_owned(),
            wildcards: segments
                .iter()
                .filter(|s| matches!(s, Segment::Any))
                .count(),
            segments,
            is_prefix,
            first_wildcard: full.find('+').unwrap_or(full.len()),
            permissions,
        }
    }

    fn priority(&self) -> Priority<'_> {
        Priority {
            first_wildcard: self.first_wildcard,
            not_prefix: !self.is_prefix,
            fewer_wildcards: Reverse(self.wildcards),
            length: self.text.len(),
            text: &self.text,
        }
    }

    /// Segment by segment; with a trailing `*` the last pattern segment is a
    /// prefix of its path segment and further path segments are allowed.
    fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        let last = self.segments.len() - 1;
        for (index, segment) in self.segments.iter().enumerate() {
            let Some(part) = parts.next() else {
                return false;
            };
            match segment {
                Segment::Any => {}
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(literal) if self.is_prefix && index == last => {
                    if !part.starts_with(literal.as_str()) {
                        return false;
                    }
                }
                Segment::Literal(_) => return false,
            }
        }
        self.is_prefix || parts.next().is_none()
    }
}

fn prefix_priority(prefix: &str) -> Priority<'_> {
    Priority {
        first_wildcard: prefix.len(),
        not_prefix: false,
        fewer_wildcards: Reverse(0),
        length: prefix.len(),
        text: prefix,
    }
}

/// A token's compiled policy set. Immutable once built: share it in an `Arc`.
pub struct Acl {
    root: bool,
    permissions: Vec<Permissions>,
    exact: HashMap<String, usize>,
    prefixes: HashMap<String, usize>,
    /// Distinct prefix lengths, longest first.
    prefix_lengths: Vec<usize>,
    /// Highest priority first.
    segment_patterns: Vec<SegmentPattern>,
}

impl std::fmt::Debug for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acl")
            .field("root", &self.root)
            .field("exact_rules", &self.exact.len())
            .field("prefix_rules", &self.prefixes.len())
            .field("segment_rules", &self.segment_patterns.len())
            .finish()
    }
}

impl Acl {
    /// Compiles a token's policies. Rules with the same path pattern merge as in
    /// Vault: capabilities union, and a `deny` from any policy makes the merged
    /// rule deny-only; allowed/denied parameter value lists concatenate (an empty
    /// list, meaning any value, absorbs the others); required parameters union;
    /// wrapping TTL bounds keep the smaller value.
    ///
    /// A policy named `root` makes the ACL root, but only when it is the token's
    /// only policy: Vault refuses to build an ACL mixing `root` with others, so
    /// here the mix fails closed to the other policies' rules.
    pub fn compile(policies: &[Policy]) -> Acl {
        if let [only] = policies {
            if only.name == ROOT_POLICY_NAME {
                return Acl::root();
            }
        }
        let mut acl = Acl::empty(false);
        let mut by_pattern: HashMap<(PatternKind, &str), usize> = HashMap::new();
        for rule in policies.iter().flat_map(|policy| &policy.rules) {
            let (kind, key) = classify(&rule.path);
            let incoming = Permissions::from_rule(rule);
            match by_pattern.get(&(kind, key)) {
                Some(&index) => acl.permissions[index].merge(incoming),
                None => {
                    let index = acl.permissions.len();
                    acl.permissions.push(incoming);
                    by_pattern.insert((kind, key), index);
                    match kind {
                        PatternKind::Exact => {
                            acl.exact.insert(key.to_owned(), index);
                        }
                        PatternKind::Prefix => {
                            acl.prefixes.insert(key.to_owned(), index);
                        }
                        PatternKind::Segment => {
                            acl.segment_patterns.push(SegmentPattern::new(key, index));
                        }
                    }
                }
            }
        }
        acl.prefix_lengths = acl.prefixes.keys().map(String::len).collect();
        acl.prefix_lengths.sort_unstable_by(|a, b| b.cmp(a));
        acl.prefix_lengths.dedup();
        acl.segment_patterns
            .sort_by(|a, b| b.priority().cmp(&a.priority()));
        acl
    }

    /// The root ACL: allows everything, including `sudo`.
    pub fn root() -> Acl {
        Acl::empty(true)
    }

    fn empty(root: bool) -> Acl {
        Acl {
            root,
            permissions: Vec::new(),
            exact: HashMap::new(),
            prefixes: HashMap::new(),
            prefix_lengths: Vec::new(),
            segment_patterns: Vec::new(),
        }
    }

    /// True for the root ACL.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Effective capabilities at `path`, as `sys/capabilities` reports them: those
    /// of the winning rule, found with LIST's trailing-slash fallbacks (as Vault
    /// does). `NONE` when no rule matches, `DENY` alone when the winner denies,
    /// [`Capabilities::ALL_GRANTS`] for root.
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ALL_GRANTS;
        }
        self.winning_rule(normalize(path), true)
            .map_or(Capabilities::NONE, |rule| rule.capabilities)
    }

    /// Capability names at `path` for a `sys/capabilities` response: `["root"]`
    /// for root, `["deny"]` when nothing is granted, else [`Capabilities::names`].
    pub fn capability_names(&self, path: &str) -> Vec<&'static str> {
        if self.root {
            return vec!["root"];
        }
        let capabilities = self.capabilities(path);
        if capabilities.is_empty() {
            vec!["deny"]
        } else {
            capabilities.names()
        }
    }

    /// Decides a request that is not response-wrapped. See
    /// [`Acl::check_wrapped`].
    pub fn check(
        &self,
        path: &str,
        required: Capabilities,
        params: Option<&Map<String, Value>>,
    ) -> AclDecision {
        self.check_wrapped(path, required, params, None)
    }

    /// Decides a request. `required` is what the operation needs (e.g. `READ`;
    /// every bit must be granted; include `SUDO` for root-protected paths);
    /// `params` are the request body fields, checked only when `required`
    /// includes CREATE, UPDATE or PATCH; `wrap_ttl` is the requested
    /// response-wrapping TTL, checked against the rule's wrapping bounds.
    /// An empty `required`, or one containing `DENY`, is refused.
    pub fn check_wrapped(
        &self,
        path: &str,
        required: Capabilities,
        params: Option<&Map<String, Value>>,
        wrap_ttl: Option<Duration>,
    ) -> AclDecision {
        if self.root {
            return AclDecision {
                allowed: true,
                root: true,
                sudo: true,
                denial: None,
            };
        }
        let list = required.contains(Capabilities::LIST);
        let Some(rule) = self.winning_rule(normalize(path), list) else {
            return AclDecision::denied(false, PERMISSION_DENIED);
        };
        let granted = rule.capabilities;
        let sudo = granted.contains(Capabilities::SUDO);
        if required.is_empty()
            || required.contains(Capabilities::DENY)
            || granted.contains(Capabilities::DENY)
            || !granted.contains(required)
        {
            return AclDecision::denied(sudo, PERMISSION_DENIED);
        }
        if let Some(reason) = rule.wrapping_violation(wrap_ttl) {
            return AclDecision::denied(sudo, reason);
        }
        let writes = Capabilities::CREATE | Capabilities::UPDATE | Capabilities::PATCH;
        if required.intersects(writes) {
            let empty = Map::new();
            if let Some(reason) = rule.parameter_violation(params.unwrap_or(&empty)) {
                return AclDecision::denied(sudo, reason);
            }
        }
        AclDecision {
            allowed: true,
            root: false,
            sudo,
            denial: None,
        }
    }

    /// Vault's lookup order: exact path; for LIST, the exact path without its
    /// trailing `/`; for LIST on a path ending in `/`, the best glob for the path
    /// without it; then the best glob for the path.
    fn winning_rule(&self, path: &str, list: bool) -> Option<&Permissions> {
        let index = self
            .exact
            .get(path)
            .or_else(|| {
                list.then(|| path.strip_suffix('/'))
                    .flatten()
                    .and_then(|trimmed| self.exact.get(trimmed))
            })
            .copied()
            .or_else(|| {
                list.then(|| path.strip_suffix('/'))
                    .flatten()
                    .and_then(|trimmed| self.best_non_exact(trimmed))
            })
            .or_else(|| self.best_non_exact(path))?;
        Some(&self.permissions[index])
    }

    fn best_non_exact(&self, path: &str) -> Option<usize> {
        let longest_prefix = self.prefix_lengths.iter().find_map(|&length| {
            let candidate = path.get(..length)?;
            self.prefixes
                .get(candidate)
                .map(|&index| (prefix_priority(candidate), index))
        });
        for pattern in &self.segment_patterns {
            if let Some((prefix_rank, prefix_index)) = &longest_prefix {
                // Patterns are sorted: once one ranks below the prefix, all do.
                if pattern.priority().cmp(prefix_rank) != Ordering::Greater {
                    return Some(*prefix_index);
                }
            }
            if pattern.matches(path) {
                return Some(pattern.permissions);
            }
        }
        longest_prefix.map(|(_, index)| index)
    }
}

/// Vault strips every leading `/` from the request path.
fn normalize(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Vault compares request parameter names lower-cased; avoid allocating for the
/// usual already-lower-case name.
fn lowercase(name: &str) -> Cow<'_, str> {
    if name.chars().any(char::is_uppercase) {
        Cow::Owned(name.to_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

impl Permissions {
    fn from_rule(rule: &crate::PathRule) -> Permissions {
        if rule.capabilities.contains(Capabilities::DENY) {
            return Permissions {
                capabilities: Capabilities::DENY,
                ..Permissions::default()
            };
        }
        let lowered = |map: &std::collections::BTreeMap<String, Vec<Value>>| {
            map.iter()
                .map(|(key, values)| (key.to_lowercase(), values.clone()))
                .collect()
        };
        let mut required: Vec<String> = Vec::new();
        for name in &rule.required_parameters {
            let name = name.to_lowercase();
            if !required.contains(&name) {
                required.push(name);
            }
        }
        Permissions {
            capabilities: rule.capabilities,
            allowed_parameters: lowered(&rule.allowed_parameters),
            denied_parameters: lowered(&rule.denied_parameters),
            required_parameters: required,
            min_wrapping_ttl: rule.min_wrapping_ttl.filter(|d| !d.is_zero()),
            max_wrapping_ttl: rule.max_wrapping_ttl.filter(|d| !d.is_zero()),
        }
    }

    /// Folds a later rule with the same pattern into this one (Vault's `NewACL`).
    fn merge(&mut self, incoming: Permissions) {
        if self.capabilities.contains(Capabilities::DENY) {
            return;
        }
        if incoming.capabilities.contains(Capabilities::DENY) {
            *self = incoming;
            return;
        }
        self.capabilities |= incoming.capabilities;
        // Both bounds keep the smaller value: the shortest wrapping lifetime.
        self.max_wrapping_ttl = smaller(self.max_wrapping_ttl, incoming.max_wrapping_ttl);
        self.min_wrapping_ttl = smaller(self.min_wrapping_ttl, incoming.min_wrapping_ttl);
        merge_value_lists(&mut self.allowed_parameters, incoming.allowed_parameters);
        merge_value_lists(&mut self.denied_parameters, incoming.denied_parameters);
        for name in incoming.required_parameters {
            if !self.required_parameters.contains(&name) {
                self.required_parameters.push(name);
            }
        }
    }

    fn wrapping_violation(&self, wrap_ttl: Option<Duration>) -> Option<String> {
        if let Some(max) = self.max_wrapping_ttl {
            if wrap_ttl.is_none_or(|ttl| ttl > max) {
                return Some(format!(
                    "response wrapping with a TTL of at most {}s is required",
                    max.as_secs()
                ));
            }
        }
        if let Some(min) = self.min_wrapping_ttl {
            if wrap_ttl.is_none_or(|ttl| ttl < min) {
                return Some(format!(
                    "response wrapping with a TTL of at least {}s is required",
                    min.as_secs()
                ));
            }
        }
        // Merging can produce bounds no TTL satisfies.
        if let (Some(min), Some(max)) = (self.min_wrapping_ttl, self.max_wrapping_ttl) {
            if max < min {
                return Some("merged wrapping TTL bounds cannot be satisfied".into());
            }
        }
        None
    }

    /// Vault's order: required parameters, then denied, then allowed.
    fn parameter_violation(&self, params: &Map<String, Value>) -> Option<String> {
        for name in &self.required_parameters {
            if !params.contains_key(name.as_str()) {
                return Some(format!("required parameter {name:?} is missing"));
            }
        }
        if params.is_empty() {
            return None;
        }
        if !self.denied_parameters.is_empty() {
            if self.denied_parameters.contains_key("*") {
                let first = params.keys().next().map_or("", String::as_str);
                return Some(format!("parameter {first:?} is denied"));
            }
            for (name, value) in params {
                if let Some(denied) = self.denied_parameters.get(lowercase(name).as_ref()) {
                    if denied_by(value, denied) {
                        return Some(format!("parameter {name:?} is denied"));
                    }
                }
            }
        }
        if self.allowed_parameters.is_empty() {
            return None;
        }
        let allows_any_name = self.allowed_parameters.contains_key("*");
        if allows_any_name && self.allowed_parameters.len() == 1 {
            return None;
        }
        for (name, value) in params {
            match self.allowed_parameters.get(lowercase(name).as_ref()) {
                None if allows_any_name => {}
                None => return Some(format!("parameter {name:?} is not allowed")),
                Some(allowed) if !allowed_by(value, allowed) => {
                    return Some(format!("a value of parameter {name:?} is not allowed"))
                }
                Some(_) => {}
            }
        }
        None
    }
}

fn smaller(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Vault's merge of parameter maps: concatenate value lists per key, except that
/// an empty list (any value) on either side stays empty.
fn merge_value_lists(
    existing: &mut HashMap<String, Vec<Value>>,
    incoming: HashMap<String, Vec<Value>>,
) {
    for (key, values) in incoming {
        match existing.get_mut(&key) {
            Some(current) if current.is_empty() => {}
            Some(current) if values.is_empty() => current.clear(),
            Some(current) => current.extend(values),
            None => {
                existing.insert(key, values);
            }
        }
    }
}
