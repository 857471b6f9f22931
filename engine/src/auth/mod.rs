//! Authentication of API callers. Framework-agnostic: the HTTP layer adapts its
//! requests to these types.

pub mod escher;
pub mod keys;
