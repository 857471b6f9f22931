//! The tenant settings section `tracking`: what a tenant overrides of
//! `[tracking]` (its own tracking and bounce domains) and its event webhook.

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantTracking {
    /// Host of this tenant's tracking URLs (`https://<domain>/t/...`), so links
    /// carry the customer's brand. `None`: `[tracking] domain`.
    #[serde(deserialize_with = "optional_domain")]
    pub domain: Option<String>,
    /// Domain of this tenant's VERP return paths and mailto unsubscribe address;
    /// its MX must reach the inbound listener. `None`: `[tracking] bounce_domain`.
    #[serde(deserialize_with = "optional_domain")]
    pub bounce_domain: Option<String>,
    /// Where events (delivered, bounced, complained, opened, clicked,
    /// unsubscribed) are posted in batches; `None`: no webhook.
    #[serde(deserialize_with = "optional_url")]
    pub webhook_url: Option<String>,
    /// Signs each post (HMAC-SHA256 over timestamp and body); at least 16
    /// characters. Required with `webhook_url`.
    #[serde(deserialize_with = "optional_secret")]
    pub webhook_secret: Option<String>,
}

impl TenantTracking {
    /// The webhook's URL and secret when both are set.
    pub fn webhook(&self) -> Option<(&str, &str)> {
        Some((
            self.webhook_url.as_deref()?,
            self.webhook_secret.as_deref()?,
        ))
    }
}

fn optional_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let url = text.trim();
    let scheme_ok = ["http://", "https://"]
        .iter()
        .any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s));
    if !scheme_ok || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(serde::de::Error::custom(format!(
            "{text:?} is not an http:// or https:// URL"
        )));
    }
    Ok(Some(url.to_owned()))
}

fn optional_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if text.len() < 16 {
        return Err(serde::de::Error::custom(
            "the secret must be at least 16 characters",
        ));
    }
    Ok(Some(text))
}

/// A host name as it may appear in a URL and an address: letters, digits,
/// hyphens, dots; lowercased. Anything else would break the rendered links.
fn optional_domain<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let domain = text.trim().to_ascii_lowercase();
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if domain.is_empty() || domain.len() > 253 || !labels_ok {
        return Err(serde::de::Error::custom(format!(
            "{text:?} is not a domain name (letters, digits, hyphens and dots)"
        )));
    }
    Ok(Some(domain))
}

#[cfg(test)]
mod tests {
    use crate::tenant::{SettingsError, TenantSettings};

    #[test]
    fn a_tenant_sets_its_own_domains_and_bad_ones_are_refused() {
        let settings = TenantSettings::default()
            .with_value("tracking.domain", "Links.Shop.Example")
            .expect("domain");
        assert_eq!(
            settings.tracking.domain.as_deref(),
            Some("links.shop.example")
        );
        let refused = settings.with_value("tracking.bounce_domain", "bad domain/..");
        assert!(
            matches!(&refused, Err(SettingsError::InvalidValue { key, reason })
                if key == "tracking.bounce_domain" && reason.contains("not a domain name")),
            "{refused:?}"
        );
        let cleared = settings
            .with_value("tracking.domain", "null")
            .expect("clear");
        assert_eq!(cleared.tracking.domain, None);
    }

    #[test]
    fn a_webhook_needs_an_http_url_and_a_long_enough_secret() {
        let base = TenantSettings::default();
        let with_url = base
            .with_value(
                "tracking.webhook_url",
                "https://hooks.shop.example/broadside",
            )
            .expect("url");
        assert_eq!(with_url.tracking.webhook(), None, "no secret yet");
        let both = with_url
            .with_value("tracking.webhook_secret", "0123456789abcdef")
            .expect("secret");
        assert_eq!(
            both.tracking.webhook(),
            Some(("https://hooks.shop.example/broadside", "0123456789abcdef"))
        );
        for (key, value) in [
            ("tracking.webhook_url", "ftp://x.example/"),
            ("tracking.webhook_url", "https://x.example/a b"),
            ("tracking.webhook_secret", "short"),
        ] {
            assert!(
                matches!(
                    base.with_value(key, value),
                    Err(SettingsError::InvalidValue { .. })
                ),
                "{key}={value}"
            );
        }
    }
}
