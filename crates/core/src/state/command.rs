//! The commands carried by the Raft log and the responses apply returns.
//!
//! Architecture invariant: a command holds every input apply needs — the leader's clock
//! reading and random draws included — so that applying the same log gives the same state on
//! every node.

use serde::Deserialize;
use serde::Serialize;

use crate::state::QueuePolicy;
use crate::state::limits::shown;
use crate::state::schedule::Occurrence;
use crate::state::schedule::RunOutcome;
use crate::state::schedule::ScheduleSpec;
use crate::state::schedule::WorkflowId;
use crate::state::schedule::WorkflowSpec;
use crate::state::task::AttemptOutcome;
use crate::state::task::TaskId;
use crate::state::task::TaskSpec;
use crate::state::task::TaskStatus;
use crate::state::worker::WorkerRegistration;

/// One entry of application data in the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create tasks (one client call, or many batched by the leader). Each spec gets its own
    /// outcome; one bad spec does not fail the others.
    SubmitTasks { now_ms: u64, specs: Vec<TaskSpec> },
    /// Cancel a task that has not finished.
    CancelTask {
        now_ms: u64,
        task_id: TaskId,
        reason: String,
    },
    /// Add a worker, or re-attach one (same session) after a leader change.
    RegisterWorker {
        now_ms: u64,
        registration: WorkerRegistration,
    },
    /// Stop assigning to a worker; it finishes or hands back what it holds.
    DrainWorker {
        now_ms: u64,
        worker_id: String,
        session: String,
    },
    /// The leader stopped hearing from a worker within its lease: void its attempts (each
    /// task goes back to the queue, or fails when out of attempts) and forget it.
    ExpireWorker {
        now_ms: u64,
        worker_id: String,
        session: String,
    },
    /// Start attempts: each (task, worker) pair the leader planned. `seed` is the random
    /// state the planner used, recorded so a plan can be replayed.
    AssignTasks {
        now_ms: u64,
        seed: u64,
        assignments: Vec<(TaskId, String)>,
    },
    /// A worker's result for an attempt. `jitter` is the leader's random draw for the retry
    /// backoff, used if the task goes back to the queue.
    ReportResult {
        now_ms: u64,
        report: AttemptReport,
        jitter: u64,
    },
    /// The leader's backstop for a worker that did not enforce an attempt's timeout.
    TimeOutAttempt {
        now_ms: u64,
        task_id: TaskId,
        token: u64,
        jitter: u64,
    },
    SetQueuePolicy {
        now_ms: u64,
        queue: String,
        policy: QueuePolicy,
    },
    /// Add a recurring schedule. Its first occurrence is after `now_ms` (and not before its
    /// start bound). Creating the same name with the same spec again is a no-op.
    CreateSchedule {
        now_ms: u64,
        name: String,
        spec: ScheduleSpec,
    },
    /// Replace a schedule's definition; occurrences are counted afresh from `now_ms`.
    UpdateSchedule {
        now_ms: u64,
        name: String,
        spec: ScheduleSpec,
    },
    /// Pause or resume. Occurrences while paused are not run; resuming counts from `now_ms`.
    PauseSchedule { now_ms: u64, name: String, paused: bool },
    /// Remove a schedule (the tasks it created stay).
    DeleteSchedule { now_ms: u64, name: String },
    /// The leader's decisions for a schedule's due occurrences, in scheduled order, planned
    /// on `revision`. Apply refuses each occurrence at or before the schedule's cursor.
    FireSchedule {
        now_ms: u64,
        name: String,
        revision: u64,
        occurrences: Vec<Occurrence>,
    },
    /// A manual run of a schedule, now.
    TriggerSchedule { now_ms: u64, name: String },
    /// Create a workflow's tasks in one entry: tasks without parents pending, the others
    /// waiting for them.
    SubmitWorkflow { now_ms: u64, workflow: WorkflowSpec },
    /// A broadcast or sharded run: a parent task that waits, and one shard per entry of
    /// `pins`, pinned to that worker when `Some` (the leader lists the workers matching the
    /// selector when it proposes).
    SubmitShards {
        now_ms: u64,
        spec: TaskSpec,
        pins: Vec<Option<String>>,
    },
    /// Several commands in one log entry, applied in order as if each had its own entry:
    /// the leader groups concurrent writes so that one entry (one append, one fsync, one
    /// replication message) carries many. Never nested; apply answers a nested batch with
    /// [`CommandResponse::Empty`] and changes nothing.
    Batch {
        #[serde(deserialize_with = "deserialize_batch")]
        commands: Vec<Command>,
    },
    /// Remove finished purge units whose queue's retention has passed by `now_ms` (the
    /// leader's time). At most [`MAX_PURGES_PER_ENTRY`](crate::state::limits::MAX_PURGES_PER_ENTRY)
    /// units; apply re-checks each one and skips those that do not qualify (yet). Added
    /// after `Batch` so that every v1 variant keeps its index on the wire.
    PurgeTasks { now_ms: u64, units: Vec<PurgeUnit> },
    /// Create tasks and start them at once: the leader saw a connected worker with a free
    /// slot for spec `i` and no backlog to wait behind, and names it in `workers[i]`, so a
    /// task waits for one commit before its worker hears of it, not two (issue 14). Apply
    /// submits each spec as [`Command::SubmitTasks`] does, then assigns it as
    /// [`Command::AssignTasks`] would, re-checking everything; an assignment it refuses (the
    /// slot taken meanwhile, the worker gone) leaves the task pending for the dispatcher. A
    /// spec without a worker (`None`, or past the end of `workers`) is only submitted.
    /// `seed` is the planner's, recorded like `AssignTasks`'s. Added last (wire format v5).
    SubmitAndAssign {
        now_ms: u64,
        seed: u64,
        specs: Vec<TaskSpec>,
        workers: Vec<Option<String>>,
    },
}

