//! `POST /v1/messages` and `GET /v1/messages/{id}`: batch submit into the same
//! pipeline as campaigns. Each batch becomes a campaign named `msg-<uuid>` (the
//! prefix marks it; `POST /v1/campaigns` refuses it), its columns the template's
//! variables, so delivery, retries, tracking and retention treat it like any
//! other. The store creates it whole — row, tables, recipients, launch and
//! idempotency key in one transaction (`Store::create_batch`) — so a request
//! that fails midway leaves nothing behind.
//!
//! Recipients on the tenant's suppression list are rejected with code
//! `suppressed`, like any other recipient the batch cannot take.
//!
//! Retries are made safe by `Idempotency-Key`: the key, the body's SHA-256, the
//! batch id and the response are kept (per tenant) with the batch; a retry with
//! the same body gets that response, one with another body gets 422.

use std::collections::HashSet;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use engine::model::{CampaignId, CampaignName, EmailAddress, TenantId};
use engine::render::CampaignDefinition;
use engine::store::{
    BatchCreated, Campaign, CampaignStatus, IdempotencyClaim, IdempotencyRecord, ImportSummary,
    NewBatch,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::batch::{self, Accepted, Judged, MAX_RECIPIENTS, Rejected, Submitted};
use super::campaigns::owned;
use super::{V1Error, parse_json};
use crate::http::ApiState;
use crate::http::auth::Signed;
use crate::http::rate::retry_after_secs;

/// The name prefix that marks a campaign as a message batch.
pub const BATCH_PREFIX: &str = "msg-";

/// Longest `Idempotency-Key` accepted; keys are ids, not documents.
const MAX_KEY_LEN: usize = 255;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    /// An inline definition (from, subject, html, text, …).
    #[serde(default)]
    template: Option<CampaignDefinition>,
    /// Or the id of a campaign of the caller's whose definition is reused.
    #[serde(default)]
    template_id: Option<i64>,
    recipients: Vec<Submitted>,
}

#[derive(Debug, Serialize)]
struct SubmitResponse<'a> {
    id: CampaignId,
    status: CampaignStatus,
    accepted: &'a [Accepted],
    rejected: &'a [Rejected],
}

/// Whether a campaign is a message batch rather than a campaign proper.
pub fn is_batch(campaign: &Campaign) -> bool {
    campaign.name.as_str().starts_with(BATCH_PREFIX)
}

