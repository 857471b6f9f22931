//! Retries on schedule: after a deferral, a recipient's next attempt must come
//! when the engine's retry policy says (`base(k) × (1 ± jitter)` after attempt
//! k), give or take the scenario's tolerance. Checked on attempt histories —
//! the engine's own events (its store, or its HTTP API), and independently the
//! sink's clock for the 4xx it gave at `RCPT TO`.

use chrono::{DateTime, Utc};
use engine::smtp::RetryPolicy;
use serde::Serialize;

/// Recipients listed at most per finding.
const LISTED: usize = 20;

/// One delivery attempt as the engine recorded it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    /// When its outcome was known.
    pub at: DateTime<Utc>,
    /// Deferred (a retry must follow) rather than final.
    pub deferred: bool,
}

/// A recipient's attempts, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub address: String,
    pub attempts: Vec<Attempt>,
}

/// The allowed window around each retry, in seconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tolerance {
    /// How much earlier than `base × (1 − jitter)` still passes.
    pub early_s: f64,
    /// How much later than `base × (1 + jitter)` still passes.
    pub late_s: f64,
}

/// What the retry check found.
#[derive(Debug, Default, Serialize)]
pub struct RetryFindings {
    /// Where the histories came from (`store events`, `API events`).
    pub source: String,
    /// The policy checked against: first delay, factor, jitter.
    pub first_delay_s: f64,
    pub factor: f64,
    pub jitter: f64,
    pub tolerance_early_s: f64,
    /// `None` when lateness is not judged (histories that may miss attempts).
    pub tolerance_late_s: Option<f64>,
    /// Recipients deferred at least once.
    pub deferred_recipients: u64,
    /// Deferrals followed by another attempt, each a checked gap.
    pub retries_checked: u64,
    /// Gaps before the window, and after it.
    pub early: u64,
    pub late: u64,
    /// The headline figures, seconds: the largest `earliest − gap` (negative
    /// when every retry came after its earliest moment, by that much at
    /// least) and the largest `gap − latest` (negative when every retry came
    /// before its latest moment). `None` without retries.
    pub worst_early_s: Option<f64>,
    pub worst_late_s: Option<f64>,
    /// Shortest and longest gap after a first deferral, seconds.
    pub first_retry_gap_min_s: Option<f64>,
    pub first_retry_gap_max_s: Option<f64>,
    /// `address: attempt k+1 came g s after attempt k, allowed [a, b]`.
    pub examples: Vec<String>,
    /// Why the histories could not be read; unread retries do not pass.
    pub error: Option<String>,
}

impl RetryFindings {
    pub fn passed(&self) -> bool {
        self.early == 0 && self.late == 0 && self.error.is_none()
    }

    /// The report's lines.
    pub fn print(&self) {
        let gaps = match (self.first_retry_gap_min_s, self.first_retry_gap_max_s) {
            (Some(min), Some(max)) => format!(", first retries {min:.2}..{max:.2} s after"),
            _ => String::new(),
        };
        let figure = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:+.2} s"));
        let late = match self.tolerance_late_s {
            Some(late) => format!(
                ", worst late {} (bound +{late:.2} s)",
                figure(self.worst_late_s)
            ),
            None => ", lateness not judged".to_owned(),
        };
        println!(
            "retries    {} ({}) — {} deferred, {} retries checked against {:.1} s × {}^(k-1) \
             ± {:.0} %: {} early, {} late; worst early {} (bound +{:.2} s){late}{gaps}",
            if self.passed() { "passed" } else { "FAILED" },
            self.source,
            self.deferred_recipients,
            self.retries_checked,
            self.first_delay_s,
            self.factor,
            self.jitter * 100.0,
            self.early,
            self.late,
            figure(self.worst_early_s),
            self.tolerance_early_s,
        );
        for why in self.error.iter().chain(&self.examples) {
            println!("  retry      {why}");
        }
    }
}

