//! Escher authentication of `/v1`: the signature covers the raw body, so the
//! body is read (bounded) before anything parses it; the key's tenant becomes
//! the caller's tenant for the whole request, never anything from the body.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use engine::auth::escher::{self, EscherError, Request};
use engine::model::TenantId;
use engine::store::StoreError;
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;

use super::ApiState;
use super::error::error_response;
use super::keys::ActiveKey;

/// Who is calling: the tenant of the key that signed the request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub key_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Escher(#[from] EscherError),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("cannot read the request body: {0}")]
    Read(String),
    #[error("requests from this address are not allowed for this tenant")]
    IpNotAllowed,
    #[error("the key store is unavailable; try again")]
    Unavailable(#[from] StoreError),
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::Escher(_) => StatusCode::UNAUTHORIZED,
            AuthError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AuthError::Read(_) => StatusCode::BAD_REQUEST,
            AuthError::IpNotAllowed => StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            AuthError::Escher(e) => e.code(),
            AuthError::TooLarge { .. } => "too_large",
            AuthError::Read(_) => "unreadable_body",
            AuthError::IpNotAllowed => "ip_not_allowed",
            AuthError::Unavailable(e) => {
                tracing::warn!(error = %e, "API key lookup failed");
                "unavailable"
            }
        };
        error_response(self.status_code(), code, &self.to_string())
    }
}

/// The request line and headers as Escher sees them; the body comes separately.
pub struct SignedParts {
    /// The client's address, for the tenant's IP allowlist.
    peer: Option<std::net::IpAddr>,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
}

impl SignedParts {
    pub fn of(req: &HttpRequest) -> Self {
        let url = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
        let headers = req
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        Self {
            peer: req.peer_addr().map(|a| a.ip()),
            method: req.method().as_str().to_owned(),
            url,
            headers,
        }
    }

    pub fn request<'a>(&'a self, body: &'a [u8]) -> Request<'a> {
        Request {
            method: &self.method,
            url: &self.url,
            headers: &self.headers,
            body,
        }
    }
}

/// Finds the key the request claims (store or cache) before any signature math.
pub async fn claimed_key(
    state: &ApiState,
    parts: &SignedParts,
) -> Result<(escher::ClaimedKey, ActiveKey), AuthError> {
    let claimed = escher::claimed_key(&state.escher, &parts.request(b""))?;
    let key = state
        .keys
        .lookup(&claimed.key_id)
        .await?
        .ok_or(EscherError::InvalidKey)?;
    if !state.allowlist.api_allowed(key.tenant, parts.peer).await? {
        return Err(AuthError::IpNotAllowed);
    }
    Ok((claimed, key))
}

/// Verifies a request whose whole body is in memory.
pub async fn authenticate(
    state: &ApiState,
    parts: &SignedParts,
    body: &[u8],
) -> Result<Caller, AuthError> {
    let (claimed, key) = claimed_key(state, parts).await?;
    let lookup = |id: &str| (id == claimed.key_id).then(|| key.secret.clone());
    let key_id =
        escher::authenticate(&state.escher, &parts.request(body), lookup, &[], Utc::now())?;
    Ok(Caller {
        tenant: key.tenant,
        key_id,
    })
}

/// An authenticated request with its body: the extractor of every `/v1` route
/// but the upload, which streams.
#[derive(Debug)]
pub struct Signed {
    pub caller: Caller,
    pub body: Bytes,
}

impl FromRequest for Signed {
    type Error = AuthError;
    type Future = LocalBoxFuture<'static, Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
                return Err(AuthError::Read("the API is not configured".into()));
            };
            let body = read_body(payload, state.max_body, &req).await?;
            let parts = SignedParts::of(&req);
            let caller = authenticate(&state, &parts, &body).await?;
            Ok(Signed { caller, body })
        })
    }
}

/// Reads the body up to `limit` bytes; refuses early when Content-Length says
/// it will not fit.
async fn read_body(
    mut payload: Payload,
    limit: u64,
    req: &HttpRequest,
) -> Result<Bytes, AuthError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AuthError::TooLarge { limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AuthError::Read(e.to_string()))?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(AuthError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
