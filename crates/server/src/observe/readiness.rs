//! [`readiness`]: whether a node can serve now, as `/readyz` and `grpc.health.v1` report it.
//!
//! The rule is a pure function of a [`RaftView`] (what the node's Raft metrics say, with the
//! leader's quorum silence already measured), so it is tested without a cluster.

use std::time::Duration;

use openraft::RaftMetrics;
use openraft::ServerState;

use crate::raft_types::NodeId;
use crate::raft_types::TypeConfig;

/// How far the applied index may trail the commit index the leader reported and the node
/// still count as caught up. Under a steady load a follower is always a few entries behind
/// (the leader sends up to 64 per append, and apply follows the fsync); two appends' worth
/// keeps such a follower ready without flapping, while one catching up after a restart or a
/// partition (thousands of entries, or a snapshot) is not.
pub const MAX_READY_LAG_ENTRIES: u64 = 128;

/// What the readiness rule reads of a node's Raft metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftView {
    /// None while Raft runs; the fatal error's text once it stopped.
    pub stopped: Option<String>,
    pub state: ServerState,
    pub leader: Option<NodeId>,
    pub voters: usize,
    /// On a leader, how long since a majority last acknowledged it (None: not yet in this
    /// term, or not a leader).
    pub quorum_silence: Option<Duration>,
    /// The leader's lease: a leader unheard by a majority for longer may be cut off.
    pub lease: Duration,
    pub applied_index: u64,
    /// The commit index the leader reported (the leader's own on a leader).
    pub committed_index: u64,
}

impl RaftView {
    /// The view of `metrics` now, for a leader lease of `lease`.
    pub fn of(metrics: &RaftMetrics<TypeConfig>, lease: Duration) -> RaftView {
        let committed = metrics.cluster_committed.as_ref().or(metrics.local_committed.as_ref());
        RaftView {
            stopped: metrics.running_state.as_ref().err().map(ToString::to_string),
            state: metrics.state,
            leader: metrics.current_leader,
            voters: metrics.membership_config.membership().voter_ids().count(),
            quorum_silence: metrics
                .last_quorum_acked
                .as_ref()
                .map(|acked| openraft::Instant::elapsed(&**acked)),
            lease,
            applied_index: metrics.last_applied.as_ref().map_or(0, |log_id| log_id.index),
            committed_index: committed.map_or(0, |log_id| log_id.index),
        }
    }

    /// A leader of several voters that a majority has not acknowledged within its lease
    /// (the rule of `App::check_quorum_contact`).
    pub fn leads_without_quorum(&self) -> bool {
        self.state == ServerState::Leader
            && self.voters > 1
            && self.quorum_silence.is_some_and(|silence| silence > self.lease)
    }
}

/// Why a node is not ready. The text is what `/readyz` answers and the node logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("raft stopped: {0}; restart the node")]
    Stopped(String),
    #[error("no leader known: an election is in progress, or this node cannot reach a majority of the members")]
    NoLeader,
    #[error(
        "this node leads but no majority has answered it for {} ms (lease {} ms): it may be cut off",
        .silence.as_millis(),
        .lease.as_millis()
    )]
    LeaderWithoutQuorum { silence: Duration, lease: Duration },
    #[error("this node won an election but no majority has acknowledged it as leader yet")]
    LeaderNotYetAcknowledged,
    #[error(
        "catching up: applied index {applied} is {} entries behind the commit index {committed} \
         (ready within {MAX_READY_LAG_ENTRIES})",
        .committed - .applied
    )]
    Behind { applied: u64, committed: u64 },
}

