//! The one place where domain errors become gRPC status codes.

use tonic::Code;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::app::AppError;
use raftsched_core::state::StateError;

use raftsched_api::ANSWERED_HEADER;
use raftsched_api::LEADER_HEADER;

pub fn app_error_to_status(error: AppError) -> Status {
    let mut status = app_error_status(error);
    status
        .metadata_mut()
        .insert(ANSWERED_HEADER, MetadataValue::from_static("1"));
    status
}

fn app_error_status(error: AppError) -> Status {
    let message = error.to_string();
    match error {
        AppError::Rejected(rejected) => Status::new(state_error_code(&rejected), message),
        AppError::NotLeader {
            leader_addr: Some(addr),
            ..
        } => {
            let mut status = Status::unavailable(message);
            if let Ok(value) = MetadataValue::try_from(addr.as_str()) {
                status.metadata_mut().insert(LEADER_HEADER, value);
            }
            status
        }
        AppError::NotLeader { leader_addr: None, .. }
        | AppError::OutcomeUnknown
        | AppError::NoQuorum(_)
        | AppError::Stopped(_) => Status::unavailable(message),
        AppError::Membership(_) => Status::failed_precondition(message),
        AppError::NodeNotFound { .. } => Status::not_found(message),
        AppError::QuotaExceeded(_) => Status::resource_exhausted(message),
        AppError::Internal(_) => Status::internal(message),
    }
}

pub fn state_error_code(error: &StateError) -> Code {
    match error {
        StateError::InvalidArgument { .. } => Code::InvalidArgument,
        StateError::TaskNotFound(_)
        | StateError::WorkerNotFound(_)
        | StateError::ScheduleNotFound(_)
        | StateError::WorkflowNotFound(_)
        | StateError::TaskExpired(_)
        | StateError::WorkflowExpired(_) => Code::NotFound,
        StateError::ScheduleExists(_) => Code::AlreadyExists,
        StateError::AlreadyFinished { .. }
        | StateError::RequestIdConflict { .. }
        | StateError::WorkerSessionMismatch { .. }
        | StateError::StaleToken { .. }
        | StateError::NotAssignable { .. }
        | StateError::AlreadyFired { .. }
        | StateError::ScheduleNotFireable { .. } => Code::FailedPrecondition,
        // Not FAILED_PRECONDITION like a stale token: that code says "this attempt is void,
        // stop it" (the worker runtime drops the result on it), while here the attempt is
        // live and the caller is not its holder. It is a refusal of the caller, the same
        // code the role policy gives a worker acting as another id.
        StateError::NotAttemptHolder { .. } => Code::PermissionDenied,
    }
}

/// A domain refusal found in the gRPC layer (before any call into the app).
pub fn rejected(error: StateError) -> Status {
    app_error_to_status(AppError::Rejected(error))
}

pub fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message.into())
}
