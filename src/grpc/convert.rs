//! Conversions between protobuf messages and domain types. Defaults for zero-valued proto
//! fields are filled in here, so the domain never sees an "unset" value.

use tonic::Status;

use crate::grpc::api;
use crate::grpc::status::invalid;
use crate::state::Payload;
use crate::state::Task;
use crate::state::TaskSpec;
use crate::state::TaskStatus;
use crate::state::limits;

pub fn spec_from_proto(spec: api::TaskSpec) -> Result<TaskSpec, Status> {
    let payload = match spec.payload {
        Some(api::task_spec::Payload::Command(command)) => Payload::Command {
            command_line: command.command_line,
            env: command.env.into_iter().collect(),
        },
        Some(api::task_spec::Payload::Opaque(opaque)) => Payload::Opaque {
            kind: opaque.kind,
            data: opaque.data,
        },
        None => return Err(invalid("invalid payload: set either command or opaque")),
    };
    Ok(TaskSpec {
        name: spec.name,
        queue: non_empty(spec.queue).unwrap_or_else(|| limits::DEFAULT_QUEUE.to_string()),
        priority: spec.priority,
        payload,
        labels: spec.labels.into_iter().collect(),
        max_attempts: if spec.max_attempts == 0 {
            limits::DEFAULT_MAX_ATTEMPTS
        } else {
            spec.max_attempts
        },
        attempt_timeout_ms: if spec.attempt_timeout_ms == 0 {
            limits::DEFAULT_ATTEMPT_TIMEOUT_MS
        } else {
            spec.attempt_timeout_ms
        },
        client_request_id: non_empty(spec.client_request_id),
    })
}

fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}

pub fn spec_to_proto(spec: &TaskSpec) -> api::TaskSpec {
    let payload = match &spec.payload {
        Payload::Command { command_line, env } => api::task_spec::Payload::Command(api::CommandPayload {
            command_line: command_line.clone(),
            env: env.clone().into_iter().collect(),
        }),
        Payload::Opaque { kind, data } => api::task_spec::Payload::Opaque(api::OpaquePayload {
            kind: kind.clone(),
            data: data.clone(),
        }),
    };
    api::TaskSpec {
        name: spec.name.clone(),
        queue: spec.queue.clone(),
        priority: spec.priority,
        payload: Some(payload),
        labels: spec.labels.clone().into_iter().collect(),
        max_attempts: spec.max_attempts,
        attempt_timeout_ms: spec.attempt_timeout_ms,
        client_request_id: spec.client_request_id.clone().unwrap_or_default(),
    }
}

pub fn task_to_proto(task: &Task) -> api::Task {
    api::Task {
        id: task.id,
        spec: Some(spec_to_proto(&task.spec)),
        state: status_to_proto(task.status) as i32,
        created_at_ms: task.created_at_ms,
        updated_at_ms: task.updated_at_ms,
        reason: task.reason.clone().unwrap_or_default(),
    }
}

pub fn status_to_proto(status: TaskStatus) -> api::TaskState {
    match status {
        TaskStatus::Pending => api::TaskState::Pending,
        TaskStatus::Running => api::TaskState::Running,
        TaskStatus::Succeeded => api::TaskState::Succeeded,
        TaskStatus::Failed => api::TaskState::Failed,
        TaskStatus::Cancelled => api::TaskState::Cancelled,
    }
}

/// None for "unspecified" (no filter).
pub fn status_from_proto(state: i32) -> Result<Option<TaskStatus>, Status> {
    match api::TaskState::try_from(state) {
        Ok(api::TaskState::Unspecified) => Ok(None),
        Ok(api::TaskState::Pending) => Ok(Some(TaskStatus::Pending)),
        Ok(api::TaskState::Running) => Ok(Some(TaskStatus::Running)),
        Ok(api::TaskState::Succeeded) => Ok(Some(TaskStatus::Succeeded)),
        Ok(api::TaskState::Failed) => Ok(Some(TaskStatus::Failed)),
        Ok(api::TaskState::Cancelled) => Ok(Some(TaskStatus::Cancelled)),
        Err(_) => Err(invalid(format!("invalid state filter: unknown value {state}"))),
    }
}
