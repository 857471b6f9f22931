//! The audit log: an append-only record of who did what to which tenant's data —
//! authentication attempts, changes to users, keys and security settings, views and
//! exports of personal data by operators, and every deletion made by retention.
//!
//! Both backends refuse `UPDATE` and `DELETE` on the table with a trigger, so not
//! even a bug in Broadside can rewrite history. Entries never hold a recipient's
//! address: they name recipients and campaigns by id, so that the audit log does not
//! keep personal data alive after a campaign's lifetime.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::TenantId;

/// What happened, as appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// The tenant whose data or settings were touched; `None` for installation-wide
    /// events (an operator logging in, a tenant being created).
    pub tenant: Option<TenantId>,
    /// Who acted: `user:<name>`, `operator:<name>`, `key:<id>`, `cli`, or
    /// `system:<process>` (for example `system:retention`).
    pub actor: String,
    /// A dotted verb, for example `login.password`, `key.revoke`, `file.delete`.
    pub action: String,
    /// What it was done to (a user name, key id, file path, campaign id), if any.
    pub target: Option<String>,
    /// The result: `ok`, or why it failed (`wrong_password`, `locked`, …).
    pub outcome: String,
    /// The client's address, for requests that came over the network.
    pub ip: Option<String>,
    /// Anything else worth keeping, as JSON text.
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

impl AuditRecord {
    /// A successful action with no target, address or detail; set the rest with
    /// the builder methods.
    pub fn new(
        tenant: Option<TenantId>,
        actor: impl Into<String>,
        action: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        AuditRecord {
            tenant,
            actor: actor.into(),
            action: action.into(),
            target: None,
            outcome: "ok".to_owned(),
            ip: None,
            detail: None,
            at,
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self
    }

    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    pub fn detail(mut self, detail: &serde_json::Value) -> Self {
        self.detail = Some(detail.to_string());
        self
    }
}

/// An entry as stored: the record and its position in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Increasing in the order entries were appended.
    pub id: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// Which entries to read, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditQuery {
    /// One tenant's entries, or (operators only) every entry.
    pub tenant: Option<TenantId>,
    /// Only entries with an id below this one: the next page.
    pub before: Option<i64>,
    pub limit: u32,
}
