//! [`RemovedPeers`]: the node ids this node has seen leave the membership, so that the peer
//! port refuses a removed node's credential (etcd refuses a removed member's streams the same
//! way). A node credential stays valid after `cluster remove-node` (there is no revocation),
//! and without this a removed node could still send a Vote or an AppendEntries with a higher
//! term in its own name.
//!
//! Derived by each node from the membership it applies (entries and installed snapshots):
//! every id in the old membership and not in the new one is added, every id in the new one
//! is dropped (a re-added id is a peer again). It is node-local knowledge, not replicated
//! state: a node that has not yet applied a removal still takes the removed node's calls, as
//! Raft would. Kept in the sled tree `removed_peers` so a restart remembers it (a removal
//! applied before the last snapshot is not replayed).

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;
use std::sync::RwLock;

use crate::raft_types::NodeId;
use crate::raft_types::StoredMembership;

/// At most this many removed ids are remembered; past it the smallest are forgotten. A
/// cluster removes a few nodes a year; 1024 removals of distinct ids is not a real one.
pub const MAX_REMOVED_PEERS: usize = 1024;

const TREE: &str = "removed_peers";

/// The removed ids, shared by the state machine (which updates them) and the peer port
/// (which reads them).
#[derive(Clone)]
pub struct RemovedPeers {
    ids: Arc<RwLock<BTreeSet<NodeId>>>,
    tree: sled::Tree,
}

impl std::fmt::Debug for RemovedPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RemovedPeers")
            .field(&self.ids.read().expect("lock"))
            .finish()
    }
}

impl RemovedPeers {
    pub(crate) fn open(db: &sled::Db) -> io::Result<RemovedPeers> {
        let tree = db.open_tree(TREE).map_err(io::Error::other)?;
        let mut ids = BTreeSet::new();
        for key in tree.iter().keys() {
            let key = key.map_err(io::Error::other)?;
            let bytes: [u8; 8] = key.as_ref().try_into().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("tree {TREE}: a key of {} bytes", key.len()),
                )
            })?;
            ids.insert(NodeId::from_be_bytes(bytes));
        }
        Ok(RemovedPeers {
            ids: Arc::new(RwLock::new(ids)),
            tree,
        })
    }

    /// Whether `id` left the membership this node applies (and was not added back).
    pub fn contains(&self, id: NodeId) -> bool {
        self.ids.read().expect("removed peers lock poisoned").contains(&id)
    }

    /// The membership went from `before` to `after`. The set in memory always changes; a
    /// failed write to the tree is returned (the caller logs it: the next restart would
    /// forget this removal, which only loosens the check).
    pub(crate) fn update(&self, before: &StoredMembership, after: &StoredMembership) -> io::Result<()> {
        let members_after: BTreeSet<NodeId> = after.membership().nodes().map(|(id, _)| *id).collect();
        let left: Vec<NodeId> = before
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| !members_after.contains(id))
            .collect();
        let mut ids = self.ids.write().expect("removed peers lock poisoned");
        let back: Vec<NodeId> = members_after.iter().copied().filter(|id| ids.contains(id)).collect();
        if left.is_empty() && back.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for id in back {
            ids.remove(&id);
            batch.remove(&id.to_be_bytes());
        }
        for id in left {
            ids.insert(id);
            batch.insert(&id.to_be_bytes(), &[]);
        }
        while ids.len() > MAX_REMOVED_PEERS {
            let smallest = ids.pop_first().expect("not empty");
            batch.remove(&smallest.to_be_bytes());
        }
        self.tree.apply_batch(batch).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member_node::MemberNode;
    use crate::raft_types::LogId;
    use openraft::vote::RaftLeaderIdExt;

    fn membership(ids: &[NodeId]) -> StoredMembership {
        let nodes: std::collections::BTreeMap<NodeId, MemberNode> =
            ids.iter().map(|id| (*id, MemberNode::default())).collect();
        let voters: BTreeSet<NodeId> = ids.iter().copied().collect();
        let membership = openraft::Membership::new(vec![voters], nodes).expect("a membership");
        let leader = <crate::raft_types::TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(1, 1);
        StoredMembership::new(Some(LogId::new(leader, 1)), membership)
    }

    #[test]
    fn a_removed_id_is_remembered_across_a_reopen_until_it_is_added_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let removed = RemovedPeers::open(&db).unwrap();
        removed
            .update(&membership(&[1, 2, 3]), &membership(&[1, 2, 4]))
            .unwrap();
        assert!(removed.contains(3) && !removed.contains(4) && !removed.contains(1));
        drop(removed);
        let reopened = RemovedPeers::open(&db).unwrap();
        assert!(reopened.contains(3), "{reopened:?}");
        reopened
            .update(&membership(&[1, 2, 4]), &membership(&[1, 2, 3, 4]))
            .unwrap();
        assert!(!reopened.contains(3));
        assert!(!RemovedPeers::open(&db).unwrap().contains(3));
    }

    #[test]
    fn at_most_the_limit_of_ids_is_kept_forgetting_the_smallest() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let removed = RemovedPeers::open(&db).unwrap();
        let all: Vec<NodeId> = (1..=MAX_REMOVED_PEERS as u64 + 2).collect();
        removed.update(&membership(&all), &membership(&[all[0]])).unwrap();
        assert!(removed.contains(all[all.len() - 1]));
        assert!(!removed.contains(2), "the smallest removed id was forgotten first");
        assert_eq!(
            RemovedPeers::open(&db).unwrap().ids.read().unwrap().len(),
            MAX_REMOVED_PEERS
        );
    }
}
