//! Fault injection: scripted replies, delays, disconnects and greylisting,
//! decided per SMTP command from the envelope so that runs are reproducible.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, ensure};
use serde::Deserialize;

/// The SMTP command whose reply a rule changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `MAIL FROM`; the rule's pattern is tested against the sender.
    Mail,
    /// `RCPT TO`; the pattern is tested against the recipient.
    Rcpt,
    /// The `DATA` command itself; the pattern is tested against every
    /// accepted recipient of the transaction.
    Data,
    /// The reply after the message body (`.`); tested like `Data`.
    EndOfData,
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Reply with this code instead of the normal one.
    Reply {
        /// A 4xx or 5xx code.
        code: u16,
        /// Enhanced status code; derived from the class (`4.0.0`/`5.0.0`) if
        /// absent.
        #[serde(default)]
        enhanced: Option<String>,
        /// Reply text; a generic one if absent.
        #[serde(default)]
        text: Option<String>,
    },
    /// `421 4.7.0` and close once the connection has accepted `messages`
    /// messages, like servers that cap messages per session.
    CloseAfter {
        /// Messages accepted on the connection before the 421.
        messages: u64,
    },
    /// Wait before each batch of replies on the connection from now on,
    /// to emulate a slow or distant server.
    Delay {
        /// Milliseconds per round trip.
        millis: u64,
    },
    /// Close the socket without a reply. At `data`, the 354 is sent and the
    /// socket is closed after `after_bytes` bytes of the body arrived, which is
    /// the nastiest case for a sender: it cannot know whether the message got
    /// through.
    Disconnect {
        /// Body bytes to receive before closing (only at `data`).
        #[serde(default = "default_after_bytes")]
        after_bytes: u64,
        /// Only the first attempt of each matching recipient is cut off, so a
        /// sender's retry gets through (tests of retry after a lost DATA).
        #[serde(default)]
        first_attempt_only: bool,
    },
    /// `451 4.7.1` on the first attempt of each (sender, recipient) pair;
    /// later attempts pass. Only at `rcpt`.
    Greylist,
}

fn default_after_bytes() -> u64 {
    1
}

/// One fault rule, as written in a scenario file:
///
/// ```toml
/// [[faults]]
/// match = "*@slow.example"   # or a bare domain, or an exact address
/// share = 0.5                # optional: half of the matching addresses
/// at = "rcpt"                # optional: mail | rcpt | data | end_of_data
/// kind = "reply"
/// code = 451
/// enhanced = "4.7.1"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FaultRule {
    /// Addresses the rule applies to: `d3.example` (a domain), a pattern
    /// with `*` wildcards, or an exact address; absent applies to all.
    #[serde(default, rename = "match")]
    pub pattern: Option<String>,
    /// Fraction of the matching addresses, picked by a stable hash of the
    /// address so that two runs fail the same recipients.
    #[serde(default)]
    pub share: Option<f64>,
    /// The command the rule applies to; absent takes the action's natural
    /// stage (`rcpt`, `mail` for `close_after`, `data` for `disconnect`).
    #[serde(default)]
    pub at: Option<Stage>,
    /// What happens.
    #[serde(flatten)]
    pub action: FaultAction,
}

/// An SMTP reply decided by a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FaultReply {
    pub(crate) code: u16,
    pub(crate) enhanced: String,
    pub(crate) text: String,
}

/// The verdict of the fault rules for one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Reply normally.
    Pass,
    /// Reply with this instead.
    Reply(FaultReply),
    /// Reply `421 4.7.0` and close the connection.
    CloseWith421,
    /// Close without replying; at `data`, after this many body bytes.
    Disconnect { after_bytes: u64 },
}

/// Address pattern, parsed once at start-up.
#[derive(Debug, Clone)]
enum Pattern {
    Any,
    Domain(String),
    Glob(Vec<u8>),
}

impl Pattern {
    fn parse(text: Option<&str>) -> Self {
        match text {
            None | Some("" | "*") => Pattern::Any,
            Some(p) if !p.contains('@') && !p.contains('*') => {
                Pattern::Domain(p.to_ascii_lowercase())
            }
            Some(p) => Pattern::Glob(p.to_ascii_lowercase().into_bytes()),
        }
    }

    fn matches(&self, address: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Domain(d) => address
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(d)),
            Pattern::Glob(g) => glob_matches(g, address.as_bytes()),
        }
    }
}

