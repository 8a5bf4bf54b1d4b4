//! `sys/leases/*` (and Vault's legacy `sys/renew`, `sys/revoke*`): look up, renew, revoke and count leases.

use crate::core::Core;
use coffer_sdk::engine::StatePath;
use coffer_sdk::framework::de;
use coffer_sdk::{Ctx, Engine, Error, Operation, Response, Result, View};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize, JsonSchema)]
struct LeaseInput {
    #[serde(default)]
    lease_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_duration")]
    #[schemars(with = "Option<String>")]
    increment: Option<Duration>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    sync: Option<bool>,
}

fn lease_id_of(ctx: &Ctx, input: &LeaseInput) -> Result<String> {
    let from_url = ctx.param("url_lease_id");
    let id = if !from_url.is_empty() {
        from_url.to_string()
    } else {
        input.lease_id.clone().unwrap_or_default()
    };
    if id.trim().is_empty() {
        return Err(Error::bad("missing required field 'lease_id'"));
    }
    Ok(id.trim_start_matches('/').to_string())
}

async fn renew_lease(core: &Core, ctx: &Ctx, input: &LeaseInput) -> Result<Response> {
    let id = lease_id_of(ctx, input)?;
    let (lease, warning) = core
        .leases
        .renew(&id, input.increment, &ctx.request.connection)
        .await?;
    let ttl = Duration::from_secs(crate::leases::secs_until(
        lease.expire_time,
        core.clock.now(),
    ));
    let mut resp = Response {
        secret: Some(coffer_sdk::logical::SecretLease {
            lease_id: lease.lease_id,
            ttl,
            renewable: lease.renewable,
            ..Default::default()
        }),
        ..Response::default()
    };
    resp.warnings.extend(warning);
    Ok(resp)
}

async fn revoke_lease(
    core: &Arc<Core>,
    ctx: &Ctx,
    input: &LeaseInput,
    force: bool,
) -> Result<Response> {
    let id = lease_id_of(ctx, input)?;
    if input.sync == Some(false) {
        core.leases
            .store
            .get(&id)
            .await?
            .ok_or_else(|| Error::bad("invalid lease"))?;
        let core = core.clone();
        tokio::spawn(async move {
            if let Err(e) = core.leases.revoke(&id, force).await {
                tracing::warn!(error = %e, "asynchronous lease revocation failed; the lease stays and expiry retries it");
            }
        });
        let mut resp = Response::empty();
        resp.status = Some(202);
        resp.warnings.push("revocation queued".into());
        return Ok(resp);
    }
    core.leases.revoke(&id, force).await?;
    Ok(Response::empty())
}

async fn revoke_prefix(core: &Arc<Core>, ctx: &Ctx, force: bool) -> Result<Response> {
    let prefix = ctx.param("prefix").to_string();
    if prefix.is_empty() {
        return Err(Error::bad("missing required field 'prefix'"));
    }
    core.leases.revoke_prefix(&prefix, force).await?;
    Ok(Response::empty())
}

