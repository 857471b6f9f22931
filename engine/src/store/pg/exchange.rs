//! The exchange's background jobs on PostgreSQL: campaign events for exports,
//! export watermarks, import sources, the lifetime purge, and account listing.

use tokio_postgres::Client;

use super::tables::Tables;
use super::{catalog, sql};
use crate::model::{CampaignId, RecipientId, TenantId};
use crate::store::{
    CampaignEvent, EventKind, ExchangeAccount, ExportWatermark, ImportSource, PurgeReport,
    StoreError, StoreResult,
};

/// Takes a SHARE lock on the events table, which waits for every transaction
/// still inserting into it (they hold ROW EXCLUSIVE until they commit) and
/// keeps new ones out for the instant it takes to read the maximum id. A
/// sequence hands ids out before commit, so without this an event with a
/// smaller id could become visible after the exporter moved past it.
pub(crate) async fn committed_event_bound(
    client: &mut Client,
    tables: &Tables,
) -> StoreResult<i64> {
    let (tenant, campaign) = (tables.tenant(), tables.campaign());
    let events = tables.events();
    let tx = client.transaction().await.map_err(sql::db_error)?;
    let locked = tx
        .batch_execute(&format!("LOCK TABLE {events} IN SHARE MODE"))
        .await;
    if let Err(e) = locked {
        drop(tx);
        return Err(match sql::is_missing_relation(&e) {
            true => catalog::missing_tables(client, tenant, campaign).await,
            false => sql::db_error(e),
        });
    }
    let row = tx
        .query_one(
            &format!(
                "SELECT coalesce(max(id), 0) FROM {}",
                tables.event_rows("src")
            ),
            &[],
        )
        .await
        .map_err(sql::db_error)?;
    tx.commit().await.map_err(sql::db_error)?;
    Ok(row.get(0))
}

pub(crate) async fn campaign_events(
    client: &Client,
    tables: &Tables,
    after: i64,
    through: i64,
    limit: u32,
) -> StoreResult<Vec<CampaignEvent>> {
    let statement = format!(
        "SELECT e.id, e.recipient_id, r.email, e.kind, e.detail, e.at
         FROM {events} LEFT JOIN {recipients} ON r.id = e.recipient_id
         WHERE e.id > $1 AND e.id <= $2 ORDER BY e.id LIMIT $3",
        events = tables.event_rows("e"),
        recipients = tables.recipient_rows("r"),
    );
    let rows = match client
        .query(&statement, &[&after, &through, &i64::from(limit)])
        .await
    {
        Ok(rows) => rows,
        Err(e) if sql::is_missing_relation(&e) => {
            let (tenant, campaign) = (tables.tenant(), tables.campaign());
            return Err(catalog::missing_tables(client, tenant, campaign).await);
        }
        Err(e) => return Err(sql::db_error(e)),
    };
    rows.iter()
        .map(|row| {
            let code: i16 = row.get(3);
            Ok(CampaignEvent {
                id: row.get(0),
                recipient: RecipientId(row.get(1)),
                email: row.get(2),
                kind: EventKind::from_i16(code)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind {code}")))?,
                detail: row.get(4),
                at: row.get(5),
            })
        })
        .collect()
}

pub(crate) async fn export_watermark(
    client: &Client,
    tenant: TenantId,
    campaign: CampaignId,
) -> StoreResult<ExportWatermark> {
    let query = format!(
        "SELECT exported_through, pending_through FROM {}.export_watermarks
         WHERE campaign_id = $1",
        sql::schema(tenant)
    );
    let row = client
        .query_opt(&query, &[&campaign.0])
        .await
        .map_err(sql::db_error)?;
    Ok(
        row.map_or_else(ExportWatermark::default, |row| ExportWatermark {
            exported: row.get(0),
            pending: row.get(1),
        }),
    )
}

