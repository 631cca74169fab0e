//! The gRPC layer: the client API ([`SchedulerService`], [`WorkersService`]) plus server
//! reflection on the client port ([`serve`]), and node-to-node Raft traffic
//! ([`RaftGrpcService`]) on the peer port ([`serve_peer`]), each with the port's limits
//! ([`transport`]).
//!
//! Architecture invariant: with `network` (the client side of Raft RPCs), this is the only
//! module of the server that sees protobuf types or `tonic::Status`. It converts requests
//! into domain calls on [`crate::app::App`] and maps domain errors to status codes in one
//! place (`status.rs`). It may use `app`, `hub`, `network` (its constants), `quota` and `raft_types`,
//! never `node`: the node calls [`serve`], not the reverse.

pub mod admission;
mod alarm_poll;
mod authz;
mod backup_stream;
mod budget;
mod convert;
pub mod gateway;
mod health;
mod identity;
mod peer_status;
mod raft_service;
mod redact;
mod scheduler_service;
mod server;
mod status;
mod tls_incoming;
mod trace_context;
pub mod transport;
mod wire_errors;
mod workers_service;

pub use alarm_poll::spawn_alarm_poll;
// The certificate identity contract, for the HTTP port's credential checks.
pub use budget::MAX_RESPONSE_ITEMS_BYTES;
pub(crate) use identity::Identity;
pub(crate) use identity::Namespaces;
pub(crate) use identity::Role;
pub(crate) use identity::identity_from_der;
pub use raft_service::RaftGrpcService;
pub use raftsched_api::ANSWERED_HEADER;
pub use raftsched_api::LEADER_HEADER;
pub use scheduler_service::SchedulerService;
pub use server::ServeError;
pub use server::serve;
pub use server::serve_peer;
pub use transport::PortLimits;
pub use wire_errors::WireErrors;
pub use wire_errors::with_wire_errors;
pub use workers_service::WorkersService;

pub use raftsched_api::CLIENT_API_DESCRIPTOR_SET;
pub use raftsched_api::FILE_DESCRIPTOR_SET;
pub use raftsched_api::MAX_API_MESSAGE_BYTES;
pub use raftsched_api::raft as raft_proto;
pub use raftsched_api::v1 as api;
