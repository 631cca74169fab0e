//! The task model: what a client submits ([`TaskSpec`]) and what the cluster records ([`Task`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

/// Task ids are allocated by apply, in log order, starting at 1.
pub type TaskId = u64;

/// What to run. The scheduler never interprets the payload; a worker does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// A command line run by a worker through `sh -c`, with extra environment variables.
    Command {
        command_line: String,
        env: BTreeMap<String, String>,
    },
    /// Opaque bytes handed to a worker handler registered for `kind`.
    Opaque { kind: String, data: Vec<u8> },
}

/// A task as submitted by a client. Validated by [`crate::state::limits::validate_spec`]
/// on the leader before proposing, and again inside apply.
///
/// Deserialised by hand: a value of wire format v0-v3 has no `trace_parent` (see
/// [`crate::state::wire::decoding_version`]) and decodes with none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskSpec {
    pub name: String,
    pub queue: String,
    /// Higher runs first.
    pub priority: i32,
    pub payload: Payload,
    pub labels: BTreeMap<String, String>,
    /// How many attempts the task may use before it fails for good (at least 1).
    pub max_attempts: u32,
    /// How long one attempt may run before it is killed and counted as failed.
    pub attempt_timeout_ms: u64,
    /// A client-chosen key that makes submission idempotent: a second submission with the
    /// same key returns the first task instead of creating another.
    pub client_request_id: Option<String>,
    /// Labels a worker must carry to take this task.
    pub constraints: BTreeMap<String, String>,
    /// What one attempt claims on its worker.
    pub resources: Resources,
    /// Key for consistent-hash placement; the name when None.
    pub affinity_key: Option<String>,
    /// First retry delay; doubles per failed attempt, capped at 100x.
    pub retry_backoff_ms: u64,
    /// Leader time before which the task is not dispatched (0: at once).
    pub not_before_ms: u64,
    /// How long after acceptance the task becomes ready. Kept as a duration, not a time, so
    /// a retried submission stays identical to the first.
    pub delay_ms: u64,
    /// The W3C trace context (`traceparent`) of the submission, carried to the worker, which
    /// hands it to the task as `TRACEPARENT` (wire format v4). Not part of the task's
    /// identity: a retried submission with another trace is the same submission
    /// ([`TaskSpec::same_submission`]).
    pub trace_parent: Option<String>,
}

/// The layout of wire formats v0-v3, before a spec carried its trace context.
#[derive(Deserialize)]
struct TaskSpecV3 {
    name: String,
    queue: String,
    priority: i32,
    payload: Payload,
    labels: BTreeMap<String, String>,
    max_attempts: u32,
    attempt_timeout_ms: u64,
    client_request_id: Option<String>,
    constraints: BTreeMap<String, String>,
    resources: Resources,
    affinity_key: Option<String>,
    retry_backoff_ms: u64,
    not_before_ms: u64,
    delay_ms: u64,
}

impl<'de> Deserialize<'de> for TaskSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TaskSpec, D::Error> {
        if matches!(crate::state::wire::decoding_version(), Some(0..=3)) {
            return Ok(TaskSpecV3::deserialize(deserializer)?.untraced());
        }
        // Postcard writes a struct's fields one after the other, like a tuple: the v4 layout
        // is the v3 one followed by the trace context.
        let (v3, trace_parent) = <(TaskSpecV3, Option<String>)>::deserialize(deserializer)?;
        Ok(TaskSpec {
            trace_parent,
            ..v3.untraced()
        })
    }
}

impl TaskSpecV3 {
    fn untraced(self) -> TaskSpec {
        TaskSpec {
            name: self.name,
            queue: self.queue,
            priority: self.priority,
            payload: self.payload,
            labels: self.labels,
            max_attempts: self.max_attempts,
            attempt_timeout_ms: self.attempt_timeout_ms,
            client_request_id: self.client_request_id,
            constraints: self.constraints,
            resources: self.resources,
            affinity_key: self.affinity_key,
            retry_backoff_ms: self.retry_backoff_ms,
            not_before_ms: self.not_before_ms,
            delay_ms: self.delay_ms,
            trace_parent: None,
        }
    }
}

