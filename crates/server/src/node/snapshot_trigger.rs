//! The snapshot trigger: decides when this node snapshots its state.
//!
//! A snapshot encodes the whole state, so its cost grows with the state, not with the log
//! written since the last one. Taking one every N entries whatever the state (openraft's own
//! policy) makes a node holding a million parked tasks write and encode ~160 MB every few
//! seconds under load. Here a snapshot is due once at least `snapshot_after_entries` entries
//! were applied since the last one *and* the log written since then has reached a quarter
//! of that snapshot's file: the snapshot bytes written stay within 4x the log's, and the log
//! on disk within a quarter of the snapshot (plus a segment), so the data dir stays near
//! 1.25 snapshots however long the node runs. Weighed against the file (compressed, ~6x
//! smaller than the image), not the image: with the image, the soak's log grew to 10 MiB
//! between snapshots of a 3.4 MB file and the data dir swung 10-20 MiB.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::raft_types::Raft;
use raftsched_store::LogGrowth;

/// How often the trigger looks at the counters.
const CHECK_INTERVAL: Duration = Duration::from_millis(200);
/// The log since the last snapshot must reach 1/this of the snapshot file's size.
const SNAPSHOT_TO_LOG_RATIO: u64 = 4;

/// Starts the trigger; it stops when `shutdown` is cancelled or Raft stops.
pub(super) fn spawn(
    raft: Raft,
    growth: Arc<LogGrowth>,
    snapshot_after_entries: u64,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Where the last trigger was pulled: the snapshot it asked for shows in the metrics
        // only once built, and must not be asked for again meanwhile.
        let mut triggered_at_index = 0;
        let mut triggered_at_bytes = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            }
            let (applied, snapshot) = {
                let metrics = raft.metrics();
                let metrics = metrics.borrow_watched();
                let index = |log_id: Option<&crate::raft_types::LogId>| log_id.map_or(0, |l| l.index);
                (index(metrics.last_applied.as_ref()), index(metrics.snapshot.as_ref()))
            };
            let entries_since = applied.saturating_sub(snapshot.max(triggered_at_index));
            let log_bytes_since = growth.appended_bytes().saturating_sub(triggered_at_bytes);
            let due = entries_since >= snapshot_after_entries
                && log_bytes_since >= growth.snapshot_file_bytes() / SNAPSHOT_TO_LOG_RATIO;
            if !due {
                continue;
            }
            tracing::debug!(applied, entries_since, log_bytes_since, "taking a snapshot");
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            triggered_at_index = applied;
            triggered_at_bytes = growth.appended_bytes();
        }
    })
}
