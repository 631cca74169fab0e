//! The state digest, kept up to date as commands apply so that reading it is O(1).
//!
//! Status calls report the digest so that replicas (and the chaos checker) can compare
//! states at the same applied index. Hashing the whole snapshot encoding on each call cost
//! O(state) under the state's read lock: at 300k tasks, tens of milliseconds per call, and a
//! client looping on status stalled apply. Instead, each collection of the primary data keeps
//! the wrapping sum of a fixed hash of each element's encoding. A sum does not depend on the
//! order elements were added in, and adding then removing an element restores it exactly, so
//! the sums are a function of the primary data alone, equal on every replica. The digest
//! combines these sums with the counters and the collection sizes.
//!
//! The sums are derived data: a snapshot does not store them (its bytes stay as they were),
//! restore recomputes them, and `check_invariants` compares them with a recomputation.

use serde::Serialize;

use super::SchedulerState;
use crate::state::Command;

/// Wrapping sums of the element hashes of each collection of the primary state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Digests {
    tasks: u64,
    workers: u64,
    queue_policies: u64,
    schedules: u64,
    workflows: u64,
}

/// A key of the non-task data one command may change: its element is hashed before and
/// after the command, and the sum corrected by the difference. Tasks are hashed where they
/// change (`create_task`, `update_task`, a purge), workflows where they are created and
/// purged (they never change in between).
pub(super) enum Touched {
    Nothing,
    Worker(String),
    QueuePolicy(String),
    Schedule(String),
}

impl Touched {
    pub(super) fn by(command: &Command) -> Touched {
        match command {
            Command::RegisterWorker { registration, .. } => Touched::Worker(registration.id.clone()),
            Command::DrainWorker { worker_id, .. } | Command::ExpireWorker { worker_id, .. } => {
                Touched::Worker(worker_id.clone())
            }
            Command::SetQueuePolicy { queue, .. } => Touched::QueuePolicy(queue.clone()),
            Command::CreateSchedule { name, .. }
            | Command::UpdateSchedule { name, .. }
            | Command::PauseSchedule { name, .. }
            | Command::DeleteSchedule { name, .. }
            | Command::FireSchedule { name, .. }
            | Command::TriggerSchedule { name, .. } => Touched::Schedule(name.clone()),
            _ => Touched::Nothing,
        }
    }
}

impl SchedulerState {
    /// A 64-bit fingerprint of the whole primary state, to check that replicas at the same
    /// applied index hold the same state. O(1): it combines sums kept up to date by apply.
    /// States that differ anywhere (any field of any task, worker, schedule, workflow or
    /// queue policy, or a counter) get equal digests only by a 64-bit hash collision.
    pub fn digest(&self) -> u64 {
        combine(&self.digests, &self.counters())
    }

    /// [`Self::digest`] computed from scratch, O(n): what the kept sums must equal.
    pub fn digest_from_scratch(&self) -> u64 {
        combine(&self.recomputed_digests(), &self.counters())
    }

    /// The hash of `touched`'s element now (0 when it does not exist).
    pub(super) fn touched_hash(&self, touched: &Touched) -> u64 {
        match touched {
            Touched::Nothing => 0,
            Touched::Worker(id) => self.workers.get(id).map_or(0, element_hash),
            Touched::QueuePolicy(queue) => self
                .queue_policies
                .get_key_value(queue)
                .map_or(0, |entry| element_hash(&entry)),
            Touched::Schedule(name) => self.schedules.get(name).map_or(0, element_hash),
        }
    }

    /// Corrects the sum `touched` belongs to after a command that may have changed it.
    pub(super) fn rehash_touched(&mut self, touched: &Touched, before: u64) {
        let after = self.touched_hash(touched);
        let sum = match touched {
            Touched::Nothing => return,
            Touched::Worker(_) => &mut self.digests.workers,
            Touched::QueuePolicy(_) => &mut self.digests.queue_policies,
            Touched::Schedule(_) => &mut self.digests.schedules,
        };
        *sum = sum.wrapping_sub(before).wrapping_add(after);
    }

    /// Counts a task that enters the task map (created, or put back by `update_task`).
    pub(super) fn digest_task_in(&mut self, task: &crate::state::task::Task) {
        self.digests.tasks = self.digests.tasks.wrapping_add(element_hash(task));
    }

    /// Uncounts a task taken out of the task map.
    pub(super) fn digest_task_out(&mut self, task: &crate::state::task::Task) {
        self.digests.tasks = self.digests.tasks.wrapping_sub(element_hash(task));
    }

    pub(super) fn digest_workflow_in(&mut self, workflow: &crate::state::schedule::Workflow) {
        self.digests.workflows = self.digests.workflows.wrapping_add(element_hash(workflow));
    }

