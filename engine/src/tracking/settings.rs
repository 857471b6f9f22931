//! The tenant settings section `tracking`: what a tenant overrides of
//! `[tracking]` (its own tracking and bounce domains).

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
}