/// `?type=` of the lease listings.
#[derive(Deserialize, JsonSchema)]
struct LeaseTypeQuery {
    /// `irrevocable` or `all`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// The paths of this concern.
pub(super) fn paths(e: &Engine<Core>) -> Vec<StatePath<Core>> {
    vec![
        e.path("leases/lookup(?:/(?P<prefix>.*))?")
            .sudo_for(Operation::List)
            .op(Operation::List, "List leases under a prefix.", |core, ctx| async move { {
                let prefix = ctx.param("prefix").trim_start_matches('/').to_string();
                if prefix.contains("..") {
                    return Err(Error::bad("invalid prefix"));
                }
                Response::list(core.leases.store.view.list(&format!("id/{prefix}")).await?)
            } })
            .typed(Operation::Update, "Look up a lease.", |core, ctx, input: LeaseInput| async move { {
                let id = lease_id_of(&ctx, &input)?;
                Ok(Response::data(core.leases.lookup(&id).await?))
            } })
            .help("Look up a lease, or list lease ids under a prefix.", ""),
        e.path("leases/renew(?:/(?P<url_lease_id>.+))?")
            .typed(Operation::Update, "Renew a lease.", |core, ctx, input: LeaseInput| async move { renew_lease(&core, &ctx, &input).await })
            .help("Renew a lease by an increment, clamped to its maximum TTL.", ""),
        e.path("renew(?:/(?P<url_lease_id>.+))?")
            .typed(Operation::Update, "Renew a lease (legacy path).", |core, ctx, input: LeaseInput| async move { renew_lease(&core, &ctx, &input).await })
            .help("Renew a lease (legacy path).", ""),
        e.path("leases/revoke-prefix/(?P<prefix>.+)")
            .sudo()
            .op(Operation::Update, "Revoke every lease under a prefix.", |core, ctx| async move { revoke_prefix(&core, &ctx, false).await })
            .help("Revoke every lease whose id starts with the prefix.", ""),
        e.path("revoke-prefix/(?P<prefix>.+)")
            .sudo()
            .op(Operation::Update, "Revoke every lease under a prefix (legacy path).", |core, ctx| async move { revoke_prefix(&core, &ctx, false).await })
            .help("Revoke every lease under a prefix (legacy path).", ""),
        e.path("leases/revoke-force/(?P<prefix>.+)")
            .sudo()
            .op(Operation::Update, "Remove leases under a prefix even if the engine cannot revoke them.", |core, ctx| async move { revoke_prefix(&core, &ctx, true).await })
            .help("Remove leases under a prefix, ignoring engine revocation errors.", "Use only when the secrets were cleaned up by other means."),
        e.path("revoke-force/(?P<prefix>.+)")
            .sudo()
            .op(Operation::Update, "Force-revoke (legacy path).", |core, ctx| async move { revoke_prefix(&core, &ctx, true).await })
            .help("Force-revoke leases under a prefix (legacy path).", ""),
        e.path("leases/revoke(?:/(?P<url_lease_id>.+))?")
            .typed(Operation::Update, "Revoke a lease.", |core, ctx, input: LeaseInput| async move { revoke_lease(&core, &ctx, &input, false).await })
            .help("Revoke a lease (sync by default).", ""),
        e.path("revoke(?:/(?P<url_lease_id>.+))?")
            .typed(Operation::Update, "Revoke a lease (legacy path).", |core, ctx, input: LeaseInput| async move { revoke_lease(&core, &ctx, &input, false).await })
            .help("Revoke a lease (legacy path).", ""),
        e.path("leases/tidy")
            .op(Operation::Update, "Tidy the lease index.", |core, _ctx| async move { {
                let removed = core.leases.tidy().await?;
                Ok(Response::data(json!({"removed_entries": removed})).warn("tidy of the lease index finished"))
            } })
            .help("Remove index entries that point at missing leases, and leases of missing tokens.", ""),
        e.path("leases/count")
            .typed(Operation::Read, "Count leases.", |core, _ctx, query: LeaseTypeQuery| async move {
                let irrevocable = match query.kind.as_deref().unwrap_or("all") {
                    "irrevocable" => true,
                    "all" | "" => false,
                    _ => return Err(Error::bad("invalid type: use irrevocable or all")),
                };
                let (total, counts, _) = core.leases.counts(irrevocable).await?;
                Ok(Response::data(json!({"lease_count": total, "counts": counts})))
            })
            .help("Count leases, optionally only irrevocable ones.", ""),
        e.path("leases/?")
            .typed(Operation::Read, "List irrevocable leases.", |core, _ctx, query: LeaseTypeQuery| async move {
                if query.kind.as_deref() != Some("irrevocable") {
                    return Err(Error::bad("only type=irrevocable listing is supported; use LIST sys/leases/lookup/<prefix> for the rest"));
                }
                let (total, _, leases) = core.leases.counts(true).await?;
                Ok(Response::data(json!({"lease_count": total, "leases": leases})))
            })
            .help("List leases that failed to revoke.", ""),
    ]
}
