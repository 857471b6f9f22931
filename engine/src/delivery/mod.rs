//! Delivery policy shared by every tenant: where mail for a domain goes, and
//! per-destination connection and rate limits that adapt to what receiving
//! servers say.

mod limits;
mod routing;

pub use limits::{ConnectionPermit, DestinationLimits, DomainLimiter, LimitSettings};
pub use routing::{
    Destination, DnsMode, RouteConfig, RouteConfigError, RouteTable, RouteTarget, Router,
    RoutingSettings, RoutingSetupError, WILDCARD,
};
