//! The campaign pages: the list with live counts, one campaign, and the JSON
//! progress both poll. A tenant user sees only their tenant (another tenant's
//! campaign is 404, never 403); an operator sees every tenant, and each view is
//! audited (see `access`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use engine::auth::{Role, User};
use engine::model::{CampaignId, TenantId};
use serde_json::json;

use super::access::{audit_operator_view, may_see, visible_tenants};
use super::session::Stage;
use super::{WebState, not_found, require, unavailable, who};

pub async fn list(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    let (session, user) = match require(&state, &req, Some(&[Stage::Done])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let tenants = match visible_tenants(&state, &user).await {
        Ok(tenants) => tenants,
        Err(response) => return response,
    };
    let mut rows = Vec::new();
    for (tenant, tenant_name) in tenants {
        let campaigns = match state.store.campaigns(tenant).await {
            Ok(campaigns) => campaigns,
            Err(error) => return unavailable(&error),
        };
        if user.data.role == Role::Operator
            && !campaigns.is_empty()
            && let Err(response) =
                audit_operator_view(&state, &user, tenant, "campaigns", &req).await
        {
            return response;
        }
        for campaign in campaigns {
            let counters = state
                .store
                .counters(tenant, campaign.id)
                .await
                .unwrap_or_default();
            let base = format!("/web/campaigns/{}/{}", tenant.0, campaign.id.0);
            rows.push(json!({
                "tenant": tenant_name,
                "name": campaign.name.as_str(),
                "status": campaign.status.as_str(),
                "counters": counters,
                "link": base,
                "progress": format!("{base}/progress"),
            }));
        }
    }
    let mut data = who(&user, &session);
    data["campaigns"] = json!(rows);
    data["operator"] = json!(user.data.role == Role::Operator);
    state.page(StatusCode::OK, "campaigns", "Campaigns", data)
}

/// The campaign at `/{tenant}/{id}` if the user may see it; `None` is 404.
async fn campaign_of(
    state: &WebState,
    user: &User,
    path: (i64, i64),
) -> Result<Option<engine::store::Campaign>, HttpResponse> {
    let tenant = TenantId(path.0);
    if !may_see(user, tenant) {
        return Ok(None);
    }
    match state.store.campaign(tenant, CampaignId(path.1)).await {
        Ok(found) => Ok(found),
        Err(engine::store::StoreError::UnknownTenant(_)) => Ok(None),
        Err(error) => Err(unavailable(&error)),
    }
}

pub async fn page(
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<(i64, i64)>,
) -> HttpResponse {
    let (session, user) = match require(&state, &req, Some(&[Stage::Done])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let campaign = match campaign_of(&state, &user, path.into_inner()).await {
        Ok(Some(campaign)) => campaign,
        Ok(None) => return not_found(),
        Err(response) => return response,
    };
    if let Err(response) = audit_operator_view(
        &state,
        &user,
        campaign.tenant,
        &format!("campaign:{}", campaign.id.0),
        &req,
    )
    .await
    {
        return response;
    }
    let counters = state
        .store
        .counters(campaign.tenant, campaign.id)
        .await
        .unwrap_or_default();
    let mut data = who(&user, &session);
    data["status"] = json!(campaign.status.as_str());
    data["counters"] = json!(counters);
    data["progress"] = json!(format!(
        "/web/campaigns/{}/{}/progress",
        campaign.tenant.0, campaign.id.0
    ));
    state.page(StatusCode::OK, "campaign", campaign.name.as_str(), data)
}

pub async fn progress(
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<(i64, i64)>,
) -> HttpResponse {
    let (_, user) = match require(&state, &req, Some(&[Stage::Done])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let campaign = match campaign_of(&state, &user, path.into_inner()).await {
        Ok(Some(campaign)) => campaign,
        Ok(None) => return not_found(),
        Err(response) => return response,
    };
    match state.store.counters(campaign.tenant, campaign.id).await {
        Ok(counters) => HttpResponse::Ok().json(json!({
            "status": campaign.status.as_str(),
            "counters": counters,
        })),
        Err(error) => unavailable(&error),
    }
}
