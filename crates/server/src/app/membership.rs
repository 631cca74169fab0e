//! Membership and leadership changes: transfer leadership, add and remove members.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::Instant;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;

use super::App;
use super::AppError;
use crate::raft_types::MemberNode;
use crate::raft_types::NodeId;

/// How long a leadership transfer may take before the caller is told it did not happen.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);
/// A follower that acknowledged a heartbeat this recently counts as alive.
const LIVE_FOLLOWER_ACK: Duration = Duration::from_millis(300);

impl App {
    /// Hands leadership to `to`, or to the most up-to-date other voter, and waits until that
    /// node leads. Returns the new leader.
    pub async fn transfer_leader(&self, to: Option<NodeId>) -> Result<NodeId, AppError> {
        self.transfer_leader_within(to, TRANSFER_TIMEOUT).await
    }

    /// [`Self::transfer_leader`], giving up after `timeout`.
    pub async fn transfer_leader_within(&self, to: Option<NodeId>, timeout: Duration) -> Result<NodeId, AppError> {
        self.leader_only()?;
        let metrics = self.metrics();
        let me = metrics.id;
        let voters: BTreeSet<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        let target = match to {
            Some(id) if id == me => return Ok(me),
            Some(id) if voters.contains(&id) => id,
            Some(id) => return Err(AppError::Membership(format!("node {id} is not a voter"))),
            None => {
                let matched = |id: &NodeId| {
                    let replication = metrics.replication.as_ref();
                    replication
                        .and_then(|r| r.get(id))
                        .cloned()
                        .flatten()
                        .map(|log_id| log_id.index)
                };
                // Only a follower that answered heartbeats lately can take over quickly.
                let alive = |id: &NodeId| {
                    let heartbeat = metrics.heartbeat.as_ref().and_then(|h| h.get(id)).cloned().flatten();
                    heartbeat.is_some_and(|acked| acked.elapsed() < LIVE_FOLLOWER_ACK)
                };
                voters
                    .iter()
                    .filter(|id| **id != me && alive(id))
                    .max_by_key(|id| (matched(id), std::cmp::Reverse(**id)))
                    .copied()
                    .ok_or_else(|| AppError::Membership("no live follower to hand leadership to".into()))?
            }
        };
        self.raft()
            .trigger()
            .transfer_leader(target)
            .await
            .map_err(|e| AppError::Stopped(e.to_string()))?;
        let handed_over = tokio::time::timeout(timeout, async {
            let mut metrics = self.raft().metrics();
            loop {
                let leader = metrics.borrow_watched().current_leader;
                if leader == Some(target) {
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        match handed_over {
            Ok(()) if self.metrics().current_leader == Some(target) => Ok(target),
            _ => Err(AppError::NoQuorum(format!(
                "node {target} did not take over within {timeout:?}"
            ))),
        }
    }

    /// Adds `node_id` with client port `address` and peer port `peer_address` (`None`: the
    /// client port + `PEER_PORT_OFFSET`): as a learner until it has caught up, then as a
    /// voter.
    pub async fn add_node(
        &self,
        node_id: NodeId,
        address: String,
        peer_address: Option<String>,
    ) -> Result<(), AppError> {
        self.leader_only()?;
        if node_id == 0 {
            return Err(AppError::Membership("node ids start at 1".into()));
        }
        raftsched_core::state::limits::validate_node_address(&address)?;
        crate::network::peer_endpoint(&address).map_err(AppError::Membership)?;
        let peer_address = match peer_address {
            Some(peer) => peer,
            None => raftsched_store::member_node::default_peer_addr(&address).ok_or_else(|| {
                AppError::Membership(format!(
                    "address {address}: no room for the default peer port (client port + {}); give \
                     peer_address",
                    raftsched_store::member_node::PEER_PORT_OFFSET
                ))
            })?,
        };
        validate_peer_address(&peer_address)?;
        // openraft takes a member's id again as a no-op, whatever the address: say so
        // rather than answer OK for an address that was never stored.
        if let Some(known) = self.metrics().membership_config.membership().get_node(&node_id)
            && (known.addr != address || known.peer_addr != peer_address)
        {
            return Err(AppError::Membership(format!(
                "node {node_id} is already a member at {known}; remove it first to move it, or add the \
                 new node under a new id"
            )));
        }
        let node = MemberNode::new(address, peer_address);
        membership_result(self.raft().add_learner(node_id, node, true).await)?;
        let voters = BTreeSet::from([node_id]);
        membership_result(
            self.raft()
                .change_membership(ChangeMembers::AddVoterIds(voters), false)
                .await,
        )
    }

    /// Removes `node_id` from the voters and from the membership. A node that is not a
    /// member is NodeNotFound: openraft would accept its removal as a no-op, and the caller
    /// would believe a typo removed something.
    pub async fn remove_node(&self, node_id: NodeId) -> Result<(), AppError> {
        self.leader_only()?;
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let members: Vec<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
        if !members.contains(&node_id) {
            return Err(AppError::NodeNotFound { node_id, members });
        }
        let ids = BTreeSet::from([node_id]);
        // A learner (added, not yet promoted) is not a voter: remove it as a node.
        let change = if membership.voter_ids().any(|id| id == node_id) {
            ChangeMembers::RemoveVoters(ids)
        } else {
            ChangeMembers::RemoveNodes(ids)
        };
        membership_result(self.raft().change_membership(change, false).await)
    }
}

/// The peer address is checked like the client one, under its own field name.
fn validate_peer_address(peer_address: &str) -> Result<(), AppError> {
    use raftsched_core::state::StateError;
    raftsched_core::state::limits::validate_node_address(peer_address).map_err(|e| match e {
        StateError::InvalidArgument { problem, .. } => StateError::InvalidArgument {
            field: "peer_address".into(),
            problem,
        },
        other => other,
    })?;
    crate::network::peer_endpoint(peer_address).map_err(AppError::Membership)?;
    Ok(())
}

fn membership_result<T>(
    result: Result<T, RaftError<crate::raft_types::TypeConfig, ClientWriteError<crate::raft_types::TypeConfig>>>,
) -> Result<(), AppError> {
    match result {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => Err(AppError::from(&forward)),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(AppError::Membership(e.to_string()))
        }
        Err(RaftError::APIError(other)) => Err(AppError::Membership(other.to_string())),
        Err(RaftError::Fatal(fatal)) => Err(AppError::Stopped(fatal.to_string())),
    }
}
