//! The `broadside` crate's one integration-test binary: the real executable, driven
//! the way operators drive it.

mod api;
mod cli;
mod crash;
mod exchange;
mod metrics;
mod pgp;
mod pipeline;
mod sms;
mod tracking;
