//! [`LogStore`]: the Raft log in segment files ([`Segments`]), the vote, commit point and
//! purge point in sled's `meta` tree.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use openraft::OptionalSend;
use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;

use crate::codec::decode;
use crate::codec::encode;
use crate::codec::sled_err;
use crate::flush::Flusher;
use crate::growth::LogGrowth;
use crate::raft_types::Entry;
use crate::raft_types::LogId;
use crate::raft_types::TypeConfig;
use crate::raft_types::Vote;
use crate::segments::Segments;

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";
/// The sled tree that held the entries before segment files; emptied into them at open.
const LEGACY_LOG_TREE: &str = "log";
/// Entries moved from the legacy tree per append.
const MIGRATION_BATCH: usize = 1024;
/// The committed id is written to sled at most this often. openraft saves it on every
/// commit, hundreds of times a second under load, and each save appended to sled's own
/// log: in the soak sled's file swung 2-6 MB as its segments filled and were cleaned, the
/// largest swing left in the data dir. An older committed id is still committed (it only
/// moves forward), so a restart re-applies at most this much less of its own log before
/// the leader's first heartbeat gives it the rest.
const COMMITTED_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// The Raft log. Cloning is cheap and every clone sees the same segments and tree, so the
/// log reader handed to replication tasks is a clone.
#[derive(Clone)]
pub struct LogStore {
    /// Flushes sled: the vote and the purge point.
    flusher: Arc<Flusher>,
    /// Flushes the log's last segment: appended entries.
    log_flusher: Arc<Flusher>,
    segments: Arc<Mutex<Segments>>,
    /// Vote, committed log id and last purged log id.
    meta: sled::Tree,
    /// Counts the bytes appended, for the snapshot trigger.
    growth: Arc<LogGrowth>,
    /// When the committed id was last written (see [`COMMITTED_WRITE_INTERVAL`]).
    committed_written_at: Arc<Mutex<Option<Instant>>>,
}

impl LogStore {
    pub(super) fn flusher_weak(&self) -> std::sync::Weak<Flusher> {
        Arc::downgrade(&self.flusher)
    }