pub(crate) async fn set_export_watermark(
    client: &Client,
    tenant: TenantId,
    campaign: CampaignId,
    mark: ExportWatermark,
) -> StoreResult<()> {
    let query = format!(
        "INSERT INTO {}.export_watermarks (campaign_id, exported_through, pending_through)
         VALUES ($1, $2, $3)
         ON CONFLICT (campaign_id) DO UPDATE SET exported_through = $2,
             pending_through = $3, updated_at = now()",
        sql::schema(tenant)
    );
    client
        .execute(&query, &[&campaign.0, &mark.exported, &mark.pending])
        .await
        .map_err(|e| match sql::is_foreign_key_violation(&e) {
            true => StoreError::UnknownCampaign { tenant, campaign },
            false => sql::db_error(e),
        })?;
    Ok(())
}

pub(crate) async fn import_sources(
    client: &Client,
    tenant: TenantId,
    campaign: CampaignId,
) -> StoreResult<Vec<ImportSource>> {
    let query = format!(
        "SELECT source, created_at FROM {}.imports WHERE campaign_id = $1 ORDER BY id",
        sql::schema(tenant)
    );
    let rows = client
        .query(&query, &[&campaign.0])
        .await
        .map_err(sql::db_error)?;
    Ok(rows
        .iter()
        .map(|row| ImportSource {
            source: row.get(0),
            committed_at: row.get(1),
        })
        .collect())
}

/// One transaction: the tables, the `imported` flag, the export watermark
/// (event ids start again if the draft is ever imported anew) and the
/// idempotency records go together.
pub(crate) async fn purge_campaign(
    client: &mut Client,
    tables: &Tables,
) -> StoreResult<PurgeReport> {
    let (tenant, campaign) = (tables.tenant(), tables.campaign());
    let tx = client.transaction().await.map_err(sql::db_error)?;
    let (_, imported) = catalog::lock_campaign(&tx, tenant, campaign).await?;
    let statements = format!(
        "{remove}
         UPDATE {schema}.campaigns SET imported = false WHERE id = {id};
         DELETE FROM {schema}.export_watermarks WHERE campaign_id = {id};",
        remove = tables.remove_rows(),
        schema = sql::schema(tenant),
        id = campaign.0,
    );
    tx.batch_execute(&statements).await.map_err(sql::db_error)?;
    let idempotency_records = tx
        .execute(
            "DELETE FROM broadside.idempotency_keys WHERE tenant_id = $1 AND batch_id = $2",
            &[&tenant.0, &campaign.0],
        )
        .await
        .map_err(sql::db_error)?;
    // Webhook events still waiting for the receiver go too: their details
    // (an SMTP reply, a URL) may name the recipient.
    let webhook_events = tx
        .execute(
            "DELETE FROM broadside.webhook_outbox
             WHERE tenant_id = $1 AND (event::jsonb ->> 'campaign') = $2::bigint::text",
            &[&tenant.0, &campaign.0],
        )
        .await
        .map_err(sql::db_error)?;
    tx.commit().await.map_err(sql::db_error)?;
    Ok(PurgeReport {
        tables_dropped: imported,
        idempotency_records: idempotency_records + webhook_events,
    })
}

pub(crate) async fn exchange_accounts(
    client: &Client,
    tenant: TenantId,
) -> StoreResult<Vec<ExchangeAccount>> {
    let rows = client
        .query(
            "SELECT username, tenant_id, password_hash, public_keys
             FROM broadside.exchange_accounts WHERE tenant_id = $1 ORDER BY username",
            &[&tenant.0],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(rows.iter().map(super::keys::account_row).collect())
}

pub(crate) async fn remove_exchange_account(
    client: &Client,
    tenant: TenantId,
    username: &str,
) -> StoreResult<bool> {
    let removed = client
        .execute(
            "DELETE FROM broadside.exchange_accounts WHERE tenant_id = $1 AND username = $2",
            &[&tenant.0, &username],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(removed > 0)
}
