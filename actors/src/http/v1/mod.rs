//! Version 1 of the API: campaigns, recipient uploads, status changes,
//! statistics, batch submits, suppressions, export downloads and the tenant's PGP key. Every route but the OpenAPI document
//! authenticates with Escher; the tenant is the key's.
//!
//! The routes are listed once, in [`register`], which both registers them with
//! actix and fills the table the OpenAPI test holds the document to.

mod batch;
mod campaigns;
mod exports;
mod imports;
mod messages;
pub mod openapi;
mod pgp_key;
mod suppressions;
mod upload;

use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, Handler, HttpResponse, Responder, ResponseError, web};
use engine::model::CampaignId;
use engine::store::StoreError;

use super::error::error_response;
use crate::cli::campaign::LaunchError;

pub use messages::BATCH_PREFIX;

/// Something routes can be added to: actix's configuration, or a plain table.
pub trait Router {
    fn add<F, Args>(&mut self, method: Method, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static;
}

impl Router for web::ServiceConfig {
    fn add<F, Args>(&mut self, method: Method, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(path, web::method(method).to(handler))
    }
}

/// The routes as (method, path under `/v1`), as [`register`] adds them.
#[derive(Debug, Default)]
pub struct RouteTable(pub Vec<(Method, &'static str)>);

impl Router for RouteTable {
    fn add<F, Args>(&mut self, method: Method, path: &'static str, _: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.0.push((method, path));
        self
    }
}

/// Every `/v1` route, in one place.
pub fn register<R: Router>(r: &mut R) {
    use Method as M;
    r.add(M::GET, "/openapi.json", openapi::document)
        .add(M::POST, "/campaigns", campaigns::create)
        .add(M::GET, "/campaigns", campaigns::list)
        .add(M::GET, "/campaigns/{id}", campaigns::get)
        .add(M::PUT, "/campaigns/{id}/recipients", upload::upload)
        .add(M::POST, "/campaigns/{id}/imports", imports::import_file)
        .add(M::POST, "/campaigns/{id}/launch", campaigns::launch)
        .add(M::POST, "/campaigns/{id}/pause", campaigns::pause)
        .add(M::POST, "/campaigns/{id}/resume", campaigns::resume)
        .add(M::POST, "/campaigns/{id}/cancel", campaigns::cancel)
        .add(M::GET, "/campaigns/{id}/stats", campaigns::stats)
        .add(
            M::GET,
            "/campaigns/{id}/recipients/{email}",
            campaigns::recipient,
        )
        .add(M::POST, "/messages", messages::submit)
        .add(M::GET, "/messages/{id}", messages::status)
        .add(
            M::GET,
            "/messages/{id}/recipients/{email}",
            messages::recipient,
        )
        .add(M::GET, "/suppressions", suppressions::list)
        .add(M::POST, "/suppressions", suppressions::add)
        .add(M::DELETE, "/suppressions/{email}", suppressions::remove)
        .add(M::GET, "/exports", exports::list)
        .add(M::POST, "/exports/{name}/url", exports::presign)
        .add(M::GET, "/exports/{name}", exports::download)
        .add(M::GET, "/pgp-key", pgp_key::public_key);
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg);
}

/// The served `/v1` routes, for the OpenAPI test.
pub fn route_table() -> RouteTable {
    let mut table = RouteTable::default();
    register(&mut table);
    table
}

/// Everything a `/v1` route can refuse, each with its status code.
#[derive(Debug, thiserror::Error)]
pub enum V1Error {
    /// The body is not JSON; serde's message carries the line and column.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(serde_json::Error),
    /// JSON of the wrong shape or with invalid values (names, addresses).
    #[error("{0}")]
    Invalid(String),
    /// Also for another tenant's ids: existence must not leak.
    #[error("campaign {0} does not exist")]
    CampaignNotFound(CampaignId),
    /// A batch id of another tenant, or a campaign that is not a batch.
    #[error("message batch {0} does not exist")]
    MessageNotFound(CampaignId),
    #[error("the Idempotency-Key was used before with a different body")]
    IdempotencyMismatch,
    /// The tenant's submit rate is used up; `retry_after` in seconds.
    #[error("the submit rate limit is reached; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the campaign has no recipient {0}")]
    RecipientNotFound(String),
    #[error("{0} is not on the suppression list")]
    NotSuppressed(String),
    #[error("{0}")]
    Conflict(String),
    /// A template error (with line and column) or unknown variables.
    #[error("{0}")]
    Template(String),
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0} is not in the exchange folder incoming")]
    FileNotFound(String),
    #[error("{0} is not in the exchange folder exports")]
    ExportNotFound(String),
    #[error("the store is unavailable; try again")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

impl V1Error {
    fn code(&self) -> &'static str {
        match self {
            V1Error::MalformedJson(_) => "malformed_json",
            V1Error::Invalid(_) => "invalid",
            V1Error::CampaignNotFound(_)
            | V1Error::RecipientNotFound(_)
            | V1Error::MessageNotFound(_)
            | V1Error::FileNotFound(_)
            | V1Error::ExportNotFound(_)
            | V1Error::NotSuppressed(_) => "not_found",
            V1Error::IdempotencyMismatch => "idempotency_key_reused",
            V1Error::RateLimited { .. } => "rate_limited",
            V1Error::Conflict(_) => "conflict",
            V1Error::Template(_) => "template_error",
            V1Error::TooLarge { .. } => "too_large",
            V1Error::Unavailable => "unavailable",
            V1Error::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for V1Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UnknownCampaign { campaign, .. } => V1Error::CampaignNotFound(campaign),
            StoreError::WrongStatus { .. }
            | StoreError::NotImported(_)
            | StoreError::AlreadyExists { .. } => V1Error::Conflict(error.to_string()),
            e if e.is_transient() => V1Error::Unavailable,
            // Database details stay in the log, not in a client's hands.
            e => V1Error::Internal(e.to_string()),
        }
    }
}

impl From<LaunchError> for V1Error {
    fn from(error: LaunchError) -> Self {
        match error {
            LaunchError::Template(..) => V1Error::Template(error.to_string()),
            LaunchError::NoDefinition(_) | LaunchError::NotImported(_) => {
                V1Error::Conflict(error.to_string())
            }
            LaunchError::Unreadable(..) => V1Error::Internal(error.to_string()),
            LaunchError::Store(e) => V1Error::from(e),
        }
    }
}

impl ResponseError for V1Error {
    fn status_code(&self) -> StatusCode {
        match self {
            V1Error::MalformedJson(_) => StatusCode::BAD_REQUEST,
            V1Error::Invalid(_) | V1Error::Template(_) | V1Error::IdempotencyMismatch => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            V1Error::CampaignNotFound(_)
            | V1Error::RecipientNotFound(_)
            | V1Error::MessageNotFound(_)
            | V1Error::FileNotFound(_)
            | V1Error::ExportNotFound(_)
            | V1Error::NotSuppressed(_) => StatusCode::NOT_FOUND,
            V1Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            V1Error::Conflict(_) => StatusCode::CONFLICT,
            V1Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            V1Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            V1Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let V1Error::Internal(detail) = self {
            tracing::error!(%detail, "API request failed");
        }
        let mut response = error_response(self.status_code(), self.code(), &self.to_string());
        if let V1Error::RateLimited { retry_after } = self
            && let Ok(value) = retry_after.to_string().parse()
        {
            response
                .headers_mut()
                .insert(actix_web::http::header::RETRY_AFTER, value);
        }
        response
    }
}

/// Parses a JSON body in two steps so that broken JSON (400, with the position)
/// is told apart from well-formed JSON of the wrong shape (422).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, V1Error> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(V1Error::MalformedJson)?;
    serde_json::from_value(value).map_err(|e| V1Error::Invalid(e.to_string()))
}