/// `*`-only glob, ASCII case-insensitive, iterative with one backtrack point
/// (enough for `*` because a later star supersedes an earlier one).
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t].to_ascii_lowercase() {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A stable 64-bit hash of an address (FNV-1a, ASCII-lowercased, then a
/// splitmix64 finaliser so that nearby addresses spread evenly). Not
/// `DefaultHasher`: its algorithm may change between Rust releases, which
/// would change which recipients a scenario fails.
pub(crate) fn address_hash(salt: u64, address: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for b in address.bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Where an address falls in `[0, 1)`, stable across runs. Load drivers use
/// it to predict which recipients the share-based faults hit.
pub fn share_point(address: &str) -> f64 {
    // 53 bits fit an f64 mantissa exactly.
    (address_hash(0, address) >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone)]
struct CompiledRule {
    pattern: Pattern,
    share: Option<f64>,
    /// Per-rule salt so that two rules with shares pick independent sets.
    salt: u64,
    stage: Stage,
    action: FaultAction,
}

impl CompiledRule {
    fn applies(&self, address: &str) -> bool {
        self.pattern.matches(address)
            && self.share.is_none_or(|share| {
                let point = (address_hash(self.salt, address) >> 11) as f64 / (1u64 << 53) as f64;
                point < share
            })
    }
}

/// The compiled rules plus the state the stateful ones need (greylisting).
#[derive(Debug)]
pub(crate) struct Faults {
    rules: Vec<CompiledRule>,
    /// Recipients in `[0, permfail_share)` of [`share_point`] get 550.
    permfail_share: f64,
    /// Recipients in `[permfail, permfail + tempfail)` get 451 once; the two
    /// ranges are disjoint so a test can count both outcomes exactly.
    tempfail_share: f64,
    /// Hashes of the (sender, recipient) pairs and recipients already seen,
    /// for greylisting and `tempfail_share`. Hashes rather than strings keep
    /// a million-recipient run small; a collision only skips one 451.
    seen: Mutex<HashSet<u64>>,
    /// Delay before every reply batch on every connection.
    pub(crate) base_delay: Duration,
}

impl Faults {
    pub(crate) fn compile(
        rules: &[FaultRule],
        permfail_share: f64,
        tempfail_share: f64,
        base_delay: Duration,
    ) -> anyhow::Result<Self> {
        ensure!(
            (0.0..=1.0).contains(&permfail_share)
                && (0.0..=1.0).contains(&tempfail_share)
                && permfail_share + tempfail_share <= 1.0,
            "permfail_share and tempfail_share must be in [0, 1] and add up to at most 1"
        );
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            compiled.push(compile_rule(index, rule)?);
        }
        Ok(Faults {
            rules: compiled,
            permfail_share,
            tempfail_share,
            seen: Mutex::new(HashSet::new()),
            base_delay,
        })
    }

    /// Whether any rule looks at `stage` (so callers can skip gathering
    /// subjects on the hot path).
    pub(crate) fn any_at(&self, stage: Stage) -> bool {
        self.rules.iter().any(|r| r.stage == stage)
    }

    /// The verdict for a command at `stage` about `subjects` (the sender at
    /// MAIL, the recipient at RCPT, all accepted recipients at DATA).
    /// `state` carries what the connection learnt (delays, messages so far).
    pub(crate) fn check(
        &self,
        stage: Stage,
        sender: &str,
        subjects: &[&str],
        state: &mut ConnectionFaults,
    ) -> Verdict {
        for rule in self.rules.iter().filter(|r| r.stage == stage) {
            if !subjects.iter().any(|s| rule.applies(s)) {
                continue;
            }
            let verdict = match &rule.action {
                FaultAction::Reply {
                    code,
                    enhanced,
                    text,
                } => Verdict::Reply(reply(*code, enhanced.as_deref(), text.as_deref())),
                FaultAction::CloseAfter { messages } if state.messages >= *messages => {
                    Verdict::CloseWith421
                }
                FaultAction::CloseAfter { .. } => Verdict::Pass,
                FaultAction::Delay { millis } => {
                    state.delay = state.delay.max(Duration::from_millis(*millis));
                    Verdict::Pass
                }
                FaultAction::Disconnect {
                    after_bytes,
                    first_attempt_only,
                } => {
                    if *first_attempt_only && !self.first_cut(rule, subjects) {
                        Verdict::Pass
                    } else {
                        Verdict::Disconnect {
                            after_bytes: *after_bytes,
                        }
                    }
                }
                FaultAction::Greylist => self.greylist(sender, subjects),
            };
            if verdict != Verdict::Pass {
                return verdict;
            }
        }
        if stage == Stage::Rcpt
            && let Some(rcpt) = subjects.first()
        {
            return self.share_verdict(rcpt);
        }
        Verdict::Pass
    }

    fn greylist(&self, sender: &str, subjects: &[&str]) -> Verdict {
        let Some(rcpt) = subjects.first() else {
            return Verdict::Pass;
        };
        let pair = address_hash(address_hash(1, sender), rcpt);
        if self.first_sighting(pair) {
            Verdict::Reply(reply(
                451,
                Some("4.7.1"),
                Some("Greylisted, try again later"),
            ))
        } else {
            Verdict::Pass
        }
    }

    /// Whether this is the first time `rule` cuts off a message to the first
    /// of `subjects` it applies to; later attempts of that recipient pass.
    fn first_cut(&self, rule: &CompiledRule, subjects: &[&str]) -> bool {
        subjects
            .iter()
            .find(|s| rule.applies(s))
            .is_some_and(|s| self.first_sighting(address_hash(rule.salt ^ 0xc075, s)))
    }

    fn share_verdict(&self, rcpt: &str) -> Verdict {
        if self.permfail_share == 0.0 && self.tempfail_share == 0.0 {
            return Verdict::Pass;
        }
        let point = share_point(rcpt);
        if point < self.permfail_share {
            Verdict::Reply(reply(
                550,
                Some("5.1.1"),
                Some("No such user (permfail_share)"),
            ))
        } else if point < self.permfail_share + self.tempfail_share
            && self.first_sighting(address_hash(2, rcpt))
        {
            Verdict::Reply(reply(
                451,
                Some("4.3.0"),
                Some("Try again later (tempfail_share)"),
            ))
        } else {
            Verdict::Pass
        }
    }

    /// True the first time `key` is seen.
    fn first_sighting(&self, key: u64) -> bool {
        // A poisoned lock only means another session panicked mid-insert;
        // the set is still usable.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(key)
    }
}

fn compile_rule(index: usize, rule: &FaultRule) -> anyhow::Result<CompiledRule> {
    let stage = rule.at.unwrap_or(match rule.action {
        FaultAction::CloseAfter { .. } => Stage::Mail,
        FaultAction::Disconnect { .. } => Stage::Data,
        _ => Stage::Rcpt,
    });
    if let FaultAction::Reply { code, .. } = rule.action {
        ensure!(
            (400..600).contains(&code),
            "fault rule {index}: reply code {code} is not 4xx or 5xx"
        );
    }
    if rule.action == FaultAction::Greylist && stage != Stage::Rcpt {
        bail!("fault rule {index}: greylist works only at rcpt");
    }
    if let Some(share) = rule.share {
        ensure!(
            (0.0..=1.0).contains(&share),
            "fault rule {index}: share {share} is not in [0, 1]"
        );
    }
    Ok(CompiledRule {
        pattern: Pattern::parse(rule.pattern.as_deref()),
        share: rule.share,
        salt: 0x5eed_0000 + index as u64,
        stage,
        action: rule.action.clone(),
    })
}

fn reply(code: u16, enhanced: Option<&str>, text: Option<&str>) -> FaultReply {
    let class = code / 100;
    FaultReply {
        code,
        enhanced: enhanced.map_or_else(|| format!("{class}.0.0"), str::to_owned),
        text: text.unwrap_or("Injected fault").to_owned(),
    }
}

/// What the fault rules track per connection.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConnectionFaults {
    /// Messages accepted on this connection, for `close_after`.
    pub(crate) messages: u64,
    /// Delay before each reply batch; grows when a `delay` rule matches.
    pub(crate) delay: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_with_stars_anywhere_and_ignore_case() {
        assert!(glob_matches(b"*@slow.example", b"Ann@SLOW.example"));
        assert!(glob_matches(b"a*b*c", b"aXXbYYc"));
        assert!(glob_matches(b"*", b""));
        assert!(!glob_matches(b"*@slow.example", b"ann@slow.example.org"));
        assert!(!glob_matches(b"a*b", b"acbx"));
    }

    #[test]
    fn a_bare_domain_matches_only_that_domain() {
        let p = Pattern::parse(Some("d3.example"));
        assert!(p.matches("x@D3.example"));
        assert!(!p.matches("x@sub.d3.example"));
        assert!(!p.matches("d3.example"));
    }

    #[test]
    fn shares_pick_about_the_requested_fraction_and_the_same_addresses_each_time() {
        let hits = (0..100_000)
            .filter(|i| share_point(&format!("user{i}@example.com")) < 0.05)
            .count();
        assert!((4_500..5_500).contains(&hits), "{hits}");
        assert_eq!(share_point("a@b.example"), share_point("A@B.example"));
    }

    #[test]
    fn rules_parse_from_toml_with_natural_default_stages() {
        #[derive(Deserialize)]
        struct File {
            faults: Vec<FaultRule>,
        }
        let file: File = toml::from_str(
            r#"
            [[faults]]
            match = "*@slow.example"
            kind = "delay"
            millis = 20
            [[faults]]
            kind = "close_after"
            messages = 3
            "#,
        )
        .expect("valid toml");
        let faults = Faults::compile(&file.faults, 0.0, 0.0, Duration::ZERO).expect("valid");
        assert_eq!(faults.rules[0].stage, Stage::Rcpt);
        assert_eq!(faults.rules[1].stage, Stage::Mail);
    }

    #[test]
    fn greylisting_fails_the_first_attempt_of_a_pair_only() {
        let rule = FaultRule {
            pattern: None,
            share: None,
            at: None,
            action: FaultAction::Greylist,
        };
        let faults = Faults::compile(&[rule], 0.0, 0.0, Duration::ZERO).expect("valid");
        let mut state = ConnectionFaults::default();
        let first = faults.check(Stage::Rcpt, "s@a", &["r@b"], &mut state);
        assert!(matches!(first, Verdict::Reply(ref r) if r.code == 451));
        assert_eq!(
            faults.check(Stage::Rcpt, "s@a", &["r@b"], &mut state),
            Verdict::Pass
        );
        let other_sender = faults.check(Stage::Rcpt, "t@a", &["r@b"], &mut state);
        assert!(matches!(other_sender, Verdict::Reply(_)));
    }
}
