//! Per-tenant submit rate limits: a token bucket per tenant, counted in
//! recipients, so a tenant that submits faster than the engine should take it
//! gets 429 with `Retry-After` (backpressure) instead of slow requests.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use engine::model::TenantId;

/// One tenant's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Recipients that may be submitted now; refills at `rate` up to `burst`.
    tokens: f64,
    refilled: Instant,
}

/// The buckets of all tenants; no lock is held across an await, since taking
/// tokens is a single synchronous step.
#[derive(Debug)]
pub struct SubmitLimiter {
    /// Recipients per second; 0 disables the limit.
    rate: f64,
    /// Bucket size in recipients.
    burst: f64,
    buckets: DashMap<TenantId, Bucket>,
}

impl SubmitLimiter {
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: DashMap::new(),
        }
    }

    /// Takes `recipients` tokens from the tenant's bucket, or says how long to
    /// wait until they would be there. A batch larger than the bucket costs a
    /// full bucket, so it is slowed down rather than refused forever.
    pub fn take(&self, tenant: TenantId, recipients: usize, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let cost = (recipients as f64).min(self.burst);
        let mut bucket = self.buckets.entry(tenant).or_insert(Bucket {
            tokens: self.burst,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.refilled = now;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            return Ok(());
        }
        Err(Duration::from_secs_f64((cost - bucket.tokens) / self.rate))
    }
}

/// `Retry-After` in whole seconds, rounded up and at least 1 (0 would invite an
/// immediate retry that fails again).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_past_its_burst_waits_and_others_do_not() {
        let limiter = SubmitLimiter::new(100, 200);
        let now = Instant::now();
        let (a, b) = (TenantId(1), TenantId(2));

        assert!(limiter.take(a, 150, now).is_ok());
        let wait = limiter.take(a, 100, now).expect_err("over the burst");
        assert!(limiter.take(b, 200, now).is_ok(), "buckets are per tenant");

        assert_eq!(retry_after_secs(wait), 1);
        assert!(limiter.take(a, 100, now + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn a_batch_larger_than_the_bucket_passes_once_the_bucket_is_full() {
        let limiter = SubmitLimiter::new(10, 20);
        let now = Instant::now();

        assert!(limiter.take(TenantId(1), 500, now).is_ok());
        let wait = limiter.take(TenantId(1), 500, now).expect_err("empty");

        assert_eq!(retry_after_secs(wait), 2);
    }

    #[test]
    fn a_zero_rate_means_no_limit() {
        let limiter = SubmitLimiter::new(0, 0);
        assert!(limiter.take(TenantId(1), 1_000_000, Instant::now()).is_ok());
    }
}
