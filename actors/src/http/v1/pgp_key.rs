//! `GET /v1/pgp-key`: the caller's tenant's public PGP key, the one files
//! uploaded encrypted (`*.gpg`, `*.pgp`, `*.asc`) must be encrypted to. The key
//! pair is generated on the first request that needs it.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use engine::exchange::pgp::PgpError;
use engine::store::AuditRecord;

use super::V1Error;
use crate::http::ApiState;
use crate::http::auth::Signed;

pub async fn public_key(
    state: web::Data<ApiState>,
    signed: Signed,
) -> Result<HttpResponse, V1Error> {
    let tenant_id = signed.caller.tenant;
    let tenants = state.store.tenants().await?;
    let Some(tenant) = tenants.into_iter().find(|t| t.id == tenant_id) else {
        return Err(V1Error::Internal(format!(
            "tenant {tenant_id} of a valid key is gone"
        )));
    };
    let public = state
        .pgp
        .public_key(state.store.as_ref(), tenant.id, &tenant.name)
        .await
        .map_err(|e| match e {
            PgpError::Store(e) => V1Error::from(e),
            e => V1Error::Internal(e.to_string()),
        })?;
    if public.created {
        let actor = format!("api key {}", signed.caller.key_id);
        let record = AuditRecord::new(Some(tenant.id), actor, "pgp.key_created", Utc::now())
            .target(public.fingerprint.as_str());
        state.store.append_audit(&record).await?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "public_key": public.armored,
        "fingerprint": public.fingerprint,
    })))
}
