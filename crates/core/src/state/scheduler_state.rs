//! [`SchedulerState`]: every task, worker and queue policy, and the indexes over them,
//! changed only by [`Command`]s.
//!
//! Every change of a task goes through [`SchedulerState::update_task`]: take the task out of
//! every index, change it, put it back as it now is. The indexes are therefore a function of
//! the primary data and the clock, never of the order things happened in.

use std::cmp::Reverse;
use std::sync::Arc;

use collections::Map;
use collections::Set;
use collections::add_to;
use collections::remove_from;

use crate::state::AssignOutcome;
use crate::state::AttemptReport;
use crate::state::CancelOutcome;
use crate::state::Command;
use crate::state::CommandResponse;
use crate::state::PlacedOutcome;
use crate::state::PurgeUnit;
use crate::state::QueuePolicy;
use crate::state::StateError;
use crate::state::SubmitOutcome;
use crate::state::limits;
use crate::state::retry_delay_ms;
use crate::state::schedule::Schedule;
use crate::state::schedule::Workflow;
use crate::state::schedule::WorkflowId;
use crate::state::task::Attempt;
use crate::state::task::AttemptOutcome;
use crate::state::task::Resources;
use crate::state::task::Task;
use crate::state::task::TaskId;
use crate::state::task::TaskLinks;
use crate::state::task::TaskSpec;
use crate::state::task::TaskStatus;
use crate::state::worker::Worker;
use crate::state::worker::WorkerRegistration;

mod collections;
mod composite;
mod digest;
mod invariants;
#[cfg(test)]
mod list_tests;
mod retention;
mod snapshot;
#[cfg(test)]
mod snapshot_tests;
mod stored_bytes;
#[cfg(test)]
mod stored_bytes_tests;
#[cfg(test)]
mod tests;
mod views;

pub use snapshot::SnapshotDecodeError;
pub use stored_bytes::estimated_spec_bytes;
pub use stored_bytes::estimated_task_bytes;
pub use views::WorkflowStatus;

/// Order of ready tasks within a queue: higher priority first, then older first.
type ReadyKey = (Reverse<i32>, TaskId);

/// The replicated scheduler state.
///
/// Primary: `tasks`, `workers`, `queue_policies`, `schedules`, `workflows`, `next_task_id`,
/// `next_workflow_id`, `next_token`, `clock_ms`.
/// Every other field is an index derived from them, rebuilt on snapshot restore and checked
/// by [`SchedulerState::check_invariants`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchedulerState {
    /// Every task ever accepted, by id. Behind an `Arc`: a clone of the state (a snapshot
    /// being encoded) shares every task, and `update_task` copies only the one task it
    /// changes while such a clone holds it (`Arc::make_mut`). A pointer also keeps the
    /// map's nodes small: ids only grow, so the map is filled at its right edge, where
    /// B-tree nodes split half full, and a `Task` inline (~450 B) would waste about as much
    /// again in empty node slots.
    tasks: Map<TaskId, Arc<Task>>,
    /// The id apply gives the next accepted task.
    next_task_id: TaskId,
    /// The fencing token apply gives the next attempt.
    next_token: u64,
    /// The latest leader time seen in any command. Leaders' clocks may disagree; the state's
    /// time never goes back.
    clock_ms: u64,
    workers: Map<String, Worker>,
    queue_policies: Map<String, QueuePolicy>,
    /// Task ids by status, for filtered listing and counts. No empty sets.
    by_status: Map<TaskStatus, Set<TaskId>>,
    /// Task ids by queue, so that a listing filtered by queue walks that queue's tasks
    /// only. A task's queue never changes, so an entry is made once. No empty sets.
    by_queue: Map<String, Set<TaskId>>,
    /// Task ids by namespace, for a listing in one namespace, made once like `by_queue`. No
    /// empty sets.
    by_namespace: Map<String, Set<TaskId>>,
    /// Unfinished (pending, running, waiting) tasks per namespace, for the per-namespace
    /// live-tasks quota in O(log n). No zero counts.
    live_by_namespace: Map<String, u64>,
    /// Tasks per (queue, status), for the node's metrics in O(queues) per scrape instead of
    /// a walk of every task. No zero counts.
    by_queue_status: Map<(String, TaskStatus), u64>,
    /// Pending tasks whose ready time has come, per queue in dispatch order. No empty queues.
    ready: Map<String, Set<ReadyKey>>,
    /// Pending tasks whose ready time is still ahead, by that time.
    delayed: Set<(u64, TaskId)>,
    /// Running tasks, and what they claim, by the worker that runs them. No empty entries.
    running_by_worker: Map<String, WorkerLoad>,
    /// The tasks that carry a client request id, as (hash of the id, task id). A lookup
    /// compares the id each task with that hash carries, so ids whose hashes collide are
    /// told apart. 16 B per task, where a map from the id kept a second heap copy of it.
    by_request_id: Set<(u64, TaskId)>,
    /// Recurring schedules, by name.
    schedules: Map<String, Schedule>,
    /// Behind an `Arc`: a workflow holds up to 1000 (key, task) pairs, and a change next to
    /// it in the map after a clone would otherwise copy it with its node.
    workflows: Map<WorkflowId, Arc<Workflow>>,
    /// The id apply gives the next accepted workflow.
    next_workflow_id: WorkflowId,
    /// (namespace, workflow request id) → the workflow it created.
    workflow_by_request_id: Map<(String, String), WorkflowId>,
    /// Finished purge units by home queue, as (finish time of their last task, unit), so
    /// the leader finds expired ones in O(expired · log n) (see `retention.rs`). No empty
    /// sets.
    purgeable: Map<String, Set<(u64, PurgeUnit)>>,
    /// Sums of element hashes per collection, kept in step with the primary data, so the
    /// state digest costs O(1) (see `digest.rs`).
    digests: digest::Digests,
    /// The estimated bytes of every task held (`stored_bytes.rs`), kept in step with `tasks`
    /// like the digest sums, so the leader's state-bytes quota reads it in O(1).
    stored_bytes: u64,
}

