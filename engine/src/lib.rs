//! Broadside's domain core: the model, configuration, storage, import, rendering,
//! DKIM, authentication and delivery policy. No actors live here; the runtime in
//! `actors/` drives these pieces.

pub mod auth;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod dkim;
pub mod exchange;
pub mod import;
pub mod inbound;
pub mod model;
pub mod render;
pub mod smtp;
pub mod store;
pub mod tenant;
pub mod tracking;
