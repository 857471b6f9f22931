//! Delivery policy shared by every tenant: per-destination connection and rate
//! limits that adapt to what receiving servers say.

mod limits;

pub use limits::{ConnectionPermit, DestinationLimits, DomainLimiter, LimitSettings};
