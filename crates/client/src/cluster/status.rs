//! Reading a gRPC status: the one place of the client where `tonic::Status` becomes a
//! [`ClientError`], and where its code and leader hint are looked at.
//!
//! Architecture invariant: outside `cluster/`, the client never sees `tonic::Status`.

use tonic::Code;
use tonic::Status;

use crate::cluster::ClientError;
use crate::cluster::ErrorCode;
use raftsched_api::ANSWERED_HEADER;
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
    ) || broke_in_transit(status)
}

/// The connection failed under the call (a node stopping resets its streams), which tonic
/// reports as INTERNAL "h2 protocol error": no node answered, so the call may or may not have
/// reached one — the same as UNAVAILABLE, and retried like it (writes carry request ids).
/// A status a node sent carries the `raftsched-answered` header and is never one of these.
fn broke_in_transit(status: &Status) -> bool {
    if status.metadata().get(ANSWERED_HEADER).is_some() {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.downcast_ref::<h2::Error>().is_some() {
            return true;
        }
        source = error.source();
    }
    false
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

    #[test]
    fn a_stream_broken_in_transit_is_retried_but_a_node_s_internal_error_is_not() {
        let broken = Status::from_error(Box::new(h2::Error::from(h2::Reason::PROTOCOL_ERROR)));
        assert_eq!(broken.code(), Code::Internal, "{broken:?}");
        assert!(is_retryable(&broken));
        let mut answered = Status::internal("a bug on the node");
        answered.metadata_mut().insert(ANSWERED_HEADER, "1".parse().unwrap());
        assert!(!is_retryable(&answered));
        assert!(!is_retryable(&Status::internal("decode error")));
    }
}
