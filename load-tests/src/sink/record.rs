//! What the sink saw: accepted messages, per-recipient delivery counts and
//! attempt times for exactly-once, retry-schedule and fairness checks, reply
//! and connection counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Shards of the recorder; sessions on different shards never contend.
const SHARDS: usize = 16;
/// Temporary refusals remembered per recipient: a retry schedule needs the
/// first few; more would only let one looping recipient grow without bound.
const REFUSALS_KEPT: usize = 8;

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Acceptance order across the whole sink, from 1.
    pub seq: u64,
    /// The connection it arrived on (from 1, in accept order).
    pub connection: u64,
    /// The reverse path of `MAIL FROM`, without angle brackets (empty for `<>`).
    pub mail_from: String,
    /// Each accepted `RCPT TO`, in order.
    pub rcpt_to: Vec<String>,
    /// Body size in bytes after dot-unstuffing.
    pub size: u64,
    /// SHA-256 of the dot-unstuffed body, so content can be compared without
    /// keeping it.
    pub sha256: [u8; 32],
    /// The body itself when `keep_bytes` is on.
    pub bytes: Option<Vec<u8>>,
    /// Whether the session had done STARTTLS.
    pub tls: bool,
    /// When the final `.` arrived.
    pub received_at: SystemTime,
}

/// A snapshot of the counters, cheap to take, for progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkStats {
    /// Messages accepted (each counted once, whatever its recipient count).
    pub messages: u64,
    /// Recipients of accepted messages.
    pub deliveries: u64,
    /// Body bytes of accepted messages.
    pub bytes: u64,
    /// Connections accepted so far.
    pub connections: u64,
    /// Connections open right now.
    pub open_connections: usize,
    /// The most connections open at once.
    pub max_concurrent_connections: usize,
    /// Replies sent by class: 2xx/3xx, 4xx, 5xx.
    pub replies_ok: u64,
    /// 4xx replies (including injected ones and 421s).
    pub replies_transient: u64,
    /// 5xx replies.
    pub replies_permanent: u64,
}

/// What the sink saw of one recipient, over all its attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptTally {
    /// Messages accepted for it.
    pub accepted: u32,
    /// When the first of them was accepted, in microseconds since the Unix
    /// epoch (0 for none): the fairness check's per-domain progress.
    first_accepted_us: u64,
    /// When its `RCPT TO` got a 4xx, oldest first, at most [`REFUSALS_KEPT`]:
    /// the sink's own view of when the sender had to retry.
    transient_us: Vec<u64>,
}

impl RcptTally {
    /// When the first message for it was accepted.
    pub fn first_accepted(&self) -> Option<SystemTime> {
        (self.first_accepted_us != 0).then(|| at_us(self.first_accepted_us))
    }

    /// When its `RCPT TO` was refused with a 4xx, oldest first (at most
    /// eight).
    pub fn transient_refusals(&self) -> impl Iterator<Item = SystemTime> + '_ {
        self.transient_us.iter().map(|us| at_us(*us))
    }
}

