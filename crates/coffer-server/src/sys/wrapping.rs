//! `sys/wrapping/*`: wrap, unwrap, look up and rewrap responses.

use crate::core::Core;
use coffer_sdk::engine::StatePath;
use coffer_sdk::{Ctx, Engine, Error, Operation, Response, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize, JsonSchema)]
struct WrapTokenInput {
    #[serde(default)]
    token: Option<String>,
}

/// The wrapping token: the `token` field, else the request's own token.
fn wrapping_token(ctx: &Ctx, input: &WrapTokenInput) -> Result<String> {
    input
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            ctx.request
                .caller
                .as_ref()
                .and_then(|c| c.client_token.clone())
        })
        .ok_or_else(|| Error::bad("wrapping token is not valid or does not exist"))
}

/// The paths of this concern.
pub(super) fn paths(e: &Engine<Core>) -> Vec<StatePath<Core>> {
    vec![
        e.path("wrapping/unwrap")
            .unauthenticated()
            .typed(
                Operation::Update,
                "Unwrap a wrapped response.",
                |core, ctx, input: WrapTokenInput| async move {
                    core.wrapping.unwrap(&wrapping_token(&ctx, &input)?).await
                },
            )
            .help(
                "Return a wrapped response once; the wrapping token is revoked.",
                "Pass the wrapping token as the request token or as `token`.",
            ),
        e.path("wrapping/lookup")
            .unauthenticated()
            .typed(
                Operation::Update,
                "Look up a wrapping token.",
                |core, ctx, input: WrapTokenInput| async move {
                    core.wrapping
                        .wrap_lookup(&wrapping_token(&ctx, &input)?)
                        .await
                },
            )
            .op(
                Operation::Read,
                "Look up the request's wrapping token.",
                |core, ctx| async move {
                    core.wrapping
                        .wrap_lookup(&wrapping_token(&ctx, &WrapTokenInput { token: None })?)
                        .await
                },
            )
            .help("Creation path, time and TTL of a wrapping token.", ""),
        e.path("wrapping/rewrap")
            .unauthenticated()
            .typed(
                Operation::Update,
                "Rewrap a wrapped response.",
                |core, ctx, input: WrapTokenInput| async move {
                    core.wrapping.rewrap(&wrapping_token(&ctx, &input)?).await
                },
            )
            .help("Move a wrapped response to a new wrapping token.", ""),
        e.path("wrapping/wrap")
            .op(
                Operation::Update,
                "Wrap arbitrary data.",
                |core, ctx| async move {
                    {
                        if ctx.request.wrap_ttl.is_none() {
                            return Err(Error::bad(
                                "wrapping requires the X-Vault-Wrap-TTL header",
                            ));
                        }
                        if ctx.request.data.is_empty() {
                            return Err(Error::bad("no data provided to wrap"));
                        }
                        let _ = core;
                        Ok(Response::data(Value::Object(ctx.request.data.clone())))
                    }
                },
            )
            .help(
                "Wrap the request's data in a single-use token (needs X-Vault-Wrap-TTL).",
                "",
            ),
    ]
}
