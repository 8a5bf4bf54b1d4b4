//! The `userpass` auth method: named users with a password, following Vault's userpass API.
//!
//! | operation     | path                          | effect                                   |
//! |---------------|-------------------------------|------------------------------------------|
//! | create/update | `users/<username>`            | password + `token_*` settings            |
//! | read          | `users/<username>`            | the settings, never the password or hash |
//! | delete        | `users/<username>`            | remove the user and its lockout state    |
//! | list          | `users/`                      | user names                               |
//! | update        | `users/<username>/password`   | change the password                      |
//! | update        | `users/<username>/policies`   | change the token policies                |
//! | update        | `login/<username>`            | `{password}` → a [`Login`] (no token)    |
//!
//! Passwords are stored only as argon2id PHC strings and hashed/verified on the blocking pool,
//! off the async executor. A login for an unknown user still verifies against a dummy hash of
//! the same cost, and every credential failure answers the same 400, so neither the status, the
//! message nor the timing tells an unknown user from a wrong password.
//!
//! **User lockout** (Vault's): after `lockout_threshold` failed logins for one user name, each
//! within `lockout_counter_reset` of the previous, further logins for that name are refused
//! with 403 `permission denied` for `lockout_duration` after the last failure, even with the
//! right password. A success clears the counter. Mount options (strings) configure it:
//! `lockout_threshold` (default 5; 0 disables), `lockout_duration` and `lockout_counter_reset`
//! (default 15m), `disable_lockout` (`true` disables). The counter lives in the mount's view and
//! is kept for unknown names too, so a locked name looks the same whether or not it exists.

use crate::token::{with_token_fields, TokenSettings};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Utc};
use coffer_sdk::duration::parse_duration;
use coffer_sdk::locks::KeyLocks;
use coffer_sdk::logical::Login;
use coffer_sdk::view::{self, ViewOp};
use coffer_sdk::{Backend, Ctx, Engine, Error, MountInfo, Operation, Response, Result};
use ring::rand::{SecureRandom, SystemRandom};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// Vault's answer to every failed userpass login (`builtin/credential/userpass/path_login.go`).
pub const INVALID_CREDENTIALS: &str = "invalid username or password";

const HELP: &str = "The userpass auth method authenticates users with a username and password \
managed by Coffer.";

/// Vault's defaults for user lockout (`sdk/helper/consts` / user-lockout docs).
const DEFAULT_LOCKOUT_THRESHOLD: u64 = 5;
const DEFAULT_LOCKOUT_DURATION: Duration = Duration::from_secs(15 * 60);
const DEFAULT_LOCKOUT_COUNTER_RESET: Duration = Duration::from_secs(15 * 60);

/// Vault's name pattern for users (`framework.GenericNameRegex`).
const USERNAME: &str = r"(?P<username>\w(?:[\w.-]*\w)?)";

fn user_key(name: &str) -> String {
    format!("user/{name}")
}

fn lockout_key(name: &str) -> String {
    format!("lockout/{name}")
}

/// The userpass engine's state.
struct Userpass {
    /// One lock per user name serialises a login's check → verify → count cycle, so parallel
    /// guesses cannot slip past the threshold.
    logins: KeyLocks,
}

