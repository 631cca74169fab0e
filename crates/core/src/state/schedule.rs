//! Recurring schedules and workflows as the replicated state records them.
//!
//! Architecture invariant: apply never evaluates a cron expression or a time zone. The
//! leader computes occurrence times (`raftsched_server::recurrence`, pure, given the time)
//! and proposes each decision — fire or skip — inside a `FireSchedule` command keyed by
//! (schedule, scheduled time). Apply keeps, per schedule, the latest scheduled time decided
//! and refuses any decision at or before it, so no occurrence is ever fired twice.

use serde::Deserialize;
use serde::Serialize;

use crate::state::task::TaskId;
use crate::state::task::TaskSpec;

/// When a schedule's occurrences fall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recurrence {
    /// `sec min hour day-of-month month day-of-week`, evaluated in an IANA time zone.
    Cron { expression: String, time_zone: String },
    /// Every `interval_ms` from the schedule's anchor (its start bound, or its creation).
    Every { interval_ms: u64 },
}

/// What happens to occurrences whose time passed while no leader could fire them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MisfirePolicy {
    /// Record them as skipped.
    Skip,
    /// Fire the latest missed occurrence now; record the others as skipped.
    FireOnce,
    /// Fire every missed occurrence not older than the window; record older ones as skipped.
    CatchUp { window_ms: u64 },
}

impl MisfirePolicy {
    pub fn describe(&self) -> String {
        match self {
            MisfirePolicy::Skip => "skip".into(),
            MisfirePolicy::FireOnce => "fire-once".into(),
            MisfirePolicy::CatchUp { window_ms } => format!("catch-up:{window_ms}"),
        }
    }
}

/// What happens to an occurrence while the schedule's previous run has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverlapPolicy {
    /// Start it anyway.
    Allow,
    /// Skip it (recorded, with the reason).
    Forbid,
    /// Cancel the previous run, then start it.
    Replace,
}

impl OverlapPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            OverlapPolicy::Allow => "allow",
            OverlapPolicy::Forbid => "forbid",
            OverlapPolicy::Replace => "replace",
        }
    }

    pub fn parse(text: &str) -> Option<OverlapPolicy> {
        [OverlapPolicy::Allow, OverlapPolicy::Forbid, OverlapPolicy::Replace]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// A schedule as a client defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub recurrence: Recurrence,
    /// The task each run creates.
    pub template: TaskSpec,
    /// No occurrence before this leader time (0: none).
    pub start_ms: u64,
    /// No occurrence after this leader time (0: none).
    pub end_ms: u64,
    pub misfire: MisfirePolicy,
    pub overlap: OverlapPolicy,
}

/// One decided occurrence (or manual run) of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRun {
    /// The occurrence's scheduled time; for a manual run, the time it was triggered.
    pub scheduled_ms: u64,
    /// Leader time of the decision.
    pub decided_at_ms: u64,
    pub outcome: RunOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunOutcome {
    /// A task was created for the occurrence; `replaced` is the previous run it cancelled.
    Fired { task_id: TaskId, replaced: Option<TaskId> },
    /// A manual run (`schedule trigger`).
    Triggered { task_id: TaskId },
    /// `count` occurrences from `first_ms` to `scheduled_ms` did not run, for `reason`.
    Skipped { first_ms: u64, count: u64, reason: String },
}

/// A schedule in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    pub spec: ScheduleSpec,
    pub paused: bool,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Bumped by every update, pause and resume; a firing planned on another revision is
    /// refused, so a firing never follows a definition it was not computed from.
    pub revision: u64,
    /// Every occurrence at or before this time is decided (fired or skipped): the firing key
    /// (schedule, scheduled time) of each of them is spent.
    pub cursor_ms: u64,
    /// Where a fixed interval counts from.
    pub anchor_ms: u64,
    /// The task of the latest run, for the overlap policy.
    pub last_task: Option<TaskId>,
    /// Manual runs so far.
    pub manual_runs: u64,
    pub fired_count: u64,
    pub skipped_count: u64,
    /// The latest runs, oldest first, at most [`crate::state::limits::MAX_SCHEDULE_RUNS`].
    pub runs: Vec<ScheduleRun>,
}

/// The leader's decision for one occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    pub scheduled_ms: u64,
    pub action: OccurrenceAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OccurrenceAction {
    /// Run it (subject to the overlap policy, which apply decides).
    Fire,
    /// Record `count` occurrences from `first_ms` to the scheduled time as skipped.
    Skip { first_ms: u64, count: u64, reason: String },
}

/// A workflow: tasks with parent → child edges, submitted in one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowSpec {
    pub name: String,
    /// Makes the submission idempotent, like a task's request id.
    pub request_id: Option<String>,
    pub tasks: Vec<WorkflowTaskSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowTaskSpec {
    /// Unique within the workflow; edges name tasks by key.
    pub key: String,
    pub spec: TaskSpec,
    /// Keys of the parents: this task runs only after every one of them succeeded.
    pub after: Vec<String>,
}

pub type WorkflowId = u64;

/// A workflow in the replicated state. Its tasks hold the edges; its state is derived from
/// theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    pub id: WorkflowId,
    pub name: String,
    pub request_id: Option<String>,
    pub created_at_ms: u64,
    /// (key, task), in submission order.
    pub tasks: Vec<(String, TaskId)>,
}
