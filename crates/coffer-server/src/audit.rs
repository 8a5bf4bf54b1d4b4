//! The pipeline's two audit hook points, where audit devices attach.
//!
//! - **Before the handler** ([`AuditHook::request`]): the request as it will be logged, after
//!   authentication and the policy decision. An error refuses the request (the handler does
//!   not run), so a device that cannot write fails closed, as Vault's do.
//! - **After the response is final** ([`AuditHook::response`]): for every request that reached
//!   the pipeline, with the response as the client gets it (a wrapped response is logged
//!   wrapped) or the error.
//!
//! Hashing secret values (Vault's HMAC of request and response fields) is the device's job;
//! the hook hands over the values as they are.

use coffer_sdk::{Error, Operation, Response};
use serde_json::{Map, Value};
use std::net::SocketAddr;

/// A request as an audit device sees it.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    pub id: String,
    pub operation: Operation,
    /// The full path, e.g. `secret/data/app`.
    pub path: String,
    /// The mount that served it (empty when it matched none).
    pub mount_point: String,
    pub mount_type: String,
    /// The caller's token accessor and policies, once authenticated.
    pub accessor: Option<String>,
    pub policies: Vec<String>,
    pub remote_addr: Option<SocketAddr>,
    pub data: Map<String, Value>,
    pub wrap_ttl: Option<std::time::Duration>,
}

/// The outcome an audit device sees.
pub enum AuditOutcome<'a> {
    Response(&'a Response),
    Error(&'a Error),
}

/// An audit device, or anything else that must see every request.
#[async_trait::async_trait]
pub trait AuditHook: Send + Sync {
    /// Before the handler runs. An error refuses the request.
    async fn request(&self, request: &AuditRequest) -> Result<(), Error>;
    /// After the response is final.
    async fn response(&self, request: &AuditRequest, outcome: AuditOutcome<'_>);
}
