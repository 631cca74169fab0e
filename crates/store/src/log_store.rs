//! [`LogStore`]: the Raft log in segment files ([`Segments`]), the vote, commit point and
//! purge point in the meta file ([`MetaFile`]).

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
use crate::events::StoreEvent;
use crate::events::StoreEvents;
use crate::flush::Flusher;
use crate::growth::LogGrowth;
use crate::meta_file::Meta;
use crate::meta_file::MetaFile;
use crate::raft_types::Entry;
use crate::raft_types::LogId;
use crate::raft_types::TypeConfig;
use crate::raft_types::Vote;
use crate::segments::Segments;

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";
/// The sled tree that held the three values above before the meta file; emptied into it at
/// open. (It still holds the format stamp, [`crate::format`].)
const LEGACY_META_TREE: &str = "meta";
/// The sled tree that held the entries before segment files; emptied into them at open.
const LEGACY_LOG_TREE: &str = "log";
/// Entries moved from the legacy tree per append.
const MIGRATION_BATCH: usize = 1024;
/// The committed id is written at most this often. openraft saves it on every commit,
/// hundreds of times a second under load, and each save cost a write (when it was in sled,
/// one appended to sled's own log, whose file then swung 2-6 MB in the soak). An older
/// committed id is still committed (it only moves forward), so a restart re-applies at most
/// this much less of its own log before the leader's first heartbeat gives it the rest.
const COMMITTED_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// The Raft log. Cloning is cheap and every clone sees the same segments and meta file, so
/// the log reader handed to replication tasks is a clone.
#[derive(Clone)]
pub struct LogStore {
    /// Flushes sled. The log writes nothing to sled after open; it holds this so that
    /// [`crate::StoreClosed`] sees the database open for as long as a log handle lives.
    flusher: Arc<Flusher>,
    /// Flushes the log's last segment: appended entries.
    log_flusher: Arc<Flusher>,
    segments: Arc<Mutex<Segments>>,
    /// Vote, committed log id and last purged log id.
    meta: Arc<Mutex<MetaFile>>,
    /// Counts the bytes appended, for the snapshot trigger.
    growth: Arc<LogGrowth>,
    /// When the committed id was last written (see [`COMMITTED_WRITE_INTERVAL`]).
    committed_written_at: Arc<Mutex<Option<Instant>>>,
}

impl LogStore {
    pub(super) fn flusher_weak(&self) -> std::sync::Weak<Flusher> {
        Arc::downgrade(&self.flusher)
    }

