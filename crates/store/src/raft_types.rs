//! The openraft type configuration: our command and response in the log, `u64` node ids,
//! and [`MemberNode`] carrying each member's client and peer addresses.
//!
//! Architecture invariant: members are identified by their stable `NodeId`; the address is
//! data in the membership, so a member can move without changing identity.

use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;

pub use crate::member_node::MemberNode;

openraft::declare_raft_types!(
    /// The raftsched Raft type configuration.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = MemberNode,
);

pub type NodeId = u64;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// A snapshot travels and is stored as one encoded [`raftsched_core::state::SchedulerState`].
pub type SnapshotData = Vec<u8>;

/// The log id of `index` in `term`, led by node 1: what the unit tests' entries carry.
#[cfg(test)]
pub(crate) fn test_log_id(term: u64, index: u64) -> LogId {
    use openraft::vote::RaftLeaderIdExt;
    LogId::new(
        <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(term, 1),
        index,
    )
}
