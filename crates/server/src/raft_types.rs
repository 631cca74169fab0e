//! The Raft types of `raftsched-store`, plus the Raft instance over its state machine.

pub use raftsched_store::raft_types::*;

/// A Raft node over the sled state machine.
pub type Raft = openraft::Raft<TypeConfig, raftsched_store::StateMachineStore>;
