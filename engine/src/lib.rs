//! Broadside's domain core: the model, configuration, storage and import. No actors
//! live here; the runtime in `actors/` drives these pieces.

pub mod import;
pub mod model;
pub mod store;
