//! The tenant's exchange `exports` folder over HTTP: `GET /v1/exports` lists
//! it, `POST /v1/exports/{name}/url?expires=S` hands out an Escher pre-signed
//! URL, and `GET /v1/exports/{name}` streams the file to whoever holds such a
//! URL (or signs the request as usual). The URL is signed with the caller's own
//! key, so it names the tenant, expires, stops working when the key is revoked,
//! and can never reach another tenant's folder: the file is looked up in the
//! folder of the key's tenant, and a name not there is 404 whoever owns it.

use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use chrono::Utc;
use engine::auth::escher::{self, DEFAULT_PRESIGN_EXPIRY};
use engine::exchange::{Folder, TenantFolders, check_file_name};
use engine::model::TenantId;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;

use super::V1Error;
use crate::http::ApiState;
use crate::http::auth::Signed;

/// The longest validity a URL may ask for: a week, as S3 allows.
const MAX_EXPIRY: u64 = 7 * 86_400;

/// Bytes read from the file per chunk of the response.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Serialize)]
struct ExportFile {
    name: String,
    size: u64,
    modified: Option<chrono::DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
pub struct UrlQuery {
    /// Seconds the URL stays valid; the Escher default (a day) when absent.
    expires: Option<u64>,
}

/// The caller's `exports` folder.
async fn exports_folder(state: &ApiState, tenant: TenantId) -> Result<PathBuf, V1Error> {
    let tenants = state.store.tenants().await?;
    let tenant = tenants
        .into_iter()
        .find(|t| t.id == tenant)
        .ok_or_else(|| V1Error::Internal(format!("tenant {tenant} of a valid key is gone")))?;
    Ok(TenantFolders::new(&state.exchange_root, &tenant.name).folder(Folder::Exports))
}

/// The file `name` in the caller's exports folder: a plain name, a regular
/// file (never a symlink), else 404 — the same answer whether or not another
/// tenant has a file of that name.
async fn export_file(
    state: &ApiState,
    tenant: TenantId,
    name: &str,
) -> Result<(PathBuf, std::fs::Metadata), V1Error> {
    let not_found = || V1Error::ExportNotFound(name.to_owned());
    check_file_name(name).map_err(|_| not_found())?;
    let path = exports_folder(state, tenant).await?.join(name);
    let meta = tokio::fs::symlink_metadata(&path)
        .await
        .map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    Ok((path, meta))
}

/// `GET /v1/exports`: the files of the caller's exports folder, by name.
pub async fn list(state: web::Data<ApiState>, signed: Signed) -> Result<HttpResponse, V1Error> {
    let folder = exports_folder(&state, signed.caller.tenant).await?;
    let mut files = Vec::new();
    let mut entries = match tokio::fs::read_dir(&folder).await {
        Ok(entries) => entries,
        // No folder yet: nothing exported yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HttpResponse::Ok().json(serde_json::json!({ "files": files })));
        }
        Err(e) => return Err(V1Error::Internal(format!("{}: {e}", folder.display()))),
    };
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| V1Error::Internal(format!("{}: {e}", folder.display())))?
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata().await else {
            continue;
        };
        if !meta.is_file() || check_file_name(&name).is_err() {
            continue;
        }
        files.push(ExportFile {
            name,
            size: meta.len(),
            modified: meta.modified().ok().map(chrono::DateTime::<Utc>::from),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
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
        escher_path_segment(&name)
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

/// Percent-encodes a file name for the URL path (everything but unreserved).
fn escher_path_segment(name: &str) -> String {
    use std::fmt::Write as _;
    name.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// `GET /v1/exports/{name}`: the file, streamed in chunks (never whole in memory).
pub async fn download(
    state: web::Data<ApiState>,
    signed: Signed,
    name: web::Path<String>,
) -> Result<HttpResponse, V1Error> {
    let (path, meta) = export_file(&state, signed.caller.tenant, &name).await?;
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .await
        .map_err(|_| V1Error::ExportNotFound(name.to_string()))?;
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(name.to_string())],
    };
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(disposition)
        .no_chunking(meta.len())
        .streaming(stream))
}
