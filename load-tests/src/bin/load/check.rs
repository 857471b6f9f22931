//! What the sink received, checked against what was generated: every
//! recipient exactly once (losses and duplicates listed; a crash run may
//! duplicate up to `max_in_flight` per kill), every recipient final, the
//! engine's counters agreeing, the sampled messages personalized for their
//! recipient, DKIM signatures verifying and, where the scenario asks, retries
//! on schedule and no domain starved.

use std::collections::BTreeMap;
use std::time::Duration;

use broadside_load_tests::csv_gen;
use broadside_load_tests::scenario::Scenario;
use broadside_load_tests::sink::share_point;
use chrono::{DateTime, Utc};
use mail_parser::MessageParser;
use serde::Serialize;

use crate::drive::Run;
use crate::fairness::{self, DomainArrivals, FairnessFindings};
use crate::probe::NotFinal;
use crate::retries::{self, Attempt, History, RetryFindings, Tolerance};

/// Addresses listed at most, so a broken run still prints a readable report.
const LISTED: usize = 20;

/// The checks' findings.
#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    /// Recipients expected at the sink (all but the sink's permanent failures).
    pub expected_at_sink: u64,
    /// Recipients the sink refused for good; they must be bounced, not sent.
    pub expected_bounced: u64,
    pub missing: u64,
    pub missing_examples: Vec<String>,
    /// Recipients with more messages than expected, and how many extra.
    pub duplicated_recipients: u64,
    pub duplicate_messages: u64,
    pub duplicate_examples: Vec<(String, u32)>,
    /// Extra messages the crash schedule allows (kills × max_in_flight).
    pub duplicate_bound: u64,
    /// Messages decoded and compared with their recipient's row.
    pub personalization_checked: u64,
    pub personalization_wrong: u64,
    pub personalization_examples: Vec<String>,
    /// Signatures checked and how many failed (none checked without DKIM).
    pub dkim_checked: u64,
    pub dkim_failed: u64,
    /// Store counters that disagree with the sink.
    pub store_mismatch: Option<String>,
    /// Every recipient final: who is not, and why the wait ended.
    pub finality: Finality,
    /// Retries against the retry policy, on the engine's events.
    pub retries: Option<RetryFindings>,
    /// The same on the sink's clock (4xx at `RCPT TO` to the next arrival):
    /// only earliness, as the sink does not see every attempt.
    pub retries_at_sink: Option<RetryFindings>,
    /// Per-domain progress at the sink.
    pub fairness: Option<FairnessFindings>,
}

/// Whether every recipient ended in a final state.
#[derive(Debug, Default, Serialize)]
pub struct Finality {
    /// Why the monitor stopped waiting early, if it did.
    pub gave_up: Option<String>,
    #[serde(flatten)]
    pub not_final: NotFinal,
    /// Set when the engine could not be asked.
    pub error: Option<String>,
}

impl Finality {
    pub fn passed(&self) -> bool {
        self.gave_up.is_none()
            && self.error.is_none()
            && self.not_final.pending == 0
            && self.not_final.deferred == 0
    }
}

impl Verdict {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.missing == 0
            && self.duplicate_messages <= self.duplicate_bound
            && self.personalization_wrong == 0
            && self.dkim_failed == 0
            && self.store_mismatch.is_none()
            && self.finality.passed()
            && self.retries.as_ref().is_none_or(RetryFindings::passed)
            && self
                .retries_at_sink
                .as_ref()
                .is_none_or(RetryFindings::passed)
            && self.fairness.as_ref().is_none_or(FairnessFindings::passed)
    }

    /// `Ok` when passed, else an error naming what failed.
    pub fn into_result(self) -> anyhow::Result<()> {
        let judged = |f: Option<bool>| match f {
            None => "not checked",
            Some(true) => "passed",
            Some(false) => "FAILED",
        };
        anyhow::ensure!(
            self.passed(),
            "verification failed: {} missing, {} duplicate messages (bound {}), {} wrongly \
             personalized, {} DKIM failures, store: {}, final: {} pending and {} deferred{}, \
             retries: {} (sink: {}), fairness: {}",
            self.missing,
            self.duplicate_messages,
            self.duplicate_bound,
            self.personalization_wrong,
            self.dkim_failed,
            self.store_mismatch.as_deref().unwrap_or("agrees"),
            self.finality.not_final.pending,
            self.finality.not_final.deferred,
            self.finality
                .gave_up
                .as_ref()
                .or(self.finality.error.as_ref())
                .map_or(String::new(), |why| format!(" ({why})")),
            judged(self.retries.as_ref().map(RetryFindings::passed)),
            judged(self.retries_at_sink.as_ref().map(RetryFindings::passed)),
            judged(self.fairness.as_ref().map(FairnessFindings::passed)),
        );
        Ok(())
    }
}

