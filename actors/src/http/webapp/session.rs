//! Web sessions: a random 256-bit id in a cookie, stored as its SHA-256 with the
//! login stage and the CSRF token of the session's forms.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use chrono::{DateTime, Utc};
use engine::auth::Next;
use engine::store::{SessionRecord, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const SESSION_COOKIE: &str = "bs_session";
/// The login form's CSRF token (double submit): there is no session yet.
pub const LOGIN_CSRF_COOKIE: &str = "bs_login_csrf";

/// Where the login stands; only `Done` opens the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Sms,
    Totp,
    EnrolPhone,
    ChangePassword,
    Done,
}

impl From<Next> for Stage {
    fn from(next: Next) -> Self {
        match next {
            Next::Done => Stage::Done,
            Next::SmsCode => Stage::Sms,
            Next::Totp => Stage::Totp,
            Next::EnrolPhone => Stage::EnrolPhone,
            Next::ChangePassword => Stage::ChangePassword,
        }
    }
}

impl Stage {
    /// The page of this stage.
    pub fn path(self) -> &'static str {
        match self {
            Stage::Sms | Stage::Totp => "/web/factor",
            Stage::EnrolPhone => "/web/enrol-phone",
            Stage::ChangePassword => "/web/password",
            Stage::Done => "/web/",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionData {
    pub stage: Stage,
    /// Every form of the session carries it; a POST without it is refused.
    pub csrf: String,
}

/// A session as loaded for a request.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user: String,
    pub data: SessionData,
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator works");
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hash_id(id: &str) -> String {
    hex(&Sha256::digest(id.as_bytes()))
}

/// A cookie of the web application: HttpOnly, SameSite=Strict, Secure over TLS.
pub fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/web")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish()
}

/// Starts a session for `user` at `stage`; returns the cookie value.
pub async fn start(
    store: &dyn Store,
    user: &str,
    stage: Stage,
    expires_at: DateTime<Utc>,
) -> Result<(String, Session), StoreError> {
    let id = random_token();
    let session = Session {
        id_hash: hash_id(&id),
        user: user.to_owned(),
        data: SessionData {
            stage,
            csrf: random_token(),
        },
    };
    save(store, &session, expires_at).await?;
    Ok((id, session))
}

pub async fn save(
    store: &dyn Store,
    session: &Session,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    store
        .put_session(&SessionRecord {
            id_hash: session.id_hash.clone(),
            user: session.user.clone(),
            data: serde_json::to_string(&session.data).expect("session data serializes"),
            expires_at,
        })
        .await
}

/// The request's session, if its cookie names a live one.
pub async fn load(
    store: &dyn Store,
    req: &HttpRequest,
    now: DateTime<Utc>,
) -> Result<Option<Session>, StoreError> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let id_hash = hash_id(cookie.value());
    let Some(record) = store.session(&id_hash, now).await? else {
        // An expired session's row goes as soon as its cookie comes back; the
        // periodic sweep takes those whose browsers never return.
        store.delete_session(&id_hash).await?;
        return Ok(None);
    };
    let Ok(data) = serde_json::from_str(&record.data) else {
        return Ok(None);
    };
    Ok(Some(Session {
        id_hash,
        user: record.user,
        data,
    }))
}

/// Constant-time comparison of a submitted CSRF token with the expected one.
pub fn csrf_ok(expected: &str, submitted: Option<&str>) -> bool {
    use subtle::ConstantTimeEq as _;
    submitted.is_some_and(|s| {
        !expected.is_empty() && bool::from(s.as_bytes().ct_eq(expected.as_bytes()))
    })
}

/// Rows deleted per statement of a sweep: bounds each transaction.
const SWEEP_BATCH: u32 = 1_000;

/// Deletes every session that expired before `now`, in bounded batches; returns
/// how many. Ends: each batch removes rows of a set that only shrinks.
pub async fn sweep(store: &dyn Store, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let deleted = store.delete_expired_sessions(now, SWEEP_BATCH).await?;
        total += deleted;
        if deleted < u64::from(SWEEP_BATCH) {
            return Ok(total);
        }
    }
}
