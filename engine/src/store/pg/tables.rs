//! Where a campaign's recipients and events live, and the SQL that names them.
//!
//! A campaign filled by an import has tables of its own,
//! `t_<tenant>.c<id>_recipients` and `c<id>_events`, created in the import's
//! transaction: one per import, so the DDL is noise. A message batch
//! (`POST /v1/messages`) arrives tens of times a second, and there the catalogue
//! writes of two `CREATE TABLE` and their indexes were most of a submit's
//! latency (93 of 138 ms per transaction, measured with `pgbench` under load).
//! So batches append to the tenant's two long-lived tables, `batch_recipients`
//! and `batch_events`, keyed by `(batch_id, …)`; their personalization values
//! are one `text[]` column, since each batch has its own variables.
//!
//! Every statement on a campaign's rows takes its table names and row filter
//! from a [`Tables`], so both layouts answer the same queries. Which layout a
//! campaign has never changes; it is read once and cached (bounded).

use dashmap::DashMap;
use tokio_postgres::Client;

use super::{catalog, sql};
use crate::model::{CampaignId, TenantId};
use crate::store::{StoreError, StoreResult};

/// The columns every recipients row source offers to `SELECT *` readers.
const RECIPIENT_COLUMNS: &str =
    "id, email, vals, state, until, attempts, first_attempt_at, last_reply, updated_at";

/// One campaign's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tables {
    tenant: TenantId,
    campaign: CampaignId,
    shared: bool,
}

impl Tables {
    /// The tables of a campaign loaded by an import.
    pub(crate) fn own(tenant: TenantId, campaign: CampaignId) -> Self {
        Self {
            tenant,
            campaign,
            shared: false,
        }
    }

    /// The rows of a message batch in the tenant's batch tables.
    pub(crate) fn shared(tenant: TenantId, campaign: CampaignId) -> Self {
        Self {
            tenant,
            campaign,
            shared: true,
        }
    }

    pub(crate) fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub(crate) fn campaign(&self) -> CampaignId {
        self.campaign
    }

    /// The recipients table, to write to (`UPDATE`, `COPY`, `DELETE`).
    pub(crate) fn recipients(&self) -> String {
        match self.shared {
            false => sql::recipients(self.tenant, self.campaign),
            true => format!("{}.batch_recipients", sql::schema(self.tenant)),
        }
    }

    /// The events table, to insert into or lock.
    pub(crate) fn events(&self) -> String {
        match self.shared {
            false => sql::events(self.tenant, self.campaign),
            true => format!("{}.batch_events", sql::schema(self.tenant)),
        }
    }

    /// The campaign's recipients as a row source for reads. A batch's rows come
    /// from a sub-select on its key (which the planner flattens into an index
    /// scan) with the values as `vals`, an array, where own tables have
    /// `v1..vN`; the readers accept both. Named `alias`.
    pub(crate) fn recipient_rows(&self, alias: &str) -> String {
        match self.shared {
            false => format!("{} AS {alias}", self.recipients()),
            true => format!(
                "(SELECT {RECIPIENT_COLUMNS} FROM {} WHERE batch_id = {}) AS {alias}",
                self.recipients(),
                self.campaign.0
            ),
        }
    }

    /// The campaign's events as a row source for reads, named `alias`.
    pub(crate) fn event_rows(&self, alias: &str) -> String {
        match self.shared {
            false => format!("{} AS {alias}", self.events()),
            true => format!(
                "(SELECT id, recipient_id, kind, detail, at FROM {} WHERE batch_id = {}) AS {alias}",
                self.events(),
                self.campaign.0
            ),
        }
    }

    /// The row filter for writes: `<alias>.batch_id = <id> AND ` on the batch
    /// tables, nothing on own tables. `alias` may be empty.
    pub(crate) fn filter(&self, alias: &str) -> String {
        match (self.shared, alias.is_empty()) {
            (false, _) => String::new(),
            (true, true) => format!("batch_id = {} AND ", self.campaign.0),
            (true, false) => format!("{alias}.batch_id = {} AND ", self.campaign.0),
        }
    }

    /// What an `INSERT INTO <events>` adds before `recipient_id`: the column
    /// list prefix and the value prefix of its `SELECT`.
    pub(crate) fn event_key(&self) -> (&'static str, String) {
        match self.shared {
            false => ("", String::new()),
            true => ("batch_id, ", format!("{}::bigint, ", self.campaign.0)),
        }
    }