/// What is purged as a whole: a task with its shards (a plain task has none), or a
/// workflow with all its tasks. A shard or a workflow's task is never purged alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PurgeUnit {
    /// A task that is neither a shard nor in a workflow, with its shards if it has any.
    Task(TaskId),
    Workflow(WorkflowId),
}

impl std::fmt::Display for PurgeUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PurgeUnit::Task(id) => write!(f, "task {id}"),
            PurgeUnit::Workflow(id) => write!(f, "workflow {id}"),
        }
    }
}

std::thread_local! {
    /// How many batches the decoder on this thread is inside (decoding is synchronous, so
    /// a per-thread count is exact).
    static BATCH_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Decodes a batch's commands, refusing nesting deeper than
/// [`limits::MAX_BATCH_NESTING`](crate::state::limits::MAX_BATCH_NESTING) before it
/// recurses any further.
fn deserialize_batch<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Command>, D::Error> {
    /// Leaves the level however decoding ends.
    struct Level;
    impl Drop for Level {
        fn drop(&mut self) {
            BATCH_DEPTH.with(|depth| depth.set(depth.get() - 1));
        }
    }
    let depth = BATCH_DEPTH.with(|depth| {
        depth.set(depth.get() + 1);
        depth.get()
    });
    let _level = Level;
    let limit = crate::state::limits::MAX_BATCH_NESTING;
    if depth > limit {
        return Err(serde::de::Error::custom(format!(
            "batches nested {depth} deep; at most {limit} (a batch in a batch) are accepted"
        )));
    }
    Vec::<Command>::deserialize(deserializer)
}

impl Command {
    /// The trace contexts of the tasks the command submits (a batch's, in order): what the
    /// store opens an `apply` span under. Schedules are left out: their template's context
    /// is the schedule's creator's, not a submission's.
    pub fn trace_parents(&self) -> Vec<&str> {
        match self {
            Command::SubmitTasks { specs, .. } | Command::SubmitAndAssign { specs, .. } => {
                specs.iter().filter_map(|s| s.trace_parent.as_deref()).collect()
            }
            Command::SubmitShards { spec, .. } => spec.trace_parent.as_deref().into_iter().collect(),
            Command::SubmitWorkflow { workflow, .. } => workflow
                .tasks
                .iter()
                .filter_map(|t| t.spec.trace_parent.as_deref())
                .collect(),
            Command::Batch { commands } => commands.iter().flat_map(Command::trace_parents).collect(),
            _ => Vec::new(),
        }
    }

    /// The leader time stamped into the command.
    pub fn now_ms(&self) -> u64 {
        match self {
            Command::SubmitTasks { now_ms, .. }
            | Command::CancelTask { now_ms, .. }
            | Command::RegisterWorker { now_ms, .. }
            | Command::DrainWorker { now_ms, .. }
            | Command::ExpireWorker { now_ms, .. }
            | Command::AssignTasks { now_ms, .. }
            | Command::ReportResult { now_ms, .. }
            | Command::TimeOutAttempt { now_ms, .. }
            | Command::SetQueuePolicy { now_ms, .. }
            | Command::CreateSchedule { now_ms, .. }
            | Command::UpdateSchedule { now_ms, .. }
            | Command::PauseSchedule { now_ms, .. }
            | Command::DeleteSchedule { now_ms, .. }
            | Command::FireSchedule { now_ms, .. }
            | Command::TriggerSchedule { now_ms, .. }
            | Command::SubmitWorkflow { now_ms, .. }
            | Command::SubmitShards { now_ms, .. }
            | Command::PurgeTasks { now_ms, .. }
            | Command::SubmitAndAssign { now_ms, .. } => *now_ms,
            // The clock after the batch: each member advances it when applied.
            Command::Batch { commands } => commands.iter().map(Command::now_ms).max().unwrap_or(0),
        }
    }
}

/// What a worker reports for one attempt.
///
/// Deserialised by hand: a log entry of wire format v0-v2 carries no `worker_id` and
/// `session` (see [`crate::state::wire::decoding_version`]); such a report decodes with both
/// empty and is applied unbound, as it was accepted then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptReport {
    pub task_id: TaskId,
    pub token: u64,
    /// Succeeded, Failed, TimedOut, Cancelled or HandedBack.
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// False for a failure a retry cannot fix.
    pub retryable: bool,
    pub stdout_tail: String,
    pub stderr_tail: String,
    /// The reporting worker and its session (wire format v3): apply records the report only
    /// if they are the attempt's own. Both empty only in entries of v0-v2 and in the
    /// leader's own timeout backstop; the leader refuses a client report without them.
    pub worker_id: String,
    pub session: String,
}

