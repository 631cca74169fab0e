//! [`ErrorCode`]: why the cluster refused a call, in the client's own terms.

/// The status code of a refusal. It mirrors the gRPC codes one for one, so callers can
/// match on it without depending on tonic; `cluster/status.rs` is where it is read off a
/// gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}
