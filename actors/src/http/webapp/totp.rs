//! The authenticator app page, for any logged-in user: the secret and its
//! `otpauth://` URI to add to an app, confirmed with a code from the app; the
//! recovery codes are shown once, in the answer to that confirmation, and are
//! stored only as hashes. The engine (`Login::begin_totp`, `confirm_totp`)
//! keeps the registration inactive until confirmed, and audits the enrolment.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use engine::auth::{LoginError, User, otp};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{Session, Stage};
use super::{WebState, client_ip, forbidden_csrf, require, unavailable, who};

/// The issuer shown in authenticator apps.
const ISSUER: &str = "Broadside";

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    #[serde(default)]
    code: String,
}

/// The URI as a QR code for the app to scan: inline SVG (the CSP allows no
/// inline script, and an SVG of rectangles is none), without its XML prolog.
fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    svg.find("<svg").map(|at| svg[at..].to_owned())
}

/// The page data of a pending registration.
fn registration(secret: String, uri: String) -> Value {
    json!({"qr": qr_svg(&uri), "secret": secret, "uri": uri})
}

/// The registration in progress: the pending secret if there is one, so a
/// reload keeps the secret the user may already have scanned; else a new one.
async fn pending(state: &WebState, user: &User) -> Result<Option<(String, String)>, LoginError> {
    match &user.data.totp {
        Some(totp) if totp.confirmed => Ok(None),
        Some(totp) => Ok(Some((
            totp.secret.clone(),
            otp::otpauth_url(&totp.secret, ISSUER, &user.name),
        ))),
        None => state.login().begin_totp(&user.name).await.map(Some),
    }
}

fn render(
    state: &WebState,
    user: &User,
    session: &Session,
    status: StatusCode,
    extra: Value,
) -> HttpResponse {
    let mut data = who(user, session);
    if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
        data.extend(extra);
    }
    state.page(status, "totp", "Authenticator app", data)
}

/// `GET /web/totp`.
pub async fn form(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    let (session, user) = match require(&state, &req, Some(&[Stage::Done])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match pending(&state, &user).await {
        Ok(Some((secret, uri))) => render(
            &state,
            &user,
            &session,
            StatusCode::OK,
            registration(secret, uri),
        ),
        Ok(None) => render(
            &state,
            &user,
            &session,
            StatusCode::OK,
            json!({"registered": true}),
        ),
        Err(error) => unavailable(&error),
    }
}

/// `POST /web/totp`: confirms the app with one of its codes.
pub async fn confirm(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let (session, user) = match require(&state, &req, Some(&[Stage::Done])).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !super::session::csrf_ok(&session.data.csrf, form.csrf.as_deref()) {
        return forbidden_csrf();
    }
    match state
        .login()
        .confirm_totp(&user.name, form.code.trim(), client_ip(&req))
        .await
    {
        Ok(codes) => render(
            &state,
            &user,
            &session,
            StatusCode::OK,
            json!({"registered": true, "recovery_codes": codes}),
        ),
        Err(LoginError::Store(error)) => unavailable(&error),
        Err(error) => {
            let status = match error {
                LoginError::WrongCode(_) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_REQUEST,
            };
            let message = match error {
                LoginError::WrongCode(_) => {
                    "That code is not the app's current code; check the app's clock and try again."
                        .to_owned()
                }
                other => other.to_string(),
            };
            let mut extra = match pending(&state, &user).await {
                Ok(Some((secret, uri))) => registration(secret, uri),
                Ok(None) => json!({"registered": true}),
                Err(error) => return unavailable(&error),
            };
            extra["error"] = json!(message);
            render(&state, &user, &session, status, extra)
        }
    }
}
