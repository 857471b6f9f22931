//! From an SMTP result to a stored outcome: delivered, bounced, or deferred on the
//! retry schedule until the maximum age, then failed.

use chrono::{DateTime, Utc};
use engine::model::RecipientState;
use engine::smtp::{DeliveryError, Reply};
use engine::store::{Outcome, RowRef};

use crate::run::CampaignRun;

pub fn delivery_outcome(
    run: &CampaignRun,
    row: RowRef<'_>,
    result: &Result<Reply, DeliveryError>,
    now: DateTime<Utc>,
) -> Outcome {
    let (state, detail) = match result {
        Ok(reply) => (RecipientState::Delivered, reply.to_string()),
        Err(DeliveryError::Permanent { reason, .. }) => (RecipientState::Bounced, reason.clone()),
        Err(DeliveryError::Transient { reason, .. }) => {
            let attempts = row.attempts() + 1;
            let first = row.first_attempt().unwrap_or(now);
            let state = match run.retry.next_attempt(attempts, first, now, rand::random::<f64>()) {
                Some(until) => RecipientState::Deferred { until },
                None => RecipientState::Failed,
            };
            (state, reason.clone())
        }
    };
    Outcome {
        recipient: row.id(),
        state,
        attempted: true,
        detail: Some(detail),
        at: now,
    }
}

/// A message that could not be built for this row fails without an attempt.
pub fn render_failure(row: RowRef<'_>, reason: String, now: DateTime<Utc>) -> Outcome {
    Outcome {
        recipient: row.id(),
        state: RecipientState::Failed,
        attempted: false,
        detail: Some(reason),
        at: now,
    }
}
