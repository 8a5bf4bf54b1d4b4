//! The authorization-invariant property suite.
//!
//! Random trees of policies, token roles (written by root), tokens (with use counts, periods,
//! CIDR bindings, TTLs) and identity entities and groups, then random create / renew / use /
//! identity operations by random callers, each checked against a small reference model of
//! what the caller holds:
//! - no token ever holds a policy its creator did not hold, unless a role written by root
//!   allowed it (and did not disallow it);
//! - nothing non-root ever yields root (tokens, roles, identity);
//! - a limited-use token never creates a child; a periodic token comes only from root, sudo
//!   or a role's period;
//! - no child is usable from an address its creator could not use;
//! - no token's life (at creation or after any renewal) passes any maximum that applies to it:
//!   the system's, its token role's, its explicit one; a periodic token's TTL never passes its
//!   period;
//! - an AppRole login holds exactly its role's policies as the role stands now (plus
//!   `default`), never root, and fails once the role is gone: rewrites and deletions by any
//!   caller go through between logins, which Coffer answers from memory when it can; only root
//!   may rewrite the role.
//!
//! Every engine that issues credentials or grants access adds its operations here.

mod common;
use coffer_sdk::logical::Connection;
use coffer_sdk::Operation::{self, *};
use coffer_sdk::Request;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Policies a token may hold. `tc` may create tokens (plain, orphan, through any role); `tcs`
/// the same with sudo; `ida` administers identity; the rest guard data.
const POOL: [&str; 7] = ["pa", "pb", "pc", "tc", "tcs", "ida", "root"];
const ADDRS: [&str; 4] = ["10.1.2.3", "10.2.2.2", "192.168.1.1", "127.0.0.1"];
const CIDRS: [&str; 3] = ["10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16"];
const SYSTEM_MAX: u64 = 768 * 3600;

const TOKEN_CREATE: &str = r#"
path "auth/token/create" { capabilities = ["create", "update"] }
path "auth/token/create-orphan" { capabilities = ["create", "update"] }
path "auth/token/create/*" { capabilities = ["create", "update"] }
"#;
const TOKEN_CREATE_SUDO: &str = r#"
path "auth/token/create" { capabilities = ["create", "update", "sudo"] }
path "auth/token/create-orphan" { capabilities = ["create", "update", "sudo"] }
path "auth/token/create/*" { capabilities = ["create", "update", "sudo"] }
"#;
const IDENTITY_ADMIN: &str =
    r#"path "identity/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#;

fn subset(mask: u8) -> Vec<String> {
    POOL.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, p)| p.to_string())
        .collect()
}

#[derive(Debug, Clone)]
struct RoleSpec {
    allowed: u8,
    allowed_glob: Option<&'static str>,
    disallowed: u8,
    disallowed_glob: Option<&'static str>,
    orphan: bool,
    period: u64,
    max_ttl: u64,
    explicit_max: u64,
    cidr: Option<usize>,
    num_uses: i64,
}

fn role_strategy() -> impl Strategy<Value = RoleSpec> {
    (
        (
            any::<u8>(),
            prop::option::of(prop::sample::select(vec!["p*", "*", "t*"])),
        ),
        (
            prop::sample::select(vec![0u8, 0, 1, 2, 8, 64]),
            prop::option::of(prop::sample::select(vec!["pa*", "r*"])),
        ),
        any::<bool>(),
        prop::sample::select(vec![0u64, 0, 3600]),
        prop::sample::select(vec![0u64, 7200, 36000]),
        prop::sample::select(vec![0u64, 0, 10800]),
        prop::option::of(0..CIDRS.len()),
        prop::sample::select(vec![0i64, 0, 3]),
    )
        .prop_map(
            |(
                (allowed, allowed_glob),
                (disallowed, disallowed_glob),
                orphan,
                period,
                max_ttl,
                explicit_max,
                cidr,
                num_uses,
            )| RoleSpec {
                // Half the roles restrict nothing in particular.
                allowed: if allowed % 2 == 0 { 0 } else { allowed },
                allowed_glob: if allowed % 4 == 0 { None } else { allowed_glob },
                disallowed,
                disallowed_glob,
                orphan,
                period,
                max_ttl,
                explicit_max,
                cidr,
                num_uses,
            },
        )
}

