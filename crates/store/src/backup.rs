//! [`Backup`]: a consistent copy of the applied state in one file, and new data dirs seeded
//! from one (`raftsched cluster snapshot save` and `raftsched cluster restore`).
//!
//! A backup file is byte for byte a snapshot file ([`crate::snapshot_file`]): the meta under
//! a CRC-32, then the image in its checksummed envelope, compressed. Two things follow: the
//! code that checks every snapshot a node installs also checks every backup, and a node's
//! own `DATA_DIR/snapshot` can be restored when no backup was saved (it is only as recent as
//! that node's last snapshot). The SHA-256 of the whole file is what an operator records and
//! compares after copying it; the server sends it, the client checks it.
//!
//! Seeding a data dir writes what a follower has after installing a snapshot from a leader:
//! the backup as its snapshot, with the membership replaced by the new cluster's members,
//! the log purged through the snapshot's last entry, and a vote one term past that entry's.
//! That vote matters: the restored log ends in term T, and a node whose vote said less
//! would stand for election in a term at or below T and append entries whose log ids go
//! backwards. Each member votes for itself in T + 1, so the first election is in T + 2.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::path::PathBuf;

use openraft::Membership;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;

use crate::Store;
use crate::StoreError;
use crate::raft_types::LogId;
use crate::raft_types::MemberNode;
use crate::raft_types::NodeId;
use crate::raft_types::SnapshotData;
use crate::raft_types::SnapshotMeta;
use crate::raft_types::StoredMembership;
use crate::raft_types::Vote;
use crate::snapshot_envelope;
use crate::snapshot_file;
use crate::state_machine::SharedState;
use raftsched_core::state::SchedulerState;

/// Why a backup could not be read or a data dir seeded. Every variant says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a usable backup: {detail}; take a new one with `raftsched cluster snapshot save FILE`, \
         or restore from another copy"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("{path} holds no applied entry (a snapshot of a cluster that never started): there is nothing to restore")]
    Empty { path: PathBuf },
    #[error(
        "--data-dir {path} is not empty: restore seeds a new data dir; remove it (after copying anything you \
         need) or name another"
    )]
    NotEmpty { path: PathBuf },
    #[error("--initial-members: {0}")]
    Members(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a backup holds, as `raftsched cluster snapshot status` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub last_log_index: u64,
    pub last_log_term: u64,
    /// The members of the cluster the backup was taken of.
    pub members: BTreeMap<NodeId, MemberNode>,
    pub tasks: u64,
    /// The uncompressed image, envelope included.
    pub image_bytes: u64,
}

/// A snapshot of the applied state, checked: its meta, its sealed image, and what it holds.
#[derive(Debug, Clone)]
pub struct Backup {
    meta: SnapshotMeta,
    data: SnapshotData,
    last_log_id: LogId,
    tasks: u64,
}

impl Backup {
    /// What `shared` has applied, now. `None` before anything was applied. Blocking: the
    /// encoding takes about 0.65 s per million tasks, so call it off the async workers.
    pub fn capture(shared: &SharedState) -> Option<Backup> {
        let (meta, scheduler) = shared.capture();
        let last_log_id = meta.last_log_id?;
        // Encoded straight behind the envelope's header, as a snapshot build does: no second
        // copy of the image.
        let data = snapshot_envelope::seal_with(0, |buffer| scheduler.append_snapshot_bytes(buffer));
        Some(Backup {
            meta,
            data,
            last_log_id,
            tasks: scheduler.task_count() as u64,
        })
    }

    /// The backup file's bytes.
    pub fn to_file_bytes(&self) -> io::Result<Vec<u8>> {
        // The image compresses to about a sixth (snapshot_file.rs has the figures).
        let capacity_bytes = self.data.len() / 4;
        snapshot_file::encode_into(Vec::with_capacity(capacity_bytes), &self.meta, &self.data)
    }