/// The layout of wire formats v0-v2, before a report named its worker.
#[derive(Deserialize)]
struct AttemptReportV2 {
    task_id: TaskId,
    token: u64,
    outcome: AttemptOutcome,
    exit_code: Option<i32>,
    error: Option<String>,
    retryable: bool,
    stdout_tail: String,
    stderr_tail: String,
}

impl<'de> Deserialize<'de> for AttemptReport {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<AttemptReport, D::Error> {
        if matches!(crate::state::wire::decoding_version(), Some(0..=2)) {
            return Ok(AttemptReportV2::deserialize(deserializer)?.unbound());
        }
        // Postcard writes a struct's fields one after the other, like a tuple: the v3 layout
        // is the v2 one followed by the two strings.
        let (v2, worker_id, session) = <(AttemptReportV2, String, String)>::deserialize(deserializer)?;
        Ok(AttemptReport {
            worker_id,
            session,
            ..v2.unbound()
        })
    }
}

impl AttemptReportV2 {
    fn unbound(self) -> AttemptReport {
        AttemptReport {
            task_id: self.task_id,
            token: self.token,
            outcome: self.outcome,
            exit_code: self.exit_code,
            error: self.error,
            retryable: self.retryable,
            stdout_tail: self.stdout_tail,
            stderr_tail: self.stderr_tail,
            worker_id: String::new(),
            session: String::new(),
        }
    }
}

impl AttemptReport {
    /// True for a report that names no worker: decoded from a v0-v2 entry, or the leader's
    /// own timeout backstop. Apply records it as before reports were bound.
    pub fn is_unbound(&self) -> bool {
        self.worker_id.is_empty() && self.session.is_empty()
    }
}

