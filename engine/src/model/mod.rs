//! The domain model: identifiers, validated values and the recipient state machine.

mod email;
mod ids;
mod state;

pub use email::{AddressError, EmailAddress};
pub use ids::{CampaignId, CampaignName, NameError, RecipientId, TenantId, TenantName};
pub use state::{RecipientState, StateCode, TransitionError};