/// Checks every gap after a deferral against `policy`; `late` is `false`
/// when the histories may miss attempts (the sink does not see a 421 before
/// `RCPT TO`), so that only earliness is judged.
pub fn check(
    source: &str,
    histories: &[History],
    policy: &RetryPolicy,
    tolerance: Tolerance,
    late: bool,
) -> RetryFindings {
    let mut f = RetryFindings {
        source: source.to_owned(),
        first_delay_s: policy.first_delay.as_secs_f64(),
        factor: policy.factor,
        jitter: policy.jitter,
        tolerance_early_s: tolerance.early_s,
        tolerance_late_s: late.then_some(tolerance.late_s),
        ..RetryFindings::default()
    };
    for history in histories {
        if history.attempts.iter().any(|a| a.deferred) {
            f.deferred_recipients += 1;
        }
        for (k, pair) in history.attempts.windows(2).enumerate() {
            if !pair[0].deferred {
                continue;
            }
            // `k + 1` attempts had failed when the delay was drawn.
            let base = policy.base_delay(k as u32 + 1).as_secs_f64();
            let (earliest, latest) = (base * (1.0 - policy.jitter), base * (1.0 + policy.jitter));
            let gap = (pair[1].at - pair[0].at).as_seconds_f64();
            f.retries_checked += 1;
            if k == 0 {
                f.first_retry_gap_min_s = Some(f.first_retry_gap_min_s.map_or(gap, |m| m.min(gap)));
                f.first_retry_gap_max_s = Some(f.first_retry_gap_max_s.map_or(gap, |m| m.max(gap)));
            }
            let wrong = if gap < earliest - tolerance.early_s {
                f.early += 1;
                true
            } else if late && gap > latest + tolerance.late_s {
                f.late += 1;
                true
            } else {
                false
            };
            f.worst_early_s = Some(
                f.worst_early_s
                    .map_or(earliest - gap, |w| w.max(earliest - gap)),
            );
            if late {
                f.worst_late_s = Some(f.worst_late_s.map_or(gap - latest, |w| w.max(gap - latest)));
            }
            if wrong && f.examples.len() < LISTED {
                let until = match late {
                    true => format!("{:.2} s", latest + tolerance.late_s),
                    false => "any time".to_owned(),
                };
                f.examples.push(format!(
                    "{}: attempt {} came {gap:.2} s after attempt {}, allowed {:.2} s to {until}",
                    history.address,
                    k + 2,
                    k + 1,
                    earliest - tolerance.early_s,
                ));
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_secs(5),
            ..RetryPolicy::default()
        }
    }

    fn history(address: &str, attempts: &[(f64, bool)]) -> History {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        History {
            address: address.to_owned(),
            attempts: attempts
                .iter()
                .map(|(s, deferred)| Attempt {
                    at: t0 + chrono::Duration::milliseconds((s * 1000.0) as i64),
                    deferred: *deferred,
                })
                .collect(),
        }
    }

    const TOLERANCE: Tolerance = Tolerance {
        early_s: 0.05,
        late_s: 3.0,
    };

    #[test]
    fn retries_inside_the_jittered_window_pass() {
        let ok = [
            // 5 s ± 20 %, then 10 s ± 20 %.
            history("a@d0.example", &[(0.0, true), (4.1, false)]),
            history("b@d0.example", &[(1.0, true), (7.0, true), (17.5, false)]),
            history("c@d0.example", &[(2.0, false)]),
        ];
        let f = check("test", &ok, &policy(), TOLERANCE, true);
        assert!(f.passed(), "{f:?}");
        assert_eq!((f.deferred_recipients, f.retries_checked), (2, 3));
        assert_eq!(f.first_retry_gap_min_s, Some(4.1));
        assert_eq!(f.first_retry_gap_max_s, Some(6.0));
        // Closest to the edges: 4.1 s against 4.0 s, 6.0 s against 6.0 s.
        assert!(
            (f.worst_early_s.expect("checked") + 0.1).abs() < 1e-9,
            "{f:?}"
        );
        assert!(f.worst_late_s.expect("checked").abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn an_early_retry_is_caught_and_named() {
        // 3.5 s after the first deferral: the policy allows 4 s at the earliest.
        let early = [
            history("ok@d1.example", &[(0.0, true), (5.0, false)]),
            history("early@d1.example", &[(0.0, true), (3.5, false)]),
        ];
        let f = check("test", &early, &policy(), TOLERANCE, true);
        assert!(!f.passed());
        assert_eq!((f.early, f.late), (1, 0));
        assert!(
            (f.worst_early_s.expect("checked") - 0.5).abs() < 1e-9,
            "{f:?}"
        );
        assert!(
            f.examples[0].starts_with("early@d1.example: attempt 2"),
            "{f:?}"
        );
    }

    #[test]
    fn a_late_retry_fails_only_when_the_history_is_complete() {
        // The second delay is 10 s ± 20 %: 20 s is 8 s past 12 s, over the 3 s slack.
        let late = [history(
            "slow@d2.example",
            &[(0.0, true), (5.0, true), (25.0, false)],
        )];
        let f = check("test", &late, &policy(), TOLERANCE, true);
        assert_eq!((f.early, f.late), (0, 1));
        assert!(
            (f.worst_late_s.expect("checked") - 8.0).abs() < 1e-9,
            "{f:?}"
        );
        let sink_view = check("sink", &late, &policy(), TOLERANCE, false);
        assert!(sink_view.passed(), "{sink_view:?}");
    }
}