/// The userpass engine for `mount`. Refuses mount options it cannot parse.
pub fn backend(mount: &MountInfo) -> Result<Backend> {
    LockoutPolicy::from_options(&mount.options)?;
    let e = Engine::new(
        "userpass",
        HELP,
        Arc::new(Userpass {
            logins: KeyLocks::new(),
        }),
    );

    let list = e
        .path("users/?")
        .help("List users.", "LIST returns the names of all users.")
        .op(Operation::List, "List users.", |_, ctx| list_users(ctx));

    let password = e
        .path(format!("users/{USERNAME}/password"))
        .help(
            "Reset a user's password.",
            "Replaces the password; only its argon2id hash is stored.",
        )
        .typed(
            Operation::Update,
            "Reset the user's password.",
            |_, ctx, input| update_password(ctx, input),
        );

    let policies = e
        .path(format!("users/{USERNAME}/policies"))
        .help(
            "Update a user's token policies.",
            "Replaces the policies attached to tokens issued to this user.",
        )
        .typed(
            Operation::Update,
            "Update the user's token policies.",
            |_, ctx, input| update_policies(ctx, input),
        );

    let users = e
        .path(format!("users/{USERNAME}"))
        .help(
            "Manage users allowed to authenticate.",
            "Create a user with a password and token settings; read never returns the password.",
        )
        .existence(|_, ctx: Ctx| async move {
            let name = username(&ctx);
            Ok(ctx.view.get(&user_key(&name)).await?.is_some())
        })
        .typed_ops(
            &[Operation::Create, Operation::Update],
            "Create or update a user.",
            |_, ctx, input| write_user(ctx, input),
        )
        .op(Operation::Read, "Read a user's settings.", |_, ctx| {
            read_user(ctx)
        })
        .op(Operation::Delete, "Delete a user.", |_, ctx| {
            delete_user(ctx)
        });

    let login = e
        .path(format!("login/{USERNAME}"))
        .unauthenticated()
        .help(
            "Log in with a username and password.",
            "On success the response carries the token; failures never say which part was wrong.",
        )
        .typed(Operation::Update, "Log in.", login);

    Ok(e.paths(vec![list, password, policies, users, login])
        .configure(|backend| {
            backend.with_login_renewal(
                |ctx: Ctx, renewal: coffer_sdk::logical::LoginRenewal| async move {
                    let name = renewal
                        .metadata
                        .get("username")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    if ctx.view.get(&user_key(&name)).await?.is_none() {
                        return Err(Error::bad(format!(
                            "user {name:?} does not exist during renewal"
                        )));
                    }
                    Ok(())
                },
            )
        })
        .build())
}

/// User names are case-insensitive, as in Vault.
fn username(ctx: &Ctx) -> String {
    ctx.param("username").to_lowercase()
}

/// A user as stored: the PHC string of the password, never the password.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserEntry {
    password_hash: String,
    token: TokenSettings,
}

with_token_fields! {
    /// Create or update a user.
    #[derive(Debug, Deserialize, JsonSchema)]
    struct UserWrite {
        /// The user's password (required on create).
        #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
        password: Option<String>,
    }
}

/// Change a user's password.
#[derive(Debug, Deserialize, JsonSchema)]
struct PasswordWrite {
    /// The new password.
    #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
    password: Option<String>,
}

with_token_fields! {
    /// Change a user's token policies.
    #[derive(Debug, Deserialize, JsonSchema)]
    struct PoliciesWrite {}
}

/// A login attempt.
#[derive(Debug, Deserialize, JsonSchema)]
struct LoginInput {
    /// The user's password.
    #[serde(default, deserialize_with = "crate::token::opt_secret_string")]
    password: Option<String>,
}

/// A present, non-empty password, wiped from memory when dropped.
fn required_password(password: Option<String>) -> Result<Zeroizing<String>> {
    match password {
        Some(p) if !p.is_empty() => Ok(Zeroizing::new(p)),
        other => {
            drop(other.map(Zeroizing::new));
            Err(Error::bad("missing password"))
        }
    }
}

async fn write_user(ctx: Ctx, mut input: UserWrite) -> Result<Response> {
    let name = username(&ctx);
    let key = user_key(&name);
    let existing: Option<UserEntry> = view::get_json(ctx.view.as_ref(), &key).await?;
    let mut token = existing
        .as_ref()
        .map(|u| u.token.clone())
        .unwrap_or_default();
    input.token_fields().apply(&mut token)?;
    let password_hash = match (input.password.take(), existing) {
        (None, Some(user)) => user.password_hash,
        (password, _) => hash_password(required_password(password)?).await?,
    };
    let entry = UserEntry {
        password_hash,
        token,
    };
    view::put_json(ctx.view.as_ref(), &key, &entry).await?;
    Ok(Response::empty())
}

async fn read_user(ctx: Ctx) -> Result<Response> {
    let name = username(&ctx);
    let user: UserEntry = view::get_json(ctx.view.as_ref(), &user_key(&name))
        .await?
        .ok_or(Error::NotFound)?;
    let mut data = Map::new();
    user.token.read_fields(&mut data);
    Ok(Response {
        data: Some(data),
        ..Response::default()
    })
}

async fn delete_user(ctx: Ctx) -> Result<Response> {
    let name = username(&ctx);
    ctx.view
        .batch(vec![
            ViewOp::Delete {
                key: user_key(&name),
            },
            ViewOp::Delete {
                key: lockout_key(&name),
            },
        ])
        .await?;
    Ok(Response::empty())
}

async fn list_users(ctx: Ctx) -> Result<Response> {
    Response::list(ctx.view.list("user/").await?)
}

