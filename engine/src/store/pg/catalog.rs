//! Tenants and campaigns: the catalogue rows, their counters and status.

use tokio_postgres::{Client, GenericClient, Row};

use super::tables::Tables;
use super::{migrate, sql};
use crate::model::{CampaignId, CampaignName, TenantId, TenantName};
use crate::store::{Campaign, CampaignCounters, CampaignStatus, StoreError, StoreResult, Tenant};

const CAMPAIGN_COLUMNS: &str =
    "id, name, status, columns, imported, created_at, definition, launched_at";
const COUNTER_COLUMNS: &str = "pending, deferred, delivered, bounced, failed, suppressed";

fn tenant_row(row: &Row) -> StoreResult<Tenant> {
    let name: String = row.get(1);
    Ok(Tenant {
        id: TenantId(row.get(0)),
        name: TenantName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: row.get(2),
    })
}

fn campaign_row(tenant: TenantId, row: &Row) -> StoreResult<Campaign> {
    let name: String = row.get(1);
    let status: String = row.get(2);
    Ok(Campaign {
        id: CampaignId(row.get(0)),
        tenant,
        name: CampaignName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        status: CampaignStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown campaign status {status:?}")))?,
        columns: row.get(3),
        imported: row.get(4),
        created_at: row.get(5),
        definition: row.get(6),
        launched_at: row.get(7),
    })
}

/// Maps an error of a statement on the tenant's catalogue: a missing schema or
/// `campaigns` table means the tenant does not exist.
pub(crate) fn tenant_error(tenant: TenantId) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |error| {
        if sql::is_missing_relation(&error) {
            StoreError::UnknownTenant(tenant)
        } else {
            sql::db_error(error)
        }
    }
}

pub(crate) async fn create_tenant(client: &mut Client, name: &TenantName) -> StoreResult<Tenant> {
    let tx = client.transaction().await.map_err(sql::db_error)?;
    migrate::lock(&tx, false).await.map_err(sql::db_error)?;
    let row = tx
        .query_one(
            "INSERT INTO broadside.tenants (name) VALUES ($1) RETURNING id, name, created_at",
            &[&name.as_str()],
        )
        .await
        .map_err(|e| match sql::is_unique_violation(&e) {
            true => StoreError::AlreadyExists {
                what: "tenant",
                name: name.to_string(),
            },
            false => sql::db_error(e),
        })?;
    let tenant = tenant_row(&row)?;
    migrate::create_tenant_schema(&tx, tenant.id)
        .await
        .map_err(sql::db_error)?;
    tx.commit().await.map_err(sql::db_error)?;
    Ok(tenant)
}

pub(crate) async fn tenants(client: &Client) -> StoreResult<Vec<Tenant>> {
    let rows = client
        .query(
            "SELECT id, name, created_at FROM broadside.tenants ORDER BY id",
            &[],
        )
        .await
        .map_err(sql::db_error)?;
    rows.iter().map(tenant_row).collect()
}

pub(crate) async fn tenant(client: &Client, name: &TenantName) -> StoreResult<Option<Tenant>> {
    let row = client
        .query_opt(
            "SELECT id, name, created_at FROM broadside.tenants WHERE name = $1",
            &[&name.as_str()],
        )
        .await
        .map_err(sql::db_error)?;
    row.as_ref().map(tenant_row).transpose()
}

pub(crate) async fn create_campaign(
    client: &Client,
    tenant: TenantId,
    name: &CampaignName,
) -> StoreResult<Campaign> {
    let query = format!(
        "INSERT INTO {}.campaigns (name) VALUES ($1) RETURNING {CAMPAIGN_COLUMNS}",
        sql::schema(tenant)
    );
    let row = client
        .query_one(&query, &[&name.as_str()])
        .await
        .map_err(|e| match sql::is_unique_violation(&e) {
            true => StoreError::AlreadyExists {
                what: "campaign",
                name: name.to_string(),
            },
            false => tenant_error(tenant)(e),
        })?;
    campaign_row(tenant, &row)
}

