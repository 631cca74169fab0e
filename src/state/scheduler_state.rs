//! [`SchedulerState`]: every task and the indexes over them, changed only by [`Command`]s.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::state::Command;
use crate::state::CommandResponse;
use crate::state::StateError;
use crate::state::SubmitOutcome;
use crate::state::limits;
use crate::state::task::Task;
use crate::state::task::TaskId;
use crate::state::task::TaskSpec;
use crate::state::task::TaskStatus;

/// Order of pending tasks within a queue: higher priority first, then older first.
type ReadyKey = (Reverse<i32>, TaskId);

/// Bumped when the snapshot layout changes; a node refuses a snapshot of another version.
const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// The replicated scheduler state.
///
/// Only `tasks` and `next_task_id` are primary; every other field is an index derived from
/// them, rebuilt on snapshot restore and checked by [`SchedulerState::check_invariants`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchedulerState {
    /// Every task ever accepted, by id.
    tasks: BTreeMap<TaskId, Task>,
    /// The id apply gives the next accepted task.
    next_task_id: TaskId,
    /// Task ids by status, for filtered listing and counts.
    by_status: BTreeMap<TaskStatus, BTreeSet<TaskId>>,
    /// Pending tasks per queue in dispatch order. Empty queues are removed.
    ready: BTreeMap<String, BTreeSet<ReadyKey>>,
    /// Client request id → the task it created.
    by_request_id: BTreeMap<String, TaskId>,
}

/// Which tasks a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub status: Option<TaskStatus>,
    pub queue: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotDecodeError {
    #[error("snapshot is not readable: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("snapshot format version {found} is not supported (this build reads {SNAPSHOT_FORMAT_VERSION})")]
    UnsupportedVersion { found: u32 },
    #[error("snapshot violates a state invariant: {0}")]
    Inconsistent(String),
}

/// The primary state, as stored in a snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotImage {
    format_version: u32,
    next_task_id: TaskId,
    tasks: Vec<Task>,
}

impl SchedulerState {
    pub fn new() -> SchedulerState {
        SchedulerState {
            next_task_id: 1,
            ..SchedulerState::default()
        }
    }

    /// Applies one command. Never panics on any input: a command that cannot be carried
    /// out is answered with a [`StateError`] and changes nothing.
    pub fn apply(&mut self, command: Command) -> CommandResponse {
        match command {
            Command::SubmitTasks { now_ms, specs } => {
                let outcomes = specs.into_iter().map(|spec| self.submit(now_ms, spec)).collect();
                CommandResponse::Submitted(outcomes)
            }
            Command::CancelTask {
                now_ms,
                task_id,
                reason,
            } => CommandResponse::Cancelled(self.cancel(now_ms, task_id, reason)),
        }
    }

    fn submit(&mut self, now_ms: u64, spec: TaskSpec) -> Result<SubmitOutcome, StateError> {
        limits::validate_spec(&spec)?;
        if let Some(request_id) = &spec.client_request_id
            && let Some(&task_id) = self.by_request_id.get(request_id)
        {
            if self.tasks[&task_id].spec != spec {
                return Err(StateError::RequestIdConflict {
                    request_id: request_id.clone(),
                    task_id,
                });
            }
            return Ok(SubmitOutcome {
                task_id,
                created: false,
            });
        }
        let task_id = self.next_task_id;
        let Some(next_task_id) = task_id.checked_add(1) else {
            return Err(StateError::InvalidArgument {
                field: "tasks".to_string(),
                problem: "the task id space is exhausted".to_string(),
            });
        };
        self.next_task_id = next_task_id;
        let task = Task {
            id: task_id,
            spec,
            status: TaskStatus::Pending,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            reason: None,
        };
        self.insert(task);
        Ok(SubmitOutcome { task_id, created: true })
    }

    fn cancel(&mut self, now_ms: u64, task_id: TaskId, reason: String) -> Result<TaskId, StateError> {
        limits::validate_reason(&reason)?;
        let task = self.tasks.get(&task_id).ok_or(StateError::TaskNotFound(task_id))?;
        if task.status.is_terminal() {
            return Err(StateError::AlreadyFinished {
                task_id,
                status: task.status.to_string(),
            });
        }
        self.set_status(task_id, TaskStatus::Cancelled, now_ms, Some(reason));
        Ok(task_id)
    }

