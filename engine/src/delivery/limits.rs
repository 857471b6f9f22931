//! Per-destination limits, shared by all tenants because the receiving side sees
//! one sender: a ceiling on open connections and on messages per second for each
//! domain. A 421 or 4.7.x reply halves both for that domain (multiplicative
//! decrease); every success wins a little back (additive increase), so a throttled
//! domain recovers without operator action.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

/// The configured ceiling for a destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSettings {
    pub max_connections: u32,
    /// Messages per second; `f64::INFINITY` for none.
    pub max_rate: f64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            max_rate: f64::INFINITY,
        }
    }
}

/// After a throttle signal, further signals within this window are the same event
/// seen by other in-flight messages and must not halve the limits again.
const THROTTLE_COOLDOWN: Duration = Duration::from_secs(2);
/// The lowest rate a throttled domain falls to, so it still drains.
const MIN_RATE: f64 = 0.5;
/// Successes needed to allow one more connection back.
const SUCCESSES_PER_CONNECTION: u32 = 50;

/// All destinations' limiters, created on first use.
#[derive(Debug, Default)]
pub struct DestinationLimits {
    limiters: DashMap<String, Arc<DomainLimiter>>,
    default: LimitSettings,
    overrides: HashMap<String, LimitSettings>,
}

impl DestinationLimits {
    pub fn new(default: LimitSettings, overrides: HashMap<String, LimitSettings>) -> Self {
        Self {
            limiters: DashMap::new(),
            default,
            overrides,
        }
    }

    /// The limiter for `domain`. The map guard is dropped before returning, so
    /// callers can hold the `Arc` across awaits.
    pub fn for_domain(&self, domain: &str) -> Arc<DomainLimiter> {
        if let Some(found) = self.limiters.get(domain) {
            return Arc::clone(found.value());
        }
        let settings = self.overrides.get(domain).copied().unwrap_or(self.default);
        let entry = self
            .limiters
            .entry(domain.to_owned())
            .or_insert_with(|| Arc::new(DomainLimiter::new(settings)));
        Arc::clone(entry.value())
    }
}

#[derive(Debug)]
struct Bucket {
    /// Current allowed rate (messages/s), between MIN_RATE and the ceiling.
    rate: f64,
    /// The instant at which the next message may go; reservations push it forward
    /// (a virtual-time scheduler: fair in arrival order, no busy waiting).
    next_free: Instant,
    last_throttle: Option<Instant>,
    successes: u32,
}

/// One destination's limits and their current adaptive values.
#[derive(Debug)]
pub struct DomainLimiter {
    settings: LimitSettings,
    /// Adaptive connection ceiling, 1..=settings.max_connections.
    connection_limit: AtomicU32,
    open: Arc<AtomicU32>,
    bucket: Mutex<Bucket>,
}

