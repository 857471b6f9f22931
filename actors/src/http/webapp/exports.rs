//! The exports page: the files of the tenant's exchange `exports` folder, each
//! with a download link served to the logged-in session. Every download is
//! audited before a byte is sent (an operator's as access to the tenant's
//! personal data); a download that cannot be audited does not happen.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::access::{Need, tenant_page};
use super::{WebState, not_found, unavailable};
use crate::http::export_files;

/// `GET /web/exports/{tenant}`.
pub async fn list(
    state: web::Data<WebState>,
    req: HttpRequest,
    tenant: web::Path<i64>,
) -> HttpResponse {
    let page = match tenant_page(&state, &req, *tenant, Need::Member, Some("exports")).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let files = match export_files::list(&state.exchange_root, &page.tenant.name).await {
        Ok(files) => files,
        Err(error) => return unavailable(&error),
    };
    let rows: Vec<_> = files
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "size": f.size,
                "modified": f.modified.map(|m| m.format("%Y-%m-%d %H:%M:%SZ").to_string()),
                "href": format!(
                    "/web/exports/{}/{}",
                    page.tenant.id.0,
                    export_files::path_segment(&f.name)
                ),
            })
        })
        .collect();
    let mut data = page.data();
    data["files"] = json!(rows);
    state.page(StatusCode::OK, "exports", "Exports", data)
}

/// `GET /web/exports/{tenant}/{name}`: the file as an attachment.
pub async fn download(
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
) -> HttpResponse {
    let (tenant, name) = path.into_inner();
    let page = match tenant_page(&state, &req, tenant, Need::Member, None).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let Some(file) = export_files::open(&state.exchange_root, &page.tenant.name, &name).await
    else {
        return not_found();
    };
    let record = page
        .audit(&state, "export.download", &req)
        .target(&file.name)
        .detail(&json!({"size": file.size, "operator": page.operator()}));
    if let Err(error) = state.store.append_audit(&record).await {
        return unavailable(&error);
    }
    file.response()
}