impl TaskSpec {
    /// The namespace the task belongs to: its queue's.
    pub fn namespace(&self) -> &str {
        crate::state::namespace::namespace_of(&self.queue)
    }

    /// The key consistent-hash placement uses.
    pub fn affinity(&self) -> &str {
        self.affinity_key.as_deref().unwrap_or(&self.name)
    }

    /// True when `other` asks for the same task: every field but the trace context, which
    /// differs between a submission and its retry by a traced client.
    pub fn same_submission(&self, other: &TaskSpec) -> bool {
        let untraced = |spec: &TaskSpec| TaskSpec {
            trace_parent: None,
            ..spec.clone()
        };
        self == other || untraced(self) == untraced(other)
    }
}

/// CPU in thousandths of a core and memory in MiB. Zero means "none asked" for a task and
/// "none declared" for a worker (a worker that declares none fits only tasks that ask none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millis: u32,
    pub memory_mb: u32,
}

impl Resources {
    pub fn covers(&self, need: &Resources) -> bool {
        self.cpu_millis >= need.cpu_millis && self.memory_mb >= need.memory_mb
    }

    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
        }
    }

    pub fn saturating_add(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_mb: self.memory_mb.saturating_add(other.memory_mb),
        }
    }

    /// One number to compare how much is left: a core counts like a GiB.
    pub fn weight(&self) -> u64 {
        u64::from(self.cpu_millis) + u64::from(self.memory_mb) * 1000 / 1024
    }
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cpu={}m memory={}MiB", self.cpu_millis, self.memory_mb)
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Waits for other tasks: a workflow task for its parents to succeed, a broadcast or
    /// sharded parent for its shards to finish. Never dispatched.
    Waiting,
    /// Will never run: a parent in its workflow failed, was cancelled or was skipped.
    Skipped,
}

impl TaskStatus {
    /// Not finished: pending, running or waiting (what the live-tasks quota counts).
    pub fn is_live(self) -> bool {
        matches!(self, TaskStatus::Pending | TaskStatus::Running | TaskStatus::Waiting)
    }

    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::Waiting,
        TaskStatus::Skipped,
    ];

    /// A terminal task never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Skipped
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Waiting => "waiting",
            TaskStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task as recorded in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub spec: TaskSpec,
    pub status: TaskStatus,
    /// Leader time at which the submission was proposed.
    pub created_at_ms: u64,
    /// Leader time of the last change of status.
    pub updated_at_ms: u64,
    /// Why the task ended (cancelled, failed) or was last put back (a retry).
    pub reason: Option<String>,
    /// Every attempt so far, oldest first. Only the last keeps its output tail.
    pub attempts: Vec<Attempt>,
    /// A pending task is not dispatched before this leader time.
    pub ready_at_ms: u64,
    /// Where the task came from and what it waits for; empty for a plain submission.
    pub links: Links,
}

/// What created a task, other than a plain submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOrigin {
    /// An occurrence of a schedule: (schedule, scheduled time) is its firing key, and apply
    /// fires each key at most once.
    Schedule { schedule: String, scheduled_ms: u64 },
    /// A `schedule trigger`: the schedule's n-th manual run.
    Trigger { schedule: String, number: u64 },
    /// A task of a workflow, under its key there.
    Workflow { workflow_id: u64, key: String },
    /// One shard of a broadcast or sharded run.
    Shard { parent: TaskId, index: u32, total: u32 },
}

impl TaskOrigin {
    /// A stable text form: `schedule/<name>/<scheduled_ms>`, `schedule/<name>/manual/<n>`,
    /// `workflow/<id>/<key>`, `shard/<parent>/<index>/<total>`.
    pub fn key(&self) -> String {
        match self {
            TaskOrigin::Schedule { schedule, scheduled_ms } => format!("schedule/{schedule}/{scheduled_ms}"),
            TaskOrigin::Trigger { schedule, number } => format!("schedule/{schedule}/manual/{number}"),
            TaskOrigin::Workflow { workflow_id, key } => format!("workflow/{workflow_id}/{key}"),
            TaskOrigin::Shard { parent, index, total } => format!("shard/{parent}/{index}/{total}"),
        }
    }
}

