//! [`StateMachineStore`]: the in-memory scheduler state, applied from the log, with its
//! last snapshot persisted in a file of its own ([`SnapshotFile`]).
//!
//! Recovery: open loads the last snapshot; openraft then re-applies the log entries after
//! it up to the saved commit point. The state itself is never written piecemeal, so a
//! crash can never leave it half-applied.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::sync::RwLockReadGuard;
use std::time::Instant;

use futures::Stream;
use futures::StreamExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::storage::EntryResponder;
use openraft::storage::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;

use crate::codec::decode;
use crate::codec::sled_err;
use crate::events::StoreEvent;
use crate::events::StoreEvents;
use crate::growth::LogGrowth;
use crate::raft_types::LogId;
use crate::raft_types::Snapshot;
use crate::raft_types::SnapshotData;
use crate::raft_types::SnapshotMeta;
use crate::raft_types::StoredMembership;
use crate::raft_types::TypeConfig;
use crate::removed_peers::RemovedPeers;
use crate::snapshot_envelope;
use crate::snapshot_file::SnapshotFile;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::SchedulerState;

/// The keys under which releases before the snapshot file kept the snapshot in sled's
/// `snapshot` tree; read once, at open, to move it into the file.
const LEGACY_SNAPSHOT_META_KEY: &[u8] = b"meta";
const LEGACY_SNAPSHOT_DATA_KEY: &[u8] = b"data";

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

    /// The state, its log id and membership, taken together under the read lock. The state
    /// is a clone whose collections share every node with the live one (imbl), so this
    /// holds the lock for microseconds (a few dozen root pointers), not for the encoding.
    pub(crate) fn capture(&self) -> (SnapshotMeta, SchedulerState) {
        let applied = self.read();
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.last_membership.clone(),
        };
        (meta, applied.scheduler.clone())
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
    removed: RemovedPeers,
}

/// Where the last snapshot lives: its file, and the meta of what the file holds.
#[derive(Clone)]
struct SnapshotSlot {
    file: SnapshotFile,
    /// The meta of the stored snapshot (None: none yet). Its lock serialises the
    /// compare-and-write of [`SnapshotSlot::save`]: openraft builds snapshots on a task of
    /// their own, so a build that read the state before an install may finish after it.
    stored: Arc<Mutex<Option<SnapshotMeta>>>,
    /// Told the size of every snapshot saved or loaded, for the snapshot trigger.
    growth: Arc<LogGrowth>,
    /// Told how long each snapshot took to build or install.
    events: Arc<StoreEvents>,
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
        tokio::task::spawn_blocking(move || slot.write_if_newer(&meta, &data).map(|()| data))
            .await
            .map_err(|e| io::Error::other(format!("snapshot write task: {e}")))?
    }

    fn write_if_newer(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let mut stored = self
            .stored
            .lock()
            .map_err(|_| io::Error::other("a panic while saving a snapshot left the slot locked"))?;
        if stored
            .as_ref()
            .is_none_or(|stored| stored.last_log_id < meta.last_log_id)
        {
            self.file.write(meta, data)?;
            *stored = Some(meta.clone());
            self.growth.set_snapshot(data.len(), self.file_bytes());
        }
        Ok(())
    }

    fn load(&self) -> io::Result<Option<(SnapshotMeta, SnapshotData)>> {
        let loaded = self.file.read()?;
        if let Some((_, data)) = &loaded {
            self.growth.set_snapshot(data.len(), self.file_bytes());
        }
        Ok(loaded)
    }

    /// The snapshot file's size (0 if it cannot be read: the trigger then only counts
    /// entries).
    fn file_bytes(&self) -> u64 {
        std::fs::metadata(self.file.path()).map_or(0, |m| m.len())
    }
}

