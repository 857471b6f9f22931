//! `POST /v1/campaigns/{id}/imports` with `{"file": "name.csv"}`: imports a file
//! from the tenant's exchange `incoming` folder, the same way a control file
//! does, and answers with the outcome once the file has been settled.

use actix_web::{HttpResponse, web};
use engine::exchange::{
    ExchangeError, FileImport, Folder, ImportTarget, TenantFolders, Verdict, check_file_name,
    import_named,
};
use engine::model::CampaignId;
use serde::{Deserialize, Serialize};

use super::campaigns::owned;
use super::{V1Error, parse_json};
use crate::http::ApiState;
use crate::http::auth::Signed;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    file: String,
}

#[derive(Debug, Serialize)]
struct ImportView {
    file: String,
    campaign: Option<CampaignId>,
    /// `finished` or `invalid`: the folder the file moved to.
    result: Verdict,
    loaded: u64,
    rejected: u64,
    total_rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The report's name beside the moved file, when rows were refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<String>,
}

impl From<FileImport> for ImportView {
    fn from(done: FileImport) -> Self {
        let outcome = done.outcome.as_ref();
        ImportView {
            campaign: done.campaign,
            result: done.verdict,
            loaded: outcome.map_or(0, |o| o.loaded),
            rejected: outcome.map_or(0, |o| o.rejected),
            total_rows: outcome.map_or(0, |o| o.total_rows),
            reason: done.reason,
            report: done
                .report
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())),
            file: done.file,
        }
    }
}

pub async fn import_file(
    state: web::Data<ApiState>,
    signed: Signed,
    id: web::Path<i64>,
) -> Result<HttpResponse, V1Error> {
    let tenant_id = signed.caller.tenant;
    let campaign = owned(state.store.as_ref(), tenant_id, CampaignId(*id)).await?;
    let request: ImportRequest = parse_json(&signed.body)?;
    check_file_name(&request.file)
        .map_err(|_| V1Error::Invalid(format!("{:?} is not a file name", request.file)))?;
    let tenants = state.store.tenants().await?;
    let Some(tenant) = tenants.into_iter().find(|t| t.id == tenant_id) else {
        return Err(V1Error::CampaignNotFound(campaign.id));
    };
    let folders = TenantFolders::new(&state.exchange_root, &tenant.name);
    let path = folders.folder(Folder::Incoming).join(&request.file);
    if state.exchange_writes.is_open(&path) {
        return Err(V1Error::Conflict(format!(
            "{} is still being uploaded",
            request.file
        )));
    }
    let target = ImportTarget::Id(campaign.id);
    let done = import_named(
        state.store.as_ref(),
        &tenant,
        &folders,
        &request.file,
        target,
        &state.import,
        Some(&state.pgp),
    )
    .await
    .map_err(|e| match e {
        ExchangeError::NotFound(file) => V1Error::FileNotFound(file),
        ExchangeError::Store(e) => V1Error::from(e),
        e => V1Error::Internal(e.to_string()),
    })?;
    let status = match done.verdict {
        Verdict::Finished => actix_web::http::StatusCode::OK,
        Verdict::Invalid => actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok(HttpResponse::build(status).json(ImportView::from(done)))
}