async fn update_password(ctx: Ctx, input: PasswordWrite) -> Result<Response> {
    let name = username(&ctx);
    let key = user_key(&name);
    let password = required_password(input.password)?;
    let mut user: UserEntry = view::get_json(ctx.view.as_ref(), &key)
        .await?
        .ok_or_else(|| Error::bad("username does not exist"))?;
    user.password_hash = hash_password(password).await?;
    view::put_json(ctx.view.as_ref(), &key, &user).await?;
    Ok(Response::empty())
}

async fn update_policies(ctx: Ctx, mut input: PoliciesWrite) -> Result<Response> {
    let name = username(&ctx);
    let key = user_key(&name);
    let mut user: UserEntry = view::get_json(ctx.view.as_ref(), &key)
        .await?
        .ok_or_else(|| Error::bad("username does not exist"))?;
    let fields = input.token_fields();
    if fields.policies.is_none() && fields.token_policies.is_none() {
        return Err(Error::bad("missing token_policies"));
    }
    fields.apply(&mut user.token)?;
    view::put_json(ctx.view.as_ref(), &key, &user).await?;
    Ok(Response::empty())
}

async fn login(state: Arc<Userpass>, ctx: Ctx, input: LoginInput) -> Result<Response> {
    let name = username(&ctx);
    let password = Zeroizing::new(input.password.unwrap_or_default());
    let policy = LockoutPolicy::from_options(&ctx.mount.options)?;
    let _serialised = state.logins.lock(&name).await;
    let now = ctx.clock.now();

    let failures: Option<FailedLogins> = match policy {
        Some(_) => view::get_json(ctx.view.as_ref(), &lockout_key(&name)).await?,
        None => None,
    };
    if let (Some(policy), Some(failures)) = (&policy, &failures) {
        if failures.locks_out(policy, now) {
            // Vault refuses a locked user before the credentials are even looked at.
            return Err(Error::PermissionDenied);
        }
    }

    let user: Option<UserEntry> = view::get_json(ctx.view.as_ref(), &user_key(&name)).await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password_matches = verify_password(password, stored_hash).await?;

    let Some(user) = user.filter(|_| password_matches) else {
        if let Some(policy) = &policy {
            let next = FailedLogins::after_failure(failures.as_ref(), policy, now);
            view::put_json(ctx.view.as_ref(), &lockout_key(&name), &next).await?;
        }
        return Err(Error::bad(INVALID_CREDENTIALS));
    };
    if failures.is_some() {
        ctx.view.delete(&lockout_key(&name)).await?;
    }

    let mut metadata = Map::new();
    metadata.insert("username".into(), Value::String(name.clone()));
    let login = Login {
        metadata: metadata.clone(),
        display_name: name.clone(),
        alias_name: name,
        alias_metadata: metadata,
        ..user.token.login()
    };
    Ok(Response {
        login: Some(login),
        ..Response::default()
    })
}

/// User lockout settings of a mount; `None` from [`LockoutPolicy::from_options`] means
/// lockout is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failed logins that lock a user out.
    pub threshold: u64,
    /// How long a locked-out user stays locked, from the last failure.
    pub duration: Duration,
    /// A failure more than this after the previous one starts the count again.
    pub counter_reset: Duration,
}

impl LockoutPolicy {
    /// Read `lockout_threshold`, `lockout_duration`, `lockout_counter_reset` and
    /// `disable_lockout` from mount options, with Vault's defaults.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Option<LockoutPolicy>> {
        let option = |name: &str| {
            options
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let invalid = |name: &str| Error::bad(format!("invalid mount option \"{name}\""));
        if let Some(v) = option("disable_lockout") {
            match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => return Ok(None),
                "false" | "0" | "f" => {}
                _ => return Err(invalid("disable_lockout")),
            }
        }
        let threshold = match option("lockout_threshold") {
            Some(v) => v.parse::<u64>().map_err(|_| invalid("lockout_threshold"))?,
            None => DEFAULT_LOCKOUT_THRESHOLD,
        };
        let duration_option = |name: &str, default: Duration| match option(name) {
            Some(v) => parse_duration(v).map_err(|_| invalid(name)),
            None => Ok(default),
        };
        let duration = duration_option("lockout_duration", DEFAULT_LOCKOUT_DURATION)?;
        let counter_reset =
            duration_option("lockout_counter_reset", DEFAULT_LOCKOUT_COUNTER_RESET)?;
        if threshold == 0 {
            return Ok(None);
        }
        Ok(Some(LockoutPolicy {
            threshold,
            duration,
            counter_reset,
        }))
    }
}