    /// Adds a new task to the primary map and every index.
    fn insert(&mut self, task: Task) {
        let task_id = task.id;
        self.index(&task);
        self.tasks.insert(task_id, task);
        self.debug_check_task(task_id);
    }

    fn index(&mut self, task: &Task) {
        self.by_status.entry(task.status).or_default().insert(task.id);
        if task.status == TaskStatus::Pending {
            self.ready
                .entry(task.spec.queue.clone())
                .or_default()
                .insert((Reverse(task.spec.priority), task.id));
        }
        if let Some(request_id) = &task.spec.client_request_id {
            self.by_request_id.insert(request_id.clone(), task.id);
        }
    }

    fn unindex_status(&mut self, task_id: TaskId, status: TaskStatus, queue: &str, priority: i32) {
        if let Some(ids) = self.by_status.get_mut(&status) {
            ids.remove(&task_id);
            // Like `ready`, keep no empty sets: a state must not depend on its history, so a
            // state restored from a snapshot equals the state it was taken from.
            if ids.is_empty() {
                self.by_status.remove(&status);
            }
        }
        if status == TaskStatus::Pending
            && let Some(keys) = self.ready.get_mut(queue)
        {
            keys.remove(&(Reverse(priority), task_id));
            if keys.is_empty() {
                self.ready.remove(queue);
            }
        }
    }

    /// Moves an existing task to `status`, keeping the indexes in step.
    fn set_status(&mut self, task_id: TaskId, status: TaskStatus, now_ms: u64, reason: Option<String>) {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let old_status = task.status;
        let queue = task.spec.queue.clone();
        let priority = task.spec.priority;
        task.status = status;
        task.updated_at_ms = now_ms;
        task.reason = reason;
        self.unindex_status(task_id, old_status, &queue, priority);
        self.by_status.entry(status).or_default().insert(task_id);
        if status == TaskStatus::Pending {
            self.ready
                .entry(queue)
                .or_default()
                .insert((Reverse(priority), task_id));
        }
        self.debug_check_task(task_id);
    }

    pub fn get(&self, task_id: TaskId) -> Option<&Task> {
        self.tasks.get(&task_id)
    }

    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    pub fn count_by_status(&self, status: TaskStatus) -> usize {
        self.by_status.get(&status).map_or(0, BTreeSet::len)
    }

    /// Up to `limit` tasks matching `filter` with ids above `after`, in id order, and the
    /// id to pass as `after` for the next page (None when this page is the last).
    pub fn list(&self, filter: &ListFilter, after: TaskId, limit: usize) -> (Vec<Task>, Option<TaskId>) {
        let Some(start) = after.checked_add(1) else {
            return (Vec::new(), None);
        };
        let candidates: Box<dyn Iterator<Item = &Task>> = match filter.status {
            Some(status) => Box::new(
                self.by_status
                    .get(&status)
                    .into_iter()
                    .flat_map(move |ids| ids.range(start..))
                    .map(|id| &self.tasks[id]),
            ),
            None => Box::new(self.tasks.range(start..).map(|(_, task)| task)),
        };
        let mut matching = candidates.filter(|task| filter.queue.as_ref().is_none_or(|q| &task.spec.queue == q));
        let page: Vec<Task> = matching.by_ref().take(limit).cloned().collect();
        let next = match (page.last(), matching.next()) {
            (Some(last), Some(_)) => Some(last.id),
            _ => None,
        };
        (page, next)
    }

