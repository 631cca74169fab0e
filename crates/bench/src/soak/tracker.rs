//! Matches each acknowledged submission with the start of its task, interval by interval,
//! holding only the tasks in between (a soak of hours must not keep every task it sent).

use std::collections::HashMap;
use std::sync::Mutex;

/// Starts seen before their submission's acknowledgement (the leader may dispatch a task
/// before its ack reaches us) are kept at most this many; past it they are dropped and
/// counted. At 1000 tasks/s it is 100 s worth of starts: only a start whose ack never came
/// (the send timed out yet the task was created) stays here for long.
const MAX_EARLY_STARTS: usize = 100_000;

#[derive(Default)]
struct Inner {
    /// Task id → intended send time (µs) of acknowledged tasks not started yet.
    awaiting_start: HashMap<u64, u64>,
    /// Task id → handler start time (µs) of tasks not acknowledged yet.
    started_early: HashMap<u64, u64>,
    interval: Interval,
    submitted_total: u64,
    dropped_starts: u64,
    sample_errors: Vec<String>,
}

/// What happened since the last [`Tracker::take_interval`].
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Interval {
    pub submitted: u64,
    pub errors: u64,
    /// submit→start of tasks whose start was matched in the interval (µs from the intended send).
    pub to_start_us: Vec<u64>,
    /// Acknowledgement latency of the interval's acknowledged sends (µs from the intended send).
    pub ack_us: Vec<u64>,
}

#[derive(Default)]
pub struct Tracker {
    inner: Mutex<Inner>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("soak tracker lock poisoned")
    }

    pub fn acked(&self, task_id: u64, intended_us: u64, ack_us: u64) {
        let mut inner = self.lock();
        inner.submitted_total += 1;
        inner.interval.submitted += 1;
        inner.interval.ack_us.push(ack_us.saturating_sub(intended_us));
        match inner.started_early.remove(&task_id) {
            Some(start_us) => inner.interval.to_start_us.push(start_us.saturating_sub(intended_us)),
            None => {
                inner.awaiting_start.insert(task_id, intended_us);
            }
        }
    }

    pub fn failed(&self, message: String) {
        let mut inner = self.lock();
        inner.interval.errors += 1;
        if inner.sample_errors.len() < crate::SAMPLE_ERRORS {
            inner.sample_errors.push(message);
        }
    }

    /// A handler started task `task_id` at `start_us`. A second start of the same task (a
    /// retried assignment) finds nothing to match and is ignored.
    pub fn started(&self, task_id: u64, start_us: u64) {
        let mut inner = self.lock();
        match inner.awaiting_start.remove(&task_id) {
            Some(intended_us) => inner.interval.to_start_us.push(start_us.saturating_sub(intended_us)),
            None if inner.started_early.len() < MAX_EARLY_STARTS => {
                inner.started_early.insert(task_id, start_us);
            }
            None => inner.dropped_starts += 1,
        }
    }

    pub fn take_interval(&self) -> Interval {
        std::mem::take(&mut self.lock().interval)
    }

    pub fn submitted_total(&self) -> u64 {
        self.lock().submitted_total
    }

    /// Acknowledged tasks whose start was not seen yet, and starts dropped past the bound.
    pub fn unmatched(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.awaiting_start.len(), inner.dropped_starts)
    }

    pub fn sample_errors(&self) -> Vec<String> {
        self.lock().sample_errors.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_after_ack_and_before_ack_both_match() {
        let t = Tracker::default();
        t.acked(1, 1_000, 3_000);
        t.started(1, 5_000);
        // Task 2 starts before its ack arrives.
        t.started(2, 9_000);
        t.acked(2, 2_000, 10_000);
        let i = t.take_interval();
        assert_eq!(i.submitted, 2);
        assert_eq!(i.to_start_us, vec![4_000, 7_000]);
        assert_eq!(i.ack_us, vec![2_000, 8_000]);
        assert_eq!(t.unmatched(), (0, 0));
        assert_eq!(t.take_interval(), Interval::default(), "an interval is taken once");
        assert_eq!(t.submitted_total(), 2);
    }

    #[test]
    fn a_second_start_and_failures_are_counted_not_matched() {
        let t = Tracker::default();
        t.acked(7, 0, 1);
        t.started(7, 10);
        t.started(7, 20);
        t.failed("boom".into());
        let i = t.take_interval();
        assert_eq!(i.to_start_us, vec![10]);
        assert_eq!(i.errors, 1);
        assert_eq!(t.sample_errors(), vec!["boom".to_string()]);
    }

    #[test]
    fn early_starts_are_bounded() {
        let t = Tracker::default();
        for id in 0..(MAX_EARLY_STARTS as u64 + 2) {
            t.started(id, 1);
        }
        assert_eq!(t.unmatched(), (0, 2));
    }
}
