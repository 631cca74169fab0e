//! The node's observation loop: follows its Raft metrics, counts leader changes, publishes
//! whether the node is ready, and folds histogram samples into buckets.

use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::NodeMetrics;
use super::NotReady;
use super::RaftView;
use super::readiness;
use crate::raft_types::Raft;

/// How often readiness is looked at when the Raft metrics do not change: a leader's quorum
/// silence grows without any change to report, and a lease is 300 ms by default.
const RECHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How often recorded histogram samples are folded into buckets (each waiting sample is
/// 8 bytes: at 1,000 tasks/s, 5 s of them is under 100 KiB).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Whether the node is ready now, and why not when it is not.
pub type Readiness = Result<(), NotReady>;

/// Starts the loop; it stops when `shutdown` is cancelled. The receiver always holds the
/// latest readiness (not ready until the first look).
pub fn spawn(
    raft: Raft,
    metrics: NodeMetrics,
    shutdown: CancellationToken,
) -> (watch::Receiver<Readiness>, JoinHandle<()>) {
    let (publish, readiness) = watch::channel(Err(NotReady::NoLeader));
    let task = tokio::spawn(run(raft, metrics, publish, shutdown));
    (readiness, task)
}

async fn run(raft: Raft, metrics: NodeMetrics, publish: watch::Sender<Readiness>, shutdown: CancellationToken) {
    let lease = Duration::from_millis(raft.config().election_timeout_max);
    let mut changes = raft.metrics();
    let mut leader = None;
    let mut quorum_lost = false;
    let mut upkeep = tokio::time::interval(UPKEEP_INTERVAL);
    // Once Raft has stopped its metrics never change again (and `changed` returns at once):
    // from then on only the recheck interval wakes the loop.
    let mut raft_running = true;
    loop {
        let view = {
            let current = changes.borrow_watched();
            RaftView::of(&current, lease)
        };
        // A new leader counts, the first one included; a gap without one does not (Some(1)
        // → None → Some(1) is no change of leader).
        if view.leader.is_some() && view.leader != leader {
            metrics.leader_changed();
            leader = view.leader;
        }
        // Counted once per episode: from the lease running out to an acknowledgement (or
        // the end of this node's leadership).
        let without_quorum = view.leads_without_quorum();
        if without_quorum && !quorum_lost {
            metrics.quorum_lost();
            tracing::warn!("leading without a majority's acknowledgement for longer than the {lease:?} lease");
        }
        quorum_lost = without_quorum;
        let now = readiness(&view);
        publish.send_if_modified(|before| {
            if *before == now {
                return false;
            }
            match &now {
                Ok(()) => tracing::info!("ready: the node knows a leader with a quorum and has caught up"),
                Err(why) => tracing::info!("not ready: {why}"),
            }
            *before = now;
            true
        });
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = changes.changed(), if raft_running => raft_running = changed.is_ok(),
            _ = tokio::time::sleep(RECHECK_INTERVAL) => {}
            _ = upkeep.tick() => metrics.upkeep(),
        }
    }
}
