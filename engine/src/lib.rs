//! Broadside's domain core: the model, configuration, storage, import, rendering and
//! DKIM signing. No actors live here; the runtime in `actors/` drives these pieces.

pub mod dkim;
pub mod model;
pub mod render;
pub mod store;
