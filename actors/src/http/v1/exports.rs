//! The tenant's exchange `exports` folder over HTTP: `GET /v1/exports` lists
//! it, `POST /v1/exports/{name}/url?expires=S` hands out an Escher pre-signed
//! URL, and `GET /v1/exports/{name}` streams the file to whoever holds such a
//! URL (or signs the request as usual). The URL is signed with the caller's own
//! key, so it names the tenant, expires, stops working when the key is revoked,
//! and can never reach another tenant's folder: the file is looked up in the
//! folder of the key's tenant, and a name not there is 404 whoever owns it.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use engine::auth::escher::{self, DEFAULT_PRESIGN_EXPIRY};
use engine::model::{TenantId, TenantName};
use serde::Deserialize;

use super::V1Error;
use crate::http::ApiState;
use crate::http::auth::Signed;
use crate::http::export_files::{self, OpenExport};

/// The longest validity a URL may ask for: a week, as S3 allows.
const MAX_EXPIRY: u64 = 7 * 86_400;

#[derive(Debug, Deserialize)]
pub struct UrlQuery {
    /// Seconds the URL stays valid; the Escher default (a day) when absent.
    expires: Option<u64>,
}

/// The caller's tenant name, which names its exchange folders.
async fn tenant_name(state: &ApiState, tenant: TenantId) -> Result<TenantName, V1Error> {
    let tenants = state.store.tenants().await?;
    tenants
        .into_iter()
        .find(|t| t.id == tenant)
        .map(|t| t.name)
        .ok_or_else(|| V1Error::Internal(format!("tenant {tenant} of a valid key is gone")))
}

/// The file `name` in the caller's exports folder, opened; else 404.
async fn export_file(
    state: &ApiState,
    tenant: TenantId,
    name: &str,
) -> Result<OpenExport, V1Error> {
    let tenant = tenant_name(state, tenant).await?;
    export_files::open(&state.exchange_root, &tenant, name)
        .await
        .ok_or_else(|| V1Error::ExportNotFound(name.to_owned()))
}

/// `GET /v1/exports`: the files of the caller's exports folder, by name.
pub async fn list(state: web::Data<ApiState>, signed: Signed) -> Result<HttpResponse, V1Error> {
    let tenant = tenant_name(&state, signed.caller.tenant).await?;
    let files = export_files::list(&state.exchange_root, &tenant)
        .await
        .map_err(|e| V1Error::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "files": files })))
}

/// `POST /v1/exports/{name}/url?expires=S`: a pre-signed download URL for one
/// of the caller's files, signed with the caller's key.
pub async fn presign(
    state: web::Data<ApiState>,
    req: HttpRequest,
    signed: Signed,
    name: web::Path<String>,
    query: web::Query<UrlQuery>,
) -> Result<HttpResponse, V1Error> {
    let expires = query.expires.unwrap_or(DEFAULT_PRESIGN_EXPIRY.as_secs());
    if !(1..=MAX_EXPIRY).contains(&expires) {
        return Err(V1Error::Invalid(format!(
            "expires must be 1 to {MAX_EXPIRY} seconds, not {expires}"
        )));
    }
    export_file(&state, signed.caller.tenant, &name).await?;
    let key = state
        .keys
        .lookup(&signed.caller.key_id)
        .await?
        .ok_or(V1Error::Unavailable)?;
    let info = req.connection_info();
    let url = format!(
        "{}://{}/v1/exports/{}",
        info.scheme(),
        info.host(),
        export_files::path_segment(&name)
    );
    let now = Utc::now();
    let signed_url = escher::presign_url(
        &state.escher,
        &signed.caller.key_id,
        &key.secret,
        &url,
        Duration::from_secs(expires),
        now,
    )
    .map_err(|e| V1Error::Internal(e.to_string()))?;
    let expires_at = now + chrono::Duration::seconds(expires as i64);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "url": signed_url, "expires_at": expires_at })))
}

/// `GET /v1/exports/{name}`: the file, streamed in chunks (never whole in memory).
pub async fn download(
    state: web::Data<ApiState>,
    signed: Signed,
    name: web::Path<String>,
) -> Result<HttpResponse, V1Error> {
    Ok(export_file(&state, signed.caller.tenant, &name)
        .await?
        .response())
}