/// The tasks one worker runs and the sum of what they claim. The sum is kept in step with
/// the set, so an assignment checks a worker's free resources in O(1) instead of summing
/// every task the worker runs (which made a batch of assignments to one worker quadratic).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct WorkerLoad {
    tasks: Set<TaskId>,
    /// Sums of the tasks' `spec.resources`, in u64 so that adding then removing a task
    /// restores the sum exactly (u32 sums would have to saturate, and could not subtract
    /// back). Capped to u32 only when read, in [`WorkerLoad::in_use`].
    cpu_millis: u64,
    memory_mb: u64,
}

impl WorkerLoad {
    fn add(&mut self, task_id: TaskId, resources: &Resources) {
        if !self.tasks.contains(&task_id) {
            self.tasks.insert(task_id);
            self.cpu_millis += u64::from(resources.cpu_millis);
            self.memory_mb += u64::from(resources.memory_mb);
        }
    }

    fn remove(&mut self, task_id: TaskId, resources: &Resources) {
        if self.tasks.remove(&task_id).is_some() {
            self.cpu_millis -= u64::from(resources.cpu_millis);
            self.memory_mb -= u64::from(resources.memory_mb);
        }
    }

    /// The sum as [`Resources`]: each part capped at `u32::MAX`, which is what adding the
    /// tasks' resources with `saturating_add` gives.
    fn in_use(&self) -> Resources {
        Resources {
            cpu_millis: u32::try_from(self.cpu_millis).unwrap_or(u32::MAX),
            memory_mb: u32::try_from(self.memory_mb).unwrap_or(u32::MAX),
        }
    }
}

/// Tasks one listing page examines at most: 10,000, about 1 ms of filtering. A filter no
/// index serves (a name, or a status within a queue) may match few of the tasks it walks;
/// past this many the page ends, short or empty, with a cursor to go on from, so no call
/// costs O(tasks).
pub const MAX_LIST_SCANNED: usize = 10_000;

/// Which tasks a listing returns, and in which order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only tasks of this namespace (None: every namespace).
    pub namespace: Option<String>,
    pub status: Option<TaskStatus>,
    pub queue: Option<String>,
    /// Only tasks created at or after this time; 0 lists every task.
    pub since_ms: u64,
    pub order: ListOrder,
    /// Only tasks whose name contains this text (case-sensitive). No index serves it: the
    /// tasks the other filters pick are checked one by one, at most
    /// [`MAX_LIST_SCANNED`](crate::state::MAX_LIST_SCANNED) per page.
    pub name_contains: Option<String>,
    /// Only the task submitted with this client request id (served by its index).
    pub request_id: Option<String>,
}

impl ListFilter {
    /// Whether `task` passes every part of the filter.
    pub fn matches(&self, task: &Task) -> bool {
        task.created_at_ms >= self.since_ms
            && self.status.is_none_or(|s| task.status == s)
            && self.queue.as_ref().is_none_or(|q| &task.spec.queue == q)
            && self.namespace.as_deref().is_none_or(|n| task.spec.namespace() == n)
            && self
                .name_contains
                .as_deref()
                .is_none_or(|text| task.spec.name.contains(text))
            && self
                .request_id
                .as_deref()
                .is_none_or(|id| task.spec.client_request_id.as_deref() == Some(id))
    }
}

/// The order of a listing. Newest first by default: people look for what they just
/// submitted, and oldest first buries new work behind the whole history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

impl SchedulerState {
    pub fn new() -> SchedulerState {
        SchedulerState {
            next_task_id: 1,
            next_token: 1,
            next_workflow_id: 1,
            ..SchedulerState::default()
        }
    }

