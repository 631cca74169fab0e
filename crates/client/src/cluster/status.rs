//! Reading a gRPC status: the one place of the client where `tonic::Status` becomes a
//! [`ClientError`], and where its code and leader hint are looked at.
//!
//! Architecture invariant: outside `cluster/`, the client never sees `tonic::Status`.

use tonic::Code;
use tonic::Status;

use crate::cluster::ClientError;
use crate::cluster::ErrorCode;
use raftsched_api::LEADER_HEADER;

/// The cluster's refusal, as the client reports it.
pub(crate) fn rejected(status: Status) -> ClientError {
    ClientError::Rejected {
        code: error_code(status.code()),
        message: status.message().to_string(),
        leader: leader_hint(&status),
    }
}

fn error_code(code: Code) -> ErrorCode {
    match code {
        Code::Ok => ErrorCode::Ok,
        Code::Cancelled => ErrorCode::Cancelled,
        Code::Unknown => ErrorCode::Unknown,
        Code::InvalidArgument => ErrorCode::InvalidArgument,
        Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
        Code::NotFound => ErrorCode::NotFound,
        Code::AlreadyExists => ErrorCode::AlreadyExists,
        Code::PermissionDenied => ErrorCode::PermissionDenied,
        Code::ResourceExhausted => ErrorCode::ResourceExhausted,
        Code::FailedPrecondition => ErrorCode::FailedPrecondition,
        Code::Aborted => ErrorCode::Aborted,
        Code::OutOfRange => ErrorCode::OutOfRange,
        Code::Unimplemented => ErrorCode::Unimplemented,
        Code::Internal => ErrorCode::Internal,
        Code::Unavailable => ErrorCode::Unavailable,
        Code::DataLoss => ErrorCode::DataLoss,
        Code::Unauthenticated => ErrorCode::Unauthenticated,
    }
}

/// Worth trying again, on the same node later or on another one.
pub(crate) fn is_retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

/// The leader a follower names in its refusal, if any.
pub(crate) fn leader_hint(status: &Status) -> Option<String> {
    let value = status.metadata().get(LEADER_HEADER)?;
    value.to_str().ok().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_code_and_message() {
        let error = rejected(Status::invalid_argument("bad name"));
        assert_eq!(error.code(), Some(ErrorCode::InvalidArgument));
        assert_eq!(error.to_string(), "bad name");
        assert_eq!(rejected(Status::not_found("task 9")).code(), Some(ErrorCode::NotFound));
    }

    #[test]
    fn a_refusal_keeps_the_leader_a_follower_names() {
        let mut status = Status::unavailable("not the leader");
        status
            .metadata_mut()
            .insert(LEADER_HEADER, "127.0.0.1:50052".parse().unwrap());
        let ClientError::Rejected { code, leader, .. } = rejected(status) else {
            panic!("a status is a rejection");
        };
        assert_eq!(code, ErrorCode::Unavailable);
        assert_eq!(leader.as_deref(), Some("127.0.0.1:50052"));
        let ClientError::Rejected { leader, .. } = rejected(Status::internal("bug")) else {
            panic!("a status is a rejection");
        };
        assert_eq!(leader, None);
    }
}
