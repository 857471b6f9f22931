//! Campaign routes: create, list, show, status changes, statistics and one
//! recipient's history. Every lookup is by the caller's tenant, so another
//! tenant's campaign id is simply not found.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use engine::model::{CampaignId, CampaignName, EmailAddress, TenantId};
use engine::render::CampaignDefinition;
use engine::store::{Campaign, CampaignCounters, CampaignStatus, Event, Store};
use serde::{Deserialize, Serialize};

use super::messages::{BATCH_PREFIX, is_batch};
use super::{V1Error, parse_json};
use crate::cli::campaign::launch_checked;
use crate::http::ApiState;
use crate::http::auth::Signed;

/// `POST /v1/campaigns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCampaign {
    name: String,
    definition: CampaignDefinition,
}

/// A campaign as the API shows it; the definition goes back as JSON.
#[derive(Debug, Serialize)]
struct CampaignView {
    id: CampaignId,
    /// `campaign`, or `message` for a batch of `POST /v1/messages`.
    kind: &'static str,
    name: CampaignName,
    status: CampaignStatus,
    columns: Vec<String>,
    imported: bool,
    created_at: DateTime<Utc>,
    launched_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    definition: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counters: Option<CampaignCounters>,
}

impl CampaignView {
    fn new(campaign: Campaign, counters: Option<CampaignCounters>) -> Self {
        let definition = campaign
            .definition
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok());
        Self {
            id: campaign.id,
            kind: kind(&campaign),
            name: campaign.name,
            status: campaign.status,
            columns: campaign.columns,
            imported: campaign.imported,
            created_at: campaign.created_at,
            launched_at: campaign.launched_at,
            definition,
            counters,
        }
    }
}

fn kind(campaign: &Campaign) -> &'static str {
    if is_batch(campaign) {
        "message"
    } else {
        "campaign"
    }
}

/// `GET /v1/campaigns?kind=campaign|message`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    kind: Option<String>,
}

/// The caller's campaign `id`, or 404 whoever else may own it.
pub(super) async fn owned(
    store: &dyn Store,
    tenant: TenantId,
    id: CampaignId,
) -> Result<Campaign, V1Error> {
    store
        .campaign(tenant, id)
        .await?
        .ok_or(V1Error::CampaignNotFound(id))
}

async fn counters(store: &dyn Store, campaign: &Campaign) -> Result<CampaignCounters, V1Error> {
    if !campaign.imported {
        return Ok(CampaignCounters::default());
    }
    Ok(store.counters(campaign.tenant, campaign.id).await?)
}

async fn view(state: &ApiState, campaign: Campaign) -> Result<CampaignView, V1Error> {
    let counters = counters(state.store.as_ref(), &campaign).await?;
    Ok(CampaignView::new(campaign, Some(counters)))
}

/// Syntax errors are reported at creation; unknown variables can only be judged
/// against an import's columns, so they wait for the launch.
fn check_templates(definition: &CampaignDefinition) -> Result<(), V1Error> {
    super::batch::template_variables(definition).map(drop)
}

pub async fn create(state: web::Data<ApiState>, signed: Signed) -> Result<HttpResponse, V1Error> {
    let request: CreateCampaign = parse_json(&signed.body)?;
    let name = CampaignName::parse(&request.name).map_err(|e| V1Error::Invalid(e.to_string()))?;
    if name.as_str().starts_with(BATCH_PREFIX) {
        return Err(V1Error::Invalid(format!(
            "campaign names starting with {BATCH_PREFIX:?} are reserved for message batches"
        )));
    }
    request
        .definition
        .validate()
        .map_err(|e| V1Error::Invalid(e.to_string()))?;
    check_templates(&request.definition)?;
    let tenant = signed.caller.tenant;
    let campaign = state.store.create_campaign(tenant, &name).await?;
    let json =
        serde_json::to_string(&request.definition).map_err(|e| V1Error::Internal(e.to_string()))?;
    state
        .store
        .set_campaign_definition(tenant, campaign.id, &json)
        .await?;
    let campaign = owned(state.store.as_ref(), tenant, campaign.id).await?;
    Ok(HttpResponse::Created().json(view(&state, campaign).await?))
}

/// Message batches are campaigns too and are listed with `kind: "message"`;
/// `?kind=` narrows the list to one kind.
pub async fn list(
    state: web::Data<ApiState>,
    signed: Signed,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, V1Error> {
    let wanted = query.into_inner().kind;
    if let Some(k) = wanted.as_deref()
        && !matches!(k, "campaign" | "message")
    {
        return Err(V1Error::Invalid(
            "kind must be `campaign` or `message`".into(),
        ));
    }
    let campaigns = state.store.campaigns(signed.caller.tenant).await?;
    let views: Vec<CampaignView> = campaigns
        .into_iter()
        .filter(|c| wanted.as_deref().is_none_or(|k| k == kind(c)))
        .map(|c| CampaignView {
            definition: None,
            ..CampaignView::new(c, None)
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "campaigns": views })))
}