fn at_us(us: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(us)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

#[derive(Debug, Default)]
struct Shard {
    records: Vec<MessageRecord>,
    per_rcpt: HashMap<Box<str>, RcptTally>,
}

impl Shard {
    /// Applies `change` to `rcpt`'s tally, creating it first if needed; not
    /// `entry`, which would allocate the key on every hit.
    fn update(&mut self, rcpt: &str, change: impl FnOnce(&mut RcptTally)) {
        match self.per_rcpt.get_mut(rcpt) {
            Some(tally) => change(tally),
            None => {
                let mut tally = RcptTally::default();
                change(&mut tally);
                self.per_rcpt.insert(rcpt.into(), tally);
            }
        }
    }
}

/// The sink's shared record. Every method takes short locks on one shard
/// (never across an await); counters are atomics.
#[derive(Debug)]
pub struct Recorder {
    shards: [Mutex<Shard>; SHARDS],
    /// Records kept at most; counts go on past it so long load runs stay
    /// small in memory while exactly-once checks still see every recipient.
    record_limit: usize,
    records_kept: AtomicUsize,
    seq: AtomicU64,
    deliveries: AtomicU64,
    bytes: AtomicU64,
    connections: AtomicU64,
    open: AtomicUsize,
    max_open: AtomicUsize,
    replies: [AtomicU64; 3],
    /// Microseconds since the Unix epoch of the first and the latest
    /// acceptance (0 before any), for time-to-first/last-delivery figures
    /// without keeping a record per message.
    first_accepted_us: AtomicU64,
    last_accepted_us: AtomicU64,
    /// Wakes `wait_for_messages` callers on each accepted message.
    accepted: Notify,
}

impl Recorder {
    pub(crate) fn new(record_limit: usize) -> Self {
        Recorder {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            record_limit,
            records_kept: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            max_open: AtomicUsize::new(0),
            replies: Default::default(),
            first_accepted_us: AtomicU64::new(0),
            last_accepted_us: AtomicU64::new(0),
            accepted: Notify::new(),
        }
    }

    fn shard(&self, index: u64) -> std::sync::MutexGuard<'_, Shard> {
        // A poisoned shard means a session panicked while appending; what is
        // in it is still valid for a test to inspect.
        self.shards[(index % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection and returns its id.
    pub(crate) fn connection_opened(&self) -> u64 {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_open.fetch_max(open, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn reply_sent(&self, code: u16) {
        let class = match code {
            400..500 => 1,
            500.. => 2,
            _ => 0,
        };
        self.replies[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Records an accepted message and returns its `seq`; `seq` and time
    /// are filled in here.
    pub(crate) fn message_accepted(&self, mut record: MessageRecord) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        record.seq = seq;
        record.received_at = SystemTime::now();
        let us = record
            .received_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        let _ =
            self.first_accepted_us
                .compare_exchange(0, us, Ordering::Relaxed, Ordering::Relaxed);
        self.last_accepted_us.fetch_max(us, Ordering::Relaxed);
        self.deliveries
            .fetch_add(record.rcpt_to.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(record.size, Ordering::Relaxed);
        for rcpt in &record.rcpt_to {
            self.shard_of(rcpt).update(rcpt, |tally| {
                tally.accepted += 1;
                if tally.first_accepted_us == 0 {
                    tally.first_accepted_us = us;
                }
            });
        }
        if self.records_kept.fetch_add(1, Ordering::Relaxed) < self.record_limit {
            self.shard(record.connection).records.push(record);
        }
        self.accepted.notify_waiters();
        seq
    }

    /// Records that `RCPT TO:<rcpt>` was refused with a 4xx (or a 421) just now.
    pub(crate) fn rcpt_deferred(&self, rcpt: &str) {
        let us = now_us();
        self.shard_of(rcpt).update(rcpt, |tally| {
            if tally.transient_us.len() < REFUSALS_KEPT {
                tally.transient_us.push(us);
            }
        });
    }

    fn shard_of(&self, rcpt: &str) -> std::sync::MutexGuard<'_, Shard> {
        self.shard(super::faults::address_hash(3, rcpt))
    }

    /// Messages accepted so far.
    pub fn total_messages(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// How many accepted messages were addressed to `rcpt` (exact string).
    pub fn count_for(&self, rcpt: &str) -> u32 {
        let shard = self.shard_of(rcpt);
        shard.per_rcpt.get(rcpt).map_or(0, |t| t.accepted)
    }

    /// Everything seen of `rcpt` (exact string): accepted messages and
    /// temporary refusals; `None` if it never reached `RCPT TO`.
    pub fn tally_for(&self, rcpt: &str) -> Option<RcptTally> {
        self.shard_of(rcpt).per_rcpt.get(rcpt).cloned()
    }

    /// Recipients that received more than one message, with their counts,
    /// sorted by address.
    pub fn duplicates(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for index in 0..SHARDS as u64 {
            let shard = self.shard(index);
            out.extend(
                shard
                    .per_rcpt
                    .iter()
                    .filter(|(_, t)| t.accepted > 1)
                    .map(|(r, t)| (r.to_string(), t.accepted)),
            );
        }
        out.sort();
        out
    }

    /// Distinct recipients that received at least one message.
    pub fn distinct_recipients(&self) -> usize {
        (0..SHARDS as u64)
            .map(|i| {
                let shard = self.shard(i);
                shard.per_rcpt.values().filter(|t| t.accepted > 0).count()
            })
            .sum()
    }

    /// The kept message records in acceptance order (up to `record_limit`).
    pub fn messages(&self) -> Vec<MessageRecord> {
        let mut out = Vec::new();
        for index in 0..SHARDS as u64 {
            out.extend(self.shard(index).records.iter().cloned());
        }
        out.sort_by_key(|r| r.seq);
        out
    }

    /// The kept records that include `rcpt` among their recipients.
    pub fn messages_for(&self, rcpt: &str) -> Vec<MessageRecord> {
        let mut out = self.messages();
        out.retain(|m| m.rcpt_to.iter().any(|r| r == rcpt));
        out
    }

    /// When the first and the latest message were accepted; `None` before any.
    pub fn first_and_last(&self) -> Option<(SystemTime, SystemTime)> {
        match self.first_accepted_us.load(Ordering::Relaxed) {
            0 => None,
            first => Some((
                at_us(first),
                at_us(self.last_accepted_us.load(Ordering::Relaxed)),
            )),
        }
    }

    /// Counters at this moment.
    pub fn stats(&self) -> SinkStats {
        SinkStats {
            messages: self.total_messages(),
            deliveries: self.deliveries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            open_connections: self.open.load(Ordering::Relaxed),
            max_concurrent_connections: self.max_open.load(Ordering::Relaxed),
            replies_ok: self.replies[0].load(Ordering::Relaxed),
            replies_transient: self.replies[1].load(Ordering::Relaxed),
            replies_permanent: self.replies[2].load(Ordering::Relaxed),
        }
    }

    /// Waits until at least `n` messages were accepted or `deadline` passes;
    /// returns whether the count was reached. Woken by each acceptance, so
    /// it neither spins nor sleeps longer than needed.
    pub async fn wait_for_messages(&self, n: u64, deadline: Instant) -> bool {
        loop {
            let notified = self.accepted.notified();
            tokio::pin!(notified);
            // Register before checking, so an acceptance between the check
            // and the await is not missed.
            notified.as_mut().enable();
            if self.total_messages() >= n {
                return true;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline) => return self.total_messages() >= n,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(rcpts: &[&str]) -> MessageRecord {
        MessageRecord {
            seq: 0,
            connection: 1,
            mail_from: "s@example.com".into(),
            rcpt_to: rcpts.iter().map(|r| r.to_string()).collect(),
            size: 10,
            sha256: [0; 32],
            bytes: None,
            tls: false,
            received_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn counts_and_duplicates_follow_recipients_past_the_record_limit() {
        let recorder = Recorder::new(1);
        recorder.message_accepted(record(&["a@x", "b@x"]));
        recorder.message_accepted(record(&["a@x"]));
        assert_eq!(recorder.total_messages(), 2);
        assert_eq!(recorder.count_for("a@x"), 2);
        assert_eq!(recorder.count_for("c@x"), 0);
        assert_eq!(recorder.duplicates(), vec![("a@x".to_string(), 2)]);
        assert_eq!(recorder.messages().len(), 1);
        assert_eq!(recorder.stats().deliveries, 3);
        let (first, last) = recorder.first_and_last().expect("two accepted");
        assert!(first <= last);
        assert!(Recorder::new(1).first_and_last().is_none());
    }

    #[test]
    fn refusals_are_kept_per_recipient_without_counting_as_deliveries() {
        let recorder = Recorder::new(10);
        for _ in 0..(REFUSALS_KEPT + 3) {
            recorder.rcpt_deferred("late@x");
        }
        recorder.message_accepted(record(&["late@x"]));
        let tally = recorder.tally_for("late@x").expect("seen");
        assert_eq!(tally.accepted, 1);
        let refusals: Vec<SystemTime> = tally.transient_refusals().collect();
        assert_eq!(refusals.len(), REFUSALS_KEPT);
        let accepted = tally.first_accepted().expect("accepted");
        assert!(refusals.iter().all(|r| *r <= accepted));
        recorder.rcpt_deferred("never@x");
        assert_eq!(recorder.count_for("never@x"), 0);
        assert_eq!(recorder.distinct_recipients(), 1);
        assert!(recorder.tally_for("unseen@x").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_messages_gives_up_at_the_deadline() {
        let recorder = Recorder::new(10);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        assert!(!recorder.wait_for_messages(1, deadline).await);
        assert!(Instant::now() >= deadline);
    }
}
