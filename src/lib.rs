//! raftsched: a highly available distributed task scheduler replicated with Raft.
pub mod app;
pub mod chaos;
pub mod client;
pub mod dispatch;
pub mod grpc;
pub mod network;
pub mod node;
pub mod raft_types;
pub mod scheduling;
pub mod state;
pub mod store;
pub mod worker;
