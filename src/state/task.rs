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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// A terminal task never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
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
    /// Why the task ended, for cancelled and failed tasks.
    pub reason: Option<String>,
}
