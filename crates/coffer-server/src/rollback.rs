//! Rollback entries: the host's half of an engine's side effects outside Coffer.
//!
//! Before a handler does something outside Coffer (creates a database user, calls a rotation
//! function), it records an entry through its request's [`RollbackLog`]. The entry is written
//! durably to `sys/rollback/<mount uuid>/<entry id>` before `record` returns. Then:
//! - the request succeeds: the host deletes whatever entries it left;
//! - the request fails: the host calls the engine's rollback for each entry it left, at once;
//! - the server dies first: the entry outlives the request, and the rollback pass (after every
//!   unseal, then on the scheduler's ticks) calls the engine's rollback for it.
//!
//! A rollback that fails is retried with exponential backoff (capped at five minutes) for as
//! long as it takes; unlike Vault's WAL rollback there is no age after which an entry is given
//! up. An entry whose request is still running is never rolled back by the pass (the host keeps
//! the ids of in-flight entries in memory; after a restart there are none).

use crate::barrier::{Barrier, BarrierView};
use crate::mounts::{Mounted, Router};
use chrono::{DateTime, Utc};
use coffer_sdk::clock::Clock;
use coffer_sdk::engine::{MountCtx, RollbackEntry, RollbackLog};
use coffer_sdk::view::{get_json, to_json, View};
use coffer_sdk::{Error, Result};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// A stored rollback entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    kind: String,
    data: Value,
    recorded: DateTime<Utc>,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    next_attempt: Option<DateTime<Utc>>,
    #[serde(default)]
    last_error: Option<String>,
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs((1u64 << attempts.min(9)).min(300))
}

/// Every mount's rollback entries.
pub struct Rollbacks {
    view: BarrierView,
    clock: Arc<dyn Clock>,
    /// Keys of entries whose request is still running.
    in_flight: Mutex<HashSet<String>>,
}

impl Rollbacks {
    /// Rollback entries under `sys/rollback/`.
    pub fn new(barrier: Arc<Barrier>, clock: Arc<dyn Clock>) -> Rollbacks {
        Rollbacks {
            view: BarrierView::new(barrier, "sys/rollback/"),
            clock,
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// The log one request on `mounted` records into.
    pub fn request_log(self: &Arc<Self>, mounted: &Arc<Mounted>) -> Arc<RequestLog> {
        Arc::new(RequestLog {
            rollbacks: self.clone(),
            mounted: mounted.clone(),
            keys: Mutex::new(Vec::new()),
        })
    }

    /// Call `mounted`'s rollback for the stored entry `key`; on failure, schedule a retry.
    /// Returns whether the entry is gone.
    async fn roll_back(&self, mounted: &Mounted, key: &str) -> Result<bool> {
        match get_json::<Stored>(&self.view, key).await? {
            Some(stored) => self.roll_back_stored(mounted, key, stored).await,
            None => Ok(true),
        }
    }

    /// [`Rollbacks::roll_back`] for an entry already read.
    async fn roll_back_stored(
        &self,
        mounted: &Mounted,
        key: &str,
        mut stored: Stored,
    ) -> Result<bool> {
        let Some(rollback) = mounted.backend.lifecycle.rollback.clone() else {
            return Err(Error::Internal(format!(
                "mount {} left rollback entries but declares no rollback",
                mounted.route_path
            )));
        };
        let ctx = MountCtx {
            view: mounted.view.clone(),
            clock: self.clock.clone(),
            mount: mounted.info.clone(),
        };
        let entry = RollbackEntry {
            kind: stored.kind.clone(),
            data: stored.data.clone(),
        };
        match rollback(ctx, entry).await {
            Ok(()) => {
                self.view.delete(key).await?;
                Ok(true)
            }
            Err(e) => {
                stored.attempts += 1;
                stored.last_error = Some(e.to_string());
                let wait = chrono::Duration::from_std(backoff(stored.attempts))
                    .unwrap_or(chrono::Duration::MAX);
                stored.next_attempt = self.clock.now().checked_add_signed(wait);
                tracing::warn!(mount = %mounted.route_path, attempts = stored.attempts, error = %e, "rollback failed; will retry");
                self.view.put(key, to_json(&stored)?).await?;
                Ok(false)
            }
        }
    }

    /// Roll back every entry left behind by a request that is no longer running and whose
    /// retry time has come, for the mounts in `router` (or only `only_uuid`). Returns how many
    /// entries remain (failed, not yet due, or of a mount that is not mounted).
    pub async fn pass(&self, router: &Router, only_uuid: Option<&str>) -> Result<usize> {
        let table = router.table();
        let now = self.clock.now();
        let mut remaining = 0;
        for mount_dir in self.view.list("").await? {
            let uuid = mount_dir.trim_end_matches('/');
            if only_uuid.is_some_and(|u| u != uuid) {
                continue;
            }
            let mounted = table.all().iter().find(|m| m.entry.uuid == uuid).cloned();
            for id in self.view.list(&mount_dir).await? {
                let key = format!("{mount_dir}{id}");
                if self.in_flight.lock().contains(&key) {
                    continue;
                }
                let Some(mounted) = &mounted else {
                    remaining += 1;
                    continue;
                };
                // One read: the entry both says whether it is due and is what is rolled back.
                let Some(stored) = get_json::<Stored>(&self.view, &key).await? else {
                    remaining += 1;
                    continue;
                };
                if stored.next_attempt.is_some_and(|t| t > now)
                    || !self.roll_back_stored(mounted, &key, stored).await?
                {
                    remaining += 1;
                }
            }
        }
        Ok(remaining)
    }
}

/// One request's rollback log.
pub struct RequestLog {
    rollbacks: Arc<Rollbacks>,
    mounted: Arc<Mounted>,
    /// Keys this request recorded and has not cleared.
    keys: Mutex<Vec<String>>,
}

impl RequestLog {
    /// The request is over: forget its entries if it succeeded, roll them back if not.
    pub async fn finish(&self, succeeded: bool) {
        let keys = std::mem::take(&mut *self.keys.lock());
        for key in keys {
            let result = if succeeded {
                self.rollbacks.view.delete(&key).await.map(|_| true)
            } else {
                self.rollbacks.roll_back(&self.mounted, &key).await
            };
            if let Err(e) = result {
                // The entry stays stored; the rollback pass takes it from here.
                tracing::warn!(error = %e, "finishing a rollback entry failed; the rollback pass will retry");
            }
            self.rollbacks.in_flight.lock().remove(&key);
        }
    }
}

#[async_trait::async_trait]
impl RollbackLog for RequestLog {
    async fn record(&self, entry: RollbackEntry) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let key = format!("{}/{id}", self.mounted.entry.uuid);
        let stored = Stored {
            kind: entry.kind,
            data: entry.data,
            recorded: self.rollbacks.clock.now(),
            attempts: 0,
            next_attempt: None,
            last_error: None,
        };
        // In flight before it is stored, so no pass can see it without knowing it is live.
        self.rollbacks.in_flight.lock().insert(key.clone());
        if let Err(e) = self.rollbacks.view.put(&key, to_json(&stored)?).await {
            self.rollbacks.in_flight.lock().remove(&key);
            return Err(e);
        }
        self.keys.lock().push(key);
        Ok(id)
    }

    async fn clear(&self, id: &str) -> Result<()> {
        let key = format!("{}/{id}", self.mounted.entry.uuid);
        self.rollbacks.view.delete(&key).await?;
        self.keys.lock().retain(|k| *k != key);
        self.rollbacks.in_flight.lock().remove(&key);
        Ok(())
    }
}