/// What apply answers for one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// For entries that carry no command (blank and membership entries).
    Empty,
    /// One outcome per submitted spec, in order.
    Submitted(Vec<Result<SubmitOutcome, StateError>>),
    Cancelled(Result<CancelOutcome, StateError>),
    /// Attempts voided because the worker registered with a new session.
    Registered(Result<Vec<TaskId>, StateError>),
    Drained(Result<(), StateError>),
    /// Tasks whose attempts the expiry voided.
    Expired(Vec<TaskId>),
    /// One outcome per planned assignment, in order.
    Assigned(Vec<Result<AssignOutcome, StateError>>),
    /// The task's status after the report.
    Reported(Result<TaskStatus, StateError>),
    QueuePolicySet(Result<(), StateError>),
    /// True when the schedule was created, false when it existed with the same spec.
    ScheduleCreated(Result<bool, StateError>),
    /// Update, pause, resume, delete.
    ScheduleChanged(Result<(), StateError>),
    /// Firings and manual runs.
    ScheduleFired(Result<FireOutcome, StateError>),
    WorkflowSubmitted(Result<WorkflowOutcome, StateError>),
    /// The parent task of a broadcast or sharded run.
    ShardsSubmitted(Result<SubmitOutcome, StateError>),
    /// One response per command of a [`Command::Batch`], in order.
    Batch(Vec<CommandResponse>),
    Purged(Result<PurgeOutcome, StateError>),
    /// Per spec of a [`Command::SubmitAndAssign`], in order: its submission's outcome, and
    /// its assignment's when the leader named a worker and the task was created.
    SubmittedAndAssigned(Vec<PlacedOutcome>),
}

/// What a purge removed: the units that qualified (the others were skipped) and their tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeOutcome {
    pub purged: Vec<PurgeUnit>,
    pub tasks_removed: u64,
}

/// An attempt a worker must be told to stop, once the command that ended it is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedAttempt {
    pub task_id: TaskId,
    pub worker_id: String,
    pub token: u64,
}

/// What a firing (or manual run) did: one result per occurrence, and the attempts a
/// `replace` overlap cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireOutcome {
    pub results: Vec<Result<RunOutcome, StateError>>,
    pub stopped: Vec<StoppedAttempt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowOutcome {
    pub workflow_id: WorkflowId,
    /// False when the request id matched an earlier submission.
    pub created: bool,
}

/// One spec of a [`Command::SubmitAndAssign`]: its submission's outcome, and its
/// assignment's when a worker was named and the task was created.
pub type PlacedOutcome = (
    Result<SubmitOutcome, StateError>,
    Option<Result<AssignOutcome, StateError>>,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitOutcome {
    pub task_id: TaskId,
    /// False when the client request id matched an earlier submission.
    pub created: bool,
}

/// A cancelled task, and the attempt its worker must now stop, if one was running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOutcome {
    pub task_id: TaskId,
    pub stopped: Option<(String, u64)>,
    /// Attempts of the task's shards, cancelled with it.
    pub shards_stopped: Vec<StoppedAttempt>,
}

/// A started attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignOutcome {
    pub task_id: TaskId,
    pub worker_id: String,
    pub token: u64,
    pub attempt: u32,
}