/// Ready: the node knows a leader that has a quorum (itself, acknowledged by a majority
/// within its lease; or the leader it follows, which won a majority's votes and whose heartbeats keep
/// it known), and it has applied up to that leader's commit, within
/// [`MAX_READY_LAG_ENTRIES`].
pub fn readiness(view: &RaftView) -> Result<(), NotReady> {
    if let Some(fatal) = &view.stopped {
        return Err(NotReady::Stopped(fatal.clone()));
    }
    if view.state == ServerState::Shutdown {
        return Err(NotReady::Stopped("the node is shutting down".into()));
    }
    if view.leader.is_none() {
        return Err(NotReady::NoLeader);
    }
    if view.state == ServerState::Leader && view.voters > 1 {
        // Unacknowledged is not ready: a leader cut off right after its election would
        // otherwise stay ready for as long as the partition lasts. It lasts one heartbeat
        // (50 ms) on a healthy cluster.
        let Some(silence) = view.quorum_silence else {
            return Err(NotReady::LeaderNotYetAcknowledged);
        };
        if view.leads_without_quorum() {
            return Err(NotReady::LeaderWithoutQuorum {
                silence,
                lease: view.lease,
            });
        }
    }
    if view.applied_index.saturating_add(MAX_READY_LAG_ENTRIES) < view.committed_index {
        return Err(NotReady::Behind {
            applied: view.applied_index,
            committed: view.committed_index,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follower() -> RaftView {
        RaftView {
            stopped: None,
            state: ServerState::Follower,
            leader: Some(1),
            voters: 3,
            quorum_silence: None,
            lease: Duration::from_millis(300),
            applied_index: 1000,
            committed_index: 1000,
        }
    }

    #[test]
    fn a_caught_up_follower_of_a_known_leader_is_ready() {
        assert_eq!(readiness(&follower()), Ok(()));
    }

    #[test]
    fn the_lag_allowed_is_the_limit_and_not_one_entry_more() {
        let at_limit = RaftView {
            applied_index: 1000 - MAX_READY_LAG_ENTRIES,
            ..follower()
        };
        assert_eq!(readiness(&at_limit), Ok(()));
        let past = RaftView {
            applied_index: 1000 - MAX_READY_LAG_ENTRIES - 1,
            ..follower()
        };
        let error = readiness(&past).unwrap_err();
        assert_eq!(
            error,
            NotReady::Behind {
                applied: 1000 - MAX_READY_LAG_ENTRIES - 1,
                committed: 1000
            }
        );
        assert!(error.to_string().contains("129 entries behind"), "{error}");
    }

    #[test]
    fn indexes_at_the_type_limit_do_not_overflow() {
        let view = RaftView {
            applied_index: u64::MAX,
            committed_index: u64::MAX,
            ..follower()
        };
        assert_eq!(readiness(&view), Ok(()));
        let view = RaftView {
            applied_index: 0,
            committed_index: u64::MAX,
            ..follower()
        };
        assert!(matches!(readiness(&view), Err(NotReady::Behind { .. })));
    }

    #[test]
    fn no_known_leader_is_not_ready_whatever_the_role() {
        for state in [ServerState::Follower, ServerState::Candidate, ServerState::Learner] {
            let view = RaftView {
                state,
                leader: None,
                ..follower()
            };
            assert_eq!(readiness(&view), Err(NotReady::NoLeader), "{state:?}");
        }
    }

    #[test]
    fn a_leader_is_ready_until_its_quorum_is_silent_past_the_lease() {
        let leader = |silence_ms: Option<u64>| RaftView {
            state: ServerState::Leader,
            quorum_silence: silence_ms.map(Duration::from_millis),
            ..follower()
        };
        assert_eq!(
            readiness(&leader(None)),
            Err(NotReady::LeaderNotYetAcknowledged),
            "not yet acknowledged in its term"
        );
        assert_eq!(readiness(&leader(Some(0))), Ok(()));
        assert_eq!(readiness(&leader(Some(300))), Ok(()));
        assert!(matches!(
            readiness(&leader(Some(301))),
            Err(NotReady::LeaderWithoutQuorum { .. })
        ));
        for silence in [None, Some(10_000)] {
            let alone = RaftView {
                voters: 1,
                ..leader(silence)
            };
            assert_eq!(readiness(&alone), Ok(()), "a one-voter cluster is its own quorum");
        }
    }

    #[test]
    fn a_stopped_or_stopping_node_is_not_ready() {
        let stopped = RaftView {
            stopped: Some("storage error".into()),
            ..follower()
        };
        assert!(matches!(readiness(&stopped), Err(NotReady::Stopped(_))));
        let stopping = RaftView {
            state: ServerState::Shutdown,
            ..follower()
        };
        assert!(matches!(readiness(&stopping), Err(NotReady::Stopped(_))));
    }
}