/// A task's relations to other tasks. Primary data: both directions are stored, so apply
/// never searches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLinks {
    pub origin: Option<TaskOrigin>,
    /// Workflow parents: the task becomes pending when all of them succeeded.
    pub parents: Vec<TaskId>,
    /// Workflow children, which wait for this task.
    pub children: Vec<TaskId>,
    /// Of a broadcast or sharded parent: its shards, by index.
    pub shards: Vec<TaskId>,
}

/// A task's [`TaskLinks`], boxed only when there are any. Most tasks are plain submissions,
/// and empty links inline cost 112 bytes per task; this costs 8. Reads see a `TaskLinks`
/// (an empty one when there are none) through `Deref`. Serde and `Debug` go through that
/// `TaskLinks` too, so snapshots and the log encode exactly as a plain `TaskLinks` field.
/// Links never change once a task exists, so there is no mutable access.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Links(
    /// None when the links are empty, never a box of empty links: equality stays that of
    /// the links.
    Option<Box<TaskLinks>>,
);

static NO_LINKS: TaskLinks = TaskLinks {
    origin: None,
    parents: Vec::new(),
    children: Vec::new(),
    shards: Vec::new(),
};

impl From<TaskLinks> for Links {
    fn from(links: TaskLinks) -> Links {
        if links == NO_LINKS {
            Links(None)
        } else {
            Links(Some(Box::new(links)))
        }
    }
}

impl std::ops::Deref for Links {
    type Target = TaskLinks;

    fn deref(&self) -> &TaskLinks {
        self.0.as_deref().unwrap_or(&NO_LINKS)
    }
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        TaskLinks::fmt(self, f)
    }
}

impl Serialize for Links {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TaskLinks::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Links {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Links, D::Error> {
        TaskLinks::deserialize(deserializer).map(Links::from)
    }
}

impl Task {
    /// The attempt running now, if the task runs.
    pub fn running_attempt(&self) -> Option<&Attempt> {
        self.attempts
            .last()
            .filter(|a| self.status == TaskStatus::Running && a.outcome == AttemptOutcome::Running)
    }

    /// Attempts that count against `max_attempts`: all but those a draining worker handed
    /// back unfinished.
    pub fn attempts_used(&self) -> u32 {
        self.attempts
            .iter()
            .filter(|a| a.outcome != AttemptOutcome::HandedBack)
            .count() as u32
    }
}

/// One try at running a task, on one worker, under one fencing token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// Unique across the cluster and strictly increasing: a report must carry the token of the
    /// task's current attempt, so a late report of a void attempt can never be recorded.
    pub token: u64,
    pub worker_id: String,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub stdout_tail: String,
    pub stderr_tail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AttemptOutcome {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    /// The worker stopped heartbeating; the attempt is void.
    LeaseExpired,
    Cancelled,
    /// A draining worker gave the task back unfinished; does not count as an attempt.
    HandedBack,
    /// The worker registered again with a new session (its process restarted); the attempt
    /// is void. Last, so the postcard encoding of every earlier variant (their index) and
    /// the pinned snapshot bytes stay as they were.
    WorkerRestarted,
}

impl AttemptOutcome {
    /// Outcomes only apply records (running, and the two ways a worker's attempts are voided):
    /// no worker may report them.
    pub fn is_recorded_by_apply_only(self) -> bool {
        matches!(
            self,
            AttemptOutcome::Running | AttemptOutcome::LeaseExpired | AttemptOutcome::WorkerRestarted
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Running => "running",
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::TimedOut => "timed-out",
            AttemptOutcome::LeaseExpired => "lease-expired",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::HandedBack => "handed-back",
            AttemptOutcome::WorkerRestarted => "worker-restarted",
        }
    }
}
