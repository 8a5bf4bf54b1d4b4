//! `sys/tools/*`: random bytes and hashes, as Vault serves them.

use crate::core::Core;
use base64::Engine as _;
use coffer_sdk::engine::StatePath;
use coffer_sdk::framework::de;
use coffer_sdk::{Ctx, Engine, Error, Operation, Response, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// Most random bytes one request may ask for (Vault's limit).
const MAX_RANDOM_BYTES: u64 = 128 * 1024;

#[derive(Deserialize, JsonSchema)]
struct RandomInput {
    #[serde(default, deserialize_with = "de::opt_u64")]
    bytes: Option<u64>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct HashInput {
    /// Base64 of the bytes to hash.
    input: String,
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

fn encode(bytes: &[u8], format: &str) -> Result<String> {
    match format {
        "" | "base64" => Ok(base64::engine::general_purpose::STANDARD.encode(bytes)),
        "hex" => Ok(hex::encode(bytes)),
        _ => Err(Error::bad("format must be base64 or hex")),
    }
}

fn random(ctx: &Ctx, input: RandomInput) -> Result<Response> {
    // The path may carry the source and the count: random/<source>/<bytes> or random/<bytes>
    // (a number in the first place is the count, as in Vault).
    let (path_source, from_path) = match (ctx.param("source"), ctx.param("urlbytes")) {
        (first, "") if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) => {
            ("", first)
        }
        (first, second) => (first, second),
    };
    let count = if from_path.is_empty() {
        input.bytes.unwrap_or(32)
    } else {
        from_path
            .parse()
            .map_err(|_| Error::bad("the number of bytes in the path must be a number"))?
    };
    if count == 0 || count > MAX_RANDOM_BYTES {
        return Err(Error::bad(format!(
            "bytes must be between 1 and {MAX_RANDOM_BYTES}"
        )));
    }
    let source = match path_source {
        "" => input.source.unwrap_or_default(),
        s => s.to_string(),
    };
    if !matches!(source.as_str(), "" | "platform" | "seal" | "all") {
        return Err(Error::bad("source must be platform, seal or all"));
    }
    let bytes = crate::barrier::random_bytes(count as usize);
    let text = encode(&bytes, input.format.as_deref().unwrap_or(""))?;
    Ok(Response::data(json!({ "random_bytes": text })))
}

fn hash(ctx: &Ctx, input: HashInput) -> Result<Response> {
    let algorithm = match ctx.param("urlalgorithm") {
        "" => input.algorithm.unwrap_or_else(|| "sha2-256".into()),
        a => a.to_string(),
    };
    let digest = match algorithm.as_str() {
        "sha2-256" => &ring::digest::SHA256,
        "sha2-384" => &ring::digest::SHA384,
        "sha2-512" => &ring::digest::SHA512,
        _ => {
            return Err(Error::bad(
                "unsupported algorithm: use sha2-256, sha2-384 or sha2-512",
            ))
        }
    };
    let data = base64::engine::general_purpose::STANDARD
        .decode(input.input.trim())
        .map_err(|_| Error::bad("input must be base64"))?;
    let sum = ring::digest::digest(digest, &data);
    let format = input.format.as_deref().unwrap_or("hex");
    Ok(Response::data(
        json!({ "sum": encode(sum.as_ref(), format)? }),
    ))
}

/// The paths of this concern.
pub(super) fn paths(e: &Engine<Core>) -> Vec<StatePath<Core>> {
    vec![
        e.path("tools/random(?:/(?P<source>[^/]+))?(?:/(?P<urlbytes>[^/]+))?")
            .typed(
                Operation::Update,
                "Random bytes.",
                |_core, ctx, input: RandomInput| async move { random(&ctx, input) },
            )
            .help(
                "Random bytes from the server's generator.",
                "`bytes` (default 32, at most 131072) in `format` base64 (default) or hex.",
            ),
        e.path("tools/hash(?:/(?P<urlalgorithm>[^/]+))?")
            .typed(
                Operation::Update,
                "Hash data.",
                |_core, ctx, input: HashInput| async move { hash(&ctx, input) },
            )
            .help(
                "Hash base64 `input` with sha2-256 (default), sha2-384 or sha2-512.",
                "The sum is hex unless `format` is base64.",
            ),
    ]
}