    /// Opens the segments in `log_dir` and the meta file in `meta_dir` (moving entries and
    /// values a release before them left in sled into them) and decodes what recovery will
    /// need, so a corrupt store is found at start-up rather than in the middle of an election.
    pub(super) fn open(
        db: &sled::Db,
        log_dir: &Path,
        meta_dir: &Path,
        flusher: Arc<Flusher>,
        growth: Arc<LogGrowth>,
        events: Arc<StoreEvents>,
    ) -> io::Result<LogStore> {
        let legacy_meta = db.open_tree(LEGACY_META_TREE).map_err(sled_err)?;
        let meta = MetaFile::open(meta_dir, || legacy_values(&legacy_meta))?;
        // Written durably into the file first, so a crash before this leaves them in both.
        remove_legacy_values(db, &legacy_meta)?;
        let segments = Arc::new(Mutex::new(Segments::open(log_dir)?));
        let synced = Arc::clone(&segments);
        let log_flusher = Arc::new(Flusher::with(move || {
            let file = synced.lock().expect("log lock poisoned").last_file();
            let started = Instant::now();
            let synced = file.map_or(Ok(()), |file| file.sync_data());
            events.emit(StoreEvent::LogFsync {
                took: started.elapsed(),
            });
            synced
        }));
        let store = LogStore {
            flusher,
            log_flusher,
            segments,
            growth,
            meta: Arc::new(Mutex::new(meta)),
            committed_written_at: Arc::default(),
        };
        let cut = store.lock().cut_at_open;
        if cut > 0 {
            tracing::warn!(
                bytes = cut,
                "cut a torn record off the log's end (an append a crash interrupted)"
            );
        }
        store.migrate_legacy_log(db)?;
        // A crash between recording a purge and removing its segments leaves entries at or
        // below the purge point; finish that purge, so the log is exactly what
        // get_log_state describes.
        if let Some(last_purged) = store.read_meta().last_purged {
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

    fn read_meta(&self) -> Meta {
        self.meta.lock().expect("meta lock poisoned").meta().clone()
    }

    /// Replaces the meta record with `change` applied to it, on the blocking pool (a synced
    /// write is an fdatasync). Callers are openraft's storage calls, one at a time.
    async fn write_meta(&self, sync: bool, change: impl FnOnce(&mut Meta) + Send + 'static) -> io::Result<()> {
        let meta = Arc::clone(&self.meta);
        tokio::task::spawn_blocking(move || {
            let mut file = meta.lock().expect("meta lock poisoned");
            let mut next = file.meta().clone();
            change(&mut next);
            file.write(next, sync)
        })
        .await
        .map_err(io::Error::other)?
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
}

/// The values a release before the meta file kept in sled's `meta` tree (none in a new dir).
fn legacy_values(tree: &sled::Tree) -> io::Result<Meta> {
    fn read<T: serde::de::DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> io::Result<Option<T>> {
        match tree.get(key).map_err(sled_err)? {
            Some(bytes) => decode(&bytes, std::str::from_utf8(key).unwrap_or("meta")).map(Some),
            None => Ok(None),
        }
    }
    Ok(Meta {
        vote: read(tree, VOTE_KEY)?,
        committed: read(tree, COMMITTED_KEY)?,
        last_purged: read(tree, LAST_PURGED_KEY)?,
    })
}

/// Drops the values [`legacy_values`] read, once the meta file holds them (a no-op after).
fn remove_legacy_values(db: &sled::Db, tree: &sled::Tree) -> io::Result<()> {
    let keys = [VOTE_KEY, COMMITTED_KEY, LAST_PURGED_KEY];
    let mut removed = false;
    for key in keys {
        removed |= tree.remove(key).map_err(sled_err)?.is_some();
    }
    if removed {
        db.flush().map_err(sled_err)?;
    }
    Ok(())
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
        Ok(self.read_meta().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id = self.read_meta().last_purged;
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
        let vote = *vote;
        self.write_meta(true, move |meta| meta.vote = Some(vote)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Not synced: a committed id lost in a crash is learnt again from the leader; it only
        // lets a restarted node re-apply its own log without waiting for one.
        let Some(log_id) = committed else {
            return self.write_meta(false, |meta| meta.committed = None).await;
        };
        let now = Instant::now();
        {
            let mut written_at = self.committed_written_at.lock().expect("committed clock poisoned");
            if written_at.is_some_and(|at| now.duration_since(at) < COMMITTED_WRITE_INTERVAL) {
                return Ok(());
            }
            *written_at = Some(now);
        }
        self.write_meta(false, move |meta| meta.committed = Some(log_id)).await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.read_meta().committed)
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
        self.write_meta(true, move |meta| meta.last_purged = Some(log_id))
            .await?;
        self.lock().purge_through(log_id.index).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::storage::RaftLogStorageExt;

    use super::*;

    use crate::raft_types::test_log_id as log_id;

    fn open(db: &sled::Db, dir: &Path) -> LogStore {
        LogStore::open(
            db,
            &dir.join("log"),
            dir,
            Arc::new(Flusher::new(db.clone())),
            Arc::default(),
            Arc::default(),
        )
        .unwrap()
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
        store
            .write_meta(true, |meta| meta.last_purged = Some(log_id(2, 5)))
            .await
            .unwrap();

        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(2, 5)));
        assert_eq!(state.last_log_id, Some(log_id(2, 5)));

        let mut reopened = open(&db, dir.path());
        assert!(reopened.try_get_log_entries(..).await.unwrap().is_empty());
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 5)));
    }

    /// The vote, committed id and purge point a release before the meta file kept in sled
    /// move into the file at open and leave sled. Once the file exists it is what counts,
    /// so a move a crash cut short (file written, sled not yet cleared) is not redone over it.
    #[tokio::test]
    async fn the_legacy_sled_values_move_into_the_meta_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let tree = db.open_tree(LEGACY_META_TREE).unwrap();
        let vote = Vote::new_committed(4, 2);
        tree.insert(VOTE_KEY, encode(&vote)).unwrap();
        tree.insert(COMMITTED_KEY, encode(&log_id(4, 9))).unwrap();
        tree.insert(LAST_PURGED_KEY, encode(&log_id(3, 2))).unwrap();
        tree.insert(b"format_version", b"kept".to_vec()).unwrap();
        let mut store = open(&db, dir.path());
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(4, 9)));
        assert_eq!(
            store.get_log_state().await.unwrap().last_purged_log_id,
            Some(log_id(3, 2))
        );
        for key in [VOTE_KEY, COMMITTED_KEY, LAST_PURGED_KEY] {
            assert_eq!(tree.get(key).unwrap(), None, "{key:?} left sled");
        }
        assert!(tree.get(b"format_version").unwrap().is_some(), "the stamp stays");
        drop(store);
        // A stale value in sled beside an existing file (a crash before sled was cleared).
        tree.insert(VOTE_KEY, encode(&Vote::new_committed(1, 1))).unwrap();
        let mut store = open(&db, dir.path());
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(tree.get(VOTE_KEY).unwrap(), None);
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
