//! Group commit of delivery outcomes: one transaction, two statements whatever the
//! batch size. The first locks the rows concerned (in id order, so concurrent
//! batches cannot deadlock); the transition table is applied in Rust, outcome by
//! outcome, so one batch may carry several outcomes for one recipient (deferred,
//! then delivered); the second writes rows, events and counter deltas from arrays.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

use super::tables::Tables;
use super::{catalog, sql};
use crate::model::{RecipientState, StateCode};
use crate::store::{CampaignCounters, Outcome, RecordReport, StoreResult};

/// A locked row as the batch changes it.
struct RowChange<'a> {
    state: StateCode,
    until: Option<DateTime<Utc>>,
    attempts: i32,
    /// As locked, then set by the first attempted outcome if still empty.
    first_attempt: Option<DateTime<Utc>>,
    reply: Option<&'a str>,
    at: Option<DateTime<Utc>>,
}

/// The columns of the writing statement, one array each.
#[derive(Default)]
struct Writes<'a> {
    ids: Vec<i64>,
    states: Vec<i16>,
    untils: Vec<Option<DateTime<Utc>>>,
    attempts: Vec<i32>,
    first_attempts: Vec<Option<DateTime<Utc>>>,
    replies: Vec<Option<&'a str>>,
    ats: Vec<DateTime<Utc>>,
    event_ids: Vec<i64>,
    event_kinds: Vec<i16>,
    event_details: Vec<Option<&'a str>>,
    event_ats: Vec<DateTime<Utc>>,
    deltas: CampaignCounters,
}

pub(crate) async fn record_outcomes(
    client: &mut Client,
    tables: &Tables,
    outcomes: &[Outcome],
) -> StoreResult<RecordReport> {
    if outcomes.is_empty() {
        return Ok(RecordReport::default());
    }
    let tx = client.transaction().await.map_err(sql::db_error)?;
    let locked = match lock_rows(&tx, tables, outcomes).await {
        Ok(locked) => locked,
        Err(e) if sql::is_missing_relation(&e) => {
            drop(tx);
            let (tenant, campaign) = (tables.tenant(), tables.campaign());
            return Err(catalog::missing_tables(client, tenant, campaign).await);
        }
        Err(e) => return Err(sql::db_error(e)),
    };
    let (writes, report) = apply(locked, outcomes);
    if report.applied > 0 {
        write(&tx, tables, &writes).await.map_err(sql::db_error)?;
    }
    tx.commit().await.map_err(sql::db_error)?;
    Ok(report)
}

async fn lock_rows<'a>(
    tx: &Transaction<'_>,
    tables: &Tables,
    outcomes: &[Outcome],
) -> Result<HashMap<i64, RowChange<'a>>, tokio_postgres::Error> {
    let mut ids: Vec<i64> = outcomes.iter().map(|o| o.recipient.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let statement = format!(
        "SELECT id, state, until, first_attempt_at FROM {} WHERE {}id = ANY($1)
         ORDER BY id FOR UPDATE",
        tables.recipients(),
        tables.filter("")
    );
    let rows = tx
        .query_typed(&statement, &[(&ids, Type::INT8_ARRAY)])
        .await?;
    let mut locked = HashMap::with_capacity(rows.len());
    for row in rows {
        // An unknown stored code locks the row but allows no transition.
        let state = StateCode::from_i16(row.get(1)).unwrap_or(StateCode::Suppressed);
        let change = RowChange {
            state,
            until: row.get(2),
            attempts: 0,
            first_attempt: row.get(3),
            reply: None,
            at: None,
        };
        locked.insert(row.get(0), change);
    }
    Ok(locked)
}

