//! The contract between Coffer's request pipeline and its engines: requests, responses,
//! errors, the storage view an engine writes to, the clock, and path declarations.
//!
//! Invariant: nothing here does authentication, policy or audit. An engine built on this
//! crate cannot check policy or write audit records itself; the pipeline does that, once.

pub mod catalog;
pub mod clock;
pub mod duration;
pub mod engine;
pub mod error;
pub mod framework;
pub mod host;
pub mod logical;
pub mod view;

pub use engine::{Engine, MountCtx, RollbackEntry};
pub use error::{Error, Result};
pub use framework::{Backend, Ctx, MountInfo, PathSpec};
pub use logical::{Operation, Request, Response};
pub use view::View;

/// Re-exported so engines derive input schemas with the same version.
pub use schemars;