/// Moves a snapshot that a release before the snapshot file kept in sled into the file: the
/// file is written durably first, then the tree is cleared, so a crash in between leaves the
/// snapshot in one place or both (and the file wins).
fn move_legacy_snapshot(db: &sled::Db, file: &SnapshotFile) -> io::Result<()> {
    let tree = db.open_tree("snapshot").map_err(sled_err)?;
    if tree.is_empty() {
        return Ok(());
    }
    if !file.exists()? {
        let meta = tree.get(LEGACY_SNAPSHOT_META_KEY).map_err(sled_err)?;
        let data = tree.get(LEGACY_SNAPSHOT_DATA_KEY).map_err(sled_err)?;
        match (meta, data) {
            (Some(meta), Some(data)) => file.write(&decode(&meta, "snapshot meta")?, &data)?,
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "snapshot meta without data")),
        }
    }
    tree.clear().map_err(sled_err)?;
    db.flush().map(drop).map_err(sled_err)
}

impl StateMachineStore {
    pub(super) fn open(
        db: &sled::Db,
        data_dir: &Path,
        growth: Arc<LogGrowth>,
        events: Arc<StoreEvents>,
    ) -> io::Result<StateMachineStore> {
        let file = SnapshotFile::open(data_dir)?;
        move_legacy_snapshot(db, &file)?;
        let snapshot_slot = SnapshotSlot {
            file,
            stored: Arc::new(Mutex::new(None)),
            growth,
            events,
        };
        let loaded = snapshot_slot.load()?;
        *snapshot_slot.stored.lock().expect("not shared yet") = loaded.as_ref().map(|(meta, _)| meta.clone());
        let applied = match loaded {
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
            removed: RemovedPeers::open(db)?,
        })
    }

    pub fn shared(&self) -> SharedState {
        self.shared.clone()
    }

    /// The node ids this node has seen leave the membership (for the peer port).
    pub fn removed_peers(&self) -> RemovedPeers {
        self.removed.clone()
    }

    /// Records a membership change in [`RemovedPeers`]; a failed write is logged, never
    /// fatal (it only loosens the peer check after a restart).
    fn note_membership(&self, before: &StoredMembership, after: &StoredMembership) {
        if let Err(e) = self.removed.update(before, after) {
            tracing::warn!(error = %e, "could not record the nodes removed from the membership");
        }
    }
}

