//! What the exchange's background jobs need from a store: a campaign's events in
//! id order with the recipient's address (response-data exports), the export
//! watermark per campaign, and the purge at the end of a campaign's lifetime.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{RecipientId, StateCode};
use crate::store::tracking::{FIRST_TRACKING_KIND, TrackingDetail, TrackingKind};

/// What an event records: a delivery outcome or a tracking hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventKind {
    Outcome(StateCode),
    Tracking(TrackingKind),
}

impl EventKind {
    /// The kind stored under `code`, if any (codes below 10 are outcomes).
    pub fn from_i16(code: i16) -> Option<Self> {
        match code >= FIRST_TRACKING_KIND {
            true => TrackingKind::from_i16(code).map(EventKind::Tracking),
            false => StateCode::from_i16(code).map(EventKind::Outcome),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Outcome(code) => code.as_str(),
            EventKind::Tracking(kind) => kind.as_str(),
        }
    }
}

/// One row of a campaign's events table, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignEvent {
    /// Increasing in the order events were stored; the export watermark counts it.
    pub id: i64,
    pub recipient: RecipientId,
    /// The recipient's address; `None` only if the recipient row is missing.
    pub email: Option<String>,
    pub kind: EventKind,
    /// Outcomes: the SMTP reply or reason. Tracking events: their JSON detail.
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

impl CampaignEvent {
    /// The tracking detail of an open, click or unsubscribe (empty for outcomes).
    pub fn tracking_detail(&self) -> TrackingDetail {
        match self.kind {
            EventKind::Tracking(_) => {
                crate::store::TrackingEvent::parse_detail(self.detail.as_deref())
            }
            EventKind::Outcome(_) => TrackingDetail::default(),
        }
    }
}

/// How far a campaign's events have been exported. Two ids, so that a crash
/// between writing a file and recording it repeats exactly the same file: the
/// range is fixed (`pending`) before the file is written and the watermark
/// (`exported`) advances only after the file is in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportWatermark {
    /// Every event with an id up to this one is in an export file.
    pub exported: i64,
    /// The end of the range being written, if a run started and did not finish.
    pub pending: Option<i64>,
}

/// What `Store::purge_campaign` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// The recipient and event tables existed and were dropped.
    pub tables_dropped: bool,
    /// Batch-submit idempotency records and queued webhook events of the
    /// campaign deleted (derived from, or possibly naming, recipients).
    pub idempotency_records: u64,
}

impl PurgeReport {
    pub fn removed_anything(&self) -> bool {
        self.tables_dropped || self.idempotency_records > 0
    }
}

/// A file an import read, as the customer named it, and when the import committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSource {
    pub source: String,
    pub committed_at: DateTime<Utc>,
}