    /// Applies one command. Never panics on any input: a command that cannot be carried
    /// out is answered with a [`StateError`] and changes nothing but the clock (every command
    /// carries the leader's time, and the state's clock follows it even when the command
    /// itself is refused).
    pub fn apply(&mut self, command: Command) -> CommandResponse {
        if let Command::Batch { commands } = command {
            let responses = commands.into_iter().map(|command| self.apply_one(command)).collect();
            return CommandResponse::Batch(responses);
        }
        self.apply_one(command)
    }

    /// Applies a command that is not a batch (a nested batch changes nothing).
    fn apply_one(&mut self, command: Command) -> CommandResponse {
        if matches!(command, Command::Batch { .. }) {
            return CommandResponse::Empty;
        }
        let touched = digest::Touched::by(&command);
        let before = self.touched_hash(&touched);
        let response = self.execute(command);
        self.rehash_touched(&touched, before);
        response
    }

    /// Carries out a command that is not a batch.
    fn execute(&mut self, command: Command) -> CommandResponse {
        self.advance_clock(command.now_ms());
        let now_ms = self.clock_ms;
        match command {
            Command::SubmitTasks { specs, .. } => {
                CommandResponse::Submitted(specs.into_iter().map(|spec| self.submit(now_ms, spec)).collect())
            }
            Command::CancelTask { task_id, reason, .. } => {
                CommandResponse::Cancelled(self.cancel(now_ms, task_id, reason))
            }
            Command::RegisterWorker { registration, .. } => {
                CommandResponse::Registered(self.register_worker(now_ms, registration))
            }
            Command::DrainWorker { worker_id, session, .. } => {
                CommandResponse::Drained(self.drain_worker(&worker_id, &session))
            }
            Command::ExpireWorker { worker_id, session, .. } => {
                CommandResponse::Expired(self.expire_worker(now_ms, &worker_id, &session))
            }
            Command::SubmitAndAssign { specs, workers, .. } => {
                CommandResponse::SubmittedAndAssigned(self.submit_and_assign(now_ms, specs, workers))
            }
            Command::AssignTasks { assignments, .. } => CommandResponse::Assigned(
                assignments
                    .into_iter()
                    .map(|(task_id, worker_id)| self.assign(now_ms, task_id, worker_id))
                    .collect(),
            ),
            Command::ReportResult { report, jitter, .. } => {
                CommandResponse::Reported(self.report(now_ms, report, jitter))
            }
            Command::TimeOutAttempt {
                task_id, token, jitter, ..
            } => {
                let report = AttemptReport {
                    task_id,
                    token,
                    outcome: AttemptOutcome::TimedOut,
                    exit_code: None,
                    error: Some("attempt timeout passed without a result; the leader timed it out".into()),
                    retryable: true,
                    stdout_tail: String::new(),
                    stderr_tail: String::new(),
                    // The leader's own backstop: unbound, like a v0-v2 report.
                    worker_id: String::new(),
                    session: String::new(),
                };
                CommandResponse::Reported(self.report(now_ms, report, jitter))
            }
            Command::SetQueuePolicy { queue, policy, .. } => {
                CommandResponse::QueuePolicySet(self.set_queue_policy(queue, policy))
            }
            Command::CreateSchedule { name, spec, .. } => {
                CommandResponse::ScheduleCreated(self.create_schedule(now_ms, name, spec))
            }
            Command::UpdateSchedule { name, spec, .. } => {
                CommandResponse::ScheduleChanged(self.update_schedule(now_ms, &name, spec))
            }
            Command::PauseSchedule { name, paused, .. } => {
                CommandResponse::ScheduleChanged(self.pause_schedule(now_ms, &name, paused))
            }
            Command::DeleteSchedule { name, .. } => CommandResponse::ScheduleChanged(self.delete_schedule(&name)),
            Command::FireSchedule {
                name,
                revision,
                occurrences,
                ..
            } => CommandResponse::ScheduleFired(self.fire_schedule(now_ms, &name, revision, occurrences)),
            Command::TriggerSchedule { name, .. } => {
                CommandResponse::ScheduleFired(self.trigger_schedule(now_ms, &name))
            }
            Command::SubmitWorkflow { workflow, .. } => {
                CommandResponse::WorkflowSubmitted(self.submit_workflow(now_ms, workflow))
            }
            Command::SubmitShards { spec, pins, .. } => {
                CommandResponse::ShardsSubmitted(self.submit_shards(now_ms, spec, pins))
            }
            Command::PurgeTasks { units, .. } => CommandResponse::Purged(self.purge(now_ms, units)),
            Command::Batch { .. } => unreachable!("nested batches are answered above"),
        }
    }

    /// Moves the state's clock forward (never back) and makes due delayed tasks ready.
    fn advance_clock(&mut self, now_ms: u64) {
        self.clock_ms = self.clock_ms.max(now_ms);
        while let Some(&(ready_at_ms, task_id)) = self.delayed.get_min() {
            if ready_at_ms > self.clock_ms {
                break;
            }
            self.delayed.remove_min();
            let queue = self.tasks[&task_id].spec.queue.clone();
            let priority = self.tasks[&task_id].spec.priority;
            add_to(&mut self.ready, queue, (Reverse(priority), task_id));
        }
    }

