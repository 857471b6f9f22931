//! Broadside's runtime: the command line, the application wiring and (later) the
//! actix actor tree that sends campaigns.

pub mod app;
pub mod cli;
pub mod cpu_pool;
pub mod delivery;
pub mod dispatcher;
pub mod exchange;
pub mod http;
pub mod in_flight;
pub mod inbound;
pub mod retry_schedule;
pub mod run;
pub mod runtime;
pub mod sms;
pub mod supervisor;
pub mod telemetry;
pub mod tracking;
pub mod tracking_events;
pub mod webhooks;
