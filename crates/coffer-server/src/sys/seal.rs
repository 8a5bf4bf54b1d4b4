//! `sys/` seal lifecycle: init, seal, unseal, rekey, key rotation, health and seal status.

use super::*;
use crate::core::{Core, RekeyProgress, SealStatus};
use base64::Engine as _;
use coffer_sdk::engine::StatePath;
use coffer_sdk::framework::de;
use coffer_sdk::{Ctx, Engine, Error, Operation, Response, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use zeroize::Zeroizing;

fn decode_key(key: &str) -> Result<Zeroizing<Vec<u8>>> {
    let key = key.trim();
    if key.is_empty() {
        return Err(Error::bad("missing required field 'key'"));
    }
    if let Ok(bytes) = hex::decode(key) {
        return Ok(Zeroizing::new(bytes));
    }
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map(Zeroizing::new)
        .map_err(|_| Error::bad("'key' must be a valid hex or base64 string"))
}

fn seal_status_json(s: &SealStatus) -> Value {
    serde_json::to_value(s).expect("encodes")
}

#[derive(Deserialize, JsonSchema)]
struct InitInput {
    #[serde(default, deserialize_with = "de::opt_u64")]
    secret_shares: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    secret_threshold: Option<u64>,
    #[serde(default)]
    pgp_keys: Option<Vec<String>>,
    #[serde(default)]
    root_token_pgp_key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    stored_shares: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    recovery_shares: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    recovery_threshold: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
struct UnsealInput {
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    reset: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    migrate: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
struct RekeyInitInput {
    #[serde(default, deserialize_with = "de::opt_u64")]
    secret_shares: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    secret_threshold: Option<u64>,
    #[serde(default)]
    pgp_keys: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    backup: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    require_verification: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
struct RekeyUpdateInput {
    key: String,
    nonce: String,
}

fn health_status(q: &Map<String, Value>, key: &str, default: u16) -> Result<u16> {
    match q.get(key).and_then(Value::as_str) {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<u16>()
            .ok()
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| Error::bad(format!("invalid {key}: must be an HTTP status code"))),
    }
}

async fn rekey_status_response(core: &Core) -> Result<Response> {
    let (nonce, started, n, t, progress, required) = core.rekey_status().await?;
    Ok(raw_json(json!({
        "nonce": nonce, "started": started, "t": t, "n": n, "progress": progress, "required": required,
        "pgp_fingerprints": null, "backup": false, "verification_required": false, "verification_nonce": "",
    })))
}

/// The paths of this concern.
pub(super) fn paths(e: &Engine<Core>) -> Vec<StatePath<Core>> {
    let seal_status = |core: Arc<Core>, _ctx: Ctx| async move {
        Ok(raw_json(seal_status_json(&core.seal_status().await?)))
    };
    let health = |core: Arc<Core>, ctx: Ctx| async move {
        {
            let q = &ctx.request.data;
            let status = core.seal_status().await?;
            let code = if !status.initialized {
                health_status(q, "uninitcode", 501)?
            } else if status.sealed {
                health_status(q, "sealedcode", 503)?
            } else {
                health_status(q, "activecode", 200)?
            };
            let mut resp = raw_json(json!({
                "initialized": status.initialized,
                "sealed": status.sealed,
                "standby": false,
                "performance_standby": false,
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled",
                "server_time_utc": core.clock.now().timestamp(),
                "version": crate::VERSION,
                "enterprise": false,
                "cluster_name": "coffer",
                "cluster_id": "",
            }));
            resp.status = Some(code);
            Ok(resp)
        }
    };
    let rekey_status =
        |core: Arc<Core>, _ctx: Ctx| async move { rekey_status_response(&core).await };
    vec![
        e.path("init")
            .unauthenticated()
            .op(Operation::Read, "Is the server initialized?", |core, _ctx| async move { Ok(raw_json(json!({"initialized": core.seal_config().await?.is_some()}))) })
            .typed_ops(&[Operation::Update, Operation::Create], "Initialize a new server.", |core, _ctx, input: InitInput| async move { {
                if input.pgp_keys.as_ref().is_some_and(|k| !k.is_empty()) || input.root_token_pgp_key.as_ref().is_some_and(|k| !k.is_empty()) {
                    return Err(Error::bad("PGP encryption of unseal keys is not supported yet"));
                }
                if input.recovery_shares.unwrap_or(0) > 0 || input.recovery_threshold.unwrap_or(0) > 0 || input.stored_shares.unwrap_or(0) > 0 {
                    return Err(Error::bad("recovery and stored shares apply to auto-unseal, which is not configured"));
                }
                let shares = input.secret_shares.ok_or_else(|| Error::bad("missing required field 'secret_shares'"))? as usize;
                let threshold = input.secret_threshold.ok_or_else(|| Error::bad("missing required field 'secret_threshold'"))? as usize;
                let result = core.init(shares, threshold).await?;
                let b64 = base64::engine::general_purpose::STANDARD;
                Ok(raw_json(json!({
                    "keys": result.keys.iter().map(|k| hex::encode(&k[..])).collect::<Vec<_>>(),
                    "keys_base64": result.keys.iter().map(|k| b64.encode(&k[..])).collect::<Vec<_>>(),
                    "root_token": result.root_token,
                })))
            } })
            .help("Initialize a new server.", "Creates the keyring and root key, splits the unseal key into shares, and returns them with the initial root token."),
        e.path("seal-status").unauthenticated().op(Operation::Read, "Seal status.", seal_status).help("Seal status and unseal progress.", ""),
        e.path("unseal")
            .unauthenticated()
            .typed_ops(&[Operation::Update, Operation::Create], "Submit an unseal key share.", |core, _ctx, input: UnsealInput| async move { {
                if input.migrate == Some(true) {
                    return Err(Error::bad("seal migration is not supported yet"));
                }
                let reset = input.reset.unwrap_or(false);
                let key = if reset { None } else { Some(decode_key(input.key.as_deref().unwrap_or(""))?) };
                Ok(raw_json(seal_status_json(&core.unseal(key, reset).await?)))
            } })
            .help("Submit an unseal key share.", "When the threshold of shares is reached the server unseals."),
        e.path("seal")
            .sudo()
            .op(Operation::Update, "Seal the server.", |core, _ctx| async move { {
                core.seal().await?;
                Ok(Response::empty())
            } })
            .help("Seal the server: every key is dropped from memory.", "An emergency stop."),
        e.path("health").unauthenticated().op(Operation::Read, "Health.", health).help("Health and seal state as an HTTP status code.", ""),
        e.path("leader")
            .unauthenticated()
            .op(Operation::Read, "HA leader.", |_core, _ctx| async move { Ok(raw_json(json!({
                "ha_enabled": false, "is_self": false, "active_time": "0001-01-01T00:00:00Z",
                "leader_address": "", "leader_cluster_address": "", "performance_standby": false,
                "performance_standby_last_remote_wal": 0,
            }))) })
            .help("High-availability status.", ""),
        e.path("rekey/init")
            .unauthenticated()
            .op(Operation::Read, "Rekey status.", rekey_status)
            .typed_ops(&[Operation::Update, Operation::Create], "Start a rekey.", {
                |core, _ctx, input: RekeyInitInput| async move { {
                    if input.pgp_keys.as_ref().is_some_and(|k| !k.is_empty()) || input.backup == Some(true) {
                        return Err(Error::bad("PGP-encrypted and backed-up rekey shares are not supported yet"));
                    }
                    if input.require_verification == Some(true) {
                        return Err(Error::bad("rekey verification is not supported yet"));
                    }
                    let shares = input.secret_shares.ok_or_else(|| Error::bad("missing required field 'secret_shares'"))? as usize;
                    let threshold = input.secret_threshold.ok_or_else(|| Error::bad("missing required field 'secret_threshold'"))? as usize;
                    core.rekey_init(shares, threshold).await?;
                    rekey_status_response(&core).await
                } }
            })
            .op(Operation::Delete, "Cancel a rekey.", |core, _ctx| async move { {
                core.rekey_cancel().await;
                Ok(Response::empty())
            } })
            .help("Start, inspect or cancel a rekey of the unseal key shares.", ""),
        e.path("rekey/update")
            .unauthenticated()
            .typed_ops(&[Operation::Update, Operation::Create], "Submit a current unseal share for a rekey.", |core, _ctx, input: RekeyUpdateInput| async move { {
                let key = decode_key(&input.key)?;
                match core.rekey_update(key, &input.nonce).await? {
                    RekeyProgress::Pending { progress, required, nonce, shares, threshold } => Ok(raw_json(json!({
                        "nonce": nonce, "started": true, "t": threshold, "n": shares, "progress": progress, "required": required,
                        "pgp_fingerprints": null, "backup": false, "verification_required": false, "complete": false,
                    }))),
                    RekeyProgress::Complete { keys, nonce } => {
                        let b64 = base64::engine::general_purpose::STANDARD;
                        Ok(raw_json(json!({
                            "complete": true, "nonce": nonce,
                            "keys": keys.iter().map(|k| hex::encode(&k[..])).collect::<Vec<_>>(),
                            "keys_base64": keys.iter().map(|k| b64.encode(&k[..])).collect::<Vec<_>>(),
                            "pgp_fingerprints": null, "backup": false, "verification_required": false,
                        })))
                    }
                }
            } })
            .help("Submit a current unseal key share toward a rekey.", ""),
        e.path("rotate")
            .sudo()
            .op(Operation::Update, "Rotate the barrier key.", |core, _ctx| async move { {
                core.barrier.rotate(core.clock.now()).await?;
                Ok(Response::empty())
            } })
            .help("Add a new barrier key term; new writes use it, old entries stay readable.", ""),
        e.path("key-status")
            .op(Operation::Read, "Barrier key status.", |core, _ctx| async move { {
                let s = core.barrier.key_status()?;
                Ok(Response::data(json!({"term": s.term, "install_time": s.install_time})))
            } })
            .help("The active barrier key term.", ""),
    ]
}
