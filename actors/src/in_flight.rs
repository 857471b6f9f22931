//! In-flight accounting for a running campaign: a bounded number of recipients may
//! be between "read from the store" and "outcome durably written". That bound is
//! what keeps memory flat, and it is also the documented upper bound on messages
//! sent twice after a crash (only these can be delivered without a stored outcome).
//!
//! It also remembers which recipients left the set since the dispatcher's last
//! read: a batch is a snapshot, and a row that was in flight when it was read may
//! have its outcome stored (and leave the set) before the dispatcher reaches it;
//! without that memory the row would look pending and be sent again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use engine::model::RecipientId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The in-flight set of one campaign.
#[derive(Debug)]
pub struct InFlightSet {
    slots: Arc<Semaphore>,
    ids: Mutex<Ids>,
    limit: usize,
}

#[derive(Debug, Default)]
struct Ids {
    in_flight: HashSet<RecipientId>,
    /// Left the set since the last `begin_read`; their rows in the batch being
    /// handed out are stale.
    left: HashSet<RecipientId>,
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
            ids: Mutex::new(Ids {
                in_flight: HashSet::with_capacity(limit.max(1)),
                left: HashSet::new(),
            }),
            limit: limit.max(1),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn len(&self) -> usize {
        self.lock().in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: RecipientId) -> bool {
        self.lock().in_flight.contains(&id)
    }

    /// Call just before reading a batch of due recipients: outcomes stored before
    /// this point are in what the read returns, so only later departures make a
    /// row of that batch stale. (One dispatcher per campaign reads at a time.)
    pub fn begin_read(&self) {
        self.lock().left.clear();
    }

    /// Waits for a free slot, then marks `id` in flight. Returns `None` when `id`
    /// is already in flight (a later pass read it again before its outcome landed)
    /// or left the set since the last `begin_read` (its row is stale).
    pub async fn enter(self: &Arc<Self>, id: RecipientId) -> Option<InFlight> {
        let permit = Arc::clone(&self.slots).acquire_owned().await.ok()?;
        let mut ids = self.lock();
        if ids.left.contains(&id) || !ids.in_flight.insert(id) {
            return None;
        }
        drop(ids);
        Some(InFlight {
            id,
            set: Arc::clone(self),
            _permit: permit,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ids> {
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
        let mut ids = self.set.lock();
        ids.in_flight.remove(&self.id);
        ids.left.insert(self.id);
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
        set.begin_read();
        assert!(set.enter(RecipientId(1)).await.is_some());
    }

    #[tokio::test]
    async fn a_row_that_left_the_set_after_the_read_is_stale() {
        let set = InFlightSet::new(4);
        set.begin_read();
        let guard = set.enter(RecipientId(1)).await.expect("free");
        set.begin_read(); // the next batch still shows row 1 as pending ...
        drop(guard); // ... but its outcome is stored before the dispatcher gets to it
        assert!(!set.contains(RecipientId(1)));
        assert!(set.enter(RecipientId(1)).await.is_none(), "sent twice");
        set.begin_read(); // a read after the outcome was stored is current
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
