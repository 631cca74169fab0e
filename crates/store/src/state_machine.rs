//! [`StateMachineStore`]: the in-memory scheduler state, applied from the log, with its
//! last snapshot persisted in sled.
//!
//! Recovery: open loads the last snapshot; openraft then re-applies the log entries after
//! it up to the saved commit point. The state itself is never written piecemeal, so a
//! crash can never leave it half-applied.

use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::sync::RwLockReadGuard;

use futures::Stream;
use futures::StreamExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::storage::EntryResponder;
use openraft::storage::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;

use crate::codec::decode;
use crate::codec::encode;
use crate::codec::sled_err;
use crate::flush::Flusher;
use crate::growth::LogGrowth;
use crate::raft_types::LogId;
use crate::raft_types::Snapshot;
use crate::raft_types::SnapshotData;
use crate::raft_types::SnapshotMeta;
use crate::raft_types::StoredMembership;
use crate::raft_types::TypeConfig;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::SchedulerState;

const SNAPSHOT_META_KEY: &[u8] = b"meta";
const SNAPSHOT_DATA_KEY: &[u8] = b"data";

/// What has been applied, and up to where. One lock covers all three fields so a snapshot
/// always pairs a state with the log id it reflects.
#[derive(Debug)]
pub struct AppliedState {
    pub scheduler: SchedulerState,
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership,
}

/// Handle shared between the state machine (the only writer, from openraft's apply task)
/// and the API layer (readers). Locks are held only for synchronous work, never across an
/// await.
#[derive(Clone, Debug)]
pub struct SharedState(Arc<RwLock<AppliedState>>);

impl SharedState {
    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        self.0
            .read()
            .expect("a panic while applying left the scheduler state unusable")
    }

    fn replace(&self, applied: AppliedState) {
        *self
            .0
            .write()
            .expect("a panic while applying left the scheduler state unusable") = applied;
    }
}

/// The openraft state machine. Owned by openraft; the API layer reads through
/// [`StateMachineStore::shared`].
pub struct StateMachineStore {
    shared: SharedState,
    snapshot_slot: SnapshotSlot,
}

/// Where the last snapshot lives: meta and data under two keys of one tree, written in one
/// batch so they always match.
#[derive(Clone)]
struct SnapshotSlot {
    flusher: Arc<Flusher>,
    tree: sled::Tree,
    /// Serialises the compare-and-write of [`SnapshotSlot::save`]. openraft builds snapshots
    /// on a task of their own, so a build that read the state before an install may finish
    /// after it.
    write_lock: Arc<Mutex<()>>,
    /// Told the size of every snapshot saved or loaded, for the snapshot trigger.
    growth: Arc<LogGrowth>,
}

impl SnapshotSlot {
    /// Stores the snapshot unless the slot already holds one at least as recent: a slow
    /// build must not replace a newer installed snapshot, or after a restart the state
    /// would start below log entries that were purged because of the newer one. Returns
    /// once the slot's content is durable, either way.
    /// Takes the data and gives it back (a snapshot can be hundreds of MB: no copy).
    async fn save(&self, meta: &SnapshotMeta, data: SnapshotData) -> io::Result<SnapshotData> {
        // Writing a snapshot of a big state takes long: keep it off the async workers, which
        // must go on sending heartbeats meanwhile.
        let (slot, meta) = (self.clone(), meta.clone());
        let data = tokio::task::spawn_blocking(move || slot.write_if_newer(&meta, &data).map(|()| data))
            .await
            .map_err(|e| io::Error::other(format!("snapshot write task: {e}")))??;
        self.flusher.flush().await?;
        Ok(data)
    }

    fn write_if_newer(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        {
            let _guard = self
                .write_lock
                .lock()
                .map_err(|_| io::Error::other("a panic while saving a snapshot left the slot locked"))?;
            let stored = match self.tree.get(SNAPSHOT_META_KEY).map_err(sled_err)? {
                Some(stored) => Some(decode::<SnapshotMeta>(&stored, "snapshot meta")?),
                None => None,
            };
            if stored.is_none_or(|stored| stored.last_log_id < meta.last_log_id) {
                let mut batch = sled::Batch::default();
                batch.insert(SNAPSHOT_META_KEY, encode(meta));
                batch.insert(SNAPSHOT_DATA_KEY, data);
                self.tree.apply_batch(batch).map_err(sled_err)?;
                self.growth.set_snapshot(data.len());
            }
        }
        Ok(())
    }

    fn load(&self) -> io::Result<Option<(SnapshotMeta, SnapshotData)>> {
        let meta = self.tree.get(SNAPSHOT_META_KEY).map_err(sled_err)?;
        let data = self.tree.get(SNAPSHOT_DATA_KEY).map_err(sled_err)?;
        match (meta, data) {
            (Some(meta), Some(data)) => {
                self.growth.set_snapshot(data.len());
                Ok(Some((decode(&meta, "snapshot meta")?, data.to_vec())))
            }
            (None, None) => Ok(None),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, "snapshot meta without data")),
        }
    }
}

