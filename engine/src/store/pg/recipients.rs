//! Reading recipients and events. Queries go out with their parameter types
//! (`query_typed`), one round trip each, and read `*` so that the number of
//! personalization columns comes with the rows instead of from a second query.

use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Column, Row};

use super::tables::Tables;
use super::{catalog, sql};
use crate::model::{EmailAddress, RecipientId, RecipientState, StateCode};
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
    values: Values,
}

/// Where the personalization values are: the columns `v1..vN` of a campaign's
/// own table, or one array of a message batch (see `tables`).
enum Values {
    Columns(Vec<usize>),
    Array(usize),
}

impl Values {
    fn of<'r>(&self, row: &'r Row) -> Vec<&'r str> {
        match self {
            Values::Columns(columns) => columns.iter().map(|&i| row.get(i)).collect(),
            Values::Array(i) => row.get(*i),
        }
    }
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
        let values = match columns.iter().position(|c| c.name() == "vals") {
            Some(index) => Values::Array(index),
            None => Values::Columns(values.into_iter().map(|(_, index)| index).collect()),
        };
        Ok(Self {
            id: find("id")?,
            email: find("email")?,
            state: find("state")?,
            until: find("until")?,
            attempts: find("attempts")?,
            first_attempt: find("first_attempt_at")?,
            last_reply: find("last_reply")?,
            values,
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
            values: self.values.of(row).into_iter().map(str::to_owned).collect(),
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
    tables: &Tables,
    statement: &str,
    params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
) -> StoreResult<Vec<Row>> {
    match client.query_typed(statement, params).await {
        Ok(rows) => Ok(rows),
        Err(e) if sql::is_missing_relation(&e) => {
            Err(catalog::missing_tables(client, tables.tenant(), tables.campaign()).await)
        }
        Err(e) => Err(sql::db_error(e)),
    }
}

pub(crate) async fn recipients(
    client: &Client,
    tables: &Tables,
    after: RecipientId,
    limit: u32,
) -> StoreResult<Vec<Recipient>> {
    let statement = format!(
        "SELECT * FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
        tables.recipient_rows("src")
    );
    let limit = i64::from(limit);
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
        [(&after.0, Type::INT8), (&limit, Type::INT8)];
    let rows = query(client, tables, &statement, &params).await?;
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let layout = Layout::of(first.columns())?;
    rows.iter().map(|row| layout.recipient(row)).collect()
}

/// Which due rows to read: the next page after an id, or some ids.
pub(crate) enum DueRows<'a> {
    After(RecipientId, u32),
    Among(&'a [RecipientId]),
}

pub(crate) async fn due_recipients(
    client: &Client,
    tables: &Tables,
    which: DueRows<'_>,
    now: DateTime<Utc>,
) -> StoreResult<RecipientBatch> {
    // A deferred row without a due time is due now (see `RecipientState::from_parts`).
    let due = "(state = 0 OR (state = 1 AND coalesce(until, '-infinity') <= $1))";
    let source = tables.recipient_rows("src");
    let rows = match which {
        DueRows::After(after, limit) => {
            let statement =
                format!("SELECT * FROM {source} WHERE id > $2 AND {due} ORDER BY id LIMIT $3");
            let limit = i64::from(limit);
            let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 3] = [
                (&now, Type::TIMESTAMPTZ),
                (&after.0, Type::INT8),
                (&limit, Type::INT8),
            ];
            query(client, tables, &statement, &params).await?
        }
        DueRows::Among(ids) => {
            let statement =
                format!("SELECT * FROM {source} WHERE id = ANY($2) AND {due} ORDER BY id");
            let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
            let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
                [(&now, Type::TIMESTAMPTZ), (&ids, Type::INT8_ARRAY)];
            query(client, tables, &statement, &params).await?
        }
    };
    let Some(first) = rows.first() else {
        // Rare (the end of a pass), so the second query only happens here.
        let columns = catalog::column_count(client, tables.tenant(), tables.campaign()).await?;
        return Ok(RecipientBatch::new(columns));
    };
    let layout = Layout::of(first.columns())?;
    let columns = layout.values.of(first).len();
    let mut batch = RecipientBatch::with_capacity(columns, rows.len(), 0);
    for row in &rows {
        let email: &str = row.get(layout.email);
        let attempts: i32 = row.get(layout.attempts);
        let attempts = u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("negative attempts {attempts}")))?;
        let first_attempt = row.get(layout.first_attempt);
        let id = RecipientId(row.get(layout.id));
        match &layout.values {
            Values::Columns(columns) => {
                let values = columns.iter().map(|&i| row.get::<_, &str>(i));
                batch.push_due(id, email, values, attempts, first_attempt);
            }
            Values::Array(i) => {
                let values: Vec<&str> = row.get(*i);
                if values.len() != columns {
                    return Err(StoreError::Corrupt(format!(
                        "recipient {id} has {} values where its batch has {columns}",
                        values.len()
                    )));
                }
                batch.push_due(id, email, values, attempts, first_attempt);
            }
        }
    }
    Ok(batch)
}

pub(crate) async fn recipient_by_email(
    client: &Client,
    tables: &Tables,
    email: &EmailAddress,
) -> StoreResult<Option<Recipient>> {
    // No index on email: imports stay fast, and this serves occasional look-ups
    // (support, unsubscribes by address), not the delivery path, which uses ids.
    let statement = format!(
        "SELECT * FROM {} WHERE email = $1 ORDER BY id LIMIT 1",
        tables.recipient_rows("src")
    );
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] =
        [(&email.as_str(), Type::TEXT)];
    let rows = query(client, tables, &statement, &params).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Layout::of(row.columns())?.recipient(row).map(Some)
}

pub(crate) async fn events(
    client: &Client,
    tables: &Tables,
    recipient: RecipientId,
) -> StoreResult<Vec<Event>> {
    let statement = format!(
        "SELECT kind, detail, at FROM {} WHERE recipient_id = $1 AND kind < 10 ORDER BY id",
        tables.event_rows("src")
    );
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] =
        [(&recipient.0, Type::INT8)];
    let rows = query(client, tables, &statement, &params).await?;
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
