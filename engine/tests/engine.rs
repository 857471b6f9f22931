//! The engine's integration tests, one binary (one link) for all of them.

mod pg_store;
mod support;