/// Runs every check.
pub async fn verify(scenario: &Scenario, run: &Run) -> Verdict {
    let mut verdict = Verdict {
        duplicate_bound: u64::from(run.kills) * u64::from(scenario.engine.max_in_flight),
        ..Verdict::default()
    };
    let missing = exactly_once(scenario, run, &mut verdict);
    store_agrees(run, &mut verdict);
    contents(scenario, run, &mut verdict).await;
    verdict.finality = finality(run, &missing).await;
    schedule_and_fairness(scenario, run, &mut verdict).await;
    verdict
}

async fn finality(run: &Run, missing: &[String]) -> Finality {
    let mut f = Finality {
        gave_up: run.gave_up.clone(),
        ..Finality::default()
    };
    match run.probe.not_final(missing).await {
        Ok(not_final) => f.not_final = not_final,
        Err(e) => f.error = Some(format!("{e:#}")),
    }
    f
}

/// The retry and fairness checks the scenario asks for.
async fn schedule_and_fairness(scenario: &Scenario, run: &Run, v: &mut Verdict) {
    let (retry, fair) = (&scenario.verify.retries, &scenario.verify.fairness);
    if retry.is_none() && fair.is_none() {
        return;
    }
    let seen = sink_view(scenario, run);
    if let Some(bounds) = fair {
        v.fairness = Some(fairness::check(seen.arrivals, bounds));
    }
    let Some(bounds) = retry else { return };
    let policy = run.config.send.retry.policy();
    let poll = run.config.send.poll_interval.as_std();
    let tolerance = Tolerance {
        early_s: Duration::from_millis(bounds.early_margin_ms).as_secs_f64(),
        late_s: 2.0 * poll.as_secs_f64() + bounds.late_slack_secs,
    };
    let deferred_at_sink: Vec<String> = seen
        .sink_histories
        .iter()
        .map(|h| h.address.clone())
        .collect();
    v.retries = Some(match run.probe.histories(&deferred_at_sink).await {
        Ok(histories) => retries::check(run.probe.source(), &histories, &policy, tolerance, true),
        Err(e) => RetryFindings {
            source: run.probe.source().to_owned(),
            error: Some(format!("the engine's events could not be read: {e:#}")),
            ..RetryFindings::default()
        },
    });
    v.retries_at_sink = Some(retries::check(
        "sink",
        &seen.sink_histories,
        &policy,
        tolerance,
        false,
    ));
}

/// What the sink saw per recipient, for the schedule and fairness checks.
struct SinkView {
    /// Recipients refused with a 4xx at `RCPT TO`: refusals, then arrival.
    sink_histories: Vec<History>,
    /// Per domain, when each of its recipients' first message arrived.
    arrivals: Vec<DomainArrivals>,
}

fn sink_view(scenario: &Scenario, run: &Run) -> SinkView {
    let picker = scenario.domain_picker();
    let permfail = scenario.sink.permfail_share;
    let mut domains: BTreeMap<String, DomainArrivals> = BTreeMap::new();
    let mut sink_histories = Vec::new();
    for i in 1..=run.expected {
        let address = picker.address(i);
        let domain = picker.domain(i);
        let refused = share_point(&address) < permfail;
        let tally = run.sink.recorder.tally_for(&address);
        let arrivals = domains
            .entry(domain.to_owned())
            .or_insert_with(|| DomainArrivals {
                domain: domain.to_owned(),
                expected: 0,
                times: Vec::new(),
            });
        arrivals.expected += u64::from(!refused);
        let Some(tally) = tally else { continue };
        let accepted = tally.first_accepted();
        if let Some(at) = accepted {
            let since = at.duration_since(run.started_at).unwrap_or_default();
            arrivals.times.push(since.as_secs_f64());
        }
        let mut attempts: Vec<Attempt> = tally
            .transient_refusals()
            .map(|at| Attempt {
                at: DateTime::<Utc>::from(at),
                deferred: true,
            })
            .collect();
        if attempts.is_empty() {
            continue;
        }
        attempts.extend(accepted.map(|at| Attempt {
            at: DateTime::<Utc>::from(at),
            deferred: false,
        }));
        sink_histories.push(History { address, attempts });
    }
    SinkView {
        sink_histories,
        arrivals: domains.into_values().collect(),
    }
}