/// The state in a snapshot, once its checksum is verified: nothing of a corrupt snapshot
/// reaches the state.
fn restore(meta: &SnapshotMeta, data: &[u8]) -> io::Result<AppliedState> {
    let image = snapshot_envelope::open(data)?;
    let scheduler =
        SchedulerState::from_snapshot_bytes(image).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
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
                    EntryPayload::Normal(command) => {
                        let _spans = self.snapshot_slot.events.trace_apply(&command);
                        applied.scheduler.apply(command)
                    }
                    EntryPayload::Membership(membership) => {
                        let after = StoredMembership::new(Some(entry.log_id), membership);
                        self.note_membership(&applied.last_membership, &after);
                        applied.last_membership = after;
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
            #[cfg(test)]
            after_clone: Mutex::new(None),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> io::Result<()> {
        let started = Instant::now();
        let image_bytes = snapshot.len() as u64;
        let applied = restore(meta, &snapshot)?;
        self.snapshot_slot.save(meta, snapshot).await?;
        // A crash after the snapshot is durable but before the state in memory is replaced.
        fail::fail_point!("install-snapshot-before-load", |_| Err(io::Error::other(
            "failpoint install-snapshot-before-load"
        )));
        let before = self.shared.read().last_membership.clone();
        self.note_membership(&before, &applied.last_membership);
        self.shared.replace(applied);
        let took = started.elapsed();
        self.snapshot_slot
            .events
            .emit(StoreEvent::SnapshotInstalled { took, image_bytes });
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
    /// Runs on the encoding thread between the clone and the encoding: tests hold the
    /// encoder there to show that apply goes on meanwhile.
    /// (A mutex only because openraft wants the builder `Sync`.)
    #[cfg(test)]
    after_clone: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        // Encoding a big state takes long (0.65 s for a million tasks): on a blocking thread,
        // so the async workers go on with heartbeats and RPCs, and from a clone taken under
        // the read lock, so apply goes on too. A change apply makes meanwhile copies the
        // touched tree nodes and task; the clone keeps the state as of its log id.
        let started = Instant::now();
        let shared = self.shared.clone();
        let growth = Arc::clone(&self.snapshot_slot.growth);
        #[cfg(test)]
        let after_clone = self.after_clone.get_mut().ok().and_then(Option::take);
        let (meta, data) = tokio::task::spawn_blocking(move || {
            let (meta, scheduler) = shared.capture();
            #[cfg(test)]
            if let Some(hook) = after_clone {
                hook();
            }
            // Sized like the last snapshot plus an eighth: the state is bounded by retention,
            // so the next image is about as big, and one that outgrows it still encodes.
            let capacity_bytes = growth.snapshot_bytes() as usize;
            let capacity_bytes = capacity_bytes.saturating_add(capacity_bytes / 8);
            let sealed = snapshot_envelope::seal_with(capacity_bytes, |buffer| scheduler.append_snapshot_bytes(buffer));
            (meta, sealed)
        })
        .await
        .map_err(|e| io::Error::other(format!("snapshot encode task: {e}")))?;
        let data = self.snapshot_slot.save(&meta, data).await?;
        let (took, image_bytes) = (started.elapsed(), data.len() as u64);
        self.snapshot_slot
            .events
            .emit(StoreEvent::SnapshotBuilt { took, image_bytes });
        Ok(Snapshot { meta, snapshot: data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::raft_types::test_log_id as log_id;

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
        let slot = SnapshotSlot {
            file: SnapshotFile::open(dir.path()).unwrap(),
            stored: Arc::default(),
            growth: Arc::default(),
            events: Arc::default(),
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

    fn submit(index: u64) -> crate::raft_types::Entry {
        let spec = raftsched_core::state::TaskSpec::builder(format!("t{index}"))
            .queue("q")
            .build();
        crate::raft_types::Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Normal(raftsched_core::state::Command::SubmitTasks {
                now_ms: index,
                specs: vec![spec],
            }),
        }
    }

    async fn apply_all(store: &mut StateMachineStore, indexes: std::ops::RangeInclusive<u64>) {
        let items = indexes.map(|index| Ok((submit(index), None)));
        store.apply(futures::stream::iter(items)).await.expect("apply");
    }

    /// Apply goes on while a snapshot is being encoded: the encoder is held right after its
    /// clone (a hook, not a timing), entries are applied meanwhile, and the finished snapshot
    /// is the state at the clone, by log id and digest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apply_proceeds_while_a_snapshot_is_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let mut store = StateMachineStore::open(&db, dir.path(), Arc::default(), Arc::default()).unwrap();
        apply_all(&mut store, 1..=10).await;
        let digest_at_clone = store.shared().read().scheduler.digest();

        let (cloned_tx, cloned_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let mut builder = store.get_snapshot_builder().await;
        *builder.after_clone.get_mut().unwrap() = Some(Box::new(move || {
            cloned_tx.send(()).unwrap();
            // Held until the test has applied more entries; a deadline so a broken test
            // cannot hang the suite.
            release_rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        }));
        let build = tokio::spawn(async move { builder.build_snapshot().await });
        cloned_rx.await.expect("the encoder reached its clone");

        // Before the clone, this apply would have waited for the read lock the encoder held.
        let applied = tokio::time::timeout(std::time::Duration::from_secs(10), apply_all(&mut store, 11..=20)).await;
        assert!(applied.is_ok(), "apply waited for the snapshot encoder");
        {
            let shared = store.shared();
            let live = shared.read();
            assert_eq!(live.last_applied, Some(log_id(1, 20)));
            assert_eq!(live.scheduler.task_count(), 20);
        }
        release_tx.send(()).unwrap();
        let snapshot = build.await.unwrap().expect("the snapshot builds");

        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 10)));
        let image = snapshot_envelope::open(&snapshot.snapshot).expect("a sealed, intact snapshot");
        let restored = SchedulerState::from_snapshot_bytes(image).unwrap();
        assert_eq!(restored.task_count(), 10);
        assert_eq!(restored.digest(), digest_at_clone);
        assert_eq!(store.shared().read().scheduler.task_count(), 20);
    }
}
