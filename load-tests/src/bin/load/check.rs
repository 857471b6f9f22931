//! What the sink received, checked against what was generated: every
//! recipient exactly once (losses and duplicates listed; a crash run may
//! duplicate up to `max_in_flight` per kill), the store agreeing, the sampled
//! messages personalized for their recipient, and DKIM signatures verifying.

use broadside_load_tests::csv_gen;
use broadside_load_tests::scenario::Scenario;
use broadside_load_tests::sink::share_point;
use mail_parser::MessageParser;
use serde::Serialize;

use crate::drive::Run;

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
}

impl Verdict {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.missing == 0
            && self.duplicate_messages <= self.duplicate_bound
            && self.personalization_wrong == 0
            && self.dkim_failed == 0
            && self.store_mismatch.is_none()
    }

    /// `Ok` when passed, else an error naming what failed.
    pub fn into_result(self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.passed(),
            "verification failed: {} missing, {} duplicate messages (bound {}), {} wrongly \
             personalized, {} DKIM failures, store: {}",
            self.missing,
            self.duplicate_messages,
            self.duplicate_bound,
            self.personalization_wrong,
            self.dkim_failed,
            self.store_mismatch.as_deref().unwrap_or("agrees")
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
    exactly_once(scenario, run, &mut verdict);
    store_agrees(run, &mut verdict);
    contents(scenario, run, &mut verdict).await;
    verdict
}

fn exactly_once(scenario: &Scenario, run: &Run, v: &mut Verdict) {
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
