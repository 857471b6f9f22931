//! The send pipeline end to end: store, supervision tree, rendering, SMTP to the
//! project's sink on loopback, outcomes back in the store.

mod control;
mod delivery;
mod dkim;
mod faults;
mod harness;
mod pg;
mod tls;
