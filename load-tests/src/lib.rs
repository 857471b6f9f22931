//! Broadside's load-testing kit: data generators, scratch databases, the engine
//! as a child process, process measurements, the SMTP sink, scenarios and the
//! pieces the load driver (`broadside-load`) and the benchmarks share.

pub mod csv_gen;
pub mod dkim_check;
pub mod engine_proc;
pub mod pgdb;
pub mod rss;
pub mod scenario;
pub mod sink;
pub mod submit_client;