/// Applies the outcomes in order to the locked rows; unknown ids and transitions the
/// state machine refuses are counted as ignored.
fn apply<'a>(
    mut locked: HashMap<i64, RowChange<'a>>,
    outcomes: &'a [Outcome],
) -> (Writes<'a>, RecordReport) {
    let mut writes = Writes::default();
    let mut report = RecordReport::default();
    for outcome in outcomes {
        let id = outcome.recipient.0;
        let next = outcome.state.code();
        let Some(row) = locked
            .get_mut(&id)
            .filter(|row| RecipientState::allowed(row.state, next))
        else {
            report.ignored += 1;
            continue;
        };
        *writes.deltas.get_mut(row.state) -= 1;
        *writes.deltas.get_mut(next) += 1;
        row.state = next;
        row.until = outcome.state.until();
        row.attempts += i32::from(outcome.attempted);
        if outcome.attempted {
            row.first_attempt = row.first_attempt.or(Some(outcome.at));
        }
        row.reply = outcome.detail.as_deref().or(row.reply);
        row.at = Some(outcome.at);
        writes.event_ids.push(id);
        writes.event_kinds.push(next.as_i16());
        writes.event_details.push(outcome.detail.as_deref());
        writes.event_ats.push(outcome.at);
        report.applied += 1;
    }
    for (id, row) in locked {
        let Some(at) = row.at else { continue };
        writes.ids.push(id);
        writes.states.push(row.state.as_i16());
        writes.untils.push(row.until);
        writes.attempts.push(row.attempts);
        writes.first_attempts.push(row.first_attempt);
        writes.replies.push(row.reply);
        writes.ats.push(at);
    }
    (writes, report)
}

async fn write(
    tx: &Transaction<'_>,
    tables: &Tables,
    w: &Writes<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let (key_column, key_value) = tables.event_key();
    let statement = format!(
        "WITH u AS (
             UPDATE {recipients} AS r SET state = u.state, until = u.until,
                 attempts = r.attempts + u.attempts,
                 first_attempt_at = coalesce(r.first_attempt_at, u.first_attempt),
                 last_reply = coalesce(u.reply, r.last_reply), updated_at = u.at
             FROM unnest($1, $2, $3, $4, $5, $6, $7)
                 AS u(id, state, until, attempts, first_attempt, reply, at)
             WHERE {filter}r.id = u.id
         ), e AS (
             INSERT INTO {events} ({key_column}recipient_id, kind, detail, at)
             SELECT {key_value}* FROM unnest($8, $9, $10, $11)
         )
         UPDATE {schema}.campaigns SET pending = pending + $12, deferred = deferred + $13,
             delivered = delivered + $14, bounced = bounced + $15, failed = failed + $16,
             suppressed = suppressed + $17
         WHERE id = $18",
        recipients = tables.recipients(),
        filter = tables.filter("r"),
        events = tables.events(),
        schema = sql::schema(tables.tenant()),
    );
    let d = &w.deltas;
    let params: [(&(dyn ToSql + Sync), Type); 18] = [
        (&w.ids, Type::INT8_ARRAY),
        (&w.states, Type::INT2_ARRAY),
        (&w.untils, Type::TIMESTAMPTZ_ARRAY),
        (&w.attempts, Type::INT4_ARRAY),
        (&w.first_attempts, Type::TIMESTAMPTZ_ARRAY),
        (&w.replies, Type::TEXT_ARRAY),
        (&w.ats, Type::TIMESTAMPTZ_ARRAY),
        (&w.event_ids, Type::INT8_ARRAY),
        (&w.event_kinds, Type::INT2_ARRAY),
        (&w.event_details, Type::TEXT_ARRAY),
        (&w.event_ats, Type::TIMESTAMPTZ_ARRAY),
        (&d.pending, Type::INT8),
        (&d.deferred, Type::INT8),
        (&d.delivered, Type::INT8),
        (&d.bounced, Type::INT8),
        (&d.failed, Type::INT8),
        (&d.suppressed, Type::INT8),
        (&tables.campaign().0, Type::INT8),
    ];
    tx.execute_typed(&statement, &params).await
}
