//! The web application for people: login with the second factor, then the
//! campaigns with live progress, the tenant's exports, and for admins its users,
//! API keys, security settings and audit log. Pages are rendered on the server
//! from the handlebars templates in `templates/web/` (compiled in); the only
//! script is a static file, so the Content-Security-Policy allows no inline code.

mod access;
mod audit;
mod campaigns;
mod exports;
mod keys;
mod login;
mod security;
pub mod session;
mod totp;
mod users;

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::Context as _;
use engine::auth::{Login, Role, SmsGateway, Throttle, User};
use engine::clock::{Clock, SystemClock};
use engine::config::{Config, SecurityConfig};
use engine::store::Store;
use handlebars::Handlebars;
use serde_json::{Value, json};

use self::session::{SESSION_COOKIE, Session, Stage};
use super::keys::KeyCache;

/// What the web pages share.
pub struct WebState {
    pub store: Arc<dyn Store>,
    pub sms: Arc<dyn SmsGateway>,
    pub clock: Arc<dyn Clock>,
    pub throttle: Throttle,
    pub security: SecurityConfig,
    /// Whether cookies get `Secure`: only over HTTPS, or a plain-HTTP trial
    /// install could not log in at all.
    pub secure_cookies: bool,
    /// The API keys page creates keys with its master key and revokes through
    /// it, so a revoked key stops working in this process at once.
    pub keys: KeyCache,
    /// The tenants' exchange folders, for the exports page.
    pub exchange_root: PathBuf,
    pages: Handlebars<'static>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState").finish_non_exhaustive()
    }
}

const PAGES: &[(&str, &str)] = &[
    ("page", include_str!("../../../../templates/web/page.hbs")),
    ("login", include_str!("../../../../templates/web/login.hbs")),
    (
        "factor",
        include_str!("../../../../templates/web/factor.hbs"),
    ),
    (
        "enrol_phone",
        include_str!("../../../../templates/web/enrol_phone.hbs"),
    ),
    (
        "password",
        include_str!("../../../../templates/web/password.hbs"),
    ),
    (
        "campaigns",
        include_str!("../../../../templates/web/campaigns.hbs"),
    ),
    (
        "campaign",
        include_str!("../../../../templates/web/campaign.hbs"),
    ),
    (
        "tenants",
        include_str!("../../../../templates/web/tenants.hbs"),
    ),
    (
        "exports",
        include_str!("../../../../templates/web/exports.hbs"),
    ),
    ("users", include_str!("../../../../templates/web/users.hbs")),
    ("keys", include_str!("../../../../templates/web/keys.hbs")),
    (
        "security",
        include_str!("../../../../templates/web/security.hbs"),
    ),
    ("audit", include_str!("../../../../templates/web/audit.hbs")),
    ("totp", include_str!("../../../../templates/web/totp.hbs")),
];

impl WebState {
    pub fn new(config: &Config, store: Arc<dyn Store>, keys: KeyCache) -> anyhow::Result<Self> {
        let mut pages = Handlebars::new();
        pages.set_strict_mode(false);
        for (name, text) in PAGES {
            pages
                .register_template_string(name, text)
                .with_context(|| format!("templates/web/{name}.hbs"))?;
        }
        Ok(WebState {
            store,
            sms: crate::sms::gateway(config)?,
            clock: Arc::new(SystemClock),
            throttle: Throttle::default(),
            security: config.security.clone(),
            secure_cookies: config.api.tls_cert.is_some(),
            keys,
            exchange_root: config.exchange_root(),
            pages,
        })
    }

    pub fn login(&self) -> Login<'_> {
        Login {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            sms: self.sms.as_ref(),
            throttle: &self.throttle,
            config: &self.security,
        }
    }

    fn session_expiry(&self) -> chrono::DateTime<chrono::Utc> {
        let idle = i64::try_from(self.security.session_idle.as_millis()).unwrap_or(i64::MAX);
        self.clock.now() + chrono::Duration::milliseconds(idle)
    }

    /// A full page: `body` rendered from template `name` inside the layout.
    fn page(&self, status: StatusCode, name: &str, title: &str, data: Value) -> HttpResponse {
        let rendered = self.pages.render(name, &data).and_then(|body| {
            let mut outer = data.clone();
            outer["body"] = Value::String(body);
            outer["title"] = Value::String(title.to_owned());
            self.pages.render("page", &outer)
        });
        match rendered {
            Ok(html) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(html),
            Err(error) => {
                tracing::error!(%error, page = name, "rendering a web page failed");
                HttpResponse::InternalServerError().finish()
            }
        }
    }
}

