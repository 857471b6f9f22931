//! Every metric Broadside exports, declared in one place with what it means, and
//! the Prometheus exporter. Label values are bounded: tenants are few, outcomes are
//! a fixed set, and domains are the configured top domains plus `other`.

use std::collections::HashSet;
use std::net::SocketAddr;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::PrometheusBuilder;

/// Recipient outcomes stored, by `outcome` (delivered, deferred, bounced, failed, suppressed).
pub const OUTCOMES: &str = "broadside_outcomes_total";
/// SMTP transactions finished, by `domain` and `result` (delivered, deferred, bounced).
pub const MESSAGES: &str = "broadside_messages_total";
/// Time to render, MIME-encode and sign one message.
pub const RENDER_SECONDS: &str = "broadside_render_seconds";
/// Time of one SMTP transaction (MAIL to the final reply), by `domain`.
pub const SMTP_SECONDS: &str = "broadside_smtp_seconds";
/// Open SMTP sessions, by `domain`.
pub const SMTP_CONNECTIONS: &str = "broadside_smtp_connections";
/// Messages waiting in a domain queue, by `domain`.
pub const QUEUE_DEPTH: &str = "broadside_queue_depth";
/// Jobs waiting for a CPU pool thread.
pub const CPU_QUEUE_DEPTH: &str = "broadside_cpu_queue_depth";
/// Recipients between dispatch and a stored outcome, by `tenant`.
pub const IN_FLIGHT: &str = "broadside_in_flight";
/// Throttle signals (421, 4.7.x) received, by `domain`.
pub const THROTTLES: &str = "broadside_throttles_total";
/// Campaigns currently dispatching, by `tenant`.
pub const RUNNING_CAMPAIGNS: &str = "broadside_running_campaigns";
/// Store writes of outcome batches.
pub const STORE_WRITE_SECONDS: &str = "broadside_store_write_seconds";
/// Store operations that failed, by `operation`.
pub const STORE_ERRORS: &str = "broadside_store_errors_total";
/// Rows read by imports, by `result` (loaded, rejected).
pub const IMPORT_ROWS: &str = "broadside_import_rows_total";

/// Messages received by the inbound SMTP listener, by `kind` (hard_bounce,
/// soft_bounce, complaint, other).
pub const INBOUND_MESSAGES: &str = "broadside_inbound_messages_total";
/// Inbound SMTP refusals, by `reason` (unknown_recipient, too_big, busy).
pub const INBOUND_REFUSED: &str = "broadside_inbound_refused_total";

/// Webhook posts, by `result` (ok, failed).
pub const WEBHOOK_POSTS: &str = "broadside_webhook_posts_total";
/// Events acknowledged by webhook receivers.
pub const WEBHOOK_EVENTS: &str = "broadside_webhook_events_total";

/// Registers descriptions so every metric carries a HELP line.
pub fn describe() {
    describe_counter!(OUTCOMES, "Recipient outcomes stored, by outcome.");
    describe_counter!(
        MESSAGES,
        "SMTP transactions finished, by domain and result."
    );
    describe_histogram!(
        RENDER_SECONDS,
        Unit::Seconds,
        "Time to render, encode and sign one message."
    );
    describe_histogram!(
        SMTP_SECONDS,
        Unit::Seconds,
        "Time of one SMTP transaction, by domain."
    );
    describe_gauge!(SMTP_CONNECTIONS, "Open SMTP sessions, by domain.");
    describe_gauge!(
        QUEUE_DEPTH,
        "Messages waiting in a domain queue, by domain."
    );
    describe_gauge!(CPU_QUEUE_DEPTH, "Jobs waiting for a CPU pool thread.");
    describe_gauge!(
        IN_FLIGHT,
        "Recipients between dispatch and a stored outcome, by tenant."
    );
    describe_counter!(
        THROTTLES,
        "Throttle replies (421, 4.7.x) received, by domain."
    );
    describe_gauge!(
        RUNNING_CAMPAIGNS,
        "Campaigns currently dispatching, by tenant."
    );
    describe_histogram!(
        STORE_WRITE_SECONDS,
        Unit::Seconds,
        "Time to store one batch of outcomes."
    );
    describe_counter!(STORE_ERRORS, "Store operations that failed, by operation.");
    describe_counter!(IMPORT_ROWS, "Rows read by imports, by result.");
    describe_counter!(
        INBOUND_MESSAGES,
        "Messages received by the inbound SMTP listener, by kind."
    );
    describe_counter!(INBOUND_REFUSED, "Inbound SMTP refusals, by reason.");
    describe_counter!(WEBHOOK_POSTS, "Webhook posts, by result.");
    describe_counter!(WEBHOOK_EVENTS, "Events acknowledged by webhook receivers.");
}

/// Counts the rows of a finished import. Called by every import path (CLI and
/// HTTP upload) so the count does not depend on how the file arrived.
pub fn count_import(outcome: &engine::import::ImportOutcome) {
    metrics::counter!(IMPORT_ROWS, "result" => "loaded").increment(outcome.loaded);
    metrics::counter!(IMPORT_ROWS, "result" => "rejected").increment(outcome.rejected);
}

/// Installs the global recorder with an HTTP listener serving `/metrics`. Call
/// once per process, from within a tokio runtime.
pub fn install(listen: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets(&[
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])?
        .install()?;
    describe();
    Ok(())
}

/// Maps recipient domains to bounded label values.
#[derive(Debug, Clone, Default)]
pub struct DomainLabels {
    top: HashSet<String>,
}

impl DomainLabels {
    pub fn new(top: impl IntoIterator<Item = String>) -> Self {
        Self {
            top: top.into_iter().map(|d| d.to_ascii_lowercase()).collect(),
        }
    }

    /// The domain itself when it is a configured top domain, else `other`.
    pub fn label(&self, domain: &str) -> String {
        if self.top.contains(domain) {
            domain.to_owned()
        } else {
            "other".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_domains_become_labels() {
        let labels = DomainLabels::new(["Gmail.com".to_owned()]);
        assert_eq!(labels.label("gmail.com"), "gmail.com");
        assert_eq!(labels.label("random-123.example"), "other");
    }
}
