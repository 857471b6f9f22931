//! The API key cache on the authentication hot path: opened secrets by key id,
//! kept for a short TTL so most requests never reach the store or the AEAD.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use engine::auth::escher::Secret;
use engine::auth::keys::MasterKey;
use engine::auth::keys::NewApiKey;
use engine::model::{TenantId, TenantName};
use engine::store::{Store, StoreResult};

/// Entries kept at most; past it expired entries are dropped, and if that is not
/// enough the cache starts over, so a flood of key ids cannot grow memory.
const MAX_ENTRIES: usize = 10_000;

/// What a valid key id opens to: the tenant it acts for and its secret.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    pub tenant: TenantId,
    pub secret: Secret,
}

struct Entry {
    key: ActiveKey,
    fetched: Instant,
}

/// Cheap to clone; all clones share the entries.
#[derive(Clone)]
pub struct KeyCache {
    store: Arc<dyn Store>,
    /// Opens the sealed secrets read from the store.
    master: MasterKey,
    /// How long a looked-up key is trusted; bounds how long a key revoked by
    /// another process (the CLI) keeps working here.
    ttl: Duration,
    /// Only valid keys are cached: an unknown or revoked id goes to the store
    /// each time, so a key created a moment ago works at once.
    entries: Arc<DashMap<String, Entry>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("entries", &self.entries.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    pub fn new(store: Arc<dyn Store>, master: MasterKey, ttl: Duration) -> Self {
        Self {
            store,
            master,
            ttl,
            entries: Arc::new(DashMap::new()),
        }
    }

    /// The key `key_id` if it exists, is not revoked and its secret opens.
    pub async fn lookup(&self, key_id: &str) -> StoreResult<Option<ActiveKey>> {
        if let Some(key) = self.fresh(key_id) {
            return Ok(Some(key));
        }
        let Some((row, sealed)) = self.store.api_key(key_id).await? else {
            return Ok(None);
        };
        if row.revoked_at.is_some() {
            self.entries.remove(key_id);
            return Ok(None);
        }
        let secret = match self.master.open(key_id, &sealed) {
            Ok(secret) => secret,
            Err(error) => {
                // A wrong master key is an operator error worth a loud log; the
                // caller just sees an invalid key.
                tracing::error!(%error, key_id, "cannot open an API secret");
                return Ok(None);
            }
        };
        let key = ActiveKey {
            tenant: row.tenant,
            secret,
        };
        self.remember(key_id, key.clone());
        Ok(Some(key))
    }

    /// The key that seals secrets, for creating keys with the same one.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Creates a key for `tenant` as `broadside key create` does: a new id and
    /// secret, the secret stored sealed. The caller shows the secret once.
    pub async fn create(&self, tenant: TenantId, name: &TenantName) -> anyhow::Result<NewApiKey> {
        create_key(self.store.as_ref(), &self.master, tenant, name).await
    }

    /// Revokes through the store and forgets the key here at once.
    pub async fn revoke(&self, tenant: TenantId, key_id: &str) -> StoreResult<()> {
        self.store.revoke_api_key(tenant, key_id).await?;
        self.entries.remove(key_id);
        Ok(())
    }

    /// A cached key still within its TTL; the map guard ends inside.
    fn fresh(&self, key_id: &str) -> Option<ActiveKey> {
        let entry = self.entries.get(key_id)?;
        (entry.fetched.elapsed() < self.ttl).then(|| entry.key.clone())
    }

    fn remember(&self, key_id: &str, key: ActiveKey) {
        if self.ttl.is_zero() {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            self.entries.retain(|_, e| e.fetched.elapsed() < ttl);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(
            key_id.to_owned(),
            Entry {
                key,
                fetched: Instant::now(),
            },
        );
    }
}

/// A new API key of `tenant`, its secret sealed under `master` and stored: the
/// one way keys are made, by the CLI and the web application alike.
pub async fn create_key(
    store: &dyn Store,
    master: &MasterKey,
    tenant: TenantId,
    name: &TenantName,
) -> anyhow::Result<NewApiKey> {
    let key = NewApiKey::generate(name)?;
    let sealed = master.seal(&key.key_id, &key.secret)?;
    store.create_api_key(tenant, &key.key_id, &sealed).await?;
    Ok(key)
}
