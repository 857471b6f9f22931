//! Posts queued events to each tenant's webhook: one drain task per tenant at a
//! time, batches as JSON arrays, `X-Broadside-Signature: v1=<hex HMAC-SHA256 of
//! "<timestamp>.<body>">` with `X-Broadside-Timestamp`, acknowledged by any 2xx.
//! A failed batch is due again after an exponential backoff; a slow or dead
//! receiver holds up only its own tenant.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use engine::config::Config;
use engine::model::TenantId;
use engine::store::{Store, WebhookDelivery};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::task::JoinHandle;

use crate::telemetry as m;

#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    pub batch: u32,
    pub poll: Duration,
    pub retry_first: Duration,
    pub retry_max: Duration,
    pub timeout: Duration,
}

impl WebhookSettings {
    pub fn from_config(config: &Config) -> Self {
        let t = &config.tracking;
        Self {
            batch: u32::try_from(t.webhook_batch.max(1)).unwrap_or(u32::MAX),
            poll: t.webhook_poll.as_std(),
            retry_first: t.webhook_retry_first.as_std(),
            retry_max: t.webhook_retry_max.as_std(),
            timeout: t.webhook_timeout.as_std(),
        }
    }

    /// The wait after `attempts` failed posts: first, 2×first, 4×first, … ≤ max.
    fn backoff(&self, attempts: i32) -> Duration {
        let factor = 2u32.saturating_pow(u32::try_from(attempts.clamp(0, 30)).unwrap_or(30));
        self.retry_first.saturating_mul(factor).min(self.retry_max)
    }
}

/// The signature header's value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// Starts the sender on the current runtime.
pub fn start(store: Arc<dyn Store>, settings: WebhookSettings) -> anyhow::Result<JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Broadside/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(tokio::spawn(run(store, settings, client)))
}

async fn run(store: Arc<dyn Store>, settings: WebhookSettings, client: reqwest::Client) {
    let mut draining: HashMap<TenantId, JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(settings.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        draining.retain(|_, task| !task.is_finished());
        let tenants = match store.tenants().await {
            Ok(tenants) => tenants,
            Err(error) => {
                tracing::warn!(%error, "webhooks: listing tenants failed");
                continue;
            }
        };
        for tenant in tenants {
            if draining.contains_key(&tenant.id) {
                continue;
            }
            let Ok(tenant_settings) = store.tenant_settings(tenant.id).await else {
                continue;
            };
            let Some((url, secret)) = tenant_settings.tracking.webhook() else {
                continue;
            };
            let target = Target {
                tenant: tenant.id,
                url: url.to_owned(),
                secret: secret.to_owned(),
            };
            let task = tokio::spawn(drain(Arc::clone(&store), client.clone(), settings, target));
            draining.insert(tenant.id, task);
        }
    }
}

struct Target {
    tenant: TenantId,
    url: String,
    secret: String,
}

/// Posts due batches until none is left or one fails.
async fn drain(
    store: Arc<dyn Store>,
    client: reqwest::Client,
    settings: WebhookSettings,
    target: Target,
) {
    let tenant = target.tenant;
    loop {
        let due = match store.due_webhooks(tenant, Utc::now(), settings.batch).await {
            Ok(due) if due.is_empty() => return,
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%tenant, %error, "webhooks: reading the outbox failed");
                return;
            }
        };
        let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
        let delivered = post(&client, &target, &due).await;
        let stored = if delivered {
            metrics::counter!(m::WEBHOOK_POSTS, "result" => "ok").increment(1);
            metrics::counter!(m::WEBHOOK_EVENTS).increment(due.len() as u64);
            store.ack_webhooks(tenant, &ids).await
        } else {
            metrics::counter!(m::WEBHOOK_POSTS, "result" => "failed").increment(1);
            let attempts = due.iter().map(|d| d.attempts).max().unwrap_or(0);
            let wait = chrono::Duration::from_std(settings.backoff(attempts))
                .unwrap_or(chrono::Duration::hours(1));
            store.retry_webhooks(tenant, &ids, Utc::now() + wait).await
        };
        if let Err(error) = stored {
            // Delivered but not acknowledged in the store: sent again later,
            // which at-least-once allows (receivers deduplicate by id).
            tracing::warn!(%tenant, %error, "webhooks: updating the outbox failed");
            return;
        }
        if !delivered {
            return;
        }
    }
}

/// One signed post; true on a 2xx answer.
async fn post(client: &reqwest::Client, target: &Target, due: &[WebhookDelivery]) -> bool {
    let body = body(due);
    let timestamp = Utc::now().timestamp();
    let result = client
        .post(&target.url)
        .header("Content-Type", "application/json")
        .header("X-Broadside-Timestamp", timestamp.to_string())
        .header(
            "X-Broadside-Signature",
            sign(&target.secret, timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    match result {
        Ok(response) if response.status().is_success() => true,
        Ok(response) => {
            tracing::info!(tenant = %target.tenant, status = %response.status(), "webhook post refused; will retry");
            false
        }
        Err(error) => {
            tracing::info!(tenant = %target.tenant, %error, "webhook post failed; will retry");
            false
        }
    }
}

/// A JSON array of the events, each with its outbox id (`"id"`) first.
fn body(due: &[WebhookDelivery]) -> String {
    let mut body = String::from("[");
    for (i, delivery) in due.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let rest = delivery.event.trim().strip_prefix('{').unwrap_or("}");
        let separator = if rest.trim_start().starts_with('}') {
            ""
        } else {
            ","
        };
        body.push_str(&format!("{{\"id\":{}{separator}{rest}", delivery.id));
    }
    body.push(']');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_a_json_array_of_events_with_their_ids() {
        let due = [
            WebhookDelivery {
                id: 7,
                event: r#"{"event":"opened","recipient":1}"#.into(),
                attempts: 0,
            },
            WebhookDelivery {
                id: 9,
                event: "{}".into(),
                attempts: 2,
            },
        ];
        let parsed: serde_json::Value = serde_json::from_str(&body(&due)).expect("JSON");
        assert_eq!(
            parsed,
            serde_json::json!([{"id": 7, "event": "opened", "recipient": 1}, {"id": 9}])
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let settings = WebhookSettings {
            batch: 10,
            poll: Duration::from_secs(1),
            retry_first: Duration::from_secs(5),
            retry_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        };
        let waits: Vec<u64> = (0..6).map(|a| settings.backoff(a).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(settings.backoff(i32::MAX).as_secs(), 60);
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let a = sign("0123456789abcdef", 1_790_000_000, "[]");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64, "{a}");
        assert_ne!(a, sign("0123456789abcdef", 1_790_000_001, "[]"));
        assert_ne!(a, sign("0123456789abcdef", 1_790_000_000, "[ ]"));
        assert_ne!(a, sign("fedcba9876543210", 1_790_000_000, "[]"));
    }
}
