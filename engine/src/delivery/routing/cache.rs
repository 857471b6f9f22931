//! The per-domain answer cache: a campaign sends to the same few thousand
//! domains over and over, and each DNS round trip would otherwise sit in front
//! of every new SMTP session.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::Destination;
use crate::smtp::DeliveryError;

/// A cached outcome: destinations, or the error to repeat until it expires.
pub(super) type Outcome = Result<Vec<Destination>, DeliveryError>;

#[derive(Debug)]
struct Entry {
    outcome: Outcome,
    expires: Instant,
}

/// Bounded map of domain → outcome. A plain mutex suffices: it is taken only for
/// a map operation, never across an `.await`, and lookups happen once per new
/// session rather than once per message.
#[derive(Debug)]
pub(super) struct DestinationCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Upper bound on domains held, so a campaign to millions of distinct
    /// domains cannot grow memory without limit. Zero disables caching.
    capacity: usize,
}

impl DestinationCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The cached outcome for `domain` if it has not expired at `now`.
    pub(super) fn get(&self, domain: &str, now: Instant) -> Option<Outcome> {
        let entries = self.lock();
        let entry = entries.get(domain)?;
        (entry.expires > now).then(|| entry.outcome.clone())
    }

    /// Stores `outcome` until `expires`; an already expired outcome is not stored.
    pub(super) fn insert(&self, domain: String, outcome: Outcome, expires: Instant, now: Instant) {
        if self.capacity == 0 || expires <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&domain) {
            make_room(&mut entries, self.capacity, now);
        }
        entries.insert(domain, Entry { outcome, expires });
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written
        // (each operation is a single map call), so the data is still valid.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops expired entries; when none have expired, drops the one that would
/// expire first, the entry least worth keeping. The scan is linear, but it runs
/// only when the cache is full and costs far less than the DNS lookup that led
/// here.
fn make_room(entries: &mut HashMap<String, Entry>, capacity: usize, now: Instant) {
    entries.retain(|_, entry| entry.expires > now);
    if entries.len() < capacity {
        return;
    }
    let soonest = entries
        .iter()
        .min_by_key(|(_, entry)| entry.expires)
        .map(|(domain, _)| domain.clone());
    if let Some(domain) = soonest {
        entries.remove(&domain);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn found(n: u16) -> Outcome {
        Ok(vec![Destination {
            host: format!("mx{n}.example"),
            addr: ([192, 0, 2, 1], n).into(),
            tls: None,
        }])
    }

    #[test]
    fn an_entry_is_served_until_it_expires() {
        let cache = DestinationCache::new(10);
        let now = Instant::now();
        cache.insert(
            "a.example".into(),
            found(1),
            now + Duration::from_secs(5),
            now,
        );

        assert_eq!(cache.get("a.example", now), Some(found(1)));
        assert_eq!(cache.get("a.example", now + Duration::from_secs(5)), None);
    }

    #[test]
    fn the_cache_never_holds_more_domains_than_its_capacity() {
        let cache = DestinationCache::new(3);
        let now = Instant::now();
        for n in 0..10u16 {
            let expires = now + Duration::from_secs(100 + u64::from(n));
            cache.insert(format!("d{n}.example"), found(n), expires, now);
        }

        assert_eq!(cache.len(), 3);
        // The entries expiring first were the ones evicted.
        assert!(cache.get("d9.example", now).is_some());
        assert!(cache.get("d0.example", now).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let cache = DestinationCache::new(2);
        let now = Instant::now();
        cache.insert(
            "old.example".into(),
            found(1),
            now + Duration::from_secs(1),
            now,
        );
        cache.insert(
            "keep.example".into(),
            found(2),
            now + Duration::from_secs(60),
            now,
        );
        let later = now + Duration::from_secs(2);
        cache.insert(
            "new.example".into(),
            found(3),
            later + Duration::from_secs(60),
            later,
        );

        assert!(cache.get("keep.example", later).is_some());
        assert!(cache.get("new.example", later).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_zero_capacity_cache_stores_nothing() {
        let cache = DestinationCache::new(0);
        let now = Instant::now();
        cache.insert(
            "a.example".into(),
            found(1),
            now + Duration::from_secs(5),
            now,
        );

        assert_eq!(cache.get("a.example", now), None);
    }
}