    /// Statements deleting the campaign's rows: drops for own tables, deletes
    /// by key for batches.
    pub(crate) fn remove_rows(&self) -> String {
        match self.shared {
            false => format!(
                "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
                self.recipients(),
                self.events()
            ),
            true => format!(
                "DELETE FROM {recipients} WHERE batch_id = {id};
                 DELETE FROM {events} WHERE batch_id = {id};",
                recipients = self.recipients(),
                events = self.events(),
                id = self.campaign.0
            ),
        }
    }
}

/// What is cached of a campaign: its layout, and for batches whether its rows
/// still exist (own tables tell that by existing).
#[derive(Clone, Copy, Debug)]
struct Entry {
    shared: bool,
    imported: bool,
}

/// Layouts of the campaigns seen, so that the delivery path pays no extra
/// round trip. Bounded: when full it starts again empty (a miss costs one
/// primary-key read).
#[derive(Debug, Default)]
pub(crate) struct TablesCache {
    entries: DashMap<(i64, i64), Entry>,
}

/// Enough for every campaign a node works on at once, many times over.
const CACHE_LIMIT: usize = 65_536;

impl TablesCache {
    /// The campaign's tables. An unknown tenant or campaign is an error; so is
    /// a batch whose rows were purged (`NotImported`), as a dropped own table is.
    pub(crate) async fn tables(
        &self,
        client: &Client,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<Tables> {
        self.lookup(client, tenant, campaign, true).await
    }

    /// The campaign's tables whether or not its rows still exist: for removing
    /// them, which is idempotent.
    pub(crate) async fn tables_to_remove(
        &self,
        client: &Client,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> StoreResult<Tables> {
        self.lookup(client, tenant, campaign, false).await
    }

    async fn lookup(
        &self,
        client: &Client,
        tenant: TenantId,
        campaign: CampaignId,
        must_exist: bool,
    ) -> StoreResult<Tables> {
        let entry = match self.entries.get(&(tenant.0, campaign.0)) {
            Some(entry) => *entry,
            None => {
                let entry = Self::read(client, tenant, campaign).await?;
                if self.entries.len() >= CACHE_LIMIT {
                    self.entries.clear();
                }
                self.entries.insert((tenant.0, campaign.0), entry);
                entry
            }
        };
        match entry {
            Entry { shared: false, .. } => Ok(Tables::own(tenant, campaign)),
            Entry {
                imported: false, ..
            } if must_exist => Err(StoreError::NotImported(campaign)),
            Entry { .. } => Ok(Tables::shared(tenant, campaign)),
        }
    }

    /// Forgets a campaign whose rows were removed, so that the next use reads
    /// its state again.
    pub(crate) fn forget(&self, tenant: TenantId, campaign: CampaignId) {
        self.entries.remove(&(tenant.0, campaign.0));
    }

    async fn read(client: &Client, tenant: TenantId, campaign: CampaignId) -> StoreResult<Entry> {
        let query = format!(
            "SELECT shared_tables, imported FROM {}.campaigns WHERE id = $1",
            sql::schema(tenant)
        );
        let row = client
            .query_opt(&query, &[&campaign.0])
            .await
            .map_err(catalog::tenant_error(tenant))?
            .ok_or(StoreError::UnknownCampaign { tenant, campaign })?;
        Ok(Entry {
            shared: row.get(0),
            imported: row.get(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_tables_are_named_by_campaign_and_need_no_filter() {
        let t = Tables::own(TenantId(7), CampaignId(42));
        assert_eq!(t.recipients(), "t_7.c42_recipients");
        assert_eq!(t.events(), "t_7.c42_events");
        assert_eq!(t.recipient_rows("r"), "t_7.c42_recipients AS r");
        assert_eq!(t.filter("r"), "");
        assert_eq!(t.event_key(), ("", String::new()));
        assert!(
            t.remove_rows()
                .starts_with("DROP TABLE IF EXISTS t_7.c42_recipients;")
        );
    }

    #[test]
    fn batches_share_the_tenants_tables_filtered_by_batch_id() {
        let t = Tables::shared(TenantId(7), CampaignId(42));
        assert_eq!(t.recipients(), "t_7.batch_recipients");
        assert_eq!(t.events(), "t_7.batch_events");
        assert!(
            t.recipient_rows("r")
                .contains("FROM t_7.batch_recipients WHERE batch_id = 42) AS r")
        );
        assert!(
            t.event_rows("e")
                .contains("FROM t_7.batch_events WHERE batch_id = 42) AS e")
        );
        assert_eq!(t.filter("r"), "r.batch_id = 42 AND ");
        assert_eq!(t.filter(""), "batch_id = 42 AND ");
        assert_eq!(t.event_key(), ("batch_id, ", "42::bigint, ".to_string()));
        assert!(!t.remove_rows().contains("DROP"));
    }
}