pub async fn submit(
    state: web::Data<ApiState>,
    req: HttpRequest,
    signed: Signed,
) -> Result<HttpResponse, V1Error> {
    let tenant = signed.caller.tenant;
    let key = idempotency_key(&req)?;
    let hash = hex(&Sha256::digest(&signed.body));
    if let Some(key) = &key
        && let Some(record) = state.store.idempotency_record(tenant, key).await?
    {
        return replay(record, &hash);
    }
    let request: SubmitRequest = parse_json(&signed.body)?;
    check_size(&request.recipients)?;
    state
        .limiter
        .take(tenant, request.recipients.len(), Instant::now())
        .map_err(|wait| V1Error::RateLimited {
            retry_after: retry_after_secs(wait),
        })?;
    let definition = definition(&state, tenant, &request).await?;
    let variables = batch::template_variables(&definition)?;
    let suppressed = suppressed(&state, tenant, &request.recipients).await?;
    let judged = batch::judge(&request.recipients, &variables, &suppressed);
    if judged.accepted.is_empty() {
        return Ok(HttpResponse::UnprocessableEntity().json(serde_json::json!({
            "error": { "code": "nothing_accepted", "message": "no recipient of the batch is valid" },
            "accepted": [],
            "rejected": judged.rejected,
        })));
    }
    let definition =
        serde_json::to_string(&definition).map_err(|e| V1Error::Internal(e.to_string()))?;
    let name = format!("{BATCH_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let name = CampaignName::parse(&name).map_err(|e| V1Error::Internal(e.to_string()))?;
    let summary = ImportSummary {
        source: "POST /v1/messages".to_owned(),
        rows_loaded: judged.accepted.len() as i64,
        rows_rejected: judged.rejected.len() as i64,
    };
    let new = NewBatch {
        name: &name,
        definition: &definition,
        columns: &variables,
        rows: &judged.batch,
        summary: &summary,
    };
    let respond = |id| response_body(id, &judged);
    let claim = key.as_deref().map(|key| IdempotencyClaim {
        key,
        request_hash: &hash,
        response: &respond,
    });
    match state
        .store
        .create_batch(tenant, &new, claim.as_ref())
        .await?
    {
        BatchCreated::Replayed(record) => replay(record, &hash),
        BatchCreated::Created { id, response } => {
            // The batch is stored as running; the engine starts it now rather
            // than at its next look at the store.
            state.runtime.launch(tenant, id).await;
            let body = response.unwrap_or_else(|| respond(id));
            Ok(HttpResponse::Created()
                .content_type("application/json")
                .body(body))
        }
    }
}

/// The answer to a created batch, as sent and as kept under its key.
fn response_body(id: CampaignId, judged: &Judged) -> String {
    let response = SubmitResponse {
        id,
        status: CampaignStatus::Running,
        accepted: &judged.accepted,
        rejected: &judged.rejected,
    };
    // Plain structs with string keys: serializing cannot fail.
    serde_json::to_string(&response).unwrap_or_default()
}

/// Which of the batch's (valid) addresses are on the tenant's suppression list:
/// one store call per request, like the dispatcher's one per batch.
async fn suppressed(
    state: &ApiState,
    tenant: TenantId,
    recipients: &[Submitted],
) -> Result<HashSet<String>, V1Error> {
    let emails: Vec<String> = recipients
        .iter()
        .filter_map(|r| EmailAddress::parse(&r.email).ok())
        .map(EmailAddress::into_string)
        .collect();
    Ok(state.store.suppressed_among(tenant, &emails).await?)
}

/// The `Idempotency-Key` header, if any, checked for length and printability.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, V1Error> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            V1Error::Invalid(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// The first response to this key, if the body is the same.
fn replay(record: IdempotencyRecord, hash: &str) -> Result<HttpResponse, V1Error> {
    if record.request_hash != hash {
        return Err(V1Error::IdempotencyMismatch);
    }
    Ok(HttpResponse::Created()
        .content_type("application/json")
        .insert_header(("Idempotent-Replayed", "true"))
        .body(record.response))
}

fn check_size(recipients: &[Submitted]) -> Result<(), V1Error> {
    if recipients.is_empty() {
        return Err(V1Error::Invalid("the batch has no recipients".into()));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(V1Error::Invalid(format!(
            "the batch has {} recipients; at most {MAX_RECIPIENTS} are allowed",
            recipients.len()
        )));
    }
    Ok(())
}

/// The inline template, or the definition of the caller's campaign `template_id`.
async fn definition(
    state: &ApiState,
    tenant: TenantId,
    request: &SubmitRequest,
) -> Result<CampaignDefinition, V1Error> {
    match (&request.template, request.template_id) {
        (Some(template), None) => Ok(template.clone()),
        (None, Some(id)) => {
            let campaign = owned(state.store.as_ref(), tenant, CampaignId(id)).await?;
            let json = campaign.definition.ok_or_else(|| {
                V1Error::Conflict(format!("campaign {id} has no definition to reuse"))
            })?;
            serde_json::from_str(&json).map_err(|e| V1Error::Internal(e.to_string()))
        }
        _ => Err(V1Error::Invalid(
            "give exactly one of `template` and `template_id`".into(),
        )),
    }
}

/// `GET /v1/messages/{id}`: a batch's status and counters; campaigns that are
/// not batches, and other tenants' batches, are not found.
pub async fn status(
    state: web::Data<ApiState>,
    signed: Signed,
    id: web::Path<i64>,
) -> Result<HttpResponse, V1Error> {
    let id = CampaignId(*id);
    let campaign = state
        .store
        .campaign(signed.caller.tenant, id)
        .await?
        .filter(is_batch)
        .ok_or(V1Error::MessageNotFound(id))?;
    let counters = state.store.counters(campaign.tenant, campaign.id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": campaign.id,
        "status": campaign.status,
        "created_at": campaign.created_at,
        "total": counters.total(),
        "counters": counters,
    })))
}

/// `GET /v1/messages/{id}/recipients/{email}`: one recipient of a batch, with
/// its values, state and events, as for a campaign.
pub async fn recipient(
    state: web::Data<ApiState>,
    signed: Signed,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, V1Error> {
    let (id, email) = path.into_inner();
    let id = CampaignId(id);
    let campaign = state
        .store
        .campaign(signed.caller.tenant, id)
        .await?
        .filter(is_batch)
        .ok_or(V1Error::MessageNotFound(id))?;
    super::campaigns::recipient_view(&state, &campaign, email).await
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
