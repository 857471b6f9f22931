//! The API keys page (tenant admins; operators for any tenant): the tenant's
//! keys, creating one (its secret is shown in the answer to the POST, once,
//! and never again: only its sealed form is stored), and revoking one. The same
//! store calls as `broadside key create|list|revoke`, audited under the admin.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use engine::store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{Need, TenantPage, tenant_page};
use super::{WebState, forbidden_csrf, not_found, redirect, unavailable};

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// The page; `created` carries a new key's id and secret for this one answer.
async fn render(state: &WebState, page: &TenantPage, created: Option<Value>) -> HttpResponse {
    let keys = match state.store.api_keys(page.tenant.id).await {
        Ok(keys) => keys,
        Err(error) => return unavailable(&error),
    };
    let rows: Vec<_> = keys
        .iter()
        .map(|k| {
            json!({
                "id": k.id,
                "created": k.created_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                "revoked": k.revoked_at.map(|at| at.format("%Y-%m-%d %H:%M:%SZ").to_string()),
            })
        })
        .collect();
    let mut data = page.data();
    data["keys"] = json!(rows);
    data["created"] = json!(created);
    state.page(StatusCode::OK, "keys", "API keys", data)
}

/// `GET /web/keys/{tenant}`.
pub async fn list(
    state: web::Data<WebState>,
    req: HttpRequest,
    tenant: web::Path<i64>,
) -> HttpResponse {
    match tenant_page(&state, &req, *tenant, Need::Admin, Some("keys")).await {
        Ok(page) => render(&state, &page, None).await,
        Err(response) => response,
    }
}

/// `POST /web/keys/{tenant}`: a new key, its secret in this answer only.
pub async fn create(
    state: web::Data<WebState>,
    req: HttpRequest,
    tenant: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let page = match tenant_page(&state, &req, *tenant, Need::Admin, None).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    if !page.csrf_ok(form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    let key = match state.keys.create(page.tenant.id, &page.tenant.name).await {
        Ok(key) => key,
        Err(error) => return unavailable(&error),
    };
    let record = page.audit(&state, "key.create", &req).target(&key.key_id);
    if let Err(error) = state.store.append_audit(&record).await {
        return unavailable(&error);
    }
    let created = json!({"id": key.key_id, "secret": key.secret.expose()});
    render(&state, &page, Some(created)).await
}

/// `POST /web/keys/{tenant}/{id}/revoke`.
pub async fn revoke(
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let (tenant, key_id) = path.into_inner();
    let page = match tenant_page(&state, &req, tenant, Need::Admin, None).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    if !page.csrf_ok(form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    match state.keys.revoke(page.tenant.id, &key_id).await {
        Ok(()) => {}
        // Another tenant's key is not this tenant's: not found, and untouched.
        Err(StoreError::UnknownApiKey(_)) => return not_found(),
        Err(error) => return unavailable(&error),
    }
    let record = page.audit(&state, "key.revoke", &req).target(&key_id);
    if let Err(error) = state.store.append_audit(&record).await {
        return unavailable(&error);
    }
    redirect(&format!("/web/keys/{}", page.tenant.id.0))
}
