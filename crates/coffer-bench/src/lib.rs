//! Coffer's benchmark harness.
//!
//! Every figure is a ratio between Coffer and a baseline measured in the same run on the same
//! machine, so the figures travel between machines of different speed:
//!
//! * `kv-read`: KV v2 reads through Coffer versus a bare hyper server that replays Coffer's own
//!   response bytes ([`canned`]) — what Coffer's request path costs over plain HTTP.
//! * `vs-rustyvault`: the same KV read rate versus RustyVault 0.2.1's, when it is installed
//!   ([`rustyvault`]).
//! * `kv-write`: durable KV v2 writes on file storage versus the same binary's in-memory write
//!   rate — what durability costs once group commit has amortised the fsyncs.
//! * `approle-login`: AppRole logins per second versus Vault's published dev-server rate (a
//!   constant), with this machine's bare-HTTP ceiling for the same exchange measured alongside
//!   ([`login`]).
//! * `leases`: a composite of lease creation, restart-to-first-answer, memory per idle lease,
//!   `revoke-prefix` and background expiry on durable storage ([`leases`]), each against its
//!   own absolute target.
//!
//! The load generator ([`load`]) is a closed loop over persistent HTTP/1.1 connections, bounded
//! in both request count and time, with warm-up excluded from the figures.

pub mod canned;
pub mod cpu;
pub mod error;
pub mod figures;
pub mod http;
pub mod latency;
pub mod leases;
pub mod load;
pub mod login;
pub mod process;
pub mod report;
pub mod rustyvault;
pub mod turns;
pub mod wrk;

pub use error::BenchError;
