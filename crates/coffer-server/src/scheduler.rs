//! The one scheduler for background work: lease expiry, the rollback pass, and every mounted
//! engine's periodic jobs.
//!
//! Invariants kept here:
//! - Work runs only while the node is **active** (one flag, which a later HA layer switches)
//!   and **unsealed**; a sealed or standby node runs nothing.
//! - A job's next due time is stored in the barrier (`sys/jobs/<mount uuid>/<job name>`), so a
//!   run missed while the server was down or sealed happens **once** when it is back, not once
//!   per missed interval; a mount's first run comes one interval after it is first seen.
//! - Time is the core's [`Clock`]: tests move a `ManualClock` and call [`Scheduler::run_due`]
//!   instead of waiting; the server calls it on a short tick.

use crate::barrier::{Barrier, BarrierView};
use crate::leases::{LeaseManager, EXPIRY_BATCH};
use crate::mounts::Router;
use crate::rollback::Rollbacks;
use coffer_sdk::clock::Clock;
use coffer_sdk::engine::MountCtx;
use coffer_sdk::view::View;
use coffer_sdk::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What one [`Scheduler::run_due`] pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Leases whose expiry was attempted.
    pub leases_expired: usize,
    /// Rollback entries still waiting after the pass.
    pub rollbacks_remaining: usize,
    /// `<mount path><job name>` of every job run, in order.
    pub jobs_run: Vec<String>,
}

/// Runs background work for the core.
pub struct Scheduler {
    view: BarrierView,
    barrier: Arc<Barrier>,
    clock: Arc<dyn Clock>,
    router: Arc<Router>,
    leases: Arc<LeaseManager>,
    rollbacks: Arc<Rollbacks>,
    active: AtomicBool,
}

impl Scheduler {
    /// A scheduler over the core's parts; the node starts active.
    pub fn new(
        barrier: Arc<Barrier>,
        clock: Arc<dyn Clock>,
        router: Arc<Router>,
        leases: Arc<LeaseManager>,
        rollbacks: Arc<Rollbacks>,
    ) -> Scheduler {
        Scheduler {
            view: BarrierView::new(barrier.clone(), "sys/jobs/"),
            barrier,
            clock,
            router,
            leases,
            rollbacks,
            active: AtomicBool::new(true),
        }
    }

    /// Whether this node runs background work (a standby does not).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Make this node active or standby.
    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
    }

    /// Run everything that is due now. Does nothing while sealed or standby.
    pub async fn run_due(&self) -> Result<PassReport> {
        let mut report = PassReport::default();
        if !self.is_active() || self.barrier.is_sealed() {
            return Ok(report);
        }
        // A full page means more are due: go again at once.
        loop {
            let n = self.leases.expire_due(EXPIRY_BATCH).await?;
            report.leases_expired += n;
            if n < EXPIRY_BATCH {
                break;
            }
        }
        report.rollbacks_remaining = self.rollbacks.pass(&self.router, None).await?;
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        for mounted in self.router.table().all().iter() {
            for job in &mounted.backend.lifecycle.jobs {
                let key = format!("{}/{}", mounted.entry.uuid, job.name);
                let interval_ms = i64::try_from(job.interval.as_millis()).unwrap_or(i64::MAX);
                let next_due = match self.view.get(&key).await? {
                    Some(bytes) => String::from_utf8_lossy(&bytes).parse::<i64>().ok(),
                    None => None,
                };
                let Some(next_due) = next_due else {
                    // First sight of this job: its first run is one interval from now.
                    let first = now_ms.saturating_add(interval_ms);
                    self.view.put(&key, first.to_string().into_bytes()).await?;
                    continue;
                };
                if now_ms < next_due {
                    continue;
                }
                // The next run is counted from now, so missed runs collapse into this one; it
                // is stored before the job runs, so a crash mid-run does not repeat it at once.
                let next = now_ms.saturating_add(interval_ms);
                self.view.put(&key, next.to_string().into_bytes()).await?;
                let ctx = MountCtx {
                    view: mounted.view.clone(),
                    clock: self.clock.clone(),
                    mount: mounted.info.clone(),
                };
                if let Err(e) = (job.run)(ctx).await {
                    tracing::warn!(mount = %mounted.route_path, job = job.name, error = %e, "job failed; it runs again at its next time");
                }
                report
                    .jobs_run
                    .push(format!("{}{}", mounted.route_path, job.name));
            }
        }
        Ok(report)
    }

    /// Forget the schedule of a mount that is gone.
    pub async fn forget_mount(&self, uuid: &str) -> Result<()> {
        for name in self.view.list(&format!("{uuid}/")).await? {
            self.view.delete(&format!("{uuid}/{name}")).await?;
        }
        Ok(())
    }
}
