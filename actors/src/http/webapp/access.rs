//! Who may open which tenant's pages. A tenant's user sees only their tenant:
//! another tenant's page is 404, never 403, so ids reveal nothing. Admin pages
//! are 403 for members. Operators see every tenant, and each look at a tenant's
//! data is written to that tenant's audit log before the page is shown.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use engine::auth::{Role, User};
use engine::model::TenantId;
use engine::store::{AuditRecord, Tenant};
use serde_json::json;

use super::session::{Session, Stage};
use super::{WebState, client_ip, forbidden, not_found, require, unavailable, who};

/// The tenants `user` may see: their own, or every tenant for an operator.
pub(super) async fn visible_tenants(
    state: &WebState,
    user: &User,
) -> Result<Vec<(TenantId, String)>, HttpResponse> {
    match (user.data.role, user.tenant) {
        (Role::Operator, _) => state
            .store
            .tenants()
            .await
            .map(|ts| {
                ts.into_iter()
                    .map(|t| (t.id, t.name.as_str().to_owned()))
                    .collect()
            })
            .map_err(|e| unavailable(&e)),
        (_, Some(tenant)) => Ok(vec![(tenant, String::new())]),
        (_, None) => Ok(Vec::new()),
    }
}

pub(super) fn may_see(user: &User, tenant: TenantId) -> bool {
    user.data.role == Role::Operator || user.tenant == Some(tenant)
}

/// An operator looking at a tenant's data leaves a trace; when the trace
/// cannot be written the page is not shown (fail closed).
pub(super) async fn audit_operator_view(
    state: &WebState,
    user: &User,
    tenant: TenantId,
    what: &str,
    req: &HttpRequest,
) -> Result<(), HttpResponse> {
    if user.data.role != Role::Operator {
        return Ok(());
    }
    let mut record = AuditRecord::new(
        Some(tenant),
        user.actor(),
        "operator.view",
        state.clock.now(),
    )
    .target(what);
    if let Some(ip) = client_ip(req) {
        record = record.ip(ip.to_string());
    }
    state
        .store
        .append_audit(&record)
        .await
        .map(drop)
        .map_err(|error| unavailable(&error))
}

/// What a page needs of the user's role in the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Any user of the tenant (and operators).
    Member,
    /// The tenant's admins (and operators).
    Admin,
}

/// A logged-in user allowed on one tenant's page.
pub(super) struct TenantPage {
    pub session: Session,
    pub user: User,
    pub tenant: Tenant,
}

impl TenantPage {
    /// The common page data, with the tenant named (operators see many).
    pub fn data(&self) -> serde_json::Value {
        let mut data = who(&self.user, &self.session);
        data["tenant"] = json!(self.tenant.name.as_str());
        data["tenant_id"] = json!(self.tenant.id.0);
        data
    }

    pub fn operator(&self) -> bool {
        self.user.data.role == Role::Operator
    }

    /// An audit record of this user acting on the tenant, from the request's address.
    pub fn audit(&self, state: &WebState, action: &str, req: &HttpRequest) -> AuditRecord {
        let mut record = AuditRecord::new(
            Some(self.tenant.id),
            self.user.actor(),
            action,
            state.clock.now(),
        );
        if let Some(ip) = client_ip(req) {
            record = record.ip(ip.to_string());
        }
        record
    }

    /// Whether the form's CSRF token is the session's.
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        super::session::csrf_ok(&self.session.data.csrf, submitted)
    }
}

/// The logged-in user on tenant `tenant`'s page: 404 for a tenant they may not
/// see (or that does not exist), 403 for a member on an admin page. `view`
/// names what an operator looks at, audited before the page is shown; `None`
/// for requests whose own audit entry records the access.
pub(super) async fn tenant_page(
    state: &WebState,
    req: &HttpRequest,
    tenant: i64,
    need: Need,
    view: Option<&str>,
) -> Result<TenantPage, HttpResponse> {
    let (session, user) = require(state, req, Some(&[Stage::Done])).await?;
    let id = TenantId(tenant);
    if !may_see(&user, id) {
        return Err(not_found());
    }
    if need == Need::Admin && user.data.role == Role::Member {
        return Err(forbidden());
    }
    let tenants = state.store.tenants().await.map_err(|e| unavailable(&e))?;
    let tenant = tenants
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(not_found)?;
    if let Some(what) = view {
        audit_operator_view(state, &user, id, what, req).await?;
    }
    Ok(TenantPage {
        session,
        user,
        tenant,
    })
}

/// `GET /web/tenants`: the operators' way into each tenant's pages.
pub async fn tenants(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    let (session, user) = match require(&state, &req, Some(&[Stage::Done])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if user.data.role != Role::Operator {
        return not_found();
    }
    let tenants = match state.store.tenants().await {
        Ok(tenants) => tenants,
        Err(error) => return unavailable(&error),
    };
    let rows: Vec<_> = tenants
        .iter()
        .map(|t| json!({"id": t.id.0, "name": t.name.as_str()}))
        .collect();
    let mut data = who(&user, &session);
    data["tenants"] = json!(rows);
    state.page(StatusCode::OK, "tenants", "Tenants", data)
}