    pub(super) fn digest_workflow_out(&mut self, workflow: &crate::state::schedule::Workflow) {
        self.digests.workflows = self.digests.workflows.wrapping_sub(element_hash(workflow));
    }

    /// Sets the kept sums from the primary data (snapshot restore).
    pub(super) fn reset_digests(&mut self) {
        self.digests = self.recomputed_digests();
    }

    pub(super) fn check_digests(&self) -> Result<(), String> {
        let recomputed = self.recomputed_digests();
        if self.digests != recomputed {
            return Err(format!(
                "the kept digest sums {:?} differ from the recomputed {recomputed:?}",
                self.digests
            ));
        }
        Ok(())
    }

    fn recomputed_digests(&self) -> Digests {
        Digests {
            tasks: sum_hashes(self.tasks.values().map(|task| element_hash(task.as_ref()))),
            workers: sum_hashes(self.workers.values().map(element_hash)),
            queue_policies: sum_hashes(self.queue_policies.iter().map(|entry| element_hash(&entry))),
            schedules: sum_hashes(self.schedules.values().map(element_hash)),
            workflows: sum_hashes(self.workflows.values().map(|workflow| element_hash(workflow.as_ref()))),
        }
    }

    /// Every scalar of the primary state, and the sizes of its collections (a sum alone
    /// would not tell an element counted twice from another).
    fn counters(&self) -> [u64; 9] {
        [
            self.next_task_id,
            self.next_token,
            self.clock_ms,
            self.next_workflow_id,
            self.tasks.len() as u64,
            self.workers.len() as u64,
            self.queue_policies.len() as u64,
            self.schedules.len() as u64,
            self.workflows.len() as u64,
        ]
    }
}

fn combine(digests: &Digests, counters: &[u64; 9]) -> u64 {
    let sums = [
        digests.tasks,
        digests.workers,
        digests.queue_policies,
        digests.schedules,
        digests.workflows,
    ];
    let bytes: Vec<u8> = counters.iter().chain(&sums).flat_map(|v| v.to_le_bytes()).collect();
    hash64(&bytes)
}

fn sum_hashes(hashes: impl Iterator<Item = u64>) -> u64 {
    hashes.fold(0, u64::wrapping_add)
}

/// The hash of one element's postcard encoding (the same encoding snapshots use, so every
/// field of the element counts).
fn element_hash<T: Serialize + ?Sized>(element: &T) -> u64 {
    let bytes = postcard::to_allocvec(element).expect("serialising plain data into memory cannot fail");
    hash64(&bytes)
}

/// A fixed, seedless 64-bit hash (the same bytes hash the same on every node, in every run
/// and every build), eight bytes per step so that a 64 KiB payload costs 8192 steps rather
/// than FNV's 65,536. Each word goes through a multiply-xorshift mix before it is folded in,
/// and the result through a final one, so that a change to any byte changes about half the
/// output bits; sums of such hashes then collide with probability about 2^-64.
fn hash64(bytes: &[u8]) -> u64 {
    const SEED: u64 = 0x243f_6a88_85a3_08d3;
    let mut state = SEED ^ (bytes.len() as u64).wrapping_mul(MIX_MULTIPLIER);
    let mut words = bytes.chunks_exact(8);
    for word in words.by_ref() {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of eight bytes"));
        state = (state ^ mix(word)).rotate_left(29).wrapping_mul(MIX_MULTIPLIER);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    state ^= mix(u64::from_le_bytes(last));
    mix(state)
}

/// An odd 64-bit constant with well-spread bits (the fractional part of the golden ratio).
const MIX_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// A bijective avalanche step on 64 bits: xor-shift, multiply by odd constants, xor-shift.
fn mix(mut value: u64) -> u64 {
    value ^= value >> 31;
    value = value.wrapping_mul(0xd6e8_feb8_6659_fd93);
    value ^= value >> 32;
    value = value.wrapping_mul(0xd6e8_feb8_6659_fd93);
    value ^ (value >> 29)
}

#[cfg(test)]
mod tests {
    use super::hash64;

    #[test]
    fn hash_sees_every_byte_and_the_length() {
        let base = vec![7u8; 37];
        let h = hash64(&base);
        for i in 0..base.len() {
            let mut changed = base.clone();
            changed[i] ^= 1;
            assert_ne!(hash64(&changed), h, "byte {i}");
        }
        assert_ne!(hash64(&base[..36]), h);
        assert_ne!(hash64(&[0u8; 8]), hash64(&[0u8; 7]));
        assert_eq!(hash64(b"raftsched"), hash64(b"raftsched"));
    }
}
