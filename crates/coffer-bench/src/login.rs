//! The AppRole login figure: logins per second through Coffer's dev server, against Vault's
//! published dev-server rate, with this machine's bare-HTTP ceiling for the same exchange
//! measured alongside so the reader can tell a slow login path from a slow machine.

use crate::canned::CannedResponse;
use crate::error::BenchError;
use crate::figures::{
    caveat_for, plan, run_side, scratch, spawn_dev, Figure, Settings, DEV_ROOT_TOKEN,
};
use crate::http::{encode_request, exchange};
use crate::load::RequestFactory;
use hyper::Method;
use serde_json::{json, Value};
use std::sync::Arc;

/// Connections for the login figure.
pub const LOGIN_CONNECTIONS: usize = 32;
/// Vault's published AppRole login rate on a dev server, logins per second. A constant: Vault
/// is not run here.
pub const VAULT_PUBLISHED_LOGINS_PER_SEC: f64 = 5_200.0;
/// Coffer logins per second must reach this multiple of Vault's published rate.
pub const LOGIN_TARGET_RATIO: f64 = 4.0;
/// The AppRole role the figure logs in with.
pub const ROLE_NAME: &str = "bench";
/// The login path.
pub const LOGIN_PATH: &str = "/v1/auth/approle/login";

/// AppRole logins with 32 keep-alive connections against Coffer's dev server, all with one
/// reusable secret ID; the same request against a bare hyper server replaying Coffer's login
/// answer gives this machine's ceiling.
pub async fn approle_login(settings: &Settings) -> Result<Figure, BenchError> {
    let dir = scratch(settings, "coffer-bench-login-")?;
    let coffer = spawn_dev(settings, dir.path(), "coffer.log").await?;
    let addr = coffer.addr;
    let root = Some(DEV_ROOT_TOKEN);
    exchange(
        addr,
        Method::POST,
        "/v1/sys/auth/approle",
        root,
        Some(&json!({ "type": "approle" })),
    )
    .await?
    .expect_success("enabling AppRole at auth/approle")?;
    let role_path = format!("/v1/auth/approle/role/{ROLE_NAME}");
    exchange(
        addr,
        Method::POST,
        &role_path,
        root,
        Some(&json!({ "token_policies": ["default"], "secret_id_num_uses": 0 })),
    )
    .await?
    .expect_success("creating the AppRole role")?;
    let role_id = data_field(
        exchange(
            addr,
            Method::GET,
            &format!("{role_path}/role-id"),
            root,
            None,
        )
        .await?,
        "role_id",
        "reading the role ID",
    )?;
    let secret_id = data_field(
        exchange(
            addr,
            Method::POST,
            &format!("{role_path}/secret-id"),
            root,
            Some(&json!({})),
        )
        .await?,
        "secret_id",
        "generating the secret ID",
    )?;
    let login_body = Arc::new(json!({ "role_id": role_id, "secret_id": secret_id }));
    // One login outside the measurement proves the credentials work and captures the answer
    // the baseline replays.
    let captured = exchange(addr, Method::POST, LOGIN_PATH, None, Some(&login_body))
        .await?
        .expect_success("a first AppRole login")?;
    let canned = CannedResponse::from_exchange(&captured);
    let login_request = |addr| -> RequestFactory {
        let body = login_body.clone();
        let request = encode_request(addr, Method::POST, LOGIN_PATH, None, Some(&body));
        Arc::new(move |_, _| request.clone())
    };
    let coffer_run = run_side(
        plan(
            settings,
            "approle-login coffer",
            addr,
            LOGIN_CONNECTIONS,
            login_request(addr),
        ),
        coffer.pid(),
    )
    .await?;
    drop(coffer);

    let bare =
        crate::figures::spawn_canned_baseline(settings, dir.path(), &canned, "canned-login.json")
            .await?;
    let bare_run = run_side(
        plan(
            settings,
            "approle-login bare hyper",
            bare.addr,
            LOGIN_CONNECTIONS,
            login_request(bare.addr),
        ),
        bare.pid(),
    )
    .await?;
    drop(bare);

    let caveat = caveat_for(&[("coffer", &coffer_run), ("bare hyper", &bare_run)]);
    let (coffer_rate, bare_rate) = (coffer_run.report.throughput, bare_run.report.throughput);
    let request_bytes = serde_json::to_vec(&*login_body).map_or(0, |b| b.len());
    Ok(Figure {
        name: "approle-login".into(),
        unit: "logins/s vs Vault's published logins/s".into(),
        coffer: coffer_rate,
        baseline: VAULT_PUBLISHED_LOGINS_PER_SEC,
        ratio: coffer_rate / VAULT_PUBLISHED_LOGINS_PER_SEC,
        target: LOGIN_TARGET_RATIO,
        details: json!({
            "connections": LOGIN_CONNECTIONS,
            "request_bytes": request_bytes,
            "response_bytes": canned.body.len(),
            "baseline_published_vault_dev_server_per_sec": VAULT_PUBLISHED_LOGINS_PER_SEC,
            "coffer": coffer_run.to_json(),
            "machine_ceiling_bare_hyper": bare_run.to_json(),
            "coffer_share_of_machine_ceiling": coffer_rate / bare_rate,
        }),
        caveat,
        published_baseline: Some("Vault dev server, published".into()),
        notes: vec![format!(
            "baseline is a constant (Vault's published {:.1}k logins/s on a dev server), not measured here; this machine's ceiling, a bare hyper server answering the same {request_bytes}-byte POST with Coffer's {}-byte login answer: {bare_rate:.0}/s (Coffer reaches {:.2} of it)",
            VAULT_PUBLISHED_LOGINS_PER_SEC / 1000.0,
            canned.body.len(),
            coffer_rate / bare_rate
        )],
        parts: Vec::new(),
    })
}

/// `data.<field>` of a successful answer, as a string.
fn data_field(
    answer: crate::http::Exchange,
    field: &str,
    context: &str,
) -> Result<String, BenchError> {
    answer
        .expect_success(context)?
        .json(context)?
        .get("data")
        .and_then(|d| d.get(field))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| BenchError::UnexpectedResponse {
            context: context.into(),
            detail: format!("no data.{field} in the answer"),
        })
}
