//! A raftsched node: the application over Raft, the leader's dispatch loop, the gRPC
//! services and the network to its peers.
//!
//! - [`node`]: configuration and start-up; wires everything below together and shuts it
//!   down.
//! - [`app`]: the domain operations (submit, cancel, report, membership...) over Raft: the
//!   leader proposes commands, every node applies them through `raftsched-store`.
//! - [`decide`]: the leader's decisions as pure functions of the state, the workers' liveness,
//!   the time and a seed (assignments, expiries, timeouts, firings, purges, a submission's
//!   placement); used by `app` and `dispatch`, depends on neither.
//! - [`dispatch`]: the leader's loop: expiries, timeouts, schedule firings and assignments,
//!   committed and then pushed to workers through the worker hub.
//! - [`hub`]: the leader's live, unreplicated view of its workers (open streams, when each
//!   was last heard from); shared by the app, the dispatcher and the gRPC services.
//! - [`recurrence`]: occurrence times of cron and interval schedules (needs a calendar, so
//!   it lives here and not in the pure core).
//! - [`grpc`]: the client API and Raft services and the server that carries them; with
//!   [`network`], the only modules that see protobuf types or `tonic::Status`.
//! - [`network`]: the client side of Raft traffic to peers (gRPC by nature).
//! - [`quota`]: the caps on live tasks and state bytes and the high-water alarms the leader
//!   admits new work against; used by `app`, `dispatch`, `grpc` and `node`, depends on none.
//! - [`observe`]: the node's metrics (Prometheus, through the `metrics` facade) and its
//!   readiness rule; `app`, `dispatch` and `grpc` record into it.
//! - [`http`]: the HTTP port: `/healthz`, `/readyz` and `/metrics`, read-only.
//!
//! Architecture invariant: the state changes only by committed commands (`raftsched-core`),
//! and nothing is told to a worker before the command that decided it is committed.
//!
//! Architecture invariant: the modules form no cycle. `grpc` and `node` are on top (node
//! starts grpc's and http's servers, never the reverse); `network` depends on neither; `app`,
//! `dispatch`, `hub` and `observe` see domain types only, never protobuf. `tests/architecture.rs` checks it.

pub mod app;
pub mod decide;
pub mod dispatch;
pub mod grpc;
pub mod http;
pub mod hub;
pub mod network;
pub mod node;
pub mod observe;
pub mod quota;
pub mod raft_types;
pub mod recurrence;
