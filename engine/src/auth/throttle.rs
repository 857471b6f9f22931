//! Sliding-window rate limits on login attempts and SMS codes, keyed by user name
//! or client address. In memory, per process: a limit that counts on one node
//! only is still a limit, and the lockout (stored with the user) is shared.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Keys tracked at once. Past it the oldest windows are forgotten first, so a
/// flood of new keys cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Throttle {
    /// Times of the hits inside the window, oldest first, per key. A std mutex:
    /// held for one map operation, never across an `.await`.
    hits: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl Throttle {
    /// Counts a hit on `key` at `now` unless `limit` hits already fell within
    /// `window`; then returns when the oldest leaves it (the time to wait until).
    pub fn hit(
        &self,
        key: &str,
        limit: usize,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<(), DateTime<Utc>> {
        let mut map = self
            .hits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, hits| hits.back().is_some_and(|t| *t + window > now));
            if map.len() >= MAX_KEYS {
                return Err(now + window);
            }
        }
        let hits = map.entry(key.to_owned()).or_default();
        while hits.front().is_some_and(|t| *t + window <= now) {
            hits.pop_front();
        }
        if hits.len() >= limit {
            return Err(hits.front().map_or(now + window, |t| *t + window));
        }
        hits.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_limit_per_window_and_then_waits_for_the_oldest_hit() {
        let throttle = Throttle::default();
        let start = DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
        let window = chrono::Duration::minutes(15);
        for i in 0..3 {
            let at = start + chrono::Duration::minutes(i);
            assert_eq!(throttle.hit("ip:192.0.2.1", 3, window, at), Ok(()));
        }
        let later = start + chrono::Duration::minutes(5);
        assert_eq!(
            throttle.hit("ip:192.0.2.1", 3, window, later),
            Err(start + window)
        );
        assert_eq!(
            throttle.hit("ip:192.0.2.2", 3, window, later),
            Ok(()),
            "per key"
        );
        assert_eq!(
            throttle.hit("ip:192.0.2.1", 3, window, start + window),
            Ok(())
        );
    }
}