#[derive(Debug, Clone)]
enum Path {
    Plain,
    Orphan,
    Role(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        caller: usize,
        path: Path,
        requested: u8,
        ttl: Option<u64>,
        period: Option<u64>,
        explicit_max: Option<u64>,
        num_uses: Option<i64>,
        no_parent: bool,
        body_role: Option<usize>,
        addr: usize,
    },
    Renew {
        target: usize,
        increment: Option<u64>,
        by_root: bool,
    },
    Advance(u64),
    Identity {
        caller: usize,
        group: bool,
        policies: u8,
    },
    AppRole {
        caller: usize,
        change: AppRoleChange,
    },
}

/// What an AppRole operation does to the one role `app` (role ID `app-id`).
#[derive(Debug, Clone)]
enum AppRoleChange {
    /// Log in with the role ID and the current secret ID.
    Login,
    /// Write the role with these token policies (creating it if gone).
    Rewrite(u8),
    /// Delete the role.
    Delete,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let create = (
        (
            0usize..64,
            prop_oneof![
                Just(Path::Plain),
                Just(Path::Orphan),
                (0usize..4).prop_map(Path::Role)
            ],
            any::<u8>(),
        ),
        (
            prop::option::of(prop::sample::select(vec![
                60u64, 3600, 7200, 86400, 10_000_000,
            ])),
            prop::option::of(prop::sample::select(vec![600u64, 3600])),
            prop::option::of(prop::sample::select(vec![1800u64, 5400])),
            prop::option::of(prop::sample::select(vec![0i64, 2])),
        ),
        (any::<bool>(), prop::option::of(0usize..4), 0..ADDRS.len()),
    )
        .prop_map(
            |(
                (caller, path, requested),
                (ttl, period, explicit_max, num_uses),
                (no_parent, body_role, addr),
            )| Op::Create {
                caller,
                path,
                // Mostly small requests, sometimes nothing.
                requested: if requested % 5 == 0 { 0 } else { requested },
                ttl,
                period,
                explicit_max,
                num_uses,
                no_parent: no_parent && requested % 3 == 0,
                body_role: body_role.filter(|_| requested % 7 == 0),
                addr,
            },
        );
    prop_oneof![
        6 => create,
        3 => (0usize..64, prop::option::of(prop::sample::select(vec![60u64, 3600, 86400, 10_000_000])), any::<bool>())
            .prop_map(|(target, increment, by_root)| Op::Renew { target, increment, by_root }),
        2 => prop::sample::select(vec![30u64, 1800, 3600, 7200]).prop_map(Op::Advance),
        1 => (0usize..64, any::<bool>(), any::<u8>()).prop_map(|(caller, group, policies)| Op::Identity { caller, group, policies }),
        3 => (0usize..64, prop_oneof![
            3 => Just(AppRoleChange::Login),
            2 => any::<u8>().prop_map(AppRoleChange::Rewrite),
            1 => Just(AppRoleChange::Delete),
        ]).prop_map(|(caller, change)| Op::AppRole { caller, change }),
    ]
}

/// What the reference model knows of the AppRole role: its policies, or `None` once deleted,
/// and the secret ID issued for it.
struct AppRoleModel {
    policies: Option<BTreeSet<String>>,
    secret_id: String,
}

impl AppRoleModel {
    /// Root writes the role with the policies of `mask` and issues a secret ID.
    async fn create(h: &Harness, mask: u8) -> AppRoleModel {
        h.ok(
            Update,
            "auth/approle/role/app",
            json!({"role_id": "app-id", "token_policies": subset(mask)}),
        )
        .await;
        let secret_id = h.secret_id("app").await;
        AppRoleModel {
            policies: Some(subset(mask).into_iter().collect()),
            secret_id,
        }
    }

