//! The gRPC layer: the client API ([`SchedulerService`]) and node-to-node Raft traffic
//! ([`RaftGrpcService`]) on one port, plus server reflection.
//!
//! Architecture invariant: this is the only module that sees protobuf types or
//! `tonic::Status`. It converts requests into domain calls on [`crate::app::App`] and maps
//! domain errors to status codes in one place (`status.rs`).

pub mod admission;
mod budget;
mod convert;
mod raft_service;
mod scheduler_service;
mod status;
mod wire_errors;
mod workers_service;

pub use budget::MAX_RESPONSE_ITEMS_BYTES;
pub use raft_service::RaftGrpcService;
pub use scheduler_service::SchedulerService;
pub use status::ANSWERED_HEADER;
pub use status::LEADER_HEADER;
pub use wire_errors::WireErrors;
pub use wire_errors::with_wire_errors;
pub use workers_service::WorkersService;

/// Generated code of proto/raft.proto (node to node).
pub mod raft_proto {
    tonic::include_proto!("raftsched.raft.v1");
}

/// Generated code of proto/raftsched.proto (the client API).
pub mod api {
    tonic::include_proto!("raftsched.v1");
}

/// For gRPC server reflection, so grpcurl can list and call the API.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("raftsched_descriptor");

/// Largest client request or response: big enough for a batch of 1000 small tasks or one
/// task with the largest payload, small enough that no client can make a node buffer much.
pub const MAX_API_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
