//! The SMS gateways of the login's second factor, chosen by `[security.sms]`:
//! the file gateway (development, tests) or a generic JSON webhook that most SMS
//! providers, or a small adapter in front of one, accept.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use engine::auth::{FileGateway, SmsError, SmsGateway};
use engine::config::{Config, SmsGatewayKind};

/// POSTs `{"to": "+…", "text": "…"}` to a configured URL with an optional
/// `Authorization` header; any 2xx is success.
pub struct WebhookGateway {
    client: reqwest::Client,
    url: String,
    /// The whole header value (`Bearer …`, `Basic …`); empty: no header.
    auth: String,
}

impl std::fmt::Debug for WebhookGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL and header may carry credentials.
        f.debug_struct("WebhookGateway").finish_non_exhaustive()
    }
}

impl WebhookGateway {
    pub fn new(url: &str, auth: &str, timeout: Duration) -> anyhow::Result<Self> {
        let parsed: reqwest::Url = url
            .parse()
            .context("security.sms.webhook_url is not a URL")?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "https" | "http"),
            "security.sms.webhook_url must be an http(s) URL"
        );
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("building the SMS webhook's HTTP client")?;
        Ok(WebhookGateway {
            client,
            url: url.to_owned(),
            auth: auth.to_owned(),
        })
    }
}

#[async_trait]
impl SmsGateway for WebhookGateway {
    async fn send(&self, to: &str, text: &str) -> Result<(), SmsError> {
        let mut request = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({ "to": to, "text": text }));
        if !self.auth.is_empty() {
            request = request.header(reqwest::header::AUTHORIZATION, &self.auth);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SmsError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        match status.is_server_error() {
            true => Err(SmsError::Unavailable(format!("HTTP {status}: {body}"))),
            false => Err(SmsError::Refused(format!("HTTP {status}: {body}"))),
        }
    }
}

/// The gateway `[security.sms]` configures.
pub fn gateway(config: &Config) -> anyhow::Result<Arc<dyn SmsGateway>> {
    let sms = &config.security.sms;
    Ok(match sms.gateway {
        SmsGatewayKind::File => {
            let path = match sms.file.as_str() {
                "" => config.data_dir.join("sms.log"),
                file => file.into(),
            };
            Arc::new(FileGateway::new(path))
        }
        SmsGatewayKind::Webhook => Arc::new(WebhookGateway::new(
            sms.webhook_url.expose(),
            sms.webhook_auth.expose(),
            sms.webhook_timeout.as_std(),
        )?),
    })
}
