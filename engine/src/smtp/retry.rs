//! When to try a deferred message again: exponential backoff with jitter, up to a
//! maximum age after which the message fails.

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub first_delay: Duration,
    /// Each further delay is the previous one times this.
    pub factor: f64,
    /// No delay is longer than this.
    pub max_delay: Duration,
    /// A message first attempted longer ago than this fails instead of being deferred.
    pub max_age: Duration,
    /// Each delay is spread by up to ± this share, so that messages deferred
    /// together (a greylisting domain) do not come back together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(60),
            factor: 2.0,
            max_delay: Duration::from_secs(3600),
            max_age: Duration::from_secs(3 * 24 * 3600),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempts` failed attempts (1 = the first attempt failed),
    /// before jitter.
    pub fn base_delay(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(64) as i32;
        let secs = self.first_delay.as_secs_f64() * self.factor.powi(exponent);
        Duration::from_secs_f64(secs.min(self.max_delay.as_secs_f64()))
    }

    /// When to try again, or `None` when the message has been failing for longer
    /// than the maximum age. `unit` is a number in [0, 1) that picks the jitter.
    pub fn next_attempt(
        &self,
        attempts: u32,
        first_attempt: DateTime<Utc>,
        now: DateTime<Utc>,
        unit: f64,
    ) -> Option<DateTime<Utc>> {
        let base = self.base_delay(attempts).as_secs_f64();
        let spread = base * self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let delay = chrono::Duration::milliseconds(((base + spread) * 1000.0) as i64);
        let next = now + delay;
        let max_age = chrono::Duration::from_std(self.max_age).ok()?;
        (next - first_attempt <= max_age).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=8).map(|a| policy.base_delay(a).as_secs()).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn jitter_stays_within_its_share() {
        let policy = RetryPolicy::default();
        for unit in [0.0, 0.25, 0.5, 0.999] {
            let next = policy
                .next_attempt(1, t0(), t0(), unit)
                .expect("within age");
            let secs = (next - t0()).num_seconds();
            assert!((48..=72).contains(&secs), "{secs}");
        }
    }

    #[test]
    fn a_message_older_than_the_maximum_age_fails() {
        let policy = RetryPolicy::default();
        let now = t0() + chrono::Duration::days(3) - chrono::Duration::minutes(30);
        assert!(policy.next_attempt(20, t0(), now, 0.5).is_none());
        let earlier = t0() + chrono::Duration::days(2);
        assert!(policy.next_attempt(20, t0(), earlier, 0.5).is_some());
    }
}