    /// Opens the segments in `log_dir` (moving entries a release before them left in sled
    /// into them) and decodes what recovery will need, so a corrupt store is found at
    /// start-up rather than in the middle of an election.
    pub(super) fn open(
        db: &sled::Db,
        log_dir: &Path,
        flusher: Arc<Flusher>,
        growth: Arc<LogGrowth>,
    ) -> io::Result<LogStore> {
        let segments = Arc::new(Mutex::new(Segments::open(log_dir)?));
        let synced = Arc::clone(&segments);
        let log_flusher = Arc::new(Flusher::with(move || {
            let file = synced.lock().expect("log lock poisoned").last_file();
            file.map_or(Ok(()), |file| file.sync_data())
        }));
        let store = LogStore {
            flusher,
            log_flusher,
            segments,
            growth,
            meta: db.open_tree("meta").map_err(sled_err)?,
            committed_written_at: Arc::default(),
        };
        let cut = store.lock().cut_at_open;
        if cut > 0 {
            tracing::warn!(
                bytes = cut,
                "cut a torn record off the log's end (an append a crash interrupted)"
            );
        }
        store.read_meta::<Vote>(VOTE_KEY)?;
        store.read_meta::<LogId>(COMMITTED_KEY)?;
        store.migrate_legacy_log(db)?;
        // A crash between recording a purge and removing its segments leaves entries at or
        // below the purge point; finish that purge, so the log is exactly what
        // get_log_state describes.
        if let Some(last_purged) = store.read_meta::<LogId>(LAST_PURGED_KEY)? {
            store.lock().purge_through(last_purged.index)?;
        }
        store.last_entry_log_id()?;
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Segments> {
        self.segments.lock().expect("log lock poisoned")
    }

    /// Moves the entries of the sled tree `log` (releases before segment files) into
    /// segments, durably, then drops the tree. A crash midway leaves the tree whole, so the
    /// next open starts the move again from empty segments.
    fn migrate_legacy_log(&self, db: &sled::Db) -> io::Result<()> {
        if !db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == LEGACY_LOG_TREE.as_bytes())
        {
            return Ok(());
        }
        let tree = db.open_tree(LEGACY_LOG_TREE).map_err(sled_err)?;
        let mut segments = self.lock();
        if !tree.is_empty() {
            segments.clear()?;
            let mut batch = Vec::with_capacity(MIGRATION_BATCH);
            for item in tree.iter() {
                let (key, value) = item.map_err(sled_err)?;
                let key: [u8; 8] = key
                    .as_ref()
                    .try_into()
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a log key that is not 8 bytes"))?;
                batch.push((u64::from_be_bytes(key), value.to_vec()));
                if batch.len() == MIGRATION_BATCH {
                    segments.append(&batch)?;
                    batch.clear();
                }
            }
            segments.append(&batch)?;
            segments.sync()?;
            tracing::info!("moved the log from sled into segment files");
        }
        drop(tree);
        db.drop_tree(LEGACY_LOG_TREE).map_err(sled_err)?;
        db.flush().map_err(sled_err)?;
        Ok(())
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.meta.get(key).map_err(sled_err)? {
            Some(bytes) => decode(&bytes, std::str::from_utf8(key).unwrap_or("meta")).map(Some),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        self.meta.insert(key, encode(value)).map_err(sled_err)?;
        Ok(())
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        let location = {
            let segments = self.lock();
            let Some((_, last)) = segments.bounds() else {
                return Ok(None);
            };
            segments.locate(last, last + 1).pop()
        };
        match location {
            Some(location) => Ok(Some(decode::<Entry>(&location.read()?, "log entry")?.log_id)),
            None => Ok(None),
        }
    }

    async fn flush(&self) -> io::Result<()> {
        self.flusher.flush().await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        // Located under the lock, read outside it: appends go on meanwhile.
        let locations = self.lock().locate(from, to);
        locations
            .iter()
            .map(|location| decode::<Entry>(&location.read()?, "log entry"))
            .collect()
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_meta(VOTE_KEY)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED_KEY)?;
        // An entry at or below the purge point (a purge past the last entry) is not the end
        // of the log: the purge point is.
        let last_log_id = match (self.last_entry_log_id()?, last_purged_log_id) {
            (Some(entry), Some(purged)) if entry.index <= purged.index => Some(purged),
            (Some(entry), _) => Some(entry),
            (None, purged) => purged,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.write_meta(VOTE_KEY, vote)?;
        self.flush().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Not flushed: a committed id lost in a crash is learnt again from the leader; it only
        // lets a restarted node re-apply its own log without waiting for one.
        let Some(log_id) = committed else {
            return self.meta.remove(COMMITTED_KEY).map(|_| ()).map_err(sled_err);
        };
        let now = Instant::now();
        {
            let mut written_at = self.committed_written_at.lock().expect("committed clock poisoned");
            if written_at.is_some_and(|at| now.duration_since(at) < COMMITTED_WRITE_INTERVAL) {
                return Ok(());
            }
            *written_at = Some(now);
        }
        self.write_meta(COMMITTED_KEY, &log_id)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        self.read_meta(COMMITTED_KEY)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let records: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|entry| (entry.log_id.index, encode(&entry)))
            .collect();
        self.growth
            .add_appended(records.iter().map(|(_, bytes)| bytes.len()).sum());
        self.lock().append(&records)?;
        // A crash after the entries are written but before they are flushed.
        fail::fail_point!("append-before-flush", |_| Err(io::Error::other(
            "failpoint append-before-flush"
        )));
        // Report durability only once the entries are on disk, but do not make the next
        // append wait for this fsync: appends pipeline, and one fsync covers every write
        // made before it, so concurrent flushes coalesce.
        let log_flusher = Arc::clone(&self.log_flusher);
        tokio::spawn(async move {
            let flushed = log_flusher.flush().await;
            drop(log_flusher);
            callback.io_completed(flushed);
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let first_removed = match last_log_id {
            None => 0,
            Some(log_id) => match log_id.index.checked_add(1) {
                Some(index) => index,
                None => return Ok(()),
            },
        };
        // Durable when it returns (files cut and unlinked, the directory fsynced).
        self.lock().truncate_from(first_removed)
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // Record the purge point first: a crash between the two steps leaves segments that
        // are merely redundant, never a gap that get_log_state cannot explain.
        self.write_meta(LAST_PURGED_KEY, &log_id)?;
        self.flush().await?;
        self.lock().purge_through(log_id.index).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::storage::RaftLogStorageExt;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(
            <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(term, 1),
            index,
        )
    }

    fn open(db: &sled::Db, dir: &Path) -> LogStore {
        LogStore::open(db, &dir.join("log"), Arc::new(Flusher::new(db.clone())), Arc::default()).unwrap()
    }

    /// A crash between recording a purge and removing its entries: the purge point is the
    /// end of the log, not the stale entries below it, and reopening finishes the purge.
    #[tokio::test]
    async fn an_interrupted_purge_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let mut store = open(&db, dir.path());
        let entries = (1..=3).map(|index| Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Blank,
        });
        store.blocking_append(entries).await.unwrap();
        // What purge(log_id(2, 5)) writes first, without the removal that follows it.
        store.write_meta(LAST_PURGED_KEY, &log_id(2, 5)).unwrap();

        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(2, 5)));
        assert_eq!(state.last_log_id, Some(log_id(2, 5)));

        let mut reopened = open(&db, dir.path());
        assert!(reopened.try_get_log_entries(..).await.unwrap().is_empty());
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 5)));
    }

    /// A log from before segment files moves into them at open, and a move a crash cut
    /// short (segments written, the tree not yet dropped) is started again from scratch.
    #[tokio::test]
    async fn the_legacy_sled_log_moves_into_segments_and_an_interrupted_move_is_redone() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let tree = db.open_tree(LEGACY_LOG_TREE).unwrap();
        let count = MIGRATION_BATCH as u64 * 2 + 5;
        for index in 1..=count {
            let entry = Entry {
                log_id: log_id(1, index),
                payload: EntryPayload::Blank,
            };
            tree.insert(index.to_be_bytes(), encode(&entry)).unwrap();
        }
        // What an interrupted move leaves: some segments, the tree still whole.
        {
            let mut partial = Segments::open(&dir.path().join("log")).unwrap();
            partial
                .append(&[(
                    1,
                    encode(&Entry {
                        log_id: log_id(1, 1),
                        payload: EntryPayload::Blank,
                    }),
                )])
                .unwrap();
        }
        let mut store = open(&db, dir.path());
        let entries = store.try_get_log_entries(..).await.unwrap();
        assert_eq!(entries.len() as u64, count);
        assert!(
            entries
                .iter()
                .enumerate()
                .all(|(n, e)| e.log_id == log_id(1, n as u64 + 1))
        );
        assert!(
            !db.tree_names()
                .iter()
                .any(|name| name.as_ref() == LEGACY_LOG_TREE.as_bytes())
        );
        drop(store);
        let mut reopened = open(&db, dir.path());
        assert_eq!(reopened.try_get_log_entries(..).await.unwrap().len() as u64, count);
    }

    #[tokio::test]
    async fn truncate_after_the_largest_index_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let mut store = open(&db, dir.path());
        store
            .blocking_append([Entry {
                log_id: log_id(1, 1),
                payload: EntryPayload::Blank,
            }])
            .await
            .unwrap();
        store.truncate_after(Some(log_id(1, u64::MAX))).await.unwrap();
        assert_eq!(store.try_get_log_entries(..).await.unwrap().len(), 1);
    }
}
