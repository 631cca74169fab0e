//! The commands carried by the Raft log and the responses apply returns.
//!
//! Architecture invariant: a command holds every input apply needs — the leader's clock
//! reading included — so that applying the same log gives the same state on every node.

use serde::Deserialize;
use serde::Serialize;

use crate::state::task::TaskId;
use crate::state::task::TaskSpec;

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
}

/// What apply answers for one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// For entries that carry no command (blank and membership entries).
    Empty,
    /// One outcome per submitted spec, in order.
    Submitted(Vec<Result<SubmitOutcome, StateError>>),
    Cancelled(Result<TaskId, StateError>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitOutcome {
    pub task_id: TaskId,
    /// False when the client request id matched an earlier submission.
    pub created: bool,
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
        "client request id {request_id:?} was already used for task {task_id} with a different spec; \
         use a new request id for a new task"
    )]
    RequestIdConflict { request_id: String, task_id: TaskId },
}

/// A one-line summary for openraft's logs; never the payloads.
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::SubmitTasks { now_ms, specs } => write!(f, "SubmitTasks(n={}, now_ms={now_ms})", specs.len()),
            Command::CancelTask { task_id, .. } => write!(f, "CancelTask({task_id})"),
        }
    }
}
