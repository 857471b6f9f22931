//! Tracking events in a campaign's events table and the tenant's suppression list
//! in `broadside.suppressions`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::tables::Tables;
use super::{catalog, sql};
use crate::model::{RecipientId, TenantId};
use crate::store::tracking::FIRST_TRACKING_KIND;
use crate::store::{StoreResult, Suppression, SuppressionReason, TrackingEvent, TrackingKind};

/// One statement per batch, from arrays (group commit).
pub(crate) async fn record(
    client: &Client,
    tables: &Tables,
    events: &[TrackingEvent],
) -> StoreResult<usize> {
    let ids: Vec<i64> = events.iter().map(|e| e.recipient.0).collect();
    let kinds: Vec<i16> = events.iter().map(|e| e.kind.as_i16()).collect();
    let details: Vec<String> = events.iter().map(TrackingEvent::detail_json).collect();
    let ats: Vec<DateTime<Utc>> = events.iter().map(|e| e.at).collect();
    let (key_column, key_value) = tables.event_key();
    let statement = format!(
        "INSERT INTO {events} ({key_column}recipient_id, kind, detail, at)
         SELECT {key_value}* FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::timestamptz[])",
        events = tables.events()
    );
    match client
        .execute(&statement, &[&ids, &kinds, &details, &ats])
        .await
    {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Err(e) if sql::is_missing_relation(&e) => {
            Err(catalog::missing_tables(client, tables.tenant(), tables.campaign()).await)
        }
        Err(e) => Err(sql::db_error(e)),
    }
}

pub(crate) async fn list(
    client: &Client,
    tables: &Tables,
    recipient: RecipientId,
) -> StoreResult<Vec<TrackingEvent>> {
    let statement = format!(
        "SELECT kind, detail, at FROM {} WHERE recipient_id = $1 AND kind >= $2 ORDER BY id",
        tables.event_rows("src")
    );
    let rows = match client
        .query(&statement, &[&recipient.0, &FIRST_TRACKING_KIND])
        .await
    {
        Ok(rows) => rows,
        Err(e) if sql::is_missing_relation(&e) => {
            let (tenant, campaign) = (tables.tenant(), tables.campaign());
            return Err(catalog::missing_tables(client, tenant, campaign).await);
        }
        Err(e) => return Err(sql::db_error(e)),
    };
    Ok(rows
        .iter()
        .filter_map(|row| {
            let kind = TrackingKind::from_i16(row.get(0))?;
            let detail: Option<String> = row.get(1);
            Some(TrackingEvent {
                recipient,
                kind,
                detail: TrackingEvent::parse_detail(detail.as_deref()),
                at: row.get(2),
            })
        })
        .collect())
}

/// Adds addresses; one already listed keeps its first reason and time.
pub(crate) async fn suppress(
    client: &Client,
    tenant: TenantId,
    entries: &[(String, SuppressionReason)],
) -> StoreResult<usize> {
    let emails: Vec<&str> = entries.iter().map(|(e, _)| e.as_str()).collect();
    let reasons: Vec<&str> = entries.iter().map(|(_, r)| r.as_str()).collect();
    let added = client
        .execute(
            "INSERT INTO broadside.suppressions (tenant_id, email, reason)
             SELECT $1, e, r FROM unnest($2::text[], $3::text[]) AS u(e, r)
             ON CONFLICT DO NOTHING",
            &[&tenant.0, &emails, &reasons],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(usize::try_from(added).unwrap_or(usize::MAX))
}

pub(crate) async fn unsuppress(
    client: &Client,
    tenant: TenantId,
    email: &str,
) -> StoreResult<bool> {
    let removed = client
        .execute(
            "DELETE FROM broadside.suppressions WHERE tenant_id = $1 AND email = $2",
            &[&tenant.0, &email],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(removed > 0)
}

pub(crate) async fn suppressions(
    client: &Client,
    tenant: TenantId,
) -> StoreResult<Vec<Suppression>> {
    let rows = client
        .query(
            "SELECT email, reason, created_at FROM broadside.suppressions
             WHERE tenant_id = $1 ORDER BY email",
            &[&tenant.0],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(rows
        .iter()
        .map(|row| Suppression {
            email: row.get(0),
            reason: SuppressionReason::parse(row.get(1)).unwrap_or(SuppressionReason::Manual),
            created_at: row.get(2),
        })
        .collect())
}

/// Which of `emails` are suppressed: one query per dispatch batch.
pub(crate) async fn suppressed_among(
    client: &Client,
    tenant: TenantId,
    emails: &[String],
) -> StoreResult<HashSet<String>> {
    let rows = client
        .query(
            "SELECT email FROM broadside.suppressions WHERE tenant_id = $1 AND email = ANY($2)",
            &[&tenant.0, &emails],
        )
        .await
        .map_err(sql::db_error)?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
