//! Reading recipients and events. Queries go out with their parameter types
//! (`query_typed`), one round trip each, and read `*` so that the number of
//! personalization columns comes with the rows instead of from a second query.

use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Column, Row};

use super::{catalog, sql};
use crate::model::{CampaignId, EmailAddress, RecipientId, RecipientState, StateCode, TenantId};
use crate::store::{Event, Recipient, RecipientBatch, StoreError, StoreResult};

/// Where each column of a `SELECT *` on a recipients table is.
struct Layout {
    id: usize,
    email: usize,
    state: usize,
    until: usize,
    attempts: usize,
    first_attempt: usize,
    last_reply: usize,
    /// `v1..vN`, in that order.
    values: Vec<usize>,
}

impl Layout {
    fn of(columns: &[Column]) -> StoreResult<Self> {
        let find = |name: &str| {
            columns
                .iter()
                .position(|c| c.name() == name)
                .ok_or_else(|| StoreError::Corrupt(format!("recipients table lacks {name}")))
        };
        let mut values: Vec<(usize, usize)> = columns
            .iter()
            .enumerate()
            .filter_map(|(index, c)| {
                let n = c.name().strip_prefix('v')?.parse::<usize>().ok()?;
                Some((n, index))
            })
            .collect();
        values.sort_unstable();
        Ok(Self {
            id: find("id")?,
            email: find("email")?,
            state: find("state")?,
            until: find("until")?,
            attempts: find("attempts")?,
            first_attempt: find("first_attempt_at")?,
            last_reply: find("last_reply")?,
            values: values.into_iter().map(|(_, index)| index).collect(),
        })
    }

    fn recipient(&self, row: &Row) -> StoreResult<Recipient> {
        let email: &str = row.get(self.email);
        let code: i16 = row.get(self.state);
        let code = StateCode::from_i16(code)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown recipient state {code}")))?;
        Ok(Recipient {
            id: RecipientId(row.get(self.id)),
            email: EmailAddress::parse(email)
                .map_err(|e| StoreError::Corrupt(format!("stored address {email:?}: {e}")))?,
            values: self.values.iter().map(|&i| row.get(i)).collect(),
            state: RecipientState::from_parts(code, row.get(self.until)),
            attempts: row.get(self.attempts),
            first_attempt: row.get(self.first_attempt),
            last_reply: row.get(self.last_reply),
        })
    }
}

/// Runs a query on a campaign's tables, explaining a missing table as an unknown
/// tenant or campaign, or a campaign not imported.
async fn query(
    client: &Client,
    tenant: TenantId,
    campaign: CampaignId,
    statement: &str,
    params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
) -> StoreResult<Vec<Row>> {
    match client.query_typed(statement, params).await {
        Ok(rows) => Ok(rows),
        Err(e) if sql::is_missing_relation(&e) => {
            Err(catalog::missing_tables(client, tenant, campaign).await)
        }
        Err(e) => Err(sql::db_error(e)),
    }
}

pub(crate) async fn recipients(
    client: &Client,
    tenant: TenantId,
    campaign: CampaignId,
    after: RecipientId,
    limit: u32,
) -> StoreResult<Vec<Recipient>> {
    let statement = format!(
        "SELECT * FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
        sql::recipients(tenant, campaign)
    );
    let limit = i64::from(limit);
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
        [(&after.0, Type::INT8), (&limit, Type::INT8)];
    let rows = query(client, tenant, campaign, &statement, &params).await?;
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let layout = Layout::of(first.columns())?;
    rows.iter().map(|row| layout.recipient(row)).collect()
}

pub(crate) async fn due_recipients(
    client: &Client,
    tenant: TenantId,
    campaign: CampaignId,
    after: RecipientId,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<RecipientBatch> {
    // A deferred row without a due time is due now (see `RecipientState::from_parts`).
    let statement = format!(
        "SELECT * FROM {} WHERE id > $1
           AND (state = 0 OR (state = 1 AND coalesce(until, '-infinity') <= $2))
         ORDER BY id LIMIT $3",
        sql::recipients(tenant, campaign)
    );
    let limit = i64::from(limit);
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 3] = [
        (&after.0, Type::INT8),
        (&now, Type::TIMESTAMPTZ),
        (&limit, Type::INT8),
    ];
    let rows = query(client, tenant, campaign, &statement, &params).await?;
    let Some(first) = rows.first() else {
        // Rare (the end of a pass), so the second query only happens here.
        let columns = catalog::column_count(client, tenant, campaign).await?;
        return Ok(RecipientBatch::new(columns));
    };
    let layout = Layout::of(first.columns())?;
    let mut batch = RecipientBatch::with_capacity(layout.values.len(), rows.len(), 0);
    for row in &rows {
        let email: &str = row.get(layout.email);
        let values = layout.values.iter().map(|&i| row.get::<_, &str>(i));
        let attempts: i32 = row.get(layout.attempts);
        let attempts = u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("negative attempts {attempts}")))?;
        let first_attempt = row.get(layout.first_attempt);
        let id = RecipientId(row.get(layout.id));
        batch.push_due(id, email, values, attempts, first_attempt);
    }
    Ok(batch)
}

pub(crate) async fn recipient_by_email(
    client: &Client,
    tenant: TenantId,
    campaign: CampaignId,
    email: &EmailAddress,
) -> StoreResult<Option<Recipient>> {
    // No index on email: imports stay fast, and this serves occasional look-ups
    // (support, unsubscribes by address), not the delivery path, which uses ids.
    let statement = format!(
        "SELECT * FROM {} WHERE email = $1 ORDER BY id LIMIT 1",
        sql::recipients(tenant, campaign)
    );
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] =
        [(&email.as_str(), Type::TEXT)];
    let rows = query(client, tenant, campaign, &statement, &params).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Layout::of(row.columns())?.recipient(row).map(Some)
}

pub(crate) async fn events(
    client: &Client,
    tenant: TenantId,
    campaign: CampaignId,
    recipient: RecipientId,
) -> StoreResult<Vec<Event>> {
    let statement = format!(
        "SELECT kind, detail, at FROM {} WHERE recipient_id = $1 AND kind < 10 ORDER BY id",
        sql::events(tenant, campaign)
    );
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] =
        [(&recipient.0, Type::INT8)];
    let rows = query(client, tenant, campaign, &statement, &params).await?;
    rows.iter()
        .map(|row| {
            let kind: i16 = row.get(0);
            Ok(Event {
                recipient,
                kind: StateCode::from_i16(kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind {kind}")))?,
                detail: row.get(1),
                at: row.get(2),
            })
        })
        .collect()
}
