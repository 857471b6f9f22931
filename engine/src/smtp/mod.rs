//! Outbound SMTP: one session with a receiving mail server, reply classification,
//! and the retry schedule those classes drive.

mod client;
mod reply;
mod retry;
mod session;

pub use reply::{DeliveryError, EnhancedCode, Reply, ReplyClass};
pub use retry::RetryPolicy;
pub use session::{SessionOptions, SmtpSession, Timeouts, TlsMode};
