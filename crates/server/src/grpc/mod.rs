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
pub use raftsched_api::ANSWERED_HEADER;
pub use raftsched_api::LEADER_HEADER;
pub use scheduler_service::SchedulerService;
pub use wire_errors::WireErrors;
pub use wire_errors::with_wire_errors;
pub use workers_service::WorkersService;

pub use raftsched_api::FILE_DESCRIPTOR_SET;
pub use raftsched_api::MAX_API_MESSAGE_BYTES;
pub use raftsched_api::raft as raft_proto;
pub use raftsched_api::v1 as api;