pub async fn get(
    state: web::Data<ApiState>,
    signed: Signed,
    id: web::Path<i64>,
) -> Result<HttpResponse, V1Error> {
    let campaign = owned(state.store.as_ref(), signed.caller.tenant, CampaignId(*id)).await?;
    Ok(HttpResponse::Ok().json(view(&state, campaign).await?))
}

pub async fn launch(
    state: web::Data<ApiState>,
    signed: Signed,
    id: web::Path<i64>,
) -> Result<HttpResponse, V1Error> {
    let tenant = signed.caller.tenant;
    let campaign = owned(state.store.as_ref(), tenant, CampaignId(*id)).await?;
    if campaign.status != CampaignStatus::Running {
        launch_checked(state.store.as_ref(), tenant, &campaign).await?;
    }
    changed(&state, tenant, campaign.id).await
}

async fn change(
    state: web::Data<ApiState>,
    signed: Signed,
    id: i64,
    status: CampaignStatus,
) -> Result<HttpResponse, V1Error> {
    let tenant = signed.caller.tenant;
    let campaign = owned(state.store.as_ref(), tenant, CampaignId(id)).await?;
    state
        .store
        .set_campaign_status(tenant, campaign.id, status)
        .await?;
    changed(&state, tenant, campaign.id).await
}

/// Tells the engine at once rather than at its next reconcile tick, and answers
/// with the campaign as it now is.
async fn changed(
    state: &ApiState,
    tenant: TenantId,
    id: CampaignId,
) -> Result<HttpResponse, V1Error> {
    state.runtime.reconcile();
    let campaign = owned(state.store.as_ref(), tenant, id).await?;
    Ok(HttpResponse::Ok().json(view(state, campaign).await?))
}

pub async fn pause(
    state: web::Data<ApiState>,
    signed: Signed,
    id: web::Path<i64>,
) -> Result<HttpResponse, V1Error> {
    change(state, signed, *id, CampaignStatus::Paused).await
}

pub async fn resume(
    state: web::Data<ApiState>,
    signed: Signed,
    id: web::Path<i64>,
) -> Result<HttpResponse, V1Error> {
    change(state, signed, *id, CampaignStatus::Running).await
}

pub async fn cancel(
    state: web::Data<ApiState>,
    signed: Signed,
    id: web::Path<i64>,
) -> Result<HttpResponse, V1Error> {
    change(state, signed, *id, CampaignStatus::Cancelled).await
}

pub async fn stats(
    state: web::Data<ApiState>,
    signed: Signed,
    id: web::Path<i64>,
) -> Result<HttpResponse, V1Error> {
    let campaign = owned(state.store.as_ref(), signed.caller.tenant, CampaignId(*id)).await?;
    let counters = counters(state.store.as_ref(), &campaign).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": campaign.id,
        "status": campaign.status,
        "total": counters.total(),
        "counters": counters,
    })))
}

#[derive(Debug, Serialize)]
struct RecipientView {
    email: EmailAddress,
    /// Personalization values by column name.
    values: serde_json::Map<String, serde_json::Value>,
    state: engine::model::RecipientState,
    attempts: i32,
    first_attempt: Option<DateTime<Utc>>,
    last_reply: Option<String>,
    events: Vec<Event>,
}

pub async fn recipient(
    state: web::Data<ApiState>,
    signed: Signed,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, V1Error> {
    let (id, email) = path.into_inner();
    let tenant = signed.caller.tenant;
    let campaign = owned(state.store.as_ref(), tenant, CampaignId(id)).await?;
    recipient_view(&state, &campaign, email).await
}

/// One recipient of `campaign` (already checked to be the caller's) with its
/// values, state and events; an unknown address is not found.
pub(crate) async fn recipient_view(
    state: &ApiState,
    campaign: &Campaign,
    email: String,
) -> Result<HttpResponse, V1Error> {
    let tenant = campaign.tenant;
    let not_found = || V1Error::RecipientNotFound(email.clone());
    let address = EmailAddress::parse(&email).map_err(|_| not_found())?;
    if !campaign.imported {
        return Err(not_found());
    }
    let recipient = state
        .store
        .recipient_by_email(tenant, campaign.id, &address)
        .await?
        .ok_or_else(not_found)?;
    let events = state
        .store
        .events(tenant, campaign.id, recipient.id)
        .await?;
    let values = campaign
        .columns
        .iter()
        .cloned()
        .zip(recipient.values.into_iter().map(serde_json::Value::String))
        .collect();
    Ok(HttpResponse::Ok().json(RecipientView {
        email: recipient.email,
        values,
        state: recipient.state,
        attempts: recipient.attempts,
        first_attempt: recipient.first_attempt,
        last_reply: recipient.last_reply,
        events,
    }))
}
