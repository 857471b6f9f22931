//! The engine's one integration-test binary: the store conformance suite run against
//! every backend, and tests that cross modules (import into real stores).

mod conformance;
mod escher;
mod exchange_jobs;
mod import_pipeline;
mod pg_store;
mod sqlite_store;
mod support;