    /// Apply `change` as the holder of `k`; a successful login's token, for the model.
    async fn apply(
        &mut self,
        h: &Harness,
        k: &Known,
        change: AppRoleChange,
    ) -> Result<Option<Known>, TestCaseError> {
        let caller_root = k.policies.contains("root");
        match change {
            AppRoleChange::Rewrite(mask) => {
                let result = h
                    .call(
                        Update,
                        "auth/approle/role/app",
                        json!({"role_id": "app-id", "token_policies": subset(mask)}),
                        &k.token,
                    )
                    .await;
                check(caller_root || result.is_err(), || {
                    format!("{:?} rewrote the AppRole role", k.policies)
                })?;
                if result.is_ok() {
                    APPROLE_REWRITES.fetch_add(1, Ordering::Relaxed);
                    if self.policies.is_none() {
                        // Recreated: the old secret ID went with the role; issue a new one.
                        *self = AppRoleModel::create(h, mask).await;
                    }
                    self.policies = Some(subset(mask).into_iter().collect());
                }
                Ok(None)
            }
            AppRoleChange::Delete => {
                let result = h
                    .call(Delete, "auth/approle/role/app", json!({}), &k.token)
                    .await;
                check(caller_root || result.is_err(), || {
                    format!("{:?} deleted the AppRole role", k.policies)
                })?;
                if result.is_ok() {
                    self.policies = None;
                }
                Ok(None)
            }
            AppRoleChange::Login => {
                let result = h
                    .call(
                        Update,
                        "auth/approle/login",
                        json!({"role_id": "app-id", "secret_id": self.secret_id}),
                        "",
                    )
                    .await;
                let Some(expected) = &self.policies else {
                    check(result.is_err(), || {
                        "a deleted AppRole role still logged in".to_string()
                    })?;
                    return Ok(None);
                };
                if expected.contains("root") {
                    check(result.is_err(), || {
                        "an AppRole login yielded root".to_string()
                    })?;
                    return Ok(None);
                }
                let auth = match result {
                    Ok(resp) => resp.auth.expect("auth block"),
                    Err(e) => {
                        return Err(TestCaseError::fail(format!(
                            "AppRole login refused for role policies {expected:?}: {e}"
                        )))
                    }
                };
                APPROLE_LOGINS.fetch_add(1, Ordering::Relaxed);
                let got: BTreeSet<String> = auth.policies.iter().cloned().collect();
                let mut want = expected.clone();
                want.insert("default".to_string());
                check(got == want, || {
                    format!("AppRole login gave {got:?}, the role now grants {want:?}")
                })?;
                Ok(Some(Known {
                    token: auth.client_token,
                    policies: got,
                    cidr_chain: Vec::new(),
                    max_life: SYSTEM_MAX,
                    explicit_max: 0,
                    period: 0,
                    num_uses: 0,
                }))
            }
        }
    }
}

/// What the reference model knows of a token.
#[derive(Debug, Clone)]
struct Known {
    token: String,
    policies: BTreeSet<String>,
    /// CIDR sets every one of which must allow the client (the model's own bookkeeping).
    cidr_chain: Vec<Vec<String>>,
    /// The tightest life from creation the model expects, seconds (non-periodic tokens).
    max_life: u64,
    explicit_max: u64,
    period: u64,
    num_uses: i64,
}

fn cidr_allows(cidr: &str, addr: &str) -> bool {
    let net: ipnet::IpNet = cidr.parse().unwrap();
    net.contains(&addr.parse::<std::net::IpAddr>().unwrap())
}

fn model_usable(k: &Known, addr: &str) -> bool {
    k.cidr_chain
        .iter()
        .all(|set| set.iter().any(|c| cidr_allows(c, addr)))
}

fn glob(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

static CREATED: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);
static RENEWED: AtomicUsize = AtomicUsize::new(0);
static APPROLE_LOGINS: AtomicUsize = AtomicUsize::new(0);
static APPROLE_REWRITES: AtomicUsize = AtomicUsize::new(0);

fn from(addr: &str) -> Connection {
    Connection {
        remote_addr: Some(format!("{addr}:40000").parse().unwrap()),
        peer_certificates: Vec::new(),
    }
}

async fn call_from(
    h: &Harness,
    op: Operation,
    path: &str,
    body: Value,
    token: &str,
    addr: &str,
) -> coffer_sdk::Result<coffer_sdk::Response> {
    let mut req = Request::new(op, path).with_data(body);
    req.connection = from(addr);
    h.call_on_connection(req, Some(token)).await
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond {
        Ok(())
    } else {
        Err(TestCaseError::fail(msg()))
    }
}

