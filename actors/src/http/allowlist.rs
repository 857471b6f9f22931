//! Tenants' IP allowlists on the API (when a tenant turned on
//! `security.allowlist_api`): the tenant's security settings, cached briefly so
//! a signed request does not cost a settings read.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use engine::auth::{IpDecision, SecuritySettings, check_ip};
use engine::model::TenantId;
use engine::store::{Store, StoreError};

pub struct AllowlistCache {
    store: Arc<dyn Store>,
    /// How long a tenant's settings are reused; a changed allowlist applies
    /// within this time (the API key cache's TTL, for one rule to remember).
    ttl: Duration,
    /// One entry per tenant that made a request: bounded by the tenant count.
    entries: DashMap<TenantId, (Instant, Arc<SecuritySettings>)>,
}

impl AllowlistCache {
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        AllowlistCache {
            store,
            ttl,
            entries: DashMap::new(),
        }
    }

    /// Whether an API request of `tenant` from `ip` may proceed. Outside the list,
    /// an API request has no second factor to offer, so it is refused either way.
    pub async fn api_allowed(
        &self,
        tenant: TenantId,
        ip: Option<IpAddr>,
    ) -> Result<bool, StoreError> {
        let settings = self.settings(tenant).await?;
        Ok(!settings.allowlist_api || check_ip(&settings, ip) == IpDecision::Allowed)
    }

    async fn settings(&self, tenant: TenantId) -> Result<Arc<SecuritySettings>, StoreError> {
        if let Some(entry) = self.entries.get(&tenant)
            && entry.0.elapsed() < self.ttl
        {
            return Ok(Arc::clone(&entry.1));
        }
        let settings = Arc::new(self.store.tenant_settings(tenant).await?.security);
        self.entries
            .insert(tenant, (Instant::now(), Arc::clone(&settings)));
        Ok(settings)
    }
}
