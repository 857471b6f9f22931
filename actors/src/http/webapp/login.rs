//! The login pages: password, second factor, phone enrolment, password change,
//! logout. Each POST checks its CSRF token before anything else.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use engine::auth::LoginError;
use serde::Deserialize;
use serde_json::json;

use super::session::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE, Stage};
use super::{WebState, client_ip, forbidden_csrf, redirect, require, unavailable};

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: Option<String>,
    user: String,
    password: String,
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    #[serde(default)]
    code: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

fn login_page(state: &WebState, status: StatusCode, error: Option<String>) -> HttpResponse {
    let csrf = session::random_token();
    let mut response = state.page(
        status,
        "login",
        "Log in",
        json!({"csrf": csrf, "error": error}),
    );
    let cookie = session::cookie(LOGIN_CSRF_COOKIE, csrf, state.secure_cookies);
    if let Err(error) = response.add_cookie(&cookie) {
        tracing::error!(%error, "setting the login CSRF cookie failed");
    }
    response
}

pub async fn form(state: web::Data<WebState>) -> HttpResponse {
    login_page(&state, StatusCode::OK, None)
}

pub async fn submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let expected = req
        .cookie(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !session::csrf_ok(&expected, form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    match state
        .login()
        .password(&form.user, &form.password, client_ip(&req))
        .await
    {
        Ok(passed) => {
            let stage = Stage::from(passed.next);
            match session::start(
                state.store.as_ref(),
                &passed.user.name,
                stage,
                state.session_expiry(),
            )
            .await
            {
                Ok((id, _)) => {
                    let mut response = redirect(stage.path());
                    let cookie = session::cookie(SESSION_COOKIE, id, state.secure_cookies);
                    if response.add_cookie(&cookie).is_err() {
                        return unavailable(&"cookie");
                    }
                    response
                }
                Err(error) => unavailable(&error),
            }
        }
        Err(LoginError::Store(error)) => unavailable(&error),
        Err(error) => {
            let status = match error {
                LoginError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                LoginError::IpNotAllowed => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            login_page(&state, status, Some(error.to_string()))
        }
    }
}

pub async fn factor_form(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    let (session, user) = match require(&state, &req, Some(&[Stage::Sms, Stage::Totp])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut data = super::who(&user, &session);
    data["sms"] = json!(session.data.stage == Stage::Sms);
    state.page(StatusCode::OK, "factor", "Second factor", data)
}

pub async fn factor_submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let (mut session, user) = match require(&state, &req, Some(&[Stage::Sms, Stage::Totp])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !session::csrf_ok(&session.data.csrf, form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    let login = state.login();
    let ip = client_ip(&req);
    let result = match session.data.stage {
        Stage::Sms => login.sms_code(&user.name, &form.code, ip).await,
        _ => login.totp_code(&user.name, &form.code, ip).await,
    };
    match result {
        Ok(passed) => {
            session.data.stage = Stage::from(passed.next);
            match session::save(state.store.as_ref(), &session, state.session_expiry()).await {
                Ok(()) => redirect(session.data.stage.path()),
                Err(error) => unavailable(&error),
            }
        }
        Err(LoginError::WrongCode(left)) => {
            let mut data = super::who(&user, &session);
            data["sms"] = json!(session.data.stage == Stage::Sms);
            data["error"] = json!(format!("Wrong code; {left} tries left."));
            state.page(StatusCode::UNAUTHORIZED, "factor", "Second factor", data)
        }
        Err(LoginError::Store(error)) => unavailable(&error),
        Err(error) => {
            // Expired, too many wrong codes, rate limited: the login starts over.
            let _ = state.store.delete_session(&session.id_hash).await;
            let status = match error {
                LoginError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut response = login_page(&state, status, Some(error.to_string()));
            let _ = response.add_removal_cookie(&super::clear_session_cookie(state.secure_cookies));
            response
        }
    }
}

pub async fn enrol_form(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    match require(&state, &req, Some(&[Stage::EnrolPhone])).await {
        Ok((session, user)) => state.page(
            StatusCode::OK,
            "enrol_phone",
            "Register a phone",
            super::who(&user, &session),
        ),
        Err(response) => response,
    }
}

pub async fn enrol_submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let (mut session, user) = match require(&state, &req, Some(&[Stage::EnrolPhone])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !session::csrf_ok(&session.data.csrf, form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    match state
        .login()
        .enrol_phone(&user.name, form.phone.trim(), client_ip(&req))
        .await
    {
        Ok(()) => {
            session.data.stage = Stage::Sms;
            match session::save(state.store.as_ref(), &session, state.session_expiry()).await {
                Ok(()) => redirect(Stage::Sms.path()),
                Err(error) => unavailable(&error),
            }
        }
        Err(LoginError::Store(error)) => unavailable(&error),
        Err(error) => {
            let mut data = super::who(&user, &session);
            data["error"] = json!(error.to_string());
            state.page(
                StatusCode::BAD_REQUEST,
                "enrol_phone",
                "Register a phone",
                data,
            )
        }
    }
}

pub async fn password_form(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    match require(&state, &req, Some(&[Stage::ChangePassword])).await {
        Ok((session, user)) => state.page(
            StatusCode::OK,
            "password",
            "Change your password",
            super::who(&user, &session),
        ),
        Err(response) => response,
    }
}

pub async fn password_submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let (mut session, user) = match require(&state, &req, Some(&[Stage::ChangePassword])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !session::csrf_ok(&session.data.csrf, form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    let by = user.actor();
    match state
        .login()
        .change_password(&user.name, &form.password, &by, client_ip(&req))
        .await
    {
        Ok(_) => {
            session.data.stage = Stage::Done;
            match session::save(state.store.as_ref(), &session, state.session_expiry()).await {
                Ok(()) => redirect(Stage::Done.path()),
                Err(error) => unavailable(&error),
            }
        }
        Err(LoginError::Store(error)) => unavailable(&error),
        Err(error) => {
            let mut data = super::who(&user, &session);
            data["error"] = json!(error.to_string());
            state.page(
                StatusCode::BAD_REQUEST,
                "password",
                "Change your password",
                data,
            )
        }
    }
}

pub async fn logout(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    let (session, _) = match require(&state, &req, None).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !session::csrf_ok(&session.data.csrf, form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    if let Err(error) = state.store.delete_session(&session.id_hash).await {
        return unavailable(&error);
    }
    let mut response = redirect("/web/login");
    let _ = response.add_removal_cookie(&super::clear_session_cookie(state.secure_cookies));
    response
}