/// Returns up to [`LISTED`] addresses missing at the sink.
fn exactly_once(scenario: &Scenario, run: &Run, v: &mut Verdict) -> Vec<String> {
    let picker = scenario.domain_picker();
    let recorder = &run.sink.recorder;
    let permfail = scenario.sink.permfail_share;
    for i in 1..=run.expected {
        let address = picker.address(i);
        let refused = share_point(&address) < permfail;
        let want = u32::from(!refused);
        v.expected_at_sink += u64::from(want);
        v.expected_bounced += u64::from(refused);
        let got = recorder.count_for(&address);
        if got < want {
            v.missing += 1;
            if v.missing_examples.len() < LISTED {
                v.missing_examples.push(address);
            }
        } else if got > want {
            v.duplicated_recipients += 1;
            v.duplicate_messages += u64::from(got - want);
            if v.duplicate_examples.len() < LISTED {
                v.duplicate_examples.push((address, got));
            }
        }
    }
    let distinct = recorder.distinct_recipients() as u64;
    let known = v.expected_at_sink - v.missing;
    if distinct > known {
        v.store_mismatch = Some(format!(
            "the sink saw {} recipients that were never generated",
            distinct - known
        ));
    }
    v.missing_examples.clone()
}

/// The store must count as delivered what the sink accepted, and as bounced
/// what it refused; nothing failed, suppressed or left over.
fn store_agrees(run: &Run, v: &mut Verdict) {
    let c = run.counters;
    let ok = c.pending == 0
        && c.deferred == 0
        && c.delivered as u64 == v.expected_at_sink
        && c.bounced as u64 == v.expected_bounced
        && c.failed == 0
        && c.suppressed == 0;
    if !ok && v.store_mismatch.is_none() {
        v.store_mismatch = Some(format!(
            "store counters {c:?}; expected {} delivered and {} bounced",
            v.expected_at_sink, v.expected_bounced
        ));
    }
}

/// Personalization and DKIM on the messages the sink kept whole.
async fn contents(scenario: &Scenario, run: &Run, v: &mut Verdict) {
    let parser = MessageParser::default();
    for record in run.sink.recorder.messages() {
        let (Some(bytes), Some(rcpt)) = (&record.bytes, record.rcpt_to.first()) else {
            continue;
        };
        if let Some(dkim) = &run.dkim {
            v.dkim_checked += 1;
            if !dkim.verifies(bytes).await {
                v.dkim_failed += 1;
            }
        }
        if scenario.verify.personalization.is_empty() {
            continue;
        }
        v.personalization_checked += 1;
        let wrong = personalization_error(&parser, bytes, rcpt, &scenario.verify.personalization);
        if let Some(wrong) = wrong {
            v.personalization_wrong += 1;
            if v.personalization_examples.len() < LISTED {
                v.personalization_examples.push(wrong);
            }
        }
    }
}

/// Why the message to `rcpt` does not show its row's values, if it does not.
fn personalization_error(
    parser: &MessageParser,
    bytes: &[u8],
    rcpt: &str,
    columns: &[String],
) -> Option<String> {
    let Some(i) = csv_gen::index_of(rcpt) else {
        return Some(format!("{rcpt}: not a generated address"));
    };
    let Some(message) = parser.parse(bytes) else {
        return Some(format!("{rcpt}: the message does not parse"));
    };
    let mut text = message.subject().unwrap_or_default().to_owned();
    for part in 0..message.text_body.len() {
        text.push_str(&message.body_text(part).unwrap_or_default());
    }
    for part in 0..message.html_body.len() {
        text.push_str(&message.body_html(part).unwrap_or_default());
    }
    let domain = rcpt.rsplit_once('@').map_or("", |(_, d)| d);
    for column in columns {
        let Some(value) = csv_gen::field(i, column, domain) else {
            return Some(format!("{column}: not a generated column"));
        };
        if !text.contains(&value) {
            return Some(format!("{rcpt}: {column} {value:?} is not in the message"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> Vec<u8> {
        format!(
            "From: a@b.example\r\nTo: x@y.example\r\nSubject: Hi Chlo=?utf-8?q?=C3=A9?=\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_message_with_its_rows_values_passes_and_another_rows_fails() {
        let parser = MessageParser::default();
        // Row 4: first name Emma, customer C000000004.
        let rcpt = csv_gen::address(4, 1);
        let columns = vec!["first_name".to_owned(), "customer_id".to_owned()];
        let good = message("Dear Emma, your id is C000000004.");
        assert_eq!(personalization_error(&parser, &good, &rcpt, &columns), None);
        let bad = message("Dear Emma, your id is C000000005.");
        let error = personalization_error(&parser, &bad, &rcpt, &columns).expect("wrong id");
        assert!(error.contains("customer_id"), "{error}");
    }
}
