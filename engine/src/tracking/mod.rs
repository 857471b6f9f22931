//! Tracking: signed tokens, link rewriting at compile time, and what an endpoint
//! needs to judge a hit (IP anonymization, machine-activity flags).

mod classify;
pub mod links;
mod settings;
mod token;

pub use classify::{Anonymization, is_image_proxy, is_link_scanner_delay};
pub use settings::TenantTracking;
pub use token::{SECRET_FILE, Token, TokenKey, TokenKeyError, TokenKind};

use std::sync::Arc;

use crate::model::{CampaignId, TenantId};

/// What a campaign needs to put tracking into its messages; built by the runtime
/// from `[tracking]` and handed to `CompiledCampaign::compile_tracked`.
#[derive(Debug, Clone)]
pub struct TrackingSetup {
    pub key: Arc<TokenKey>,
    pub tenant: TenantId,
    pub campaign: CampaignId,
    /// Host of the tracking URLs (`https://<domain>/t/...`).
    pub domain: String,
    /// Domain of VERP return paths and the mailto unsubscribe address.
    pub bounce_domain: String,
}
