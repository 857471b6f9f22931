//! Broadside's load-testing kit: data generators, scratch databases, process
//! measurements, and (with the send pipeline) the SMTP sink and the load driver.

pub mod csv_gen;
pub mod pgdb;
pub mod rss;
pub mod sink;
