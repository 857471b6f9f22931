//! The `[tracking]` section: tracking and bounce domains, the token secret, IP
//! anonymization, machine-activity thresholds, the event write buffer and the
//! inbound SMTP listener for bounces and complaints.

use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::units::{ByteSize, Duration};
use crate::tracking::Anonymization;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackingConfig {
    /// Off: messages carry no tracking URLs, pixel, List-Unsubscribe or VERP.
    pub enabled: bool,
    /// Host of tracking URLs (`https://<domain>/t/...`); must reach the HTTP API.
    pub domain: String,
    /// Domain of VERP return paths and the mailto unsubscribe address. Empty: the
    /// campaign's envelope domain.
    pub bounce_domain: String,
    /// At least 32 bytes signing tracking tokens. Empty: generated once into
    /// `<data_dir>/tracking.key`; every node of a cluster needs the same one.
    #[serde(serialize_with = "super::api::serialize_optional_secret")]
    pub secret: Secret<String>,
    /// How much of a client IP is stored: "none", "truncate" (last octet, last
    /// 80 bits) or "drop".
    pub anonymize_ip: Anonymization,
    /// Clicks this soon after sending are flagged as link scanners.
    pub scanner_window: Duration,
    /// Events waiting for a write; when full, opens and clicks are dropped
    /// (counted) rather than slowing the endpoints. Unsubscribes wait.
    pub buffer: usize,
    /// Events per write.
    pub batch_size: usize,
    /// Longest an event waits for its write.
    pub flush_interval: Duration,
    /// Address of the SMTP listener that receives bounces and complaints sent to
    /// VERP addresses (the bounce domain's MX points here). Empty: off.
    pub inbound_listen: String,
    /// Concurrent inbound SMTP sessions; more are answered 421 and closed.
    pub inbound_max_connections: usize,
    /// Largest inbound message (DSNs carry the original message or its headers).
    pub inbound_max_message_size: ByteSize,
    /// Longest wait for a command or a chunk of message data before closing.
    pub inbound_timeout: Duration,
    /// Events per webhook post (a JSON array).
    pub webhook_batch: usize,
    /// How often the webhook sender looks for queued events.
    pub webhook_poll: Duration,
    /// Wait after a first failed post; doubled per failure up to `webhook_retry_max`.
    pub webhook_retry_first: Duration,
    pub webhook_retry_max: Duration,
    /// Longest a webhook post may take before it counts as failed.
    pub webhook_timeout: Duration,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            domain: "localhost".to_owned(),
            bounce_domain: String::new(),
            secret: Secret::new(String::new()),
            anonymize_ip: Anonymization::Truncate,
            scanner_window: Duration::from_secs(10),
            buffer: 65_536,
            batch_size: 1000,
            flush_interval: Duration::from_millis(200),
            inbound_listen: "127.0.0.1:2525".to_owned(),
            inbound_max_connections: 64,
            inbound_max_message_size: ByteSize::kib(10 * 1024),
            inbound_timeout: Duration::from_secs(60),
            webhook_batch: 100,
            webhook_poll: Duration::from_secs(1),
            webhook_retry_first: Duration::from_secs(5),
            webhook_retry_max: Duration::from_secs(3600),
            webhook_timeout: Duration::from_secs(10),
        }
    }
}