    /// A backup from a file's bytes, refused unless both checksums hold and the state
    /// decodes: nothing is seeded from a file that could not be installed. `path` names the
    /// file in errors.
    pub fn from_file_bytes(path: &Path, bytes: &[u8]) -> Result<Backup, BackupError> {
        let damaged = |detail: String| BackupError::Damaged {
            path: path.to_path_buf(),
            detail,
        };
        let (meta, data) = snapshot_file::decode_from(bytes).map_err(|e| damaged(e.to_string()))?;
        let image = snapshot_envelope::open(&data).map_err(|e| damaged(e.to_string()))?;
        let scheduler = SchedulerState::from_snapshot_bytes(image).map_err(|e| damaged(e.to_string()))?;
        let last_log_id = meta.last_log_id.ok_or_else(|| BackupError::Empty {
            path: path.to_path_buf(),
        })?;
        Ok(Backup {
            meta,
            data,
            last_log_id,
            tasks: scheduler.task_count() as u64,
        })
    }

    /// Reads and checks the backup at `path` ([`Self::from_file_bytes`]).
    pub fn read(path: &Path) -> Result<Backup, BackupError> {
        let bytes = std::fs::read(path).map_err(|source| BackupError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Backup::from_file_bytes(path, &bytes)
    }

    pub fn summary(&self) -> BackupSummary {
        let members = self
            .meta
            .last_membership
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect();
        BackupSummary {
            last_log_index: self.last_log_id.index,
            last_log_term: self.last_log_id.committed_leader_id().term,
            members,
            tasks: self.tasks,
            image_bytes: self.data.len() as u64,
        }
    }

    /// Seeds the new data dir of `node_id` in a cluster of `members` with this backup (the
    /// module's comment says what it writes). The dir must be absent or empty; on failure
    /// it is removed again, so the command can simply be rerun.
    pub async fn seed(
        &self,
        data_dir: &Path,
        cluster_id: &str,
        node_id: NodeId,
        members: &BTreeMap<NodeId, MemberNode>,
    ) -> Result<(), BackupError> {
        let membership = new_membership(node_id, members)?;
        let io_error = |source| BackupError::Io {
            path: data_dir.to_path_buf(),
            source,
        };
        match std::fs::read_dir(data_dir) {
            Ok(entries) => {
                if entries.into_iter().next().is_some() {
                    return Err(BackupError::NotEmpty {
                        path: data_dir.to_path_buf(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
        }
        let seeded = self.write_seed(data_dir, cluster_id, node_id, membership).await;
        if seeded.is_err() {
            // Best effort: the error that matters is the one returned.
            let _ = std::fs::remove_dir_all(data_dir);
        }
        seeded
    }

    async fn write_seed(
        &self,
        data_dir: &Path,
        cluster_id: &str,
        node_id: NodeId,
        membership: Membership<NodeId, MemberNode>,
    ) -> Result<(), BackupError> {
        let io_error = |source| BackupError::Io {
            path: data_dir.to_path_buf(),
            source,
        };
        let Store {
            mut log_store,
            mut state_machine,
            ..
        } = Store::open(data_dir, cluster_id, node_id)?;
        let last = self.last_log_id;
        let meta = SnapshotMeta {
            last_log_id: Some(last),
            last_membership: StoredMembership::new(Some(last), membership),
        };
        state_machine
            .install_snapshot(&meta, self.data.clone())
            .await
            .map_err(io_error)?;
        let term = last.committed_leader_id().term;
        log_store
            .save_vote(&Vote::new(term.saturating_add(1), node_id))
            .await
            .map_err(io_error)?;
        log_store.purge(last).await.map_err(io_error)
    }
}

/// The new cluster's membership: every member a voter. `node_id` must be one of them.
fn new_membership(
    node_id: NodeId,
    members: &BTreeMap<NodeId, MemberNode>,
) -> Result<Membership<NodeId, MemberNode>, BackupError> {
    if !members.contains_key(&node_id) {
        let ids: Vec<String> = members.keys().map(NodeId::to_string).collect();
        return Err(BackupError::Members(format!(
            "node {node_id} is not listed (the list has {}); list every member of the new cluster, this one included",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        )));
    }
    if members.contains_key(&0) {
        return Err(BackupError::Members("node ids start at 1".into()));
    }
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    Membership::new(vec![voters], members.clone()).map_err(|e| BackupError::Members(e.to_string()))
}

#[cfg(test)]
mod tests;
