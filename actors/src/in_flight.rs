//! In-flight accounting for a running campaign: a bounded number of recipients may
//! be between "read from the store" and "outcome durably written". That bound is
//! what keeps memory flat, and it is also the documented upper bound on messages
//! sent twice after a crash (only these can be delivered without a stored outcome).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use engine::model::RecipientId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The in-flight set of one campaign.
#[derive(Debug)]
pub struct InFlightSet {
    slots: Arc<Semaphore>,
    ids: Mutex<HashSet<RecipientId>>,
    limit: usize,
}

/// One recipient in flight; dropping it (after its outcome is stored, or when the
/// message is abandoned) frees the slot and lets the recipient be read again.
#[derive(Debug)]
pub struct InFlight {
    id: RecipientId,
    set: Arc<InFlightSet>,
    _permit: OwnedSemaphorePermit,
}

impl InFlightSet {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(limit.max(1))),
            ids: Mutex::new(HashSet::with_capacity(limit.max(1))),
            limit: limit.max(1),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: RecipientId) -> bool {
        self.lock().contains(&id)
    }

    /// The ids in flight now. Taken before reading due recipients: a row in flight
    /// then may have its outcome stored (and leave the set) while the read is under
    /// way or the batch waits for slots, so the batch's copy of it is stale.
    pub fn snapshot(&self) -> HashSet<RecipientId> {
        self.lock().clone()
    }

    /// Waits for a free slot, then marks `id` in flight. Returns `None` when `id`
    /// is already in flight (a later pass read it again before its outcome landed).
    pub async fn enter(self: &Arc<Self>, id: RecipientId) -> Option<InFlight> {
        let permit = Arc::clone(&self.slots).acquire_owned().await.ok()?;
        if !self.lock().insert(id) {
            return None;
        }
        Some(InFlight {
            id,
            set: Arc::clone(self),
            _permit: permit,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<RecipientId>> {
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl InFlight {
    pub fn id(&self) -> RecipientId {
        self.id
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_recipient_is_in_flight_once_until_its_guard_drops() {
        let set = InFlightSet::new(4);
        let guard = set.enter(RecipientId(1)).await.expect("free");
        assert!(set.contains(RecipientId(1)));
        assert!(set.enter(RecipientId(1)).await.is_none());
        drop(guard);
        assert!(!set.contains(RecipientId(1)));
        assert!(set.enter(RecipientId(1)).await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn entering_waits_while_the_set_is_full() {
        let set = InFlightSet::new(1);
        let first = set.enter(RecipientId(1)).await.expect("free");
        let waiting = {
            let set = Arc::clone(&set);
            tokio::spawn(async move { set.enter(RecipientId(2)).await.map(|g| g.id()) })
        };
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(waiting.await.expect("join"), Some(RecipientId(2)));
    }
}