/// The routes under `/web`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/web")
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service as _;
                let fut = srv.call(req);
                async move {
                    let mut res = fut.await?;
                    security_headers(res.headers_mut());
                    Ok(res)
                }
            })
            .route("/login", web::get().to(login::form))
            .route("/login", web::post().to(login::submit))
            .route("/factor", web::get().to(login::factor_form))
            .route("/factor", web::post().to(login::factor_submit))
            .route("/enrol-phone", web::get().to(login::enrol_form))
            .route("/enrol-phone", web::post().to(login::enrol_submit))
            .route("/password", web::get().to(login::password_form))
            .route("/password", web::post().to(login::password_submit))
            .route("/logout", web::post().to(login::logout))
            .route("/", web::get().to(campaigns::list))
            .route("/tenants", web::get().to(access::tenants))
            .route("/totp", web::get().to(totp::form))
            .route("/totp", web::post().to(totp::confirm))
            .route("/exports/{tenant}", web::get().to(exports::list))
            .route("/exports/{tenant}/{name}", web::get().to(exports::download))
            .route("/users/{tenant}", web::get().to(users::list))
            .route("/users/{tenant}", web::post().to(users::add))
            .route(
                "/users/{tenant}/{name}/{action}",
                web::post().to(users::change),
            )
            .route("/keys/{tenant}", web::get().to(keys::list))
            .route("/keys/{tenant}", web::post().to(keys::create))
            .route("/keys/{tenant}/{id}/revoke", web::post().to(keys::revoke))
            .route("/security/{tenant}", web::get().to(security::form))
            .route("/security/{tenant}", web::post().to(security::submit))
            .route("/audit/{tenant}", web::get().to(audit::page))
            .route("/audit/{tenant}/csv", web::get().to(audit::csv))
            .route("/campaigns/{tenant}/{id}", web::get().to(campaigns::page))
            .route(
                "/campaigns/{tenant}/{id}/progress",
                web::get().to(campaigns::progress),
            )
            .route("/static/app.js", web::get().to(app_js))
            .route("/static/app.css", web::get().to(app_css)),
    );
}

/// Headers of every web response: no framing (clickjacking), no inline or
/// foreign scripts, no MIME sniffing, no referrers leaking ids.
fn security_headers(headers: &mut header::HeaderMap) {
    let set = |headers: &mut header::HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cache-control", "no-store");
}

async fn app_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("../../../../templates/web/app.js"))
}

async fn app_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(include_str!("../../../../templates/web/app.css"))
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// The request's session at `stage` (any stage with `None`), or the response
/// that sends the browser where it belongs.
async fn require(
    state: &WebState,
    req: &HttpRequest,
    stage: Option<&[Stage]>,
) -> Result<(Session, User), HttpResponse> {
    let now = state.clock.now();
    let session = match session::load(state.store.as_ref(), req, now).await {
        Ok(Some(session)) => session,
        Ok(None) => return Err(redirect("/web/login")),
        Err(error) => return Err(unavailable(&error)),
    };
    if stage.is_some_and(|allowed| !allowed.contains(&session.data.stage)) {
        return Err(redirect(session.data.stage.path()));
    }
    let user = match state.store.user(&session.user).await {
        Ok(Some(record)) => User::from_record(record).map_err(|e| unavailable(&e))?,
        Ok(None) => return Err(redirect("/web/login")),
        Err(error) => return Err(unavailable(&error)),
    };
    // A lock by an admin ends the sessions the user has open, not only logins.
    if user.is_locked(now) {
        if let Err(error) = state.store.delete_session(&session.id_hash).await {
            return Err(unavailable(&error));
        }
        return Err(redirect("/web/login"));
    }
    // Sliding expiry: each request extends an active session.
    if let Err(error) = session::save(state.store.as_ref(), &session, state.session_expiry()).await
    {
        return Err(unavailable(&error));
    }
    Ok((session, user))
}

fn unavailable(error: &dyn std::fmt::Display) -> HttpResponse {
    tracing::warn!(%error, "web request failed");
    crate::http::error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the service is unavailable; try again",
    )
}

fn forbidden_csrf() -> HttpResponse {
    crate::http::error_response(
        StatusCode::FORBIDDEN,
        "csrf",
        "the form is stale or was not sent by this application; reload the page",
    )
}

fn not_found() -> HttpResponse {
    crate::http::error_response(StatusCode::NOT_FOUND, "not_found", "not found")
}

fn forbidden() -> HttpResponse {
    crate::http::error_response(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this page is for the tenant's admins",
    )
}

/// Common page data of a logged-in user, with the links their role may follow.
fn who(user: &User, session: &Session) -> Value {
    let mut nav = vec![json!({"href": "/web/", "label": "Campaigns"})];
    match (user.data.role, user.tenant) {
        (Role::Operator, _) => nav.push(json!({"href": "/web/tenants", "label": "Tenants"})),
        (role, Some(tenant)) => {
            let t = tenant.0;
            nav.push(json!({"href": format!("/web/exports/{t}"), "label": "Exports"}));
            if role == Role::Admin {
                for (path, label) in [
                    ("users", "Users"),
                    ("keys", "API keys"),
                    ("security", "Security"),
                    ("audit", "Audit log"),
                ] {
                    nav.push(json!({"href": format!("/web/{path}/{t}"), "label": label}));
                }
            }
        }
        (_, None) => {}
    }
    nav.push(json!({"href": "/web/totp", "label": "Authenticator app"}));
    json!({
        "user": user.name,
        "role": user.data.role.as_str(),
        "csrf": session.data.csrf,
        "nav": nav,
    })
}

/// Deletes expired sessions every `security.session_sweep_interval` while the
/// web state lives (the server holds it; a stopped server lets it go).
pub async fn sweep_sessions(state: Weak<WebState>) {
    let Some(interval) = state
        .upgrade()
        .map(|s| s.security.session_sweep_interval.as_std())
    else {
        return;
    };
    let mut ticks = tokio::time::interval(interval.max(std::time::Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        match session::sweep(state.store.as_ref(), state.clock.now()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "deleted expired web sessions"),
            Err(error) => tracing::warn!(%error, "deleting expired web sessions failed"),
        }
    }
}

fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

pub(crate) fn clear_session_cookie(secure: bool) -> actix_web::cookie::Cookie<'static> {
    let mut cookie = session::cookie(SESSION_COOKIE, String::new(), secure);
    cookie.make_removal();
    cookie
}