    /// Pending task ids of `queue` in dispatch order.
    pub fn ready_in_queue(&self, queue: &str) -> impl Iterator<Item = TaskId> + '_ {
        self.ready
            .get(queue)
            .into_iter()
            .flat_map(|keys| keys.iter().map(|(_, id)| *id))
    }

    /// Serialises the primary state. Indexes are not stored; restore rebuilds them.
    pub fn to_snapshot_bytes(&self) -> Vec<u8> {
        let image = SnapshotImageRef {
            format_version: SNAPSHOT_FORMAT_VERSION,
            next_task_id: self.next_task_id,
            tasks: self.tasks.values().collect(),
        };
        postcard::to_allocvec(&image).expect("serialising plain data into memory cannot fail")
    }

    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<SchedulerState, SnapshotDecodeError> {
        let (image, rest): (SnapshotImage, &[u8]) = postcard::take_from_bytes(bytes)?;
        if !rest.is_empty() {
            return Err(SnapshotDecodeError::Inconsistent(format!(
                "{} bytes after the end of the snapshot",
                rest.len()
            )));
        }
        if image.format_version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotDecodeError::UnsupportedVersion {
                found: image.format_version,
            });
        }
        let mut state = SchedulerState {
            next_task_id: image.next_task_id,
            ..SchedulerState::default()
        };
        for task in image.tasks {
            if state.tasks.contains_key(&task.id) {
                return Err(SnapshotDecodeError::Inconsistent(format!(
                    "task {} appears twice",
                    task.id
                )));
            }
            state.index(&task);
            state.tasks.insert(task.id, task);
        }
        state.check_invariants().map_err(SnapshotDecodeError::Inconsistent)?;
        Ok(state)
    }

    /// Checks every invariant that ties the indexes to the tasks. O(n): used by tests, by
    /// snapshot restore, and per touched task in debug builds.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.next_task_id == 0 {
            return Err("next_task_id is 0; ids start at 1".into());
        }
        if self.tasks.contains_key(&0) {
            return Err("a task has id 0; ids start at 1".into());
        }
        if let Some((&last_id, _)) = self.tasks.last_key_value()
            && last_id >= self.next_task_id
        {
            return Err(format!(
                "task {last_id} is not below next_task_id {}",
                self.next_task_id
            ));
        }
        for task_id in self.tasks.keys() {
            self.check_task(*task_id)?;
        }
        let indexed_by_status: usize = self.by_status.values().map(BTreeSet::len).sum();
        if indexed_by_status != self.tasks.len() {
            return Err(format!(
                "{indexed_by_status} tasks indexed by status, {} tasks exist",
                self.tasks.len()
            ));
        }
        let ready_len: usize = self.ready.values().map(BTreeSet::len).sum();
        if ready_len != self.count_by_status(TaskStatus::Pending) {
            return Err(format!(
                "{ready_len} tasks ready, {} pending",
                self.count_by_status(TaskStatus::Pending)
            ));
        }
        if self.ready.values().any(BTreeSet::is_empty) {
            return Err("an empty queue is left in the ready index".into());
        }
        if self.by_status.values().any(BTreeSet::is_empty) {
            return Err("an empty status is left in the status index".into());
        }
        for (request_id, task_id) in &self.by_request_id {
            let owner = self.tasks.get(task_id).and_then(|t| t.spec.client_request_id.as_ref());
            if owner != Some(request_id) {
                return Err(format!(
                    "request id {request_id:?} points at task {task_id}, which does not carry it"
                ));
            }
        }
        Ok(())
    }

    /// The invariants of one task: its id, its status index, its ready entry, its request id.
    fn check_task(&self, task_id: TaskId) -> Result<(), String> {
        let task = self.tasks.get(&task_id).ok_or(format!("task {task_id} missing"))?;
        if task.id != task_id {
            return Err(format!("task stored under {task_id} has id {}", task.id));
        }
        for status in TaskStatus::ALL {
            let indexed = self.by_status.get(&status).is_some_and(|ids| ids.contains(&task_id));
            if indexed != (status == task.status) {
                return Err(format!(
                    "task {task_id} is {} but indexed as {status}: {indexed}",
                    task.status
                ));
            }
        }
        let ready = self
            .ready
            .get(&task.spec.queue)
            .is_some_and(|keys| keys.contains(&(Reverse(task.spec.priority), task_id)));
        if ready != (task.status == TaskStatus::Pending) {
            return Err(format!("task {task_id} is {} but ready={ready}", task.status));
        }
        if let Some(request_id) = &task.spec.client_request_id
            && self.by_request_id.get(request_id) != Some(&task_id)
        {
            return Err(format!(
                "task {task_id}'s request id {request_id:?} is not indexed to it"
            ));
        }
        Ok(())
    }

    fn debug_check_task(&self, task_id: TaskId) {
        if cfg!(debug_assertions)
            && let Err(violation) = self.check_task(task_id)
        {
            panic!("state invariant violated: {violation}");
        }
    }
}

