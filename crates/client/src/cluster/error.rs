//! [`ClientError`]: how a call to the cluster fails.
//!
//! Architecture invariant: no tonic type appears here; a refusal carries our own
//! [`ErrorCode`] and the cluster's message (the conversion is in `status.rs`).

use std::time::Duration;

use crate::cluster::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no cluster address given: pass --cluster host:port,... or set RAFTSCHED_CLUSTER")]
    NoEndpoints,
    #[error("bad cluster address: {0}")]
    BadAddress(String),
    #[error(
        "TLS credentials: {0} (they come from RAFTSCHED_TLS_DIR or --tls-dir, identity RAFTSCHED_TLS_IDENTITY or \
         --tls-identity)"
    )]
    Tls(#[from] crate::tls::TlsError),
    /// The cluster answered, and the answer is an error (invalid input, not found, ...).
    /// `leader` is the leader a follower named in its refusal, if it named one.
    #[error("{message}")]
    Rejected {
        code: ErrorCode,
        message: String,
        leader: Option<String>,
    },
    #[error(
        "connection refused by every node ({addresses}): is the cluster running (scripts/cluster.sh start), and \
         are --cluster or RAFTSCHED_CLUSTER its client ports?"
    )]
    Refused { addresses: String },
    #[error("no node could serve the request within {deadline:?}; last error: {last_error}")]
    Unavailable { deadline: Duration, last_error: String },
}

impl ClientError {
    /// The code of a rejection, if the cluster answered.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// An answer without the part it must carry (a node's bug, reported as INTERNAL).
    pub(crate) fn empty_response(what: &str) -> ClientError {
        ClientError::Rejected {
            code: ErrorCode::Internal,
            message: format!("empty {what} in response"),
            leader: None,
        }
    }
}
