//! Response wrapping: the pipeline can hand back, instead of a response, a single-use token
//! whose cubbyhole holds that response. Unwrapping reads it once and revokes the token.

use crate::barrier::{Barrier, BarrierView};
use crate::tokens::{NewToken, TokenStore};
use coffer_sdk::clock::{format_time, Clock};
use coffer_sdk::logical::{RawBody, WrapInfo};
use coffer_sdk::view::{get_json, to_json, View};
use coffer_sdk::{Error, Response, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Token path that marks a token as a wrapping token.
pub const WRAPPING_PATH: &str = "sys/wrapping/wrap";
/// The only policy a wrapping token carries (it grants nothing by itself).
pub const WRAPPING_POLICY: &str = "response-wrapping";

const INVALID: &str = "wrapping token is not valid or does not exist";

#[derive(Serialize, Deserialize)]
struct WrapMeta {
    creation_path: String,
    creation_time: String,
    creation_ttl: u64,
}

/// Response wrapping, owned by the core: it wraps responses for the pipeline and serves
/// `sys/wrapping/*`.
pub struct Wrapping {
    barrier: Arc<Barrier>,
    tokens: Arc<TokenStore>,
    clock: Arc<dyn Clock>,
    max_ttl: Duration,
}

impl Wrapping {
    /// Wrapping over the token store's tokens and their cubbyholes; TTLs up to `max_ttl`.
    pub fn new(
        barrier: Arc<Barrier>,
        tokens: Arc<TokenStore>,
        clock: Arc<dyn Clock>,
        max_ttl: Duration,
    ) -> Wrapping {
        Wrapping {
            barrier,
            tokens,
            clock,
            max_ttl,
        }
    }

    fn cubbyhole_of(&self, id_hash: &str) -> BarrierView {
        BarrierView::new(self.barrier.clone(), format!("cubbyhole/{id_hash}/"))
    }

    /// Wrap `resp` (already rendered as `body`) in a new single-use token.
    pub(crate) async fn wrap(
        &self,
        body: Vec<u8>,
        ttl: Duration,
        creation_path: &str,
        wrapped_accessor: String,
    ) -> Result<Response> {
        if ttl.is_zero() {
            return Err(Error::bad("wrap TTL must be greater than zero"));
        }
        if ttl > self.max_ttl {
            return Err(Error::bad(
                "wrap TTL is longer than the system max lease TTL",
            ));
        }
        let (token, entry) = self
            .tokens
            .create(NewToken {
                policies: vec![WRAPPING_POLICY.into()],
                display_name: "response-wrapping".into(),
                num_uses: 1,
                ttl,
                renewable: false,
                path: WRAPPING_PATH.into(),
                explicit_max_ttl: ttl,
                ..NewToken::default()
            })
            .await?;
        let now = self.clock.now();
        let meta = WrapMeta {
            creation_path: creation_path.to_string(),
            creation_time: format_time(now),
            creation_ttl: ttl.as_secs(),
        };
        let cubby = self.cubbyhole_of(&entry.id_hash);
        cubby
            .batch(vec![
                coffer_sdk::view::ViewOp::Put {
                    key: "response".into(),
                    value: body,
                },
                coffer_sdk::view::ViewOp::Put {
                    key: "meta".into(),
                    value: to_json(&meta)?,
                },
            ])
            .await?;
        Ok(Response {
            wrap_info: Some(WrapInfo {
                accessor: self.tokens.accessor_of(&token)?,
                token,
                ttl: ttl.as_secs(),
                creation_time: meta.creation_time,
                creation_path: meta.creation_path,
                wrapped_accessor,
            }),
            ..Response::default()
        })
    }

    /// The entry of a live wrapping token, or the one error Vault gives for all failures.
    async fn wrapping_entry(
        &self,
        token: &str,
    ) -> Result<std::sync::Arc<crate::tokens::TokenEntry>> {
        let entry = self
            .tokens
            .lookup_caller(token)
            .await?
            .ok_or_else(|| Error::bad(INVALID))?;
        if entry.path != WRAPPING_PATH || entry.policies != [WRAPPING_POLICY] {
            return Err(Error::bad(INVALID));
        }
        Ok(entry)
    }

    /// Read a wrapped response once: the token is revoked before the response is returned.
    pub async fn unwrap(&self, token: &str) -> Result<Response> {
        let entry = self.wrapping_entry(token).await?;
        let body = self
            .cubbyhole_of(&entry.id_hash)
            .get("response")
            .await?
            .ok_or_else(|| Error::bad(INVALID))?;
        self.tokens.revoke_tree(&entry.id_hash).await?;
        Ok(Response {
            raw: Some(RawBody {
                content_type: "application/json".into(),
                body,
            }),
            ..Response::default()
        })
    }

    /// What a wrapping token wraps, without unwrapping it.
    pub async fn wrap_lookup(&self, token: &str) -> Result<Response> {
        let entry = self.wrapping_entry(token).await?;
        let meta: WrapMeta = get_json(&self.cubbyhole_of(&entry.id_hash), "meta")
            .await?
            .ok_or_else(|| Error::bad(INVALID))?;
        Ok(Response::data(serde_json::json!({
            "creation_path": meta.creation_path,
            "creation_time": meta.creation_time,
            "creation_ttl": meta.creation_ttl,
        })))
    }

    /// Move a wrapped response to a fresh token with the same TTL; the old token stops working.
    pub async fn rewrap(&self, token: &str) -> Result<Response> {
        let entry = self.wrapping_entry(token).await?;
        let cubby = self.cubbyhole_of(&entry.id_hash);
        let meta: WrapMeta = get_json(&cubby, "meta")
            .await?
            .ok_or_else(|| Error::bad(INVALID))?;
        let body = cubby
            .get("response")
            .await?
            .ok_or_else(|| Error::bad(INVALID))?;
        let resp = self
            .wrap(
                body,
                Duration::from_secs(meta.creation_ttl),
                &meta.creation_path,
                String::new(),
            )
            .await?;
        self.tokens.revoke_tree(&entry.id_hash).await?;
        Ok(resp)
    }
}