pub(crate) async fn campaign(
    client: &Client,
    tenant: TenantId,
    id: CampaignId,
) -> StoreResult<Option<Campaign>> {
    let query = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM {}.campaigns WHERE id = $1",
        sql::schema(tenant)
    );
    let row = client
        .query_opt(&query, &[&id.0])
        .await
        .map_err(tenant_error(tenant))?;
    row.map(|row| campaign_row(tenant, &row)).transpose()
}

pub(crate) async fn campaign_by_name(
    client: &Client,
    tenant: TenantId,
    name: &CampaignName,
) -> StoreResult<Option<Campaign>> {
    let query = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM {}.campaigns WHERE name = $1",
        sql::schema(tenant)
    );
    let row = client
        .query_opt(&query, &[&name.as_str()])
        .await
        .map_err(tenant_error(tenant))?;
    row.map(|row| campaign_row(tenant, &row)).transpose()
}

pub(crate) async fn campaigns(client: &Client, tenant: TenantId) -> StoreResult<Vec<Campaign>> {
    let query = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM {}.campaigns ORDER BY id",
        sql::schema(tenant)
    );
    let rows = client
        .query(&query, &[])
        .await
        .map_err(tenant_error(tenant))?;
    rows.iter().map(|row| campaign_row(tenant, row)).collect()
}

pub(crate) async fn active_campaigns(
    client: &Client,
    tenant: TenantId,
    also: &[CampaignId],
) -> StoreResult<Vec<Campaign>> {
    let query = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM {}.campaigns
         WHERE status IN ('running', 'paused') OR id = ANY($1) ORDER BY id",
        sql::schema(tenant)
    );
    let also: Vec<i64> = also.iter().map(|id| id.0).collect();
    let rows = client
        .query(&query, &[&also])
        .await
        .map_err(tenant_error(tenant))?;
    rows.iter().map(|row| campaign_row(tenant, row)).collect()
}

/// Checks the change against the locked row, so two concurrent changes (a pause
/// from the API, a completion from the dispatcher) are judged one after the other.
pub(crate) async fn set_campaign_status(
    client: &mut Client,
    tenant: TenantId,
    id: CampaignId,
    status: CampaignStatus,
) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(sql::db_error)?;
    let (current, imported) = lock_campaign(&tx, tenant, id).await?;
    if !current.check_change(status, imported, id)? {
        return Ok(());
    }
    // `launched_at` keeps the first launch: resuming a paused campaign is not one.
    let query = format!(
        "UPDATE {}.campaigns SET status = $2,
             launched_at = CASE WHEN $2 = 'running' THEN coalesce(launched_at, now())
                                ELSE launched_at END
         WHERE id = $1",
        sql::schema(tenant)
    );
    tx.execute(&query, &[&id.0, &status.as_str()])
        .await
        .map_err(sql::db_error)?;
    tx.commit().await.map_err(sql::db_error)
}

pub(crate) async fn set_campaign_definition(
    client: &mut Client,
    tenant: TenantId,
    id: CampaignId,
    definition: &str,
) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(sql::db_error)?;
    let (status, _) = lock_campaign(&tx, tenant, id).await?;
    if !status.definition_editable() {
        return Err(StoreError::WrongStatus {
            campaign: id,
            status: status.as_str(),
            action: "change its definition",
        });
    }
    let query = format!(
        "UPDATE {}.campaigns SET definition = $2 WHERE id = $1",
        sql::schema(tenant)
    );
    tx.execute(&query, &[&id.0, &definition])
        .await
        .map_err(sql::db_error)?;
    tx.commit().await.map_err(sql::db_error)
}

pub(crate) async fn counters(
    client: &Client,
    tenant: TenantId,
    id: CampaignId,
) -> StoreResult<CampaignCounters> {
    let row = select_campaign(client, tenant, id, COUNTER_COLUMNS).await?;
    Ok(CampaignCounters {
        pending: row.get(0),
        deferred: row.get(1),
        delivered: row.get(2),
        bounced: row.get(3),
        failed: row.get(4),
        suppressed: row.get(5),
    })
}

