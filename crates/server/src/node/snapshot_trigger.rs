//! The snapshot trigger: decides when this node snapshots its state.
//!
//! A snapshot encodes the whole state, so its cost grows with the state, not with the log
//! written since the last one. Taking one every N entries whatever the state (openraft's own
//! policy) makes a node holding a million parked tasks write and encode ~160 MB every few
//! seconds under load. Here a snapshot is due ([`due`]) once at least
//! `snapshot_after_entries` entries were applied since the last one *and* the log written
//! since then has reached an eighth of that snapshot's file, or 512 KiB if that is more:
//! the snapshot bytes written stay within 8x the log's, and the log on disk within an
//! eighth of the snapshot (plus the entries kept behind it and a 256 KiB segment), so the
//! data dir stays near 1.1 snapshots however long the node runs. Weighed against the file
//! (compressed, ~6x smaller than the image), not the image: with the image, the soak's log
//! grew to 10 MiB between snapshots of a 3.4 MB file. An eighth, not a quarter: in the soak
//! (a 3.3 MB snapshot, 2.3 MB of sled) a quarter and the old 10,000-entry floor let the log
//! swing 1-4 MiB and the data dir -28%..+30% of its level; the cost is a snapshot of a
//! large state twice as often (a 1M-task state, ~27 MB on file, every 3.4 MB of log). The
//! 512 KiB floor keeps a small state from snapshotting every few kilobytes.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::raft_types::Raft;
use raftsched_store::LogGrowth;

/// How often the trigger looks at the counters.
const CHECK_INTERVAL: Duration = Duration::from_millis(200);
/// The log since the last snapshot must reach 1/this of the snapshot file's size...
const SNAPSHOT_TO_LOG_RATIO: u64 = 8;

/// When a snapshot is due: `RaftTuning`'s two floors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Floors {
    pub(super) entries: u64,
    pub(super) log_bytes: u64,
}

impl Floors {
    /// Whether a snapshot is due, given what was applied and appended since the last one.
    fn due(self, entries_since: u64, log_bytes_since: u64, snapshot_file_bytes: u64) -> bool {
        let log_bytes_needed = (snapshot_file_bytes / SNAPSHOT_TO_LOG_RATIO).max(self.log_bytes);
        entries_since >= self.entries && log_bytes_since >= log_bytes_needed
    }
}

/// Starts the trigger; it stops when `shutdown` is cancelled or Raft stops.
pub(super) fn spawn(raft: Raft, growth: Arc<LogGrowth>, floors: Floors, shutdown: CancellationToken) -> JoinHandle<()> {
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
            if !floors.due(entries_since, log_bytes_since, growth.snapshot_file_bytes()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn a_snapshot_waits_for_both_the_entries_and_an_eighth_of_its_file_in_log() {
        let floors = Floors {
            entries: 1000,
            log_bytes: 512 * KIB,
        };
        // A 3.3 MB snapshot (the soak's): 1/8 of it is ~413 KiB, raised to the floor.
        let file = 3300 * KIB;
        assert!(!floors.due(999, 10 * 1024 * KIB, file), "entries short");
        assert!(!floors.due(1000, 512 * KIB - 1, file), "below the floor");
        assert!(floors.due(1000, 512 * KIB, file));
        // A 27 MB snapshot: an eighth of it.
        let big = 27 * 1024 * KIB;
        assert!(!floors.due(u64::MAX, big / 8 - 1, big));
        assert!(floors.due(u64::MAX, big / 8, big));
        // No snapshot yet (file 0): the floors alone; without a byte floor, the entries.
        assert!(floors.due(1000, 512 * KIB, 0));
        let entries_only = Floors {
            entries: 10,
            log_bytes: 0,
        };
        assert!(entries_only.due(10, 1, 0));
        assert!(!entries_only.due(9, u64::MAX, 0), "entries short");
    }
}
