//! A raftsched node: the application over Raft, the leader's dispatch loop, the gRPC
//! services and the network to its peers.
//!
//! - [`node`]: configuration and start-up; wires everything below together and shuts it
//!   down.
//! - [`app`]: the domain operations (submit, cancel, report, membership...) over Raft: the
//!   leader proposes commands, every node applies them through `raftsched-store`.
//! - [`dispatch`]: the leader's loop: expiries, timeouts, schedule firings and assignments,
//!   committed and then pushed to workers through the worker hub.
//! - [`recurrence`]: occurrence times of cron and interval schedules (needs a calendar, so
//!   it lives here and not in the pure core).
//! - [`grpc`]: the client API and Raft services; the only module that converts between
//!   protobuf types and the domain.
//! - [`network`]: the client side of Raft traffic to peers.
//!
//! Architecture invariant: the state changes only by committed commands (`raftsched-core`),
//! and nothing is told to a worker before the command that decided it is committed.

pub mod app;
pub mod dispatch;
pub mod grpc;
pub mod network;
pub mod node;
pub mod raft_types;
pub mod recurrence;
