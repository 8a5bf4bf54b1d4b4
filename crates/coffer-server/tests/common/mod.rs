//! In-process harness: a real core over real storage, a movable clock, and a request helper.
#![allow(dead_code)]

use coffer_sdk::clock::ManualClock;
use coffer_sdk::{Error, Operation, Request, Response};
use coffer_server::core::Core;
use coffer_server::mounts::LeaseLimits;
use coffer_storage::{MemoryStorage, Storage};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub struct Harness {
    pub core: Arc<Core>,
    pub clock: ManualClock,
    pub root: String,
    pub storage: Arc<dyn Storage>,
    pub keys: Vec<Vec<u8>>,
    /// The token memo of the one client connection every request of [`Harness::call`] (and
    /// [`Harness::call_on_connection`]) comes over, as a kept-alive connection's would: each
    /// test that changes a token and uses it again checks that the memo follows.
    pub connection: coffer_server::tokens::TokenMemo,
}

/// The engines of the real binary.
pub fn catalog() -> coffer_sdk::catalog::Catalog {
    let mut catalog = coffer_sdk::catalog::Catalog::new();
    coffer_kv::register(&mut catalog);
    coffer_auth::register(&mut catalog);
    catalog
}

pub fn limits() -> LeaseLimits {
    LeaseLimits {
        default_ttl: Duration::from_secs(768 * 3600),
        max_ttl: Duration::from_secs(768 * 3600),
    }
}

impl Harness {
    /// Initialised (1 share), unsealed, `secret/` = KV v2.
    pub async fn new() -> Harness {
        Self::over(Arc::new(MemoryStorage::new()), 1, 1).await
    }

    /// Like [`Harness::new`], with extra engine kinds beside the binary's.
    pub async fn with_engines(add: impl FnOnce(&mut coffer_sdk::catalog::Catalog)) -> Harness {
        let mut catalog = catalog();
        add(&mut catalog);
        Self::build(
            Arc::new(MemoryStorage::new()),
            1,
            1,
            catalog,
            ManualClock::new(),
        )
        .await
    }

    pub async fn over(storage: Arc<dyn Storage>, shares: usize, threshold: usize) -> Harness {
        Self::build(storage, shares, threshold, catalog(), ManualClock::new()).await
    }

    pub async fn build(
        storage: Arc<dyn Storage>,
        shares: usize,
        threshold: usize,
        catalog: coffer_sdk::catalog::Catalog,
        clock: ManualClock,
    ) -> Harness {
        let core = coffer_server::host::build_core(
            storage.clone(),
            Arc::new(clock.clone()),
            limits(),
            Arc::new(catalog),
        );
        let init = core.init(shares, threshold).await.expect("init");
        let keys: Vec<Vec<u8>> = init.keys.iter().map(|k| k.to_vec()).collect();
        for k in keys.iter().take(threshold) {
            core.unseal(Some(zeroize::Zeroizing::new(k.clone())), false)
                .await
                .expect("unseal");
        }
        let h = Harness {
            core,
            clock,
            root: init.root_token,
            storage,
            keys,
            connection: Default::default(),
        };
        h.ok(
            Operation::Update,
            "sys/mounts/secret",
            serde_json::json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        h
    }

    pub async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        token: &str,
    ) -> Result<Response, Error> {
        self.call_on_connection(Request::new(op, path).with_data(data), Some(token))
            .await
    }

    /// Handle `req` as if it came over the harness's one client connection.
    pub async fn call_on_connection(
        &self,
        req: Request,
        token: Option<&str>,
    ) -> Result<Response, Error> {
        self.core
            .handle_on_connection(req, token, &self.connection)
            .await
    }

    /// As root; panics on error.
    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> Response {
        match self.call(op, path, data, &self.root.clone()).await {
            Ok(r) => r,
            Err(e) => panic!("{op:?} {path} failed: {e}"),
        }
    }

    pub async fn token(&self, data: Value) -> String {
        self.ok(Operation::Update, "auth/token/create", data)
            .await
            .auth
            .expect("auth")
            .client_token
    }

    /// Enable userpass at `auth/userpass/` and create the user `name` with `user` (its
    /// password and options), as root.
    pub async fn userpass_user(&self, name: &str, user: Value) {
        let mut mount = serde_json::Map::new();
        mount.insert("type".into(), Value::String("userpass".into()));
        self.ok(Operation::Update, "sys/auth/userpass", Value::Object(mount))
            .await;
        self.ok(
            Operation::Update,
            &format!("auth/userpass/users/{name}"),
            user,
        )
        .await;
    }

    /// A secret ID with no options for the AppRole role `role` at `auth/approle/`, as root.
    pub async fn secret_id(&self, role: &str) -> String {
        data(
            &self
                .ok(
                    Operation::Update,
                    &format!("auth/approle/role/{role}/secret-id"),
                    Value::Object(Default::default()),
                )
                .await,
        )["secret_id"]
            .as_str()
            .expect("secret_id")
            .to_string()
    }

    /// Every physical key and value, for before/after comparisons.
    pub async fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for key in self.storage.scan("").await.unwrap() {
            let v = self.storage.get(&key).await.unwrap().unwrap_or_default();
            out.push((key, v));
        }
        out
    }
}

pub fn data(resp: &Response) -> Value {
    Value::Object(resp.data_map().expect("data"))
}
