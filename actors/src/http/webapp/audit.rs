//! The audit log page (tenant admins; operators for any tenant): the tenant's
//! entries newest first, a page at a time, and the whole log as a CSV download
//! streamed page by page (never whole in memory). The export is itself audited,
//! before its first row is read, so it lists itself.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use engine::model::TenantId;
use engine::store::{AuditEntry, AuditQuery, Store, StoreError};
use serde::Deserialize;
use serde_json::json;

use super::access::{Need, tenant_page};
use super::{WebState, unavailable};

/// Entries on one page.
const PAGE: u32 = 50;
/// Entries read from the store per chunk of the CSV download.
const CSV_CHUNK: u32 = 500;

pub const CSV_COLUMNS: [&str; 8] = [
    "id", "at", "actor", "action", "target", "outcome", "ip", "detail",
];

#[derive(Deserialize)]
pub struct PageQuery {
    /// Entries older than this id: the next page.
    before: Option<i64>,
}

/// `GET /web/audit/{tenant}?before=ID`.
pub async fn page(
    state: web::Data<WebState>,
    req: HttpRequest,
    tenant: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> HttpResponse {
    let page = match tenant_page(&state, &req, *tenant, Need::Admin, Some("audit")).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let entries = match state
        .store
        .audit_log(AuditQuery {
            tenant: Some(page.tenant.id),
            before: query.before,
            limit: PAGE,
        })
        .await
    {
        Ok(entries) => entries,
        Err(error) => return unavailable(&error),
    };
    let rows: Vec<_> = entries
        .iter()
        .map(|e| {
            let r = &e.record;
            json!({
                "id": e.id,
                "at": r.at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "outcome": r.outcome,
                "ip": r.ip,
                "detail": r.detail,
            })
        })
        .collect();
    let base = format!("/web/audit/{}", page.tenant.id.0);
    let older = (entries.len() == PAGE as usize)
        .then(|| entries.last().map(|e| format!("{base}?before={}", e.id)))
        .flatten();
    let mut data = page.data();
    data["entries"] = json!(rows);
    data["older"] = json!(older);
    data["newest"] = json!(query.before.map(|_| base.clone()));
    data["csv"] = json!(format!("{base}/csv"));
    state.page(StatusCode::OK, "audit", "Audit log", data)
}

/// `GET /web/audit/{tenant}/csv`: the tenant's whole audit log, newest first.
pub async fn csv(
    state: web::Data<WebState>,
    req: HttpRequest,
    tenant: web::Path<i64>,
) -> HttpResponse {
    let page = match tenant_page(&state, &req, *tenant, Need::Admin, None).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let record = page.audit(&state, "audit.export", &req);
    if let Err(error) = state.store.append_audit(&record).await {
        return unavailable(&error);
    }
    let name = format!(
        "audit-{}-{}.csv",
        page.tenant.name,
        state.clock.now().format("%Y%m%d-%H%M%S")
    );
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(name)],
    };
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(disposition)
        .streaming(rows(Arc::clone(&state.store), page.tenant.id))
}

/// Where the CSV stream stands.
enum Cursor {
    Start,
    Before(i64),
    Done,
}

/// The CSV as chunks: the header, then one chunk per page of entries.
fn rows(
    store: Arc<dyn Store>,
    tenant: TenantId,
) -> impl futures_util::Stream<Item = Result<Bytes, StoreError>> {
    futures_util::stream::unfold(Cursor::Start, move |cursor| {
        let store = Arc::clone(&store);
        async move {
            let before = match cursor {
                Cursor::Done => return None,
                Cursor::Start => None,
                Cursor::Before(id) => Some(id),
            };
            let entries = match store
                .audit_log(AuditQuery {
                    tenant: Some(tenant),
                    before,
                    limit: CSV_CHUNK,
                })
                .await
            {
                Ok(entries) => entries,
                Err(error) => return Some((Err(error), Cursor::Done)),
            };
            let next = match entries.last() {
                Some(last) if entries.len() == CSV_CHUNK as usize => Cursor::Before(last.id),
                _ => Cursor::Done,
            };
            if entries.is_empty() && before.is_some() {
                return None;
            }
            Some((Ok(Bytes::from(csv_chunk(before.is_none(), &entries))), next))
        }
    })
}

/// One chunk of the CSV, with the header when it is the first.
pub fn csv_chunk(header: bool, entries: &[AuditEntry]) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail; a failed row would only shorten the chunk.
    if header {
        let _ = out.write_record(CSV_COLUMNS);
    }
    for e in entries {
        let r = &e.record;
        let _ = out.write_record([
            e.id.to_string(),
            r.at.to_rfc3339(),
            cell(&r.actor),
            cell(&r.action),
            cell(r.target.as_deref().unwrap_or("")),
            cell(&r.outcome),
            cell(r.ip.as_deref().unwrap_or("")),
            cell(r.detail.as_deref().unwrap_or("")),
        ]);
    }
    out.into_inner().unwrap_or_default()
}

/// A text cell that a spreadsheet will not run as a formula: one that starts
/// with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`
/// (a user name or a failed login's name tried is chosen by whoever typed it).
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use engine::store::AuditRecord;

    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
            .single()
            .expect("t");
        let entry = AuditEntry {
            id: 7,
            record: AuditRecord::new(Some(TenantId(1)), "user:=cmd", "login.password", at)
                .target("a,\"b\"")
                .outcome("wrong_password"),
        };
        let text = String::from_utf8(csv_chunk(true, &[entry])).expect("utf-8");
        assert_eq!(
            text,
            "id,at,actor,action,target,outcome,ip,detail\n\
             7,2026-11-01T12:00:00+00:00,user:=cmd,login.password,\"a,\"\"b\"\"\",wrong_password,,\n"
        );
        assert_eq!(cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(cell("-x"), "'-x");
        assert_eq!(cell("ok"), "ok");
    }
}
