//! The users page (tenant admins; operators for any tenant): the tenant's
//! users, adding one (the password policy applies), locking and unlocking, and
//! resetting a second factor. The changes go through `engine::auth::Login`, which
//! audits each under the acting admin.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use engine::auth::{ChangedBy, LoginError, Role, User};
use engine::store::StoreError;
use serde::Deserialize;
use serde_json::json;

use super::access::{Need, TenantPage, tenant_page};
use super::{WebState, client_ip, forbidden_csrf, not_found, redirect, unavailable};

#[derive(Deserialize)]
pub struct AddForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// The page, with `error` shown above the list when a change was refused.
async fn render(
    state: &WebState,
    page: &TenantPage,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    let records = match state.store.users(Some(page.tenant.id)).await {
        Ok(records) => records,
        Err(error) => return unavailable(&error),
    };
    let now = state.clock.now();
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let user = match User::from_record(record) {
            Ok(user) => user,
            Err(error) => return unavailable(&error),
        };
        let factor = match (&user.data.totp, &user.data.phone) {
            (Some(t), _) if t.confirmed => "authenticator app",
            (_, Some(_)) => "SMS",
            _ => "none",
        };
        rows.push(json!({
            "name": user.name,
            "role": user.data.role.as_str(),
            "locked": user.is_locked(now),
            "factor": factor,
            "created": user.created_at.format("%Y-%m-%d").to_string(),
            "me": user.name == page.user.name,
        }));
    }
    let mut data = page.data();
    data["users"] = json!(rows);
    data["error"] = json!(error);
    state.page(status, "users", "Users", data)
}

/// `GET /web/users/{tenant}`.
pub async fn list(
    state: web::Data<WebState>,
    req: HttpRequest,
    tenant: web::Path<i64>,
) -> HttpResponse {
    match tenant_page(&state, &req, *tenant, Need::Admin, Some("users")).await {
        Ok(page) => render(&state, &page, StatusCode::OK, None).await,
        Err(response) => response,
    }
}

/// `POST /web/users/{tenant}`: adds a member or an admin of the tenant.
pub async fn add(
    state: web::Data<WebState>,
    req: HttpRequest,
    tenant: web::Path<i64>,
    form: web::Form<AddForm>,
) -> HttpResponse {
    let page = match tenant_page(&state, &req, *tenant, Need::Admin, None).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    if !page.csrf_ok(form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    let role = match form.role.as_str() {
        "member" => Role::Member,
        "admin" => Role::Admin,
        other => {
            let error = format!("the role must be member or admin, not {other:?}");
            return render(&state, &page, StatusCode::BAD_REQUEST, Some(error)).await;
        }
    };
    let name = form.name.trim();
    let result = state
        .login()
        .create_user(
            name,
            Some((page.tenant.id, &page.tenant.name)),
            role,
            &form.password,
            ChangedBy {
                actor: &page.user.actor(),
                ip: client_ip(&req),
            },
        )
        .await;
    match result {
        Ok(_) => redirect(&format!("/web/users/{}", page.tenant.id.0)),
        Err(error) => refused(&state, &page, error).await,
    }
}

/// A refused change: the list again, with the reason and a status saying what
/// kind of refusal it was.
async fn refused(state: &WebState, page: &TenantPage, error: LoginError) -> HttpResponse {
    let status = match &error {
        LoginError::Store(StoreError::AlreadyExists { .. }) => StatusCode::CONFLICT,
        LoginError::Store(StoreError::UnknownUser(_)) => return not_found(),
        LoginError::Store(error) => return unavailable(error),
        _ => StatusCode::BAD_REQUEST,
    };
    render(state, page, status, Some(error.to_string())).await
}

/// `POST /web/users/{tenant}/{name}/{lock|unlock|reset-2fa}`.
pub async fn change(
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<(i64, String, String)>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let (tenant, name, action) = path.into_inner();
    let page = match tenant_page(&state, &req, tenant, Need::Admin, None).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    if !page.csrf_ok(form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    // Only this tenant's users: another tenant's (or an operator) is not found.
    match state.store.user(&name).await {
        Ok(Some(record)) if record.tenant == Some(page.tenant.id) => {}
        Ok(_) => return not_found(),
        Err(error) => return unavailable(&error),
    }
    let actor = page.user.actor();
    let by = ChangedBy {
        actor: &actor,
        ip: client_ip(&req),
    };
    let login = state.login();
    let result = match action.as_str() {
        "lock" if name == page.user.name => {
            let error = "you cannot lock your own account".to_owned();
            return render(&state, &page, StatusCode::BAD_REQUEST, Some(error)).await;
        }
        "lock" => login.lock(&name, by).await,
        "unlock" => login.unlock(&name, by).await,
        "reset-2fa" => login.reset_second_factor(&name, by).await,
        _ => return not_found(),
    };
    match result {
        Ok(_) => redirect(&format!("/web/users/{}", page.tenant.id.0)),
        Err(error) => refused(&state, &page, error).await,
    }
}
