//! `/v1/suppressions`: the caller's tenant's suppression list. Listed addresses
//! are skipped (state `suppressed`) by every later campaign.

use actix_web::{HttpResponse, web};
use engine::model::EmailAddress;
use engine::store::SuppressionReason;
use serde::Deserialize;

use super::{V1Error, parse_json};
use crate::http::ApiState;
use crate::http::auth::Signed;

/// `POST /v1/suppressions`: addresses to add (reason `manual`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddSuppressions {
    emails: Vec<String>,
}

pub async fn list(state: web::Data<ApiState>, signed: Signed) -> Result<HttpResponse, V1Error> {
    let entries = state.store.suppressions(signed.caller.tenant).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "suppressions": entries })))
}

pub async fn add(state: web::Data<ApiState>, signed: Signed) -> Result<HttpResponse, V1Error> {
    let body: AddSuppressions = parse_json(&signed.body)?;
    let entries = body
        .emails
        .iter()
        .map(|e| {
            EmailAddress::parse(e)
                .map(|a| (a.as_str().to_owned(), SuppressionReason::Manual))
                .map_err(|err| V1Error::Invalid(format!("{e:?}: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let added = state.store.suppress(signed.caller.tenant, &entries).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "added": added })))
}

pub async fn remove(
    state: web::Data<ApiState>,
    signed: Signed,
    email: web::Path<String>,
) -> Result<HttpResponse, V1Error> {
    let address =
        EmailAddress::parse(&email).map_err(|e| V1Error::Invalid(format!("{email:?}: {e}")))?;
    if state
        .store
        .unsuppress(signed.caller.tenant, address.as_str())
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(V1Error::NotSuppressed(address.as_str().to_owned()))
    }
}