/// The token's life so far plus what is left, against the model's maximums.
async fn check_life(h: &Harness, k: &Known, when: &str) -> Result<(), TestCaseError> {
    let Ok(resp) = h
        .call(
            Update,
            "auth/token/lookup",
            json!({ "token": k.token }),
            &h.root,
        )
        .await
    else {
        return Ok(()); // expired or revoked: nothing left to exceed
    };
    let d = data(&resp);
    let ttl = d["ttl"].as_u64().unwrap();
    let created = d["creation_time"].as_i64().unwrap();
    let now = coffer_sdk::clock::Clock::now(&h.clock).timestamp();
    let life = (now - created).max(0) as u64 + ttl;
    if k.period > 0 {
        check(ttl <= k.period + 1, || {
            format!("{when}: periodic token ttl {ttl} > period {}", k.period)
        })?;
    } else {
        check(life <= k.max_life + 1, || {
            format!(
                "{when}: token life {life} passes its maximum {} ({k:?})",
                k.max_life
            )
        })?;
    }
    if k.explicit_max > 0 {
        check(life <= k.explicit_max + 1, || {
            format!(
                "{when}: token life {life} passes explicit max {}",
                k.explicit_max
            )
        })?;
    }
    Ok(())
}

async fn run_case(
    roles: Vec<RoleSpec>,
    initial: Vec<(u8, i64)>,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let h = Harness::new().await;
    for (name, text) in [
        ("pa", r#"path "secret/data/a" { capabilities = ["read"] }"#),
        ("pb", r#"path "secret/data/b" { capabilities = ["read"] }"#),
        ("pc", r#"path "secret/data/c" { capabilities = ["read"] }"#),
        ("tc", TOKEN_CREATE),
        ("tcs", TOKEN_CREATE_SUDO),
        ("ida", IDENTITY_ADMIN),
    ] {
        h.ok(
            Update,
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": text }),
        )
        .await;
    }
    for (i, r) in roles.iter().enumerate() {
        let mut body = json!({
            "allowed_policies": subset(r.allowed),
            "disallowed_policies": subset(r.disallowed),
            "orphan": r.orphan,
            "token_period": r.period,
            "token_max_ttl": r.max_ttl,
            "token_explicit_max_ttl": r.explicit_max,
            "token_num_uses": r.num_uses,
        });
        if let Some(g) = r.allowed_glob {
            body["allowed_policies_glob"] = json!([g]);
        }
        if let Some(g) = r.disallowed_glob {
            body["disallowed_policies_glob"] = json!([g]);
        }
        if let Some(c) = r.cidr {
            body["token_bound_cidrs"] = json!([CIDRS[c]]);
        }
        h.ok(Update, &format!("auth/token/roles/r{i}"), body).await;
    }
    // The AppRole side: one role, rewritten and deleted by the operations below.
    h.ok(Update, "sys/auth/approle", json!({"type": "approle"}))
        .await;
    let mut approle = AppRoleModel::create(&h, 0).await;
    let mut known: Vec<Known> = vec![Known {
        token: h.root.clone(),
        policies: ["root".to_string()].into(),
        cidr_chain: Vec::new(),
        max_life: u64::MAX / 2,
        explicit_max: 0,
        period: 0,
        num_uses: 0,
    }];
    for (mask, uses) in initial {
        let policies: Vec<String> = subset(mask).into_iter().filter(|p| p != "root").collect();
        // Root asking for nothing in particular hands on its own policies (root), as Vault.
        let auth = h
            .ok(
                Update,
                "auth/token/create",
                json!({"policies": policies, "num_uses": uses}),
            )
            .await
            .auth
            .unwrap();
        let set: BTreeSet<String> = auth.policies.into_iter().collect();
        known.push(Known {
            token: auth.client_token,
            policies: set,
            cidr_chain: Vec::new(),
            max_life: SYSTEM_MAX,
            explicit_max: 0,
            period: 0,
            num_uses: uses,
        });
    }

    for op in ops {
        match op {
            Op::Advance(secs) => h.clock.advance(Duration::from_secs(secs)),
            Op::Renew {
                target,
                increment,
                by_root,
            } => {
                let k = known[target % known.len()].clone();
                if k.token == h.root || k.num_uses != 0 {
                    continue;
                }
                let mut body = json!({});
                if let Some(i) = increment {
                    body["increment"] = json!(i);
                }
                let result = if by_root {
                    body["token"] = json!(k.token);
                    h.call(Update, "auth/token/renew", body, &h.root).await
                } else {
                    h.call(Update, "auth/token/renew-self", body, &k.token)
                        .await
                };
                if result.is_ok() {
                    RENEWED.fetch_add(1, Ordering::Relaxed);
                }
                check_life(&h, &k, "after renewal").await?;
            }
            Op::Identity {
                caller,
                group,
                policies,
            } => {
                let k = known[caller % known.len()].clone();
                let wanted = subset(policies);
                let path = if group {
                    "identity/group"
                } else {
                    "identity/entity"
                };
                let name = format!("n{}", policies % 3);
                let result = h
                    .call(
                        Update,
                        path,
                        json!({"name": name, "policies": wanted}),
                        &k.token,
                    )
                    .await;
                if wanted.iter().any(|p| p == "root") {
                    check(result.is_err(), || {
                        format!("{path} accepted root from {:?}", k.policies)
                    })?;
                }
                // Whatever was accepted, no stored entity or group carries root.
                if let Ok(resp) = h
                    .call(Read, &format!("{path}/name/{name}"), json!({}), &h.root)
                    .await
                {
                    let stored = data(&resp)["policies"].clone();
                    check(
                        !stored.as_array().unwrap().iter().any(|p| p == "root"),
                        || format!("{path} stored root: {stored}"),
                    )?;
                }
            }
            Op::AppRole { caller, change } => {
                let k = known[caller % known.len()].clone();
                if let Some(new) = approle.apply(&h, &k, change).await? {
                    check_life(&h, &new, "after an AppRole login").await?;
                    if known.len() < 64 {
                        known.push(new);
                    }
                }
            }
            Op::Create {
                caller,
                path,
                requested,
                ttl,
                period,
                explicit_max,
                num_uses,
                no_parent,
                body_role,
                addr,
            } => {
                let k = known[caller % known.len()].clone();
                let addr = ADDRS[addr];
                let role_index = match path {
                    Path::Role(r) => Some(r % roles.len()),
                    _ => None,
                };
                let url = match (&path, role_index) {
                    (Path::Plain, _) => "auth/token/create".to_string(),
                    (Path::Orphan, _) => "auth/token/create-orphan".to_string(),
                    (Path::Role(_), Some(r)) => format!("auth/token/create/r{r}"),
                    _ => unreachable!(),
                };
                let wanted = subset(requested);
                let mut body = json!({"policies": wanted});
                if let Some(t) = ttl {
                    body["ttl"] = json!(t);
                }
                if let Some(p) = period {
                    body["period"] = json!(p);
                }
                if let Some(e) = explicit_max {
                    body["explicit_max_ttl"] = json!(e);
                }
                if let Some(n) = num_uses {
                    body["num_uses"] = json!(n);
                }
                if no_parent {
                    body["no_parent"] = json!(true);
                }
                if let Some(r) = body_role {
                    body["role_name"] = json!(format!("r{}", r % roles.len()));
                }
                let result = call_from(&h, Update, &url, body.clone(), &k.token, addr).await;
                let Ok(resp) = result else {
                    REFUSED.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                CREATED.fetch_add(1, Ordering::Relaxed);
                let auth = resp.auth.expect("auth block");
                let child: BTreeSet<String> = auth.policies.iter().cloned().collect();
                let caller_root = k.policies.contains("root");
                let caller_sudo = caller_root || k.policies.contains("tcs");
                let ctx = || format!("{url} {body} by {:?} gave {child:?}", k.policies);
                check(model_usable(&k, addr), || {
                    format!("{}: caller unusable from {addr} yet succeeded", ctx())
                })?;
                check(!child.contains("root") || caller_root, || {
                    format!("non-root yielded root: {}", ctx())
                })?;
                check(k.num_uses == 0, || {
                    format!("a limited-use token created a child: {}", ctx())
                })?;
                check(body_role.is_none() || role_index.is_some(), || {
                    format!("role_name in the body was honoured: {}", ctx())
                })?;
                let role = role_index.map(|r| &roles[r]);
                for p in child.iter().filter(|p| *p != "default") {
                    let held = caller_root || k.policies.contains(p);
                    let by_role = role.is_some_and(|r| {
                        let restricts = r.allowed != 0 || r.allowed_glob.is_some();
                        restricts
                            && (subset(r.allowed).contains(p)
                                || r.allowed_glob.is_some_and(|g| glob(g, p)))
                    });
                    check(held || by_role, || {
                        format!("policy {p} not held by the creator nor allowed by a root-written role: {}", ctx())
                    })?;
                    if let Some(r) = role {
                        check(
                            !subset(r.disallowed).contains(p)
                                && !r.disallowed_glob.is_some_and(|g| glob(g, p)),
                            || format!("disallowed policy {p} granted: {}", ctx()),
                        )?;
                    }
                }
                let role_period = role.map_or(0, |r| r.period);
                let child_period = if role_period > 0 {
                    role_period
                } else {
                    period.unwrap_or(0)
                };
                check(
                    period.unwrap_or(0) == 0 || role_period > 0 || caller_sudo,
                    || format!("periodic token without sudo: {}", ctx()),
                )?;
                let mut cidr_chain = k.cidr_chain.clone();
                if let Some(c) = role.and_then(|r| r.cidr) {
                    cidr_chain.push(vec![CIDRS[c].to_string()]);
                }
                let role_max = role.map_or(0, |r| r.max_ttl);
                let role_explicit = role.map_or(0, |r| r.explicit_max);
                let explicit = match (explicit_max.unwrap_or(0), role_explicit) {
                    (0, r) => r,
                    (e, 0) => e,
                    (e, r) => e.min(r),
                };
                let new = Known {
                    token: auth.client_token.clone(),
                    policies: child.clone(),
                    cidr_chain,
                    max_life: if role_max > 0 {
                        role_max.min(SYSTEM_MAX)
                    } else {
                        SYSTEM_MAX
                    },
                    explicit_max: explicit,
                    period: child_period,
                    num_uses: auth.num_uses as i64,
                };
                check_life(&h, &new, "at creation").await?;
                // No child is usable from an address its creator could not use. Probing costs
                // a use, so only unlimited tokens are probed.
                if new.num_uses == 0 {
                    for a in ADDRS {
                        let usable =
                            call_from(&h, Read, "auth/token/lookup-self", json!({}), &new.token, a)
                                .await
                                .is_ok();
                        check(!usable || model_usable(&new, a), || {
                            format!(
                                "child usable from {a} outside its creators' bindings {:?}: {}",
                                new.cidr_chain,
                                ctx()
                            )
                        })?;
                    }
                }
                if known.len() < 64 {
                    known.push(new);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn authorization_invariants_hold_for_random_trees_and_operations() {
    let cases: u32 = std::env::var("COFFER_AUTHZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let strategy = (
        prop::collection::vec(role_strategy(), 1..4),
        prop::collection::vec((any::<u8>(), prop::sample::select(vec![0i64, 0, 3])), 2..5),
        prop::collection::vec(op_strategy(), 10..40),
    );
    runner
        .run(&strategy, |(roles, initial, ops)| {
            runtime.block_on(run_case(roles, initial, ops))
        })
        .unwrap();
    // The suite must exercise both outcomes, or it proves nothing.
    let (created, refused, renewed) = (
        CREATED.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed),
        RENEWED.load(Ordering::Relaxed),
    );
    let (logins, rewrites) = (
        APPROLE_LOGINS.load(Ordering::Relaxed),
        APPROLE_REWRITES.load(Ordering::Relaxed),
    );
    eprintln!("authorization invariants: {cases} cases, {created} tokens created, {refused} creations refused, {renewed} renewals, {logins} AppRole logins, {rewrites} AppRole rewrites");
    assert!(
        created > 50 && refused > 50 && renewed > 20 && logins > 50 && rewrites > 20,
        "too few of each outcome: {created} created, {refused} refused, {renewed} renewed, {logins} AppRole logins, {rewrites} AppRole rewrites"
    );
}
