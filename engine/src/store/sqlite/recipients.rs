//! A campaign's recipients and events: paging reads, the due-recipients query the
//! dispatcher runs, and `record_outcomes`, the group commit of delivery results.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::catalog::{add_counters, existing_campaign, imported_campaign};
use super::convert::{
    db_error, events_table, from_ms, ms_at, recipients_table, to_ms, value_column,
};
use crate::model::{CampaignId, EmailAddress, RecipientId, RecipientState, StateCode, TenantId};
use crate::store::{
    CampaignCounters, Event, Outcome, Recipient, RecipientBatch, RecordReport, StoreError,
    StoreResult,
};

/// `id, email, state, until, attempts, last_reply, first_attempt_at, v1, .., vN`.
fn recipient_select(columns: usize) -> String {
    let mut sql =
        String::from("SELECT id, email, state, until, attempts, last_reply, first_attempt_at");
    for index in 0..columns {
        sql.push_str(", ");
        sql.push_str(&value_column(index));
    }
    sql
}

fn state_of(row: &Row<'_>, code: usize, until: usize) -> StoreResult<RecipientState> {
    let code: i16 = row.get(code).map_err(db_error)?;
    let until: Option<i64> = row.get(until).map_err(db_error)?;
    let code = StateCode::from_i16(code)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown recipient state {code}")))?;
    Ok(RecipientState::from_parts(code, time(until, "due time")?))
}

/// A nullable timestamp column, already read.
fn time(ms: Option<i64>, what: &str) -> StoreResult<Option<DateTime<Utc>>> {
    ms.map(|ms| from_ms(ms).ok_or_else(|| StoreError::Corrupt(format!("bad {what} {ms}"))))
        .transpose()
}

fn recipient_row(row: &Row<'_>, columns: usize) -> StoreResult<Recipient> {
    let email: String = row.get(1).map_err(db_error)?;
    let email = EmailAddress::parse(&email)
        .map_err(|e| StoreError::Corrupt(format!("stored address {email:?}: {e}")))?;
    let values = (0..columns)
        .map(|index| row.get(7 + index))
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(db_error)?;
    Ok(Recipient {
        id: RecipientId(row.get(0).map_err(db_error)?),
        email,
        values,
        state: state_of(row, 2, 3)?,
        attempts: row.get(4).map_err(db_error)?,
        first_attempt: time(row.get(6).map_err(db_error)?, "first attempt")?,
        last_reply: row.get(5).map_err(db_error)?,
    })
}

pub(super) fn recipients(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
    after: RecipientId,
    limit: u32,
) -> StoreResult<Vec<Recipient>> {
    let columns = imported_campaign(conn, tenant, campaign)?.columns.len();
    let sql = format!(
        "{} FROM {} WHERE id > ?1 ORDER BY id LIMIT ?2",
        recipient_select(columns),
        recipients_table(campaign)
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = stmt.query(params![after.0, limit]).map_err(db_error)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        found.push(recipient_row(row, columns)?);
    }
    Ok(found)
}