/// Borrowing twin of [`SnapshotImage`], so taking a snapshot does not clone every task.
#[derive(Serialize)]
struct SnapshotImageRef<'a> {
    format_version: u32,
    next_task_id: TaskId,
    tasks: Vec<&'a Task>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::Payload;

    fn spec(name: &str) -> TaskSpec {
        TaskSpec {
            name: name.to_string(),
            queue: "q".to_string(),
            priority: 0,
            payload: Payload::Command {
                command_line: "true".to_string(),
                env: BTreeMap::new(),
            },
            labels: BTreeMap::new(),
            max_attempts: 1,
            attempt_timeout_ms: 1000,
            client_request_id: None,
        }
    }

    fn submit(state: &mut SchedulerState, name: &str) -> Result<SubmitOutcome, StateError> {
        let CommandResponse::Submitted(mut outcomes) = state.apply(Command::SubmitTasks {
            now_ms: 1,
            specs: vec![spec(name)],
        }) else {
            panic!("submit answered with another response");
        };
        outcomes.pop().expect("one outcome per spec")
    }

    fn encode(image: &SnapshotImage) -> Vec<u8> {
        postcard::to_allocvec(image).expect("in-memory encoding")
    }

    fn task(id: TaskId, name: &str) -> Task {
        Task {
            id,
            spec: spec(name),
            status: TaskStatus::Pending,
            created_at_ms: 1,
            updated_at_ms: 1,
            reason: None,
        }
    }

    /// The state is a function of its tasks alone: emptying a status leaves no trace, so a
    /// state equals the state restored from its snapshot.
    #[test]
    fn emptied_status_leaves_no_index_entry() {
        let mut state = SchedulerState::new();
        let task_id = submit(&mut state, "a").unwrap().task_id;
        state.apply(Command::CancelTask {
            now_ms: 2,
            task_id,
            reason: String::new(),
        });
        assert!(!state.by_status.contains_key(&TaskStatus::Pending));
        state.check_invariants().unwrap();
        let restored = SchedulerState::from_snapshot_bytes(&state.to_snapshot_bytes()).unwrap();
        assert_eq!(restored, state);
    }

    #[test]
    fn exhausted_id_space_is_refused_not_wrapped() {
        let mut state = SchedulerState::new();
        state.next_task_id = u64::MAX;
        let before = state.clone();
        let err = submit(&mut state, "a").unwrap_err();
        assert!(matches!(err, StateError::InvalidArgument { ref field, .. } if field == "tasks"));
        assert_eq!(state, before);
    }

    #[test]
    fn snapshot_with_a_duplicate_task_id_is_refused() {
        let image = SnapshotImage {
            format_version: SNAPSHOT_FORMAT_VERSION,
            next_task_id: 2,
            tasks: vec![task(1, "a"), task(1, "b")],
        };
        let err = SchedulerState::from_snapshot_bytes(&encode(&image)).unwrap_err();
        assert!(err.to_string().contains("task 1 appears twice"), "{err}");
    }

    #[test]
    fn snapshot_with_task_id_zero_is_refused() {
        let image = SnapshotImage {
            format_version: SNAPSHOT_FORMAT_VERSION,
            next_task_id: 2,
            tasks: vec![task(0, "a"), task(1, "b")],
        };
        let err = SchedulerState::from_snapshot_bytes(&encode(&image)).unwrap_err();
        assert!(err.to_string().contains("id 0"), "{err}");
    }

    #[test]
    fn snapshot_with_a_shared_request_id_is_refused() {
        let mut first = task(1, "a");
        let mut second = task(2, "b");
        first.spec.client_request_id = Some("r".to_string());
        second.spec.client_request_id = Some("r".to_string());
        let image = SnapshotImage {
            format_version: SNAPSHOT_FORMAT_VERSION,
            next_task_id: 3,
            tasks: vec![first, second],
        };
        assert!(SchedulerState::from_snapshot_bytes(&encode(&image)).is_err());
    }

    #[test]
    fn list_after_the_largest_id_is_empty() {
        let mut state = SchedulerState::new();
        submit(&mut state, "a").unwrap();
        assert_eq!(state.list(&ListFilter::default(), u64::MAX, 10), (Vec::new(), None));
    }
}
