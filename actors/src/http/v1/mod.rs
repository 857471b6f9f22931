//! Version 1 of the API: campaigns, recipient uploads, status changes and
//! statistics. Every route authenticates with Escher; the tenant is the key's.

mod campaigns;
mod suppressions;
mod upload;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use engine::model::CampaignId;
use engine::store::StoreError;

use super::error::error_response;
use crate::cli::campaign::LaunchError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/campaigns", web::post().to(campaigns::create))
        .route("/campaigns", web::get().to(campaigns::list))
        .route("/campaigns/{id}", web::get().to(campaigns::get))
        .route("/campaigns/{id}/recipients", web::put().to(upload::upload))
        .route(
            "/campaigns/{id}/imports",
            web::post().to(campaigns::import_file),
        )
        .route("/campaigns/{id}/launch", web::post().to(campaigns::launch))
        .route("/campaigns/{id}/pause", web::post().to(campaigns::pause))
        .route("/campaigns/{id}/resume", web::post().to(campaigns::resume))
        .route("/campaigns/{id}/cancel", web::post().to(campaigns::cancel))
        .route("/campaigns/{id}/stats", web::get().to(campaigns::stats))
        .route(
            "/campaigns/{id}/recipients/{email}",
            web::get().to(campaigns::recipient),
        )
        .route("/suppressions", web::get().to(suppressions::list))
        .route("/suppressions", web::post().to(suppressions::add))
        .route(
            "/suppressions/{email}",
            web::delete().to(suppressions::remove),
        );
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
    #[error("{0}")]
    NotImplemented(&'static str),
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
            | V1Error::NotSuppressed(_) => "not_found",
            V1Error::Conflict(_) => "conflict",
            V1Error::Template(_) => "template_error",
            V1Error::TooLarge { .. } => "too_large",
            V1Error::NotImplemented(_) => "not_implemented",
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
            V1Error::Invalid(_) | V1Error::Template(_) => StatusCode::UNPROCESSABLE_ENTITY,
            V1Error::CampaignNotFound(_)
            | V1Error::RecipientNotFound(_)
            | V1Error::NotSuppressed(_) => StatusCode::NOT_FOUND,
            V1Error::Conflict(_) => StatusCode::CONFLICT,
            V1Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            V1Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            V1Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            V1Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let V1Error::Internal(detail) = self {
            tracing::error!(%detail, "API request failed");
        }
        error_response(self.status_code(), self.code(), &self.to_string())
    }
}

/// Parses a JSON body in two steps so that broken JSON (400, with the position)
/// is told apart from well-formed JSON of the wrong shape (422).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, V1Error> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(V1Error::MalformedJson)?;
    serde_json::from_value(value).map_err(|e| V1Error::Invalid(e.to_string()))
}