/// Why apply (or the leader's check before proposing) refused a command.
/// Each variant maps to one gRPC code in the API layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StateError {
    #[error("invalid {field}: {problem}")]
    InvalidArgument { field: String, problem: String },
    #[error("task {0} not found")]
    TaskNotFound(TaskId),
    #[error("task {task_id} is already {status}; only pending or running tasks can be cancelled")]
    AlreadyFinished { task_id: TaskId, status: String },
    #[error(
        "client request id {} was already used for task {task_id} with a different spec; \
         use a new request id for a new task",
        shown(request_id)
    )]
    RequestIdConflict { request_id: String, task_id: TaskId },
    #[error("worker {} is not registered; register it first", shown(.0))]
    WorkerNotFound(String),
    #[error(
        "worker {} registered again with another session; this process's attempts are void: re-register",
        shown(worker_id)
    )]
    WorkerSessionMismatch { worker_id: String },
    #[error("stale attempt: token {token} of task {task_id} is not its current attempt ({current}); stop this attempt")]
    StaleToken {
        task_id: TaskId,
        token: u64,
        current: String,
    },
    /// A report (or hand-back) for a live attempt from a worker or session that does not
    /// hold it: a token is no credential. The session itself is never shown (it is the
    /// worker's secret), only which of the two did not match.
    #[error(
        "task {task_id}'s attempt (token {token}) is held by worker {}; a result from {} is refused: \
         only the worker running an attempt, in the session it registered, may report it \
         (report with your own worker id and session, for attempts assigned to you)",
        shown(holder),
        reporter_shown(reporter, *same_worker)
    )]
    NotAttemptHolder {
        task_id: TaskId,
        token: u64,
        holder: String,
        reporter: String,
        /// True when the worker id matched and only the session did not.
        same_worker: bool,
    },
    #[error("task {task_id} cannot be assigned now: {why}")]
    NotAssignable { task_id: TaskId, why: String },
    #[error("schedule {} not found", shown(.0))]
    ScheduleNotFound(String),
    #[error(
        "schedule {} already exists with another definition; use `schedule update`, or delete it first",
        shown(.0)
    )]
    ScheduleExists(String),
    #[error(
        "occurrence {scheduled_ms} of schedule {} is already decided (every occurrence up to {cursor_ms} was fired or skipped)",
        shown(schedule)
    )]
    AlreadyFired {
        schedule: String,
        scheduled_ms: u64,
        cursor_ms: u64,
    },
    #[error("schedule {} cannot fire now: {why}", shown(schedule))]
    ScheduleNotFireable { schedule: String, why: String },
    #[error("workflow {0} not found")]
    WorkflowNotFound(WorkflowId),
    #[error(
        "task {0} expired after its queue's retention (finished tasks are purged once their \
         queue's retention has passed; `raftsched queue list` shows it, `queue set Q --retention` changes it)"
    )]
    TaskExpired(TaskId),
    #[error(
        "workflow {0} expired after its queue's retention (a workflow is purged once all its tasks \
         finished and its first task's queue's retention has passed)"
    )]
    WorkflowExpired(WorkflowId),
}

/// Who sent a refused report, for [`StateError::NotAttemptHolder`].
fn reporter_shown(reporter: &str, same_worker: bool) -> String {
    if same_worker {
        format!("worker {} in another session", shown(reporter))
    } else {
        format!("worker {}", shown(reporter))
    }
}

/// A one-line summary for openraft's logs; never the payloads.
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::SubmitTasks { specs, .. } => write!(f, "SubmitTasks(n={})", specs.len()),
            Command::CancelTask { task_id, .. } => write!(f, "CancelTask({task_id})"),
            Command::RegisterWorker { registration, .. } => write!(f, "RegisterWorker({})", registration.id),
            Command::DrainWorker { worker_id, .. } => write!(f, "DrainWorker({worker_id})"),
            Command::ExpireWorker { worker_id, .. } => write!(f, "ExpireWorker({worker_id})"),
            Command::AssignTasks { assignments, .. } => write!(f, "AssignTasks(n={})", assignments.len()),
            Command::ReportResult { report, .. } => {
                write!(f, "ReportResult({}, token={})", report.task_id, report.token)
            }
            Command::TimeOutAttempt { task_id, token, .. } => write!(f, "TimeOutAttempt({task_id}, token={token})"),
            Command::SetQueuePolicy { queue, .. } => write!(f, "SetQueuePolicy({queue})"),
            Command::CreateSchedule { name, .. } => write!(f, "CreateSchedule({name})"),
            Command::UpdateSchedule { name, .. } => write!(f, "UpdateSchedule({name})"),
            Command::PauseSchedule { name, paused, .. } => write!(f, "PauseSchedule({name}, paused={paused})"),
            Command::DeleteSchedule { name, .. } => write!(f, "DeleteSchedule({name})"),
            Command::FireSchedule { name, occurrences, .. } => {
                write!(f, "FireSchedule({name}, n={})", occurrences.len())
            }
            Command::TriggerSchedule { name, .. } => write!(f, "TriggerSchedule({name})"),
            Command::SubmitWorkflow { workflow, .. } => {
                write!(f, "SubmitWorkflow({}, n={})", workflow.name, workflow.tasks.len())
            }
            Command::SubmitShards { pins, .. } => write!(f, "SubmitShards(n={})", pins.len()),
            Command::Batch { commands } => write!(f, "Batch(n={})", commands.len()),
            Command::PurgeTasks { units, .. } => write!(f, "PurgeTasks(n={})", units.len()),
            Command::SubmitAndAssign { specs, workers, .. } => write!(
                f,
                "SubmitAndAssign(n={}, assigned={})",
                specs.len(),
                workers.iter().flatten().count()
            ),
        }
    }
}