/// A user name's recent failed logins, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FailedLogins {
    count: u64,
    last_failure: DateTime<Utc>,
}

fn since(earlier: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - earlier).to_std().unwrap_or(Duration::ZERO)
}

impl FailedLogins {
    /// Whether these failures lock the user out at `now`.
    fn locks_out(&self, policy: &LockoutPolicy, now: DateTime<Utc>) -> bool {
        self.count >= policy.threshold && since(self.last_failure, now) < policy.duration
    }

    /// The state after one more failure at `now`: counting continues only while failures
    /// follow each other within the reset window and no served-out lockout lies between.
    fn after_failure(
        previous: Option<&FailedLogins>,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
    ) -> FailedLogins {
        let count = match previous {
            Some(p)
                if p.count < policy.threshold
                    && since(p.last_failure, now) <= policy.counter_reset =>
            {
                p.count + 1
            }
            _ => 1,
        };
        FailedLogins {
            count,
            last_failure: now,
        }
    }
}

/// The argon2id hasher: RustCrypto's defaults (19 MiB, t=2, p=1). Fuzz builds (`cfg(fuzzing)`,
/// set by cargo-fuzz) use the smallest parameters instead, so the pipeline fuzzer explores
/// logic rather than spending its time in a deliberately slow hash; the hash stays a real
/// argon2id hash, and verification reads the parameters from the stored hash either way.
fn hasher() -> Argon2<'static> {
    #[cfg(fuzzing)]
    {
        let params = argon2::Params::new(8, 1, 1, None).expect("valid minimal argon2 parameters");
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
    }
    #[cfg(not(fuzzing))]
    Argon2::default()
}

/// Hash a password to an argon2id PHC string with a fresh random salt, on the blocking pool.
async fn hash_password(password: Zeroizing<String>) -> Result<String> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| Error::Internal("random number generator failed".into()))?;
    tokio::task::spawn_blocking(move || {
        hasher()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|_| Error::Internal("password hashing failed".into()))
    })
    .await
    .map_err(|_| Error::Internal("password hashing task failed".into()))?
}

/// Verify `password` against `stored` (a PHC string), or against a dummy hash of the same cost
/// when there is no user, so an unknown user takes as long as a wrong password. Always false
/// without a stored hash.
async fn verify_password(password: Zeroizing<String>, stored: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy_hash().to_string());
        let matches = <Argon2 as PasswordVerifier<str>>::verify_password(
            &Argon2::default(),
            password.as_bytes(),
            &hash,
        )
        .is_ok();
        known && matches
    })
    .await
    .map_err(|_| Error::Internal("password verification task failed".into()))
}

/// An argon2id hash of a random password nobody knows, made once per process with the same
/// parameters as real hashes.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut material = Zeroizing::new([0u8; 32]);
        let mut salt = [0u8; 16];
        let rng = SystemRandom::new();
        // A failed RNG leaves zeros: still a valid hash of the right cost, and no user has it
        // because unknown users never pass (`known && matches`).
        let _ = rng.fill(material.as_mut());
        let _ = rng.fill(&mut salt);
        hasher()
            .hash_password_with_salt(material.as_ref(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lockout_defaults_match_vault() {
        let policy = LockoutPolicy::from_options(&BTreeMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(policy.threshold, 5);
        assert_eq!(policy.duration, Duration::from_secs(900));
        assert_eq!(policy.counter_reset, Duration::from_secs(900));
    }

    #[test]
    fn lockout_can_be_disabled_and_bad_options_are_refused() {
        let disabled = [
            options(&[("lockout_threshold", "0")]),
            options(&[("disable_lockout", "true")]),
        ];
        for o in disabled {
            assert_eq!(LockoutPolicy::from_options(&o).unwrap(), None);
        }
        for o in [
            options(&[("lockout_threshold", "many")]),
            options(&[("lockout_duration", "soon")]),
            options(&[("disable_lockout", "maybe")]),
        ] {
            assert_eq!(LockoutPolicy::from_options(&o).unwrap_err().status(), 400);
        }
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let hash = hash_password(Zeroizing::new("s3cret".into()))
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            verify_password(Zeroizing::new("s3cret".into()), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify_password(Zeroizing::new("nope".into()), Some(hash))
            .await
            .unwrap());
        assert!(!verify_password(Zeroizing::new("s3cret".into()), None)
            .await
            .unwrap());
        assert!(dummy_hash().starts_with("$argon2id$"));
    }
}