/// Locks the campaign row for the rest of the transaction and returns its status
/// and whether it is imported; an unknown tenant or campaign is an error.
pub(crate) async fn lock_campaign(
    tx: &impl GenericClient,
    tenant: TenantId,
    id: CampaignId,
) -> StoreResult<(CampaignStatus, bool)> {
    let query = format!(
        "SELECT status, imported FROM {}.campaigns WHERE id = $1 FOR NO KEY UPDATE",
        sql::schema(tenant)
    );
    let row = tx
        .query_opt(&query, &[&id.0])
        .await
        .map_err(tenant_error(tenant))?
        .ok_or(StoreError::UnknownCampaign {
            tenant,
            campaign: id,
        })?;
    let status: String = row.get(0);
    let status = CampaignStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown campaign status {status:?}")))?;
    Ok((status, row.get(1)))
}

/// Drops the campaign's recipients and events (its personal data). The campaign row
/// keeps its columns and counters; `imported` becomes false because the tables are
/// gone, so later reads of recipients fail with `NotImported`.
pub(crate) async fn drop_campaign_data(client: &mut Client, tables: &Tables) -> StoreResult<()> {
    let (tenant, id) = (tables.tenant(), tables.campaign());
    let tx = client.transaction().await.map_err(sql::db_error)?;
    lock_campaign(&tx, tenant, id).await?;
    let statements = format!(
        "{remove}
         UPDATE {schema}.campaigns SET imported = false WHERE id = {id};",
        remove = tables.remove_rows(),
        schema = sql::schema(tenant),
        id = id.0,
    );
    tx.batch_execute(&statements).await.map_err(sql::db_error)?;
    tx.commit().await.map_err(sql::db_error)
}

/// Explains why a campaign's tables are missing: unknown tenant, unknown campaign
/// (which is also what another tenant's campaign id is), or not imported.
pub(crate) async fn missing_tables(
    client: &Client,
    tenant: TenantId,
    id: CampaignId,
) -> StoreError {
    let query = format!(
        "SELECT imported FROM {}.campaigns WHERE id = $1",
        sql::schema(tenant)
    );
    match client.query_opt(&query, &[&id.0]).await {
        Err(e) => tenant_error(tenant)(e),
        Ok(None) => StoreError::UnknownCampaign {
            tenant,
            campaign: id,
        },
        Ok(Some(row)) if !row.get::<_, bool>(0) => StoreError::NotImported(id),
        Ok(Some(_)) => StoreError::Corrupt(format!(
            "campaign {id} of tenant {tenant} is marked imported but has no tables"
        )),
    }
}

/// `columns` of one campaign row; an id the tenant does not have is
/// `UnknownCampaign`.
async fn select_campaign(
    client: &Client,
    tenant: TenantId,
    id: CampaignId,
    columns: &str,
) -> StoreResult<tokio_postgres::Row> {
    let query = format!(
        "SELECT {columns} FROM {}.campaigns WHERE id = $1",
        sql::schema(tenant)
    );
    client
        .query_opt(&query, &[&id.0])
        .await
        .map_err(tenant_error(tenant))?
        .ok_or(StoreError::UnknownCampaign {
            tenant,
            campaign: id,
        })
}

/// The number of personalization columns of an imported campaign.
pub(crate) async fn column_count(
    client: &Client,
    tenant: TenantId,
    id: CampaignId,
) -> StoreResult<usize> {
    let row = select_campaign(client, tenant, id, "cardinality(columns), imported").await?;
    if !row.get::<_, bool>(1) {
        return Err(StoreError::NotImported(id));
    }
    usize::try_from(row.get::<_, i32>(0))
        .map_err(|_| StoreError::Corrupt("negative column count".into()))
}
