//! `sys/internal/*` and `sys/metrics`: what clients and operators read about the server itself.

use super::mounts::mount_json;
use super::*;
use crate::core::Core;
use coffer_sdk::engine::StatePath;
use coffer_sdk::logical::RawBody;
use coffer_sdk::{Engine, Error, Operation, Response};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map};

/// `?format=` of `sys/metrics`.
#[derive(Deserialize, JsonSchema)]
struct MetricsQuery {
    /// `prometheus` or `json` (the default).
    #[serde(default)]
    format: Option<String>,
}

/// The paths of this concern.
pub(super) fn paths(e: &Engine<Core>) -> Vec<StatePath<Core>> {
    vec![
        // Unauthenticated, as in Vault: clients (`kv` in the CLI) ask which mount serves a path
        // before they know what they may read. Without a token only mounts tuned
        // `listing_visibility = "unauth"` are shown; while sealed the answer is 503, as for
        // every path that needs the barrier.
        e.path("internal/ui/mounts/(?P<path>.+)")
            .unauthenticated()
            .op(
                Operation::Read,
                "Mount serving a path.",
                |core, ctx| async move {
                    if core.barrier.is_sealed() {
                        return Err(Error::Sealed);
                    }
                    let path = ctx.param("path").trim_start_matches('/').to_string();
                    let table = core.router.table();
                    let (m, _) = table
                        .resolve(&path)
                        .ok_or_else(|| Error::bad("no mount matches the path"))?;
                    if ctx.request.caller.is_none() && m.entry.config.listing_visibility != "unauth"
                    {
                        return Err(Error::PermissionDenied);
                    }
                    let mut v = mount_json(&m.entry, &core);
                    v["path"] = json!(m.route_path);
                    Ok(Response::data(v))
                },
            )
            .help(
                "The mount serving a path (used by `kv` clients to detect v1/v2).",
                "",
            ),
        e.path("internal/ui/mounts/?")
            .unauthenticated()
            .op(Operation::Read, "Visible mounts.", |core, ctx| async move {
                if core.barrier.is_sealed() {
                    return Err(Error::Sealed);
                }
                let anonymous = ctx.request.caller.is_none();
                let mut secret = Map::new();
                let mut auth = Map::new();
                for m in core.mounted() {
                    if anonymous && m.entry.config.listing_visibility != "unauth" {
                        continue;
                    }
                    if m.is_auth {
                        auth.insert(
                            m.route_path.trim_start_matches("auth/").to_string(),
                            mount_json(&m.entry, &core),
                        );
                    } else {
                        secret.insert(m.route_path.clone(), mount_json(&m.entry, &core));
                    }
                }
                Ok(Response::data(json!({"secret": secret, "auth": auth})))
            })
            .help("Mounts visible to the caller.", ""),
        e.path("internal/specs/openapi")
            .unauthenticated()
            .op(
                Operation::Read,
                "OpenAPI document.",
                |core, _ctx| async move {
                    Ok(Response {
                        raw: Some(RawBody {
                            content_type: "application/json".into(),
                            body: crate::openapi::document_bytes(&core).as_ref().clone(),
                        }),
                        ..Response::default()
                    })
                },
            )
            .help(
                "The OpenAPI document, generated from every engine's declarations.",
                "",
            ),
        e.path("metrics")
            .typed(
                Operation::Read,
                "Metrics.",
                |core, _ctx, query: MetricsQuery| async move {
                    match query.format.as_deref().unwrap_or("") {
                        "prometheus" => Ok(Response {
                            raw: Some(RawBody {
                                content_type: "text/plain; version=0.0.4".into(),
                                body: core
                                    .metrics
                                    .prometheus(core.barrier.physical().commit_stats())
                                    .into_bytes(),
                            }),
                            ..Response::default()
                        }),
                        "" | "json" => Ok(raw_json(
                            core.metrics
                                .json(core.clock.now(), core.barrier.physical().commit_stats()),
                        )),
                        _ => Err(Error::bad(
                            "unsupported metrics format: use prometheus or json",
                        )),
                    }
                },
            )
            .help(
                "Request metrics, as Prometheus text (`?format=prometheus`) or JSON.",
                "",
            ),
    ]
}
