//! The deferred recipients of one run, by the time they fall due. The
//! dispatcher reads due recipients in id order, one pass over the campaign at
//! a time; without this, a retry that fell due mid-pass waited until the pass
//! came back round to it (in a large campaign, a whole pass). With it, the
//! dispatcher serves due retries first, within a poll interval of their time.
//! Bounded: past its capacity a deferral is not scheduled here, and the pass
//! finds it as before. After a restart the pass finds them too.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use engine::model::RecipientId;

/// A min-heap of (due time, recipient id).
type DueHeap = BinaryHeap<Reverse<(DateTime<Utc>, i64)>>;

#[derive(Debug)]
pub struct RetrySchedule {
    heap: Mutex<DueHeap>,
    capacity: usize,
}

impl RetrySchedule {
    pub fn new(capacity: usize) -> Self {
        Self {
            heap: Mutex::new(BinaryHeap::new()),
            capacity,
        }
    }

    /// Remembers that `recipient` is due at `until`; `false` when full (the
    /// pass over the campaign will find it).
    pub fn schedule(&self, until: DateTime<Utc>, recipient: RecipientId) -> bool {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        if heap.len() >= self.capacity {
            return false;
        }
        heap.push(Reverse((until, recipient.0)));
        true
    }

    /// Up to `max` recipients due at `now`, earliest first, removed from the
    /// schedule.
    pub fn take_due(&self, now: DateTime<Utc>, max: usize) -> Vec<RecipientId> {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        while due.len() < max {
            match heap.peek() {
                Some(Reverse((until, _))) if *until <= now => {}
                _ => break,
            }
            if let Some(Reverse((_, id))) = heap.pop() {
                due.push(RecipientId(id));
            }
        }
        due
    }

    pub fn len(&self) -> usize {
        self.heap.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, second)
            .single()
            .expect("time")
    }

    #[test]
    fn only_due_recipients_are_taken_earliest_first() {
        let schedule = RetrySchedule::new(10);
        schedule.schedule(at(30), RecipientId(1));
        schedule.schedule(at(10), RecipientId(2));
        schedule.schedule(at(20), RecipientId(3));

        assert!(schedule.take_due(at(5), 10).is_empty());
        assert_eq!(
            schedule.take_due(at(20), 10),
            [RecipientId(2), RecipientId(3)]
        );
        assert_eq!(schedule.len(), 1);
        assert_eq!(schedule.take_due(at(59), 10), [RecipientId(1)]);
        assert!(schedule.is_empty());
    }

    #[test]
    fn at_most_max_are_taken_and_capacity_is_kept() {
        let schedule = RetrySchedule::new(3);
        for id in 1..=3 {
            assert!(schedule.schedule(at(1), RecipientId(id)));
        }
        assert!(!schedule.schedule(at(1), RecipientId(4)), "full");

        assert_eq!(schedule.take_due(at(2), 2).len(), 2);
        assert_eq!(schedule.len(), 1);
    }
}
