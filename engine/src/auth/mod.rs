//! Authentication of API callers (Escher keys) and of people using the web
//! application (passwords, second factors, IP allowlists). Framework-agnostic:
//! the HTTP layer adapts its requests to these types.

mod accounts;
pub mod escher;
pub mod ip;
pub mod keys;
pub mod login;
pub mod otp;
pub mod password;
pub mod settings;
pub mod sms;
pub mod throttle;
pub mod user;

pub use accounts::ChangedBy;
pub use ip::{Cidr, IpDecision, check_ip};
pub use login::{Login, LoginError, Next, Passed};
pub use settings::{OutsideAllowlist, SecuritySettings};
pub use sms::{FileGateway, SmsError, SmsGateway};
pub use throttle::Throttle;
pub use user::{Role, User};
