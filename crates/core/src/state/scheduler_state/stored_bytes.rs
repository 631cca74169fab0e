//! The state-bytes accounting: a cheap estimate of what each task costs in memory (and, about
//! as much, in a snapshot), summed as tasks enter, change and leave the task map, so the
//! leader's state-bytes quota reads one number instead of walking every task.
//!
//! The estimate counts the heap bytes a task owns plus a fixed overhead for the task itself
//! and its index entries. It is an estimate, not an allocator measurement: what matters is
//! that it grows with what a client can make a task carry (payload, env, labels, output
//! tails, attempts), is the same on every replica (a pure function of the task), and that the
//! sum is exactly the sum over the tasks held (`check_invariants` recomputes it).

use super::SchedulerState;
use crate::state::Payload;
use crate::state::task::Attempt;
use crate::state::task::Task;
use crate::state::task::TaskSpec;

/// Fixed cost of one task besides the bytes it owns: the `Task` value in its box, its slot
/// in the task map's B-tree node (key + pointer, nodes about half full after splits), and
/// its entries in the status, queue and ready/delayed indexes (~24-32 B each, same slack).
/// 2 × (8 + 8) for the map slot + 4 × 2 × 32 for the index entries = 288 B, rounded up.
const TASK_OVERHEAD_BYTES: u64 = size_of::<Task>() as u64 + 320;

/// Fixed cost of one attempt besides its strings.
const ATTEMPT_OVERHEAD_BYTES: u64 = size_of::<Attempt>() as u64;

/// Fixed cost of one map entry besides its strings (two `String` headers and B-tree slack).
const MAP_ENTRY_OVERHEAD_BYTES: u64 = 64;

/// What a task submitted with `spec` costs right after it is created (no attempt, no
/// reason, no links): what the leader's precheck counts per task it would create.
pub fn estimated_spec_bytes(spec: &TaskSpec) -> u64 {
    TASK_OVERHEAD_BYTES + spec_heap_bytes(spec)
}

/// What a task costs as it is now.
pub fn estimated_task_bytes(task: &Task) -> u64 {
    let links = &task.links;
    let link_ids = (links.parents.len() + links.children.len() + links.shards.len()) as u64;
    let links_bytes = if link_ids == 0 && links.origin.is_none() {
        0
    } else {
        size_of::<crate::state::TaskLinks>() as u64 + 8 * link_ids + origin_bytes(links.origin.as_ref())
    };
    let attempts: u64 = task.attempts.iter().map(attempt_bytes).sum();
    estimated_spec_bytes(&task.spec) + opt_len(task.reason.as_deref()) + attempts + links_bytes
}

fn spec_heap_bytes(spec: &TaskSpec) -> u64 {
    let payload = match &spec.payload {
        Payload::Command { command_line, env } => command_line.len() as u64 + map_bytes(env),
        Payload::Opaque { kind, data } => (kind.len() + data.len()) as u64,
    };
    (spec.name.len() + spec.queue.len()) as u64
        + payload
        + map_bytes(&spec.labels)
        + map_bytes(&spec.constraints)
        + opt_len(spec.client_request_id.as_deref())
        + opt_len(spec.affinity_key.as_deref())
        + opt_len(spec.trace_parent.as_deref())
}

fn attempt_bytes(attempt: &Attempt) -> u64 {
    ATTEMPT_OVERHEAD_BYTES
        + (attempt.worker_id.len() + attempt.stdout_tail.len() + attempt.stderr_tail.len()) as u64
        + opt_len(attempt.error.as_deref())
}

fn origin_bytes(origin: Option<&crate::state::TaskOrigin>) -> u64 {
    use crate::state::TaskOrigin;
    match origin {
        None | Some(TaskOrigin::Shard { .. }) => 0,
        Some(TaskOrigin::Schedule { schedule, .. } | TaskOrigin::Trigger { schedule, .. }) => schedule.len() as u64,
        Some(TaskOrigin::Workflow { key, .. }) => key.len() as u64,
    }
}

fn map_bytes(map: &std::collections::BTreeMap<String, String>) -> u64 {
    map.iter()
        .map(|(key, value)| MAP_ENTRY_OVERHEAD_BYTES + (key.len() + value.len()) as u64)
        .sum()
}

fn opt_len(text: Option<&str>) -> u64 {
    text.map_or(0, |text| text.len() as u64)
}

impl SchedulerState {
    /// The estimated bytes of every task held (see this module): kept in step by every
    /// insert, change and removal of a task, O(1) to read.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    /// Unfinished tasks of one namespace, for its share of the live-tasks quota.
    pub fn live_tasks_in(&self, namespace: &str) -> u64 {
        self.live_by_namespace.get(namespace).copied().unwrap_or(0)
    }

    /// Tasks not finished yet (pending, running, waiting): what the live-tasks quota counts.
    pub fn live_tasks(&self) -> u64 {
        use crate::state::TaskStatus;
        [TaskStatus::Pending, TaskStatus::Running, TaskStatus::Waiting]
            .into_iter()
            .map(|status| self.count_by_status(status) as u64)
            .sum()
    }

    /// Whether a task with this client request id exists: the leader's precheck counts no
    /// cost for a retried submission, which creates nothing.
    pub fn has_request_id(&self, namespace: &str, request_id: &str) -> bool {
        self.task_by_request_id(namespace, request_id).is_some()
    }

    /// Counts a task that enters the task map. Wrapping, like the digest sums: a sum of
    /// estimates of tasks that exist cannot reach 2^64, and wrapping keeps in/out exact.
    pub(super) fn bytes_task_in(&mut self, task: &Task) {
        self.stored_bytes = self.stored_bytes.wrapping_add(estimated_task_bytes(task));
    }

    /// Uncounts a task taken out of the task map.
    pub(super) fn bytes_task_out(&mut self, task: &Task) {
        self.stored_bytes = self.stored_bytes.wrapping_sub(estimated_task_bytes(task));
    }

    /// The sum from scratch (snapshot restore, `check_invariants`). O(tasks).
    pub(super) fn recomputed_stored_bytes(&self) -> u64 {
        self.tasks
            .values()
            .map(|task| estimated_task_bytes(task))
            .fold(0, u64::wrapping_add)
    }

    pub(super) fn check_stored_bytes(&self) -> Result<(), String> {
        let recomputed = self.recomputed_stored_bytes();
        if recomputed != self.stored_bytes {
            return Err(format!(
                "the kept state bytes {} differ from the recomputed {recomputed}",
                self.stored_bytes
            ));
        }
        Ok(())
    }
}
