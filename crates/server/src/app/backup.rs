//! [`App::backup`]: a consistent copy of the applied state, for `raftsched cluster snapshot
//! save` (the store's `backup` module says what the file is).

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::app::AppError;
use crate::app::Consistency;
use openraft::async_runtime::watch::WatchReceiver;
use raftsched_store::Backup;
use raftsched_store::BackupSummary;

/// Saves running at once on a node. A save holds the state's image and its compressed file
/// in memory (tens of MB for the soak's state), so two would double that for no gain.
pub(crate) const MAX_CONCURRENT_BACKUPS: usize = 1;

/// One save's result: what it holds, the file's bytes and their SHA-256, and the slot it
/// holds until it is dropped (when the last chunk is sent, or the client went away).
pub struct SavedBackup {
    pub summary: BackupSummary,
    pub file_bytes: Vec<u8>,
    pub sha256_hex: String,
    /// The node that took it.
    pub node_id: crate::raft_types::NodeId,
    _slot: OwnedSemaphorePermit,
}

/// The slot a save takes.
pub(crate) fn backup_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_CONCURRENT_BACKUPS))
}

impl App {
    /// The state as applied once every write acknowledged before this call is: a
    /// linearizable read (so only the leader answers; a follower says which node leads),
    /// then a capture of what is applied. Apply goes on meanwhile: the capture clones the
    /// state under the read lock and encodes the clone.
    pub async fn backup(&self) -> Result<SavedBackup, AppError> {
        let slot = Arc::clone(&self.backup_slots).try_acquire_owned().map_err(|_| {
            AppError::QuotaExceeded(
                "a snapshot save is already running on this node (one at a time); wait for it to finish and retry"
                    .into(),
            )
        })?;
        self.ensure_consistency(Consistency::Linearizable).await?;
        let state = self.state.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let backup = Backup::capture(&state)?;
            Some(backup.to_file_bytes().map(|bytes| (backup.summary(), bytes)))
        })
        .await
        .map_err(|e| AppError::Internal(format!("snapshot encode task: {e}")))?;
        let (summary, file_bytes) = encoded
            .ok_or_else(|| AppError::Internal("nothing is applied yet on the leader".into()))?
            .map_err(|e| AppError::Internal(format!("encoding the snapshot: {e}")))?;
        let sha256_hex = raftsched_client::sha256_hex(&file_bytes);
        Ok(SavedBackup {
            summary,
            file_bytes,
            sha256_hex,
            node_id: self.raft.metrics().borrow_watched().id,
            _slot: slot,
        })
    }
}
