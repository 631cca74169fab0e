//! Snapshot encoding of [`SchedulerState`]: the primary data only; restore rebuilds every
//! index and checks every invariant.

use std::sync::Arc;

use serde::Deserialize;
use serde::Serialize;

use super::SchedulerState;
use super::fnv1a_64;
use crate::state::QueuePolicy;
use crate::state::schedule::Schedule;
use crate::state::schedule::Workflow;
use crate::state::schedule::WorkflowId;
use crate::state::task::Task;
use crate::state::task::TaskId;
use crate::state::worker::Worker;

/// Bumped when the snapshot layout changes; a node refuses a snapshot of a version outside
/// [`OLDEST_SNAPSHOT_FORMAT_VERSION`]..=this.
/// 4: queue policies carry `retention_ms` (issue 11).
/// 5: task specs carry `trace_parent` (issue 13).
pub(super) const SNAPSHOT_FORMAT_VERSION: u32 = 5;
/// Still read, so data dirs and followers of the previous releases carry over: version 3
/// differs from 5 in the queue policy and the task spec, whose layouts then were wire
/// format 1's; version 4 only in the task spec, whose layout then was wire format 3's.
pub(super) const OLDEST_SNAPSHOT_FORMAT_VERSION: u32 = 3;
const _: () = assert!(OLDEST_SNAPSHOT_FORMAT_VERSION <= SNAPSHOT_FORMAT_VERSION);

#[derive(Debug, thiserror::Error)]
pub enum SnapshotDecodeError {
    #[error("snapshot is not readable: {0}")]
    Malformed(#[from] postcard::Error),
    #[error(
        "snapshot format version {found} is not supported (this build reads {OLDEST_SNAPSHOT_FORMAT_VERSION} to {SNAPSHOT_FORMAT_VERSION}): \
         run the raftsched release that wrote it, or let this node catch up from a leader that reads it"
    )]
    UnsupportedVersion { found: u32 },
    #[error("snapshot violates a state invariant: {0}")]
    Inconsistent(String),
}

/// The primary state, as stored in a snapshot.
#[derive(Serialize, Deserialize)]
pub(super) struct SnapshotImage {
    pub(super) format_version: u32,
    pub(super) next_task_id: TaskId,
    pub(super) next_token: u64,
    pub(super) clock_ms: u64,
    pub(super) workers: Vec<Worker>,
    pub(super) queue_policies: Vec<(String, QueuePolicy)>,
    pub(super) tasks: Vec<Task>,
    pub(super) next_workflow_id: WorkflowId,
    pub(super) schedules: Vec<Schedule>,
    pub(super) workflows: Vec<Workflow>,
}

/// Borrowing twin of [`SnapshotImage`], so taking a snapshot does not clone every task.
#[derive(Serialize)]
struct SnapshotImageRef<'a> {
    format_version: u32,
    next_task_id: TaskId,
    next_token: u64,
    clock_ms: u64,
    workers: Vec<&'a Worker>,
    queue_policies: Vec<(&'a String, &'a QueuePolicy)>,
    tasks: Vec<&'a Task>,
    next_workflow_id: WorkflowId,
    schedules: Vec<&'a Schedule>,
    workflows: Vec<&'a Workflow>,
}

impl SchedulerState {
    /// Serialises the primary state. Indexes are not stored; restore rebuilds them.
    pub fn to_snapshot_bytes(&self) -> Vec<u8> {
        self.append_snapshot_bytes(Vec::new())
    }

    /// [`Self::to_snapshot_bytes`] appended to `out`: a caller that frames the image (the
    /// store's checksummed envelope) reserves its header and the image's size once, instead
    /// of copying a finished image of tens of MB into a second buffer.
    pub fn append_snapshot_bytes(&self, out: Vec<u8>) -> Vec<u8> {
        let image = SnapshotImageRef {
            format_version: SNAPSHOT_FORMAT_VERSION,
            next_task_id: self.next_task_id,
            next_token: self.next_token,
            clock_ms: self.clock_ms,
            workers: self.workers.values().collect(),
            queue_policies: self.queue_policies.iter().collect(),
            tasks: self.tasks.values().map(Arc::as_ref).collect(),
            next_workflow_id: self.next_workflow_id,
            schedules: self.schedules.values().collect(),
            workflows: self.workflows.values().map(Arc::as_ref).collect(),
        };
        postcard::to_extend(&image, out).expect("serialising plain data into memory cannot fail")
    }

    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<SchedulerState, SnapshotDecodeError> {
        // The version is the image's first field: read it alone first, so an image of an
        // unknown version is named as such instead of failing to decode.
        let (found, _) = postcard::take_from_bytes::<u32>(bytes)?;
        if !(OLDEST_SNAPSHOT_FORMAT_VERSION..=SNAPSHOT_FORMAT_VERSION).contains(&found) {
            return Err(SnapshotDecodeError::UnsupportedVersion { found });
        }
        let layout = match found {
            3 => 1,
            4 => 3,
            _ => crate::state::wire::WIRE_FORMAT_VERSION,
        };
        let (image, rest): (SnapshotImage, &[u8]) =
            crate::state::wire::with_decoding_version(layout, || postcard::take_from_bytes(bytes))?;
        if !rest.is_empty() {
            return Err(SnapshotDecodeError::Inconsistent(format!(
                "{} bytes after the end of the snapshot",
                rest.len()
            )));
        }
        let mut state = SchedulerState {
            next_task_id: image.next_task_id,
            next_token: image.next_token,
            clock_ms: image.clock_ms,
            next_workflow_id: image.next_workflow_id,
            ..SchedulerState::default()
        };
        for schedule in image.schedules {
            if state.schedules.insert(schedule.name.clone(), schedule).is_some() {
                return Err(SnapshotDecodeError::Inconsistent("a schedule appears twice".into()));
            }
        }
        for worker in image.workers {
            if state.workers.insert(worker.id.clone(), worker).is_some() {
                return Err(SnapshotDecodeError::Inconsistent("a worker appears twice".into()));
            }
        }
        state.queue_policies = image.queue_policies.into_iter().collect();
        let mut request_ids = Vec::new();
        for task in image.tasks {
            if state.tasks.contains_key(&task.id) {
                return Err(SnapshotDecodeError::Inconsistent(format!(
                    "task {} appears twice",
                    task.id
                )));
            }
            state.index(&task);
            state.index_queue(&task);
            if let Some(request_id) = &task.spec.client_request_id {
                request_ids.push((fnv1a_64(request_id.as_bytes()), task.id));
            }
            state.tasks.insert(task.id, Arc::new(task));
        }
        // Built at once from the sorted entries rather than inserted task by task at random
        // places. A request id used twice is refused by check_invariants.
        state.by_request_id = request_ids.into_iter().collect();
        // After the tasks: a workflow's request id is keyed by its tasks' namespace.
        for workflow in image.workflows {
            if let Some(key) = state.workflow_request_key(&workflow)
                && state.workflow_by_request_id.insert(key.clone(), workflow.id).is_some()
            {
                return Err(SnapshotDecodeError::Inconsistent(format!(
                    "workflow request id {:?} is used twice in namespace {:?}",
                    key.1, key.0
                )));
            }
            if state.workflows.insert(workflow.id, Arc::new(workflow)).is_some() {
                return Err(SnapshotDecodeError::Inconsistent("a workflow appears twice".into()));
            }
        }
        state.rebuild_purge_index();
        state.reset_digests();
        state.stored_bytes = state.recomputed_stored_bytes();
        state.check_invariants().map_err(SnapshotDecodeError::Inconsistent)?;
        Ok(state)
    }
}
