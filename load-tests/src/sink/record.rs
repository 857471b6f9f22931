//! What the sink saw: accepted messages, per-recipient delivery counts for
//! exactly-once checks, reply and connection counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Shards of the recorder; sessions on different shards never contend.
const SHARDS: usize = 16;

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

#[derive(Debug, Default)]
struct Shard {
    records: Vec<MessageRecord>,
    per_rcpt: HashMap<Box<str>, u32>,
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
            let mut shard = self.shard(super::faults::address_hash(3, rcpt));
            match shard.per_rcpt.get_mut(rcpt.as_str()) {
                Some(count) => *count += 1,
                None => {
                    shard.per_rcpt.insert(rcpt.as_str().into(), 1);
                }
            }
        }
        if self.records_kept.fetch_add(1, Ordering::Relaxed) < self.record_limit {
            self.shard(record.connection).records.push(record);
        }
        self.accepted.notify_waiters();
        seq
    }

    /// Messages accepted so far.
    pub fn total_messages(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// How many accepted messages were addressed to `rcpt` (exact string).
    pub fn count_for(&self, rcpt: &str) -> u32 {
        let shard = self.shard(super::faults::address_hash(3, rcpt));
        shard.per_rcpt.get(rcpt).copied().unwrap_or(0)
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
                    .filter(|(_, n)| **n > 1)
                    .map(|(r, n)| (r.to_string(), *n)),
            );
        }
        out.sort();
        out
    }

    /// Distinct recipients that received at least one message.
    pub fn distinct_recipients(&self) -> usize {
        (0..SHARDS as u64)
            .map(|i| self.shard(i).per_rcpt.len())
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
        let at = |us: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(us);
        match self.first_accepted_us.load(Ordering::Relaxed) {
            0 => None,
            first => Some((at(first), at(self.last_accepted_us.load(Ordering::Relaxed)))),
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

    #[tokio::test(start_paused = true)]
    async fn waiting_for_messages_gives_up_at_the_deadline() {
        let recorder = Recorder::new(10);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        assert!(!recorder.wait_for_messages(1, deadline).await);
        assert!(Instant::now() >= deadline);
    }
}
