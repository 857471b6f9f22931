//! The `security` section of a tenant's settings: whether a second factor is
//! required, the IP allowlist, and the SMS code lifetime. Defaults are the
//! installation's behaviour.

use serde::{Deserialize, Serialize};

use super::ip::Cidr;
use crate::config::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySettings {
    /// Every user, admins included, must log in with a second factor; a user with
    /// none registers and verifies a phone number at the next login.
    pub require_second_factor: bool,
    /// How long an SMS code is valid; `null`: the installation's `sms_code_ttl`.
    pub sms_code_ttl: Option<Duration>,
    /// Networks logins may come from (CIDR, e.g. `["192.0.2.0/24"]`); empty: any.
    pub ip_allowlist: Vec<Cidr>,
    /// What happens to a login from outside the allowlist.
    pub outside_allowlist: OutsideAllowlist,
    /// Also refuse API requests (Escher-signed) from outside the allowlist.
    pub allowlist_api: bool,
}

/// The choice for logins from outside the allowlist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutsideAllowlist {
    #[default]
    Refuse,
    /// Allowed with a second factor the user already has; never enrolment, or a
    /// stolen password would let its thief register their own phone.
    SecondFactor,
}