    fn submit(&mut self, now_ms: u64, spec: TaskSpec) -> Result<SubmitOutcome, StateError> {
        limits::validate_spec(&spec)?;
        if let Some(request_id) = &spec.client_request_id
            && let Some(task_id) = self.task_by_request_id(spec.namespace(), request_id)
        {
            if !self.tasks[&task_id].spec.same_submission(&spec) {
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
        let task_id = self.create_task(now_ms, spec, TaskLinks::default(), TaskStatus::Pending)?;
        Ok(SubmitOutcome { task_id, created: true })
    }

    /// Submits each spec, then assigns it to its worker when the leader named one and the
    /// task is new (a retried submission's task already has its own history).
    fn submit_and_assign(
        &mut self,
        now_ms: u64,
        specs: Vec<TaskSpec>,
        workers: Vec<Option<String>>,
    ) -> Vec<PlacedOutcome> {
        let mut workers = workers.into_iter();
        specs
            .into_iter()
            .map(|spec| {
                let worker = workers.next().flatten();
                let submitted = self.submit(now_ms, spec);
                let assigned = match (&submitted, worker) {
                    (Ok(outcome), Some(worker)) if outcome.created => {
                        Some(self.assign(now_ms, outcome.task_id, worker))
                    }
                    _ => None,
                };
                (submitted, assigned)
            })
            .collect()
    }

    /// The task created with this client request id in this namespace, if any. (The same
    /// id in two namespaces is two keys: the hash is of the id alone, so they share a
    /// bucket and are told apart like colliding ids.)
    fn task_by_request_id(&self, namespace: &str, request_id: &str) -> Option<TaskId> {
        let hash = fnv1a_64(request_id.as_bytes());
        self.by_request_id
            .range((hash, TaskId::MIN)..=(hash, TaskId::MAX))
            .map(|&(_, task_id)| task_id)
            .find(|task_id| {
                self.tasks.get(task_id).is_some_and(|task| {
                    task.spec.client_request_id.as_deref() == Some(request_id) && task.spec.namespace() == namespace
                })
            })
    }

    /// A workflow's namespace: its tasks' (one for all, checked at submit). Its tasks exist
    /// while it does (`check_invariants`).
    pub fn workflow_namespace(&self, workflow: &Workflow) -> &str {
        workflow
            .tasks
            .first()
            .and_then(|(_, task_id)| self.tasks.get(task_id))
            .map_or(crate::state::namespace::DEFAULT_NAMESPACE, |task| task.spec.namespace())
    }

    /// The key of a workflow in `workflow_by_request_id`: its namespace and its request id.
    fn workflow_request_key(&self, workflow: &Workflow) -> Option<(String, String)> {
        let request_id = workflow.request_id.as_ref()?;
        Some((self.workflow_namespace(workflow).to_string(), request_id.clone()))
    }

    /// Creates a task with the next id: validated, indexed, checked. `status` is Pending, or
    /// Waiting for a task that waits for other tasks.
    fn create_task(
        &mut self,
        now_ms: u64,
        spec: TaskSpec,
        links: TaskLinks,
        status: TaskStatus,
    ) -> Result<TaskId, StateError> {
        limits::validate_spec(&spec)?;
        limits::validate_run_at(&spec, now_ms)?;
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
            ready_at_ms: spec.not_before_ms.max(now_ms.saturating_add(spec.delay_ms)),
            spec,
            status,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            reason: None,
            attempts: Vec::new(),
            links: links.into(),
        };
        // Tasks linked to each other are created one by one; the caller checks them once all
        // exist.
        let linked = !(task.links.parents.is_empty() && task.links.children.is_empty() && task.links.shards.is_empty());
        self.index_new(&task);
        self.digest_task_in(&task);
        self.bytes_task_in(&task);
        self.tasks.insert(task_id, Arc::new(task));
        if !linked {
            self.debug_check_task(task_id);
        }
        Ok(task_id)
    }

    fn cancel(&mut self, now_ms: u64, task_id: TaskId, reason: String) -> Result<CancelOutcome, StateError> {
        limits::validate_reason(&reason)?;
        let task = self.tasks.get(&task_id).ok_or(StateError::TaskNotFound(task_id))?;
        if task.status.is_terminal() {
            return Err(StateError::AlreadyFinished {
                task_id,
                status: task.status.to_string(),
            });
        }
        let stopped = task.running_attempt().map(|a| (a.worker_id.clone(), a.token));
        let shards = task.links.shards.clone();
        self.update_task(task_id, |task| {
            end_running_attempt(task, now_ms, AttemptOutcome::Cancelled, None);
            finish(task, TaskStatus::Cancelled, now_ms, Some(reason));
        });
        // A broadcast or sharded parent takes its unfinished shards with it.
        let mut shards_stopped = Vec::new();
        for shard in shards {
            if self.tasks[&shard].status.is_terminal() {
                continue;
            }
            let why = format!("its parent task {task_id} was cancelled");
            if let Ok(outcome) = self.cancel(now_ms, shard, why)
                && let Some((worker_id, token)) = outcome.stopped
            {
                shards_stopped.push(crate::state::StoppedAttempt {
                    task_id: shard,
                    worker_id,
                    token,
                });
            }
        }
        Ok(CancelOutcome {
            task_id,
            stopped,
            shards_stopped,
        })
    }

    fn register_worker(&mut self, now_ms: u64, registration: WorkerRegistration) -> Result<Vec<TaskId>, StateError> {
        limits::validate_registration(&registration)?;
        let is_new_worker = !self.workers.contains_key(&registration.id);
        if is_new_worker && self.workers.len() >= limits::MAX_WORKERS {
            return Err(StateError::InvalidArgument {
                field: "worker".into(),
                problem: format!("the cluster already has {} workers", limits::MAX_WORKERS),
            });
        }
        let restarted = self
            .workers
            .get(&registration.id)
            .is_some_and(|w| w.session != registration.session);
        let voided = if restarted {
            self.void_attempts_of(
                now_ms,
                &registration.id,
                AttemptOutcome::WorkerRestarted,
                "the worker restarted (new session)",
            )
        } else {
            Vec::new()
        };
        let draining = self
            .workers
            .get(&registration.id)
            .is_some_and(|w| w.draining && !restarted);
        self.workers.insert(
            registration.id.clone(),
            Worker {
                id: registration.id,
                session: registration.session,
                slots: registration.slots,
                labels: registration.labels,
                resources: registration.resources,
                lease_ms: registration.lease_ms,
                registered_at_ms: now_ms,
                draining,
            },
        );
        Ok(voided)
    }

    fn drain_worker(&mut self, worker_id: &str, session: &str) -> Result<(), StateError> {
        let worker = self.worker_in_session(worker_id, session)?;
        worker.draining = true;
        Ok(())
    }

    fn expire_worker(&mut self, now_ms: u64, worker_id: &str, session: &str) -> Vec<TaskId> {
        if self.worker_in_session(worker_id, session).is_err() {
            return Vec::new();
        }
        let voided = self.void_attempts_of(
            now_ms,
            worker_id,
            AttemptOutcome::LeaseExpired,
            "the worker's lease expired (no heartbeat)",
        );
        self.workers.remove(worker_id);
        self.fail_pinned_to(now_ms, worker_id);
        voided
    }

    /// Pending tasks pinned to a worker that left (broadcast shards) can never run: they
    /// fail, so their parent can finish.
    fn fail_pinned_to(&mut self, now_ms: u64, worker_id: &str) {
        let pinned: Vec<TaskId> = self
            .by_status
            .get(&TaskStatus::Pending)
            .into_iter()
            .flatten()
            .filter(|id| {
                self.tasks[*id]
                    .spec
                    .constraints
                    .get(limits::PIN_LABEL)
                    .map(String::as_str)
                    == Some(worker_id)
            })
            .copied()
            .collect();
        for task_id in pinned {
            let reason = format!("its pinned worker {worker_id:?} left the cluster");
            self.update_task(task_id, |task| finish(task, TaskStatus::Failed, now_ms, Some(reason)));
        }
    }

    fn worker_in_session(&mut self, worker_id: &str, session: &str) -> Result<&mut Worker, StateError> {
        let worker = self
            .workers
            .get_mut(worker_id)
            .ok_or_else(|| StateError::WorkerNotFound(worker_id.to_string()))?;
        if worker.session != session {
            return Err(StateError::WorkerSessionMismatch {
                worker_id: worker_id.to_string(),
            });
        }
        Ok(worker)
    }

    /// Ends every attempt a worker runs with `outcome` (lease-expired or worker-restarted);
    /// each task goes back to the queue at once (the worker failed, not the task), or fails
    /// when it has no attempt left.
    fn void_attempts_of(&mut self, now_ms: u64, worker_id: &str, outcome: AttemptOutcome, why: &str) -> Vec<TaskId> {
        let task_ids: Vec<TaskId> = self
            .running_by_worker
            .get(worker_id)
            .map(|load| load.tasks.iter().copied().collect())
            .unwrap_or_default();
        for &task_id in &task_ids {
            self.update_task(task_id, |task| {
                end_running_attempt(task, now_ms, outcome, Some(why.to_string()));
                retry_or_fail(task, now_ms, 0, why);
            });
        }
        task_ids
    }

    fn assign(&mut self, now_ms: u64, task_id: TaskId, worker_id: String) -> Result<AssignOutcome, StateError> {
        let not_assignable = |why: String| StateError::NotAssignable { task_id, why };
        let task = self.tasks.get(&task_id).ok_or(StateError::TaskNotFound(task_id))?;
        if task.status != TaskStatus::Pending {
            return Err(not_assignable(format!("it is {}, not pending", task.status)));
        }
        if task.ready_at_ms > now_ms {
            return Err(not_assignable(format!("it is not ready before {}", task.ready_at_ms)));
        }
        let worker = self
            .workers
            .get(&worker_id)
            .ok_or_else(|| StateError::WorkerNotFound(worker_id.clone()))?;
        if worker.draining {
            return Err(not_assignable(format!("worker {worker_id:?} is draining")));
        }
        let running = self.running_count(&worker_id);
        if running >= worker.slots as usize {
            return Err(not_assignable(format!("worker {worker_id:?} has no free slot")));
        }
        if worker.namespace() != task.spec.namespace() {
            return Err(not_assignable(format!(
                "worker {worker_id:?} is in namespace {:?}, the task in {:?}",
                worker.namespace(),
                task.spec.namespace()
            )));
        }
        if !task.spec.constraints.iter().all(|(k, v)| {
            if k == limits::PIN_LABEL {
                v == &worker.id
            } else {
                worker.labels.get(k) == Some(v)
            }
        }) {
            return Err(not_assignable(format!("worker {worker_id:?} lacks a required label")));
        }
        let free = worker.resources.saturating_sub(&self.resources_in_use(&worker_id));
        if !free.covers(&task.spec.resources) {
            return Err(not_assignable(format!("worker {worker_id:?} lacks the resources")));
        }
        let token = self.next_token;
        let Some(next_token) = token.checked_add(1) else {
            return Err(StateError::InvalidArgument {
                field: "token".to_string(),
                problem: "the fencing token space is exhausted".to_string(),
            });
        };
        self.next_token = next_token;
        let attempt = task.attempts.len() as u32 + 1;
        self.update_task(task_id, |task| {
            // Only the latest attempt keeps its output, so a task's size stays bounded.
            for earlier in &mut task.attempts {
                earlier.stdout_tail.clear();
                earlier.stderr_tail.clear();
            }
            task.attempts.push(Attempt {
                number: attempt,
                token,
                worker_id: worker_id.clone(),
                started_at_ms: now_ms,
                ended_at_ms: None,
                outcome: AttemptOutcome::Running,
                exit_code: None,
                error: None,
                stdout_tail: String::new(),
                stderr_tail: String::new(),
            });
            task.status = TaskStatus::Running;
            task.updated_at_ms = now_ms;
        });
        Ok(AssignOutcome {
            task_id,
            worker_id,
            token,
            attempt,
        })
    }

    /// Resources claimed by the tasks a worker runs. O(log workers): the sum is kept in
    /// [`WorkerLoad`].
    fn resources_in_use(&self, worker_id: &str) -> Resources {
        self.running_by_worker
            .get(worker_id)
            .map(WorkerLoad::in_use)
            .unwrap_or_default()
    }

    /// Whether `report` may be recorded now: its task exists, its token is the running
    /// attempt's, and (unless it is unbound, see [`AttemptReport::is_unbound`]) it comes
    /// from the worker holding that attempt in the session it registered. Apply runs it on
    /// every report; the leader runs [`Self::check_report_holder`] before proposing.
    pub fn check_report(&self, report: &AttemptReport) -> Result<(), StateError> {
        let task = self
            .tasks
            .get(&report.task_id)
            .ok_or(StateError::TaskNotFound(report.task_id))?;
        let current = task.running_attempt().map(|a| a.token);
        if current != Some(report.token) {
            return Err(StateError::StaleToken {
                task_id: report.task_id,
                token: report.token,
                current: match current {
                    Some(token) => format!("the current token is {token}"),
                    None => format!("the task is {}", task.status),
                },
            });
        }
        self.check_report_holder(report)
    }

    /// The binding part of [`Self::check_report`] alone: refuses a report whose token is a
    /// running attempt of its task held by another worker or session, and passes anything
    /// else. The leader checks only this before proposing: its applied state may lag its log
    /// just after an election, so a token it does not know yet may still be current when
    /// the entry applies (apply decides staleness), but a token it knows is held by one
    /// worker for good (tokens are never reused). The holder's session is the one its
    /// worker registered: registering a new session voids every attempt of the old one, so
    /// while an attempt runs its worker's session is the attempt's own.
    pub fn check_report_holder(&self, report: &AttemptReport) -> Result<(), StateError> {
        if report.is_unbound() {
            return Ok(());
        }
        let Some(attempt) = self
            .tasks
            .get(&report.task_id)
            .and_then(|task| task.running_attempt())
            .filter(|attempt| attempt.token == report.token)
        else {
            return Ok(());
        };
        let same_worker = attempt.worker_id == report.worker_id;
        let same_session = self
            .workers
            .get(&attempt.worker_id)
            .is_some_and(|worker| worker.session == report.session);
        if same_worker && same_session {
            return Ok(());
        }
        Err(StateError::NotAttemptHolder {
            task_id: report.task_id,
            token: report.token,
            holder: attempt.worker_id.clone(),
            reporter: report.worker_id.clone(),
            same_worker,
        })
    }

    fn report(&mut self, now_ms: u64, mut report: AttemptReport, jitter: u64) -> Result<TaskStatus, StateError> {
        limits::validate_report(&mut report)?;
        self.check_report(&report)?;
        let error = report.error.clone();
        self.update_task(report.task_id, |task| {
            let attempt = task.attempts.last_mut().expect("a running task has an attempt");
            attempt.ended_at_ms = Some(now_ms);
            attempt.outcome = report.outcome;
            attempt.exit_code = report.exit_code;
            attempt.error = report.error;
            attempt.stdout_tail = report.stdout_tail;
            attempt.stderr_tail = report.stderr_tail;
            let why = error.as_deref().unwrap_or(report.outcome.as_str());
            match report.outcome {
                AttemptOutcome::Succeeded => finish(task, TaskStatus::Succeeded, now_ms, None),
                // Handed back unfinished: the attempt does not count, so no budget check.
                AttemptOutcome::HandedBack => requeue(task, now_ms, now_ms, why),
                // Stopped by the worker itself (a cancel by the cluster makes the token stale
                // first): the attempt counts, so the budget is checked like for a lost worker.
                AttemptOutcome::Cancelled => retry_or_fail(task, now_ms, 0, why),
                _ if report.retryable => {
                    let delay_ms = retry_delay_ms(task.attempts_used(), task.spec.retry_backoff_ms, jitter);
                    retry_or_fail(task, now_ms, delay_ms, why);
                }
                _ => finish(task, TaskStatus::Failed, now_ms, Some(format!("{why} (not retryable)"))),
            }
        });
        Ok(self.tasks[&report.task_id].status)
    }

    fn set_queue_policy(&mut self, queue: String, policy: QueuePolicy) -> Result<(), StateError> {
        limits::validate_queue_policy(&queue, &policy)?;
        if !self.queue_policies.contains_key(&queue) && self.queue_policies.len() >= limits::MAX_QUEUE_POLICIES {
            return Err(StateError::InvalidArgument {
                field: "queue".into(),
                problem: format!("at most {} queues can have a policy", limits::MAX_QUEUE_POLICIES),
            });
        }
        self.queue_policies.insert(queue, policy);
        Ok(())
    }

    /// Changes a task with its indexes kept in step: out of every index, changed, back in.
    /// A task that finished just now moves the tasks that wait for it (`on_finished`).
    fn update_task(&mut self, task_id: TaskId, change: impl FnOnce(&mut Task)) {
        if self.change_task(task_id, change) {
            self.on_finished(task_id);
        }
    }

    /// The one place a task changes: [`Self::update_task`] without the follow-up, for
    /// `on_finished`, which walks the follow-ups itself (iteratively). Returns whether the
    /// task finished just now.
    fn change_task(&mut self, task_id: TaskId, change: impl FnOnce(&mut Task)) -> bool {
        let Some(mut task) = self.tasks.remove(&task_id) else {
            return false;
        };
        self.unindex(&task);
        self.digest_task_out(&task);
        self.bytes_task_out(&task);
        let was_terminal = task.status.is_terminal();
        // Copies the task only when a clone of the state (a snapshot in progress) shares it.
        change(Arc::make_mut(&mut task));
        let now_terminal = task.status.is_terminal();
        self.index(&task);
        self.digest_task_in(&task);
        self.bytes_task_in(&task);
        self.tasks.insert(task_id, task);
        let finished_now = now_terminal && !was_terminal;
        if finished_now {
            self.index_unit_of(task_id);
        }
        self.debug_check_task(task_id);
        finished_now
    }

    /// The one place a task leaves the state (the retention purge calls it): out of every
    /// index, including the queue and request id ones `update_task` leaves alone, and out of
    /// the digest and the state-bytes sums. Links from other tasks are the caller's to
    /// settle (a workflow or a sharded parent leaves as a whole).
    fn remove_task(&mut self, task_id: TaskId) -> Option<Arc<Task>> {
        let task = self.tasks.remove(&task_id)?;
        self.unindex(&task);
        remove_from(&mut self.by_queue, &task.spec.queue, &task.id);
        remove_from(&mut self.by_namespace, &task.spec.namespace().to_string(), &task.id);
        if let Some(request_id) = &task.spec.client_request_id {
            self.by_request_id.remove(&(fnv1a_64(request_id.as_bytes()), task.id));
        }
        self.digest_task_out(&task);
        self.bytes_task_out(&task);
        Some(task)
    }

    fn index(&mut self, task: &Task) {
        add_to(&mut self.by_status, task.status, task.id);
        let key = (task.spec.queue.clone(), task.status);
        let count = self.by_queue_status.get(&key).copied().unwrap_or(0);
        self.by_queue_status.insert(key, count + 1);
        if task.status.is_live() {
            let namespace = task.spec.namespace();
            let count = self.live_by_namespace.get(namespace).copied().unwrap_or(0);
            self.live_by_namespace.insert(namespace.to_string(), count + 1);
        }
        if task.status == TaskStatus::Pending {
            if task.ready_at_ms <= self.clock_ms {
                let key = (Reverse(task.spec.priority), task.id);
                add_to(&mut self.ready, task.spec.queue.clone(), key);
            } else {
                self.delayed.insert((task.ready_at_ms, task.id));
            }
        }
        if let Some(attempt) = task.running_attempt() {
            match self.running_by_worker.get_mut(&attempt.worker_id) {
                Some(load) => load.add(task.id, &task.spec.resources),
                None => {
                    let mut load = WorkerLoad::default();
                    load.add(task.id, &task.spec.resources);
                    self.running_by_worker.insert(attempt.worker_id.clone(), load);
                }
            }
        }
    }

    /// Indexes a new task: by its status and by its request id (a restore builds the
    /// request id index at once). The request id entry never changes afterwards, since a
    /// task's spec does not, so `update_task` leaves it alone.
    fn index_new(&mut self, task: &Task) {
        self.index(task);
        self.index_queue(task);
        if let Some(request_id) = &task.spec.client_request_id {
            self.by_request_id.insert((fnv1a_64(request_id.as_bytes()), task.id));
        }
    }

    /// Indexes a task by its queue and namespace, once: its queue never changes.
    fn index_queue(&mut self, task: &Task) {
        add_to(&mut self.by_queue, task.spec.queue.clone(), task.id);
        add_to(&mut self.by_namespace, task.spec.namespace().to_string(), task.id);
    }

    /// Removes a task from the indexes that depend on its status (the request id and the
    /// queue stay).
    fn unindex(&mut self, task: &Task) {
        remove_from(&mut self.by_status, &task.status, &task.id);
        let key = (task.spec.queue.clone(), task.status);
        match self.by_queue_status.get(&key).copied() {
            Some(count) if count > 1 => {
                self.by_queue_status.insert(key, count - 1);
            }
            _ => {
                self.by_queue_status.remove(&key);
            }
        }
        if task.status.is_live() {
            let namespace = task.spec.namespace();
            match self.live_by_namespace.get(namespace).copied() {
                Some(count) if count > 1 => {
                    self.live_by_namespace.insert(namespace.to_string(), count - 1);
                }
                _ => {
                    self.live_by_namespace.remove(namespace);
                }
            }
        }
        if task.status == TaskStatus::Pending {
            remove_from(
                &mut self.ready,
                &task.spec.queue,
                &(Reverse(task.spec.priority), task.id),
            );
            self.delayed.remove(&(task.ready_at_ms, task.id));
        }
        if let Some(attempt) = task.running_attempt()
            && let Some(load) = self.running_by_worker.get_mut(&attempt.worker_id)
        {
            load.remove(task.id, &task.spec.resources);
            if load.tasks.is_empty() {
                self.running_by_worker.remove(&attempt.worker_id);
            }
        }
    }
}

/// 64-bit FNV-1a: fixed and seedless, so the same bytes hash the same on every node and in
/// every run (the request id index and the state digest rely on that).
pub(super) fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn end_running_attempt(task: &mut Task, now_ms: u64, outcome: AttemptOutcome, error: Option<String>) {
    if task.running_attempt().is_none() {
        return;
    }
    let attempt = task.attempts.last_mut().expect("checked above");
    attempt.ended_at_ms = Some(now_ms);
    attempt.outcome = outcome;
    attempt.error = error;
}

fn finish(task: &mut Task, status: TaskStatus, now_ms: u64, reason: Option<String>) {
    task.status = status;
    task.updated_at_ms = now_ms;
    task.reason = reason;
}

fn requeue(task: &mut Task, now_ms: u64, ready_at_ms: u64, why: &str) {
    task.status = TaskStatus::Pending;
    task.updated_at_ms = now_ms;
    task.ready_at_ms = ready_at_ms;
    task.reason = Some(format!("retrying after: {why}"));
}

/// Back to the queue after `delay_ms`, or failed for good when no attempt is left.
fn retry_or_fail(task: &mut Task, now_ms: u64, delay_ms: u64, why: &str) {
    if task.attempts_used() >= task.spec.max_attempts {
        let used = task.attempts_used();
        let reason = format!("{why} (after {used} attempt{})", if used == 1 { "" } else { "s" });
        finish(task, TaskStatus::Failed, now_ms, Some(reason));
    } else {
        requeue(task, now_ms, now_ms.saturating_add(delay_ms), why);
    }
}