pub(super) fn recipient_by_email(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
    email: &EmailAddress,
) -> StoreResult<Option<Recipient>> {
    let columns = imported_campaign(conn, tenant, campaign)?.columns.len();
    let sql = format!(
        "{} FROM {} WHERE email = ?1 ORDER BY id LIMIT 1",
        recipient_select(columns),
        recipients_table(campaign)
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = stmt.query([email.as_str()]).map_err(db_error)?;
    rows.next()
        .map_err(db_error)?
        .map(|row| recipient_row(row, columns))
        .transpose()
}

/// Pending rows and deferred rows whose time has come, by id. The primary key range
/// scan suffices: the dispatcher pages forward, so each pass reads each row once.
/// Which due rows to read: the next page after an id, or some ids.
pub(super) enum DueRows<'a> {
    After(RecipientId, u32),
    Among(&'a [RecipientId]),
}

pub(super) fn due_recipients(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
    which: DueRows<'_>,
    now: DateTime<Utc>,
) -> StoreResult<RecipientBatch> {
    let columns = imported_campaign(conn, tenant, campaign)?.columns.len();
    let mut sql = String::from("SELECT id, email, attempts, first_attempt_at");
    for index in 0..columns {
        sql.push_str(", ");
        sql.push_str(&value_column(index));
    }
    let due = "(state = 0 OR (state = 1 AND (until IS NULL OR until <= ?1)))";
    // One cached statement per shape: a list of ids goes in as a JSON array.
    let (rows_wanted, capacity, args): (&str, usize, Vec<Value>) = match which {
        DueRows::After(after, limit) => (
            "id > ?2 ORDER BY id LIMIT ?3",
            limit as usize,
            vec![to_ms(now).into(), after.0.into(), i64::from(limit).into()],
        ),
        DueRows::Among(ids) => {
            let list: Vec<i64> = ids.iter().map(|id| id.0).collect();
            let list =
                serde_json::to_string(&list).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            (
                "id IN (SELECT value FROM json_each(?2)) ORDER BY id",
                ids.len(),
                vec![to_ms(now).into(), list.into()],
            )
        }
    };
    sql.push_str(&format!(
        " FROM {} WHERE {due} AND {rows_wanted}",
        recipients_table(campaign)
    ));
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(db_error)?;
    let mut batch = RecipientBatch::with_capacity(columns, capacity, 0);
    while let Some(row) = rows.next().map_err(db_error)? {
        let id = RecipientId(row.get(0).map_err(db_error)?);
        let attempts: u32 = row.get(2).map_err(db_error)?;
        let first_attempt = time(row.get(3).map_err(db_error)?, "first attempt")?;
        let mut bad = None;
        // Borrowed straight from SQLite's buffers: no allocation per row or field.
        let mut text = |index: usize| match row.get_ref(index).and_then(|v| Ok(v.as_str()?)) {
            Ok(text) => text,
            Err(err) => {
                bad.get_or_insert(err);
                ""
            }
        };
        let email = text(1);
        let values = (0..columns).map(|index| text(4 + index));
        batch.push_due(id, email, values, attempts, first_attempt);
        if let Some(err) = bad {
            return Err(db_error(err));
        }
    }
    Ok(batch)
}

pub(super) fn events(
    conn: &Connection,
    tenant: TenantId,
    campaign: CampaignId,
    recipient: RecipientId,
) -> StoreResult<Vec<Event>> {
    imported_campaign(conn, tenant, campaign)?;
    let sql = format!(
        "SELECT kind, detail, at FROM {} WHERE recipient_id = ?1 AND kind < 10 ORDER BY id",
        events_table(campaign)
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = stmt.query([recipient.0]).map_err(db_error)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let kind: i16 = row.get(0).map_err(db_error)?;
        found.push(Event {
            recipient,
            kind: StateCode::from_i16(kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown event kind {kind}")))?,
            detail: row.get(1).map_err(db_error)?,
            at: ms_at(row, 2).map_err(db_error)?,
        });
    }
    Ok(found)
}

/// One transaction for the whole batch (group commit). Outcomes are applied in order,
/// each against the state the previous ones left, so a batch may carry several
/// outcomes for one recipient (deferred, then delivered).
pub(super) fn record_outcomes(
    conn: &mut Connection,
    tenant: TenantId,
    campaign: CampaignId,
    outcomes: &[Outcome],
) -> StoreResult<RecordReport> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    imported_campaign(&tx, tenant, campaign)?;
    let table = recipients_table(campaign);
    let mut read = tx
        .prepare_cached(&format!("SELECT state FROM {table} WHERE id = ?1"))
        .map_err(db_error)?;
    let mut update = tx
        .prepare_cached(&format!(
            "UPDATE {table} SET state = ?2, until = ?3, attempts = attempts + ?4,
                 last_reply = coalesce(?5, last_reply), updated_at = ?6,
                 first_attempt_at = coalesce(first_attempt_at, ?7)
             WHERE id = ?1"
        ))
        .map_err(db_error)?;
    let mut event = tx
        .prepare_cached(&format!(
            "INSERT INTO {} (recipient_id, kind, detail, at) VALUES (?1, ?2, ?3, ?4)",
            events_table(campaign)
        ))
        .map_err(db_error)?;
    let mut report = RecordReport::default();
    let mut delta = CampaignCounters::default();
    for outcome in outcomes {
        let id = outcome.recipient.0;
        let current: Option<i16> = read
            .query_row([id], |row| row.get(0))
            .optional()
            .map_err(db_error)?;
        let from = current.and_then(StateCode::from_i16);
        let to = outcome.state.code();
        let Some(from) = from.filter(|from| RecipientState::allowed(*from, to)) else {
            report.ignored += 1;
            continue;
        };
        let at = to_ms(outcome.at);
        update
            .execute(params![
                id,
                to.as_i16(),
                outcome.state.until().map(to_ms),
                i32::from(outcome.attempted),
                outcome.detail,
                at,
                outcome.attempted.then_some(at)
            ])
            .map_err(db_error)?;
        event
            .execute(params![id, to.as_i16(), outcome.detail, at])
            .map_err(db_error)?;
        *delta.get_mut(from) -= 1;
        *delta.get_mut(to) += 1;
        report.applied += 1;
    }
    drop((read, update, event));
    add_counters(&tx, campaign, &delta)?;
    tx.commit().map_err(db_error)?;
    Ok(report)
}

/// Drops the campaign's personal data. The tenant file runs with `secure_delete`, so
/// the freed pages are overwritten with zeros, and the WAL (which still holds copies
/// of recently written rows) is checkpointed and truncated, so no copy of the rows
/// remains in either file. The file does not shrink (no VACUUM, which would rewrite
/// every campaign of the tenant); the zeroed pages are reused by later imports.
pub(super) fn drop_campaign_data(
    conn: &mut Connection,
    tenant: TenantId,
    campaign: CampaignId,
) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    existing_campaign(&tx, tenant, campaign)?;
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
        recipients_table(campaign),
        events_table(campaign)
    ))
    .map_err(db_error)?;
    tx.execute(
        "UPDATE campaigns SET imported = 0 WHERE id = ?1",
        [campaign.0],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    checkpoint(conn)
}

/// Copies the WAL into the main file and truncates the WAL to zero bytes.
pub(super) fn checkpoint(conn: &Connection) -> StoreResult<()> {
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .map_err(db_error)?;
    match busy {
        0 => Ok(()),
        _ => Err(StoreError::Database {
            code: Some("SQLITE_BUSY".into()),
            message: "the WAL could not be checkpointed: another connection is reading".into(),
        }),
    }
}
