//! What the tracking endpoints and the inbound listener store: opens, clicks,
//! unsubscribes, asynchronous bounces and complaints, kept in the campaign's events
//! table beside delivery outcomes (kind codes from 10 up, so
//! `Store::events` keeps returning outcomes only), and the tenant's suppression list.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Kind codes at or above this are tracking events, below it outcome states.
pub const FIRST_TRACKING_KIND: i16 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackingKind {
    Opened = 10,
    Clicked = 11,
    Unsubscribed = 12,
    /// A bounce that came back to the VERP address after the message was
    /// accepted; the recipient's state stays as delivery left it.
    Bounced = 13,
    /// A spam complaint (ARF feedback report).
    Complained = 14,
}

impl TrackingKind {
    pub fn as_i16(self) -> i16 {
        self as i16
    }

    pub fn from_i16(code: i16) -> Option<Self> {
        Some(match code {
            10 => TrackingKind::Opened,
            11 => TrackingKind::Clicked,
            12 => TrackingKind::Unsubscribed,
            13 => TrackingKind::Bounced,
            14 => TrackingKind::Complained,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrackingKind::Opened => "opened",
            TrackingKind::Clicked => "clicked",
            TrackingKind::Unsubscribed => "unsubscribed",
            TrackingKind::Bounced => "bounced",
            TrackingKind::Complained => "complained",
        }
    }
}

/// What a hit tells beyond its kind; stored as JSON in the event's detail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Already anonymized as configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An image proxy or link scanner, not (necessarily) a person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub machine: bool,
    /// A bounce's enhanced status code (`5.1.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A bounce's class: `hard` or `soft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// A bounce's diagnostic (the remote server's reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
    /// A complaint's ARF feedback type (`abuse`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
}

/// One open, click or unsubscribe of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackingEvent {
    pub recipient: crate::model::RecipientId,
    pub kind: TrackingKind,
    pub detail: TrackingDetail,
    pub at: DateTime<Utc>,
}

impl TrackingEvent {
    pub(crate) fn detail_json(&self) -> String {
        serde_json::to_string(&self.detail).unwrap_or_default()
    }

    pub(crate) fn parse_detail(text: Option<&str>) -> TrackingDetail {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }
}

/// Why an address is on the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    Unsubscribed,
    HardBounce,
    Complaint,
    /// Added by an operator or through the API.
    Manual,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Unsubscribed => "unsubscribed",
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "unsubscribed" => SuppressionReason::Unsubscribed,
            "hard_bounce" => SuppressionReason::HardBounce,
            "complaint" => SuppressionReason::Complaint,
            "manual" => SuppressionReason::Manual,
            _ => return None,
        })
    }
}

/// One entry of a tenant's suppression list; `email` is the normalized address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub email: String,
    pub reason: SuppressionReason,
    pub created_at: DateTime<Utc>,
}