/// An open-connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    open: Arc<AtomicU32>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl DomainLimiter {
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            settings,
            connection_limit: AtomicU32::new(settings.max_connections.max(1)),
            open: Arc::new(AtomicU32::new(0)),
            bucket: Mutex::new(Bucket {
                rate: settings.max_rate,
                next_free: Instant::now(),
                last_throttle: None,
                successes: 0,
            }),
        }
    }

    /// A slot for one more connection, if the current limit allows it.
    pub fn try_open(&self) -> Option<ConnectionPermit> {
        let limit = self.connection_limit.load(Ordering::Acquire);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < limit).then_some(open + 1)
            })
            .ok()
            .map(|_| ConnectionPermit {
                open: Arc::clone(&self.open),
            })
    }

    pub fn open_connections(&self) -> u32 {
        self.open.load(Ordering::Acquire)
    }

    pub fn connection_limit(&self) -> u32 {
        self.connection_limit.load(Ordering::Acquire)
    }

    /// Whether a connection beyond the current limit should close (after its
    /// current message) because the limit was lowered.
    pub fn over_limit(&self) -> bool {
        self.open_connections() > self.connection_limit()
    }

    pub fn current_rate(&self) -> f64 {
        self.lock().rate
    }

    /// Waits until the rate allows one more message.
    pub async fn acquire_send(&self) {
        let wait_until = {
            let mut bucket = self.lock();
            if !bucket.rate.is_finite() {
                return;
            }
            let now = Instant::now();
            let slot = bucket.next_free.max(now);
            bucket.next_free = slot + Duration::from_secs_f64(1.0 / bucket.rate);
            slot
        };
        tokio::time::sleep_until(wait_until).await;
    }

    /// The destination accepted a message: win back a little of what a throttle
    /// took.
    pub fn on_success(&self) {
        let mut bucket = self.lock();
        if bucket.rate < self.settings.max_rate {
            bucket.rate = (bucket.rate * 1.02 + 0.1).min(self.settings.max_rate);
        }
        bucket.successes += 1;
        if bucket.successes >= SUCCESSES_PER_CONNECTION {
            bucket.successes = 0;
            let max = self.settings.max_connections.max(1);
            let _ = self
                .connection_limit
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                    (l < max).then_some(l + 1)
                });
        }
    }

    /// The destination asked us to slow down: halve connections and rate, once per
    /// cooldown window.
    pub fn on_throttle(&self) {
        let mut bucket = self.lock();
        let now = Instant::now();
        if bucket
            .last_throttle
            .is_some_and(|t| now.duration_since(t) < THROTTLE_COOLDOWN)
        {
            return;
        }
        bucket.last_throttle = Some(now);
        bucket.successes = 0;
        let open = self.open_connections().max(1) as f64;
        // An unlimited rate becomes a measured one: what the open connections
        // were doing is unknown, so start from a modest figure per connection.
        let base = if bucket.rate.is_finite() {
            bucket.rate
        } else {
            open * 10.0
        };
        bucket.rate = (base / 2.0).max(MIN_RATE);
        let _ = self
            .connection_limit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                Some((l / 2).max(1))
            });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // A panic while holding this lock leaves plain numbers behind; keep going.
        self.bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_connections: u32, max_rate: f64) -> DomainLimiter {
        DomainLimiter::new(LimitSettings {
            max_connections,
            max_rate,
        })
    }

    #[test]
    fn connections_stop_at_the_limit_and_free_on_drop() {
        let l = limiter(2, f64::INFINITY);
        let a = l.try_open().expect("first");
        let _b = l.try_open().expect("second");
        assert!(l.try_open().is_none());
        drop(a);
        assert!(l.try_open().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_halves_connections_and_rate_once_per_cooldown() {
        let l = limiter(8, 100.0);
        l.on_throttle();
        l.on_throttle(); // the same event seen by another message
        assert_eq!((l.connection_limit(), l.current_rate()), (4, 50.0));
        tokio::time::advance(THROTTLE_COOLDOWN + Duration::from_millis(1)).await;
        l.on_throttle();
        assert_eq!((l.connection_limit(), l.current_rate()), (2, 25.0));
    }

    #[tokio::test(start_paused = true)]
    async fn successes_win_back_the_limits_up_to_the_ceiling() {
        let l = limiter(4, 100.0);
        l.on_throttle();
        for _ in 0..2000 {
            l.on_success();
        }
        assert_eq!((l.connection_limit(), l.current_rate()), (4, 100.0));
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_spaced_by_the_rate() {
        let l = limiter(1, 10.0);
        let start = Instant::now();
        for _ in 0..11 {
            l.acquire_send().await;
        }
        // 11 sends at 10/s: the first immediately, then one every 100 ms.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn domains_share_one_limiter_and_overrides_apply() {
        let mut overrides = HashMap::new();
        overrides.insert(
            "slow.example".to_owned(),
            LimitSettings {
                max_connections: 1,
                max_rate: 1.0,
            },
        );
        let limits = DestinationLimits::new(LimitSettings::default(), overrides);
        let a = limits.for_domain("slow.example");
        let b = limits.for_domain("slow.example");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.connection_limit(), 1);
        assert_eq!(limits.for_domain("other.example").connection_limit(), 10);
    }
}