impl StateMachineStore {
    pub(super) fn open(db: &sled::Db, flusher: Arc<Flusher>, growth: Arc<LogGrowth>) -> io::Result<StateMachineStore> {
        let snapshot_slot = SnapshotSlot {
            flusher,
            tree: db.open_tree("snapshot").map_err(sled_err)?,
            write_lock: Arc::new(Mutex::new(())),
            growth,
        };
        let applied = match snapshot_slot.load()? {
            Some((meta, data)) => restore(&meta, &data)?,
            None => AppliedState {
                scheduler: SchedulerState::new(),
                last_applied: None,
                last_membership: StoredMembership::default(),
            },
        };
        Ok(StateMachineStore {
            shared: SharedState(Arc::new(RwLock::new(applied))),
            snapshot_slot,
        })
    }

    pub fn shared(&self) -> SharedState {
        self.shared.clone()
    }
}

fn restore(meta: &SnapshotMeta, data: &[u8]) -> io::Result<AppliedState> {
    let scheduler =
        SchedulerState::from_snapshot_bytes(data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(AppliedState {
        scheduler,
        last_applied: meta.last_log_id,
        last_membership: meta.last_membership.clone(),
    })
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let applied = self.shared.read();
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut applied_in_batch = 0_u64;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            // A crash in the middle of applying a batch: the entries before it are applied in
            // memory only, and must come back from snapshot + log after a restart.
            if applied_in_batch > 0 {
                fail::fail_point!("apply-mid-batch", |_| Err(io::Error::other(
                    "failpoint apply-mid-batch"
                )));
            }
            applied_in_batch += 1;
            let response = {
                let mut applied = self
                    .shared
                    .0
                    .write()
                    .expect("a panic while applying left the state unusable");
                applied.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => CommandResponse::Empty,
                    EntryPayload::Normal(command) => applied.scheduler.apply(command),
                    EntryPayload::Membership(membership) => {
                        applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                        CommandResponse::Empty
                    }
                }
            };
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            snapshot_slot: self.snapshot_slot.clone(),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> io::Result<()> {
        let applied = restore(meta, &snapshot)?;
        self.snapshot_slot.save(meta, snapshot).await?;
        // A crash after the snapshot is durable but before the state in memory is replaced.
        fail::fail_point!("install-snapshot-before-load", |_| Err(io::Error::other(
            "failpoint install-snapshot-before-load"
        )));
        self.shared.replace(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(self
            .snapshot_slot
            .load()?
            .map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

/// Builds a snapshot of the state as applied at the moment it takes the read lock.
pub struct SnapshotBuilder {
    shared: SharedState,
    snapshot_slot: SnapshotSlot,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        // Encoding a big state takes long (0.65 s for a million tasks): on a blocking thread,
        // so the async workers go on with heartbeats and RPCs. Apply still waits for the
        // read lock meanwhile.
        let shared = self.shared.clone();
        let (meta, data) = tokio::task::spawn_blocking(move || {
            let applied = shared.read();
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.last_membership.clone(),
            };
            (meta, applied.scheduler.to_snapshot_bytes())
        })
        .await
        .map_err(|e| io::Error::other(format!("snapshot encode task: {e}")))?;
        let data = self.snapshot_slot.save(&meta, data).await?;
        Ok(Snapshot { meta, snapshot: data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        use openraft::vote::RaftLeaderIdExt;
        LogId::new(
            <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(term, 1),
            index,
        )
    }

    fn meta(log: Option<LogId>) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: log,
            last_membership: StoredMembership::default(),
        }
    }

    /// A snapshot build that read the state before an install, and finishes after it, must
    /// not replace the installed snapshot with its older one.
    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let slot = SnapshotSlot {
            flusher: Arc::new(Flusher::new(db.clone())),
            tree: db.open_tree("snapshot").unwrap(),
            write_lock: Arc::new(Mutex::new(())),
            growth: Arc::default(),
        };
        slot.save(&meta(Some(log_id(2, 10))), b"newer".to_vec()).await.unwrap();
        slot.save(&meta(Some(log_id(1, 5))), b"older".to_vec()).await.unwrap();
        slot.save(&meta(None), b"none".to_vec()).await.unwrap();
        let (stored, data) = slot.load().unwrap().unwrap();
        assert_eq!(stored.last_log_id, Some(log_id(2, 10)));
        assert_eq!(data, b"newer");

        slot.save(&meta(Some(log_id(2, 11))), b"newest".to_vec()).await.unwrap();
        let (stored, data) = slot.load().unwrap().unwrap();
        assert_eq!(stored.last_log_id, Some(log_id(2, 11)));
        assert_eq!(data, b"newest");
    }
}
