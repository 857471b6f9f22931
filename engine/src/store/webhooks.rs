//! The webhook outbox: events waiting to be posted to a tenant's webhook URL.

/// One queued event as the sender reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Increasing per installation; also the event id receivers deduplicate by
    /// (delivery is at least once).
    pub id: i64,
    /// The event as a JSON object.
    pub event: String,
    /// Failed posts so far; the backoff grows with it.
    pub attempts: i32,
}
