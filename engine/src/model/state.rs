//! The recipient state machine:
//! pending → delivered | deferred(until) | bounced | failed | suppressed,
//! deferred → deferred(later) | delivered | bounced | failed.
//! Delivered, bounced, failed and suppressed are final.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where one recipient of a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RecipientState {
    /// Not attempted yet.
    Pending,
    /// A temporary failure; the next attempt is due at `until`.
    Deferred { until: DateTime<Utc> },
    /// Accepted by the recipient's mail server (2xx after DATA).
    Delivered,
    /// Refused permanently (5xx, or a null MX).
    Bounced,
    /// Gave up: temporary failures until the maximum age.
    Failed,
    /// Never attempted because the address is on the tenant's suppression list.
    Suppressed,
}

/// The state without its data; what the stores keep in a small integer column and
/// what counters are kept by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateCode {
    Pending = 0,
    Deferred = 1,
    Delivered = 2,
    Bounced = 3,
    Failed = 4,
    Suppressed = 5,
}

impl StateCode {
    pub const ALL: [StateCode; 6] = [
        StateCode::Pending,
        StateCode::Deferred,
        StateCode::Delivered,
        StateCode::Bounced,
        StateCode::Failed,
        StateCode::Suppressed,
    ];

    pub fn as_i16(self) -> i16 {
        self as i16
    }

    pub fn from_i16(code: i16) -> Option<Self> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }

    pub fn is_final(self) -> bool {
        !matches!(self, StateCode::Pending | StateCode::Deferred)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StateCode::Pending => "pending",
            StateCode::Deferred => "deferred",
            StateCode::Delivered => "delivered",
            StateCode::Bounced => "bounced",
            StateCode::Failed => "failed",
            StateCode::Suppressed => "suppressed",
        }
    }
}

impl fmt::Display for StateCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a recipient cannot go from {from} to {to}")]
pub struct TransitionError {
    pub from: StateCode,
    pub to: StateCode,
}

impl RecipientState {
    pub fn code(&self) -> StateCode {
        match self {
            RecipientState::Pending => StateCode::Pending,
            RecipientState::Deferred { .. } => StateCode::Deferred,
            RecipientState::Delivered => StateCode::Delivered,
            RecipientState::Bounced => StateCode::Bounced,
            RecipientState::Failed => StateCode::Failed,
            RecipientState::Suppressed => StateCode::Suppressed,
        }
    }

    /// Rebuilds a state from its stored form.
    pub fn from_parts(code: StateCode, until: Option<DateTime<Utc>>) -> Self {
        match (code, until) {
            (StateCode::Pending, _) => RecipientState::Pending,
            // A deferred row without a due time is due now.
            (StateCode::Deferred, until) => RecipientState::Deferred {
                until: until.unwrap_or(DateTime::<Utc>::MIN_UTC),
            },
            (StateCode::Delivered, _) => RecipientState::Delivered,
            (StateCode::Bounced, _) => RecipientState::Bounced,
            (StateCode::Failed, _) => RecipientState::Failed,
            (StateCode::Suppressed, _) => RecipientState::Suppressed,
        }
    }

    /// The due time of a deferred recipient.
    pub fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            RecipientState::Deferred { until } => Some(*until),
            _ => None,
        }
    }

    /// Checks that going from `self` to `next` is allowed.
    pub fn check_transition(&self, next: &RecipientState) -> Result<(), TransitionError> {
        Self::allowed(self.code(), next.code())
            .then_some(())
            .ok_or(TransitionError {
                from: self.code(),
                to: next.code(),
            })
    }

    /// The transition table, on codes, so that stores can apply it in SQL too.
    pub fn allowed(from: StateCode, to: StateCode) -> bool {
        use StateCode::*;
        match from {
            Pending => to != Pending,
            Deferred => matches!(to, Deferred | Delivered | Bounced | Failed),
            Delivered | Bounced | Failed | Suppressed => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states_never_change() {
        for from in StateCode::ALL.into_iter().filter(|c| c.is_final()) {
            for to in StateCode::ALL {
                assert!(!RecipientState::allowed(from, to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn pending_goes_anywhere_but_pending_and_deferred_never_becomes_suppressed() {
        for to in StateCode::ALL {
            assert_eq!(
                RecipientState::allowed(StateCode::Pending, to),
                to != StateCode::Pending
            );
        }
        assert!(!RecipientState::allowed(
            StateCode::Deferred,
            StateCode::Suppressed
        ));
        assert!(RecipientState::allowed(
            StateCode::Deferred,
            StateCode::Deferred
        ));
    }

    #[test]
    fn codes_round_trip_through_their_stored_form() {
        for code in StateCode::ALL {
            assert_eq!(StateCode::from_i16(code.as_i16()), Some(code));
        }
        assert_eq!(StateCode::from_i16(6), None);
        assert_eq!(StateCode::from_i16(-1), None);
    }
}
